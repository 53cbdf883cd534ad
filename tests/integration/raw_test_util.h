// Building blocks of the raw-socket tests (raw_*_test.cc): CDBs and PDUs built by hand, raw
// login steps, a libiscsi bystander session, and the checks several tests share.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "iscsi_client.h"
#include "raw_client.h"
#include "untornd_process.h"

namespace untorn::testing {

using protocol::Pdu;

inline std::vector<uint8_t> Write10(uint32_t lba, uint16_t blocks) {
  std::vector<uint8_t> c(16, 0);
  c[0] = 0x2a;
  protocol::StoreBe32(c, 2, lba);
  protocol::StoreBe16(c, 7, blocks);
  return c;
}
inline std::vector<uint8_t> Read10(uint32_t lba, uint16_t blocks) {
  auto c = Write10(lba, blocks);
  c[0] = 0x28;
  return c;
}

// A SCSI Command PDU for LUN 0. `flags`: 0x80 F, 0x40 R, 0x20 W.
inline Pdu CommandPdu(uint32_t itt, uint32_t cmd_sn, const std::vector<uint8_t>& cdb, uint32_t edtl,
                      uint8_t flags = 0x80, bool immediate = false) {
  Pdu p;
  p.bhs[0] = static_cast<uint8_t>(0x01 | (immediate ? 0x40 : 0));
  p.bhs[1] = flags;
  protocol::StoreBe32(p.bhs, 16, itt);
  protocol::StoreBe32(p.bhs, 20, edtl);
  protocol::StoreBe32(p.bhs, 24, cmd_sn);
  std::copy_n(cdb.begin(), std::min<size_t>(cdb.size(), 16), p.bhs.begin() + 32);
  return p;
}

// A Data-Out PDU for LUN 0 (TTT reserved: unsolicited).
inline Pdu DataOutPdu(uint32_t itt, uint32_t ttt, uint32_t data_sn, uint32_t offset,
                      std::vector<uint8_t> data) {
  Pdu p;
  p.bhs[0] = 0x05;
  p.bhs[1] = 0x80;
  protocol::StoreBe32(p.bhs, 16, itt);
  protocol::StoreBe32(p.bhs, 20, ttt);
  protocol::StoreBe32(p.bhs, 36, data_sn);
  protocol::StoreBe32(p.bhs, 40, offset);
  p.data = std::move(data);
  return p;
}

// A Text Request; `cont` sets the C bit (more of the request follows).
inline Pdu TextPdu(uint32_t itt, uint32_t ttt, uint32_t cmd_sn, bool cont,
                   std::vector<uint8_t> data) {
  Pdu p;
  p.bhs[0] = 0x04;
  p.bhs[1] = cont ? 0x40 : 0x80;
  protocol::StoreBe32(p.bhs, 16, itt);
  protocol::StoreBe32(p.bhs, 20, ttt);
  protocol::StoreBe32(p.bhs, 24, cmd_sn);
  p.data = std::move(data);
  return p;
}

// Login keys for both digests and immediate/unsolicited data.
inline protocol::KeyList DigestsAndImmediateData() {
  return {{"HeaderDigest", "CRC32C"},
          {"DataDigest", "CRC32C"},
          {"ImmediateData", "Yes"},
          {"InitialR2T", "No"}};
}

// A libiscsi session that must keep working while a raw client misbehaves.
class Bystander {
 public:
  explicit Bystander(const UntorndProcess& d) {
    std::string error;
    LoginOptions o;
    o.initiator = "iqn.2026-11.org.untorn:bystander";
    c_ = Login(d.portal(), kTargetIqn, o, &error);
  }
  [[nodiscard]] bool Works() {
    if (!c_) return false;
    Task t(iscsi_testunitready_sync(c_.get(), 0));
    return t && t->status == SCSI_STATUS_GOOD;
  }
  // SCSI status of a READ(10) of `blocks` 512-byte blocks at 0, or -1 if none came back.
  [[nodiscard]] int ReadStatus(uint32_t blocks) {
    if (!c_) return -1;
    Task t(iscsi_read10_sync(c_.get(), 0, 0, blocks * 512, 512, 0, 0, 0, 0, 0));
    return t ? t->status : -1;
  }
  // SCSI status of a WRITE(10) of `blocks` 512-byte blocks of `byte` at 0, or -1 if none came
  // back (libiscsi gives up after 10 s).
  [[nodiscard]] int WriteStatus(uint32_t blocks, uint8_t byte) {
    if (!c_) return -1;
    std::vector<uint8_t> data(size_t{blocks} * 512, byte);
    Task t(iscsi_write10_sync(c_.get(), 0, 0, data.data(), blocks * 512, 512, 0, 0, 0, 0, 0));
    return t ? t->status : -1;
  }

