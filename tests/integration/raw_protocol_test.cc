// untornd against a raw-socket initiator: digests and malformed PDUs on every path (framing,
// opcodes, AHS, CmdSN, Data-Out, text keys), each time checking the exact reaction and that a
// well-behaved session on the same daemon goes on.
#include <gtest/gtest.h>

#include <set>

#include "raw_test_util.h"

namespace untorn::testing {
namespace {

TEST(RawProtocol, DataDigestsProtectWritesAndReads) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, DigestsAndImmediateData()));
  std::vector<uint8_t> data(4096);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13);
  auto w = c.Scsi(Write10(100, 8), 4096, false, true, data);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->RawOpcode(), 0x21);
  EXPECT_EQ(w->bhs[3], 0x00);
  auto r = c.Scsi(Read10(100, 8), 4096, true, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data, data);
  EXPECT_FALSE(c.digest_error());
}

TEST(RawProtocol, BadDataDigestIsRejectedAndEndsTheConnection) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"HeaderDigest", "CRC32C"}, {"DataDigest", "CRC32C"}}));
  auto r = c.Scsi(Write10(0, 1), 512, false, true, std::vector<uint8_t>(512, 1), true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x3f);  // Reject
  EXPECT_EQ(r->bhs[2], 0x02);       // data digest error
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

TEST(RawProtocol, OversizedDataSegmentClosesBeforeAllocating) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  std::vector<uint8_t> bhs(48, 0);
  bhs[0] = 0x43;
  bhs[5] = 0xff;  // DataSegmentLength 16 MiB - 1 during login (limit 8192)
  bhs[6] = 0xff;
  bhs[7] = 0xff;
  c.SendRaw(bhs);
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

TEST(RawProtocol, UnknownOpcodeAndSnackAreRejected) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  Pdu p;
  p.bhs[0] = 0x1c;  // no such initiator opcode
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x3f);
  EXPECT_EQ(r->bhs[2], 0x05);  // command not supported
  Pdu snack;
  snack.bhs[0] = 0x10;
  c.Send(snack);
  r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x3f);
  EXPECT_EQ(r->bhs[2], 0x04);  // protocol error (ERL 0)
  // The session is still usable.
  auto ok = c.Scsi(Read10(0, 1), 512, true, false);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->bhs[3], 0x00);
  EXPECT_TRUE(good.Works());
}

TEST(RawProtocol, TextWithContinueBitAndNoDataIsAnsweredNotCrashed) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  Pdu t;
  t.bhs[0] = 0x44;  // immediate Text
  t.bhs[1] = 0x40;  // C, no data
  protocol::StoreBe32(t.bhs, 16, 77);
  protocol::StoreBe32(t.bhs, 20, protocol::kReservedTag);
  protocol::StoreBe32(t.bhs, 24, c.next_cmd_sn());
  c.Send(t);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x24);
  EXPECT_TRUE(good.Works());
}

TEST(RawProtocol, CmdSnOutsideTheWindowIsIgnored) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  c.Send(CommandPdu(5, c.next_cmd_sn() + 100000, std::vector<uint8_t>(6, 0), 0));  // > MaxCmdSN
  EXPECT_FALSE(c.Receive(500));                                    // silently dropped
  auto ok = c.Scsi(std::vector<uint8_t>(16, 0), 0, false, false);  // TEST UNIT READY in window
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_TRUE(good.Works());
}

