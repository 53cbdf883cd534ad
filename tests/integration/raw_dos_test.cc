// Protocol-correct clients that try to deny service to others (docs/hardening.md): each attack
// runs against a bystander session, from another loopback address, that must keep working.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "raw_test_util.h"

namespace untorn::testing {
namespace {

constexpr const char* kAttacker = "127.0.0.2";

// Seconds until the target closes `c`, or a failed expectation if it does not within 10 s.
double SecondsUntilClosed(RawClient& c, const char* what) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.ClosedWithin(10000)) << what << " did not end the connection";
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A discovery login from `source`; true if it was accepted.
bool DiscoveryLogin(RawClient& c) {
  auto r = LoginStep(
      c, 1, 3, true,
      {{"InitiatorName", "iqn.2026-11.org.untorn:attacker"}, {"SessionType", "Discovery"}});
  return LoginStatusOf(r) == 0;
}

// Discovery sessions need no credentials, so they are capped apart; and one remote address
// holds only so many connections. A host that opens discovery sessions and keeps them open,
// then opens connections and sends nothing, leaves the slots of other hosts alone.
TEST(RawProtocol, DiscoverySessionsAndOneAddressCannotTakeEverySlot) {
  UntorndProcess d(WithLimits(
      R"("max_connections": 16, "max_discovery_sessions": 4, "discovery_idle_seconds": 600,
         "max_connections_per_address": 6)"));
  ASSERT_TRUE(d.ok()) << d.Log();
  std::vector<std::unique_ptr<RawClient>> held;
  int discovery_ok = 0, discovery_refused = 0;
  for (int i = 0; i < 6; ++i) {
    auto c = std::make_unique<RawClient>(d.port(), kAttacker);
    ASSERT_TRUE(c->connected());
    if (DiscoveryLogin(*c)) {
      ++discovery_ok;
      held.push_back(std::move(c));
    } else {
      ++discovery_refused;  // 03/02; this connection is closed and its slot given back
      // Once the target has closed it, not merely answered: the slot goes back at the close.
      EXPECT_TRUE(c->ClosedWithin(5000)) << "a refused discovery login's connection stays";
    }
  }
  EXPECT_EQ(discovery_ok, 4);  // the discovery cap
  EXPECT_EQ(discovery_refused, 2);
  // The address's other slots: 4 held, so 2 more connections stay open (sending nothing, as
  // an attacker would), and the next ones are closed at accept.
  for (int i = 0; i < 2; ++i) {
    held.push_back(std::make_unique<RawClient>(d.port(), kAttacker));
    EXPECT_FALSE(held.back()->ClosedWithin(500)) << "connection " << 5 + i << " refused";
  }
  int refused = 0;
  for (int i = 0; i < 3; ++i) {
    RawClient c(d.port(), kAttacker);
    refused += c.ClosedWithin(5000);
  }
  EXPECT_EQ(refused, 3) << "connections from one address past its cap";
  // Meanwhile another host logs in and works.
  Bystander bystander(d);
  EXPECT_TRUE(bystander.Works());
  std::printf(
      "discovery: %d admitted, %d refused; 2 more connections from the address, then "
      "%d refused at accept; bystander served\n",
      discovery_ok, discovery_refused, refused);
}

// A discovery session that asks nothing is closed after discovery_idle_seconds, whether or
// not it answers pings; one that keeps asking (SendTargets) stays.
TEST(RawProtocol, IdleDiscoverySessionsAreClosed) {
  UntorndProcess d(WithLimits(R"("discovery_idle_seconds": 2)"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient idle(d.port(), kAttacker), busy(d.port(), kAttacker);
  ASSERT_TRUE(DiscoveryLogin(idle));
  ASSERT_TRUE(DiscoveryLogin(busy));
  const auto start = std::chrono::steady_clock::now();
  bool idle_closed = false, busy_alive = true;
  uint32_t itt = 0x100, cmd_sn = 0;  // CmdSN from the login's, 0
  // Bounded: 8 s; the busy session asks every 0.5 s (its answers are its keep-alive).
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(8) && !idle_closed) {
    busy.Send(TextPdu(itt++, protocol::kReservedTag, cmd_sn++, false,
                      protocol::EncodeTextKeys({{"SendTargets", "All"}})));
    auto t = busy.Receive(2000);
    busy_alive = busy_alive && t && t->RawOpcode() == 0x24;
    idle_closed = idle.ClosedWithin(500);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(idle_closed);
  EXPECT_TRUE(busy_alive);
  EXPECT_TRUE(bystander.Works());
  std::printf("idle discovery session closed after %.1f s (limit 2 s); the asking one stayed\n",
              seconds);
}

// A session that sends WRITEs and never answers their R2Ts holds their buffers. It may take only
// its share of the daemon's budget (further commands: BUSY), so other sessions' READs and
// WRITEs go on; and after data_out_timeout_seconds without Data-Out its connection is ended,
// giving everything back. Before, 8 such WRITEs of 4 MiB took the whole 32 MiB budget, and
// every other session got BUSY until the attacker left.
TEST(RawProtocol, WithheldDataOutTakesOnlyItsShareAndTimesOut) {
  UntorndProcess d(WithLimits(
      R"("max_buffer_megabytes": 32, "max_session_buffer_megabytes": 16,
         "data_out_timeout_seconds": 2)"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient attacker(d.port(), kAttacker);
  ASSERT_TRUE(attacker.Login(kTargetIqn, {{"InitialR2T", "Yes"}, {"ImmediateData", "No"}}));
  constexpr uint32_t kBytes = 4 << 20;
  int r2ts = 0, busy = 0;
  for (uint32_t i = 0; i < 8; ++i) {
    attacker.Send(CommandPdu(0x200 + i, attacker.next_cmd_sn() + i,
                             Write10(i * (kBytes / 512), kBytes / 512), kBytes, 0xa0));
    auto r = attacker.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() == 0x31) ++r2ts;                       // R2T: never answered
    if (r->RawOpcode() == 0x21 && r->bhs[3] == 0x08) ++busy;  // BUSY: past its share
  }
  EXPECT_EQ(r2ts, 4);
  EXPECT_EQ(busy, 4);
  // The others are served while the attacker holds its share.
  EXPECT_EQ(bystander.WriteStatus(2048, 0x3c), 0) << "bystander's 1 MiB WRITE";
  EXPECT_EQ(bystander.ReadStatus(2048), 0) << "bystander's 1 MiB READ";
  const double seconds = SecondsUntilClosed(attacker, "withheld Data-Out");
  EXPECT_TRUE(bystander.Works());
  std::printf(
      "withheld Data-Out: %d WRITEs of 4 MiB held (R2T), %d BUSY past the 16 MiB share; "
      "bystander's 1 MiB WRITE and READ GOOD meanwhile; connection ended %.1f s later "
      "(timeout 2 s)\n",
      r2ts, busy, seconds);
}

// Commands parked behind a CmdSN gap hold their data: it is charged to the session's share
// (past it, they are dropped as if outside the window), and a gap that lasts
// cmdsn_gap_timeout_seconds ends the connection. Before, parked data was not charged at all
// and a gap lasted for ever.
TEST(RawProtocol, CommandsParkedBehindACmdSnGapAreChargedAndTimeOut) {
  UntorndProcess d(WithLimits(
      R"("max_buffer_megabytes": 32, "max_session_buffer_megabytes": 4,
         "cmdsn_gap_timeout_seconds": 4)"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient attacker(d.port(), kAttacker);
  ASSERT_TRUE(attacker.Login(kTargetIqn, {{"InitialR2T", "No"},
                                          {"ImmediateData", "Yes"},
                                          {"FirstBurstLength", "262144"},
                                          {"MaxBurstLength", "262144"},
                                          {"MaxRecvDataSegmentLength", "262144"}}));
  // CmdSN next+1 onwards, next never sent: 32 WRITEs of 256 KiB parked (8 MiB offered, twice
  // the share; sent well within the gap timeout even in a sanitizer build).
  const std::vector<uint8_t> data(262144, 0x77);
  for (uint32_t i = 0; i < 32; ++i) {
    Pdu p =
        CommandPdu(0x300 + i, attacker.next_cmd_sn() + 1 + i, Write10(i * 512, 512), 262144, 0xa0);
    p.data = data;
    attacker.Send(p);
  }
  EXPECT_TRUE(bystander.Works());
  EXPECT_EQ(bystander.WriteStatus(2048, 0x3d), 0) << "bystander's 1 MiB WRITE";
  const double seconds = SecondsUntilClosed(attacker, "a CmdSN gap");
  const std::string log = d.Log();
  EXPECT_NE(log.find("held behind a gap over the buffer budget"), std::string::npos);
  EXPECT_NE(log.find("missing for 4 s"), std::string::npos) << log;
  EXPECT_TRUE(bystander.Works());
  std::printf(
      "CmdSN gap: 32 x 256 KiB parked, those past the 4 MiB share dropped; bystander "
      "served; connection ended %.1f s later (timeout 4 s)\n",
      seconds);
}

}  // namespace
}  // namespace untorn::testing

namespace untorn::testing {
namespace {

// The value of an unlabelled gauge in the metrics text, or -1.
long Gauge(const std::string& metrics, const std::string& name) {
  size_t at = 0;
  while ((at = metrics.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || metrics[at - 1] == '\n') return std::stol(metrics.substr(at + name.size() + 1));
    at += name.size();
  }
  return -1;
}

// A refused login's connection is gone at once: nothing of it stays to count against
// max_connections. Start() posted the login timer from the acceptor's thread while the
// connection's own thread could already have refused the login and closed it; the timer, armed
// after that, held the connection for the 15 s login timeout (in about 3 daemons of 10 here),
// so refused logins in a loop could take every slot. An initiator logged in, then another's
// login refused by the ACL: the refused connection must be gone within 2 s. Twenty daemons.
TEST(RawProtocol, ARefusedLoginLeavesNoConnectionBehind) {
  int lingered = 0;
  for (int round = 0; round < 20; ++round) {
    UntorndProcess d(DefaultConfig(R"("allowed_initiators": ["iqn.2026-11.org.untorn:x"])"));
    ASSERT_TRUE(d.ok()) << d.Log();
    LoginOptions x;
    x.initiator = "iqn.2026-11.org.untorn:x";
    std::string error;
    Context session = Login(d.portal(), kTargetIqn, x, &error);
    ASSERT_TRUE(session) << error;
    LoginOptions y;
    y.initiator = "iqn.2026-11.org.untorn:y";
    EXPECT_FALSE(Login(d.portal(), kTargetIqn, y, &error));
    long open = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < deadline) {
      open = Gauge(d.Metrics(), "untorn_connections");
      if (open == 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (open != 1) ++lingered;
  }
  EXPECT_EQ(lingered, 0) << "a refused login's connection outlived it in " << lingered << " of 20";
}

}  // namespace
}  // namespace untorn::testing
