// untornd's limits against raw-socket clients: login and idle timeouts, sessions, connections,
// outstanding commands and the buffer budget. The newcomer is refused, never the established.
#include <gtest/gtest.h>

#include "raw_test_util.h"

namespace untorn::testing {
namespace {

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

}  // namespace
}  // namespace untorn::testing
