// Protocol-correct clients that try to deny service to others (docs/hardening.md): each attack
// runs against a bystander session, from another loopback address, that must keep working.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "raw_test_util.h"

namespace untorn::testing {
namespace {

constexpr const char* kAttacker = "127.0.0.2";

// A discovery login from `source`; true if it was accepted.
bool DiscoveryLogin(RawClient& c) {
  auto r = LoginStep(c, 1, 3, true,
                     {{"InitiatorName", "iqn.2026-11.org.untorn:attacker"},
                      {"SessionType", "Discovery"}});
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
  std::printf("discovery: %d admitted, %d refused; 2 more connections from the address, then "
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

}  // namespace
}  // namespace untorn::testing
