// WRITE ATOMIC(16) over iSCSI: isolation against concurrent reads and writes of the same
// blocks, the CDB sg_write_x --atomic builds, and its metrics.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "iscsi_client.h"
#include "untornd_process.h"

namespace untorn::testing {
namespace {

constexpr int kBlock = 512;
constexpr uint64_t kLba = 64;
constexpr uint32_t kBlocks = 32;  // 16 KiB, an InnoDB page

// Every 8 bytes of every block hold the same stamp: (writer << 32) | sequence.
std::vector<uint8_t> Stamped(uint64_t stamp, uint32_t blocks = kBlocks) {
  std::vector<uint8_t> v(size_t{blocks} * kBlock);
  for (size_t i = 0; i < v.size(); i += 8) std::memcpy(&v[i], &stamp, 8);
  return v;
}

// By the size of the writes and reads: 16 KiB (reads answered on the network thread) and
// 256 KiB (reads sent from the data file's mapping, LogicalUnit::kMappedReadMin).
class Isolation : public ::testing::TestWithParam<uint32_t> {};

TEST_P(Isolation, ReadsNeverSeeAMixOfOverlappingAtomicWrites) {
  const uint32_t blocks = GetParam();
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  constexpr int kWriters = 3, kReaders = 3, kWritesEach = 150;
  std::atomic<int> writers_left{kWriters};
  std::atomic<int> torn{0}, reads{0}, failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::string error;
      LoginOptions o;
      o.initiator = "iqn.2026-11.org.untorn:writer" + std::to_string(w);
      Context c = Login(d.portal(), kTargetIqn, o, &error);
      if (!c) {
        ++failures;
        --writers_left;
        return;
      }
      // At least kWritesEach writes, and on until the readers have raced 300 reads (bounded).
      for (uint32_t seq = 1; seq <= 20 * kWritesEach && (seq <= kWritesEach || reads.load() < 300);
           ++seq) {
        auto data = Stamped((uint64_t{static_cast<uint32_t>(w) + 1} << 32) | seq, blocks);
        Task t(iscsi_writeatomic16_sync(c.get(), 0, kLba, data.data(),
                                        static_cast<uint32_t>(data.size()), kBlock, 0, 0, 0, 0));
        if (!t || t->status != SCSI_STATUS_GOOD) ++failures;
      }
      --writers_left;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::string error;
      LoginOptions o;
      o.initiator = "iqn.2026-11.org.untorn:reader" + std::to_string(r);
      Context c = Login(d.portal(), kTargetIqn, o, &error);
      if (!c) {
        ++failures;
        return;
      }
      while (writers_left.load() > 0) {
        Task t(iscsi_read16_sync(c.get(), 0, kLba, blocks * kBlock, kBlock, 0, 0, 0, 0, 0));
        if (!t || t->status != SCSI_STATUS_GOOD ||
            t->datain.size != static_cast<int>(blocks * kBlock)) {
          ++failures;
          continue;
        }
        ++reads;
        uint64_t first = 0;
        std::memcpy(&first, t->datain.data, 8);
        for (int i = 8; i < t->datain.size; i += 8) {
          uint64_t s = 0;
          std::memcpy(&s, t->datain.data + i, 8);
          if (s != first) {
            ++torn;
            break;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), 0);
  std::printf("atomic isolation, %u blocks: %d reads, %d torn\n", blocks, reads.load(),
              torn.load());
}

INSTANTIATE_TEST_SUITE_P(AtomicWrite, Isolation, ::testing::Values(kBlocks, 512u),
                         [](const ::testing::TestParamInfo<uint32_t>& p) {
                           return std::to_string(p.param * kBlock / 1024) + "KiB";
                         });

// The CDB sg_write_x --atomic=AB --lba=L --num=N [--fua] builds (sg3_utils, SBC-4 table 86):
// 9Ch, flags, 8-byte LBA, 2-byte ATOMIC BOUNDARY = AB, 2-byte TRANSFER LENGTH = N, group, control.
Task SgWriteXAtomic(iscsi_context* c, uint16_t boundary, uint64_t lba, uint16_t num, bool fua,
                    std::vector<uint8_t>& data) {
  uint8_t cdb[16] = {};
  cdb[0] = 0x9c;
  cdb[1] = fua ? 0x08 : 0x00;
  for (int i = 0; i < 8; ++i) cdb[2 + i] = static_cast<uint8_t>(lba >> (56 - 8 * i));
  cdb[10] = static_cast<uint8_t>(boundary >> 8);
  cdb[11] = static_cast<uint8_t>(boundary);
  cdb[12] = static_cast<uint8_t>(num >> 8);
  cdb[13] = static_cast<uint8_t>(num);
  scsi_task* t = scsi_create_task(16, cdb, SCSI_XFER_WRITE, static_cast<int>(data.size()));
  iscsi_data out{static_cast<size_t>(data.size()), data.data()};
  return Task(iscsi_scsi_command_sync(c, 0, t, &out));
}

TEST(AtomicWrite, SgWriteXAtomicCdbSemantics) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context c = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(c) << error;
  std::vector<uint8_t> data(32 * kBlock, 0x3c);
  // --atomic=0: the whole transfer is one atomic unit.
  Task ok = SgWriteXAtomic(c.get(), 0, 256, 32, true, data);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, SCSI_STATUS_GOOD);
  Task r(iscsi_read16_sync(c.get(), 0, 256, 32 * kBlock, kBlock, 0, 0, 0, 0, 0));
  EXPECT_EQ(std::memcmp(r->datain.data, data.data(), data.size()), 0);
  // --atomic=8 asks for 8-block atomic units: this LU advertises no boundary support.
  Task boundary = SgWriteXAtomic(c.get(), 8, 256, 32, false, data);
  ASSERT_TRUE(boundary);
  EXPECT_EQ(boundary->status, SCSI_STATUS_CHECK_CONDITION);
  EXPECT_EQ(boundary->sense.key, SCSI_SENSE_ILLEGAL_REQUEST);
  EXPECT_EQ(boundary->sense.ascq, SCSI_SENSE_ASCQ_INVALID_FIELD_IN_CDB);
  // Misaligned LBA (alignment 8) is refused before any data is written.
  Task misaligned = SgWriteXAtomic(c.get(), 0, 257, 32, false, data);
  EXPECT_EQ(misaligned->status, SCSI_STATUS_CHECK_CONDITION);
  EXPECT_EQ(misaligned->sense.ascq, SCSI_SENSE_ASCQ_INVALID_FIELD_IN_CDB);
  const std::string m = d.Metrics();
  EXPECT_NE(
      m.find("untorn_atomic_writes_total{lun=\"0\",target=\"iqn.2026-11.org.untorn:test\"} 1"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find("reason=\"boundary_not_supported\""), std::string::npos) << m;
  EXPECT_NE(m.find("reason=\"misaligned_lba\""), std::string::npos) << m;
}

TEST(AtomicWrite, BlockLimitsAdvertiseTheConfiguredLimits) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context c = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(c) << error;
  Task t(iscsi_inquiry_sync(c.get(), 0, 1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255));
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, SCSI_STATUS_GOOD);
  auto* bl = static_cast<scsi_inquiry_block_limits*>(scsi_datain_unmarshall(t.get()));
  ASSERT_NE(bl, nullptr);
  EXPECT_EQ(bl->max_atomic_xfer_len, 1024u);
  EXPECT_EQ(bl->atomic_align, 8u);
  EXPECT_EQ(bl->atomic_gran, 8u);
  EXPECT_EQ(bl->max_atomic_tl_with_atomic_boundary, 0u);
  EXPECT_EQ(bl->max_atomic_boundary_size, 0u);
}

}  // namespace
}  // namespace untorn::testing
