// Randomized fault injection under a logical unit: concurrent WRITE ATOMIC(16), WRITE(16) with
// and without FUA, COMPARE AND WRITE, UNMAP and SYNCHRONIZE CACHE, with background checkpoints,
// over a journaled store whose file system fails one or two of its calls (EIO or ENOSPC, on the
// journal, the data file or the superblock, at a random call, sometimes for good, sometimes
// after writing part of a write). After each run the faults are cleared and the store is
// recovered, as is and after power cuts; every block is checked (tests/storage/crash_checker.h):
// no atomic write torn, nothing acknowledged durable lost or reverted. Every refused command
// must have one of the answers docs/scsi.md gives for storage faults, and a file system that was
// only full must take writes again once it has room, without a restart.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "protocol/byte_order.h"
#include "storage/fault_file_system.h"
#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"
#include "target/log.h"
#include "target/scsi/logical_unit.h"
#include "tests/storage/crash_checker.h"

namespace untorn::target {
namespace {

using storage::FaultFileSystem;
using storage::JournaledStore;
using storage::MemFileSystem;
using storage::Status;
using storage::testing::CrashChecker;
using storage::testing::MarkOf;
using storage::testing::Op;
namespace st = storage::testing;

constexpr uint32_t kBlock = 512;
constexpr uint32_t kBlocks = 512;
constexpr const char* kPath = "/lun.img";

JournaledStore::Options StoreOptions(storage::FileSystem* fs, bool background) {
  JournaledStore::Options o;
  o.data_path = kPath;
  o.size_bytes = uint64_t{kBlocks} * kBlock;
  o.block_size = kBlock;
  o.journal_bytes = 128 << 10;
  o.checkpoint_fill = 0.25;
  o.fs = fs;
  o.background_checkpoint = background;
  return o;
}

std::vector<uint8_t> Cdb16(uint8_t opcode, uint64_t lba, uint32_t blocks, uint8_t byte1 = 0) {
  std::vector<uint8_t> c(16, 0);
  c[0] = opcode;
  c[1] = byte1;
  protocol::StoreBe64(c, 2, lba);
  if (opcode == 0x89) {
    c[13] = static_cast<uint8_t>(blocks);  // COMPARE AND WRITE: NUMBER OF LOGICAL BLOCKS
  } else if (opcode == 0x9c) {
    protocol::StoreBe16(c, 12, static_cast<uint16_t>(blocks));
  } else {
    protocol::StoreBe32(c, 10, blocks);
  }
  return c;
}

struct Tally {
  std::mutex mu;
  uint64_t acknowledged = 0, refused = 0, miscompares = 0, unexpected = 0;
  std::map<std::string, uint64_t> senses;  // "key/asc/ascq" of refused commands
};

std::string SenseName(const protocol::Sense& s) {
  char b[32];
  std::snprintf(b, sizeof b, "%02x/%02x/%02x", static_cast<unsigned>(s.key), s.asc, s.ascq);
  return b;
}

// What docs/scsi.md promises for a command refused by a storage fault.
bool Promised(const std::string& sense) {
  static const std::set<std::string> kPromised = {
      "03/0c/00",  // MEDIUM ERROR, WRITE ERROR: a write or sync failed
      "03/11/00",  // MEDIUM ERROR, UNRECOVERED READ ERROR: a read failed, or torn blocks
      "04/44/00",  // HARDWARE ERROR, INTERNAL TARGET FAILURE: the store failed earlier
      "07/27/07",  // DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT: no room
  };
  return kPromised.contains(sense);
}

struct RunOps {
  std::vector<Op> ops;
  bool wce = true;
};

// One run: the workload over `lu`, its ops recorded with marks in `mem`'s log.
void Workload(LogicalUnit& lu, const Nexus& nexus, MemFileSystem& mem, const CrashChecker& check,
              uint64_t seed, RunOps* run, Tally* tally) {
  constexpr int kThreads = 3, kOpsEach = 16;
  run->ops.assign(1 + kThreads * kOpsEach, Op{});
  std::atomic<uint64_t> next_id{1};
  std::mutex busy_mu;
  std::vector<bool> busy(kBlocks, false);
  const auto record = [&](const ScsiOutcome& o, bool compare) {
    std::lock_guard lk(tally->mu);
    if (o.status == protocol::ScsiStatus::kGood) {
      ++tally->acknowledged;
      return;
    }
    if (!o.sense) {
      ++tally->unexpected;
      return;
    }
    const std::string name = SenseName(*o.sense);
    if (compare && name == "0e/1d/00") {
      ++tally->miscompares;
      return;
    }
    ++tally->refused;
    ++tally->senses[name];
    if (!Promised(name)) ++tally->unexpected;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 100 + static_cast<uint64_t>(t));
      for (int i = 0; i < kOpsEach; ++i) {
        const int kind = static_cast<int>(rng() % 100);
        if (kind < 10) {  // SYNCHRONIZE CACHE(10)
          const uint64_t id = next_id++;
          Op& op = run->ops[id];
          op.id = id;
          op.flush = true;
          mem.Mark(MarkOf(st::kFlushStart, id));
          std::vector<uint8_t> sync(10, 0);
          sync[0] = 0x35;
          const ScsiOutcome o = lu.Execute(nexus, sync, {});
          if (o.status == protocol::ScsiStatus::kGood) mem.Mark(MarkOf(st::kFlushDone, id));
          record(o, false);
          continue;
        }
        const uint32_t n = static_cast<uint32_t>(1 << (rng() % 5));  // 1..16 blocks
        uint32_t lba = 0;
        bool got = false;
        for (int attempt = 0; attempt < 20 && !got; ++attempt) {
          lba = static_cast<uint32_t>(rng() % (attempt % 2 ? kBlocks - n + 1 : 96));
          std::lock_guard lk(busy_mu);
          if (std::none_of(busy.begin() + lba, busy.begin() + lba + n, [](bool b) { return b; })) {
            std::fill(busy.begin() + lba, busy.begin() + lba + n, true);
            got = true;
          }
        }
        if (!got) continue;
        const uint64_t id = next_id++;  // after the blocks are held: ids follow their order
        Op& op = run->ops[id];
        op.id = id;
        op.lba = lba;
        op.blocks = n;
        std::vector<uint8_t> cdb, data = check.Data(id, lba, n);
        bool compare = false;
        if (kind < 40) {  // WRITE ATOMIC(16)
          op.atomic = true;
          cdb = Cdb16(0x9c, lba, n);
        } else if (kind < 70) {  // WRITE(16), FUA half the time
          op.fua = rng() % 2 == 0;
          cdb = Cdb16(0x8a, lba, n, op.fua ? 0x08 : 0);
        } else if (kind < 85) {  // COMPARE AND WRITE against what READ(16) returns now
          const ScsiOutcome now = lu.Execute(nexus, Cdb16(0x88, lba, n), {});
          if (now.status != protocol::ScsiStatus::kGood) {
            record(now, false);
            op.flush = true;
            std::lock_guard lk(busy_mu);
            std::fill(busy.begin() + lba, busy.begin() + lba + n, false);
            continue;
          }
          op.atomic = true;
          compare = true;
          cdb = Cdb16(0x89, lba, n);
          std::vector<uint8_t> both(now.data_in.begin(), now.data_in.end());
          both.insert(both.end(), data.begin(), data.end());
          data = std::move(both);
        } else {  // UNMAP of the range
          op.unmap = true;
          cdb.assign(10, 0);
          cdb[0] = 0x42;
          protocol::StoreBe16(cdb, 7, 24);
          data.assign(24, 0);
          protocol::StoreBe16(data, 0, 22);
          protocol::StoreBe16(data, 2, 16);
          protocol::StoreBe64(data, 8, lba);
          protocol::StoreBe32(data, 16, n);
        }
        mem.Mark(MarkOf(st::kIssue, id));
        const CommandPlan plan = lu.Prepare(nexus, cdb);
        const ScsiOutcome o = plan.done ? *plan.done : lu.Execute(nexus, cdb, std::move(data));
        if (o.status == protocol::ScsiStatus::kGood) mem.Mark(MarkOf(st::kDone, id));
        record(o, compare);
        std::lock_guard lk(busy_mu);
        std::fill(busy.begin() + lba, busy.begin() + lba + n, false);
      }
    });
  }
  for (auto& th : threads) th.join();
  run->ops.resize(next_id.load());
}

