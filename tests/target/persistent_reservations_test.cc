#include "target/scsi/persistent_reservations.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

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

std::vector<uint8_t> AptplParams(uint64_t key, uint64_t sa_key) {
  auto p = Params(key, sa_key);
  p[20] = 0x01;
  return p;
}

// REPORT CAPABILITIES: PTPL_C always, PTPL_A as the last REGISTER set APTPL.
TEST(PersistentReservations, AptplIsTakenFromTheLastRegister) {
  PersistentReservations pr;
  EXPECT_EQ((*pr.In(2, {}))[2] & 0x01, 0x01);  // PTPL_C
  EXPECT_EQ((*pr.In(2, {}))[3] & 0x01, 0x00);  // PTPL_A
  ASSERT_FALSE(pr.Out(1, Cdb(0), AptplParams(0, 1)).sense);
  EXPECT_TRUE(pr.aptpl());
  EXPECT_EQ((*pr.In(2, {}))[3] & 0x01, 0x01);
  ASSERT_FALSE(pr.Out(1, Cdb(1, 1), Params(1, 0)).sense);  // RESERVE ignores the bit
  EXPECT_TRUE(pr.aptpl());
  ASSERT_FALSE(pr.Out(2, Cdb(0), Params(0, 2)).sense);
  EXPECT_FALSE(pr.aptpl());
}

// The state survives Encode/Decode with its registrants named by TransportID: before their
// nexus comes back the registrations count (READ KEYS, conflicts of the reservation); a nexus
// with the holder's TransportID holds it again; a stranger still conflicts.
TEST(PersistentReservations, AStateRestoredWaitsForItsNexusesToComeBack) {
  PersistentReservations pr;
  ASSERT_FALSE(pr.Out(1, Cdb(0), AptplParams(0, 0xaa)).conflict);
  ASSERT_FALSE(pr.Out(2, Cdb(0), AptplParams(0, 0xbb)).conflict);
  ASSERT_FALSE(
      pr.Out(1, Cdb(1, PersistentReservations::kWriteExclusive), Params(0xaa, 0)).conflict);
  const std::map<uint64_t, std::string> tids = {{1, "iqn.a,i,0x000000000001"},
                                                {2, "iqn.b,i,0x000000000002"}};
  const std::string text = pr.Encode(tids);

  PersistentReservations after;
  std::string error;
  ASSERT_TRUE(after.Decode(text, &error)) << error;
  EXPECT_EQ(after.generation(), pr.generation());
  EXPECT_TRUE(after.aptpl());
  EXPECT_TRUE(after.HasReservation());
  EXPECT_EQ(protocol::LoadBe32(*after.In(0, {}), 4), 16u) << "both keys listed";
  EXPECT_EQ(protocol::LoadBe64(*after.In(1, {}), 8), 0xaau) << "the holder's key";
  EXPECT_TRUE(after.Conflicts(7, AccessKind::kWrite)) << "the reservation holds, unbound";
  after.Bind(7, "iqn.a,i,0x000000000001");  // the holder is back under a new nexus id
  EXPECT_FALSE(after.Conflicts(7, AccessKind::kWrite));
  EXPECT_TRUE(after.Conflicts(8, AccessKind::kWrite));
  // The other registrant, still unbound, can be preempted by its key.
  const auto r = after.Out(7, Cdb(4, PersistentReservations::kWriteExclusive), Params(0xaa, 0xbb));
  EXPECT_FALSE(r.conflict);
  EXPECT_FALSE(r.sense);
  EXPECT_EQ(protocol::LoadBe32(*after.In(0, {}), 4), 8u);
  // What it writes now reads back the same.
  const std::string again = after.Encode({{7, "iqn.a,i,0x000000000001"}});
  PersistentReservations third;
  ASSERT_TRUE(third.Decode(again, &error)) << error;
  EXPECT_EQ(third.Encode({}), again);
}

TEST(PersistentReservations, DecodeRefusesWhatItDidNotWrite) {
  PersistentReservations pr;
  std::string error;
  const std::string good =
      "untorn-pr 1\ngeneration 3\naptpl 1\ntype 1\nholder 61\nkey 00000000000000aa 61\nend\n";
  ASSERT_TRUE(pr.Decode(good, &error)) << error;
  for (const std::string& bad :
       std::vector<std::string>{"garbage", good.substr(0, good.size() - 4),          // no end
                                "untorn-pr 1\ntype 9\nend\n",                        // bad type
                                "untorn-pr 1\ntype 1\nholder 62\nkey 01 61\nend\n",  // holder
                                "untorn-pr 1\ntype 1\nholder -\nend\n",  // no registrant
                                "untorn-pr 1\nkey zz 61\nend\n", good + "x\n"}) {
    PersistentReservations p;
    EXPECT_FALSE(p.Decode(bad, &error)) << bad;
    EXPECT_FALSE(p.HasReservation());
  }
}

}  // namespace
}  // namespace untorn::target
