// untorn-soak: many sessions logging in, working and leaving — cleanly or abruptly — for a
// while, against a running untornd whose pid is given; afterwards the daemon's open file
// descriptors must come back to where they were after a warm-up round, and its resident memory
// must not have grown past a bound.
//
//   untorn-soak URL --pid PID [--seconds 60] [--threads 8] [--rss-slack-mib 32]
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli.h"
#include "tools/client.h"

namespace {

using Clock = std::chrono::steady_clock;

int CountFds(int pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

long RssKib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      break;
    }
    in.ignore(4096, '\n');
  }
  return value;
}

struct Counters {
  std::atomic<uint64_t> sessions{0}, clean{0}, dropped{0}, dropped_busy{0}, commands{0},
      failures{0};
};

// One session: log in, a few commands of each kind, then leave in one of three ways.
void OneSession(const std::string& url, int id, std::mt19937& rng, Counters* c) {
  std::string error;
  auto s = untorn::tools::Connect(url, "iqn.2026-11.org.untorn:soak:" + std::to_string(id), &error);
  if (!s) {
    ++c->failures;
    return;
  }
  ++c->sessions;
  iscsi_context* ctx = s->context.get();
  const uint32_t bs = s->block_size;
  std::vector<uint8_t> buf(8 * bs, static_cast<uint8_t>(id));
  const int n = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < n; ++i) {
    const uint64_t lba = (rng() % (s->blocks / 8)) * 8;
    untorn::tools::Task t;
    switch (rng() % 3) {
      case 0:
        t.reset(iscsi_read16_sync(ctx, s->lun, lba, 8 * bs, bs, 0, 0, 0, 0, 0));
        break;
      case 1:
        t.reset(iscsi_write16_sync(ctx, s->lun, lba, buf.data(), 8 * bs, bs, 0, 0, 0, 0, 0));
        break;
      default:
        t.reset(iscsi_writeatomic16_sync(ctx, s->lun, lba, buf.data(), 8 * bs, bs, 0, 0, 0, 0));
        break;
    }
    if (!t || t->status != SCSI_STATUS_GOOD) ++c->failures;
    ++c->commands;
  }
  switch (rng() % 3) {
    case 0:  // Logout, as a well-behaved initiator does.
      ++c->clean;
      return;  // the Context deleter logs out
    case 1:    // The initiator vanishes: socket closed, no Logout.
      ::shutdown(iscsi_get_fd(ctx), SHUT_RDWR);
      ++c->dropped;
      break;
    default: {  // Vanishes with a write in flight.
      // Destroying the context cancels the task and calls back with it, to be freed there.
      (void)iscsi_write16_task(
          ctx, s->lun, 0, buf.data(), 8 * bs, bs, 0, 0, 1, 0, 0,
          [](iscsi_context*, int, void* task, void*) {
            scsi_free_scsi_task(static_cast<scsi_task*>(task));
          },
          nullptr);
      (void)iscsi_service(ctx, POLLOUT);
      ::shutdown(iscsi_get_fd(ctx), SHUT_RDWR);
      ++c->dropped_busy;
      break;
    }
  }
  iscsi_destroy_context(s->context.release());
}

bool Alive(int pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// Sessions on `threads` threads for `seconds`, or until the daemon is gone (then at once: the
// sessions would only fail, and the caller reports it).
void Load(const std::string& url, int threads, double seconds, int pid, Counters* c) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      for (int i = 0; Clock::now() < end && Alive(pid); ++i) {
        OneSession(url, t * 1000000 + i, rng, c);
      }
    });
  }
  for (auto& w : workers) w.join();
}

// Waits (bounded) until the daemon holds at most `fds` descriptors; returns what it holds.
int SettleFds(int pid, int fds) {
  int now = CountFds(pid);
  const auto end = Clock::now() + std::chrono::seconds(20);
  while (now > fds && Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = CountFds(pid);
  }
  return now;
}

constexpr const char* kUsage =
    "usage: untorn-soak URL --pid PID [--seconds 60] [--threads 8] "
    "[--rss-slack-mib 32]\n";

int Usage(const std::string& why = {}) { return untorn::tools::BadUsage("untorn-soak", why); }

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-soak", kUsage); rc >= 0) return rc;
  untorn::tools::Options o;
  std::string error;
  if (!untorn::tools::ParseOptions(
          argc, argv,
          {{"pid", true}, {"seconds", true}, {"threads", true}, {"rss-slack-mib", true}}, &o,
          &error) ||
      o.positional.size() != 1 || !o.Has("pid")) {
    if (error.empty()) error = o.positional.size() != 1 ? "needs one URL" : "--pid is required";
    return Usage(error);
  }
  const int pid = std::stoi(o.Get("pid"));
  const double seconds = std::stod(o.Get("seconds", "60"));
  const int threads = std::stoi(o.Get("threads", "8"));
  const long slack_kib = std::stol(o.Get("rss-slack-mib", "32")) * 1024;
  const std::string url = o.positional[0];
  if (CountFds(pid) < 0) {
    std::fprintf(stderr, "untorn-soak: no process %d\n", pid);
    return 1;
  }

  // Warm-up: allocator caches, thread pools and metrics series reach their working size. The
  // descriptor baseline is the idle daemon's; the warm-up must already return to it.
  const int idle_fds = CountFds(pid);
  Counters warm;
  Load(url, threads, std::min(5.0, seconds / 4), pid, &warm);
  const int base_fds = SettleFds(pid, idle_fds);
  const long base_rss = RssKib(pid);
  std::printf("baseline after warm-up (%llu sessions): %d fds, RSS %ld KiB\n",
              static_cast<unsigned long long>(warm.sessions.load()), base_fds, base_rss);

  Counters c;
  const auto start = Clock::now();
  Load(url, threads, seconds, pid, &c);
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  const int fds = SettleFds(pid, base_fds);
  const long rss = RssKib(pid);
  std::printf(
      "%.0f s, %d threads: %llu sessions (%llu logged out, %llu dropped, %llu dropped with a "
      "write in flight), %llu commands, %llu failures\n",
      took, threads, static_cast<unsigned long long>(c.sessions.load()),
      static_cast<unsigned long long>(c.clean.load()),
      static_cast<unsigned long long>(c.dropped.load()),
      static_cast<unsigned long long>(c.dropped_busy.load()),
      static_cast<unsigned long long>(c.commands.load()),
      static_cast<unsigned long long>(c.failures.load()));
  std::printf("after: %d fds (baseline %d), RSS %ld KiB (baseline %ld, slack %ld)\n", fds, base_fds,
              rss, base_rss, slack_kib);
  bool ok = true;
  if (CountFds(pid) < 0) {
    std::printf("FAIL: untornd is gone\n");
    return 1;
  }
  if (fds > base_fds) {
    std::printf("FAIL: %d file descriptor(s) not released\n", fds - base_fds);
    ok = false;
  }
  if (rss > base_rss + slack_kib) {
    std::printf("FAIL: resident memory grew by %ld KiB\n", rss - base_rss);
    ok = false;
  }
  if (c.failures.load() != 0 || c.sessions.load() == 0) {
    std::printf("FAIL: %llu login or command failure(s)\n",
                static_cast<unsigned long long>(c.failures.load()));
    ok = false;
  }
  return ok ? 0 : 1;
}
