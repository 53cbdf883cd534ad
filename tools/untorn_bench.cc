// untorn-bench: an asynchronous iSCSI load generator in the manner of libiscsi's iscsi-perf.
// Each session is one libiscsi context on its own thread keeping its share of the queue depth
// in flight; the mix picks READ(16), WRITE(16) or WRITE ATOMIC(16) per command.
//
//   untorn-bench URL [--mix read=70,write=30,atomic=0] [--bs 4k] [--qd 32] [--sessions 1]
//                [--seq] [--fua] [--seconds 10] [--ramp 1] [--range BYTES] [--json]
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli.h"
#include "tools/client.h"

namespace {

using Clock = std::chrono::steady_clock;
using untorn::tools::ParseCount;

enum class Op { kRead, kWrite, kAtomic };
constexpr const char* kOpNames[] = {"read", "write", "atomic"};

struct Workload {
  std::string url, initiator = untorn::tools::kDefaultInitiator;
  uint32_t weights[3] = {100, 0, 0};
  uint64_t bs = 4096;
  uint32_t qd = 32;
  uint32_t sessions = 1;
  bool sequential = false;
  bool fua = false;
  double seconds = 10, ramp = 1;
  uint64_t range = 0;  // bytes from LBA 0 the I/O falls in; 0 = the whole LUN
  bool json = false;
};

struct Shared {
  std::atomic<uint64_t> ops{0}, bytes{0}, errors{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false};
  std::mutex mu;
  std::string first_error;
  void Error(const std::string& e) {
    errors.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mu);
    if (first_error.empty()) first_error = e;
  }
};

struct Result {
  std::vector<uint32_t> latency_us[3];  // measured commands only
  uint64_t bytes = 0;
};

// One session: a context, `depth` slots each with its own buffer, and a poll loop.
class Worker {
 public:
  Worker(const Workload& w, Shared* shared, uint32_t index, uint32_t depth)
      : w_(w), shared_(shared), index_(index), depth_(depth), rng_(0x9e37u + index) {}

  bool Connect(std::string* error) {
    auto session =
        untorn::tools::Connect(w_.url, w_.initiator + ":" + std::to_string(index_), error);
    if (!session) return false;
    session_ = std::move(*session);
    if (w_.bs % session_.block_size != 0) {
      *error =
          "--bs must be a multiple of the LUN's block size " + std::to_string(session_.block_size);
      return false;
    }
    blocks_per_io_ = w_.bs / session_.block_size;
    uint64_t range_blocks = w_.range != 0 ? w_.range / session_.block_size : session_.blocks;
    range_blocks = std::min(range_blocks, session_.blocks);
    ios_in_range_ = range_blocks / blocks_per_io_;
    if (ios_in_range_ == 0) {
      *error = "the range holds no whole I/O of --bs bytes";
      return false;
    }
    // Sequential streams start spread over the range, one per session.
    cursor_ = ios_in_range_ * index_ / std::max<uint32_t>(1, w_.sessions);
    slots_.resize(depth_);
    for (Slot& s : slots_) {
      s.worker = this;
      s.buffer.resize(w_.bs);
      for (auto& b : s.buffer) b = static_cast<uint8_t>(rng_());
    }
    return true;
  }

  void Run() {
    for (Slot& s : slots_) Submit(&s);
    iscsi_context* c = session_.context.get();
    while (in_flight_ > 0 && failed_.empty()) {
      pollfd p{iscsi_get_fd(c), static_cast<short>(iscsi_which_events(c)), 0};
      if (::poll(&p, 1, 1000) < 0) continue;
      if (iscsi_service(c, p.revents) < 0) failed_ = iscsi_get_error(c);
    }
    if (!failed_.empty()) shared_->Error("session " + std::to_string(index_) + ": " + failed_);
  }

  Result& result() { return result_; }

 private:
  struct Slot {
    Worker* worker = nullptr;
    std::vector<uint8_t> buffer;
    scsi_iovec iov{};
    Op op = Op::kRead;
    uint64_t lba = 0;
    Clock::time_point start;
  };

  Op PickOp() {
    const uint32_t total = w_.weights[0] + w_.weights[1] + w_.weights[2];
    uint32_t r = static_cast<uint32_t>(rng_() % total);
    for (int i = 0; i < 3; ++i) {
      if (r < w_.weights[i]) return static_cast<Op>(i);
      r -= w_.weights[i];
    }
    return Op::kRead;
  }

