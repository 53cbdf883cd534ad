// SessionRegistry: who may reinstate a live session, and which I_T nexus (and so which
// persistent reservations) a new session of an initiator port takes over.
#include <gtest/gtest.h>

#include "target/iscsi/target_runtime.h"

namespace untorn::target {
namespace {

// A registry entry needs only a live owner, never a Connection's members: each stand-in is a
// shared_ptr that owns an int and points at no Connection (the aliasing constructor).
std::shared_ptr<Connection> StandIn(std::vector<std::shared_ptr<int>>* owners) {
  owners->push_back(std::make_shared<int>(0));
  return {owners->back(), static_cast<Connection*>(nullptr)};
}

constexpr uint64_t kIsid = 0x800000000007;
constexpr const char* kInitiator = "iqn.2026-11.org.untorn:alice";
constexpr const char* kTarget = "iqn.2026-11.org.untorn:t";

TEST(SessionRegistry, OnlyTheSameIdentityReinstatesALiveSession) {
  SessionRegistry r;
  std::vector<std::shared_ptr<int>> owners;
  SessionRegistry::Refusal why{};
  const auto first =
      r.Admit({kInitiator, kIsid, kTarget, "alice", "127.0.0.1:1"}, 8, StandIn(&owners), &why);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->replaced.use_count(), 0);
  EXPECT_TRUE(r.Has(first->tsih, kInitiator, kIsid, kTarget, "alice"));
  EXPECT_FALSE(r.Has(first->tsih, kInitiator, kIsid, kTarget, "mallory"));

  const auto other =
      r.Admit({kInitiator, kIsid, kTarget, "mallory", "127.0.0.1:1"}, 8, StandIn(&owners), &why);
  EXPECT_FALSE(other);
  EXPECT_EQ(why, SessionRegistry::Refusal::kOtherIdentity);
  EXPECT_TRUE(r.Has(first->tsih, kInitiator, kIsid, kTarget, "alice")) << "session taken over";

  const auto again =
      r.Admit({kInitiator, kIsid, kTarget, "alice", "127.0.0.1:1"}, 8, StandIn(&owners), &why);
  ASSERT_TRUE(again);
  EXPECT_GT(again->replaced.use_count(), 0) << "the same identity reinstates";
  EXPECT_EQ(again->nexus_id, first->nexus_id) << "and keeps the nexus (its reservations)";
  EXPECT_FALSE(r.Has(first->tsih, kInitiator, kIsid, kTarget, "alice"));
}

TEST(SessionRegistry, AnotherIdentityAfterTheSessionEndedGetsANewNexus) {
  SessionRegistry r;
  std::vector<std::shared_ptr<int>> owners;
  SessionRegistry::Refusal why{};
  const auto first =
      r.Admit({kInitiator, kIsid, kTarget, "alice", "127.0.0.1:1"}, 8, StandIn(&owners), &why);
  ASSERT_TRUE(first);
  owners.clear();  // the session's connection is gone
  const auto other =
      r.Admit({kInitiator, kIsid, kTarget, "mallory", "127.0.0.1:1"}, 8, StandIn(&owners), &why);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->replaced.use_count(), 0);
  EXPECT_NE(other->nexus_id, first->nexus_id) << "another identity inherited the nexus";
}

TEST(SessionRegistry, SessionsPerTargetAreCapped) {
  SessionRegistry r;
  std::vector<std::shared_ptr<int>> owners;
  SessionRegistry::Refusal why{};
  ASSERT_TRUE(r.Admit({kInitiator, 1, kTarget, "", "127.0.0.1:1"}, 2, StandIn(&owners), &why));
  ASSERT_TRUE(r.Admit({kInitiator, 2, kTarget, "", "127.0.0.1:1"}, 2, StandIn(&owners), &why));
  EXPECT_FALSE(r.Admit({kInitiator, 3, kTarget, "", "127.0.0.1:1"}, 2, StandIn(&owners), &why));
  EXPECT_EQ(why, SessionRegistry::Refusal::kTooManySessions);
  EXPECT_TRUE(r.Admit({kInitiator, 2, kTarget, "", "127.0.0.1:1"}, 2, StandIn(&owners), &why))
      << "a reinstatement does not count against the cap";
  EXPECT_TRUE(r.Admit({kInitiator, 3, "iqn.2026-11.org.untorn:u", "", "127.0.0.1:1"}, 2,
                      StandIn(&owners), &why));
}

}  // namespace
}  // namespace untorn::target