FaultFileSystem::Fault RandomFault(std::mt19937_64& rng) {
  using FOp = FaultFileSystem::Op;
  struct Where {
    FOp op;
    const char* suffix;
  };
  static constexpr Where kWhere[] = {
      {FOp::kPWrite, ".journal"}, {FOp::kSync, ".journal"}, {FOp::kPWrite, kPath},
      {FOp::kSync, kPath},        {FOp::kWriteBack, kPath}, {FOp::kAllocate, kPath},
      {FOp::kPunchHole, kPath},   {FOp::kPRead, kPath},     {FOp::kPWrite, ".super.tmp"},
      {FOp::kSync, ".super.tmp"}, {FOp::kRename, ".super"}, {FOp::kSyncDir, ".super"},
  };
  const Where& w = kWhere[rng() % std::size(kWhere)];
  FaultFileSystem::Fault f;
  f.op = w.op;
  f.path_suffix = w.suffix;
  f.nth = 1 + rng() % 24;
  const bool space_op = w.op == FOp::kPWrite || w.op == FOp::kAllocate;
  f.code = space_op && rng() % 2 == 0 ? Status::Code::kNoSpace : Status::Code::kIoError;
  f.sticky = rng() % 4 == 0;
  f.torn_sector = w.op == FOp::kPWrite && rng() % 2 == 0 ? kBlock : 0;
  return f;
}

