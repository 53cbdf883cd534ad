// Power-cut simulation over a concurrent mixed workload: atomic writes of several sizes, plain
// writes with and without FUA, SYNCHRONIZE CACHE (Flush), overlapping ranges, background and
// journal-full checkpoints, a journal small enough to wrap. Each run's file-system event log is
// cut at many points; each cut becomes a crash state (any subset of unsynced sector writes, in
// any order, and a sector being written may come back unreadable), is recovered, and every
// block is checked against the history (torn, lost, reverted, corrupt: crash_checker.h).
// Two geometries: 512-byte blocks on 512-byte sectors, and 4096-byte blocks on 4096-byte
// sectors. The journal goes through FileSystem::OpenLog (LogFile), as on the real file system,
// and its records start on the simulated device's sectors.
// Some cuts also crash the recovery itself and recover again. Half the writes go through the
// network thread's path (TryStartWrite, completion from the store's sync thread), half through
// the blocking one.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"
#include "tests/storage/crash_checker.h"

namespace untorn::storage {
namespace {

using testing::CrashChecker;
using testing::kDone;
using testing::kFlushDone;
using testing::kFlushStart;
using testing::kIssue;
using testing::kNever;
using testing::MarkOf;
using testing::Op;

// The LUN's block size (and the simulated device's sector); the LUN is kept small so that each
// crash state is cheap, the journal small so that it wraps in every run.
struct Geometry {
  uint32_t block, blocks;
  uint64_t journal;
};
constexpr Geometry kSmall{512, 512, 256 << 10};
constexpr Geometry kLarge{4096, 128, 512 << 10};
constexpr const char* kPath = "/lun.img";
constexpr double kUnreadable = 0.1;  // chance a sector being written comes back unreadable

JournaledStore::Options Opts(MemFileSystem* fs, const Geometry& g, bool background) {
  JournaledStore::Options o;
  o.data_path = kPath;
  o.size_bytes = uint64_t{g.blocks} * g.block;
  o.block_size = g.block;
  o.journal_bytes = g.journal;
  o.checkpoint_fill = 0.25;
  o.fs = fs;
  o.background_checkpoint = background;
  return o;
}

struct Counts : testing::Counts {
  uint64_t checkpoints = 0, wraps = 0;
  std::atomic<uint64_t> started = 0;  // writes that took the TryStartWrite path
};

// Runs the workload on `fs`; returns the ops (index = id).
std::vector<Op> RunWorkload(MemFileSystem& fs, JournaledStore& store, const CrashChecker& check,
                            uint64_t seed, Counts* c) {
  constexpr int kThreads = 4, kOpsEach = 40;
  const uint32_t block = check.block(), blocks = check.blocks();
  std::vector<Op> ops(1 + kThreads * kOpsEach + 16);
  std::atomic<uint64_t> next_id{1};
  std::mutex reserve_mu;
  std::vector<bool> busy(blocks, false);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000 + static_cast<uint64_t>(t));
      for (int i = 0; i < kOpsEach; ++i) {
        const int kind = static_cast<int>(rng() % 100);
        if (kind < 10) {  // SYNCHRONIZE CACHE
          const uint64_t id = next_id++;
          ops[id].id = id;
          ops[id].flush = true;
          fs.Mark(MarkOf(kFlushStart, id));
          EXPECT_TRUE(store.Flush().ok());
          fs.Mark(MarkOf(kFlushDone, id));
          continue;
        }
        const bool atomic = kind < 55;
        // 512 bytes to 32 KiB atomic, up to 16 KiB plain, whatever the block size.
        static constexpr uint32_t kSizes[] = {512, 1024, 2048, 4096, 8192, 16384, 32768};
        const uint32_t n = atomic ? std::max<uint32_t>(1, kSizes[rng() % 7] / block)
                                  : static_cast<uint32_t>(1 + rng() % std::max(1u, 16384 / block));
        uint32_t lba = 0;
        bool got = false;
        for (int attempt = 0; attempt < 20 && !got; ++attempt) {
          // Small hot area so writes overlap often.
          const uint32_t hot = std::min<uint32_t>(128, blocks);
          lba = static_cast<uint32_t>(rng() % (hot - std::min<uint32_t>(n, hot - 1)));
          if (attempt % 2 == 1) lba = static_cast<uint32_t>(rng() % (blocks - n + 1));
          std::lock_guard lk(reserve_mu);
          if (std::none_of(busy.begin() + lba, busy.begin() + lba + n, [](bool b) { return b; })) {
            std::fill(busy.begin() + lba, busy.begin() + lba + n, true);
            got = true;
          }
        }
        if (!got) continue;
        const uint64_t id = next_id++;  // ids of overlapping ops follow their order
        Op& op = ops[id];
        op.id = id;
        op.atomic = atomic;
        op.fua = !atomic && (rng() % 2 == 0);
        op.lba = lba;
        op.blocks = n;
        const std::vector<uint8_t> data = check.Data(id, lba, n);
        fs.Mark(MarkOf(kIssue, id));
        const uint64_t offset = uint64_t{lba} * block;
        const Durability d = atomic || op.fua ? Durability::kDurable : Durability::kCached;
        std::promise<Status> finished;
        const bool started =
            rng() % 2 == 0 &&
            store.TryStartWrite(offset, data, atomic ? WriteKind::kAtomic : WriteKind::kPlain, d,
                                [&](Status st) {
                                  if (st.ok()) fs.Mark(MarkOf(kDone, id));  // acknowledged
                                  finished.set_value(std::move(st));
                                });
        Status s;
        if (started) {
          ++c->started;
          s = finished.get_future().get();
        } else {
          s = atomic ? store.WriteAtomic(offset, data, d) : store.Write(offset, data, d);
          if (s.ok()) fs.Mark(MarkOf(kDone, id));
        }
        EXPECT_TRUE(s.ok()) << s.message();
        std::lock_guard lk(reserve_mu);
        std::fill(busy.begin() + lba, busy.begin() + lba + n, false);
      }
    });
  }
  for (auto& th : threads) th.join();
  ops.resize(next_id.load());
  return ops;
}

