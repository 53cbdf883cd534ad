// libiscsi against a live untornd on 127.0.0.1: login with and without CHAP, wrong secrets,
// discovery, reads and writes of every size class, header digests, task management, session
// reinstatement, metrics, clean shutdown.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "iscsi_client.h"
#include "untornd_process.h"

namespace untorn::testing {
namespace {

constexpr int kBlock = 512;
const char* kChap = R"("chap": {"username": "alice", "secret": "alice-secret-123"})";
const char* kMutual =
    R"("chap": {"username": "alice", "secret": "alice-secret-123"},
       "mutual_chap": {"username": "target", "secret": "target-secret-456"})";

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 g(seed);
  for (auto& b : v) b = static_cast<uint8_t>(g());
  return v;
}

TEST(Session, LoginWithoutAuthenticationAndTestUnitReady) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context c = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(c) << error;
  Task t(iscsi_testunitready_sync(c.get(), 0));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, SCSI_STATUS_GOOD);
  EXPECT_EQ(iscsi_logout_sync(c.get()), 0);
}

TEST(Session, ChapLoginSucceedsWithTheRightSecret) {
  UntorndProcess d(DefaultConfig(kChap));
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  LoginOptions o;
  o.user = "alice";
  o.secret = "alice-secret-123";
  Context c = Login(d.portal(), kTargetIqn, o, &error);
  ASSERT_TRUE(c) << error;
  Task t(iscsi_testunitready_sync(c.get(), 0));
  EXPECT_EQ(t->status, SCSI_STATUS_GOOD);
}

TEST(Session, WrongSecretNoSecretAndWrongNameAreRefused) {
  UntorndProcess d(DefaultConfig(kChap));
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  LoginOptions o;
  o.user = "alice";
  o.secret = "wrong-secret-000";
  EXPECT_FALSE(Login(d.portal(), kTargetIqn, o, &error));
  EXPECT_FALSE(Login(d.portal(), kTargetIqn, {}, &error));
  o.user = "mallory";
  o.secret = "alice-secret-123";
  EXPECT_FALSE(Login(d.portal(), kTargetIqn, o, &error));
  // The refusals are logged with the peer address, and the secret never is.
  const std::string log = d.Log();
  EXPECT_NE(log.find("refused"), std::string::npos);
  EXPECT_NE(log.find("127.0.0.1"), std::string::npos);
  EXPECT_EQ(log.find("alice-secret-123"), std::string::npos);
}

TEST(Session, MutualChapAuthenticatesTheTarget) {
  UntorndProcess d(DefaultConfig(kMutual));
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  LoginOptions o;
  o.user = "alice";
  o.secret = "alice-secret-123";
  o.target_user = "target";
  o.target_secret = "target-secret-456";
  EXPECT_TRUE(Login(d.portal(), kTargetIqn, o, &error)) << error;
  o.target_secret = "not-the-target-secret";  // the initiator must reject the target
  EXPECT_FALSE(Login(d.portal(), kTargetIqn, o, &error));
}

