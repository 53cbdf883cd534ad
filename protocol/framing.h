// PDU framing on a byte stream (RFC 7143 §11.2): BHS, AHS, optional header digest, data segment
// padded to a multiple of 4, optional data digest. Digests are CRC32C sent least significant
// byte first, as Linux and libiscsi do.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "protocol/pdu.h"

namespace untorn::protocol {

inline constexpr size_t kDigestLength = 4;

[[nodiscard]] inline size_t PaddedLength(size_t n) { return (n + 3) & ~size_t{3}; }

// What follows a received BHS on the stream, in bytes.
struct FrameLayout {
  size_t ahs_bytes = 0;
  size_t data_bytes = 0;         // DataSegmentLength
  size_t padded_data_bytes = 0;  // with padding, without digest
};
[[nodiscard]] FrameLayout LayoutOf(const std::array<uint8_t, kBhsLength>& bhs);

[[nodiscard]] uint32_t HeaderDigest(const Pdu& pdu);
// Digest of the data segment and its zero padding.
[[nodiscard]] uint32_t DataDigest(Bytes data);

// What goes on the wire before and after a data segment sent from its own buffer: BHS, AHS and
// header digest; then padding and data digest. `header` has no data of its own, and its
// DataSegmentLength already says data.size().
struct FrameEdges {
  std::vector<uint8_t> head;
  std::array<uint8_t, 3 + kDigestLength> tail{};
  size_t tail_length = 0;
};
[[nodiscard]] FrameEdges FrameAround(const Pdu& header, Bytes data, bool header_digest,
                                     bool data_digest);

// Whole PDU as it goes on the wire.
[[nodiscard]] std::vector<uint8_t> Serialize(const Pdu& pdu, bool header_digest, bool data_digest);

}  // namespace untorn::protocol
