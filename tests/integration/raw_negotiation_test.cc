// What is negotiated at login is what the target then does (RFC 7143 §13): burst lengths in the
// answers and in the Data-In and R2T sequences that follow.
#include <gtest/gtest.h>

#include "raw_test_util.h"

namespace untorn::testing {
namespace {

std::string Answer(const protocol::KeyList& answers, const std::string& key) {
  for (const auto& k : answers) {
    if (k.key == key) return k.value;
  }
  return {};
}

// FirstBurstLength must not exceed MaxBurstLength (§13.14): the answer is the smaller of the
// two, whatever order the keys come in, so the value enforced is the one agreed.
TEST(RawProtocol, FirstBurstLengthIsAnsweredNoLargerThanMaxBurstLength) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  for (const bool fbl_first : {true, false}) {
    RawClient c(d.port());
    protocol::KeyList keys = {{"MaxBurstLength", "16384"}, {"FirstBurstLength", "65536"}};
    if (fbl_first) std::swap(keys[0], keys[1]);
    protocol::KeyList answers;
    ASSERT_TRUE(c.Login(kTargetIqn, keys, nullptr, &answers));
    EXPECT_EQ(Answer(answers, "MaxBurstLength"), "16384");
    EXPECT_EQ(Answer(answers, "FirstBurstLength"), "16384")
        << (fbl_first ? "FBL first" : "MBL first");
  }
}

// A Data-In sequence never exceeds MaxBurstLength (§11.7.1, §13.13): the F bit ends each one
// at a MaxBurstLength boundary and DataSN runs on across them.
TEST(RawProtocol, DataInSequencesEndEveryMaxBurstLength) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"MaxBurstLength", "8192"},
                                   {"FirstBurstLength", "8192"},
                                   {"MaxRecvDataSegmentLength", "4096"}}));
  constexpr uint32_t kBytes = 40960;  // five bursts of 8 KiB, two PDUs each
  c.Send(CommandPdu(7, c.next_cmd_sn(), Read10(0, kBytes / 512), kBytes, 0xc0));
  uint32_t next_sn = 0, next_offset = 0, in_sequence = 0, sequences = 0;
  bool status_seen = false;
  for (int i = 0; i < 64 && !status_seen; ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() == 0x21) {  // SCSI Response after the data
      status_seen = true;
      break;
    }
    ASSERT_EQ(r->RawOpcode(), 0x25);
    EXPECT_EQ(protocol::LoadBe32(r->bhs, 36), next_sn++);
    EXPECT_EQ(protocol::LoadBe32(r->bhs, 40), next_offset);
    next_offset += static_cast<uint32_t>(r->data.size());
    in_sequence += static_cast<uint32_t>(r->data.size());
    EXPECT_LE(in_sequence, 8192u) << "a Data-In sequence longer than MaxBurstLength";
    if (r->bhs[1] & 0x80) {  // F: the sequence ends here
      EXPECT_EQ(next_offset % 8192, 0u) << "F before the burst was full";
      ++sequences;
      in_sequence = 0;
    }
    if (r->bhs[1] & 0x01) status_seen = true;  // S: status in the last Data-In
  }
  EXPECT_TRUE(status_seen);
  EXPECT_EQ(next_offset, kBytes);
  EXPECT_EQ(sequences, kBytes / 8192);
  EXPECT_TRUE(bystander.Works());
  std::printf("Data-In: %u PDUs in %u sequences of at most 8192 bytes\n", next_sn, sequences);
}

// Limits below the RFC defaults: an initiator that offers no burst keys would otherwise run with
// the defaults (262144 and 65536), above what the target enforces. The target offers its own,
// and then keeps to what was agreed: Data-In sequences and R2Ts of at most 65536 bytes.
TEST(RawProtocol, TargetOffersBurstLimitsBelowTheDefaultsAndKeepsToThem) {
  UntorndProcess d(WithLimits(R"("max_burst_length": 65536, "first_burst_length": 16384)"));
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient c(d.port());
  protocol::KeyList answers;
  ASSERT_TRUE(c.Login(kTargetIqn, {{"MaxRecvDataSegmentLength", "65536"}}, nullptr, &answers));
  EXPECT_EQ(c.offers_answered(), 2);
  EXPECT_EQ(Answer(answers, "MaxBurstLength"), "65536");
  EXPECT_EQ(Answer(answers, "FirstBurstLength"), "16384");
  constexpr uint32_t kBytes = 262144;
  c.Send(CommandPdu(7, c.next_cmd_sn(), Read10(0, kBytes / 512), kBytes, 0xc0));
  uint32_t offset = 0, in_sequence = 0, sequences = 0;
  for (int i = 0; i < 64 && offset < kBytes; ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->RawOpcode(), 0x25);
    offset += static_cast<uint32_t>(r->data.size());
    in_sequence += static_cast<uint32_t>(r->data.size());
    EXPECT_LE(in_sequence, 65536u) << "a Data-In sequence longer than the MaxBurstLength agreed";
    if (r->bhs[1] & 0x80) {
      ++sequences;
      in_sequence = 0;
    }
  }
  EXPECT_EQ(offset, kBytes);
  EXPECT_EQ(sequences, kBytes / 65536);
  // A WRITE with no unsolicited data: every R2T asks for at most MaxBurstLength.
  c.Send(CommandPdu(8, c.next_cmd_sn() + 1, Write10(0, kBytes / 512), kBytes, 0xa0));
  auto r2t = c.Receive();
  ASSERT_TRUE(r2t);
  ASSERT_EQ(r2t->RawOpcode(), 0x31);
  EXPECT_LE(protocol::LoadBe32(r2t->bhs, 44), 65536u);
  EXPECT_TRUE(bystander.Works());
  std::printf("offers answered: %d; Data-In: %u sequences; first R2T: %u bytes\n",
              c.offers_answered(), sequences, protocol::LoadBe32(r2t->bhs, 44));
}