// RFC 7143 §11.5.1 a: ABORT TASK naming a CmdSN that has not arrived makes it count as
// received, so the commands queued behind that gap run, and the command, if it comes late, is
// dropped.
TEST(RawProtocol, AbortTaskOfACommandNotYetReceivedFillsItsCmdSnGap) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  const uint32_t lost = c.next_cmd_sn();
  const std::vector<uint8_t> tur(6, 0);
  c.Send(CommandPdu(0x200, lost + 1, tur, 0));  // held: `lost` has not come
  EXPECT_FALSE(c.Receive(300));
  Pdu tmf;
  tmf.bhs[0] = 0x02 | 0x40;  // Task Management Function Request, immediate
  tmf.bhs[1] = 0x80 | 0x01;  // ABORT TASK
  protocol::StoreBe32(tmf.bhs, 16, 0x300);     // ITT
  protocol::StoreBe32(tmf.bhs, 20, 0x100);     // Referenced Task Tag (never sent)
  protocol::StoreBe32(tmf.bhs, 24, lost + 2);  // CmdSN
  protocol::StoreBe32(tmf.bhs, 32, lost);      // RefCmdSN
  c.Send(tmf);
  std::set<uint32_t> answered;
  for (int i = 0; i < 2; ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() == 0x22) {
      EXPECT_EQ(r->bhs[2], 0x00);  // Function complete
    } else {
      ASSERT_EQ(r->RawOpcode(), 0x21);
      EXPECT_EQ(r->bhs[3], 0x00);
    }
    answered.insert(r->Field32(16));
  }
  EXPECT_EQ(answered, (std::set<uint32_t>{0x200, 0x300}));
  c.Send(CommandPdu(0x100, lost, tur, 0));  // the aborted command, late: below ExpCmdSN
  EXPECT_FALSE(c.Receive(300));
  ExpectTestUnitReadyGood(c, 0x201, lost + 2);
}

TEST(RawProtocol, DataOutForAnUnknownTaskIsIgnored) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  c.Send(DataOutPdu(0xdead, 0x1234, 0, 0, std::vector<uint8_t>(512, 9)));
  auto ok = c.Scsi(std::vector<uint8_t>(16, 0), 0, false, false);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_EQ(ok->bhs[3], 0x00);
  EXPECT_TRUE(good.Works());
}

// Data-Out reaching past the command's expected length: Reject (protocol error) and the task
// ends with ABORTED COMMAND / TOO MUCH WRITE DATA (4Bh/02h); the session goes on.
TEST(RawProtocol, DataOutPastTheExpectedLengthEndsTheTaskNotTheSession) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "No"}}));
  c.Send(CommandPdu(0x51, c.next_cmd_sn(), Write10(0, 1), 512, 0xa0));  // one block
  // Twice the expected length, unsolicited.
  c.Send(DataOutPdu(0x51, protocol::kReservedTag, 0, 0, std::vector<uint8_t>(1024, 0x66)));
  ASSERT_NO_FATAL_FAILURE(ExpectTaskAbortedAfterReject(c, 0x02));  // TOO MUCH WRITE DATA
  // The session goes on: TEST UNIT READY with the next CmdSN (the WRITE above used one).
  ASSERT_NO_FATAL_FAILURE(ExpectTestUnitReadyGood(c, 0x52, c.next_cmd_sn() + 1));
  EXPECT_TRUE(good.Works());
}

// A data segment larger than the MaxRecvDataSegmentLength the target declared closes the
// connection before the target reads (or allocates for) it.
TEST(RawProtocol, DataSegmentOverTheNegotiatedSizeClosesTheConnection) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  std::vector<uint8_t> bhs(48, 0);
  bhs[0] = 0x40;                                // immediate NOP-Out
  protocol::StoreBe24(bhs, 5, (1u << 24) - 4);  // far over 262144
  protocol::StoreBe32(bhs, 16, 3);
  protocol::StoreBe32(bhs, 20, protocol::kReservedTag);
  c.SendRaw(bhs);
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

