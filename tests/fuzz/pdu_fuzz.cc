// libFuzzer target: the PDU layer on bytes from the wire. The first 48 bytes are a BHS; the
// AHS and data segment are taken from what follows, as far as the BHS's lengths say and the
// input reaches. Every decoder for the opcode runs; the PDU is serialized and its wire form
// framed again (RFC 7143 §11.2: BHS, AHS, header digest, padded data, data digest), which must
// give back the same BHS, AHS and data with digests that check. Failures trap: libFuzzer
// ignores a target's return value.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/byte_order.h"
#include "protocol/framing.h"
#include "protocol/pdu.h"

using namespace untorn::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kBhsLength) return 0;
  Pdu pdu;
  std::copy(data, data + kBhsLength, pdu.bhs.begin());
  const FrameLayout layout = LayoutOf(pdu.bhs);
  size_t at = kBhsLength;
  const size_t ahs = std::min(layout.ahs_bytes, size - at);
  pdu.ahs.assign(data + at, data + at + ahs);
  at += ahs;
  const size_t seg = std::min(layout.data_bytes, size - at);
  pdu.data.assign(data + at, data + at + seg);
  switch (static_cast<Opcode>(pdu.RawOpcode())) {
    case Opcode::kScsiCommand:
      (void)DecodeScsiCommand(pdu);
      break;
    case Opcode::kDataOut:
      (void)DecodeDataOut(pdu);
      break;
    case Opcode::kNopOut:
      (void)DecodeNopOut(pdu);
      break;
    case Opcode::kTaskMgmtRequest:
      (void)DecodeTmfRequest(pdu);
      break;
    case Opcode::kLoginRequest:
      (void)DecodeLoginRequest(pdu);
      break;
    case Opcode::kTextRequest:
      (void)DecodeTextRequest(pdu);
      break;
    case Opcode::kLogoutRequest:
      (void)DecodeLogoutRequest(pdu);
      break;
    default:
      (void)EncodeReject(RejectReason::kCommandNotSupported, pdu.bhs, SeqNumbers{1, 1, 1});
      break;
  }
  pdu.ahs.resize(pdu.ahs.size() / 4 * 4);  // TotalAHSLength counts 4-byte words
  pdu.SyncLengths();
  const bool header_digest = (data[0] & 1) != 0, data_digest = (data[1] & 1) != 0;
  const std::vector<uint8_t> wire = Serialize(pdu, header_digest, data_digest);
  // Frame the wire form again, as the connection's reader does.
  if (wire.size() < kBhsLength) __builtin_trap();
  std::array<uint8_t, kBhsLength> bhs{};
  std::copy(wire.begin(), wire.begin() + kBhsLength, bhs.begin());
  if (bhs != pdu.bhs) __builtin_trap();
  const FrameLayout back = LayoutOf(bhs);
  if (back.ahs_bytes != pdu.ahs.size() || back.data_bytes != pdu.data.size() ||
      back.padded_data_bytes != PaddedLength(pdu.data.size())) {
    __builtin_trap();
  }
  size_t pos = kBhsLength;
  if (!std::equal(pdu.ahs.begin(), pdu.ahs.end(), wire.begin() + static_cast<ptrdiff_t>(pos))) {
    __builtin_trap();
  }
  pos += back.ahs_bytes;
  if (header_digest) {
    if (LoadLe32(wire, pos) != HeaderDigest(pdu)) __builtin_trap();
    pos += kDigestLength;
  }
  if (!std::equal(pdu.data.begin(), pdu.data.end(), wire.begin() + static_cast<ptrdiff_t>(pos))) {
    __builtin_trap();
  }
  const Bytes padded(wire.data() + pos, back.padded_data_bytes);
  pos += back.padded_data_bytes;
  if (data_digest && !pdu.data.empty()) {
    if (LoadLe32(wire, pos) != DataDigest(padded.first(pdu.data.size()))) __builtin_trap();
    pos += kDigestLength;
  }
  if (pos != wire.size()) __builtin_trap();
  return 0;
}
