// SCSI CDB decoding (SPC-4 / SBC-4) into typed values. Decoders check only the CDB's own
// consistency (length, obsolete or unsupported bits); limits that depend on the logical unit
// (capacity, atomic limits) are the logical unit's checks.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>

#include "protocol/byte_order.h"
#include "protocol/sense.h"

namespace untorn::protocol {

namespace op {
inline constexpr uint8_t kTestUnitReady = 0x00;
inline constexpr uint8_t kRequestSense = 0x03;
inline constexpr uint8_t kRead6 = 0x08;
inline constexpr uint8_t kWrite6 = 0x0a;
inline constexpr uint8_t kInquiry = 0x12;
inline constexpr uint8_t kModeSelect6 = 0x15;
inline constexpr uint8_t kReserve6 = 0x16;
inline constexpr uint8_t kRelease6 = 0x17;
inline constexpr uint8_t kModeSense6 = 0x1a;
inline constexpr uint8_t kStartStopUnit = 0x1b;
inline constexpr uint8_t kPreventAllowMediumRemoval = 0x1e;
inline constexpr uint8_t kReadCapacity10 = 0x25;
inline constexpr uint8_t kRead10 = 0x28;
inline constexpr uint8_t kWrite10 = 0x2a;
inline constexpr uint8_t kWriteAndVerify10 = 0x2e;
inline constexpr uint8_t kVerify10 = 0x2f;
inline constexpr uint8_t kPreFetch10 = 0x34;
inline constexpr uint8_t kSynchronizeCache10 = 0x35;
inline constexpr uint8_t kWriteSame10 = 0x41;
inline constexpr uint8_t kUnmap = 0x42;
inline constexpr uint8_t kModeSelect10 = 0x55;
inline constexpr uint8_t kModeSense10 = 0x5a;
inline constexpr uint8_t kPersistentReserveIn = 0x5e;
inline constexpr uint8_t kPersistentReserveOut = 0x5f;
inline constexpr uint8_t kVariableLength = 0x7f;
inline constexpr uint8_t kRead16 = 0x88;
inline constexpr uint8_t kCompareAndWrite = 0x89;
inline constexpr uint8_t kWrite16 = 0x8a;
inline constexpr uint8_t kOrWrite16 = 0x8b;
inline constexpr uint8_t kWriteAndVerify16 = 0x8e;
inline constexpr uint8_t kVerify16 = 0x8f;
inline constexpr uint8_t kPreFetch16 = 0x90;
inline constexpr uint8_t kSynchronizeCache16 = 0x91;
inline constexpr uint8_t kWriteSame16 = 0x93;
inline constexpr uint8_t kWriteAtomic16 = 0x9c;
inline constexpr uint8_t kServiceActionIn16 = 0x9e;
inline constexpr uint8_t kReportLuns = 0xa0;
inline constexpr uint8_t kMaintenanceIn = 0xa3;
inline constexpr uint8_t kRead12 = 0xa8;
inline constexpr uint8_t kWrite12 = 0xaa;
inline constexpr uint8_t kWriteAndVerify12 = 0xae;
inline constexpr uint8_t kVerify12 = 0xaf;
// Service actions.
inline constexpr uint8_t kSaReadCapacity16 = 0x10;
inline constexpr uint8_t kSaGetLbaStatus = 0x12;
inline constexpr uint8_t kSaReportSupportedOpcodes = 0x0c;
inline constexpr uint16_t kSaWriteAtomic32 = 0x000f;
}  // namespace op

// CDB length implied by the operation code's group (SPC-4 §4.2.5.1); 0 for variable/vendor.
[[nodiscard]] size_t CdbLengthForOpcode(uint8_t opcode);

// The block-addressed commands: READ/WRITE/VERIFY/WRITE AND VERIFY/ORWRITE/PRE-FETCH/
// SYNCHRONIZE CACHE/WRITE SAME/COMPARE AND WRITE/WRITE ATOMIC(16), any CDB size.
struct BlockCdb {
  uint8_t opcode = 0;
  uint64_t lba = 0;
  uint32_t blocks = 0;    // TRANSFER LENGTH / NUMBER OF LOGICAL BLOCKS, after 6-byte 0→256
  uint8_t wrprotect = 0;  // also RDPROTECT / VRPROTECT / ORPROTECT: byte 1 bits 7..5
  bool dpo = false, fua = false;
  uint8_t byte1 = 0;  // the raw flags byte, for command-specific bits (BYTCHK, UNMAP, IMMED…)
  uint16_t atomic_boundary = 0;  // WRITE ATOMIC(16) only
  uint8_t group = 0;
  // Byte offsets, for sense field pointers.
  uint16_t lba_offset = 0, length_offset = 0;
};

// Decodes a block command CDB; nullopt if the opcode is not one of them or the CDB is short.
[[nodiscard]] std::optional<BlockCdb> DecodeBlockCdb(Bytes cdb);

// Checks the CONTROL byte (SAM-5 §5.2): NACA and the obsolete LINK bit are not supported.
[[nodiscard]] std::optional<Sense> CheckControlByte(Bytes cdb);

// Allocation length helpers for INQUIRY / MODE SENSE / REPORT LUNS / etc.
struct InquiryCdb {
  bool evpd = false;
  uint8_t page = 0;
  uint16_t allocation_length = 0;
};
[[nodiscard]] InquiryCdb DecodeInquiry(Bytes cdb);

struct ModeSenseCdb {
  bool ten = false;  // MODE SENSE(10)
  bool dbd = false, llbaa = false;
  uint8_t pc = 0;  // page control: 0 current, 1 changeable, 2 default, 3 saved
  uint8_t page = 0, subpage = 0;
  uint16_t allocation_length = 0;
};
[[nodiscard]] ModeSenseCdb DecodeModeSense(Bytes cdb);

struct ModeSelectCdb {
  bool ten = false, pf = false, sp = false;
  uint16_t parameter_list_length = 0;
};
[[nodiscard]] ModeSelectCdb DecodeModeSelect(Bytes cdb);

}  // namespace untorn::protocol
