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

// DefaultConfig() with more keys in its "limits" object.
std::string WithLimits(const std::string& keys) {
  std::string config = DefaultConfig();
  const std::string nop = "\"nop_interval_seconds\": 5";
  config.replace(config.find(nop), nop.size(), nop + ", " + keys);
  return config;
}

// RFC 7143 §6.1.3: a key may be offered once per negotiation; repeating one is a protocol
// error, answered with a Login Response of class 2 (initiator error), then the close.
TEST(RawProtocol, KeyRepeatedInOneLoginRequestIsRefused) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  Pdu p;
  p.bhs[0] = 0x43;
  p.bhs[1] = 0x87;  // T, CSG 1 (operational), NSG 3
  p.bhs[8] = 0x80;  // ISID
  protocol::StoreBe32(p.bhs, 16, 1);
  p.data = protocol::EncodeTextKeys({{"InitiatorName", "iqn.2026-11.org.untorn:hostile"},
                                     {"TargetName", kTargetIqn},
                                     {"SessionType", "Normal"},
                                     {"MaxBurstLength", "65536"},
                                     {"MaxBurstLength", "262144"}});
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x23);
  EXPECT_EQ(r->bhs[36], 0x02);  // initiator error
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

// A Login Request in full feature phase is out of order: Reject (protocol error), then close.
TEST(RawProtocol, LoginRequestInFullFeaturePhaseIsRejectedAndCloses) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  Pdu p;
  p.bhs[0] = 0x43;
  p.bhs[1] = 0x87;
  protocol::StoreBe32(p.bhs, 16, 9);
  protocol::StoreBe32(p.bhs, 24, c.next_cmd_sn());
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x3f);
  EXPECT_EQ(r->bhs[2], 0x04);  // protocol error
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