TEST(FaultInjection, RandomFaultsUnderMixedTrafficNeverTearLoseOrRevert) {
  SetLogLevel(LogLevel::kOff);  // thousands of injected errors, each logged once otherwise
  const char* env = std::getenv("UNTORN_FAULT_RUNS");  // fewer under ThreadSanitizer
  const int kRuns = env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 3000;
  const CrashChecker check(kBlock, kBlocks);
  st::Counts c;
  Tally tally;
  uint64_t faults = 0, space_only_runs = 0, space_recovered = 0, cuts = 0;
  int runs = 0;
  for (int r = 0; r < kRuns; ++r, ++runs) {
    std::mt19937_64 rng(static_cast<uint64_t>(r) * 104729 + 7);
    MemFileSystem mem(kBlock);
    FaultFileSystem fs(&mem);
    RunOps run;
    run.wce = r % 2 == 0;
    config::Lun l;
    l.size = uint64_t{kBlocks} * kBlock;
    l.block_size = kBlock;
    l.physical_block_size = kBlock;
    l.write_cache = run.wce;
    l.thin = true;
    l.atomic = {64, 1, 1, 0, 0, false};
    std::unique_ptr<JournaledStore> store;
    ASSERT_TRUE(JournaledStore::Open(StoreOptions(&fs, true), &store, nullptr).ok());
    mem.RestartLog();
    const int nfaults = 1 + static_cast<int>(rng() % 2);
    bool space_only = true;
    for (int i = 0; i < nfaults; ++i) {
      const FaultFileSystem::Fault f = RandomFault(rng);
      // Out of space is the fault an operator fixes by making room: only on the data file
      // (and the superblock) is it not sticky; a journal write that fails leaves a gap.
      space_only = space_only && f.code == Status::Code::kNoSpace && f.path_suffix == kPath;
      fs.Inject(f);
    }
    {
      Metrics metrics;
      LogicalUnit lu(l, "iqn.2026-12.org.untorn:faults", std::move(store), &metrics);
      lu.SetTargetLuns({0});
      const Nexus nexus{1, "iqn.test", 1};
      lu.AddNexus(nexus);
      (void)lu.Execute(nexus, std::vector<uint8_t>(6, 0), {});  // the POWER ON unit attention
      Workload(lu, nexus, mem, check, static_cast<uint64_t>(r), &run, &tally);
      faults += fs.injected();
      fs.ClearFaults();
      if (space_only && fs.injected() > 0) {
        // Room again: a write is taken, with no restart (a torn apply is applied again first).
        ++space_only_runs;
        const ScsiOutcome o =
            lu.Execute(nexus, Cdb16(0x8a, kBlocks - 1, 1), std::vector<uint8_t>(kBlock, 0));
        EXPECT_EQ(o.status, protocol::ScsiStatus::kGood)
            << "run " << r << ": " << (o.sense ? SenseName(*o.sense) : "no sense");
        if (o.status == protocol::ScsiStatus::kGood) ++space_recovered;
        run.ops.push_back(Op{});  // that write: an op of its own, durable or not
        Op& w = run.ops.back();
        w.id = run.ops.size() - 1;
        w.lba = kBlocks - 1;
        w.blocks = 1;
        w.unmap = true;  // it wrote zeros
        mem.Mark(MarkOf(st::kIssue, w.id));
        if (o.status == protocol::ScsiStatus::kGood) mem.Mark(MarkOf(st::kDone, w.id));
      }
    }  // the LU and its store go: a clean close where the store did not fail
    const auto events = mem.Events();
    CrashChecker::Analyse(events, run.ops, run.wce);
    const auto by_block = check.ByBlock(run.ops);
    // Recovered as is, then after three power cuts at random points of the run.
    for (int k = 0; k < 4; ++k) {
      const uint64_t cut = k == 0 ? events.size() : rng() % (events.size() + 1);
      auto crashed = mem.CrashState(cut, rng);
      std::unique_ptr<JournaledStore> back;
      const Status s = JournaledStore::Open(StoreOptions(crashed.get(), false), &back, nullptr);
      ASSERT_TRUE(s.ok()) << "run " << r << ", cut " << cut << ": " << s.message();
      check.Verify(*back, cut, run.ops, by_block, &c);
      ++cuts;
    }
    if (c.torn + c.lost + c.reverted + c.corrupt > 0) {
      ADD_FAILURE() << "run " << r << " broke the oracle";
      break;
    }
  }
  std::string senses;
  for (const auto& [name, n] : tally.senses) senses += " " + name + "x" + std::to_string(n);
  std::printf(
      "fault injection: %d runs, %llu faults injected, %llu commands acknowledged, %llu "
      "refused (%s ), %llu miscompares; %llu recoveries checked, %llu atomic writes: %llu torn, "
      "%llu lost, %llu reverted, %llu corrupt; %llu of %llu runs out of space took writes again "
      "once there was room\n",
      runs, static_cast<unsigned long long>(faults),
      static_cast<unsigned long long>(tally.acknowledged),
      static_cast<unsigned long long>(tally.refused), senses.c_str(),
      static_cast<unsigned long long>(tally.miscompares), static_cast<unsigned long long>(cuts),
      static_cast<unsigned long long>(c.atomic_checked), static_cast<unsigned long long>(c.torn),
      static_cast<unsigned long long>(c.lost), static_cast<unsigned long long>(c.reverted),
      static_cast<unsigned long long>(c.corrupt), static_cast<unsigned long long>(space_recovered),
      static_cast<unsigned long long>(space_only_runs));
  SetLogLevel(LogLevel::kInfo);
  EXPECT_GE(faults, static_cast<uint64_t>(kRuns));  // at least one a run, on average
  EXPECT_GT(tally.refused, 0u);
  EXPECT_EQ(tally.unexpected, 0u);
  EXPECT_EQ(c.torn, 0u);
  EXPECT_EQ(c.lost, 0u);
  EXPECT_EQ(c.reverted, 0u);
  EXPECT_EQ(c.corrupt, 0u);
  EXPECT_GT(space_only_runs, 0u);
  EXPECT_EQ(space_recovered, space_only_runs);
}

}  // namespace
}  // namespace untorn::target