// libiscsi with credentials of its own ACL, mutual ones included; the target-wide ones do not
// stand in for them.
TEST(Session, PerInitiatorMutualChapWithLibiscsi) {
  UntorndProcess d(DefaultConfig(R"("chap": {"username": "alice", "secret": "alice-secret-123"},
      "acls": [{"initiator": "iqn.2026-11.org.example:own",
                "chap": {"username": "own", "secret": "own-secret-7890"},
                "mutual_chap": {"username": "t-own", "secret": "t-own-secret-12"}}])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  LoginOptions o;
  o.initiator = "iqn.2026-11.org.example:own";
  o.user = "alice";
  o.secret = "alice-secret-123";
  EXPECT_FALSE(Login(d.portal(), kTargetIqn, o, &error));
  o.user = "own";
  o.secret = "own-secret-7890";
  o.target_user = "t-own";
  o.target_secret = "t-own-secret-12";
  Context c = Login(d.portal(), kTargetIqn, o, &error);
  ASSERT_TRUE(c) << error;
  Task t(iscsi_testunitready_sync(c.get(), 0));
  EXPECT_EQ(t->status, SCSI_STATUS_GOOD);
}

TEST(Session, InitiatorOutsideTheAllowListIsRefused) {
  UntorndProcess d(DefaultConfig(R"("allowed_initiators": ["iqn.2026-11.org.example:ok"])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  EXPECT_FALSE(Login(d.portal(), kTargetIqn, {}, &error));
  LoginOptions o;
  o.initiator = "iqn.2026-11.org.example:ok";
  EXPECT_TRUE(Login(d.portal(), kTargetIqn, o, &error)) << error;
}

TEST(Session, DiscoveryListsTheTargetWithItsPortal) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Context c(iscsi_create_context("iqn.2026-11.org.untorn:test-initiator"));
  iscsi_set_session_type(c.get(), ISCSI_SESSION_DISCOVERY);
  ASSERT_EQ(iscsi_connect_sync(c.get(), d.portal().c_str()), 0);
  ASSERT_EQ(iscsi_login_sync(c.get()), 0) << iscsi_get_error(c.get());
  iscsi_discovery_address* list = iscsi_discovery_sync(c.get());
  ASSERT_NE(list, nullptr) << iscsi_get_error(c.get());
  EXPECT_STREQ(list->target_name, kTargetIqn);
  ASSERT_NE(list->portals, nullptr);
  EXPECT_EQ(std::string(list->portals->portal), d.portal() + ",1");
  EXPECT_EQ(list->next, nullptr);
  iscsi_free_discovery_data(c.get(), list);
  iscsi_logout_sync(c.get());
}

TEST(Session, AdvertisedAddressReplacesTheListeningOne) {
  UntorndProcess d(DefaultConfig(), {"--advertise", "10.0.2.2:3260"});
  ASSERT_TRUE(d.ok()) << d.Log();
  Context c(iscsi_create_context("iqn.2026-11.org.untorn:test-initiator"));
  iscsi_set_session_type(c.get(), ISCSI_SESSION_DISCOVERY);
  ASSERT_EQ(iscsi_connect_sync(c.get(), d.portal().c_str()), 0);
  ASSERT_EQ(iscsi_login_sync(c.get()), 0);
  iscsi_discovery_address* list = iscsi_discovery_sync(c.get());
  ASSERT_NE(list, nullptr);
  EXPECT_EQ(std::string(list->portals->portal), "10.0.2.2:3260,1");
  iscsi_free_discovery_data(c.get(), list);
}

class ReadWrite : public ::testing::TestWithParam<bool> {};

// 1 block up to the LUN's maximum transfer (8 MiB): immediate data, unsolicited data, one and
// many R2Ts, Data-In split over several PDUs and bursts.
TEST_P(ReadWrite, EverySizeClassRoundTrips) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  LoginOptions o;
  o.header_digest = GetParam();
  Context c = Login(d.portal(), kTargetIqn, o, &error);
  ASSERT_TRUE(c) << error;
  uint64_t lba = 0;
  for (uint32_t blocks : {1u, 8u, 64u, 512u, 513u, 2048u, 16384u}) {
    const auto data = Pattern(size_t{blocks} * kBlock, blocks);
    Task w(iscsi_write16_sync(c.get(), 0, lba, const_cast<uint8_t*>(data.data()),
                              static_cast<uint32_t>(data.size()), kBlock, 0, 0, 0, 0, 0));
    ASSERT_TRUE(w) << iscsi_get_error(c.get());
    ASSERT_EQ(w->status, SCSI_STATUS_GOOD) << blocks;
    Task r(iscsi_read16_sync(c.get(), 0, lba, static_cast<uint32_t>(data.size()), kBlock, 0, 0, 0,
                             0, 0));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, SCSI_STATUS_GOOD);
    ASSERT_EQ(r->datain.size, static_cast<int>(data.size()));
    EXPECT_EQ(std::memcmp(r->datain.data, data.data(), data.size()), 0) << blocks;
    lba += blocks;
  }
}

INSTANTIATE_TEST_SUITE_P(Digests, ReadWrite, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "HeaderCrc32c" : "None";
                         });

