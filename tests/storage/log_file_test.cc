// FileSystem::OpenLog on the real file system: writes kept in memory until Sync, then written
// straight (O_DIRECT), and the journal built on it recovers what it acknowledged.
#include "storage/log_file.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "storage/file_system.h"
#include "storage/journaled_store.h"
#include "tests/storage/temp_dir.h"

namespace untorn::storage {
namespace {

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 512);
  return v;
}

std::unique_ptr<File> MakeFile(const std::string& path, uint64_t size) {
  std::unique_ptr<File> f;
  EXPECT_TRUE(PosixFileSystem()->Open(path, true, false, &f).ok());
  EXPECT_TRUE(f->PWrite(0, std::vector<uint8_t>(size, 0)).ok());
  EXPECT_TRUE(f->Sync().ok());
  return f;
}

// Whether `log` is the straight-writing log file (not the buffered fallback OpenLog takes where
// the file system cannot write O_DIRECT in 512-byte units): these tests are about that path, and
// pass for nothing if the fallback ran instead.
::testing::AssertionResult Straight(const std::unique_ptr<File>& log, const std::string& path) {
  if (dynamic_cast<LogFile*>(log.get()) != nullptr) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "OpenLog(" << path << ") fell back to buffered writes: the file system under /tmp "
         << "cannot take 512-byte O_DIRECT writes, so the straight path was not tested";
}

// A file of `size` zero bytes, written and synced, opened again as a log that writes straight.
std::unique_ptr<File> MakeLog(const std::string& path, uint64_t size) {
  MakeFile(path, size);
  std::unique_ptr<File> log;
  EXPECT_TRUE(PosixFileSystem()->OpenLog(path, &log).ok());
  EXPECT_TRUE(Straight(log, path));
  return log;
}

std::vector<uint8_t> ReadFresh(const std::string& path, uint64_t offset, size_t n) {
  std::unique_ptr<File> f;
  EXPECT_TRUE(PosixFileSystem()->Open(path, false, true, &f).ok());
  std::vector<uint8_t> out(n);
  EXPECT_TRUE(f->PRead(offset, out).ok());
  return out;
}

TEST(LogFile, WritesAreReadBackBeforeSyncAndOnDiskAfter) {
  TempDir dir;
  const std::string path = dir.File("log");
  const std::unique_ptr<File> log = MakeLog(path, 1 << 20);
  ASSERT_NE(log, nullptr);
  const auto a = Pattern(4096 + 512, 1);
  const auto b = Pattern(1536, 2);
  ASSERT_TRUE(log->PWrite(8192, a).ok());
  ASSERT_TRUE(log->PWrite(8192 + a.size(), b).ok());  // contiguous with the first
  ASSERT_TRUE(log->PWrite(65536, b).ok());
  std::vector<uint8_t> back(a.size());
  ASSERT_TRUE(log->PRead(8192, back).ok());
  EXPECT_EQ(back, a);
  ASSERT_TRUE(log->PWrite(65536, a).ok());  // rewrites what the last read wrote out
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(ReadFresh(path, 8192, a.size()), a);
  EXPECT_EQ(ReadFresh(path, 8192 + a.size(), b.size()), b);
  EXPECT_EQ(ReadFresh(path, 65536, a.size()), a);
  EXPECT_EQ(ReadFresh(path, 0, 8192), std::vector<uint8_t>(8192, 0));
  EXPECT_EQ(log->Size(), 1u << 20);
}

TEST(LogFile, ALaterWriteOfKeptBytesWins) {
  TempDir dir;
  const std::string path = dir.File("log");
  const std::unique_ptr<File> log = MakeLog(path, 1 << 20);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->PWrite(4096, Pattern(4096, 1)).ok());
  const auto second = Pattern(1024, 9);
  ASSERT_TRUE(log->PWrite(4096 + 512, second).ok());  // inside the kept write
  ASSERT_TRUE(log->Sync().ok());
  auto want = Pattern(4096, 1);
  std::copy(second.begin(), second.end(), want.begin() + 512);
  EXPECT_EQ(ReadFresh(path, 4096, 4096), want);
}

