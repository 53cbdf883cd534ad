#include "protocol/framing.h"

#include "protocol/crc32c.h"

namespace untorn::protocol {

FrameLayout LayoutOf(const std::array<uint8_t, kBhsLength>& bhs) {
  FrameLayout l;
  l.ahs_bytes = size_t{bhs[4]} * 4;
  l.data_bytes = LoadBe24(bhs, 5);
  l.padded_data_bytes = PaddedLength(l.data_bytes);
  return l;
}

uint32_t HeaderDigest(const Pdu& pdu) {
  uint32_t s = Crc32cExtend(kCrc32cInit, pdu.bhs);
  s = Crc32cExtend(s, pdu.ahs);
  return Crc32cFinish(s);
}

uint32_t DataDigest(Bytes data) {
  static constexpr uint8_t kZeros[4] = {};
  uint32_t s = Crc32cExtend(kCrc32cInit, data);
  s = Crc32cExtend(s, Bytes(kZeros, PaddedLength(data.size()) - data.size()));
  return Crc32cFinish(s);
}

FrameEdges FrameAround(const Pdu& header, Bytes data, bool header_digest, bool data_digest) {
  FrameEdges e;
  e.head.reserve(kBhsLength + header.ahs.size() + kDigestLength);
  e.head.insert(e.head.end(), header.bhs.begin(), header.bhs.end());
  e.head.insert(e.head.end(), header.ahs.begin(), header.ahs.end());
  if (header_digest) {
    e.head.resize(e.head.size() + kDigestLength);
    StoreLe32(e.head, e.head.size() - kDigestLength, HeaderDigest(header));
  }
  if (!data.empty()) {
    e.tail_length = PaddedLength(data.size()) - data.size();  // zeros already
    if (data_digest) {
      StoreLe32(e.tail, e.tail_length, DataDigest(data));
      e.tail_length += kDigestLength;
    }
  }
  return e;
}

std::vector<uint8_t> Serialize(const Pdu& pdu, bool header_digest, bool data_digest) {
  FrameEdges e = FrameAround(pdu, pdu.data, header_digest, data_digest);
  std::vector<uint8_t> out = std::move(e.head);
  out.reserve(out.size() + pdu.data.size() + e.tail_length);
  out.insert(out.end(), pdu.data.begin(), pdu.data.end());
  out.insert(out.end(), e.tail.begin(), e.tail.begin() + static_cast<ptrdiff_t>(e.tail_length));
  return out;
}

}  // namespace untorn::protocol