void Verify(MemFileSystem& crashed, const Geometry& g, const CrashChecker& check, uint64_t cut,
            const std::vector<Op>& ops, const std::vector<std::vector<uint64_t>>& by_block,
            Counts* c) {
  std::unique_ptr<JournaledStore> store;
  const Status s = JournaledStore::Open(Opts(&crashed, g, false), &store, nullptr);
  ASSERT_TRUE(s.ok()) << s.message();
  check.Verify(*store, cut, ops, by_block, c);
}

// Runs per geometry: 50, or UNTORN_POWER_CUT_RUNS (the ThreadSanitizer stage runs fewer).
int Runs() {
  const char* env = std::getenv("UNTORN_POWER_CUT_RUNS");
  const int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 50;
}

void RunGeometry(const Geometry& g, const char* name) {
  const int kRuns = Runs();
  constexpr int kCutsPerRun = 200;
  const CrashChecker check(g.block, g.blocks);
  Counts c;
  for (int run = 0; run < kRuns; ++run) {
    MemFileSystem fs(g.block);  // the device's sector is the LUN's block
    std::vector<Op> ops;
    {
      std::unique_ptr<JournaledStore> store;
      ASSERT_TRUE(JournaledStore::Open(Opts(&fs, g, true), &store, nullptr).ok());
      fs.RestartLog();  // crash states start from the freshly created store
      ops = RunWorkload(fs, *store, check, static_cast<uint64_t>(run), &c);
      const JournaledStore::Stats st = store->stats();
      // The paths this test is for were walked in this run: checkpoints under load, and a
      // journal that wrapped to its start.
      EXPECT_GE(st.checkpoints, 1u) << "run " << run;
      EXPECT_GE(st.journal_wraps, 1u) << "run " << run;
      c.checkpoints += st.checkpoints;
      c.wraps += st.journal_wraps;
      // The store is dropped without its closing checkpoint mattering: cuts come from the log.
    }
    const auto events = fs.Events();
    CrashChecker::Analyse(events, ops);
    const auto by_block = check.ByBlock(ops);
    std::mt19937_64 rng(static_cast<uint64_t>(run) * 7919);
    for (int k = 0; k < kCutsPerRun; ++k) {
      const uint64_t cut = k == 0 ? events.size() : rng() % (events.size() + 1);
      auto crashed = fs.CrashState(cut, rng, kUnreadable);
      if (k % 25 == 0) {  // crash the recovery too, then recover again
        crashed->RestartLog();
        {
          std::unique_ptr<JournaledStore> recovering;
          const Status s =
              JournaledStore::Open(Opts(crashed.get(), g, false), &recovering, nullptr);
          ASSERT_TRUE(s.ok()) << s.message();
        }
        auto twice = crashed->CrashState(rng() % (crashed->EventCount() + 1), rng, kUnreadable);
        Verify(*twice, g, check, cut, ops, by_block, &c);
        ++c.recovery_crashes;
      }
      Verify(*crashed, g, check, cut, ops, by_block, &c);
      ++c.crash_points;
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  std::printf(
      "power-cut %s: %llu crash points (+%llu crashes during recovery), %llu atomic writes "
      "checked: %llu torn, %llu lost durable, %llu reverted, %llu corrupt; %llu blocks "
      "unreadable where no durable write was due; %llu checkpoints, %llu journal wraps; %llu "
      "writes started without blocking\n",
      name, static_cast<unsigned long long>(c.crash_points),
      static_cast<unsigned long long>(c.recovery_crashes),
      static_cast<unsigned long long>(c.atomic_checked), static_cast<unsigned long long>(c.torn),
      static_cast<unsigned long long>(c.lost), static_cast<unsigned long long>(c.reverted),
      static_cast<unsigned long long>(c.corrupt),
      static_cast<unsigned long long>(c.unreadable - c.lost),
      static_cast<unsigned long long>(c.checkpoints), static_cast<unsigned long long>(c.wraps),
      static_cast<unsigned long long>(c.started.load()));
  EXPECT_EQ(c.crash_points, static_cast<uint64_t>(kRuns) * kCutsPerRun);  // 10000 by default
  // The non-blocking path was exercised, not declined (about 70 writes a run take it).
  EXPECT_GE(c.started.load(), static_cast<uint64_t>(kRuns) * 20);
  EXPECT_GT(c.unreadable, 0u);  // the unreadable-sector outcome was drawn
  EXPECT_EQ(c.torn, 0u);
  EXPECT_EQ(c.lost, 0u);
  EXPECT_EQ(c.reverted, 0u);
  EXPECT_EQ(c.corrupt, 0u);
}

TEST(PowerCut, MixedWorkloadNeverTearsLosesOrRevertsWrites) { RunGeometry(kSmall, "512/512"); }

TEST(PowerCut, FourKiBBlocksOnFourKiBSectors) { RunGeometry(kLarge, "4096/4096"); }

}  // namespace
}  // namespace untorn::storage
