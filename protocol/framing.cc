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

std::vector<uint8_t> Serialize(const Pdu& pdu, bool header_digest, bool data_digest) {
  const size_t padded = PaddedLength(pdu.data.size());
  std::vector<uint8_t> out;
  out.reserve(kBhsLength + pdu.ahs.size() + 2 * kDigestLength + padded);
  out.insert(out.end(), pdu.bhs.begin(), pdu.bhs.end());
  out.insert(out.end(), pdu.ahs.begin(), pdu.ahs.end());
  if (header_digest) {
    out.resize(out.size() + kDigestLength);
    StoreLe32(out, out.size() - kDigestLength, HeaderDigest(pdu));
  }
  if (!pdu.data.empty()) {
    out.insert(out.end(), pdu.data.begin(), pdu.data.end());
    out.resize(out.size() + padded - pdu.data.size(), 0);
    if (data_digest) {
      out.resize(out.size() + kDigestLength);
      StoreLe32(out, out.size() - kDigestLength, DataDigest(pdu.data));
    }
  }
  return out;
}

}  // namespace untorn::protocol
