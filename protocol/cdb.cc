#include "protocol/cdb.h"

namespace untorn::protocol {

size_t CdbLengthForOpcode(uint8_t opcode) {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

std::optional<BlockCdb> DecodeBlockCdb(Bytes cdb) {
  if (cdb.empty()) return std::nullopt;
  BlockCdb c;
  c.opcode = cdb[0];
  const size_t need = CdbLengthForOpcode(c.opcode);
  if (need == 0 || cdb.size() < need) return std::nullopt;
  c.byte1 = cdb[1];
  switch (c.opcode) {
    case op::kRead6:
    case op::kWrite6:  // SBC-4 §5.13: 21-bit LBA, length 0 means 256
      c.lba = LoadBe24(cdb, 1) & 0x1fffff;
      c.blocks = cdb[4] == 0 ? 256 : cdb[4];
      c.byte1 = 0;
      c.lba_offset = 1;
      c.length_offset = 4;
      return c;
    case op::kRead10:
    case op::kWrite10:
    case op::kWriteAndVerify10:
    case op::kVerify10:
    case op::kPreFetch10:
    case op::kSynchronizeCache10:
    case op::kWriteSame10:
      c.lba = LoadBe32(cdb, 2);
      c.blocks = LoadBe16(cdb, 7);
      c.group = cdb[6] & 0x3f;
      c.lba_offset = 2;
      c.length_offset = 7;
      break;
    case op::kRead12:
    case op::kWrite12:
    case op::kWriteAndVerify12:
    case op::kVerify12:
      c.lba = LoadBe32(cdb, 2);
      c.blocks = LoadBe32(cdb, 6);
      c.group = cdb[10] & 0x3f;
      c.lba_offset = 2;
      c.length_offset = 6;
      break;
    case op::kRead16:
    case op::kWrite16:
    case op::kOrWrite16:
    case op::kWriteAndVerify16:
    case op::kVerify16:
    case op::kPreFetch16:
    case op::kSynchronizeCache16:
    case op::kWriteSame16:
      c.lba = LoadBe64(cdb, 2);
      c.blocks = LoadBe32(cdb, 10);
      c.group = cdb[14] & 0x3f;
      c.lba_offset = 2;
      c.length_offset = 10;
      break;
    case op::kWriteAtomic16:  // SBC-4 §5.48
      c.lba = LoadBe64(cdb, 2);
      c.atomic_boundary = LoadBe16(cdb, 10);
      c.blocks = LoadBe16(cdb, 12);
      c.group = cdb[14] & 0x3f;
      c.lba_offset = 2;
      c.length_offset = 12;
      break;
    case op::kCompareAndWrite:  // SBC-4 §5.3
      c.lba = LoadBe64(cdb, 2);
      c.blocks = cdb[13];
      c.group = cdb[14] & 0x3f;
      c.lba_offset = 2;
      c.length_offset = 13;
      break;
    default:
      return std::nullopt;
  }
  c.wrprotect = static_cast<uint8_t>(c.byte1 >> 5);
  c.dpo = (c.byte1 & 0x10) != 0;
  c.fua = (c.byte1 & 0x08) != 0;
  return c;
}

std::optional<Sense> CheckControlByte(Bytes cdb) {
  if (cdb.empty()) return std::nullopt;
  size_t len = CdbLengthForOpcode(cdb[0]);
  if (len == 0) {
    // Variable-length CDBs (SPC-4 §4.2.4) carry CONTROL in byte 1.
    if (cdb[0] != op::kVariableLength || cdb.size() < 2) return std::nullopt;
    if (cdb[1] & 0x04) return sense::InvalidFieldInCdb(1, 2);
    return std::nullopt;
  }
  if (cdb.size() < len) return std::nullopt;
  const uint8_t control = cdb[len - 1];
  if (control & 0x04) return sense::InvalidFieldInCdb(static_cast<uint16_t>(len - 1), 2);
  if (control & 0x01) return sense::InvalidFieldInCdb(static_cast<uint16_t>(len - 1), 0);
  return std::nullopt;
}

InquiryCdb DecodeInquiry(Bytes cdb) {
  return InquiryCdb{(cdb[1] & 0x01) != 0, cdb[2], LoadBe16(cdb, 3)};
}

ModeSenseCdb DecodeModeSense(Bytes cdb) {
  ModeSenseCdb m;
  m.ten = cdb[0] == op::kModeSense10;
  m.dbd = (cdb[1] & 0x08) != 0;
  m.llbaa = m.ten && (cdb[1] & 0x10) != 0;
  m.pc = cdb[2] >> 6;
  m.page = cdb[2] & 0x3f;
  m.subpage = cdb[3];
  m.allocation_length = m.ten ? LoadBe16(cdb, 7) : cdb[4];
  return m;
}

ModeSelectCdb DecodeModeSelect(Bytes cdb) {
  ModeSelectCdb m;
  m.ten = cdb[0] == op::kModeSelect10;
  m.pf = (cdb[1] & 0x10) != 0;
  m.sp = (cdb[1] & 0x01) != 0;
  m.parameter_list_length = m.ten ? LoadBe16(cdb, 7) : cdb[4];
  return m;
}

}  // namespace untorn::protocol
