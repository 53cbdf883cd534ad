#include "target/iscsi/login.h"

#include <gtest/gtest.h>

#include "protocol/chap.h"
#include "protocol/text_keys.h"

namespace untorn::target {
namespace {

using protocol::KeyList;
using protocol::Pdu;

constexpr const char* kIqn = "iqn.2026-11.org.untorn:t";
constexpr const char* kInitiator = "iqn.1994-05.com.redhat:client";

config::Config TestConfig(bool chap, bool mutual) {
  config::Config c;
  config::Target t;
  t.iqn = kIqn;
  t.alias = "test";
  if (chap) t.chap = config::ChapCredentials{"user", "initiator-secret"};
  if (mutual) t.mutual_chap = config::ChapCredentials{"target", "target-secret-1"};
  c.targets.push_back(t);
  config::Target locked;
  locked.iqn = "iqn.2026-11.org.untorn:locked";
  locked.acls = {{"iqn.2026-11.org.example:only", std::nullopt, std::nullopt}};
  c.targets.push_back(locked);
  return c;
}

Pdu LoginPdu(uint8_t csg, uint8_t nsg, bool transit, const KeyList& keys, bool cont = false) {
  Pdu p;
  p.bhs[0] = 0x43;
  p.bhs[1] = static_cast<uint8_t>((transit ? 0x80 : 0) | (cont ? 0x40 : 0) | (csg << 2) | nsg);
  p.bhs[8] = 0x80;  // ISID
  p.bhs[13] = 0x01;
  protocol::StoreBe32(p.bhs, 16, 0x10);
  protocol::StoreBe32(p.bhs, 24, 1);
  p.data = protocol::EncodeTextKeys(keys);
  p.SyncLengths();
  return p;
}

KeyList Keys(const Pdu& response) {
  std::string error;
  return *protocol::ParseTextKeys(response.data, &error);
}

std::string Value(const KeyList& keys, const std::string& key) {
  for (const auto& k : keys) {
    if (k.key == key) return k.value;
  }
  return "<absent>";
}

uint16_t StatusOf(const LoginOutcome& o) { return protocol::LoadBe16(o.responses.back().bhs, 36); }

class LoginTest : public ::testing::Test {
 protected:
  void Make(bool chap, bool mutual) {
    config_ = TestConfig(chap, mutual);
    Make2();
  }
  // A new login over config_ as it stands.
  void Make2() {
    Login::Environment env;
    env.config = &config_;
    env.random = [this](uint8_t* p, size_t n) {
      for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed_++);
    };
    env.admit = [](const Login&, LoginStatus*) -> std::optional<uint16_t> { return 42; };
    login_ = std::make_unique<Login>(std::move(env));
  }
  LoginOutcome Send(const Pdu& p) { return login_->OnPdu(p, 1, 32); }

