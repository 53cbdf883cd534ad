// Persistent reservations that persist (APTPL, SPC-4 §5.13.5), against a live untornd killed
// with SIGKILL: registrations and the reservation come back for their initiator ports, a
// stranger still conflicts, and APTPL turned off forgets them.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "iscsi_client.h"
#include "untornd_process.h"

namespace untorn::testing {
namespace {

Context Session(const UntorndProcess& d, const std::string& initiator, uint32_t isid) {
  LoginOptions o;
  o.initiator = initiator;
  o.isid_random = isid;
  std::string error;
  Context c = Login(d.portal(), kTargetIqn, o, &error);
  EXPECT_TRUE(c) << error;
  if (c) ClearUnitAttentions(c.get());
  return c;
}

int Register(iscsi_context* c, uint64_t key, uint64_t new_key, bool aptpl, bool ignore = false) {
  scsi_persistent_reserve_out_basic p{};
  p.reservation_key = key;
  p.service_action_reservation_key = new_key;
  p.aptpl = aptpl ? 1 : 0;
  Task t(iscsi_persistent_reserve_out_sync(
      c, 0,
      ignore ? SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY
             : SCSI_PERSISTENT_RESERVE_REGISTER,
      0, 0, &p));
  return t ? t->status : -1;
}

std::vector<uint64_t> Keys(iscsi_context* c) {
  Task t(iscsi_persistent_reserve_in_sync(c, 0, SCSI_PERSISTENT_RESERVE_READ_KEYS, 4096));
  if (!t || t->status != SCSI_STATUS_GOOD) return {~0ull};
  auto* k = static_cast<scsi_persistent_reserve_in_read_keys*>(scsi_datain_unmarshall(t.get()));
  if (k == nullptr) return {~0ull};
  std::vector<uint64_t> out(k->keys, k->keys + k->num_keys);
  std::sort(out.begin(), out.end());
  return out;
}

int WriteStatus(iscsi_context* c) {
  std::vector<uint8_t> data(512, 0x42);
  Task t(iscsi_write10_sync(c, 0, 10, data.data(), 512, 512, 0, 0, 0, 0, 0));
  return t ? t->status : -1;
}

TEST(Reservations, AptplRegistrationsAndTheReservationSurviveKill9) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  {
    Context a = Session(d, "iqn.2026-11.org.untorn:node-a", 0x1111);
    Context b = Session(d, "iqn.2026-11.org.untorn:node-b", 0x2222);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(Register(a.get(), 0, 0xa, true), SCSI_STATUS_GOOD);
    ASSERT_EQ(Register(b.get(), 0, 0xb, true), SCSI_STATUS_GOOD);
    scsi_persistent_reserve_out_basic p{};
    p.reservation_key = 0xa;
    Task r(iscsi_persistent_reserve_out_sync(a.get(), 0, SCSI_PERSISTENT_RESERVE_RESERVE, 0,
                                             SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE, &p));
    ASSERT_TRUE(r && r->status == SCSI_STATUS_GOOD);
    Task caps(iscsi_persistent_reserve_in_sync(a.get(), 0,
                                               SCSI_PERSISTENT_RESERVE_REPORT_CAPABILITIES, 8));
    ASSERT_TRUE(caps && caps->status == SCSI_STATUS_GOOD && caps->datain.size >= 4);
    EXPECT_EQ(caps->datain.data[2] & 0x01, 0x01) << "PTPL_C";
    EXPECT_EQ(caps->datain.data[3] & 0x01, 0x01) << "PTPL_A";
  }
  d.Kill();
  ASSERT_TRUE(d.Restart()) << d.Log();
  {
    Context c = Session(d, "iqn.2026-11.org.untorn:stranger", 0x3333);
    ASSERT_TRUE(c);
    EXPECT_EQ(Keys(c.get()), (std::vector<uint64_t>{0xa, 0xb}));
    Task res(
        iscsi_persistent_reserve_in_sync(c.get(), 0, SCSI_PERSISTENT_RESERVE_READ_RESERVATION, 64));
    ASSERT_TRUE(res && res->status == SCSI_STATUS_GOOD);
    auto* rr = static_cast<scsi_persistent_reserve_in_read_reservation*>(
        scsi_datain_unmarshall(res.get()));
    ASSERT_NE(rr, nullptr);
    EXPECT_EQ(rr->reservation_key, 0xau);
    EXPECT_EQ(rr->pr_type, SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE);
    EXPECT_EQ(WriteStatus(c.get()), SCSI_STATUS_RESERVATION_CONFLICT) << "fencing lost";
    Context a = Session(d, "iqn.2026-11.org.untorn:node-a", 0x1111);
    ASSERT_TRUE(a);
    EXPECT_EQ(WriteStatus(a.get()), SCSI_STATUS_GOOD) << "the holder's port is back";
    EXPECT_EQ(WriteStatus(c.get()), SCSI_STATUS_RESERVATION_CONFLICT);
    // A REGISTER without APTPL turns persistence off: the kept state goes.
    Context b = Session(d, "iqn.2026-11.org.untorn:node-b", 0x2222);
    ASSERT_TRUE(b);
    ASSERT_EQ(Register(b.get(), 0xb, 0xbb, false), SCSI_STATUS_GOOD);
  }
  d.Kill();
  ASSERT_TRUE(d.Restart()) << d.Log();
  Context c = Session(d, "iqn.2026-11.org.untorn:stranger", 0x3333);
  ASSERT_TRUE(c);
  EXPECT_TRUE(Keys(c.get()).empty());
  EXPECT_EQ(WriteStatus(c.get()), SCSI_STATUS_GOOD);
}

// A state file that is not one untornd wrote stops the LUN from starting, naming the file.
TEST(Reservations, AnUnreadableStateFileIsRefusedAtStart) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  {
    Context a = Session(d, "iqn.2026-11.org.untorn:node-a", 0x1111);
    ASSERT_EQ(Register(a.get(), 0, 0xa, true), SCSI_STATUS_GOOD);
  }
  ASSERT_EQ(d.Stop(), 0);
  { std::ofstream(d.dir() + "/data/lun0.img.pr") << "untorn-pr 1\ngarbage\n"; }
  EXPECT_FALSE(d.Restart());
  EXPECT_NE(d.Log().find("lun0.img.pr"), std::string::npos) << d.Log();
}

}  // namespace
}  // namespace untorn::testing
