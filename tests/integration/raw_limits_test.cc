// untornd's limits against raw-socket clients: login and idle timeouts, sessions, connections,
// outstanding commands and the buffer budget. The newcomer is refused, never the established.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "raw_test_util.h"

namespace untorn::testing {
namespace {

// The largest (last) value of a buffer sysctl: "min default max" ("net/ipv4/tcp_rmem") or a
// single value ("net/core/wmem_max").
size_t SysctlMax(const std::string& name) {
  std::ifstream f("/proc/sys/" + name);
  size_t v = 0, last = 0;
  while (f >> v) last = v;
  return last != 0 ? last : size_t{32} << 20;
}

// The most untornd's socket to a client can hold: autotuned up to tcp_wmem's maximum, or the
// SO_SNDBUF it fixes, which the kernel doubles from net.core.wmem_max.
size_t SendBufferMax() {
  return std::max(SysctlMax("net/ipv4/tcp_wmem"), 2 * SysctlMax("net/core/wmem_max"));
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

// An initiator that sends without ever reading its answers (8 KiB NOP-Out pings here) is held
// back by TCP once about 8 MiB of answers are queued for it, instead of growing the daemon's
// memory without bound, and is closed once it has read nothing for nop_timeout_seconds. Other
// sessions are served meanwhile.
TEST(RawProtocol, InitiatorThatNeverReadsIsHeldBackThenClosed) {
  UntorndProcess d(WithLimits("\"nop_timeout_seconds\": 3"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  // What untornd may take from a client that never reads: its 8 MiB output queue, plus what
  // the four socket buffers between them can hold (both directions autotune up to these).
  const size_t most = (size_t{8} << 20) + 2 * (SysctlMax("net/ipv4/tcp_rmem") + SendBufferMax());
  // Twice that in pings with 8 KiB data each, all immediate: one framed, then copied with its
  // ITT changed (no digests here). Framing each one took 7 s in a TSan build, longer than the
  // keep-alive lets a logged-in initiator stay silent.
  Pdu p;
  p.bhs[0] = 0x40;  // immediate NOP-Out
  p.bhs[1] = 0x80;
  protocol::StoreBe32(p.bhs, 20, protocol::kReservedTag);
  protocol::StoreBe32(p.bhs, 24, c.next_cmd_sn());
  p.data.assign(8192, 0x5a);
  const std::vector<uint8_t> ping = c.Frame(p);
  const size_t count = std::max<size_t>(20000, 2 * most / 8192);
  std::vector<uint8_t> pings(count * ping.size());
  for (size_t i = 0; i < count; ++i) {
    const protocol::MutableBytes at(pings.data() + i * ping.size(), ping.size());
    std::copy(ping.begin(), ping.end(), at.begin());
    protocol::StoreBe32(at, 16, static_cast<uint32_t>(0x1000 + i));  // ITT: answer wanted
  }
  // Until untornd stops taking them (it is held back), not for a fixed time: a slow build (TSan)
  // may take longer than a few seconds to queue 8 MiB of answers. Then, still reading nothing,
  // for longer than nop_timeout_seconds and its 1 s check: untornd must close it meanwhile.
  size_t sent = c.SendFor(pings, 30000, 2000);
  sent += c.SendFor(std::span<const uint8_t>(pings).subspan(sent), 5000);
  EXPECT_LT(sent, most) << "sent " << sent << " of " << pings.size();
  EXPECT_GT(sent, size_t{8} << 20);
  EXPECT_TRUE(good.Works());
  EXPECT_TRUE(c.ClosedWithin(8000));
  EXPECT_NE(d.Log().find("stopped reading its responses"), std::string::npos) << d.Log();
  EXPECT_TRUE(good.Works());
}

// Large reads are sent from the data file's mapping, which keeps their blocks locked against
// writes until sent. An initiator that asks for many of them and reads none must not hold the
// blocks for as long as it does not read: another session's write of the same blocks completes
// meanwhile, and each read still returns the blocks as they were before or after it, whole.
TEST(RawProtocol, InitiatorNotReadingItsLargeReadsDoesNotHoldWritersOfTheBlocks) {
  UntorndProcess d(WithLimits("\"nop_timeout_seconds\": 120"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander writer(d);
  constexpr uint32_t kBlocks = 2048;  // 1 MiB
  ASSERT_EQ(writer.WriteStatus(kBlocks, 0xa5), SCSI_STATUS_GOOD);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"MaxRecvDataSegmentLength", "262144"}}));
  // More data-in than the sockets between us can hold, plus untornd's 8 MiB output queue.
  const size_t sockets = SendBufferMax() + SysctlMax("net/ipv4/tcp_rmem");
  const uint32_t reads = static_cast<uint32_t>(sockets >> 20) + 12;
  std::vector<uint8_t> commands;
  for (uint32_t i = 0; i < reads; ++i) {
    const auto bytes = c.Frame(
        CommandPdu(0x100 + i, c.next_cmd_sn() + i, Read10(0, kBlocks), kBlocks * 512, 0xc0));
    commands.insert(commands.end(), bytes.begin(), bytes.end());
  }
  ASSERT_EQ(c.SendFor(commands, 10000), commands.size());
  // Wait (bounded) until more has been read than the sockets hold: the rest waits in untornd.
  const std::string counter =
      "untorn_read_bytes_total{lun=\"0\",target=\"" + std::string(kTargetIqn) + "\"} ";
  const uint64_t enough = sockets + (uint64_t{2} << 20);  // only these reads read anything
  const auto read_bytes = [&] {
    const std::string m = d.Metrics();
    const size_t at = m.find(counter);
    return at == std::string::npos ? uint64_t{0} : std::stoull(m.substr(at + counter.size()));
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (read_bytes() < enough && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_GE(read_bytes(), enough) << d.Log();
  // The write needs every one of those blocks: it completes though nothing is read.
  EXPECT_EQ(writer.WriteStatus(kBlocks, 0x5b), SCSI_STATUS_GOOD);
  // Now the reads: each all of the old bytes or all of the new.
  std::map<uint32_t, std::vector<uint8_t>> data;
  uint32_t good = 0;
  while (good < reads) {
    auto p = c.Receive(10000);
    ASSERT_TRUE(p) << "after " << good << " of " << reads << " reads";
    if (p->RawOpcode() != 0x25) continue;
    auto& d_in = data[p->Itt()];
    d_in.insert(d_in.end(), p->data.begin(), p->data.end());
    if ((p->bhs[1] & 0x01) == 0) continue;  // status comes with the last Data-In
    ASSERT_EQ(p->bhs[3], SCSI_STATUS_GOOD);
    ASSERT_EQ(d_in.size(), size_t{kBlocks} * 512);
    EXPECT_TRUE(std::all_of(d_in.begin(), d_in.end(), [&](uint8_t b) { return b == d_in[0]; }))
        << "read " << p->Itt() << " is torn";
    EXPECT_TRUE(d_in[0] == 0xa5 || d_in[0] == 0x5b);
    ++good;
  }
}

// SIGTERM while initiators keep commands coming: every connection closes and untornd exits 0,
// however a read was placed when its connection closed.
TEST(RawProtocol, StopWhileInitiatorsSendCommandsExitsCleanly) {
  for (int round = 0; round < 5; ++round) {
    UntorndProcess d(DefaultConfig());
    ASSERT_TRUE(d.ok()) << d.Log();
    std::vector<std::unique_ptr<RawClient>> clients;
    std::vector<std::vector<uint8_t>> bursts;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(std::make_unique<RawClient>(d.port()));
      ASSERT_TRUE(clients.back()->Login(kTargetIqn, {}));
      std::vector<uint8_t> burst;
      for (uint32_t k = 0; k < 4000; ++k) {  // TEST UNIT READY, immediate
        const auto bytes = clients.back()->Frame(CommandPdu(
            0x100 + k, clients.back()->next_cmd_sn(), std::vector<uint8_t>(6, 0), 0, 0x80, true));
        burst.insert(burst.end(), bytes.begin(), bytes.end());
      }
      bursts.push_back(std::move(burst));
    }
    std::vector<std::thread> senders;
    for (size_t i = 0; i < clients.size(); ++i) {
      senders.emplace_back([&, i] { (void)clients[i]->SendFor(bursts[i], 3000); });
    }
    EXPECT_EQ(d.Stop(), 0) << "round " << round;
    for (auto& t : senders) t.join();
  }
}

}  // namespace
}  // namespace untorn::testing
