#include "target/scsi/logical_unit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>

#include "protocol/byte_order.h"
#include "storage/fault_file_system.h"
#include "storage/file_store.h"
#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"

namespace untorn::target {
namespace {

using protocol::Sense;
using protocol::SenseKey;

class LogicalUnitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/untorn-lu-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    Make(false);
  }
  void TearDown() override {
    lu_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Make(bool read_only) {
    lu_.reset();
    config::Lun l;
    l.size = 1 << 24;  // 32768 blocks
    l.block_size = 512;
    l.physical_block_size = 512;
    l.read_only = read_only;
    l.atomic = {1024, 8, 8, 0, 0, false};
    storage::FileStore::Options o{dir_ + "/lun.img", l.size, 512, false};
    std::unique_ptr<storage::FileStore> store;
    ASSERT_TRUE(storage::FileStore::Open(o, &store).ok());
    lu_ = std::make_unique<LogicalUnit>(l, "iqn.2026-11.org.untorn:t", std::move(store), &metrics_);
    lu_->SetTargetLuns({0});
    lu_->AddNexus(nexus_);
  }
  static std::vector<uint8_t> WriteAtomic16(uint64_t lba, uint16_t blocks, uint8_t byte1 = 0,
                                            uint16_t boundary = 0) {
    std::vector<uint8_t> c(16, 0);
    c[0] = 0x9c;
    c[1] = byte1;
    protocol::StoreBe64(c, 2, lba);
    protocol::StoreBe16(c, 10, boundary);
    protocol::StoreBe16(c, 12, blocks);
    return c;
  }
  // Prepare, then (if accepted) execute with `data`.
  ScsiOutcome Run(const std::vector<uint8_t>& cdb, std::vector<uint8_t> data = {}) {
    CommandPlan p = lu_->Prepare(nexus_, cdb);
    if (p.done) return *p.done;
    EXPECT_EQ(p.data_out_length, data.size());
    return lu_->Execute(nexus_, cdb, std::move(data));
  }
  static void ExpectSense(const ScsiOutcome& o, SenseKey key, uint8_t asc, uint8_t ascq) {
    ASSERT_EQ(o.status, protocol::ScsiStatus::kCheckCondition);
    ASSERT_TRUE(o.sense);
    EXPECT_EQ(o.sense->key, key);
    EXPECT_EQ(o.sense->asc, asc);
    EXPECT_EQ(o.sense->ascq, ascq);
  }

  std::string dir_;
  Metrics metrics_;
  Nexus nexus_{1, "iqn.x", 1};
  std::unique_ptr<LogicalUnit> lu_;
};

// The file system under the LU is full: writes get DATA PROTECT, SPACE ALLOCATION FAILED WRITE
// PROTECT (what Linux's sd turns into ENOSPC), reads go on, and once there is room writes work.
TEST_F(LogicalUnitTest, FullFileSystemAnswersSpaceAllocationFailedUntilThereIsRoom) {
  storage::MemFileSystem fs;
  config::Lun l;
  l.size = 1 << 20;
  l.atomic = {1024, 8, 8, 0, 0, false};
  storage::FileStore::Options o{"/lun.img", l.size, 512, false};
  o.fs = &fs;
  std::unique_ptr<storage::FileStore> store;
  ASSERT_TRUE(storage::FileStore::Open(o, &store).ok());
  lu_ = std::make_unique<LogicalUnit>(l, "iqn.2026-11.org.untorn:t", std::move(store), &metrics_);
  lu_->SetTargetLuns({0});
  lu_->AddNexus(nexus_);
  std::vector<uint8_t> write16(16, 0);
  write16[0] = 0x8a;
  protocol::StoreBe32(write16, 10, 8);
  fs.SetNoSpace("/lun.img", true);
  ExpectSense(Run(write16, std::vector<uint8_t>(4096, 1)), SenseKey::kDataProtect, 0x27, 0x07);
  ExpectSense(Run(WriteAtomic16(8, 8), std::vector<uint8_t>(4096, 2)), SenseKey::kDataProtect, 0x27,
              0x07);
  std::vector<uint8_t> read16(16, 0);
  read16[0] = 0x88;
  protocol::StoreBe32(read16, 10, 8);
  EXPECT_EQ(Run(read16).status, protocol::ScsiStatus::kGood);
  fs.SetNoSpace("/lun.img", false);
  EXPECT_EQ(Run(write16, std::vector<uint8_t>(4096, 1)).status, protocol::ScsiStatus::kGood);
  EXPECT_EQ(Run(WriteAtomic16(8, 8), std::vector<uint8_t>(4096, 2)).status,
            protocol::ScsiStatus::kGood);
}

// Found by fuzz_scsi: a MODE SELECT(10) opcode in a 6-byte CDB was decoded past its end.
TEST_F(LogicalUnitTest, CdbShorterThanItsOpcodeIsRefused) {
  ExpectSense(Run({0x55, 0x00, 0x00, 0xff, 0x00, 0x12}), SenseKey::kIllegalRequest, 0x24, 0x00);
  ExpectSense(Run({0x9c, 0, 0, 0, 0, 0, 0, 0, 0, 0}), SenseKey::kIllegalRequest, 0x24, 0x00);
  std::vector<uint8_t> variable(16, 0);  // 7Fh without the rest of its 32 bytes
  variable[0] = 0x7f;
  variable[7] = 0x18;
  const ScsiOutcome o = Run(variable);
  ExpectSense(o, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(LogicalUnitTest, WriteAtomicWritesAndReadsBack) {
  std::vector<uint8_t> data(8 * 512, 0x77);
  const auto o = Run(WriteAtomic16(16, 8), data);
  EXPECT_EQ(o.status, protocol::ScsiStatus::kGood);
  std::vector<uint8_t> read(16, 0);
  read[0] = 0x88;
  protocol::StoreBe64(read, 2, 16);
  protocol::StoreBe32(read, 10, 8);
  const auto got = Run(read).data_in;
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.end()), data);
}

// With kMayMap a READ of kMappedReadMin or more answers from the store's mapping, with the same
// bytes a copied READ gives; smaller ones, and kCopy, are copied. Either is counted as read.
TEST_F(LogicalUnitTest, LargeReadMayBeAnsweredFromTheMapping) {
  const uint32_t blocks = LogicalUnit::kMappedReadMin / 512;
  std::vector<uint8_t> data(size_t{blocks} * 512);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13);
  std::vector<uint8_t> write(16, 0);
  write[0] = 0x8a;
  protocol::StoreBe32(write, 10, blocks);
  ASSERT_EQ(Run(write, data).status, protocol::ScsiStatus::kGood);
  const auto read16 = [](uint32_t n) {
    std::vector<uint8_t> c(16, 0);
    c[0] = 0x88;
    protocol::StoreBe32(c, 10, n);
    return c;
  };
  const auto big = read16(blocks), small = read16(blocks - 1);
  ASSERT_FALSE(lu_->Prepare(nexus_, big).done);
  const ScsiOutcome mapped = lu_->Execute(nexus_, big, {}, LogicalUnit::DataInMode::kMayMap);
  ASSERT_EQ(mapped.status, protocol::ScsiStatus::kGood);
  ASSERT_TRUE(mapped.mapped_in);
  EXPECT_TRUE(mapped.data_in.empty());
  ASSERT_EQ(mapped.data_in_size(), data.size());
  EXPECT_EQ(std::memcmp(mapped.mapped_in->bytes().data(), data.data(), data.size()), 0);
  const ScsiOutcome copied = lu_->Execute(nexus_, big, {}, LogicalUnit::DataInMode::kCopy);
  EXPECT_FALSE(copied.mapped_in);
  EXPECT_EQ(std::vector<uint8_t>(copied.data_in.begin(), copied.data_in.end()), data);
  const ScsiOutcome below = lu_->Execute(nexus_, small, {}, LogicalUnit::DataInMode::kMayMap);
  EXPECT_FALSE(below.mapped_in);
  EXPECT_EQ(below.data_in.size(), data.size() - 512);
}

