// untorn-store-bench: what the journaled store costs on this disk, measured in-process (no
// network): WRITE ATOMIC-style writes and FUA plain writes through JournaledStore, and raw
// pwrite+fdatasync (each writer its own fdatasync: the disk's durable-write ceiling), random over
// the file, at queue depths 1, 8 and 32. The files are written in full first, so every run
// overwrites allocated blocks (as on a LUN in use; first writes to a sparse file also commit the
// file system's allocation). Prints IOPS, latency percentiles and the group-commit batch sizes
// achieved. A benchmark, not a test: it prints figures and judges nothing.
//
//   untorn-store-bench [--dir DIR] [--seconds S] [--bs BYTES] [--size BYTES] [--depths 1,8,32]
//                      [--only atomic|fua|raw]
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
#include "tools/cli.h"

namespace {

using Clock = std::chrono::steady_clock;
using untorn::storage::Durability;
using untorn::storage::JournaledStore;

uint32_t io_size = 16384;          // --bs
uint64_t lun_size = 256ull << 20;  // --size

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
      std::vector<uint8_t> buf(io_size, static_cast<uint8_t>(t));
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t off = (rng() % (lun_size / io_size)) * io_size;
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

// Group-commit batch size: writes made durable per sync (0 when there was no sync).
double PerSync(uint64_t writes, uint64_t syncs) {
  return syncs == 0 ? 0 : static_cast<double>(writes) / static_cast<double>(syncs);
}

// Writes `path` in full (zeros, 1 MiB at a time), syncs it and drops it from the page cache;
// false on failure.
bool Prefill(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) return false;
  const std::vector<uint8_t> zeros(1 << 20, 0);
  bool ok = true;
  for (uint64_t at = 0; ok && at < lun_size; at += zeros.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), lun_size - at));
    ok = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(at)) == static_cast<ssize_t>(n);
  }
  ok = ok && ::fdatasync(fd) == 0;
  // Drop its pages: large folios from 1 MiB writes make later 4 KiB writes into them much
  // slower on ext4 (docs/performance.md), which is not what a LUN in use sees.
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return ok;
}

constexpr const char* kUsage =
    "usage: untorn-store-bench [--dir DIR] [--seconds S] [--bs BYTES] [--size BYTES]\n"
    "                          [--depths 1,8,32] [--only atomic|fua|raw]\n"
    "\n"
    "Measures the journaled store in-process: atomic writes, FUA writes and raw fdatasync per\n"
    "writer at each queue depth, with the group-commit batch sizes.\n";

int Usage(const std::string& why) { return untorn::tools::BadUsage("untorn-store-bench", why); }

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-store-bench", kUsage); rc >= 0) {
    return rc;
  }
  std::string dir = "/tmp", only;
  double seconds = 3;
  std::vector<int> depths{1, 8, 32};
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a != "--dir" && a != "--seconds" && a != "--bs" && a != "--size" && a != "--depths" &&
        a != "--only") {
      return Usage("unknown option " + a);
    }
    if (i + 1 >= argc) return Usage(a + " needs a value");
    const char* v = argv[i + 1];
    if (a == "--dir") {
      dir = v;
    } else if (a == "--seconds") {
      seconds = std::atof(v);
    } else if (a == "--bs") {
      io_size = static_cast<uint32_t>(std::strtoul(v, nullptr, 0));
    } else if (a == "--size") {
      lun_size = std::strtoull(v, nullptr, 0);
    } else if (a == "--depths") {
      depths.clear();
      for (const char* p = v; *p != 0;) {
        char* end = nullptr;
        depths.push_back(static_cast<int>(std::strtol(p, &end, 10)));
        if (end == p || depths.back() < 1 || depths.back() > 1024) {
          return Usage("--depths: numbers from 1 to 1024, comma separated");
        }
        p = *end == ',' ? end + 1 : end;
      }
    } else if (a == "--only") {
      only = v;
      if (only != "atomic" && only != "fua" && only != "raw") {
        return Usage("--only must be atomic, fua or raw");
      }
    } else {
      return Usage("unknown option " + a);
    }
  }
  if (seconds <= 0 || io_size == 0 || io_size % 512 != 0 || lun_size < io_size ||
      lun_size % io_size != 0 || depths.empty()) {
    return Usage("--seconds must be positive, --bs a multiple of 512 that divides --size");
  }
  const std::string base = dir + "/untorn-store-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(base);
  std::printf("untorn-store-bench: %u-byte random writes over %llu MiB in %s, %.1f s per run\n",
              io_size, static_cast<unsigned long long>(lun_size >> 20), base.c_str(), seconds);
  const auto measures = [&](const char* kind) { return only.empty() || only == kind; };
  const bool need_store = measures("atomic") || measures("fua");
  if ((measures("raw") && !Prefill(base + "/raw.img")) ||
      (need_store && !Prefill(base + "/lun.img"))) {
    std::fprintf(stderr, "untorn-store-bench: cannot write the files in %s\n", base.c_str());
    return 1;
  }
  std::unique_ptr<JournaledStore> store;
  if (need_store) {
    JournaledStore::Options o;
    o.data_path = base + "/lun.img";
    o.size_bytes = lun_size;
    o.journal_bytes = 64ull << 20;
    if (auto s = JournaledStore::Open(o, &store, nullptr); !s.ok()) {
      std::fprintf(stderr, "open: %s\n", s.message().c_str());
      return 1;
    }
  }
  const int raw = measures("raw") ? ::open((base + "/raw.img").c_str(), O_RDWR) : -1;
  if (measures("raw") && raw < 0) return 1;
  for (int depth : depths) {
    if (measures("atomic")) {
      const auto before = store->stats();
      Result a = Run(depth, seconds, [&](uint64_t off, std::vector<uint8_t>& b) {
        return store->WriteAtomic(off, b, Durability::kDurable).ok();
      });
      const auto after = store->stats();
      a.batch = PerSync(after.journal_records - before.journal_records,
                        after.journal_syncs - before.journal_syncs);
      Print("atomic (journaled)", depth, a);
    }
    if (measures("fua")) {
      const auto b0 = store->stats();
      Result f = Run(depth, seconds, [&](uint64_t off, std::vector<uint8_t>& b) {
        return store->Write(off, b, Durability::kDurable).ok();
      });
      const auto b1 = store->stats();
      f.batch = PerSync(b1.data_sync_waiters - b0.data_sync_waiters, b1.data_syncs - b0.data_syncs);
      Print("plain FUA", depth, f);
    }
    if (measures("raw")) {
      Result r = Run(depth, seconds, [&](uint64_t off, std::vector<uint8_t>& b) {
        return ::pwrite(raw, b.data(), b.size(), static_cast<off_t>(off)) ==
                   static_cast<ssize_t>(b.size()) &&
               ::fdatasync(raw) == 0;
      });
      Print("raw pwrite+fdatasync", depth, r);
    }
  }
  if (raw >= 0) ::close(raw);
  store.reset();
  std::filesystem::remove_all(base);
  return 0;
}
