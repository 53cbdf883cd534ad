#include "storage/file_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "storage/mem_file_system.h"
#include "storage/range_lock.h"
#include "tests/storage/temp_dir.h"

namespace untorn::storage {
namespace {

std::unique_ptr<FileStore> OpenStore(const std::string& path, uint64_t size = 1 << 20) {
  std::unique_ptr<FileStore> s;
  FileStore::Options o;
  o.path = path;
  o.size_bytes = size;
  o.block_size = 512;
  EXPECT_TRUE(FileStore::Open(o, &s).ok());
  return s;
}

TEST(FileStore, CreatesSparseFileOfConfiguredSize) {
  TempDir dir;
  auto s = OpenStore(dir.File("a.img"));
  EXPECT_EQ(std::filesystem::file_size(dir.File("a.img")), 1u << 20);
  EXPECT_EQ(s->size_bytes(), 1u << 20);
  const auto e = s->Provisioning(0, 1 << 20);
  EXPECT_FALSE(e.mapped);
  EXPECT_EQ(e.length, 1u << 20);
}

TEST(FileStore, WriteThenReadBack) {
  TempDir dir;
  auto s = OpenStore(dir.File("a.img"));
  std::vector<uint8_t> w(4096, 0xab), r(4096);
  ASSERT_TRUE(s->Write(8192, w, Durability::kDurable).ok());
  ASSERT_TRUE(s->Read(8192, r).ok());
  EXPECT_EQ(r, w);
  EXPECT_TRUE(s->Provisioning(8192, 4096).mapped);
}

TEST(FileStore, RefusesOutOfRangeAndMisalignedRequests) {
  TempDir dir;
  auto s = OpenStore(dir.File("a.img"));
  std::vector<uint8_t> b(512);
  EXPECT_EQ(s->Read((1 << 20), b).code(), Status::Code::kOutOfRange);
  EXPECT_EQ(s->Read(~0ULL - 100, b).code(), Status::Code::kOutOfRange);
  EXPECT_EQ(s->Write(100, b, Durability::kCached).code(), Status::Code::kInvalid);
}

TEST(FileStore, UnmapReadsBackZeros) {
  TempDir dir;
  auto s = OpenStore(dir.File("a.img"));
  std::vector<uint8_t> w(65536, 0x5a), r(65536);
  ASSERT_TRUE(s->Write(0, w, Durability::kCached).ok());
  ASSERT_TRUE(s->Unmap(0, 65536, Durability::kCached).ok());
  ASSERT_TRUE(s->Read(0, r).ok());
  EXPECT_EQ(r, std::vector<uint8_t>(65536, 0));
}

TEST(FileStore, ReadOnlyStoreRefusesWrites) {
  TempDir dir;
  { auto s = OpenStore(dir.File("a.img")); }
  std::unique_ptr<FileStore> s;
  FileStore::Options o{dir.File("a.img"), 1 << 20, 512, true};
  ASSERT_TRUE(FileStore::Open(o, &s).ok());
  std::vector<uint8_t> b(512);
  EXPECT_EQ(s->Write(0, b, Durability::kCached).code(), Status::Code::kReadOnly);
}

// Out of space is not a failing device: the write is refused, an atomic one before any of it
// is written, and the store takes writes again once there is room.
TEST(FileStore, FullFileSystemRefusesWritesWithoutTurningReadOnly) {
  MemFileSystem fs;
  FileStore::Options o{"/a.img", 1 << 20, 512, false};
  o.fs = &fs;
  std::unique_ptr<FileStore> s;
  ASSERT_TRUE(FileStore::Open(o, &s).ok());
  std::vector<uint8_t> old(8192, 1), r(8192);
  ASSERT_TRUE(s->Write(0, old, Durability::kDurable).ok());
  fs.SetNoSpace("/a.img", true);
  EXPECT_EQ(s->Write(0, std::vector<uint8_t>(8192, 2), Durability::kDurable).code(),
            Status::Code::kNoSpace);
  EXPECT_EQ(s->WriteAtomic(0, std::vector<uint8_t>(8192, 3), Durability::kDurable).code(),
            Status::Code::kNoSpace);
  EXPECT_TRUE(s->Flush().ok());
  ASSERT_TRUE(s->Read(0, r).ok());
  EXPECT_EQ(r, old);
  fs.SetNoSpace("/a.img", false);
  ASSERT_TRUE(s->WriteAtomic(0, std::vector<uint8_t>(8192, 4), Durability::kDurable).ok());
  ASSERT_TRUE(s->Read(0, r).ok());
  EXPECT_EQ(r, std::vector<uint8_t>(8192, 4));
}

TEST(FileStore, ThickStoreIsAllocatedWhenItOpens) {
  TempDir dir;
  FileStore::Options o{dir.File("a.img"), 1 << 20, 512, false};
  o.preallocate = true;
  std::unique_ptr<FileStore> s;
  ASSERT_TRUE(FileStore::Open(o, &s).ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("a.img").c_str(), &st), 0);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20);
  std::vector<uint8_t> r(4096, 1);
  ASSERT_TRUE(s->Read(0, r).ok());
  EXPECT_EQ(r, std::vector<uint8_t>(4096, 0));  // reserved, still reads as zeros
}

