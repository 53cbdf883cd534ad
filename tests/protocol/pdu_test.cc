#include "protocol/pdu.h"

#include <gtest/gtest.h>

namespace untorn::protocol {
namespace {

// A SCSI Command PDU written byte by byte from RFC 7143 §11.3: immediate, F+W, simple
// attribute, LUN 1, ITT 0x11223344, EDTL 4096, CmdSN 7, ExpStatSN 9, WRITE(10) CDB.
Pdu WriteCommand() {
  Pdu p;
  const uint8_t bhs[48] = {
      0x41, 0xa1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   // I|opcode 1, F|W|ATTR=1, DSL 0
      0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   // LUN 1
      0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x10, 0x00,   // ITT, EDTL 4096
      0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x09,   // CmdSN 7, ExpStatSN 9
      0x2a, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,   // WRITE(10) LBA 16
      0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};  // 8 blocks
  std::copy(std::begin(bhs), std::end(bhs), p.bhs.begin());
  return p;
}

TEST(Pdu, DecodesScsiCommandFields) {
  const auto c = DecodeScsiCommand(WriteCommand());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->immediate);
  EXPECT_TRUE(c->final);
  EXPECT_TRUE(c->write);
  EXPECT_FALSE(c->read);
  EXPECT_EQ(c->task_attr, 1);
  EXPECT_EQ(c->lun, 0x0001000000000000ULL);
  EXPECT_EQ(c->itt, 0x11223344u);
  EXPECT_EQ(c->expected_length, 4096u);
  EXPECT_EQ(c->cmd_sn, 7u);
  EXPECT_EQ(c->exp_stat_sn, 9u);
  ASSERT_EQ(c->cdb.size(), 16u);
  EXPECT_EQ(c->cdb[0], 0x2a);
  EXPECT_EQ(c->cdb[8], 0x08);
}

TEST(Pdu, ExtendedCdbAhsAppendsCdbBytes) {
  Pdu p = WriteCommand();
  // AHS: length 17 (1 reserved + 16 CDB bytes), type 1, padded to 20 bytes.
  p.ahs = {0x00, 0x11, 0x01, 0x00};
  for (int i = 0; i < 16; ++i) p.ahs.push_back(static_cast<uint8_t>(0xc0 + i));
  p.SyncLengths();
  const auto c = DecodeScsiCommand(p);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->cdb.size(), 32u);
  EXPECT_EQ(c->cdb[16], 0xc0);
  EXPECT_EQ(c->cdb[31], 0xcf);
}

TEST(Pdu, MalformedAhsIsRefused) {
  Pdu p = WriteCommand();
  p.ahs = {0x00, 0x40, 0x01, 0x00};  // claims 64 bytes, has 1
  EXPECT_FALSE(DecodeScsiCommand(p));
  p.ahs = {0x00, 0x00, 0x01, 0x00};  // zero length
  EXPECT_FALSE(DecodeScsiCommand(p));
}

TEST(Pdu, DecodesLoginRequest) {
  Pdu p;
  p.bhs[0] = 0x43;  // I | Login
  p.bhs[1] = 0x87;  // T, CSG 1, NSG 3
  p.bhs[2] = 0x00;
  p.bhs[3] = 0x00;
  const uint8_t isid[6] = {0x80, 0x12, 0x34, 0x56, 0x78, 0x9a};
  std::copy(std::begin(isid), std::end(isid), p.bhs.begin() + 8);
  StoreBe16(p.bhs, 14, 0x0005);  // TSIH
  StoreBe32(p.bhs, 16, 0xcafe);  // ITT
  StoreBe16(p.bhs, 20, 0x0002);  // CID
  StoreBe32(p.bhs, 24, 100);
  const LoginRequestPdu l = DecodeLoginRequest(p);
  EXPECT_TRUE(l.transit);
  EXPECT_FALSE(l.cont);
  EXPECT_EQ(l.csg, 1);
  EXPECT_EQ(l.nsg, 3);
  EXPECT_EQ(l.isid, 0x80123456789aULL);
  EXPECT_EQ(l.tsih, 5);
  EXPECT_EQ(l.itt, 0xcafeu);
  EXPECT_EQ(l.cid, 2);
  EXPECT_EQ(l.cmd_sn, 100u);
}

