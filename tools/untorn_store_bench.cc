// untorn-store-bench: what the journaled store costs on this disk, measured in-process (no
// network): 16 KiB WRITE ATOMIC-style writes and 16 KiB FUA plain writes through
// JournaledStore, and raw pwrite+fdatasync of the same size, at queue depths 1, 8 and 32.
// Prints IOPS, latency percentiles and the group-commit batch sizes achieved. A benchmark, not
// a test: it prints figures and judges nothing.
//
//   untorn-store-bench [--dir DIR] [--seconds S] [--size BYTES]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storage/journaled_store.h"

namespace {

using Clock = std::chrono::steady_clock;
using untorn::storage::Durability;
using untorn::storage::JournaledStore;

constexpr uint32_t kIoSize = 16384;
constexpr uint64_t kLunSize = 256ull << 20;

struct Result {
  double iops = 0;
  double p50 = 0, p99 = 0, p999 = 0;  // microseconds
  double batch = 0;                   // writes per sync
};

template <typename Op>
Result Run(int depth, double seconds, Op op) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(depth));
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int t = 0; t < depth; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      std::vector<uint8_t> buf(kIoSize, static_cast<uint8_t>(t));
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t off = (rng() % (kLunSize / kIoSize)) * kIoSize;
        const auto t0 = Clock::now();
        if (!op(off, buf)) return;
        lat[static_cast<size_t>(t)].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  Result r;
  if (all.empty()) return r;
  std::sort(all.begin(), all.end());
  r.iops = static_cast<double>(all.size()) / elapsed;
  auto pct = [&](double p) {
    return all[std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())))];
  };
  r.p50 = pct(0.50);
  r.p99 = pct(0.99);
  r.p999 = pct(0.999);
  return r;
}

void Print(const char* what, int depth, const Result& r) {
  std::printf("%-28s QD%-3d %9.0f IOPS  p50 %8.1f us  p99 %8.1f us  p99.9 %8.1f us", what, depth,
              r.iops, r.p50, r.p99, r.p999);
  if (r.batch > 0) std::printf("  %.1f writes/sync", r.batch);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  double seconds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: untorn-store-bench [--dir DIR] [--seconds S]\n");
      return 2;
    }
  }
  const std::string base = dir + "/untorn-store-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(base);
  std::printf("untorn-store-bench: %u-byte random writes over %llu MiB in %s, %.1f s per run\n",
              kIoSize, static_cast<unsigned long long>(kLunSize >> 20), base.c_str(), seconds);
  JournaledStore::Options o;
  o.data_path = base + "/lun.img";
  o.size_bytes = kLunSize;
  o.journal_bytes = 64ull << 20;
  std::unique_ptr<JournaledStore> store;
  if (auto s = JournaledStore::Open(o, &store, nullptr); !s.ok()) {
    std::fprintf(stderr, "open: %s\n", s.message().c_str());
    return 1;
  }
  const int raw = ::open((base + "/raw.img").c_str(), O_RDWR | O_CREAT, 0644);
  if (raw < 0 || ::ftruncate(raw, static_cast<off_t>(kLunSize)) != 0) return 1;
  for (int depth : {1, 8, 32}) {
    const auto before = store->stats();
    Result a = Run(depth, seconds, [&](uint64_t off, std::vector<uint8_t>& b) {
      return store->WriteAtomic(off, b, Durability::kDurable).ok();
    });
    const auto after = store->stats();
    const uint64_t syncs = after.journal_syncs - before.journal_syncs;
    if (syncs > 0)
      a.batch = static_cast<double>(after.journal_records - before.journal_records) /
                static_cast<double>(syncs);
    Print("atomic (journaled)", depth, a);
    const auto b0 = store->stats();
    Result f = Run(depth, seconds, [&](uint64_t off, std::vector<uint8_t>& b) {
      return store->Write(off, b, Durability::kDurable).ok();
    });
    const auto b1 = store->stats();
    const uint64_t dsyncs = b1.data_syncs - b0.data_syncs;
    if (dsyncs > 0)
      f.batch = static_cast<double>(b1.data_sync_waiters - b0.data_sync_waiters) /
                static_cast<double>(dsyncs);
    Print("plain FUA", depth, f);
    Result r = Run(depth, seconds, [&](uint64_t off, std::vector<uint8_t>& b) {
      return ::pwrite(raw, b.data(), b.size(), static_cast<off_t>(off)) ==
                 static_cast<ssize_t>(b.size()) &&
             ::fdatasync(raw) == 0;
    });
    Print("raw pwrite+fdatasync", depth, r);
  }
  ::close(raw);
  store.reset();
  std::filesystem::remove_all(base);
  return 0;
}
