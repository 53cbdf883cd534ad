// Logins that go wrong, on raw sockets: out of order, malformed or overflowing keys, and
// access control (RFC 7143 status per refusal, CHAP, allow lists, discovery).
#include <gtest/gtest.h>

#include "protocol/chap.h"
#include "raw_test_util.h"

namespace untorn::testing {
namespace {

// A CHAP login (MD5) on `c` as `initiator`, proving `user` and `secret`, through the security
// stage and, when `complete`, on to full feature phase; returns the last Login Response status.
uint16_t ChapLogin(RawClient& c, const std::string& initiator, const std::string& target,
                   const std::string& user, const std::string& secret, bool complete = false) {
  auto r = LoginStep(c, 0, 1, false,
                     {{"InitiatorName", initiator},
                      {"TargetName", target},
                      {"SessionType", "Normal"},
                      {"AuthMethod", "CHAP"}});
  if (LoginStatusOf(r) != 0) return LoginStatusOf(r);
  r = LoginStep(c, 0, 1, false, {{"CHAP_A", "5"}});
  if (LoginStatusOf(r) != 0) return LoginStatusOf(r);
  const auto id = protocol::ParseNumber(KeyValue(*r, "CHAP_I"));
  const auto challenge = protocol::ParseBinary(KeyValue(*r, "CHAP_C"));
  if (!id || !challenge) return 0xfffe;
  const auto response = protocol::ChapResponse(5, static_cast<uint8_t>(*id), secret, *challenge);
  r = LoginStep(c, 0, 1, true, {{"CHAP_N", user}, {"CHAP_R", protocol::EncodeHex(response)}});
  if (LoginStatusOf(r) != 0 || !complete) return LoginStatusOf(r);
  return LoginStatusOf(LoginStep(c, 1, 3, true, {}));
}

uint16_t ChapLogin(uint16_t port, const std::string& initiator, const std::string& target,
                   const std::string& secret) {
  RawClient c(port);
  return ChapLogin(c, initiator, target, "alice", secret);
}

// Each refusal carries its RFC 7143 §11.13.5 status and is logged with the peer address; the
// secret is never logged. The right secret (the same code path) logs in.
TEST(RawProtocol, LoginRefusalsCarryTheirRfcStatus) {
  UntorndProcess d(DefaultConfig(
      R"("chap": {"username": "alice", "secret": "alice-secret-123"},
         "allowed_initiators": ["iqn.2026-11.org.untorn:raw"])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  const std::string me = "iqn.2026-11.org.untorn:raw";
  EXPECT_EQ(ChapLogin(d.port(), me, "iqn.2026-11.org.untorn:nope", "alice-secret-123"), 0x0203);
  EXPECT_EQ(ChapLogin(d.port(), "iqn.2026-11.org.untorn:stranger", kTargetIqn, "alice-secret-123"),
            0x0202);
  EXPECT_EQ(ChapLogin(d.port(), me, kTargetIqn, "wrong-secret-000"), 0x0201);
  {
    RawClient skip(d.port());  // CHAP required: skipping the security stage is refused
    auto r =
        LoginStep(skip, 1, 3, true,
                  {{"InitiatorName", me}, {"TargetName", kTargetIqn}, {"SessionType", "Normal"}});
    EXPECT_EQ(LoginStatusOf(r), 0x0201);
  }
  EXPECT_EQ(ChapLogin(d.port(), me, kTargetIqn, "alice-secret-123"), 0x0000);
  const std::string log = d.Log();
  EXPECT_NE(log.find("127.0.0.1"), std::string::npos) << log;
  EXPECT_NE(log.find("stranger"), std::string::npos) << log;
  EXPECT_EQ(log.find("alice-secret-123"), std::string::npos) << log;
  EXPECT_EQ(log.find("wrong-secret-000"), std::string::npos) << log;
}

// Per-initiator credentials (node ACLs): each initiator proves its own, nobody else's; an
// initiator without credentials of its own needs none (or the target's); one outside every
// ACL is refused. A login under another initiator's name and ISID, without that initiator's
// credentials, can neither authenticate nor reinstate (take over) its live session.
TEST(RawProtocol, PerInitiatorCredentialsAreBoundToTheirInitiator) {
  const std::string alice = "iqn.2026-11.org.untorn:alice";
  const std::string carol = "iqn.2026-11.org.untorn:carol";
  UntorndProcess d(DefaultConfig(R"("acls": [
      {"initiator": "iqn.2026-11.org.untorn:alice",
       "chap": {"username": "alice", "secret": "alice-secret-123"}},
      {"initiator": "iqn.2026-11.org.untorn:carol",
       "chap": {"username": "carol", "secret": "carol-secret-456"}},
      {"initiator": "iqn.2026-11.org.untorn:raw"},
      {"initiator": "iqn.2026-11.org.untorn:bystander"}])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient a(d.port());
  ASSERT_EQ(ChapLogin(a, alice, kTargetIqn, "alice", "alice-secret-123", true), 0x0000);
  ExpectTestUnitReadyGood(a, 100, 0);
  {
    RawClient c(d.port());  // carol's credentials under alice's name
    EXPECT_EQ(ChapLogin(c, alice, kTargetIqn, "carol", "carol-secret-456"), 0x0201);
  }
  {
    RawClient c(d.port());  // alice's credentials under carol's name
    EXPECT_EQ(ChapLogin(c, carol, kTargetIqn, "alice", "alice-secret-123"), 0x0201);
  }
  {
    RawClient c(d.port());  // alice's name and ISID with no credentials: no takeover
    auto r = LoginStep(c, 0, 3, true,
                       {{"InitiatorName", alice},
                        {"TargetName", kTargetIqn},
                        {"SessionType", "Normal"},
                        {"AuthMethod", "None"}});
    EXPECT_EQ(LoginStatusOf(r), 0x0201);
  }
  {
    RawClient c(d.port());  // outside every ACL
    auto r = LoginStep(c, 0, 3, true,
                       {{"InitiatorName", "iqn.2026-11.org.untorn:mallory"},
                        {"TargetName", kTargetIqn},
                        {"SessionType", "Normal"},
                        {"AuthMethod", "None"}});
    EXPECT_EQ(LoginStatusOf(r), 0x0202);
  }
  RawClient plain(d.port());  // in an ACL without credentials of its own
  EXPECT_TRUE(plain.Login(kTargetIqn, {}));
  ExpectTestUnitReadyGood(a, 101, 1);  // alice's session was never taken over
  EXPECT_TRUE(bystander.Works());
}

// The target-wide credentials are the simple case: an initiator whose ACL has credentials of
// its own cannot use them instead.
TEST(RawProtocol, AnAclsOwnCredentialsReplaceTheTargets) {
  UntorndProcess d(DefaultConfig(R"("chap": {"username": "shared", "secret": "shared-secret-12"},
      "acls": [{"initiator": "iqn.2026-11.org.untorn:alice",
                "chap": {"username": "alice", "secret": "alice-secret-123"}},
               {"initiator": "iqn.2026-11.org.untorn:raw"}])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  const std::string alice = "iqn.2026-11.org.untorn:alice";
  const std::string raw = "iqn.2026-11.org.untorn:raw";
  const auto login = [&](const std::string& who, const std::string& user,
                         const std::string& secret) {
    RawClient c(d.port());
    return ChapLogin(c, who, kTargetIqn, user, secret, true);
  };
  EXPECT_EQ(login(alice, "shared", "shared-secret-12"), 0x0201);
  EXPECT_EQ(login(alice, "alice", "alice-secret-123"), 0x0000);
  EXPECT_EQ(login(raw, "shared", "shared-secret-12"), 0x0000);
  EXPECT_EQ(login(raw, "alice", "alice-secret-123"), 0x0201);
}

// A peer's strings cannot forge log lines: a newline or escape sequence in InitiatorName or
// TargetName is written escaped, inside the one line that names it.
TEST(RawProtocol, PeerStringsCannotForgeLogLines) {
  UntorndProcess d(DefaultConfig(R"("allowed_initiators": ["iqn.2026-11.org.untorn:raw"])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  const std::string forged = "2026-12-06T00:00:00.000Z ERROR forged by the peer";
  {
    RawClient c(d.port());
    auto r = LoginStep(c, 0, 1, true,
                       {{"InitiatorName", "iqn.2026-11.org.untorn:x\n" + forged},
                        {"TargetName", kTargetIqn},
                        {"SessionType", "Normal"},
                        {"AuthMethod", "None"}});
    EXPECT_NE(LoginStatusOf(r), 0);
  }
  {
    RawClient c(d.port());
    auto r = LoginStep(c, 0, 1, true,
                       {{"InitiatorName", "iqn.2026-11.org.untorn:raw"},
                        {"TargetName", "iqn.2026-11.org.untorn:nope\r\n\x1b[2J" + forged},
                        {"SessionType", "Normal"},
                        {"AuthMethod", "None"}});
    EXPECT_NE(LoginStatusOf(r), 0);
  }
  const std::string log = d.Log();
  EXPECT_EQ(log.find("\n" + forged), std::string::npos) << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << log;
  EXPECT_NE(log.find("\\x0a" + forged), std::string::npos) << log;  // there, escaped
}

// SendTargets in a discovery session lists a target only to initiators it allows.
TEST(RawProtocol, DiscoveryShowsOnlyTargetsTheInitiatorMayLogInto) {
  UntorndProcess d(DefaultConfig(R"("allowed_initiators": ["iqn.2026-11.org.untorn:ok"])"));
  ASSERT_TRUE(d.ok()) << d.Log();
  const auto discover = [&](const std::string& initiator) {
    RawClient c(d.port());
    auto r = LoginStep(c, 1, 3, true, {{"InitiatorName", initiator}, {"SessionType", "Discovery"}});
    if (LoginStatusOf(r) != 0) return std::string("login failed");
    c.Send(TextPdu(0x11, protocol::kReservedTag, 0, false,  // CmdSN: the login's, 0
                   protocol::EncodeTextKeys({{"SendTargets", "All"}})));
    auto t = c.Receive();
    if (!t || t->RawOpcode() != 0x24) return std::string("no text response");
    return std::string(t->data.begin(), t->data.end());
  };
  EXPECT_NE(discover("iqn.2026-11.org.untorn:ok").find(kTargetIqn), std::string::npos);
  const std::string stranger = discover("iqn.2026-11.org.untorn:stranger");
  EXPECT_EQ(stranger.find("login failed"), std::string::npos);
  EXPECT_EQ(stranger.find("no text response"), std::string::npos);
  EXPECT_EQ(stranger.find(kTargetIqn), std::string::npos) << stranger;
}

TEST(RawProtocol, LoginWithGarbageKeysIsRefusedNotCrashed) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  c.Send(LoginPdu(0x87, {'n', 'o', '-', 'e', 'q', 'u', 'a', 'l', 's', 0}));
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x23);
  EXPECT_EQ(r->bhs[36], 0x02);  // initiator error class
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

// RFC 7143 §6.1.3: a key may be offered once per negotiation; repeating one is a protocol
// error, answered with a Login Response of class 2 (initiator error), then the close.
TEST(RawProtocol, KeyRepeatedInOneLoginRequestIsRefused) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  c.Send(LoginPdu(0x87,  // T, CSG 1 (operational), NSG 3
                  protocol::EncodeTextKeys({{"InitiatorName", "iqn.2026-11.org.untorn:hostile"},
                                            {"TargetName", kTargetIqn},
                                            {"SessionType", "Normal"},
                                            {"MaxBurstLength", "65536"},
                                            {"MaxBurstLength", "262144"}})));
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x23);
  EXPECT_EQ(r->bhs[36], 0x02);  // initiator error
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

// A Login Request in full feature phase is out of order: Reject (protocol error), then close.
TEST(RawProtocol, LoginRequestInFullFeaturePhaseIsRejectedAndCloses) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {}));
  Pdu p = LoginPdu(0x87, {});
  protocol::StoreBe32(p.bhs, 16, 9);
  protocol::StoreBe32(p.bhs, 24, c.next_cmd_sn());
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->RawOpcode(), 0x3f);
  EXPECT_EQ(r->bhs[2], 0x04);  // protocol error
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

// Login key data continued (C bit) past the 64 KiB bound: Login Response class 2 (initiator
// error), then the close.
TEST(RawProtocol, LoginKeysOverflowingAcrossContinuedPdusAreRefused) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  std::optional<Pdu> r;
  int pdus = 0;
  for (; pdus < 12; ++pdus) {
    // C, CSG 1 (operational), NSG 0; one key name that never ends.
    c.Send(LoginPdu(0x44, std::vector<uint8_t>(8192, 'k')));
    r = c.Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->RawOpcode(), 0x23);
    if (protocol::LoadBe16(r->bhs, 36) != 0) break;
  }
  EXPECT_EQ(r->bhs[36], 0x02);  // initiator error
  EXPECT_EQ(pdus, 8);           // the 9th PDU took it past 65536 bytes
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

TEST(RawProtocol, NonLoginPduBeforeLoginClosesTheConnection) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander good(d);
  RawClient c(d.port());
  Pdu p;
  p.bhs[0] = 0x01;  // SCSI Command with no session
  c.Send(p);
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_TRUE(good.Works());
}

}  // namespace
}  // namespace untorn::testing