TEST_F(LogicalUnitTest, WriteAtomicZeroLengthIsGood) {
  EXPECT_EQ(Run(WriteAtomic16(0, 0)).status, protocol::ScsiStatus::kGood);
}

TEST_F(LogicalUnitTest, WriteAtomicOverMaximumIsInvalidFieldAtLength) {
  const auto o = Run(WriteAtomic16(0, 1032));
  ExpectSense(o, SenseKey::kIllegalRequest, 0x24, 0x00);
  EXPECT_EQ(o.sense->field->byte, 12);
}

TEST_F(LogicalUnitTest, WriteAtomicMisalignedLbaIsInvalidFieldAtLba) {
  const auto o = Run(WriteAtomic16(1, 8));
  ExpectSense(o, SenseKey::kIllegalRequest, 0x24, 0x00);
  EXPECT_EQ(o.sense->field->byte, 2);
}

TEST_F(LogicalUnitTest, WriteAtomicLengthNotMultipleOfGranularity) {
  const auto o = Run(WriteAtomic16(0, 12));
  ExpectSense(o, SenseKey::kIllegalRequest, 0x24, 0x00);
  EXPECT_EQ(o.sense->field->byte, 12);
}

TEST_F(LogicalUnitTest, WriteAtomicBoundaryWithoutBoundarySupport) {
  const auto o = Run(WriteAtomic16(0, 8, 0, 8));
  ExpectSense(o, SenseKey::kIllegalRequest, 0x24, 0x00);
  EXPECT_EQ(o.sense->field->byte, 10);
}

