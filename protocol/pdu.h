// iSCSI PDUs (RFC 7143 §11): the 48-byte Basic Header Segment, additional header segments and the
// data segment, with typed decoders for what initiators send and encoders for what targets send.
// Pure functions: no sockets, no clocks. Digests are framing and live in protocol/framing.h.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/byte_order.h"

namespace untorn::protocol {

inline constexpr size_t kBhsLength = 48;

// RFC 7143 §11.1.1 / §10.2.1.2.
enum class Opcode : uint8_t {
  kNopOut = 0x00,
  kScsiCommand = 0x01,
  kTaskMgmtRequest = 0x02,
  kLoginRequest = 0x03,
  kTextRequest = 0x04,
  kDataOut = 0x05,
  kLogoutRequest = 0x06,
  kSnackRequest = 0x10,
  kNopIn = 0x20,
  kScsiResponse = 0x21,
  kTaskMgmtResponse = 0x22,
  kLoginResponse = 0x23,
  kTextResponse = 0x24,
  kDataIn = 0x25,
  kLogoutResponse = 0x26,
  kR2t = 0x31,
  kAsyncMessage = 0x32,
  kReject = 0x3f,
};

// Reject reasons, RFC 7143 §11.17.1.
enum class RejectReason : uint8_t {
  kDataDigestError = 0x02,
  kSnackReject = 0x03,
  kProtocolError = 0x04,
  kCommandNotSupported = 0x05,
  kImmediateCommandReject = 0x06,
  kTaskInProgress = 0x07,
  kInvalidDataAck = 0x08,
  kInvalidPduField = 0x09,
  kLongOperationReject = 0x0a,
  kWaitingForLogout = 0x0c,
};

inline constexpr uint32_t kReservedTag = 0xFFFFFFFFu;

struct Pdu {
  std::array<uint8_t, kBhsLength> bhs{};
  std::vector<uint8_t> ahs;   // TotalAHSLength * 4 bytes
  std::vector<uint8_t> data;  // DataSegmentLength bytes, without padding