TEST(Pdu, EncodesScsiResponseWithSenseAndResidual) {
  ScsiResponse r;
  r.itt = 0x42;
  r.status = 0x02;
  r.underflow = true;
  r.residual = 512;
  r.exp_data_sn = 3;
  r.sense = {0x70, 0x00, 0x05};
  const Pdu p = EncodeScsiResponse(r, {10, 20, 52});
  EXPECT_EQ(p.bhs[0], 0x21);
  EXPECT_EQ(p.bhs[1], 0x82);  // F | U
  EXPECT_EQ(p.bhs[3], 0x02);
  EXPECT_EQ(p.DataSegmentLength(), 5u);
  EXPECT_EQ(LoadBe16(p.data, 0), 3);  // SenseLength
  EXPECT_EQ(p.Itt(), 0x42u);
  EXPECT_EQ(LoadBe32(p.bhs, 24), 10u);
  EXPECT_EQ(LoadBe32(p.bhs, 28), 20u);
  EXPECT_EQ(LoadBe32(p.bhs, 32), 52u);
  EXPECT_EQ(LoadBe32(p.bhs, 36), 3u);
  EXPECT_EQ(LoadBe32(p.bhs, 44), 512u);
}

TEST(Pdu, DataInWithStatusSetsSAndFAndStatSn) {
  DataIn d;
  d.itt = 1;
  d.data_sn = 4;
  d.buffer_offset = 8192;
  d.status = 0;
  d.overflow = true;
  d.residual = 100;
  const Pdu p = EncodeDataIn(d, {1, 2, 3, 4}, {77, 5, 6});
  EXPECT_EQ(p.bhs[0], 0x25);
  EXPECT_EQ(p.bhs[1], 0x85);  // F | O | S
  EXPECT_EQ(LoadBe32(p.bhs, 24), 77u);
  EXPECT_EQ(LoadBe32(p.bhs, 20), kReservedTag);
  EXPECT_EQ(LoadBe32(p.bhs, 36), 4u);
  EXPECT_EQ(LoadBe32(p.bhs, 40), 8192u);
  EXPECT_EQ(LoadBe32(p.bhs, 44), 100u);
}

TEST(Pdu, DataInWithoutStatusHasReservedStatSn) {
  DataIn d;
  d.itt = 1;
  const Pdu p = EncodeDataIn(d, {1, 2, 3, 4}, {77, 5, 6});
  EXPECT_EQ(p.bhs[1], 0x00);
  EXPECT_EQ(LoadBe32(p.bhs, 24), 0u);
}

TEST(Pdu, R2tCarriesOffsetAndLength) {
  const Pdu p = EncodeR2t({0x0001000000000000ULL, 9, 0x77, 2, 65536, 262144}, {5, 6, 7});
  EXPECT_EQ(p.bhs[0], 0x31);
  EXPECT_EQ(p.bhs[1], 0x80);
  EXPECT_EQ(p.Lun(), 0x0001000000000000ULL);
  EXPECT_EQ(p.Itt(), 9u);
  EXPECT_EQ(LoadBe32(p.bhs, 20), 0x77u);
  EXPECT_EQ(LoadBe32(p.bhs, 36), 2u);
  EXPECT_EQ(LoadBe32(p.bhs, 40), 65536u);
  EXPECT_EQ(LoadBe32(p.bhs, 44), 262144u);
}

TEST(Pdu, LoginResponseCarriesStatusAndStages) {
  LoginResponse r;
  r.transit = true;
  r.csg = 1;
  r.nsg = 3;
  r.isid = 0x80123456789aULL;
  r.tsih = 7;
  r.itt = 3;
  r.status_class = 2;
  r.status_detail = 1;
  const Pdu p = EncodeLoginResponse(r, {}, {1, 2, 3});
  EXPECT_EQ(p.bhs[0], 0x23);
  EXPECT_EQ(p.bhs[1], 0x87);
  EXPECT_EQ(p.bhs[8], 0x80);
  EXPECT_EQ(p.bhs[13], 0x9a);
  EXPECT_EQ(LoadBe16(p.bhs, 14), 7);
  EXPECT_EQ(p.bhs[36], 2);
  EXPECT_EQ(p.bhs[37], 1);
}

TEST(Pdu, RejectCarriesRejectedHeader) {
  const Pdu bad = WriteCommand();
  const Pdu p = EncodeReject(RejectReason::kProtocolError, bad.bhs, {1, 2, 3});
  EXPECT_EQ(p.bhs[0], 0x3f);
  EXPECT_EQ(p.bhs[2], 0x04);
  EXPECT_EQ(p.Itt(), kReservedTag);
  ASSERT_EQ(p.data.size(), 48u);
  EXPECT_EQ(p.data[0], 0x41);
}

TEST(Pdu, NopInPingHasReservedItt) {
  const Pdu p = EncodeNopIn(0, kReservedTag, 0x1234, {}, {4, 5, 6});
  EXPECT_EQ(p.bhs[0], 0x20);
  EXPECT_EQ(p.Itt(), kReservedTag);
  EXPECT_EQ(LoadBe32(p.bhs, 20), 0x1234u);
}

}  // namespace
}  // namespace untorn::protocol
