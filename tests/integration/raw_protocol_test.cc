// untornd against a raw-socket initiator: data digests, target-initiated NOP-In, and hostile
// input on every path, each time checking that a well-behaved session on the same daemon goes on.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "iscsi_client.h"
#include "protocol/chap.h"
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

// A SCSI Command PDU for LUN 0. `flags`: 0x80 F, 0x40 R, 0x20 W.
Pdu CommandPdu(uint32_t itt, uint32_t cmd_sn, const std::vector<uint8_t>& cdb, uint32_t edtl,
               uint8_t flags = 0x80, bool immediate = false) {
  Pdu p;
  p.bhs[0] = static_cast<uint8_t>(0x01 | (immediate ? 0x40 : 0));
  p.bhs[1] = flags;
  protocol::StoreBe32(p.bhs, 16, itt);
  protocol::StoreBe32(p.bhs, 20, edtl);
  protocol::StoreBe32(p.bhs, 24, cmd_sn);
  std::copy_n(cdb.begin(), std::min<size_t>(cdb.size(), 16), p.bhs.begin() + 32);
  return p;
}

// A Data-Out PDU for LUN 0 (TTT reserved: unsolicited).
Pdu DataOutPdu(uint32_t itt, uint32_t ttt, uint32_t data_sn, uint32_t offset,
               std::vector<uint8_t> data) {
  Pdu p;
  p.bhs[0] = 0x05;
  p.bhs[1] = 0x80;
  protocol::StoreBe32(p.bhs, 16, itt);
  protocol::StoreBe32(p.bhs, 20, ttt);
  protocol::StoreBe32(p.bhs, 36, data_sn);
  protocol::StoreBe32(p.bhs, 40, offset);
  p.data = std::move(data);
  return p;
}

// A Text Request; `cont` sets the C bit (more of the request follows).
Pdu TextPdu(uint32_t itt, uint32_t ttt, uint32_t cmd_sn, bool cont, std::vector<uint8_t> data) {
  Pdu p;
  p.bhs[0] = 0x04;
  p.bhs[1] = cont ? 0x40 : 0x80;
  protocol::StoreBe32(p.bhs, 16, itt);
  protocol::StoreBe32(p.bhs, 20, ttt);
  protocol::StoreBe32(p.bhs, 24, cmd_sn);
  p.data = std::move(data);
  return p;
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
  // SCSI status of a READ(10) of `blocks` 512-byte blocks at 0, or -1 if none came back.
  [[nodiscard]] int ReadStatus(uint32_t blocks) {
    if (!c_) return -1;
    Task t(iscsi_read10_sync(c_.get(), 0, 0, blocks * 512, 512, 0, 0, 0, 0, 0));
    return t ? t->status : -1;
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
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "No"}}));
  c.Send(CommandPdu(0x51, c.next_cmd_sn(), Write10(0, 1), 512, 0xa0));  // one block
  // Twice the expected length, unsolicited.
  c.Send(DataOutPdu(0x51, protocol::kReservedTag, 0, 0, std::vector<uint8_t>(1024, 0x66)));
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
  c.Send(CommandPdu(0x52, c.next_cmd_sn() + 1, std::vector<uint8_t>(6, 0), 0));
  auto ok = c.Receive();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_EQ(ok->bhs[3], 0x00);
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

// At max_outstanding_commands tasks in the session, one more is answered TASK SET FULL; the
// tasks already there are not disturbed and complete once their data arrives.
TEST(RawProtocol, OutstandingCommandLimitAnswersTaskSetFull) {
  UntorndProcess d(WithLimits("\"max_outstanding_commands\": 2"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "No"}, {"InitialR2T", "Yes"}}));
  const uint32_t sn = c.next_cmd_sn();
  c.Send(CommandPdu(0x61, sn, Write10(0, 1), 512, 0xa0));      // waits for its data (R2T)
  c.Send(CommandPdu(0x62, sn + 1, Write10(8, 1), 512, 0xa0));  // likewise
  std::vector<uint32_t> r2t_ttt;
  for (int i = 0; i < 2; ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->RawOpcode(), 0x31);  // R2T
    r2t_ttt.push_back(protocol::LoadBe32(r->bhs, 20));
  }
  c.Send(CommandPdu(0x63, sn + 2, std::vector<uint8_t>(6, 0), 0, 0x80, true));  // immediate TUR
  auto full = c.Receive();
  ASSERT_TRUE(full);
  EXPECT_EQ(full->RawOpcode(), 0x21);
  EXPECT_EQ(protocol::LoadBe32(full->bhs, 16), 0x63u);
  EXPECT_EQ(full->bhs[3], 0x28);  // TASK SET FULL
  for (int i = 0; i < 2; ++i) {   // the first two complete once their data arrives
    c.Send(DataOutPdu(0x61 + i, r2t_ttt[i], 0, 0, std::vector<uint8_t>(512, 0x3c)));
    auto r = c.Receive();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->RawOpcode(), 0x21);
    EXPECT_EQ(r->bhs[3], 0x00);
  }
  EXPECT_TRUE(good.Works());
}