TEST_F(LogicalUnitTest, WriteAtomicWrprotectWithoutProtectionInformation) {
  for (uint8_t wp = 1; wp < 8; ++wp) {
    const auto o = Run(WriteAtomic16(0, 8, static_cast<uint8_t>(wp << 5)));
    ExpectSense(o, SenseKey::kIllegalRequest, 0x24, 0x00);
    EXPECT_EQ(o.sense->field->byte, 1);
    EXPECT_EQ(*o.sense->field->bit, 7);
  }
}

TEST_F(LogicalUnitTest, WriteAtomicPastEndIsLbaOutOfRangeEvenWhenAlsoTooLong) {
  ExpectSense(Run(WriteAtomic16(32768 - 8, 2048)), SenseKey::kIllegalRequest, 0x21, 0x00);
  ExpectSense(Run(WriteAtomic16(32768, 0)), SenseKey::kIllegalRequest, 0x21, 0x00);
  ExpectSense(Run(WriteAtomic16(1ULL << 63, 0)), SenseKey::kIllegalRequest, 0x21, 0x00);
  ExpectSense(Run(WriteAtomic16(~0ULL - 7, 8)), SenseKey::kIllegalRequest, 0x21, 0x00);
}

TEST_F(LogicalUnitTest, WriteAtomicOnWriteProtectedLu) {
  Make(true);
  ExpectSense(Run(WriteAtomic16(0, 8)), SenseKey::kDataProtect, 0x27, 0x00);
}

TEST_F(LogicalUnitTest, WriteAtomic32IsUnsupportedServiceAction) {
  std::vector<uint8_t> c(32, 0);
  c[0] = 0x7f;
  c[7] = 0x18;
  protocol::StoreBe16(c, 8, 0x000f);
  const auto o = Run(c);
  ExpectSense(o, SenseKey::kIllegalRequest, 0x24, 0x00);
  EXPECT_EQ(o.sense->field->byte, 8);
}

TEST_F(LogicalUnitTest, UnknownOpcodeIsInvalidCommandOperationCode) {
  std::vector<uint8_t> c(16, 0);
  c[0] = 0xc7;
  ExpectSense(Run(c), SenseKey::kIllegalRequest, 0x20, 0x00);
}

TEST_F(LogicalUnitTest, ReportSupportedOpcodesListsWriteAtomicWithDpoFuaUsage) {
  std::vector<uint8_t> c(12, 0);
  c[0] = 0xa3;
  c[1] = 0x0c;
  c[2] = 0x01;  // one command, no service action
  c[3] = 0x9c;
  protocol::StoreBe32(c, 6, 64);
  const auto o = Run(c);
  ASSERT_EQ(o.status, protocol::ScsiStatus::kGood);
  EXPECT_EQ(o.data_in[1] & 0x07, 0x03);             // supported as the standard says
  EXPECT_EQ(protocol::LoadBe16(o.data_in, 2), 16);  // CDB size
  EXPECT_EQ(o.data_in[4], 0x9c);
  EXPECT_EQ(o.data_in[5] & 0x18, 0x18);  // DPO and FUA usable
}

