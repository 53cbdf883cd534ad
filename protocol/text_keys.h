// iSCSI text keys (RFC 7143 §6.1): "key=value" pairs, each NUL-terminated, in Login and Text PDU
// data segments; numeric, boolean and binary value encodings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/byte_order.h"

namespace untorn::protocol {

inline constexpr size_t kMaxKeyLength = 63;          // §6.1
inline constexpr size_t kMaxValueLength = 8192;      // binary CHAP values may exceed 255
inline constexpr size_t kMaxTextDataLength = 65536;  // bound on a key set across C-bit PDUs

struct TextKey {
  std::string key;
  std::string value;
  bool operator==(const TextKey&) const = default;
};
using KeyList = std::vector<TextKey>;

// Parses a complete key set. A trailing pair without NUL is accepted (some initiators omit the
// last terminator); empty strings between NULs (padding) are skipped. On failure returns nullopt
// and sets *error to a reason naming the offending key.
[[nodiscard]] std::optional<KeyList> ParseTextKeys(Bytes data, std::string* error);
[[nodiscard]] std::vector<uint8_t> EncodeTextKeys(const KeyList& keys);
void AppendTextKey(std::vector<uint8_t>& out, std::string_view key, std::string_view value);

// Numeric values: decimal, or hex with 0x (§6.1, "numerical-value").
[[nodiscard]] std::optional<uint64_t> ParseNumber(std::string_view v);
// Binary values: 0x/0X hex or 0b/0B base64 (§6.1, "binary-value").
[[nodiscard]] std::optional<std::vector<uint8_t>> ParseBinary(std::string_view v);
[[nodiscard]] std::string EncodeHex(Bytes b);  // "0x..." lower-case
// Splits a comma-separated list value.
[[nodiscard]] std::vector<std::string> SplitList(std::string_view v);

}  // namespace untorn::protocol
