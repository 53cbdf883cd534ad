// libFuzzer target: the PDU layer on bytes from the wire. The first 48 bytes are a BHS; the
// AHS and data segment are taken from what follows, as far as the BHS's lengths say and the
// input reaches. Every decoder for the opcode runs; a decoded PDU re-serializes.
#include <cstddef>
#include <cstdint>

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
  pdu.SyncLengths();
  const auto wire = Serialize(pdu, data[0] & 1, data[1] & 1);
  (void)DataDigest(pdu.data);
  return wire.size() >= kBhsLength ? 0 : 1;
}