TEST_F(LogicalUnitTest, ModeSelectTurnsWriteCacheOffAndRaisesUnitAttentionForOthers) {
  const Nexus other{2, "iqn.y", 2};
  lu_->AddNexus(other);
  // MODE SENSE(6) caching page, then flip WCE in it and MODE SELECT it back.
  std::vector<uint8_t> sense6 = {0x1a, 0x08, 0x08, 0, 0xff, 0};
  const auto sensed = Run(sense6).data_in;
  std::vector<uint8_t> page(sensed.begin(), sensed.end());
  ASSERT_GE(page.size(), 4u + 20u);
  EXPECT_EQ(page[4 + 2] & 0x04, 0x04);  // WCE on
  page[0] = 0;
  page[4 + 2] &= static_cast<uint8_t>(~0x04);
  std::vector<uint8_t> select6 = {0x15, 0x10, 0, 0, static_cast<uint8_t>(page.size()), 0};
  EXPECT_EQ(Run(select6, page).status, protocol::ScsiStatus::kGood);
  EXPECT_EQ(Run(sense6).data_in[4 + 2] & 0x04, 0);
  const std::vector<uint8_t> tur(6, 0);
  const CommandPlan p = lu_->Prepare(other, tur);
  ASSERT_TRUE(p.done);
  ExpectSense(*p.done, SenseKey::kUnitAttention, 0x2a, 0x01);
}

TEST_F(LogicalUnitTest, LunResetRaisesPowerOnResetForOtherNexuses) {
  const Nexus other{2, "iqn.y", 2};
  lu_->AddNexus(other);
  lu_->Reset(nexus_);
  const std::vector<uint8_t> tur(6, 0);
  EXPECT_FALSE(lu_->Prepare(nexus_, tur).done);
  ExpectSense(*lu_->Prepare(other, tur).done, SenseKey::kUnitAttention, 0x29, 0x00);
  EXPECT_FALSE(lu_->Prepare(other, tur).done);  // reported once
}

TEST_F(LogicalUnitTest, Reserve6BlocksOtherNexus) {
  const Nexus other{2, "iqn.y", 2};
  lu_->AddNexus(other);
  EXPECT_EQ(Run({0x16, 0, 0, 0, 0, 0}).status, protocol::ScsiStatus::kGood);
  const std::vector<uint8_t> tur(6, 0);
  ASSERT_TRUE(lu_->Prepare(other, tur).done);
  EXPECT_EQ(lu_->Prepare(other, tur).done->status, protocol::ScsiStatus::kReservationConflict);
  lu_->NexusLost(nexus_);
  EXPECT_FALSE(lu_->Prepare(other, tur).done);
}

TEST_F(LogicalUnitTest, CompareAndWriteMiscompareReportsOffset) {
  std::vector<uint8_t> cdb(16, 0);
  cdb[0] = 0x89;
  protocol::StoreBe64(cdb, 2, 0);
  cdb[13] = 1;
  std::vector<uint8_t> data(1024, 0);  // compare zeros (matches), write 0x11
  std::fill(data.begin() + 512, data.end(), 0x11);
  EXPECT_EQ(Run(cdb, data).status, protocol::ScsiStatus::kGood);
  const auto o = Run(cdb, data);  // medium now holds 0x11: first byte differs
  ExpectSense(o, SenseKey::kMiscompare, 0x1d, 0x00);
  EXPECT_EQ(*o.sense->information, 0u);
}

TEST_F(LogicalUnitTest, InquiryBlockLimitsCarriesAtomicLimits) {
  const auto o = Run({0x12, 0x01, 0xb0, 0x00, 0xff, 0x00});
  ASSERT_EQ(o.data_in.size(), 64u);
  EXPECT_EQ(protocol::LoadBe32(o.data_in, 44), 1024u);
  EXPECT_EQ(protocol::LoadBe32(o.data_in, 48), 8u);
  EXPECT_EQ(protocol::LoadBe32(o.data_in, 52), 8u);
}

TEST_F(LogicalUnitTest, ReadBeyondEndAndOverMaximumTransfer) {
  std::vector<uint8_t> r16(16, 0);
  r16[0] = 0x88;
  protocol::StoreBe64(r16, 2, 32767);
  protocol::StoreBe32(r16, 10, 2);
  ExpectSense(Run(r16), SenseKey::kIllegalRequest, 0x21, 0x00);
  protocol::StoreBe64(r16, 2, 0);
  protocol::StoreBe32(r16, 10, 16385);
  ExpectSense(Run(r16), SenseKey::kIllegalRequest, 0x24, 0x00);
}

