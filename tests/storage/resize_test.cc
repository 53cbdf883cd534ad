// Resizing a store under I/O (BlockStore::Resize): data kept, the new end enforced, and for the
// journaled store a power cut at any point of a resize leaves a LUN that opens, at the old or
// the new size, with every acknowledged write in it.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "storage/file_store.h"
#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"
#include "tests/storage/journaled_test_util.h"

namespace untorn::storage {
namespace {

using testing::Fill;
using testing::kLun;
using testing::kPath;
using testing::Opts;

std::unique_ptr<JournaledStore> OpenAt(FileSystem* fs, uint64_t size, Status* st = nullptr) {
  JournaledStore::Options o = Opts(fs);
  o.size_bytes = size;
  std::unique_ptr<JournaledStore> s;
  const Status r = JournaledStore::Open(o, &s, nullptr);
  if (st != nullptr) *st = r;
  return r.ok() ? std::move(s) : nullptr;
}

std::vector<uint8_t> Read(BlockStore& s, uint64_t offset, size_t n) {
  std::vector<uint8_t> out(n);
  const Status st = s.Read(offset, out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

TEST(Resize, JournaledGrowKeepsDataAndServesTheNewBlocks) {
  MemFileSystem fs;
  auto s = OpenAt(&fs, kLun);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->WriteAtomic(kLun - 4096, Fill(4096, 0xa1), Durability::kDurable).ok());
  EXPECT_EQ(s->Write(kLun, Fill(512, 1), Durability::kDurable).code(), Status::Code::kOutOfRange);
  ASSERT_TRUE(s->Resize(2 * kLun).ok());
  EXPECT_EQ(s->size_bytes(), 2 * kLun);
  EXPECT_EQ(Read(*s, kLun - 4096, 4096), Fill(4096, 0xa1));
  EXPECT_EQ(Read(*s, kLun, 4096), Fill(4096, 0));
  ASSERT_TRUE(s->WriteAtomic(2 * kLun - 4096, Fill(4096, 0xb2), Durability::kDurable).ok());
  s.reset();
  Status st;
  EXPECT_FALSE(OpenAt(&fs, kLun, &st)) << "opened at the size it had before the resize";
  EXPECT_NE(st.message().find("resized"), std::string::npos) << st.message();
  s = OpenAt(&fs, 2 * kLun, &st);
  ASSERT_TRUE(s) << st.message();
  EXPECT_EQ(Read(*s, kLun - 4096, 4096), Fill(4096, 0xa1));
  EXPECT_EQ(Read(*s, 2 * kLun - 4096, 4096), Fill(4096, 0xb2));
}

TEST(Resize, JournaledShrinkRetiresTheJournalAndRefusesThePastTheEnd) {
  MemFileSystem fs;
  auto s = OpenAt(&fs, kLun);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->WriteAtomic(0, Fill(4096, 0x11), Durability::kDurable).ok());
  ASSERT_TRUE(s->WriteAtomic(kLun - 4096, Fill(4096, 0x22), Durability::kDurable).ok());
  EXPECT_GT(s->stats().journal_used, 0u);
  ASSERT_TRUE(s->Resize(kLun / 2).ok());
  EXPECT_EQ(s->stats().journal_used, 0u) << "records naming cut blocks left in the journal";
  EXPECT_EQ(s->WriteAtomic(kLun - 4096, Fill(4096, 0x33), Durability::kDurable).code(),
            Status::Code::kOutOfRange);
  std::vector<uint8_t> out(4096);
  EXPECT_EQ(s->Read(kLun - 4096, out).code(), Status::Code::kOutOfRange);
  EXPECT_EQ(fs.Contents(kPath).size(), kLun / 2);
  s.reset();
  s = OpenAt(&fs, kLun / 2);
  ASSERT_TRUE(s);
  EXPECT_EQ(Read(*s, 0, 4096), Fill(4096, 0x11));
  EXPECT_EQ(s->Resize(1000).code(), Status::Code::kInvalid);
  EXPECT_EQ(s->Resize(0).code(), Status::Code::kInvalid);
}

// A power cut at every event of a grow and of a shrink: the LUN opens at one of the two sizes
// (which one, the superblock says), and every write acknowledged before the resize is there.
TEST(Resize, APowerCutAnywhereInAResizeLosesNothing) {
  for (const uint64_t to : {2 * kLun, kLun / 2}) {
    MemFileSystem fs;
    {
      auto s = OpenAt(&fs, kLun);
      ASSERT_TRUE(s);
      for (uint64_t i = 0; i < 16; ++i) {
        ASSERT_TRUE(
            s->WriteAtomic(i * 8192, Fill(8192, static_cast<uint8_t>(i + 1)), Durability::kDurable)
                .ok());
      }
      fs.RestartLog();  // all of the above is durable: cut only within the resize
      ASSERT_TRUE(s->Resize(to).ok());
    }
    const size_t events = fs.EventCount();
    std::mt19937_64 rng(to);
    size_t at_old = 0, at_new = 0;
    for (size_t prefix = 0; prefix <= events; ++prefix) {
      for (int trial = 0; trial < 4; ++trial) {
        auto crashed = fs.CrashState(prefix, rng);
        Status st_new, st_old;
        auto s = OpenAt(crashed.get(), to, &st_new);
        if (s) {
          ++at_new;
        } else {
          s = OpenAt(crashed.get(), kLun, &st_old);
          ASSERT_TRUE(s) << "prefix " << prefix << " opens at neither size: " << st_new.message()
                         << " / " << st_old.message();
          ++at_old;
        }
        for (uint64_t i = 0; i < 16; ++i) {
          ASSERT_EQ(Read(*s, i * 8192, 8192), Fill(8192, static_cast<uint8_t>(i + 1)))
              << "prefix " << prefix << ": acknowledged write " << i << " lost";
        }
      }
    }
    EXPECT_GT(at_old, 0u);
    EXPECT_GT(at_new, 0u);
    std::printf(
        "resize %llu -> %llu: %zu events, opened %zu times at the old size, %zu at the new\n",
        static_cast<unsigned long long>(kLun), static_cast<unsigned long long>(to), events, at_old,
        at_new);
  }
}

// Atomic writers and readers run while the LUN grows in steps: nothing in range fails, and
// every block reads back as the last write to it.
TEST(Resize, GrowingUnderConcurrentWritesAndReads) {
  MemFileSystem fs;
  auto s = OpenAt(&fs, kLun);
  ASSERT_TRUE(s);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0}, writes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<uint8_t> out(4096);
      while (!stop.load()) {
        const uint64_t slot = rng() % (kLun / 4096);
        const auto byte = static_cast<uint8_t>(slot * 7 + 1);
        if (!s->WriteAtomic(slot * 4096, Fill(4096, byte), Durability::kCached).ok()) ++errors;
        if (!s->Read(slot * 4096, out).ok() || out != Fill(4096, byte)) ++errors;
        ++writes;
      }
    });
  }
  for (uint64_t size = kLun + 65536; size <= 2 * kLun; size += 65536) {
    // Some writes between one resize and the next (bounded: the writers may be starved).
    const uint64_t before = writes.load();
    for (int spin = 0; spin < 1000000 && writes.load() < before + 20; ++spin) {
      std::this_thread::yield();
    }
    const Status st = s->Resize(size);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_GE(writes.load(), 16u * 20u);
  std::printf("16 resizes under %llu atomic writes and reads, %llu errors\n",
              static_cast<unsigned long long>(writes.load()),
              static_cast<unsigned long long>(errors.load()));
  EXPECT_EQ(s->size_bytes(), 2 * kLun);
}

TEST(Resize, FileStoreGrowsAndShrinks) {
  MemFileSystem fs;
  FileStore::Options o;
  o.path = kPath;
  o.size_bytes = kLun;
  o.fs = &fs;
  std::unique_ptr<FileStore> s;
  ASSERT_TRUE(FileStore::Open(o, &s).ok());
  ASSERT_TRUE(s->Write(kLun - 512, Fill(512, 9), Durability::kDurable).ok());
  ASSERT_TRUE(s->Resize(2 * kLun).ok());
  EXPECT_EQ(Read(*s, kLun - 512, 512), Fill(512, 9));
  EXPECT_EQ(Read(*s, kLun, 512), Fill(512, 0));
  ASSERT_TRUE(s->Resize(kLun / 2).ok());
  EXPECT_EQ(fs.Contents(kPath).size(), kLun / 2);
  EXPECT_EQ(s->Write(kLun - 512, Fill(512, 9), Durability::kDurable).code(),
            Status::Code::kOutOfRange);
}

}  // namespace
}  // namespace untorn::storage