TEST(LogFile, RefusesWritesNotIn512ByteUnits) {
  TempDir dir;
  const std::string path = dir.File("log");
  const std::unique_ptr<File> log = MakeLog(path, 1 << 20);
  ASSERT_NE(log, nullptr);
  // O_DIRECT takes only whole 512-byte units: refused when written, not at the Sync.
  EXPECT_EQ(log->PWrite(100, Pattern(512, 1)).code(), Status::Code::kInvalid);
  EXPECT_EQ(log->PWrite(512, Pattern(100, 1)).code(), Status::Code::kInvalid);
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(ReadFresh(path, 0, 1024), std::vector<uint8_t>(1024, 0));
}

TEST(LogFile, MoreContiguousWritesThanOnePwritevTakes) {
  TempDir dir;
  const std::string path = dir.File("log");
  constexpr size_t kWrites = 2500;  // IOV_MAX is 1024
  const std::unique_ptr<File> log = MakeLog(path, kWrites * 512);
  ASSERT_NE(log, nullptr);
  for (size_t i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(log->PWrite(i * 512, Pattern(512, static_cast<uint8_t>(i))).ok());
  }
  ASSERT_TRUE(log->Sync().ok());
  const auto all = ReadFresh(path, 0, kWrites * 512);
  for (size_t i = 0; i < kWrites; ++i) {
    const auto want = Pattern(512, static_cast<uint8_t>(i));
    ASSERT_TRUE(std::equal(want.begin(), want.end(), all.begin() + i * 512)) << "write " << i;
  }
}

// A process that dies after its atomic writes were acknowledged, before any checkpoint: the
// records it group-committed through the log file are on disk, and the next Open replays them.
TEST(LogFile, JournalReplaysWhatADeadProcessAcknowledged) {
  TempDir dir;
  JournaledStore::Options o;
  o.data_path = dir.File("lun.img");
  o.size_bytes = 8 << 20;
  o.block_size = 512;
  o.journal_bytes = 4 << 20;
  o.background_checkpoint = false;
  constexpr int kThreads = 8, kPerThread = 20;
  constexpr size_t kLen = 4096;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::unique_ptr<JournaledStore> s;
    if (!JournaledStore::Open(o, &s, nullptr).ok()) ::_exit(2);
    std::vector<std::thread> threads;
    std::atomic<bool> ok{true};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const uint64_t block = static_cast<uint64_t>(t * kPerThread + i);
          if (!s->WriteAtomic(block * kLen, Pattern(kLen, static_cast<uint8_t>(block)),
                              Durability::kDurable)
                   .ok()) {
            ok = false;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    ::_exit(ok ? 0 : 3);  // no destructor: no checkpoint, the journal holds every record
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  {
    // The store's journal went through the same OpenLog: straight, as the test means.
    std::unique_ptr<File> log;
    ASSERT_TRUE(PosixFileSystem()->OpenLog(JournaledStore::JournalPath(o.data_path), &log).ok());
    ASSERT_TRUE(Straight(log, JournaledStore::JournalPath(o.data_path)));
    EXPECT_GE(log->PhysicalBlockSize(), 512u);
  }
  std::unique_ptr<JournaledStore> s;
  JournaledStore::RecoveryReport report;
  ASSERT_TRUE(JournaledStore::Open(o, &s, &report).ok());
  EXPECT_EQ(report.records_replayed, static_cast<uint64_t>(kThreads * kPerThread))
      << report.stop_reason;
  for (uint64_t block = 0; block < kThreads * kPerThread; ++block) {
    std::vector<uint8_t> back(kLen);
    ASSERT_TRUE(s->Read(block * kLen, back).ok());
    ASSERT_EQ(back, Pattern(kLen, static_cast<uint8_t>(block))) << "block " << block;
  }
}

}  // namespace
}  // namespace untorn::storage