// At the daemon-wide buffer budget (limits.max_buffer_megabytes) a command that needs a buffer
// is answered BUSY; one needing none still runs; the session holding the budget completes, and
// the refused command succeeds when retried.
TEST(RawProtocol, BufferBudgetAnswersBusyAndTheHolderCompletes) {
  UntorndProcess d(WithLimits("\"max_buffer_megabytes\": 1"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander other(d);
  RawClient holder(d.port());
  ASSERT_TRUE(holder.Login(kTargetIqn, {{"ImmediateData", "No"}, {"InitialR2T", "Yes"}}));
  constexpr uint32_t kBytes = 1 << 20;  // the whole budget
  holder.Send(CommandPdu(0x71, holder.next_cmd_sn(), Write10(0, kBytes / 512), kBytes, 0xa0));
  auto r2t = holder.Receive();  // the target holds the write's buffer from here on
  ASSERT_TRUE(r2t);
  ASSERT_EQ(r2t->RawOpcode(), 0x31);

  EXPECT_EQ(other.ReadStatus(8), SCSI_STATUS_BUSY);
  EXPECT_TRUE(other.Works());  // TEST UNIT READY holds no buffer

  // The holder sends its data, R2T by R2T, and completes.
  std::optional<Pdu> r = r2t;
  for (int i = 0; i < 64 && r && r->RawOpcode() == 0x31; ++i) {
    const uint32_t offset = protocol::LoadBe32(r->bhs, 40);
    const uint32_t length = protocol::LoadBe32(r->bhs, 44);
    holder.Send(DataOutPdu(0x71, protocol::LoadBe32(r->bhs, 20), 0, offset,
                           std::vector<uint8_t>(length, 0x5a)));
    r = holder.Receive();
  }
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x21);
  EXPECT_EQ(r->bhs[3], 0x00);

  EXPECT_EQ(other.ReadStatus(8), SCSI_STATUS_GOOD);
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

// Login key data continued (C bit) past the 64 KiB bound: Login Response class 2 (initiator
// error), then the close.
TEST(RawProtocol, LoginKeysOverflowingAcrossContinuedPdusAreRefused) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  std::optional<Pdu> r;
  int pdus = 0;
  for (; pdus < 12; ++pdus) {
    Pdu p;
    p.bhs[0] = 0x43;
    p.bhs[1] = 0x44;  // C, CSG 1 (operational), NSG 0
    p.bhs[8] = 0x80;  // ISID
    protocol::StoreBe32(p.bhs, 16, 1);
    p.data.assign(8192, 'k');  // one key name that never ends
    c.Send(p);
    r = c.Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->RawOpcode(), 0x23);
    if (protocol::LoadBe16(r->bhs, 36) != 0) break;
  }
  EXPECT_EQ(r->bhs[36], 0x02);  // initiator error
  EXPECT_EQ(pdus, 8);           // the 9th PDU took it past 65536 bytes
  EXPECT_TRUE(c.ClosedWithin(5000));
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
  c.Send(CommandPdu(0x92, sn + 1, std::vector<uint8_t>(6, 0), 0));
  r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x21);
  EXPECT_EQ(r->bhs[3], 0x00);
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

// One Login Request of a raw login: stage `csg` (0 security, 1 operational) moving to `nsg`
// when `transit`; returns the Login Response, or nullopt if none came.
std::optional<Pdu> LoginStep(RawClient& c, uint8_t csg, uint8_t nsg, bool transit,
                             const protocol::KeyList& keys) {
  Pdu p;
  p.bhs[0] = 0x43;
  p.bhs[1] = static_cast<uint8_t>((transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0));
  p.bhs[8] = 0x80;  // ISID
  p.bhs[13] = 0x07;
  protocol::StoreBe32(p.bhs, 16, 1);
  p.data = protocol::EncodeTextKeys(keys);
  c.Send(p);
  auto r = c.Receive();
  if (r && r->RawOpcode() != 0x23) return std::nullopt;
  return r;
}

uint16_t LoginStatusOf(const std::optional<Pdu>& r) {
  return r ? protocol::LoadBe16(r->bhs, 36) : 0xffff;
}

std::string KeyValue(const Pdu& r, const std::string& key) {
  std::string error;
  const auto keys = protocol::ParseTextKeys(r.data, &error);
  if (keys) {
    for (const auto& k : *keys) {
      if (k.key == key) return k.value;
    }
  }
  return {};
}

