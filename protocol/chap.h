// CHAP response computation (RFC 1994 as used by RFC 7143 §12.1.3):
// response = H(identifier || secret || challenge). Algorithms by CHAP_A number: 5 MD5,
// 6 SHA-1, 7 SHA-256, 8 SHA3-256 (RFC 7143 allows 5; the others are what newer initiators offer).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "protocol/byte_order.h"

namespace untorn::protocol {

inline constexpr size_t kMaxChapChallenge = 1024;  // bound on a peer's CHAP_C, in bytes

// Digest length for a supported algorithm, nullopt for an unsupported one.
[[nodiscard]] std::optional<size_t> ChapDigestLength(int algorithm);

[[nodiscard]] std::vector<uint8_t> ChapResponse(int algorithm, uint8_t identifier,
                                                std::string_view secret, Bytes challenge);

// Constant-time equality for secrets and responses.
[[nodiscard]] bool ConstantTimeEqual(Bytes a, Bytes b);

}  // namespace untorn::protocol