// A Text Request continued (C bit) past the 64 KiB bound on one key set: Reject (protocol
// error), and the session goes on with a fresh request.
TEST(RawProtocol, TextRequestOverflowingAcrossContinuedPdusIsRejected) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  uint32_t sn = c.next_cmd_sn();
  uint32_t ttt = protocol::kReservedTag;
  std::vector<uint8_t> chunk = {'X', '-', 'l', 'o', 'n', 'g', '='};
  chunk.resize(16384, 'v');
  std::optional<Pdu> r;
  int pdus = 0;
  for (; pdus < 8; ++pdus) {
    c.Send(TextPdu(0x81, ttt, sn++, true, chunk));
    r = c.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() != 0x24) break;
    EXPECT_EQ(r->bhs[1] & 0xc0, 0);  // neither F nor C: send the rest
    ttt = protocol::LoadBe32(r->bhs, 20);
    chunk.assign(16384, 'v');  // the value goes on across PDUs
  }
  ASSERT_EQ(r->RawOpcode(), 0x3f);
  EXPECT_EQ(r->bhs[2], 0x04);  // protocol error
  EXPECT_EQ(pdus, 4);          // the 5th PDU took it past 65536 bytes
  c.Send(TextPdu(0x82, protocol::kReservedTag, sn++, false,
                 protocol::EncodeTextKeys({{"SendTargets", ""}})));
  r = c.Receive();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->RawOpcode(), 0x24);
  const std::string answer(r->data.begin(), r->data.end());
  EXPECT_NE(answer.find(kTargetIqn), std::string::npos);
  EXPECT_TRUE(good.Works());
}

// An AHS whose own AHSLength runs past TotalAHSLength is a PDU field that lies: Reject (invalid
// PDU field) for that command, and the session goes on.
TEST(RawProtocol, AhsLengthPastTheHeaderIsRejectedAndTheSessionGoesOn) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  const uint32_t sn = c.next_cmd_sn();
  Pdu p = CommandPdu(0x91, sn, std::vector<uint8_t>(6, 0), 0);
  p.ahs = {0x00, 0x64, 0x01, 0x00, 0, 0, 0, 0};  // Extended CDB of 100 bytes in 8
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x3f);
  EXPECT_EQ(r->bhs[2], 0x09);  // invalid PDU field
  ASSERT_NO_FATAL_FAILURE(ExpectTestUnitReadyGood(c, 0x92, sn + 1));
  EXPECT_TRUE(good.Works());
}

// The largest AHS (TotalAHSLength 255 words) on a PDU that has no use for one is read and
// skipped, covered by the header digest: the framing after it stays in step.
TEST(RawProtocol, LargestAhsIsReadSkippedAndCoveredByTheHeaderDigest) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"HeaderDigest", "CRC32C"}}));
  Pdu p;
  p.bhs[0] = 0x40;  // immediate NOP-Out asking for an answer
  p.bhs[1] = 0x80;
  protocol::StoreBe32(p.bhs, 16, 0xa1);
  protocol::StoreBe32(p.bhs, 20, protocol::kReservedTag);
  protocol::StoreBe32(p.bhs, 24, c.next_cmd_sn());
  p.ahs.assign(255 * 4, 0);
  p.ahs[0] = 0x03;
  p.ahs[1] = 0xf9;  // AHSLength 1017: fills the 1020 bytes
  p.ahs[2] = 0x02;  // bidirectional read length type, meaningless here
  p.data = {'p', 'i', 'n', 'g'};
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x20);  // NOP-In
  EXPECT_EQ(protocol::LoadBe32(r->bhs, 16), 0xa1u);
  EXPECT_EQ(std::string(r->data.begin(), r->data.end()), "ping");
  EXPECT_FALSE(c.digest_error());
  auto ok = c.Scsi(std::vector<uint8_t>(6, 0), 0, false, false);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_EQ(ok->bhs[3], 0x00);
  EXPECT_TRUE(good.Works());
}

