// Named regression tests for the journaled store under I/O faults, on the in-memory file system
// behind the fault-injecting decorator: each forces the interleaving it names.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "storage/fault_file_system.h"
#include "storage/journal_format.h"
#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"
#include "tests/storage/journaled_test_util.h"

namespace untorn::storage {
namespace {

using Op = FaultFileSystem::Op;
using testing::Fill;
using testing::kLun;
using testing::kPath;
using testing::OpenOk;
using testing::Opts;

// All bytes equal to one of `a` or `b` throughout (the range is whole), or a description.
std::string Whole(const std::vector<uint8_t>& got, uint8_t a, uint8_t b) {
  if (got.empty()) return "nothing read";
  const uint8_t first = got[0];
  if (first != a && first != b) return "unexpected byte " + std::to_string(first);
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != first) {
      return "torn at byte " + std::to_string(i) + ": " + std::to_string(first) + " then " +
             std::to_string(got[i]);
    }
  }
  return "";
}

uint64_t SuperblockApplied(MemFileSystem& mem) {
  const auto bytes = mem.Contents(JournaledStore::SuperPath(kPath));
  std::string why;
  const auto sb = journal::DecodeSuperblock(bytes, &why);
  EXPECT_TRUE(sb) << why;
  return sb ? sb->applied_sequence : 0;
}