  uint64_t PickLba() {
    uint64_t io;
    if (w_.sequential) {
      io = cursor_++;
      if (cursor_ == ios_in_range_) cursor_ = 0;
    } else {
      io = rng_() % ios_in_range_;
    }
    return io * blocks_per_io_;
  }

  void Submit(Slot* s) {
    if (shared_->stop.load(std::memory_order_relaxed)) return;
    s->op = PickOp();
    s->lba = PickLba();
    s->iov = {s->buffer.data(), s->buffer.size()};
    s->start = Clock::now();
    iscsi_context* c = session_.context.get();
    const auto len = static_cast<uint32_t>(w_.bs);
    const int bs = static_cast<int>(session_.block_size), fua = w_.fua ? 1 : 0;
    scsi_task* t = nullptr;
    switch (s->op) {
      case Op::kRead:
        t = iscsi_read16_iov_task(c, session_.lun, s->lba, len, bs, 0, 0, 0, 0, 0, &Done, s,
                                  &s->iov, 1);
        break;
      case Op::kWrite:
        t = iscsi_write16_iov_task(c, session_.lun, s->lba, nullptr, len, bs, 0, 0, fua, 0, 0,
                                   &Done, s, &s->iov, 1);
        break;
      case Op::kAtomic:
        t = iscsi_writeatomic16_iov_task(c, session_.lun, s->lba, nullptr, len, bs, 0, 0, fua, 0,
                                         &Done, s, &s->iov, 1);
        break;
    }
    if (t == nullptr) {
      failed_ = std::string("cannot queue a command: ") + iscsi_get_error(c);
      return;
    }
    ++in_flight_;
  }

  static void Done(iscsi_context*, int status, void* command_data, void* private_data) {
    auto* s = static_cast<Slot*>(private_data);
    auto* task = static_cast<scsi_task*>(command_data);
    Worker* w = s->worker;
    --w->in_flight_;
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - s->start);
    if (status != SCSI_STATUS_GOOD) {
      w->shared_->Error(std::string(kOpNames[static_cast<int>(s->op)]) + " LBA " +
                        std::to_string(s->lba) + ": " + untorn::tools::DescribeStatus(*task));
      w->shared_->stop.store(true);
    } else {
      w->shared_->ops.fetch_add(1, std::memory_order_relaxed);
      w->shared_->bytes.fetch_add(w->w_.bs, std::memory_order_relaxed);
      if (w->shared_->measuring.load(std::memory_order_relaxed)) {
        w->result_.latency_us[static_cast<int>(s->op)].push_back(
            static_cast<uint32_t>(std::min<int64_t>(us.count(), UINT32_MAX)));
        w->result_.bytes += w->w_.bs;
      }
    }
    scsi_free_scsi_task(task);
    w->Submit(s);
  }

  const Workload& w_;
  Shared* shared_;
  uint32_t index_, depth_;
  std::mt19937_64 rng_;
  untorn::tools::Session session_;
  uint64_t blocks_per_io_ = 1, ios_in_range_ = 0, cursor_ = 0;
  std::vector<Slot> slots_;
  uint32_t in_flight_ = 0;
  std::string failed_;
  Result result_;
};

struct Summary {
  uint64_t count = 0;
  double mean = 0;
  uint32_t p50 = 0, p99 = 0, p999 = 0, max = 0;
};

Summary Summarize(std::vector<uint32_t> v) {
  Summary s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * v.size()))]; };
  s.p50 = at(0.50);
  s.p99 = at(0.99);
  s.p999 = at(0.999);
  s.max = v.back();
  double sum = 0;
  for (uint32_t x : v) sum += x;
  s.mean = sum / v.size();
  return s;
}

bool ParseMix(const std::string& text, uint32_t weights[3]) {
  uint32_t w[3] = {0, 0, 0};
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return false;
    const std::string name = item.substr(0, eq);
    const auto v = ParseCount(item.substr(eq + 1));
    if (!v || *v > 1000000) return false;
    int i = 0;
    while (i < 3 && name != kOpNames[i]) ++i;
    if (i == 3) return false;
    w[i] = static_cast<uint32_t>(*v);
    pos = end + 1;
  }
  if (w[0] + w[1] + w[2] == 0) return false;
  std::copy(w, w + 3, weights);
  return true;
}