// A CHAP login (MD5) as `initiator` with `secret`; returns the final Login Response status.
uint16_t ChapLogin(uint16_t port, const std::string& initiator, const std::string& target,
                   const std::string& secret) {
  RawClient c(port);
  auto r = LoginStep(c, 0, 1, false,
                     {{"InitiatorName", initiator},
                      {"TargetName", target},
                      {"SessionType", "Normal"},
                      {"AuthMethod", "CHAP"}});
  if (LoginStatusOf(r) != 0) return LoginStatusOf(r);
  r = LoginStep(c, 0, 1, false, {{"CHAP_A", "5"}});
  if (LoginStatusOf(r) != 0) return LoginStatusOf(r);
  const auto id = protocol::ParseNumber(KeyValue(*r, "CHAP_I"));
  const auto challenge = protocol::ParseBinary(KeyValue(*r, "CHAP_C"));
  if (!id || !challenge) return 0xfffe;
  const auto response = protocol::ChapResponse(5, static_cast<uint8_t>(*id), secret, *challenge);
  r = LoginStep(c, 0, 1, true, {{"CHAP_N", "alice"}, {"CHAP_R", protocol::EncodeHex(response)}});
  return LoginStatusOf(r);
}

// Each refusal carries its RFC 7143 §11.13.5 status and is logged with the peer address; the
// secret is never logged. The right secret (the same code path) logs in.
TEST(RawProtocol, LoginRefusalsCarryTheirRfcStatus) {
  UntorndProcess d(DefaultConfig(
      R"("chap": {"username": "alice", "secret": "alice-secret-123"},
         "allowed_initiators": ["iqn.2026-11.org.untorn:raw"])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  const std::string me = "iqn.2026-11.org.untorn:raw";
  EXPECT_EQ(ChapLogin(d.port(), me, "iqn.2026-11.org.untorn:nope", "alice-secret-123"), 0x0203);
  EXPECT_EQ(ChapLogin(d.port(), "iqn.2026-11.org.untorn:stranger", kTargetIqn, "alice-secret-123"),
            0x0202);
  EXPECT_EQ(ChapLogin(d.port(), me, kTargetIqn, "wrong-secret-000"), 0x0201);
  {
    RawClient skip(d.port());  // CHAP required: skipping the security stage is refused
    auto r =
        LoginStep(skip, 1, 3, true,
                  {{"InitiatorName", me}, {"TargetName", kTargetIqn}, {"SessionType", "Normal"}});
    EXPECT_EQ(LoginStatusOf(r), 0x0201);
  }
  EXPECT_EQ(ChapLogin(d.port(), me, kTargetIqn, "alice-secret-123"), 0x0000);
  const std::string log = d.Log();
  EXPECT_NE(log.find("127.0.0.1"), std::string::npos) << log;
  EXPECT_NE(log.find("stranger"), std::string::npos) << log;
  EXPECT_EQ(log.find("alice-secret-123"), std::string::npos) << log;
  EXPECT_EQ(log.find("wrong-secret-000"), std::string::npos) << log;
}

// SendTargets in a discovery session lists a target only to initiators it allows.
TEST(RawProtocol, DiscoveryShowsOnlyTargetsTheInitiatorMayLogInto) {
  UntorndProcess d(DefaultConfig(R"("allowed_initiators": ["iqn.2026-11.org.untorn:ok"])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  const auto discover = [&](const std::string& initiator) {
    RawClient c(d.port());
    auto r = LoginStep(c, 1, 3, true, {{"InitiatorName", initiator}, {"SessionType", "Discovery"}});
    if (LoginStatusOf(r) != 0) return std::string("login failed");
    c.Send(TextPdu(0x11, protocol::kReservedTag, 0, false,  // CmdSN: the login's, 0
                   protocol::EncodeTextKeys({{"SendTargets", "All"}})));
    auto t = c.Receive();
    if (!t || t->RawOpcode() != 0x24) return std::string("no text response");
    return std::string(t->data.begin(), t->data.end());
  };
  EXPECT_NE(discover("iqn.2026-11.org.untorn:ok").find(kTargetIqn), std::string::npos);
  const std::string stranger = discover("iqn.2026-11.org.untorn:stranger");
  EXPECT_EQ(stranger.find("login failed"), std::string::npos);
  EXPECT_EQ(stranger.find("no text response"), std::string::npos);
  EXPECT_EQ(stranger.find(kTargetIqn), std::string::npos) << stranger;
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
  EXPECT_EQ(response->data[2 + 13], 0x05);  // DATA OFFSET ERROR
  c.Send(CommandPdu(0xb2, sn + 1, std::vector<uint8_t>(6, 0), 0));
  auto ok = c.Receive();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_EQ(ok->bhs[3], 0x00);
  EXPECT_TRUE(good.Works());
}

}  // namespace
}  // namespace untorn::testing