// The real file system's Allocate reserves the holes of a range (and only those: the rest of
// the file stays sparse), leaves data as it was, and reserves again after a hole is punched.
TEST(PosixFile, AllocateReservesTheHolesOfTheRangeOnly) {
  TempDir dir;
  std::unique_ptr<File> f;
  ASSERT_TRUE(PosixFileSystem()->Open(dir.File("a.img"), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(8 << 20).ok());
  auto allocated = [&] {
    struct stat st {};
    EXPECT_EQ(::stat(dir.File("a.img").c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  EXPECT_EQ(allocated(), 0u);
  const std::vector<uint8_t> data(4096, 7);
  ASSERT_TRUE(f->PWrite(1 << 20, data).ok());
  ASSERT_TRUE(f->Allocate(1 << 20, 1 << 20).ok());  // one written block, the rest a hole
  EXPECT_GE(allocated(), 1u << 20);
  EXPECT_LT(allocated(), 2u << 20);
  std::vector<uint8_t> back(4096), zeros(4096, 0);
  ASSERT_TRUE(f->PRead(1 << 20, back).ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(f->PRead((1 << 20) + 4096, back).ok());
  EXPECT_EQ(back, zeros);
  ASSERT_TRUE(f->PunchHole(1 << 20, 1 << 20).ok());
  const uint64_t punched = allocated();
  ASSERT_TRUE(f->Allocate(1 << 20, 1 << 20).ok());
  EXPECT_GE(allocated(), punched + (1u << 20));
}

TEST(PosixFile, AllocateReservesAgainWhatATruncateDropped) {
  // Allocate remembers what it reserved; a shrinking truncate must make it forget.
  TempDir dir;
  std::unique_ptr<File> f;
  ASSERT_TRUE(PosixFileSystem()->Open(dir.File("a.img"), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(4 << 20).ok());
  ASSERT_TRUE(f->Allocate(2 << 20, 1 << 20).ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("a.img").c_str(), &st), 0);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20);
  ASSERT_TRUE(f->Truncate(1 << 20).ok());
  ASSERT_TRUE(f->Truncate(4 << 20).ok());
  ASSERT_EQ(::stat(dir.File("a.img").c_str(), &st), 0);
  EXPECT_EQ(st.st_blocks, 0);
  ASSERT_TRUE(f->Allocate(2 << 20, 1 << 20).ok());
  ASSERT_EQ(::stat(dir.File("a.img").c_str(), &st), 0);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20);
}

TEST(FileStore, OpenFailsWithMessageForDirectory) {
  TempDir dir;
  std::filesystem::create_directory(dir.File("d"));
  std::unique_ptr<FileStore> s;
  FileStore::Options o{dir.File("d"), 1 << 20, 512, false};
  const Status st = FileStore::Open(o, &s);
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(st.message().empty());
}

// Readers racing atomic writers of the same range never see a mix of two writes.
TEST(FileStore, ConcurrentReadsNeverSeeHalfAnAtomicWrite) {
  TempDir dir;
  auto s = OpenStore(dir.File("a.img"));
  constexpr size_t kLen = 64 * 1024;
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread writer([&] {
    // At least 400 writes, and on until the reader has raced 200 reads (bounded either way).
    std::vector<uint8_t> b(kLen);
    for (int i = 1; i <= 200000 && (i <= 400 || reads.load() < 200); ++i) {
      std::fill(b.begin(), b.end(), static_cast<uint8_t>(i));
      ASSERT_TRUE(s->WriteAtomic(0, b, Durability::kCached).ok());
    }
    stop = true;
  });
  std::thread reader([&] {
    std::vector<uint8_t> b(kLen);
    while (!stop) {
      ASSERT_TRUE(s->Read(0, b).ok());
      ++reads;
      if (std::any_of(b.begin(), b.end(), [&](uint8_t x) { return x != b[0]; })) ++torn;
    }
  });
  writer.join();
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

TEST(RangeLock, DisjointExclusiveRangesDoNotWait) {
  RangeLock lock;
  auto a = lock.Lock(0, 100, RangeLock::Mode::kExclusive);
  EXPECT_TRUE(lock.TryLock(100, 100, RangeLock::Mode::kExclusive));  // touching, not overlapping
  EXPECT_FALSE(lock.TryLock(99, 2, RangeLock::Mode::kExclusive));
}

TEST(RangeLock, TryLockGrantsOnlyWhatIsFreeNow) {
  RangeLock l;
  auto writer = l.Lock(4096, 8192, RangeLock::Mode::kExclusive);
  EXPECT_FALSE(l.TryLock(8192, 512, RangeLock::Mode::kShared));  // inside the writer's range
  EXPECT_TRUE(l.TryLock(0, 4096, RangeLock::Mode::kShared));     // next to it
  auto reader = l.TryLock(16384, 512, RangeLock::Mode::kShared);
  ASSERT_TRUE(reader);
  EXPECT_TRUE(l.TryLock(16384, 512, RangeLock::Mode::kShared));  // shared with the reader
  EXPECT_FALSE(l.TryLock(16384, 512, RangeLock::Mode::kExclusive));
}

TEST(RangeLock, SharedHoldersShare) {
  RangeLock lock;
  auto a = lock.Lock(0, 100, RangeLock::Mode::kShared);
  auto b = lock.TryLock(50, 100, RangeLock::Mode::kShared);
  EXPECT_TRUE(b);
  EXPECT_FALSE(lock.TryLock(120, 10, RangeLock::Mode::kExclusive));  // b's part of the range
}

TEST(RangeLock, ExclusiveWaitsForOverlappingShared) {
  RangeLock lock;
  std::optional<RangeLock::Guard> reader(lock.Lock(0, 100, RangeLock::Mode::kShared));
  EXPECT_FALSE(lock.TryLock(50, 10, RangeLock::Mode::kExclusive));
  EXPECT_FALSE(lock.TryLock(99, 10, RangeLock::Mode::kExclusive));
  reader.reset();
  EXPECT_TRUE(lock.TryLock(50, 10, RangeLock::Mode::kExclusive));
}

// A writer waiting for the range holds back readers that come after it (arrival order), so a
// stream of readers cannot starve it.
TEST(RangeLock, LaterReadersQueueBehindAWaitingWriter) {
  RangeLock lock;
  std::optional<RangeLock::Guard> reader(lock.Lock(0, 100, RangeLock::Mode::kShared));
  std::atomic<bool> writer_in{false};
  std::thread writer([&] {
    auto g = lock.Lock(0, 100, RangeLock::Mode::kExclusive);
    writer_in = true;
  });
  // Once the writer waits, a new shared request over its range is refused.
  bool queued = false;
  for (int i = 0; i < 100000 && !queued; ++i) {
    auto probe = lock.TryLock(10, 10, RangeLock::Mode::kShared);
    queued = !probe;
    if (!queued) std::this_thread::yield();
  }
  EXPECT_TRUE(queued) << "a later reader got in ahead of the waiting writer";
  EXPECT_FALSE(writer_in.load());
  reader.reset();
  writer.join();
  EXPECT_TRUE(writer_in.load());
}

}  // namespace
}  // namespace untorn::storage
