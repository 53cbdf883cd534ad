#include <gtest/gtest.h>

#include <string>

#include "protocol/chap.h"
#include "protocol/negotiation.h"
#include "protocol/text_keys.h"

namespace untorn::protocol {
namespace {

std::vector<uint8_t> Raw(const std::string& s) { return {s.begin(), s.end()}; }

TEST(TextKeys, ParsesNulSeparatedPairs) {
  std::string error;
  const auto keys = ParseTextKeys(Raw(std::string("A=1\0B=two\0\0", 11)), &error);
  ASSERT_TRUE(keys) << error;
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0], (TextKey{"A", "1"}));
  EXPECT_EQ((*keys)[1], (TextKey{"B", "two"}));
}

TEST(TextKeys, AcceptsMissingFinalNul) {
  std::string error;
  const auto keys = ParseTextKeys(Raw("SendTargets=All"), &error);
  ASSERT_TRUE(keys);
  EXPECT_EQ((*keys)[0].value, "All");
}

TEST(TextKeys, RefusesKeyWithoutEquals) {
  std::string error;
  EXPECT_FALSE(ParseTextKeys(Raw(std::string("Garbage\0", 8)), &error));
  EXPECT_NE(error.find("without '='"), std::string::npos);
}

TEST(TextKeys, RefusesOverlongKeyAndValue) {
  std::string error;
  EXPECT_FALSE(ParseTextKeys(Raw(std::string(64, 'K') + "=v"), &error));
  EXPECT_FALSE(ParseTextKeys(Raw("K=" + std::string(kMaxValueLength + 1, 'v')), &error));
  EXPECT_TRUE(ParseTextKeys(Raw(std::string(63, 'K') + "=v"), &error));
}

TEST(TextKeys, EncodesWithTerminators) {
  EXPECT_EQ(EncodeTextKeys({{"A", "1"}, {"B", ""}}), Raw(std::string("A=1\0B=\0", 7)));
}

TEST(TextKeys, NumbersDecimalAndHex) {
  EXPECT_EQ(ParseNumber("262144"), 262144u);
  EXPECT_EQ(ParseNumber("0x40000"), 262144u);
  EXPECT_FALSE(ParseNumber(""));
  EXPECT_FALSE(ParseNumber("12a"));
  EXPECT_FALSE(ParseNumber("99999999999999999999"));
}