// RFC 7143 §13.26: the obsoleted marker keys are answered Reject (OFMarkInt and IFMarkInt
// MUST be; IFMarker and OFMarker SHOULD be), and the login goes on.
TEST(RawProtocol, ObsoleteMarkerKeysAreAnsweredReject) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  protocol::KeyList answers;
  ASSERT_TRUE(c.Login(kTargetIqn,
                      {{"IFMarker", "No"},
                       {"OFMarker", "No"},
                       {"OFMarkInt", "2048~8192"},
                       {"IFMarkInt", "2048~8192"}},
                      nullptr, &answers));
  for (const char* key : {"IFMarker", "OFMarker", "OFMarkInt", "IFMarkInt"}) {
    EXPECT_EQ(Answer(answers, key), "Reject") << key;
  }
  ExpectTestUnitReadyGood(c, 9, c.next_cmd_sn());
}

// A login naming a TSIH is adding a connection to that session (§11.13.5): where no such
// session exists the answer is "session does not exist" (02h/0Ah), not "too many
// connections", which is for a session that does exist (one connection per session here).
TEST(RawProtocol, LoginToAnUnknownSessionIsSessionDoesNotExist) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient c(d.port());
  Pdu p = LoginPdu(0x87, protocol::EncodeTextKeys({{"InitiatorName", "iqn.2026-11.org.untorn:raw"},
                                                   {"TargetName", kTargetIqn},
                                                   {"SessionType", "Normal"}}));
  protocol::StoreBe16(p.bhs, 14, 0x1234);  // TSIH of no session
  c.Send(p);
  auto r = c.Receive();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->RawOpcode(), 0x23);
  EXPECT_EQ(LoginStatusOf(r), 0x020a);
  EXPECT_TRUE(bystander.Works());
}

// Unsolicited data that ends short of FirstBurstLength (F on the command with only part of the
// burst as immediate data, or F on an early unsolicited Data-Out): FirstBurstLength is a
// maximum, so the target solicits the rest from where the unsolicited data ended (§11.7.1,
// §13.14). Before, it solicited from FirstBurstLength on, and the command hung.
TEST(RawProtocol, UnsolicitedDataShorterThanFirstBurstIsFollowedByR2tsFromItsEnd) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "Yes"},
                                   {"InitialR2T", "No"},
                                   {"MaxBurstLength", "262144"},
                                   {"FirstBurstLength", "65536"},
                                   {"MaxRecvDataSegmentLength", "65536"}}));
  constexpr uint32_t kLen = 65536;
  const std::vector<uint8_t> data(kLen, 0x5c);
  for (const bool early_data_out : {false, true}) {
    SCOPED_TRACE(early_data_out ? "F on an early unsolicited Data-Out" : "F on the command");
    const uint32_t itt = early_data_out ? 21 : 20;
    Pdu cmd = CommandPdu(itt, c.next_cmd_sn() + (early_data_out ? 1 : 0), Write10(0, kLen / 512),
                         kLen, static_cast<uint8_t>((early_data_out ? 0x00 : 0x80) | 0x20));
    cmd.data.assign(data.begin(), data.begin() + 8192);  // 8 KiB immediate
    c.Send(cmd);
    uint32_t end = 8192;
    if (early_data_out) {
      Pdu out = DataOutPdu(itt, 0xffffffff, 0, 8192, {data.begin() + 8192, data.begin() + 16384});
      c.Send(out);  // F set: the unsolicited data ends at 16 KiB
      end = 16384;
    }
    auto r2t = c.Receive();
    ASSERT_TRUE(r2t) << "no R2T: the command hangs";
    ASSERT_EQ(r2t->RawOpcode(), 0x31);
    EXPECT_EQ(protocol::LoadBe32(r2t->bhs, 40), end);         // buffer offset
    EXPECT_EQ(protocol::LoadBe32(r2t->bhs, 44), kLen - end);  // desired length
    const uint32_t ttt = protocol::LoadBe32(r2t->bhs, 20);
    c.Send(DataOutPdu(itt, ttt, 0, end, {data.begin() + end, data.end()}));
    auto rsp = c.Receive();
    ASSERT_TRUE(rsp);
    ASSERT_EQ(rsp->RawOpcode(), 0x21);
    EXPECT_EQ(rsp->bhs[3], 0);  // GOOD
  }
  EXPECT_TRUE(bystander.Works());
}