  [[nodiscard]] uint8_t RawOpcode() const { return bhs[0] & 0x3f; }
  [[nodiscard]] bool Immediate() const { return (bhs[0] & 0x40) != 0; }
  [[nodiscard]] bool Final() const { return (bhs[1] & 0x80) != 0; }
  [[nodiscard]] uint8_t TotalAhsWords() const { return bhs[4]; }
  [[nodiscard]] uint32_t DataSegmentLength() const { return LoadBe24(bhs, 5); }
  [[nodiscard]] uint64_t Lun() const { return LoadBe64(bhs, 8); }
  [[nodiscard]] uint32_t Itt() const { return LoadBe32(bhs, 16); }
  [[nodiscard]] uint32_t Field32(size_t off) const { return LoadBe32(bhs, off); }
  // Sets DataSegmentLength from data.size() and TotalAHSLength from ahs.size().
  void SyncLengths();
};

// --- Initiator PDUs, decoded -------------------------------------------------------------------

// SCSI Command, RFC 7143 §11.3. The CDB is bytes 32..47 plus an Extended CDB AHS (§11.2.2.3).
struct ScsiCommandPdu {
  bool immediate = false, final = false, read = false, write = false;
  uint8_t task_attr = 0;
  uint64_t lun = 0;
  uint32_t itt = 0, expected_length = 0, cmd_sn = 0, exp_stat_sn = 0;
  std::vector<uint8_t> cdb;
};
// Fails (nullopt) if the AHS holds a malformed Extended CDB segment.
[[nodiscard]] std::optional<ScsiCommandPdu> DecodeScsiCommand(const Pdu& pdu);

// SCSI Data-Out, RFC 7143 §11.7.
struct DataOutPdu {
  bool final = false;
  uint64_t lun = 0;
  uint32_t itt = 0, ttt = 0, exp_stat_sn = 0, data_sn = 0, buffer_offset = 0;
};
[[nodiscard]] DataOutPdu DecodeDataOut(const Pdu& pdu);

// NOP-Out, RFC 7143 §11.18.
struct NopOutPdu {
  bool immediate = false;
  uint64_t lun = 0;
  uint32_t itt = 0, ttt = 0, cmd_sn = 0, exp_stat_sn = 0;
};
[[nodiscard]] NopOutPdu DecodeNopOut(const Pdu& pdu);

// Task Management Function Request, RFC 7143 §11.5.
enum class TmfFunction : uint8_t {
  kAbortTask = 1,
  kAbortTaskSet = 2,
  kClearAca = 3,
  kClearTaskSet = 4,
  kLogicalUnitReset = 5,
  kTargetWarmReset = 6,
  kTargetColdReset = 7,
  kTaskReassign = 8,
};
struct TmfRequestPdu {
  bool immediate = false;
  uint8_t function = 0;
  uint64_t lun = 0;
  uint32_t itt = 0, referenced_tag = 0, cmd_sn = 0, exp_stat_sn = 0, ref_cmd_sn = 0;
};
[[nodiscard]] TmfRequestPdu DecodeTmfRequest(const Pdu& pdu);

// Login Request, RFC 7143 §11.12.
struct LoginRequestPdu {
  bool transit = false, cont = false;
  uint8_t csg = 0, nsg = 0, version_max = 0, version_min = 0;
  uint64_t isid = 0;  // 48 bits
  uint16_t tsih = 0, cid = 0;
  uint32_t itt = 0, cmd_sn = 0, exp_stat_sn = 0;
};
[[nodiscard]] LoginRequestPdu DecodeLoginRequest(const Pdu& pdu);

// Text Request, RFC 7143 §11.10.
struct TextRequestPdu {
  bool immediate = false, final = false, cont = false;
  uint64_t lun = 0;
  uint32_t itt = 0, ttt = 0, cmd_sn = 0, exp_stat_sn = 0;
};
[[nodiscard]] TextRequestPdu DecodeTextRequest(const Pdu& pdu);

// Logout Request, RFC 7143 §11.14.
struct LogoutRequestPdu {
  bool immediate = false;
  uint8_t reason = 0;  // 0 close session, 1 close connection, 2 remove connection for recovery
  uint16_t cid = 0;
  uint32_t itt = 0, cmd_sn = 0, exp_stat_sn = 0;
};
[[nodiscard]] LogoutRequestPdu DecodeLogoutRequest(const Pdu& pdu);

// --- Target PDUs, encoded ----------------------------------------------------------------------

// The sequence numbers every target PDU carries at bytes 24..35.
struct SeqNumbers {
  uint32_t stat_sn = 0, exp_cmd_sn = 0, max_cmd_sn = 0;
};

// SCSI Response, RFC 7143 §11.4.
struct ScsiResponse {
  uint32_t itt = 0;
  uint8_t response = 0;  // 0 = command completed at target
  uint8_t status = 0;
  bool overflow = false, underflow = false;
  uint32_t residual = 0, exp_data_sn = 0;
  std::vector<uint8_t> sense;  // sent with its 2-byte SenseLength prefix
};
[[nodiscard]] Pdu EncodeScsiResponse(const ScsiResponse& r, const SeqNumbers& sn);

// SCSI Data-In, RFC 7143 §11.7. With `status` set, it carries phase-collapsed status (S bit).
struct DataIn {
  uint32_t itt = 0, data_sn = 0, buffer_offset = 0;
  uint64_t lun = 0;
  bool final = false;
  std::optional<uint8_t> status;
  bool overflow = false, underflow = false;
  uint32_t residual = 0;
};
[[nodiscard]] Pdu EncodeDataIn(const DataIn& d, std::vector<uint8_t> data, const SeqNumbers& sn);
// The same PDU without its data segment, DataSegmentLength set to `data_length`: for sending
// data that lives in another buffer (see FrameAround in protocol/framing.h).
[[nodiscard]] Pdu EncodeDataInHeader(const DataIn& d, uint32_t data_length, const SeqNumbers& sn);

// Ready To Transfer, RFC 7143 §11.8. StatSN is the next one, not consumed.
struct R2t {
  uint64_t lun = 0;
  uint32_t itt = 0, ttt = 0, r2t_sn = 0, buffer_offset = 0, length = 0;
};
[[nodiscard]] Pdu EncodeR2t(const R2t& r, const SeqNumbers& sn);

// NOP-In, RFC 7143 §11.19. ttt != kReservedTag asks the initiator to answer (a ping).
[[nodiscard]] Pdu EncodeNopIn(uint64_t lun, uint32_t itt, uint32_t ttt, std::vector<uint8_t> data,
                              const SeqNumbers& sn);

// Task Management Function Response, RFC 7143 §11.6.
enum class TmfResponse : uint8_t {
  kComplete = 0,
  kTaskDoesNotExist = 1,
  kLunDoesNotExist = 2,
  kTaskStillAllegiant = 3,
  kReassignNotSupported = 4,
  kNotSupported = 5,
  kAuthorizationFailed = 6,
  kRejected = 255,
};
[[nodiscard]] Pdu EncodeTmfResponse(uint32_t itt, TmfResponse response, const SeqNumbers& sn);

// Login Response, RFC 7143 §11.13.
struct LoginResponse {
  bool transit = false, cont = false;
  uint8_t csg = 0, nsg = 0;
  uint64_t isid = 0;
  uint16_t tsih = 0;
  uint32_t itt = 0;
  uint8_t status_class = 0, status_detail = 0;
};
[[nodiscard]] Pdu EncodeLoginResponse(const LoginResponse& r, std::vector<uint8_t> data,
                                      const SeqNumbers& sn);

// Text Response, RFC 7143 §11.11.
[[nodiscard]] Pdu EncodeTextResponse(uint32_t itt, uint32_t ttt, bool final, bool cont,
                                     std::vector<uint8_t> data, const SeqNumbers& sn);

// Logout Response, RFC 7143 §11.15.
[[nodiscard]] Pdu EncodeLogoutResponse(uint32_t itt, uint8_t response, const SeqNumbers& sn);

// Reject, RFC 7143 §11.17: carries the rejected PDU's BHS as its data segment.
[[nodiscard]] Pdu EncodeReject(RejectReason reason, const std::array<uint8_t, kBhsLength>& rejected,
                               const SeqNumbers& sn);

// Asynchronous Message, RFC 7143 §11.9 (event 1: target requests logout; 0: SCSI async event).
[[nodiscard]] Pdu EncodeAsyncMessage(uint8_t event, uint16_t param3_time2retain,
                                     const SeqNumbers& sn);

}  // namespace untorn::protocol