TEST(TextKeys, BinaryHexAndBase64) {
  EXPECT_EQ(ParseBinary("0x0a0B"), (std::vector<uint8_t>{0x0a, 0x0b}));
  EXPECT_EQ(ParseBinary("0xabc"), (std::vector<uint8_t>{0x0a, 0xbc}));
  EXPECT_EQ(ParseBinary("0bAQID"), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(ParseBinary("0bAQI="), (std::vector<uint8_t>{1, 2}));
  EXPECT_FALSE(ParseBinary("0xzz"));
  EXPECT_FALSE(ParseBinary("1234"));
  EXPECT_EQ(EncodeHex(std::vector<uint8_t>{0x00, 0xff}), "0x00ff");
}

TEST(Negotiation, LinuxDefaultsProduceExpectedAnswers) {
  TargetCapabilities caps;
  caps.max_recv_data_segment = 262144;
  caps.max_burst_length = 1048576;
  caps.first_burst_length = 65536;
  Negotiator n(caps);
  KeyList answers;
  std::string error;
  ASSERT_TRUE(n.Respond({{"HeaderDigest", "CRC32C,None"},
                         {"DataDigest", "None"},
                         {"MaxRecvDataSegmentLength", "262144"},
                         {"MaxBurstLength", "16776192"},
                         {"FirstBurstLength", "262144"},
                         {"InitialR2T", "No"},
                         {"ImmediateData", "Yes"},
                         {"MaxOutstandingR2T", "1"},
                         {"ErrorRecoveryLevel", "0"},
                         {"MaxConnections", "1"},
                         {"DefaultTime2Wait", "2"},
                         {"DefaultTime2Retain", "0"},
                         {"X-com.example.Unknown", "1"}},
                        &answers, &error));
  n.Finish(&answers);
  auto find = [&](const std::string& k) -> std::string {
    for (const auto& a : answers) {
      if (a.key == k) return a.value;
    }
    return "<absent>";
  };
  EXPECT_EQ(find("HeaderDigest"), "CRC32C");
  EXPECT_EQ(find("DataDigest"), "None");
  EXPECT_EQ(find("MaxBurstLength"), "1048576");
  EXPECT_EQ(find("FirstBurstLength"), "65536");
  EXPECT_EQ(find("InitialR2T"), "No");
  EXPECT_EQ(find("ImmediateData"), "Yes");
  EXPECT_EQ(find("DefaultTime2Retain"), "0");
  EXPECT_EQ(find("X-com.example.Unknown"), "NotUnderstood");
  EXPECT_EQ(find("MaxRecvDataSegmentLength"), "262144");  // our declaration
  const SessionParams& p = n.params();
  EXPECT_TRUE(p.header_digest);
  EXPECT_FALSE(p.data_digest);
  EXPECT_EQ(p.initiator_max_recv_data_segment, 262144u);
  EXPECT_EQ(p.max_burst_length, 1048576u);
  EXPECT_EQ(p.first_burst_length, 65536u);
  EXPECT_FALSE(p.initial_r2t);
}

TEST(Negotiation, InitialR2TIsOrAndImmediateDataIsAnd) {
  Negotiator n({});
  KeyList answers;
  std::string error;
  ASSERT_TRUE(n.Respond({{"InitialR2T", "Yes"}, {"ImmediateData", "No"}}, &answers, &error));
  EXPECT_EQ(answers[0].value, "Yes");
  EXPECT_EQ(answers[1].value, "No");
  EXPECT_TRUE(n.params().initial_r2t);
  EXPECT_FALSE(n.params().immediate_data);
}

TEST(Negotiation, OutOfRangeValuesAreRejected) {
  Negotiator n({});
  KeyList answers;
  std::string error;
  ASSERT_TRUE(n.Respond({{"MaxBurstLength", "100"},
                         {"MaxRecvDataSegmentLength", "16777216"},
                         {"ImmediateData", "Maybe"},
                         {"HeaderDigest", "MD5"}},
                        &answers, &error));
  for (const auto& a : answers) EXPECT_EQ(a.value, "Reject") << a.key;
}

TEST(Negotiation, KeyOfferedTwiceIsAProtocolError) {
  Negotiator n({});
  KeyList answers;
  std::string error;
  ASSERT_TRUE(n.Respond({{"MaxBurstLength", "65536"}}, &answers, &error));
  EXPECT_FALSE(n.Respond({{"MaxBurstLength", "65536"}}, &answers, &error));
  EXPECT_NE(error.find("MaxBurstLength"), std::string::npos);
}

TEST(Negotiation, FirstBurstNeverExceedsMaxBurst) {
  Negotiator n({});
  KeyList answers;
  std::string error;
  ASSERT_TRUE(
      n.Respond({{"MaxBurstLength", "8192"}, {"FirstBurstLength", "65536"}}, &answers, &error));
  n.Finish(&answers);
  EXPECT_EQ(n.params().first_burst_length, 8192u);
}

// A target whose limits are below the RFC defaults offers them itself when the initiator does
// not (§13.13, §13.14): the defaults would be in force otherwise, above what it enforces.
TEST(Negotiation, LimitsBelowTheDefaultsAreOfferedByTheTarget) {
  TargetCapabilities caps;
  caps.max_burst_length = 65536;    // default 262144
  caps.first_burst_length = 16384;  // default 65536
  Negotiator n(caps);
  KeyList answers;
  std::string error;
  ASSERT_TRUE(n.Respond({{"HeaderDigest", "None"}}, &answers, &error));
  ASSERT_TRUE(n.Finish(&answers));
  EXPECT_TRUE(n.awaiting_answers());
  auto find = [&](const std::string& k) -> std::string {
    for (const auto& a : answers) {
      if (a.key == k) return a.value;
    }
    return "<absent>";
  };
  EXPECT_EQ(find("MaxBurstLength"), "65536");
  EXPECT_EQ(find("FirstBurstLength"), "16384");
  // The initiator's answers (the minimum, so at most the offer) are taken, not answered again.
  KeyList more;
  ASSERT_TRUE(
      n.Respond({{"MaxBurstLength", "32768"}, {"FirstBurstLength", "16384"}}, &more, &error))
      << error;
  EXPECT_TRUE(more.empty());
  EXPECT_FALSE(n.awaiting_answers());
  EXPECT_FALSE(n.Finish(&more));
  EXPECT_EQ(n.params().max_burst_length, 32768u);
  EXPECT_EQ(n.params().first_burst_length, 16384u);
}

TEST(Negotiation, AnAnswerAboveTheTargetsOfferIsAnError) {
  TargetCapabilities caps;
  caps.max_burst_length = 65536;
  Negotiator n(caps);
  KeyList answers;
  std::string error;
  ASSERT_TRUE(n.Finish(&answers));
  EXPECT_FALSE(n.Respond({{"MaxBurstLength", "262144"}}, &answers, &error));
  EXPECT_NE(error.find("MaxBurstLength"), std::string::npos) << error;
}

TEST(Negotiation, NothingIsOfferedWhenTheInitiatorOfferedOrTheDefaultFits) {
  TargetCapabilities caps;
  caps.max_burst_length = 65536;
  Negotiator offered(caps);
  KeyList answers;
  std::string error;
  ASSERT_TRUE(offered.Respond({{"MaxBurstLength", "1048576"}, {"FirstBurstLength", "8192"}},
                              &answers, &error));
  EXPECT_FALSE(offered.Finish(&answers));
  EXPECT_EQ(offered.params().max_burst_length, 65536u);
  Negotiator roomy({});  // default capabilities are above every RFC default
  EXPECT_FALSE(roomy.Finish(&answers));
  Negotiator discovery(caps);
  EXPECT_FALSE(discovery.Finish(&answers, /*offer_limits=*/false));
}

// RFC 1994 CHAP with MD5: response = MD5(id || secret || challenge). The expected value was
// computed independently with Python's hashlib.md5(b'\x07abcdefghijkl\x00\x01\x02\x03').
TEST(Chap, Md5ResponseIsDigestOfIdSecretChallenge) {
  const std::vector<uint8_t> challenge = {0x00, 0x01, 0x02, 0x03};
  const auto r = ChapResponse(5, 0x07, "abcdefghijkl", challenge);
  ASSERT_EQ(r.size(), 16u);
  EXPECT_EQ(EncodeHex(r), "0xd20fa6230d28fe464df1917ce78ffee6");
}

TEST(Chap, SupportedAlgorithms) {
  EXPECT_EQ(ChapDigestLength(5), 16u);
  EXPECT_EQ(ChapDigestLength(6), 20u);
  EXPECT_EQ(ChapDigestLength(7), 32u);
  EXPECT_EQ(ChapDigestLength(8), 32u);
  EXPECT_FALSE(ChapDigestLength(4));
  EXPECT_TRUE(ConstantTimeEqual(std::vector<uint8_t>{1, 2}, std::vector<uint8_t>{1, 2}));
  EXPECT_FALSE(ConstantTimeEqual(std::vector<uint8_t>{1, 2}, std::vector<uint8_t>{1, 3}));
  EXPECT_FALSE(ConstantTimeEqual(std::vector<uint8_t>{1}, std::vector<uint8_t>{1, 2}));
}

}  // namespace
}  // namespace untorn::protocol