// A WRITE from another nexus arrives while COMPARE AND WRITE has read and compared its blocks
// but not yet written them. It must land wholly after the COMPARE AND WRITE (or before the
// compare): both GOOD and the medium holding the COMPARE AND WRITE's data would be a write
// silently lost. Before the fix the WRITE, queued first for the blocks, landed in between.
// For both stores, the file store and the journaled one.
TEST_F(LogicalUnitTest, CompareAndWriteIsAtomicAgainstAConcurrentWrite) {
  for (const bool journaled : {false, true}) {
    SCOPED_TRACE(journaled ? "journaled store" : "file store");
    storage::MemFileSystem mem;
    storage::FaultFileSystem fs(&mem);
    config::Lun l;
    l.size = 1 << 20;
    l.atomic = {1024, 8, 8, 0, 0, false};
    std::unique_ptr<storage::BlockStore> store;
    if (journaled) {
      storage::JournaledStore::Options o;
      o.data_path = "/lun.img";
      o.size_bytes = l.size;
      o.fs = &fs;
      o.background_checkpoint = false;
      std::unique_ptr<storage::JournaledStore> j;
      ASSERT_TRUE(storage::JournaledStore::Open(o, &j, nullptr).ok());
      store = std::move(j);
    } else {
      storage::FileStore::Options o{"/lun.img", l.size, 512, false};
      o.fs = &fs;
      std::unique_ptr<storage::FileStore> f;
      ASSERT_TRUE(storage::FileStore::Open(o, &f).ok());
      store = std::move(f);
    }
    lu_ = std::make_unique<LogicalUnit>(l, "iqn.2026-11.org.untorn:t", std::move(store), &metrics_);
    lu_->SetTargetLuns({0});
    lu_->AddNexus(nexus_);
    const Nexus other{2, "iqn.other", 2};
    lu_->AddNexus(other);
    std::vector<uint8_t> tur(6, 0);
    (void)lu_->Execute(other, tur, {});  // the other nexus's POWER ON unit attention

    std::vector<uint8_t> caw(16, 0);
    caw[0] = 0x89;
    caw[13] = 8;  // 8 blocks at LBA 0: compare zeros, write 0x11
    std::vector<uint8_t> caw_data(8192, 0);
    std::fill(caw_data.begin() + 4096, caw_data.end(), 0x11);
    std::vector<uint8_t> write16(16, 0);
    write16[0] = 0x8a;
    protocol::StoreBe32(write16, 10, 8);  // the same 8 blocks: 0xee

    std::future<ScsiOutcome> racing;
    std::mutex mu;
    std::condition_variable cv;
    bool write_done = false;
    fs.SetHook([&](const storage::FaultFileSystem::Call& c) {
      // The COMPARE AND WRITE's read of its blocks: the other nexus writes them now. Give that
      // write a bounded chance to land before the compare-and-write goes on; with the blocks
      // held it cannot, and the wait runs out.
      if (c.op != storage::FaultFileSystem::Op::kPRead || c.path != "/lun.img" || racing.valid()) {
        return;
      }
      racing = std::async(std::launch::async, [&] {
        ScsiOutcome o = lu_->Execute(other, write16, std::vector<uint8_t>(4096, 0xee));
        std::lock_guard lk(mu);
        write_done = true;
        cv.notify_all();
        return o;
      });
      std::unique_lock lk(mu);
      cv.wait_for(lk, std::chrono::milliseconds(300), [&] { return write_done; });
    });
    const ScsiOutcome caw_outcome = Run(caw, caw_data);
    ASSERT_TRUE(racing.valid());
    const ScsiOutcome write_outcome = racing.get();
    fs.SetHook(nullptr);
    EXPECT_EQ(write_outcome.status, protocol::ScsiStatus::kGood);
    std::vector<uint8_t> read16(16, 0);
    read16[0] = 0x88;
    protocol::StoreBe32(read16, 10, 8);
    const ScsiOutcome back = Run(read16);
    ASSERT_EQ(back.data_in.size(), 4096u);
    if (caw_outcome.status == protocol::ScsiStatus::kGood) {
      // The COMPARE AND WRITE came first: the WRITE must be what is left.
      EXPECT_EQ(back.data_in[0], 0xee) << "the GOOD WRITE was overwritten by COMPARE AND WRITE";
    } else {
      ExpectSense(caw_outcome, SenseKey::kMiscompare, 0x1d, 0x00);
      EXPECT_EQ(back.data_in[0], 0xee);
    }
    EXPECT_TRUE(std::all_of(back.data_in.begin(), back.data_in.end(),
                            [&](uint8_t b) { return b == back.data_in[0]; }));
    lu_.reset();
  }
}

}  // namespace
}  // namespace untorn::target