  config::Config config_;
  std::unique_ptr<Login> login_;
  uint8_t seed_ = 1;
};

TEST_F(LoginTest, NoAuthenticationReachesFullFeaturePhase) {
  Make(false, false);
  auto o = Send(LoginPdu(0, 1, true,
                         {{"InitiatorName", kInitiator},
                          {"TargetName", kIqn},
                          {"SessionType", "Normal"},
                          {"AuthMethod", "None"}}));
  ASSERT_FALSE(o.failed) << o.log;
  ASSERT_EQ(o.responses.size(), 1u);
  EXPECT_EQ(o.responses[0].bhs[1], 0x81);  // T, CSG 0, NSG 1
  auto keys = Keys(o.responses[0]);
  EXPECT_EQ(Value(keys, "AuthMethod"), "None");
  EXPECT_EQ(Value(keys, "TargetPortalGroupTag"), "1");
  EXPECT_EQ(Value(keys, "TargetAlias"), "test");
  o = Send(LoginPdu(1, 3, true, {{"HeaderDigest", "None"}, {"MaxBurstLength", "65536"}}));
  ASSERT_TRUE(o.complete) << o.log;
  EXPECT_EQ(o.responses[0].bhs[1], 0x87);                     // T, CSG 1, NSG 3
  EXPECT_EQ(protocol::LoadBe16(o.responses[0].bhs, 14), 42);  // TSIH
  keys = Keys(o.responses[0]);
  EXPECT_EQ(Value(keys, "MaxBurstLength"), "65536");
  EXPECT_NE(Value(keys, "MaxRecvDataSegmentLength"), "<absent>");
  EXPECT_EQ(login_->initiator_name(), kInitiator);
  EXPECT_EQ(login_->isid(), 0x800000000001ULL);
}

// Drives a CHAP exchange; returns the final outcome.
LoginOutcome ChapExchange(LoginTest& t, Login& login, const std::string& secret,
                          const KeyList& extra, std::vector<uint8_t>* challenge_out = nullptr) {
  auto o = login.OnPdu(
      LoginPdu(0, 1, true,
               {{"InitiatorName", kInitiator}, {"TargetName", kIqn}, {"AuthMethod", "CHAP,None"}}),
      1, 32);
  EXPECT_EQ(Value(Keys(o.responses[0]), "AuthMethod"), "CHAP");
  EXPECT_EQ(o.responses[0].bhs[1] & 0x80, 0);  // no transit yet
  o = login.OnPdu(LoginPdu(0, 1, false, {{"CHAP_A", "7,5"}}), 2, 32);
  const auto keys = Keys(o.responses[0]);
  EXPECT_EQ(Value(keys, "CHAP_A"), "7");
  const auto id = protocol::ParseNumber(Value(keys, "CHAP_I"));
  const auto challenge = protocol::ParseBinary(Value(keys, "CHAP_C"));
  EXPECT_TRUE(id && challenge);
  if (challenge_out) *challenge_out = *challenge;
  KeyList answer = {{"CHAP_N", "user"},
                    {"CHAP_R", protocol::EncodeHex(protocol::ChapResponse(
                                   7, static_cast<uint8_t>(*id), secret, *challenge))}};
  answer.insert(answer.end(), extra.begin(), extra.end());
  (void)t;
  return login.OnPdu(LoginPdu(0, 1, true, answer), 3, 32);
}

TEST_F(LoginTest, ChapWithRightSecretTransits) {
  Make(true, false);
  const auto o = ChapExchange(*this, *login_, "initiator-secret", {});
  ASSERT_FALSE(o.failed) << o.log;
  EXPECT_EQ(o.responses[0].bhs[1], 0x81);
}

TEST_F(LoginTest, ChapWithWrongSecretIsAuthenticationFailure) {
  Make(true, false);
  const auto o = ChapExchange(*this, *login_, "wrong-secret!!", {});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(StatusOf(o), 0x0201);
}

TEST_F(LoginTest, MutualChapTargetAnswersInitiatorChallenge) {
  Make(true, true);
  const std::vector<uint8_t> mine = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
  const auto o = ChapExchange(*this, *login_, "initiator-secret",
                              {{"CHAP_I", "77"}, {"CHAP_C", protocol::EncodeHex(mine)}});
  ASSERT_FALSE(o.failed) << o.log;
  const auto keys = Keys(o.responses[0]);
  EXPECT_EQ(Value(keys, "CHAP_N"), "target");
  EXPECT_EQ(Value(keys, "CHAP_R"),
            protocol::EncodeHex(protocol::ChapResponse(7, 77, "target-secret-1", mine)));
}

TEST_F(LoginTest, ReflectedChallengeIsRefused) {
  Make(true, true);
  std::vector<uint8_t> theirs;
  // First learn the target's challenge, then send it back as our own.
  auto o = login_->OnPdu(
      LoginPdu(0, 1, true,
               {{"InitiatorName", kInitiator}, {"TargetName", kIqn}, {"AuthMethod", "CHAP"}}),
      1, 32);
  o = login_->OnPdu(LoginPdu(0, 1, false, {{"CHAP_A", "5"}}), 2, 32);
  const auto keys = Keys(o.responses[0]);
  const auto id = static_cast<uint8_t>(*protocol::ParseNumber(Value(keys, "CHAP_I")));
  theirs = *protocol::ParseBinary(Value(keys, "CHAP_C"));
  o = login_->OnPdu(LoginPdu(0, 1, true,
                             {{"CHAP_N", "user"},
                              {"CHAP_R", protocol::EncodeHex(protocol::ChapResponse(
                                             5, id, "initiator-secret", theirs))},
                              {"CHAP_I", "1"},
                              {"CHAP_C", protocol::EncodeHex(theirs)}}),
                    3, 32);
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(StatusOf(o), 0x0201);
  EXPECT_NE(o.log.find("reflected"), std::string::npos);
}

TEST_F(LoginTest, SkippingSecurityWhenChapIsRequiredFails) {
  Make(true, false);
  const auto o = Send(LoginPdu(1, 3, true, {{"InitiatorName", kInitiator}, {"TargetName", kIqn}}));
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(StatusOf(o), 0x0201);
}

TEST_F(LoginTest, UnknownTargetIsNotFound) {
  Make(false, false);
  const auto o = Send(
      LoginPdu(0, 1, true, {{"InitiatorName", kInitiator}, {"TargetName", "iqn.2026-11.x:no"}}));
  EXPECT_EQ(StatusOf(o), 0x0203);
}

TEST_F(LoginTest, MissingInitiatorNameIsMissingParameter) {
  Make(false, false);
  const auto o = Send(LoginPdu(0, 1, true, {{"TargetName", kIqn}}));
  EXPECT_EQ(StatusOf(o), 0x0207);
}

TEST_F(LoginTest, InitiatorNotInAllowListIsAuthorizationFailure) {
  Make(false, false);
  const auto o = Send(
      LoginPdu(0, 1, true,
               {{"InitiatorName", kInitiator}, {"TargetName", "iqn.2026-11.org.untorn:locked"}}));
  EXPECT_EQ(StatusOf(o), 0x0202);
}

// An ACL's own credentials, mutual ones included, replace the target's for its initiator; the
// identity a login proved is what the session registry compares on reinstatement.
TEST_F(LoginTest, AclCredentialsReplaceTheTargetsForTheirInitiator) {
  Make(true, true);
  config_.targets[0].acls = {
      {kInitiator, config::ChapCredentials{"user", "acl-secret-0001"},
       config::ChapCredentials{"acl-target", "acl-target-secret"}},
  };
  Make2();
  auto o = ChapExchange(*this, *login_, "initiator-secret", {});  // the target's secret
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(StatusOf(o), 0x0201);
  Make2();
  o = ChapExchange(*this, *login_, "acl-secret-0001",
                   {{"CHAP_I", "9"}, {"CHAP_C", "0x0102030405060708"}});
  ASSERT_FALSE(o.failed) << o.log;
  const auto keys = Keys(o.responses[0]);
  EXPECT_EQ(Value(keys, "CHAP_N"), "acl-target");
  const std::vector<uint8_t> challenge = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(Value(keys, "CHAP_R"),
            protocol::EncodeHex(protocol::ChapResponse(7, 9, "acl-target-secret", challenge)));
  EXPECT_EQ(login_->auth_identity(), "user");
}

TEST_F(LoginTest, NoChapMeansAnEmptyIdentity) {
  Make(false, false);
  auto o = Send(LoginPdu(
      0, 1, true, {{"InitiatorName", kInitiator}, {"TargetName", kIqn}, {"AuthMethod", "None"}}));
  ASSERT_FALSE(o.failed) << o.log;
  EXPECT_EQ(login_->auth_identity(), "");
}

TEST_F(LoginTest, KeysSplitAcrossContinuedPdus) {
  Make(false, false);
  const auto all = protocol::EncodeTextKeys(
      {{"InitiatorName", kInitiator}, {"TargetName", kIqn}, {"AuthMethod", "None"}});
  Pdu first = LoginPdu(0, 1, false, {}, true);
  first.data.assign(all.begin(), all.begin() + 20);
  first.SyncLengths();
  auto o = Send(first);
  ASSERT_FALSE(o.failed);
  EXPECT_TRUE(o.responses[0].data.empty());
  Pdu second = LoginPdu(0, 1, true, {});
  second.data.assign(all.begin() + 20, all.end());
  second.SyncLengths();
  o = Send(second);
  ASSERT_FALSE(o.failed) << o.log;
  EXPECT_EQ(Value(Keys(o.responses[0]), "AuthMethod"), "None");
}

TEST_F(LoginTest, DiscoverySessionNeedsNoTargetName) {
  Make(true, false);
  const auto o =
      Send(LoginPdu(1, 3, true, {{"InitiatorName", kInitiator}, {"SessionType", "Discovery"}}));
  EXPECT_TRUE(o.complete) << o.log;
  EXPECT_TRUE(login_->discovery());
}

TEST_F(LoginTest, SecurityKeysInOperationalStageAreRefused) {
  Make(false, false);
  const auto o = Send(LoginPdu(
      1, 3, true, {{"InitiatorName", kInitiator}, {"TargetName", kIqn}, {"AuthMethod", "None"}}));
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(StatusOf(o), 0x0200);
}

// Limits below the RFC defaults are offered by the target; the transition waits for the
// initiator's answer, and a login that leaves them unanswered fails.
TEST_F(LoginTest, TargetOffersItsLimitsAndWaitsForTheAnswer) {
  for (const bool answer : {true, false}) {
    Make(false, false);
    config_.limits.max_burst_length = 65536;
    Make2();
    auto o = Send(LoginPdu(
        0, 1, true, {{"InitiatorName", kInitiator}, {"TargetName", kIqn}, {"AuthMethod", "None"}}));
    ASSERT_FALSE(o.failed) << o.log;
    o = Send(LoginPdu(1, 3, true, {{"HeaderDigest", "None"}}));
    ASSERT_FALSE(o.failed) << o.log;
    EXPECT_FALSE(o.complete);
    EXPECT_EQ(o.responses[0].bhs[1] & 0x80, 0) << "transit before the offer was answered";
    EXPECT_EQ(Value(Keys(o.responses[0]), "MaxBurstLength"), "65536");
    o = Send(LoginPdu(1, 3, true, answer ? KeyList{{"MaxBurstLength", "65536"}} : KeyList{}));
    if (answer) {
      ASSERT_TRUE(o.complete) << o.log;
      EXPECT_EQ(login_->params().max_burst_length, 65536u);
    } else {
      EXPECT_TRUE(o.failed);
      EXPECT_EQ(StatusOf(o), 0x0200);
    }
  }
}

TEST_F(LoginTest, EndlessLoginIsCutOff) {
  Make(false, false);
  auto o = Send(LoginPdu(0, 1, false, {{"InitiatorName", kInitiator}, {"TargetName", kIqn}}));
  for (int i = 0; i < 20 && !o.failed; ++i) o = Send(LoginPdu(0, 1, false, {}));
  EXPECT_TRUE(o.failed);
}

TEST_F(LoginTest, VersionTooNewIsRefused) {
  Make(false, false);
  Pdu p = LoginPdu(0, 1, true, {{"InitiatorName", kInitiator}, {"TargetName", kIqn}});
  p.bhs[3] = 0x01;  // Version-min 1
  EXPECT_EQ(StatusOf(Send(p)), 0x0205);
}

}  // namespace
}  // namespace untorn::target
