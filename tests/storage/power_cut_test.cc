// Power-cut simulation over a concurrent mixed workload: atomic writes of several sizes, plain
// writes with and without FUA, SYNCHRONIZE CACHE (Flush), overlapping ranges, background and
// journal-full checkpoints, a journal small enough to wrap. Each run's file-system event log is
// cut at many points; each cut becomes a crash state (any subset of unsynced sector writes, in
// any order, and a sector being written may come back unreadable), is recovered, and every
// block is checked against the history:
//   torn      an atomic write partly present, partly replaced by what was there before it (or
//             partly unreadable)
//   lost      a block older than the newest write acknowledged durable before the cut, or
//             unreadable where such a write must be
//   reverted  that older block comes from an atomic write (replay undid a later write)
//   corrupt   a block that no write ever wrote
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
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"

namespace untorn::storage {
namespace {

// The LUN's block size and the simulated device's sector; the LUN is kept small so that each
// crash state is cheap, the journal small so that it wraps in every run.
struct Geometry {
  uint32_t block, blocks;
  uint64_t journal;
};
constexpr Geometry kSmall{512, 512, 256 << 10};
constexpr Geometry kLarge{4096, 128, 512 << 10};
uint32_t kBlock = 512;  // of the geometry running (set by RunGeometry)
uint32_t kBlocks = 512;
uint64_t kJournal = 256 << 10;
constexpr const char* kPath = "/lun.img";
constexpr double kUnreadable = 0.1;  // chance a sector being written comes back unreadable
constexpr uint64_t kUnreadableBlock = UINT64_MAX - 1;
constexpr uint64_t kNever = UINT64_MAX;

enum MarkType : uint64_t { kIssue = 1, kDone = 2, kFlushStart = 3, kFlushDone = 4 };
uint64_t MarkOf(MarkType t, uint64_t id) { return (uint64_t{t} << 56) | id; }

struct Op {
  uint64_t id = 0;
  bool atomic = false, fua = false, flush = false;
  uint32_t lba = 0, blocks = 0;
  uint64_t issue = kNever, done = kNever, durable = kNever;  // event indexes
};

void Stamp(std::vector<uint8_t>& buf, size_t at, uint64_t id, uint64_t lba, uint64_t index) {
  uint8_t* b = buf.data() + at;
  std::memcpy(b, &id, 8);
  std::memcpy(b + 8, &lba, 8);
  std::memcpy(b + 16, &index, 8);
  for (uint32_t i = 24; i < kBlock; ++i) {
    b[i] = static_cast<uint8_t>(id * 31 + index * 7 + i);
  }
}

// The op whose stamp a block holds: 0 for never written, kNever for garbage.
uint64_t Decode(const uint8_t* b, uint64_t lba, const std::vector<Op>& ops) {
  if (std::all_of(b, b + kBlock, [](uint8_t x) { return x == 0; })) return 0;
  uint64_t id = 0, at = 0, index = 0;
  std::memcpy(&id, b, 8);
  std::memcpy(&at, b + 8, 8);
  std::memcpy(&index, b + 16, 8);
  if (id == 0 || id >= ops.size() || at != lba || ops[id].flush) return kNever;
  const Op& op = ops[id];
  if (lba < op.lba || lba >= op.lba + op.blocks || index != lba - op.lba) return kNever;
  for (uint32_t i = 24; i < kBlock; ++i) {
    if (b[i] != static_cast<uint8_t>(id * 31 + index * 7 + i)) return kNever;
  }
  return id;
}

JournaledStore::Options Opts(MemFileSystem* fs, bool background) {
  JournaledStore::Options o;
  o.data_path = kPath;
  o.size_bytes = uint64_t{kBlocks} * kBlock;
  o.block_size = kBlock;
  o.journal_bytes = kJournal;
  o.checkpoint_fill = 0.25;
  o.fs = fs;
  o.background_checkpoint = background;
  return o;
}

struct Counts {
  uint64_t crash_points = 0, recovery_crashes = 0, atomic_checked = 0;
  uint64_t torn = 0, lost = 0, reverted = 0, corrupt = 0, unreadable = 0;
  uint64_t checkpoints = 0, wraps = 0;
  std::atomic<uint64_t> started = 0;  // writes that took the TryStartWrite path
};

// Runs the workload on `fs`; returns the ops (index = id).
std::vector<Op> RunWorkload(MemFileSystem& fs, JournaledStore& store, uint64_t seed, Counts* c) {
  constexpr int kThreads = 4, kOpsEach = 40;
  std::vector<Op> ops(1 + kThreads * kOpsEach + 16);
  std::atomic<uint64_t> next_id{1};
  std::mutex reserve_mu;
  std::vector<bool> busy(kBlocks, false);
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
        const uint32_t n = atomic ? std::max<uint32_t>(1, kSizes[rng() % 7] / kBlock)
                                  : static_cast<uint32_t>(1 + rng() % std::max(1u, 16384 / kBlock));
        uint32_t lba = 0;
        bool got = false;
        for (int attempt = 0; attempt < 20 && !got; ++attempt) {
          // Small hot area so writes overlap often.
          const uint32_t hot = std::min<uint32_t>(128, kBlocks);
          lba = static_cast<uint32_t>(rng() % (hot - std::min<uint32_t>(n, hot - 1)));
          if (attempt % 2 == 1) lba = static_cast<uint32_t>(rng() % (kBlocks - n + 1));
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
        std::vector<uint8_t> data(size_t{n} * kBlock);
        for (uint32_t b = 0; b < n; ++b) Stamp(data, size_t{b} * kBlock, id, lba + b, b);
        fs.Mark(MarkOf(kIssue, id));
        const uint64_t offset = uint64_t{lba} * kBlock;
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

// Fills issue/done/durable from the marks in the log.
void Analyse(const std::vector<MemFileSystem::Event>& events, std::vector<Op>& ops) {
  std::vector<std::pair<uint64_t, uint64_t>> flushes;  // (start, done) event indexes
  std::map<uint64_t, uint64_t> flush_start;
  for (uint64_t i = 0; i < events.size(); ++i) {
    if (events[i].kind != MemFileSystem::Event::Kind::kMark) continue;
    const uint64_t type = events[i].offset >> 56, id = events[i].offset & ((1ull << 56) - 1);
    if (type == kIssue) ops[id].issue = i;
    if (type == kDone) ops[id].done = i;
    if (type == kFlushStart) flush_start[id] = i;
    if (type == kFlushDone) flushes.push_back({flush_start[id], i});
  }
  for (Op& op : ops) {
    if (op.id == 0 || op.flush || op.done == kNever) continue;
    if (op.atomic || op.fua) {
      op.durable = op.done;
      continue;
    }
    for (const auto& [start, done] : flushes) {  // covered by a flush that began after it
      if (start > op.done) op.durable = std::min(op.durable, done);
    }
  }
}

void Verify(MemFileSystem& crashed, uint64_t cut, const std::vector<Op>& ops,
            const std::vector<std::vector<uint64_t>>& by_block, Counts* c) {
  std::unique_ptr<JournaledStore> store;
  const Status s = JournaledStore::Open(Opts(&crashed, false), &store, nullptr);
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<uint8_t> image(size_t{kBlocks} * kBlock);
  std::vector<uint64_t> shown(kBlocks);
  std::vector<uint64_t> newest_issued(kBlocks, 0);  // the last write issued to it before the cut
  for (uint32_t b = 0; b < kBlocks; ++b) {
    const std::span<uint8_t> block(image.data() + size_t{b} * kBlock, kBlock);
    const Status r = store->Read(uint64_t{b} * kBlock, block);
    uint64_t newest_durable = 0;
    for (uint64_t id : by_block[b]) {
      if (ops[id].durable < cut) newest_durable = std::max(newest_durable, id);
      if (ops[id].issue < cut) newest_issued[b] = std::max(newest_issued[b], id);
    }
    if (!r.ok()) {
      // A sector the device was writing when the power went. Only a write not yet durable may
      // leave one, over whatever was durable before it: where the newest write issued is the
      // newest durable one, its data is lost.
      ASSERT_EQ(r.code(), Status::Code::kIoError) << r.message();
      shown[b] = kUnreadableBlock;
      ++c->unreadable;
      if (newest_durable != 0 && newest_issued[b] == newest_durable) ++c->lost;
      continue;
    }
    shown[b] = Decode(block.data(), b, ops);
    if (shown[b] == kNever || (shown[b] != 0 && ops[shown[b]].issue >= cut)) {
      ++c->corrupt;
      continue;
    }
    if (shown[b] < newest_durable) {
      if (shown[b] != 0 && ops[shown[b]].atomic) {
        ++c->reverted;
      } else {
        ++c->lost;
      }
    }
  }
  for (const Op& op : ops) {
    if (!op.atomic || op.issue >= cut) continue;
    ++c->atomic_checked;
    uint32_t mine = 0, earlier = 0;
    for (uint32_t b = op.lba; b < op.lba + op.blocks; ++b) {
      if (shown[b] == op.id) {
        ++mine;
      } else if (shown[b] == kUnreadableBlock) {
        if (newest_issued[b] == op.id) ++earlier;  // no later write was there to be torn
      } else if (shown[b] < op.id) {
        ++earlier;
      }
    }
    if (mine > 0 && earlier > 0) ++c->torn;
  }
}

void RunGeometry(const Geometry& g, const char* name) {
  kBlock = g.block;
  kBlocks = g.blocks;
  kJournal = g.journal;
  constexpr int kRuns = 50;
  constexpr int kCutsPerRun = 200;
  Counts c;
  for (int run = 0; run < kRuns; ++run) {
    MemFileSystem fs(g.block);  // the device's sector is the LUN's block
    std::vector<Op> ops;
    {
      std::unique_ptr<JournaledStore> store;
      ASSERT_TRUE(JournaledStore::Open(Opts(&fs, true), &store, nullptr).ok());
      fs.RestartLog();  // crash states start from the freshly created store
      ops = RunWorkload(fs, *store, static_cast<uint64_t>(run), &c);
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
    Analyse(events, ops);
    std::vector<std::vector<uint64_t>> by_block(kBlocks);
    for (const Op& op : ops) {
      if (op.id == 0 || op.flush || op.issue == kNever) continue;
      for (uint32_t b = op.lba; b < op.lba + op.blocks; ++b) by_block[b].push_back(op.id);
    }
    std::mt19937_64 rng(static_cast<uint64_t>(run) * 7919);
    for (int k = 0; k < kCutsPerRun; ++k) {
      const uint64_t cut = k == 0 ? events.size() : rng() % (events.size() + 1);
      auto crashed = fs.CrashState(cut, rng, kUnreadable);
      if (k % 25 == 0) {  // crash the recovery too, then recover again
        crashed->RestartLog();
        {
          std::unique_ptr<JournaledStore> recovering;
          const Status s = JournaledStore::Open(Opts(crashed.get(), false), &recovering, nullptr);
          ASSERT_TRUE(s.ok()) << s.message();
        }
        auto twice = crashed->CrashState(rng() % (crashed->EventCount() + 1), rng, kUnreadable);
        Verify(*twice, cut, ops, by_block, &c);
        ++c.recovery_crashes;
      }
      Verify(*crashed, cut, ops, by_block, &c);
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
  EXPECT_GE(c.crash_points, 10000u);
  EXPECT_GE(c.started.load(), 1000u);  // the non-blocking path was exercised, not declined
  EXPECT_GT(c.unreadable, 0u);         // the unreadable-sector outcome was drawn
  EXPECT_EQ(c.torn, 0u);
  EXPECT_EQ(c.lost, 0u);
  EXPECT_EQ(c.reverted, 0u);
  EXPECT_EQ(c.corrupt, 0u);
}

TEST(PowerCut, MixedWorkloadNeverTearsLosesOrRevertsWrites) { RunGeometry(kSmall, "512/512"); }

TEST(PowerCut, FourKiBBlocksOnFourKiBSectors) { RunGeometry(kLarge, "4096/4096"); }

}  // namespace
}  // namespace untorn::storage