// One signal a test thread waits for with a deadline, never for ever.
class Latch {
 public:
  void Set() {
    std::lock_guard lk(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool WaitFor(std::chrono::milliseconds d) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, d, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

// The first journal record write is held (its caller has reserved its record) until a second
// one arrives; `first` is set when it is held, `second` when the second arrives.
void HoldFirstJournalWriteUntilTheSecond(FaultFileSystem& fs, Latch& first, Latch& second) {
  auto writes = std::make_shared<std::atomic<int>>(0);
  fs.SetHook([&first, &second, writes](const FaultFileSystem::Call& c) {
    if (c.op != Op::kPWrite || !c.path.ends_with(".journal")) return;
    if (++*writes == 1) {
      first.Set();
      EXPECT_TRUE(second.WaitFor(std::chrono::seconds(10)));
    } else {
      second.Set();
    }
  });
}

// Records N and N+1 are reserved concurrently; N's journal write fails, N+1's succeeds. One
// fdatasync would make N+1 durable, but recovery stops at the gap at N, so N+1 must not be
// acknowledged: it fails too, before anything acknowledges it. Before the fix N was marked
// written anyway and N+1 got Ok.
TEST(StoreFaults, FailedJournalWriteFailsEveryLaterRecordBeforeAnyIsAcknowledged) {
  MemFileSystem mem;
  FaultFileSystem fs(&mem);
  auto store = OpenOk(&fs);
  Latch first_arrived, second_arrived;
  HoldFirstJournalWriteUntilTheSecond(fs, first_arrived, second_arrived);
  fs.Inject({Op::kPWrite, ".journal", 1, Status::Code::kIoError});
  auto a = std::async(std::launch::async, [&] {
    return store->WriteAtomic(0, Fill(4096, 0xaa), Durability::kDurable);
  });
  ASSERT_TRUE(first_arrived.WaitFor(std::chrono::seconds(10)));  // N reserved, its write held
  auto b = std::async(std::launch::async, [&] {
    return store->WriteAtomic(8192, Fill(4096, 0xbb), Durability::kDurable);
  });
  const Status sa = a.get();
  const Status sb = b.get();
  fs.SetHook(nullptr);
  EXPECT_FALSE(sa.ok());
  EXPECT_FALSE(sb.ok()) << "record N+1 acknowledged behind the failed record N";
  EXPECT_NE(sb.message().find("injected"), std::string::npos)
      << "the real error is not named: " << sb.message();
  // The store is failed for good: nothing more is acknowledged.
  EXPECT_FALSE(store->WriteAtomic(16384, Fill(4096, 0xcc), Durability::kDurable).ok());
  EXPECT_EQ(fs.injected(), 1u);
}

// The same interleaving, then power cuts: whatever was acknowledged is there after recovery.
TEST(StoreFaults, NothingAcknowledgedIsLostWhenAnEarlierJournalWriteFailed) {
  for (int round = 0; round < 2; ++round) {
    MemFileSystem mem;
    FaultFileSystem fs(&mem);
    auto store = OpenOk(&fs);
    Latch first_arrived, second_arrived;
    HoldFirstJournalWriteUntilTheSecond(fs, first_arrived, second_arrived);
    // round 0: the first record's write fails; round 1: the second's.
    fs.Inject({Op::kPWrite, ".journal", static_cast<uint64_t>(round + 1), Status::Code::kIoError});
    auto a = std::async(std::launch::async, [&] {
      return store->WriteAtomic(0, Fill(4096, 0xaa), Durability::kDurable);
    });
    ASSERT_TRUE(first_arrived.WaitFor(std::chrono::seconds(10)));
    auto b = std::async(std::launch::async, [&] {
      return store->WriteAtomic(8192, Fill(4096, 0xbb), Durability::kDurable);
    });
    const bool a_ok = a.get().ok(), b_ok = b.get().ok();
    fs.SetHook(nullptr);
    store.reset();
    std::mt19937_64 rng(round);
    for (int cut = 0; cut < 50; ++cut) {
      auto crashed = mem.CrashState(mem.EventCount(), rng);
      auto back = OpenOk(crashed.get());
      ASSERT_TRUE(back);
      std::vector<uint8_t> got(4096);
      ASSERT_TRUE(back->Read(0, got).ok());
      if (a_ok) {
        EXPECT_EQ(Whole(got, 0xaa, 0xaa), "") << "acknowledged record A lost, cut " << cut;
      }
      ASSERT_TRUE(back->Read(8192, got).ok());
      if (b_ok) {
        EXPECT_EQ(Whole(got, 0xbb, 0xbb), "") << "acknowledged record B lost, cut " << cut;
      }
    }
  }
}

// The data-file write of a durable record fails half way (an I/O error after some of its
// pieces). The blocks are torn in the data file: no read may see them so, and no checkpoint,
// including one already waiting for the record, may retire the record; the next start replays
// it whole. Before the fix the read saw the tear at once and the waiting checkpoint retired it.
TEST(StoreFaults, RecordWhoseApplyFailedIsNeverRetiredNorReadTorn) {
  MemFileSystem mem;
  FaultFileSystem fs(&mem);
  constexpr size_t kLen = 128 << 10;
  {
    auto store = OpenOk(&fs);
    ASSERT_TRUE(store->WriteAtomic(0, Fill(kLen, 0x11), Durability::kDurable).ok());
    const uint64_t applied_before = SuperblockApplied(mem);
    std::future<Status> checkpoint;
    fs.SetHook([&](const FaultFileSystem::Call& c) {
      // While the failing apply runs, a checkpoint starts and waits for the record.
      if (c.op == Op::kPWrite && c.path == kPath && !checkpoint.valid()) {
        checkpoint = std::async(std::launch::async, [&] { return store->Checkpoint(); });
      }
    });
    fs.Inject({Op::kPWrite, kPath, 1, Status::Code::kIoError, false, 512});
    const Status w = store->WriteAtomic(0, Fill(kLen, 0x22), Durability::kDurable);
    EXPECT_FALSE(w.ok());
    EXPECT_NE(w.message().find("journal record"), std::string::npos) << w.message();
    ASSERT_TRUE(checkpoint.valid());
    EXPECT_FALSE(checkpoint.get().ok());
    fs.SetHook(nullptr);
    EXPECT_EQ(SuperblockApplied(mem), applied_before) << "the torn record was retired";
    std::vector<uint8_t> got(kLen);
    const Status r = store->Read(0, got);
    if (r.ok()) {
      EXPECT_EQ(Whole(got, 0x11, 0x22), "") << "read sees the torn apply";
    }
    EXPECT_FALSE(r.ok()) << "torn blocks read without an error";
    EXPECT_EQ(r.code(), Status::Code::kIoError);
    EXPECT_FALSE(store->Checkpoint().ok());
  }
  fs.ClearFaults();
  auto back = OpenOk(&fs);
  std::vector<uint8_t> got(kLen);
  ASSERT_TRUE(back->Read(0, got).ok());
  EXPECT_EQ(Whole(got, 0x22, 0x22), "") << "the durable record was not replayed whole";
}

// Out of space while applying: not sticky. The write is refused with kNoSpace, its blocks read
// as an error, other writes are refused with kNoSpace while there is no room, and once there is
// the record is applied again and writes go on, without a restart.
TEST(StoreFaults, ApplyOutOfSpaceIsAppliedAgainOnceThereIsRoom) {
  MemFileSystem mem;
  FaultFileSystem fs(&mem);
  auto store = OpenOk(&fs);
  constexpr size_t kLen = 64 << 10;
  ASSERT_TRUE(store->WriteAtomic(0, Fill(kLen, 0x11), Durability::kDurable).ok());
  fs.Inject({Op::kPWrite, kPath, 1, Status::Code::kNoSpace, true, 512});
  const Status w = store->WriteAtomic(0, Fill(kLen, 0x22), Durability::kDurable);
  EXPECT_EQ(w.code(), Status::Code::kNoSpace) << w.message();
  std::vector<uint8_t> got(kLen);
  EXPECT_EQ(store->Read(0, got).code(), Status::Code::kIoError);
  EXPECT_EQ(store->Write(kLen, Fill(4096, 0x33), Durability::kDurable).code(),
            Status::Code::kNoSpace);
  EXPECT_FALSE(store->Checkpoint().ok());
  fs.ClearFaults();  // room again
  EXPECT_TRUE(store->Write(kLen, Fill(4096, 0x33), Durability::kDurable).ok());
  ASSERT_TRUE(store->Read(0, got).ok());
  EXPECT_EQ(Whole(got, 0x22, 0x22), "");
  EXPECT_TRUE(store->Checkpoint().ok());
}

// A failed fdatasync of the journal: every waiter is told the real error, not only "failed
// earlier", and the store refuses writes naming it.
TEST(StoreFaults, FailedSyncNamesTheRealError) {
  MemFileSystem mem;
  FaultFileSystem fs(&mem);
  auto store = OpenOk(&fs);
  fs.Inject({Op::kSync, ".journal", 1, Status::Code::kSyncFailed});
  const Status w = store->WriteAtomic(0, Fill(4096, 1), Durability::kDurable);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.message().find("injected: fdatasync /lun.img.journal"), std::string::npos)
      << w.message();
  const Status later = store->Write(8192, Fill(4096, 2), Durability::kDurable);
  EXPECT_NE(later.message().find("injected: fdatasync /lun.img.journal"), std::string::npos)
      << later.message();
}

}  // namespace
}  // namespace untorn::storage
