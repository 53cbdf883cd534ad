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

// Discovery sessions need no credentials, so they are capped apart and end when idle; and one
// remote address holds only so many connections. A host that opens discovery sessions and
// keeps them open leaves the slots of normal logins, and of other hosts, alone.
TEST(RawProtocol, DiscoverySessionsAndOneAddressCannotTakeEverySlot) {
  UntorndProcess d(WithLimits(
      R"("max_connections": 16, "max_discovery_sessions": 4, "discovery_idle_seconds": 2,
         "max_connections_per_address": 6)"));
  ASSERT_TRUE(d.ok()) << d.Log();
  std::vector<std::unique_ptr<RawClient>> held;
  int discovery_ok = 0, discovery_refused = 0;
  for (int i = 0; i < 6; ++i) {
    held.push_back(std::make_unique<RawClient>(d.port(), kAttacker));
    ASSERT_TRUE(held.back()->connected());
    if (DiscoveryLogin(*held.back())) {
      ++discovery_ok;
    } else {
      ++discovery_refused;
      held.pop_back();
    }
  }
  EXPECT_EQ(discovery_ok, 4);  // the discovery cap
  EXPECT_EQ(discovery_refused, 2);
  // The address's other slots: 4 held, 2 more connections, then closed at accept.
  int more = 0;
  for (int i = 0; i < 4; ++i) {
    auto c = std::make_unique<RawClient>(d.port(), kAttacker);
    if (c->connected() && !c->ClosedWithin(300)) {
      ++more;
      held.push_back(std::move(c));
    }
  }
  EXPECT_EQ(more, 2) << "connections from one address past its cap";
  // Meanwhile another host logs in and works.
  Bystander bystander(d);
  EXPECT_TRUE(bystander.Works());
  // Discovery sessions that ask nothing end after discovery_idle_seconds, keep-alives or not.
  const auto start = std::chrono::steady_clock::now();
  int closed = 0;
  for (int i = 0; i < 4; ++i) closed += held[static_cast<size_t>(i)]->ClosedWithin(8000);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(closed, 4);
  held.clear();
  // And the cap is free again.
  bool again = false;
  for (int attempt = 0; attempt < 50 && !again; ++attempt) {  // bounded: slots come back on close
    RawClient c(d.port(), kAttacker);
    again = DiscoveryLogin(c);
  }
  EXPECT_TRUE(again);
  EXPECT_TRUE(bystander.Works());
  std::printf("discovery: %d admitted, %d refused; %d more connections from the address, then "
              "refused at accept; idle discovery sessions closed within %.1f s; bystander "
              "served throughout\n",
              discovery_ok, discovery_refused, more, seconds);
}

}  // namespace
}  // namespace untorn::testing