// A WRITE refused at once (LBA out of range) while its unsolicited Data-Out is still on the
// way: untornd answers before the Data-Out arrives (docs/conformance.md says why that is safe
// with one connection per session). The Data-Out that follows is dropped as belonging to no
// task, and a new command reusing the ITT right after it runs on its own data, not on it.
TEST(RawProtocol, RefusedWriteAnsweredBeforeItsUnsolicitedDataOutIsSafeForTheNextCommand) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient c(d.port());
  ASSERT_TRUE(c.Login(kTargetIqn, {{"ImmediateData", "Yes"},
                                   {"InitialR2T", "No"},
                                   {"FirstBurstLength", "65536"},
                                   {"MaxRecvDataSegmentLength", "65536"}}));
  const uint32_t sn = c.next_cmd_sn();
  Pdu bad = CommandPdu(0x40, sn, Write10(0xfffffff0u, 16), 8192, 0x20);  // past the end, F=0
  bad.data.assign(4096, 0xee);
  c.Send(bad);
  c.Send(DataOutPdu(0x40, protocol::kReservedTag, 0, 4096, std::vector<uint8_t>(4096, 0xee)));
  // The same ITT again, at once: a good WRITE of 0x11 to blocks 0-7.
  Pdu good = CommandPdu(0x40, sn + 1, Write10(0, 8), 4096, 0xa0);
  good.data.assign(4096, 0x11);
  c.Send(good);
  auto first = c.Receive();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->RawOpcode(), 0x21);
  EXPECT_EQ(first->bhs[3], 0x02);  // CHECK CONDITION: LBA out of range
  auto second = c.Receive();
  ASSERT_TRUE(second);
  ASSERT_EQ(second->RawOpcode(), 0x21);
  EXPECT_EQ(second->bhs[3], 0x00);
  Pdu read = CommandPdu(0x41, sn + 2, Read10(0, 8), 4096, 0xc0);
  c.Send(read);
  std::vector<uint8_t> back;
  for (int i = 0; i < 8 && back.size() < 4096; ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() == 0x25) back.insert(back.end(), r->data.begin(), r->data.end());
    if (r->RawOpcode() == 0x21) break;
  }
  EXPECT_EQ(back, std::vector<uint8_t>(4096, 0x11));
}

// LOGICAL UNIT RESET ends the tasks of every I_T nexus on the LU (SAM-5 §7.7), not only those
// of the session that asked: another session's WRITE still waiting for its Data-Out is gone
// (its data, when it comes, is dropped and no response is sent), and that session's next
// command gets the reset's unit attention. Before, the other session's WRITE completed GOOD
// after the reset.
TEST(RawProtocol, LogicalUnitResetEndsTheTasksOfEveryNexus) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  RawClient a(d.port());
  ASSERT_TRUE(a.Login(kTargetIqn, {{"InitialR2T", "Yes"}, {"ImmediateData", "No"}}));
  uint32_t sn = a.next_cmd_sn();
  const auto tur_sense = [&](uint32_t itt) -> std::pair<int, int> {  // (status, ASC) or (-1, -1)
    a.Send(CommandPdu(itt, sn++, std::vector<uint8_t>(6, 0), 0));
    auto r = a.Receive();
    if (!r || r->RawOpcode() != 0x21 || protocol::LoadBe32(r->bhs, 16) != itt) return {-1, -1};
    const int asc = r->data.size() >= 2 + 13 ? r->data[2 + 12] : 0;  // SenseLength, then sense
    return {r->bhs[3], asc};
  };
  // Any unit attention the login left is taken first.
  bool ready = false;
  for (uint32_t itt = 1; itt <= 3 && !ready; ++itt) ready = tur_sense(itt).first == 0;
  ASSERT_TRUE(ready);
  a.Send(CommandPdu(3, sn++, Write10(0, 8), 4096, 0xa0));  // waits for its Data-Out
  auto r2t = a.Receive();
  ASSERT_TRUE(r2t);
  ASSERT_EQ(r2t->RawOpcode(), 0x31);
  const uint32_t ttt = protocol::LoadBe32(r2t->bhs, 20);

  std::string error;
  LoginOptions o;
  o.initiator = "iqn.2026-11.org.untorn:resetter";
  Context b = Login(d.portal(), kTargetIqn, o, &error);
  ASSERT_TRUE(b) << error;
  ASSERT_EQ(iscsi_task_mgmt_lun_reset_sync(b.get(), 0), 0) << iscsi_get_error(b.get());

  a.Send(DataOutPdu(3, ttt, 0, 0, std::vector<uint8_t>(4096, 0x42)));
  // The next answer A gets is its TUR's, with the reset's unit attention: nothing for the WRITE.
  const auto after = tur_sense(10);
  EXPECT_EQ(after.first, 0x02) << "the WRITE of the reset LU was answered (or nothing came)";
  EXPECT_EQ(after.second, 0x29);
}

}  // namespace
}  // namespace untorn::testing
