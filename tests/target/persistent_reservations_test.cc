#include "target/scsi/persistent_reservations.h"

#include <gtest/gtest.h>

#include "protocol/byte_order.h"

namespace untorn::target {
namespace {

std::vector<uint8_t> Cdb(uint8_t action, uint8_t type = 0) {
  std::vector<uint8_t> c(10, 0);
  c[0] = 0x5f;
  c[1] = action;
  c[2] = type;
  c[8] = 24;
  return c;
}
std::vector<uint8_t> Params(uint64_t key, uint64_t sa_key) {
  std::vector<uint8_t> p(24, 0);
  protocol::StoreBe64(p, 0, key);
  protocol::StoreBe64(p, 8, sa_key);
  return p;
}

TEST(PersistentReservations, RegisterReserveAndConflict) {
  PersistentReservations pr;
  EXPECT_FALSE(pr.Out(1, Cdb(0), Params(0, 0xa)).conflict);
  EXPECT_FALSE(pr.Out(2, Cdb(0), Params(0, 0xb)).conflict);
  EXPECT_FALSE(pr.Out(1, Cdb(1, PersistentReservations::kWriteExclusive), Params(0xa, 0)).conflict);
  EXPECT_FALSE(pr.Conflicts(1, AccessKind::kWrite));
  EXPECT_TRUE(pr.Conflicts(2, AccessKind::kWrite));
  EXPECT_FALSE(pr.Conflicts(2, AccessKind::kRead));
  EXPECT_FALSE(pr.Conflicts(3, AccessKind::kAlways));
  // Another reservation by a non-holder conflicts.
  EXPECT_TRUE(pr.Out(2, Cdb(1, PersistentReservations::kWriteExclusive), Params(0xb, 0)).conflict);
}

TEST(PersistentReservations, RegisterWithWrongKeyConflicts) {
  PersistentReservations pr;
  ASSERT_FALSE(pr.Out(1, Cdb(0), Params(0, 0xa)).conflict);
  EXPECT_TRUE(pr.Out(1, Cdb(0), Params(0xbad, 0xc)).conflict);
  EXPECT_FALSE(pr.Out(1, Cdb(6), Params(0xbad, 0xc)).conflict);  // IGNORE EXISTING KEY
}

TEST(PersistentReservations, ExclusiveAccessRegistrantsOnlyLetsRegistrantsIn) {
  PersistentReservations pr;
  ASSERT_FALSE(pr.Out(1, Cdb(0), Params(0, 1)).conflict);
  ASSERT_FALSE(pr.Out(2, Cdb(0), Params(0, 2)).conflict);
  ASSERT_FALSE(
      pr.Out(1, Cdb(1, PersistentReservations::kExclusiveAccessRegistrantsOnly), Params(1, 0))
          .conflict);
  EXPECT_FALSE(pr.Conflicts(2, AccessKind::kRead));
  EXPECT_TRUE(pr.Conflicts(3, AccessKind::kRead));
}

TEST(PersistentReservations, ReleaseWithWrongTypeIsInvalidRelease) {
  PersistentReservations pr;
  ASSERT_FALSE(pr.Out(1, Cdb(0), Params(0, 1)).conflict);
  ASSERT_FALSE(pr.Out(1, Cdb(1, 3), Params(1, 0)).conflict);
  const auto r = pr.Out(1, Cdb(2, 1), Params(1, 0));
  ASSERT_TRUE(r.sense);
  EXPECT_EQ(r.sense->asc, 0x26);
  EXPECT_EQ(r.sense->ascq, 0x04);
}

TEST(PersistentReservations, PreemptMovesReservationAndNotifiesPreempted) {
  PersistentReservations pr;
  ASSERT_FALSE(pr.Out(1, Cdb(0), Params(0, 1)).conflict);
  ASSERT_FALSE(pr.Out(2, Cdb(0), Params(0, 2)).conflict);
  ASSERT_FALSE(pr.Out(1, Cdb(1, 3), Params(1, 0)).conflict);
  const auto r = pr.Out(2, Cdb(4, 3), Params(2, 1));
  EXPECT_FALSE(r.conflict);
  ASSERT_EQ(r.unit_attentions.size(), 1u);
  EXPECT_EQ(r.unit_attentions[0].first, 1u);
  EXPECT_EQ(r.unit_attentions[0].second.ascq, 0x05);  // REGISTRATIONS PREEMPTED
  EXPECT_TRUE(pr.Conflicts(1, AccessKind::kRead));
  EXPECT_FALSE(pr.Conflicts(2, AccessKind::kWrite));
}

TEST(PersistentReservations, ReadKeysAndReservation) {
  PersistentReservations pr;
  ASSERT_FALSE(pr.Out(1, Cdb(0), Params(0, 0x1111)).conflict);
  ASSERT_FALSE(pr.Out(1, Cdb(1, 1), Params(0x1111, 0)).conflict);
  const auto keys = *pr.In(0, {});
  EXPECT_EQ(protocol::LoadBe32(keys, 0), 1u);  // generation
  EXPECT_EQ(protocol::LoadBe32(keys, 4), 8u);
  EXPECT_EQ(protocol::LoadBe64(keys, 8), 0x1111u);
  const auto res = *pr.In(1, {});
  EXPECT_EQ(protocol::LoadBe64(res, 8), 0x1111u);
  EXPECT_EQ(res[21], 1);
  EXPECT_FALSE(pr.In(9, {}));
}

TEST(PersistentReservations, AptplIsRefused) {
  PersistentReservations pr;
  auto p = Params(0, 1);
  p[20] = 0x01;
  EXPECT_TRUE(pr.Out(1, Cdb(0), p).sense);
}

}  // namespace
}  // namespace untorn::target
