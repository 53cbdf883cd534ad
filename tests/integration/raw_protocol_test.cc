// untornd against a raw-socket initiator: data digests, target-initiated NOP-In, and hostile
// input on every path, each time checking that a well-behaved session on the same daemon goes on.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "iscsi_client.h"
#include "raw_client.h"
#include "untornd_process.h"

namespace untorn::testing {
namespace {

using protocol::Pdu;

std::vector<uint8_t> Write10(uint32_t lba, uint16_t blocks) {
  std::vector<uint8_t> c(16, 0);
  c[0] = 0x2a;
  protocol::StoreBe32(c, 2, lba);
  protocol::StoreBe16(c, 7, blocks);
  return c;
}
std::vector<uint8_t> Read10(uint32_t lba, uint16_t blocks) {
  auto c = Write10(lba, blocks);
  c[0] = 0x28;
  return c;
}

// A libiscsi session that must keep working while a raw client misbehaves.
class Bystander {
 public:
  explicit Bystander(const UntorndProcess& d) {
    std::string error;
    LoginOptions o;
    o.initiator = "iqn.2026-11.org.untorn:bystander";
    c_ = Login(d.portal(), kTargetIqn, o, &error);
  }
  [[nodiscard]] bool Works() {
    if (!c_) return false;
    Task t(iscsi_testunitready_sync(c_.get(), 0));
    return t && t->status == SCSI_STATUS_GOOD;
  }

 private:
  Context c_;
};

TEST(RawProtocol, DataDigestsProtectWritesAndReads) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"HeaderDigest", "CRC32C"},
                                   {"DataDigest", "CRC32C"},
                                   {"ImmediateData", "Yes"},
                                   {"InitialR2T", "No"}}));
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

TEST(RawProtocol, TargetPingsAnIdleInitiatorAndDropsASilentOne) {
  UntorndProcess d(R"({"portals":[{"listen":"127.0.0.1:3260"}],"data_dir":"@DATA_DIR@",
    "limits":{"nop_interval_seconds":1,"nop_timeout_seconds":2},
    "targets":[{"iqn":"iqn.2026-11.org.untorn:test","luns":[{"id":0,"backing_file":"a","size":"16MiB"}]}]})");
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  // The ping comes after about a second of silence; answer it once.
  auto ping = c.Receive(5000);
  ASSERT_TRUE(ping);
  ASSERT_EQ(ping->RawOpcode(), 0x20);
  EXPECT_EQ(ping->Itt(), protocol::kReservedTag);
  const uint32_t ttt = ping->Field32(20);
  EXPECT_NE(ttt, protocol::kReservedTag);
  Pdu answer;
  answer.bhs[0] = 0x40;  // immediate NOP-Out
  answer.bhs[1] = 0x80;
  protocol::StoreBe32(answer.bhs, 16, protocol::kReservedTag);
  protocol::StoreBe32(answer.bhs, 20, ttt);
  protocol::StoreBe32(answer.bhs, 24, c.next_cmd_sn());
  c.Send(answer);
  // The next ping goes unanswered: the target closes within interval + timeout (+ slack).
  auto second = c.Receive(5000);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->RawOpcode(), 0x20);
  EXPECT_TRUE(c.ClosedWithin(6000));
}

TEST(RawProtocol, NonLoginPduBeforeLoginClosesTheConnection) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  Pdu p;
  p.bhs[0] = 0x01;  // SCSI Command with no session
  c.Send(p);
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
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  Pdu p;
  p.bhs[0] = 0x01;
  p.bhs[1] = 0x80;
  protocol::StoreBe32(p.bhs, 16, 5);
  protocol::StoreBe32(p.bhs, 24, c.next_cmd_sn() + 100000);  // far beyond MaxCmdSN
  c.Send(p);
  EXPECT_FALSE(c.Receive(500));                                    // silently dropped
  auto ok = c.Scsi(std::vector<uint8_t>(16, 0), 0, false, false);  // TEST UNIT READY in window
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
}

TEST(RawProtocol, DataOutForAnUnknownTaskIsIgnored) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  Pdu p;
  p.bhs[0] = 0x05;
  p.bhs[1] = 0x80;
  protocol::StoreBe32(p.bhs, 16, 0xdead);
  protocol::StoreBe32(p.bhs, 20, 0x1234);
  p.data.assign(512, 9);
  c.Send(p);
  auto ok = c.Scsi(std::vector<uint8_t>(16, 0), 0, false, false);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_EQ(ok->bhs[3], 0x00);
}

TEST(RawProtocol, LoginWithGarbageKeysIsRefusedNotCrashed) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  Pdu p;
  p.bhs[0] = 0x43;
  p.bhs[1] = 0x87;
  p.data = {'n', 'o', '-', 'e', 'q', 'u', 'a', 'l', 's', 0};
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x23);
  EXPECT_EQ(r->bhs[36], 0x02);  // initiator error class
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

}  // namespace
}  // namespace untorn::testing