TEST(Session, FuaWriteAndSynchronizeCache) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context c = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(c) << error;
  auto data = Pattern(4096, 7);
  Task w(iscsi_write16_sync(c.get(), 0, 8, data.data(), 4096, kBlock, 0, 0, 1, 0, 0));
  EXPECT_EQ(w->status, SCSI_STATUS_GOOD);
  Task s(iscsi_synchronizecache16_sync(c.get(), 0, 0, 0, 0, 0));
  EXPECT_EQ(s->status, SCSI_STATUS_GOOD);
}

TEST(Session, LunResetGivesOtherSessionsAUnitAttention) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context a = Login(d.portal(), kTargetIqn, {}, &error);
  LoginOptions ob;
  ob.initiator = "iqn.2026-11.org.untorn:other";
  Context b = Login(d.portal(), kTargetIqn, ob, &error);
  ASSERT_TRUE(a && b) << error;
  ASSERT_EQ(iscsi_task_mgmt_lun_reset_sync(a.get(), 0), 0) << iscsi_get_error(a.get());
  Task t(iscsi_testunitready_sync(b.get(), 0));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, SCSI_STATUS_CHECK_CONDITION);
  EXPECT_EQ(t->sense.key, SCSI_SENSE_UNIT_ATTENTION);
  EXPECT_EQ(t->sense.ascq, 0x2900);
  Task again(iscsi_testunitready_sync(b.get(), 0));
  EXPECT_EQ(again->status, SCSI_STATUS_GOOD);
  Task mine(iscsi_testunitready_sync(a.get(), 0));
  EXPECT_EQ(mine->status, SCSI_STATUS_GOOD);
}

// An initiator that logs in again with the same ISID (what Linux does after a target restart
// or a lost connection) replaces its old session; the old connection is closed.
TEST(Session, SameIsidReinstatesTheSession) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  LoginOptions o;
  o.isid_random = 0x123456;
  Context first = Login(d.portal(), kTargetIqn, o, &error);
  ASSERT_TRUE(first) << error;
  iscsi_set_noautoreconnect(first.get(), 1);
  Context second = Login(d.portal(), kTargetIqn, o, &error);
  ASSERT_TRUE(second) << error;
  Task t(iscsi_testunitready_sync(second.get(), 0));
  EXPECT_EQ(t->status, SCSI_STATUS_GOOD);
  Task old(iscsi_testunitready_sync(first.get(), 0));
  EXPECT_TRUE(!old || old->status != SCSI_STATUS_GOOD);
  EXPECT_NE(d.Log().find("reinstated"), std::string::npos);
}

TEST(Session, MetricsCountSessionsCommandsAndBytes) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context c = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(c) << error;
  auto data = Pattern(8192, 1);
  for (int i = 0; i < 2; ++i) {
    Task w(iscsi_write16_sync(c.get(), 0, 0, data.data(), 8192, kBlock, 0, 0, 0, 0, 0));
    ASSERT_EQ(w->status, SCSI_STATUS_GOOD);
  }
  const std::string m = d.Metrics();
  EXPECT_NE(m.find("HTTP/1.1 200 OK"), std::string::npos);
  EXPECT_NE(m.find("untorn_sessions{target=\"iqn.2026-11.org.untorn:test\"} 1"), std::string::npos)
      << m;
  EXPECT_NE(m.find("untorn_written_bytes_total{lun=\"0\",target=\"iqn.2026-11.org.untorn:test\"} "
                   "16384"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("command=\"WRITE(16)\",lun=\"0\",outcome=\"good\",target=\"" +
                   std::string(kTargetIqn) + "\"} 2\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("untorn_iscsi_commands_total{opcode=\"138\",target=\"" +
                   std::string(kTargetIqn) + "\"} 2\n"),
            std::string::npos)
      << m;
}

TEST(Session, SigtermWithSessionsOpenExitsCleanly) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context c = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(d.Stop(), 0) << d.Log();
  EXPECT_NE(d.Log().find("stopped"), std::string::npos);
}

}  // namespace
}  // namespace untorn::testing