constexpr const char* kUsage =
    "usage: untorn-bench URL [options]\n"
    "  URL               iscsi://[user[%secret]@]host[:port]/target-iqn/lun\n"
    "  --mix SPEC        weights of read, write (WRITE(16)) and atomic (WRITE ATOMIC(16)),\n"
    "                    e.g. read=70,write=30 (default read=100)\n"
    "  --bs SIZE         bytes per command, a multiple of the block size (default 4k)\n"
    "  --qd N            commands in flight in all (default 32)\n"
    "  --sessions N      sessions (threads) sharing the queue depth (default 1)\n"
    "  --seq             sequential (each session its own stream); default random\n"
    "  --fua             FUA on writes and atomic writes\n"
    "  --seconds S       measured time (default 10), after --ramp S (default 1)\n"
    "  --range SIZE      keep I/O within the first SIZE bytes (default the whole LUN)\n"
    "  --json            print the result as one JSON object\n"
    "  --initiator IQN   initiator name prefix (\":N\" is appended per session)\n"
    "A progress line is shown on a terminal. Exit status 1 if any command failed.\n";

int Usage(const std::string& why = {}) { return untorn::tools::BadUsage("untorn-bench", why); }

bool ParseWorkload(int argc, char** argv, Workload* w) {
  untorn::tools::Options o;
  std::string error;
  if (!untorn::tools::ParseOptions(argc, argv,
                                   {{"mix", true},
                                    {"bs", true},
                                    {"qd", true},
                                    {"sessions", true},
                                    {"seq", false},
                                    {"fua", false},
                                    {"seconds", true},
                                    {"ramp", true},
                                    {"range", true},
                                    {"json", false},
                                    {"initiator", true}},
                                   &o, &error) ||
      o.positional.size() != 1) {
    std::fprintf(stderr, "untorn-bench: %s\n", error.empty() ? "needs one URL" : error.c_str());
    return false;
  }
  w->url = o.positional[0];
  w->initiator = o.Get("initiator", w->initiator);
  w->sequential = o.Has("seq");
  w->fua = o.Has("fua");
  w->json = o.Has("json");
  const auto bad = [](const char* what) {
    std::fprintf(stderr, "untorn-bench: bad %s\n", what);
    return false;
  };
  if (o.Has("mix") && !ParseMix(o.Get("mix"), w->weights)) return bad("--mix");
  const auto bs = ParseCount(o.Get("bs", "4k"));
  if (!bs || *bs == 0 || *bs > (32u << 20)) return bad("--bs (1 byte to 32 MiB)");
  w->bs = *bs;
  const auto qd = ParseCount(o.Get("qd", "32"));
  if (!qd || *qd == 0 || *qd > 4096) return bad("--qd (1 to 4096)");
  w->qd = static_cast<uint32_t>(*qd);
  const auto sessions = ParseCount(o.Get("sessions", "1"));
  if (!sessions || *sessions == 0 || *sessions > w->qd) return bad("--sessions (1 to --qd)");
  w->sessions = static_cast<uint32_t>(*sessions);
  const auto range = ParseCount(o.Get("range", "0"));
  if (!range) return bad("--range");
  w->range = *range;
  try {
    w->seconds = std::stod(o.Get("seconds", "10"));
    w->ramp = std::stod(o.Get("ramp", "1"));
  } catch (...) {
    return bad("--seconds or --ramp");
  }
  if (!(w->seconds > 0) || !(w->ramp >= 0)) return bad("--seconds or --ramp");
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-bench", kUsage); rc >= 0) return rc;
  Workload w;
  if (!ParseWorkload(argc, argv, &w)) return Usage();

  Shared shared;
  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t i = 0; i < w.sessions; ++i) {
    const uint32_t depth = w.qd / w.sessions + (i < w.qd % w.sessions ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(w, &shared, i, depth));
    std::string error;
    if (!workers.back()->Connect(&error)) {
      std::fprintf(stderr, "untorn-bench: %s\n", error.c_str());
      return 1;
    }
  }
  std::vector<std::thread> threads;
  for (auto& worker : workers) threads.emplace_back([&worker] { worker->Run(); });

  // Ramp, then measure; a progress line each second on a terminal.
  const bool tty = ::isatty(2) != 0;
  const auto begin = Clock::now();
  const auto measure_from =
      begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(w.ramp));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(w.seconds));
  uint64_t last_ops = 0, last_bytes = 0;
  auto last = begin;
  while (!shared.stop.load() && Clock::now() < end) {
    auto wake = std::min(end, last + std::chrono::seconds(1));
    if (!shared.measuring.load()) wake = std::min(wake, measure_from);
    std::this_thread::sleep_until(wake);
    const auto now = Clock::now();
    if (!shared.measuring.load() && now >= measure_from) {
      shared.measuring.store(true);
      if (now < last + std::chrono::seconds(1)) continue;  // the ramp ended between two lines
    }
    const uint64_t ops = shared.ops.load(), bytes = shared.bytes.load();
    const double dt = std::chrono::duration<double>(now - last).count();
    if (tty && dt > 0) {
      std::fprintf(stderr, "\r[%5.0fs%s] %9.0f IOPS %9.1f MB/s  errors %" PRIu64 "   ",
                   std::chrono::duration<double>(now - begin).count(),
                   now < measure_from ? " ramp" : "", (ops - last_ops) / dt,
                   (bytes - last_bytes) / dt / 1e6, shared.errors.load());
    }
    last_ops = ops;
    last_bytes = bytes;
    last = now;
  }
  shared.measuring.store(false);
  const auto measured_end = Clock::now();
  shared.stop.store(true);
  for (auto& t : threads) t.join();
  if (tty) std::fprintf(stderr, "\n");

  const double secs = std::chrono::duration<double>(std::min(measured_end, end) -
                                                    std::min(measure_from, measured_end))
                          .count();
  std::vector<uint32_t> all[3];
  uint64_t bytes = 0;
  for (auto& worker : workers) {
    for (int i = 0; i < 3; ++i) {
      auto& v = worker->result().latency_us[i];
      all[i].insert(all[i].end(), v.begin(), v.end());
    }
    bytes += worker->result().bytes;
  }
  std::vector<uint32_t> combined;
  for (auto& v : all) combined.insert(combined.end(), v.begin(), v.end());
  const Summary total = Summarize(combined);
  const double iops = secs > 0 ? total.count / secs : 0, mbps = secs > 0 ? bytes / secs / 1e6 : 0;

  std::string mix;
  for (int i = 0; i < 3; ++i) {
    if (w.weights[i] == 0) continue;
    mix += (mix.empty() ? "" : ",") + std::string(kOpNames[i]) + "=" + std::to_string(w.weights[i]);
  }
  if (w.json) {
    std::printf("{\"mix\": \"%s\", \"bs\": %" PRIu64
                ", \"qd\": %u, \"sessions\": %u, \"pattern\": "
                "\"%s\", \"fua\": %s, \"seconds\": %.3f, \"iops\": %.1f, \"mb_per_s\": %.2f, "
                "\"errors\": %" PRIu64 ", \"latency_us\": {",
                mix.c_str(), w.bs, w.qd, w.sessions, w.sequential ? "seq" : "random",
                w.fua ? "true" : "false", secs, iops, mbps, shared.errors.load());
    bool first = true;
    for (int i = 0; i < 4; ++i) {
      const Summary s = i < 3 ? Summarize(all[i]) : total;
      if (s.count == 0) continue;
      std::printf("%s\"%s\": {\"count\": %" PRIu64
                  ", \"mean\": %.1f, \"p50\": %u, \"p99\": %u, \"p99_9\": %u, \"max\": %u}",
                  first ? "" : ", ", i < 3 ? kOpNames[i] : "all", s.count, s.mean, s.p50, s.p99,
                  s.p999, s.max);
      first = false;
    }
    std::printf("}}\n");
  } else {
    std::printf("%s bs=%" PRIu64 " qd=%u sessions=%u %s%s, %.1f s: %.0f IOPS, %.1f MB/s\n",
                mix.c_str(), w.bs, w.qd, w.sessions, w.sequential ? "seq" : "random",
                w.fua ? " fua" : "", secs, iops, mbps);
    for (int i = 0; i < 3; ++i) {
      const Summary s = Summarize(all[i]);
      if (s.count == 0) continue;
      std::printf("  %-6s %10" PRIu64
                  " cmds  latency us: mean %.0f p50 %u p99 %u p99.9 %u max %u\n",
                  kOpNames[i], s.count, s.mean, s.p50, s.p99, s.p999, s.max);
    }
  }
  if (shared.errors.load() != 0) {
    std::fprintf(stderr, "untorn-bench: %" PRIu64 " command(s) failed; first: %s\n",
                 shared.errors.load(), shared.first_error.c_str());
    return 1;
  }
  return 0;
}