// A client that sends half a BHS and stalls is dropped when the login timeout runs out; the
// established session is untouched.
TEST(RawProtocol, HalfAPduBeforeLoginIsDroppedAtTheLoginTimeout) {
  UntorndProcess d(WithLimits("\"login_timeout_seconds\": 2"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  std::vector<uint8_t> half(20, 0);
  half[0] = 0x43;
  c.SendRaw(half);
  EXPECT_TRUE(c.ClosedWithin(8000));
  EXPECT_TRUE(good.Works());
}

// At the per-target session limit a new session is refused at login with "out of resources"
// (class 3, detail 2); the established one goes on.
TEST(RawProtocol, SessionLimitRefusesTheNewcomerNotTheEstablished) {
  UntorndProcess d(WithLimits("\"max_sessions_per_target\": 1"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  ASSERT_TRUE(good.Works());
  RawClient c(d.port());
  uint16_t status = 0;
  EXPECT_FALSE(c.Login(kTargetIqn, {}, &status));
  EXPECT_EQ(status, 0x0302);
  EXPECT_TRUE(good.Works());
}

// At the connection limit a new TCP connection is closed at once; the established one goes on.
TEST(RawProtocol, ConnectionLimitClosesTheNewcomerNotTheEstablished) {
  UntorndProcess d(WithLimits("\"max_connections\": 1"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  ASSERT_TRUE(good.Works());
  RawClient c(d.port());
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

// Data-Out reaching past the command's expected length: Reject (protocol error) and the task
// ends with ABORTED COMMAND / TOO MUCH WRITE DATA (4Bh/02h); the session goes on.
TEST(RawProtocol, DataOutPastTheExpectedLengthEndsTheTaskNotTheSession) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "No"}}));
  Pdu cmd;
  cmd.bhs[0] = 0x01;
  cmd.bhs[1] = 0xa0;  // F, W
  protocol::StoreBe32(cmd.bhs, 16, 0x51);
  protocol::StoreBe32(cmd.bhs, 20, 512);  // EDTL: one block
  protocol::StoreBe32(cmd.bhs, 24, c.next_cmd_sn());
  const uint8_t write10[] = {0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0};
  std::copy(std::begin(write10), std::end(write10), cmd.bhs.begin() + 32);
  c.Send(cmd);
  Pdu out;
  out.bhs[0] = 0x05;
  out.bhs[1] = 0x80;
  protocol::StoreBe32(out.bhs, 16, 0x51);
  protocol::StoreBe32(out.bhs, 20, protocol::kReservedTag);
  out.data.assign(1024, 0x66);  // twice the expected length
  c.Send(out);
  bool rejected = false;
  std::optional<Pdu> response;
  for (int i = 0; i < 4 && !(rejected && response); ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() == 0x3f) {
      EXPECT_EQ(r->bhs[2], 0x04);  // protocol error
      rejected = true;
    } else if (r->RawOpcode() == 0x21) {
      response = r;
    }
  }
  ASSERT_TRUE(rejected);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->bhs[3], 0x02);  // CHECK CONDITION
  ASSERT_GE(response->data.size(), 2u + 14u);
  EXPECT_EQ(response->data[2 + 2] & 0x0f, 0x0b);  // ABORTED COMMAND
  EXPECT_EQ(response->data[2 + 12], 0x4b);
  EXPECT_EQ(response->data[2 + 13], 0x02);
  // The session goes on: TEST UNIT READY with the next CmdSN (the WRITE above used one).
  Pdu tur;
  tur.bhs[0] = 0x01;
  tur.bhs[1] = 0x80;
  protocol::StoreBe32(tur.bhs, 16, 0x52);
  protocol::StoreBe32(tur.bhs, 24, c.next_cmd_sn() + 1);
  c.Send(tur);
  auto ok = c.Receive();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_EQ(ok->bhs[3], 0x00);
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

// At max_outstanding_commands tasks in the session, one more is answered TASK SET FULL; the
// tasks already there are not disturbed and complete once their data arrives.
TEST(RawProtocol, OutstandingCommandLimitAnswersTaskSetFull) {
  UntorndProcess d(WithLimits("\"max_outstanding_commands\": 2"));
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "No"}, {"InitialR2T", "Yes"}}));
  const auto command = [&](uint32_t itt, uint32_t cmd_sn, bool immediate,
                           const std::vector<uint8_t>& cdb, uint32_t edtl, bool write) {
    Pdu p;
    p.bhs[0] = static_cast<uint8_t>(0x01 | (immediate ? 0x40 : 0));
    p.bhs[1] = static_cast<uint8_t>(0x80 | (write ? 0x20 : 0));
    protocol::StoreBe32(p.bhs, 16, itt);
    protocol::StoreBe32(p.bhs, 20, edtl);
    protocol::StoreBe32(p.bhs, 24, cmd_sn);
    std::copy(cdb.begin(), cdb.end(), p.bhs.begin() + 32);
    c.Send(p);
  };
  const uint32_t sn = c.next_cmd_sn();
  command(0x61, sn, false, Write10(0, 1), 512, true);      // waits for its data (R2T)
  command(0x62, sn + 1, false, Write10(8, 1), 512, true);  // likewise
  std::vector<uint32_t> r2t_ttt;
  for (int i = 0; i < 2; ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->RawOpcode(), 0x31);  // R2T
    r2t_ttt.push_back(protocol::LoadBe32(r->bhs, 20));
  }
  command(0x63, sn + 2, true, std::vector<uint8_t>(6, 0), 0, false);  // immediate TUR
  auto full = c.Receive();
  ASSERT_TRUE(full);
  EXPECT_EQ(full->RawOpcode(), 0x21);
  EXPECT_EQ(protocol::LoadBe32(full->bhs, 16), 0x63u);
  EXPECT_EQ(full->bhs[3], 0x28);  // TASK SET FULL
  for (int i = 0; i < 2; ++i) {   // the first two complete once their data arrives
    Pdu out;
    out.bhs[0] = 0x05;
    out.bhs[1] = 0x80;
    protocol::StoreBe32(out.bhs, 16, 0x61 + i);
    protocol::StoreBe32(out.bhs, 20, r2t_ttt[i]);
    out.data.assign(512, 0x3c);
    c.Send(out);
    auto r = c.Receive();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->RawOpcode(), 0x21);
    EXPECT_EQ(r->bhs[3], 0x00);
  }
}

}  // namespace
}  // namespace untorn::testing