 private:
  Context c_;
};

// DefaultConfig() with more keys in its "limits" object.
inline std::string WithLimits(const std::string& keys) {
  std::string config = DefaultConfig();
  const std::string nop = "\"nop_interval_seconds\": 5";
  config.replace(config.find(nop), nop.size(), nop + ", " + keys);
  return config;
}

// A Login Request as a raw client sends it: ISID 0x80...07, ITT 1; `flags` is byte 1 (T, C,
// CSG, NSG).
inline Pdu LoginPdu(uint8_t flags, std::vector<uint8_t> data) {
  Pdu p;
  p.bhs[0] = 0x43;
  p.bhs[1] = flags;
  p.bhs[8] = 0x80;  // ISID
  p.bhs[13] = 0x07;
  protocol::StoreBe32(p.bhs, 16, 1);
  p.data = std::move(data);
  return p;
}

// One Login Request of a raw login: stage `csg` (0 security, 1 operational) moving to `nsg`
// when `transit`; returns the Login Response, or nullopt if none came.
inline std::optional<Pdu> LoginStep(RawClient& c, uint8_t csg, uint8_t nsg, bool transit,
                                    const protocol::KeyList& keys) {
  c.Send(LoginPdu(static_cast<uint8_t>((transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0)),
                  protocol::EncodeTextKeys(keys)));
  auto r = c.Receive();
  if (r && r->RawOpcode() != 0x23) return std::nullopt;
  return r;
}

inline uint16_t LoginStatusOf(const std::optional<Pdu>& r) {
  return r ? protocol::LoadBe16(r->bhs, 36) : 0xffff;
}

inline std::string KeyValue(const Pdu& r, const std::string& key) {
  std::string error;
  const auto keys = protocol::ParseTextKeys(r.data, &error);
  if (keys) {
    for (const auto& k : *keys) {
      if (k.key == key) return k.value;
    }
  }
  return {};
}

// After a Data-Out the target cannot accept: a Reject (protocol error) and the task's SCSI
// Response, CHECK CONDITION with ABORTED COMMAND 4Bh/`ascq`, in either order.
inline void ExpectTaskAbortedAfterReject(RawClient& c, uint8_t ascq) {
  bool rejected = false;
  std::optional<Pdu> response;
  for (int i = 0; i < 4 && !(rejected && response); ++i) {
    auto r = c.Receive();
    ASSERT_TRUE(r);
    if (r->RawOpcode() == 0x3f) {
      EXPECT_EQ(r->bhs[2], 0x04);  // protocol error
      rejected = true;
    } else if (r->RawOpcode() == 0x21) {
      response = r;
    }
  }
  ASSERT_TRUE(rejected);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->bhs[3], 0x02);  // CHECK CONDITION
  ASSERT_GE(response->data.size(), 2u + 14u);
  EXPECT_EQ(response->data[2 + 2] & 0x0f, 0x0b);  // ABORTED COMMAND
  EXPECT_EQ(response->data[2 + 12], 0x4b);
  EXPECT_EQ(response->data[2 + 13], ascq);
}

// TEST UNIT READY with `cmd_sn` answers GOOD: the session goes on.
inline void ExpectTestUnitReadyGood(RawClient& c, uint32_t itt, uint32_t cmd_sn) {
  c.Send(CommandPdu(itt, cmd_sn, std::vector<uint8_t>(6, 0), 0));
  auto ok = c.Receive();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->RawOpcode(), 0x21);
  EXPECT_EQ(ok->bhs[3], 0x00);
}

}  // namespace untorn::testing