namespace untorn::target {
namespace {

// Resize: READ CAPACITY answers the new size, every nexus gets CAPACITY DATA HAS CHANGED, the
// new end is what commands are checked against, and shrinking needs to be asked for.
TEST_F(LogicalUnitTest, ResizeChangesTheCapacityWithAUnitAttention) {
  const std::vector<uint8_t> tur(6, 0);
  for (int i = 0; i < 4 && Run(tur).status != protocol::ScsiStatus::kGood; ++i) {
  }
  ASSERT_EQ(Run(tur).status, protocol::ScsiStatus::kGood);
  std::vector<uint8_t> rc16(16, 0);
  rc16[0] = 0x9e;
  rc16[1] = 0x10;
  rc16[13] = 32;
  const auto last_lba = [&] {
    const ScsiOutcome o = Run(rc16);
    EXPECT_EQ(o.status, protocol::ScsiStatus::kGood);
    return o.data_in.size() >= 8 ? protocol::LoadBe64(o.data_in, 0) : 0;
  };
  EXPECT_EQ(last_lba(), 32767u);
  std::vector<uint8_t> write16(16, 0);
  write16[0] = 0x8a;
  protocol::StoreBe64(write16, 2, 40000);
  protocol::StoreBe32(write16, 10, 8);
  ExpectSense(Run(write16, std::vector<uint8_t>(4096, 3)), SenseKey::kIllegalRequest, 0x21, 0x00);

  ASSERT_TRUE(lu_->Resize(uint64_t{1} << 25, false).ok());
  ExpectSense(Run(tur), SenseKey::kUnitAttention, 0x2a, 0x09);
  EXPECT_EQ(Run(tur).status, protocol::ScsiStatus::kGood);
  EXPECT_EQ(last_lba(), 65535u);
  EXPECT_EQ(Run(write16, std::vector<uint8_t>(4096, 3)).status, protocol::ScsiStatus::kGood);

  const storage::Status refused = lu_->Resize(uint64_t{1} << 24, false);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("force"), std::string::npos) << refused.message();
  EXPECT_EQ(last_lba(), 65535u);
  EXPECT_FALSE(lu_->Resize(1000, true).ok());
  ASSERT_TRUE(lu_->Resize(uint64_t{1} << 24, true).ok());
  ExpectSense(Run(tur), SenseKey::kUnitAttention, 0x2a, 0x09);
  EXPECT_EQ(last_lba(), 32767u);
  ExpectSense(Run(write16, std::vector<uint8_t>(4096, 3)), SenseKey::kIllegalRequest, 0x21, 0x00);
}

}  // namespace
}  // namespace untorn::target

namespace untorn::target {
namespace {

// APTPL state that cannot be made durable is not answered GOOD: the PERSISTENT RESERVE OUT
// fails with INTERNAL TARGET FAILURE and the reservation state is as before it.
TEST_F(LogicalUnitTest, AptplStateThatCannotBeKeptRefusesTheCommand) {
  storage::MemFileSystem fs;
  ASSERT_TRUE(lu_->KeepReservationsIn("/lun.img.pr", &fs).ok());
  std::vector<uint8_t> prout(10, 0);
  prout[0] = 0x5f;
  prout[8] = 24;
  std::vector<uint8_t> params(24, 0);
  protocol::StoreBe64(params, 8, 0x77);  // REGISTER key 0x77
  params[20] = 0x01;                     // APTPL
  fs.FailSyncsAfter(0);
  ExpectSense(Run(prout, params), SenseKey::kHardwareError, 0x44, 0x00);
  std::vector<uint8_t> prin(10, 0);
  prin[0] = 0x5e;
  prin[8] = 64;  // READ KEYS
  const ScsiOutcome keys = Run(prin);
  ASSERT_EQ(keys.status, protocol::ScsiStatus::kGood);
  EXPECT_EQ(protocol::LoadBe32(keys.data_in, 4), 0u) << "registered without being kept";
  fs.FailSyncsAfter(-1);
  EXPECT_EQ(Run(prout, params).status, protocol::ScsiStatus::kGood);
  EXPECT_FALSE(fs.Contents("/lun.img.pr").empty());
}

}  // namespace
}  // namespace untorn::target