// DataPDUInOrder=Yes: a Data-Out that overlays bytes already sent for the same R2T is a data
// offset error. Reject (protocol error), the task ends with ABORTED COMMAND 4Bh/05h, and the
// session goes on.
TEST(RawProtocol, DataOutOverlayingItsR2tEndsTheTaskNotTheSession) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "No"}, {"InitialR2T", "Yes"}}));
  const uint32_t sn = c.next_cmd_sn();
  c.Send(CommandPdu(0xb1, sn, Write10(0, 2), 1024, 0xa0));
  auto r2t = c.Receive();
  ASSERT_TRUE(r2t);
  ASSERT_EQ(r2t->RawOpcode(), 0x31);
  const uint32_t ttt = protocol::LoadBe32(r2t->bhs, 20);
  Pdu first = DataOutPdu(0xb1, ttt, 0, 0, std::vector<uint8_t>(512, 0x11));
  first.bhs[1] = 0x00;  // not final: more of this R2T follows
  c.Send(first);
  c.Send(DataOutPdu(0xb1, ttt, 1, 0, std::vector<uint8_t>(512, 0x22)));  // offset 0 again
  ASSERT_NO_FATAL_FAILURE(ExpectTaskAbortedAfterReject(c, 0x05));        // DATA OFFSET ERROR
  ASSERT_NO_FATAL_FAILURE(ExpectTestUnitReadyGood(c, 0xb2, sn + 1));
  EXPECT_TRUE(good.Works());
}

// Framing does not depend on how the bytes arrive: five writes (512 B to 48 KiB of immediate
// data, the largest read straight into its buffer) in one TCP send, then a write and a read
// dribbled one byte per send, with both digests on. Each write is answered GOOD and the read
// returns every byte written.
TEST(RawProtocol, PdusCoalescedInOneSendOrDribbledByteByByteFrameAlike) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, DigestsAndImmediateData()));
  auto pattern = [](size_t bytes, uint32_t seed) {
    std::vector<uint8_t> p(bytes);
    for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(i * 7 + seed * 31 + (i >> 9));
    return p;
  };
  const std::vector<uint16_t> blocks = {1, 8, 96, 3, 17};
  std::vector<uint8_t> burst, expected;
  uint32_t sn = c.next_cmd_sn(), lba = 0;
  for (uint32_t i = 0; i < blocks.size(); ++i) {
    Pdu w = CommandPdu(0x100 + i, sn++, Write10(lba, blocks[i]), blocks[i] * 512u, 0xa0);
    w.data = pattern(blocks[i] * 512u, i);
    expected.insert(expected.end(), w.data.begin(), w.data.end());
    const auto bytes = c.Frame(w);
    burst.insert(burst.end(), bytes.begin(), bytes.end());
    lba += blocks[i];
  }
  c.SendRaw(burst);
  std::set<uint32_t> answered;
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->RawOpcode(), 0x21);
    EXPECT_EQ(r->bhs[3], 0x00);
    answered.insert(r->Itt());
  }
  EXPECT_EQ(answered.size(), blocks.size());

  auto dribble = [&c](const Pdu& p) {
    for (uint8_t b : c.Frame(p)) c.SendRaw({b});
  };
  Pdu w = CommandPdu(0x200, sn++, Write10(0, 1), 512, 0xa0);
  w.data = pattern(512, 99);
  std::copy(w.data.begin(), w.data.end(), expected.begin());
  dribble(w);
  auto wr = c.Receive();
  ASSERT_TRUE(wr);
  ASSERT_EQ(wr->RawOpcode(), 0x21);
  EXPECT_EQ(wr->bhs[3], 0x00);

  dribble(CommandPdu(0x201, sn++, Read10(0, static_cast<uint16_t>(lba)), lba * 512, 0xc0));
  std::vector<uint8_t> in;
  bool done = false;
  while (!done) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() == 0x25) {
      EXPECT_EQ(protocol::LoadBe32(r->bhs, 40), in.size());  // buffer offset
      in.insert(in.end(), r->data.begin(), r->data.end());
      done = (r->bhs[1] & 0x01) != 0;  // status in the last Data-In
    } else {
      ASSERT_EQ(r->RawOpcode(), 0x21);
      EXPECT_EQ(r->bhs[3], 0x00);
      done = true;
    }
  }
  EXPECT_EQ(in, expected);
  EXPECT_FALSE(c.digest_error());
}

}  // namespace
}  // namespace untorn::testing
