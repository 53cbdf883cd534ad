// untorn-torture: kill -9 torture of a live untornd over iSCSI.
//
// Each cycle starts untornd on a journaled LUN, verifies the slots, runs concurrent WRITE
// ATOMIC(16) writers (each 16 KiB slot stamped with its slot number, a sequence number and the
// block index in every block) plus a reader checking isolation live, kills untornd with SIGKILL
// at a random moment, and goes again. Verification: every slot holds one write whole (no torn
// slot), never older than the last write acknowledged for it (no lost write), never newer
// than the last one issued (no garbage).
//
//   untorn-torture --untornd PATH [--cycles 50] [--writers 4] [--seed N] [--dir DIR]
#include <fcntl.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli.h"

namespace {

constexpr int kBlock = 512;
constexpr int kSlotBlocks = 32;  // 16 KiB
constexpr int kSlots = 64;
constexpr const char* kIqn = "iqn.2026-11.org.untorn:torture";

struct Stamp {
  uint32_t slot, index;
  uint64_t seq;
};

void Fill(std::vector<uint8_t>& b, uint32_t slot, uint64_t seq) {
  b.assign(size_t{kSlotBlocks} * kBlock, 0);
  for (uint32_t i = 0; i < kSlotBlocks; ++i) {
    uint8_t* p = b.data() + size_t{i} * kBlock;
    std::memcpy(p, &slot, 4);
    std::memcpy(p + 4, &i, 4);
    std::memcpy(p + 8, &seq, 8);
    for (int k = 16; k < kBlock; ++k) p[k] = static_cast<uint8_t>(seq * 13 + i + k);
  }
}

bool Parse(const uint8_t* p, Stamp* s) {
  std::memcpy(&s->slot, p, 4);
  std::memcpy(&s->index, p + 4, 4);
  std::memcpy(&s->seq, p + 8, 8);
  for (int k = 16; k < kBlock; ++k) {
    if (p[k] != static_cast<uint8_t>(s->seq * 13 + s->index + k)) return false;
  }
  return true;
}

iscsi_context* Connect(const std::string& portal, const std::string& initiator) {
  iscsi_context* c = iscsi_create_context(initiator.c_str());
  iscsi_set_targetname(c, kIqn);
  iscsi_set_session_type(c, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(c, ISCSI_HEADER_DIGEST_NONE);
  iscsi_set_noautoreconnect(c, 1);
  iscsi_set_timeout(c, 5);
  if (iscsi_full_connect_sync(c, portal.c_str(), 0) != 0) {
    iscsi_destroy_context(c);
    return nullptr;
  }
  return c;
}

class Daemon {
 public:
  Daemon(std::string untornd, std::string dir)
      : untornd_(std::move(untornd)), dir_(std::move(dir)) {}
  bool Start(uint16_t port) {
    const std::string log = dir_ + "/untornd.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      const std::string listen = "127.0.0.1:" + std::to_string(port);
      const std::string config = dir_ + "/untornd.json";
      ::execl(untornd_.c_str(), untornd_.c_str(), "--config", config.c_str(), "--listen",
              listen.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Wait (bounded) for this start's "listening" line.
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+)");
    while (std::chrono::steady_clock::now() < end) {
      std::ifstream in(log);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str().substr(log_offset_);
      std::smatch m;
      if (std::regex_search(text, m, re)) {
        port_ = static_cast<uint16_t>(std::stoi(m[1]));
        log_offset_ += text.size();
        return true;
      }
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // SIGKILL; false if the daemon had already exited (a crash, not the kill this tool makes).
  bool Kill() {
    int st = 0;
    const bool alive = ::waitpid(pid_, &st, WNOHANG) == 0;
    ::kill(pid_, SIGKILL);
    if (alive) ::waitpid(pid_, &st, 0);
    return alive;
  }
  // Lines of the daemon's log that a sanitizer wrote (ASan, UBSan, LSan, TSan).
  [[nodiscard]] std::vector<std::string> SanitizerReports() const {
    std::ifstream in(dir_ + "/untornd.log");
    std::vector<std::string> found;
    for (std::string line; std::getline(in, line);) {
      if (line.find("ERROR: AddressSanitizer") != std::string::npos ||
          line.find("ERROR: LeakSanitizer") != std::string::npos ||
          line.find("WARNING: ThreadSanitizer") != std::string::npos ||
          line.find("runtime error:") != std::string::npos) {
        found.push_back(line);
      }
    }
    return found;
  }
  int Term() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  [[nodiscard]] std::string portal() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] uint16_t port() const { return port_; }

 private:
  std::string untornd_, dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  size_t log_offset_ = 0;
};

struct Totals {
  uint64_t acked = 0, torn = 0, lost = 0, garbage = 0, live_torn = 0, reads = 0;
  uint64_t failed_before_kill = 0;  // commands or logins that failed while the daemon served
};

// Checks every slot against what was issued and acknowledged; returns false if unreadable.
bool Verify(const std::string& portal, const std::vector<uint64_t>& issued,
            const std::vector<uint64_t>& acked, Totals* t) {
  iscsi_context* c = Connect(portal, "iqn.2026-11.org.untorn:torture-verify");
  if (c == nullptr) return false;
  // Read the slots in 256 KiB pieces (well under the LUN's maximum transfer length).
  constexpr int kSlotsPerRead = 16;
  std::vector<uint8_t> image;
  bool ok = true;
  for (int first_slot = 0; ok && first_slot < kSlots; first_slot += kSlotsPerRead) {
    const uint32_t bytes = kSlotsPerRead * kSlotBlocks * kBlock;
    scsi_task* task =
        iscsi_read16_sync(c, 0, uint64_t(first_slot) * kSlotBlocks, bytes, kBlock, 0, 0, 0, 0, 0);
    ok = task != nullptr && task->status == SCSI_STATUS_GOOD &&
         task->datain.size == static_cast<int>(bytes);
    if (ok) image.insert(image.end(), task->datain.data, task->datain.data + bytes);
    if (task) scsi_free_scsi_task(task);
  }
  if (ok) {
    for (uint32_t slot = 0; slot < kSlots; ++slot) {
      uint64_t first = UINT64_MAX;
      bool torn = false, garbage = false;
      for (uint32_t i = 0; i < kSlotBlocks; ++i) {
        const uint8_t* p = image.data() + (size_t{slot} * kSlotBlocks + i) * kBlock;
        Stamp s{};
        uint64_t seq = 0;
        if (std::all_of(p, p + kBlock, [](uint8_t x) { return x == 0; })) {
          seq = 0;
        } else if (!Parse(p, &s) || s.slot != slot || s.index != i) {
          garbage = true;
          continue;
        } else {
          seq = s.seq;
        }
        if (first == UINT64_MAX) first = seq;
        if (seq != first) torn = true;
      }
      if (garbage || (first != UINT64_MAX && first > issued[slot]))
        ++t->garbage;
      else if (torn)
        ++t->torn;
      else if (first < acked[slot])
        ++t->lost;
    }
  }
  iscsi_logout_sync(c);
  iscsi_destroy_context(c);
  return ok;
}

constexpr const char* kUsage =
    "usage: untorn-torture --untornd PATH [--cycles N] [--writers N] [--seed N] [--dir DIR]\n"
    "\n"
    "Starts untornd (PATH), kills it with SIGKILL while N writers send atomic writes, restarts\n"
    "it, and checks every slot holds one whole write and every acknowledged one; CYCLES times.\n"
    "Exit status: 0 nothing torn or lost, 1 a failure (named on stderr), 2 usage.\n";

int Usage(const std::string& why) { return untorn::tools::BadUsage("untorn-torture", why); }

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-torture", kUsage); rc >= 0) {
    return rc;
  }
  std::string untornd, dir;
  int cycles = 50, writers = 4;
  uint64_t seed =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a != "--untornd" && a != "--cycles" && a != "--writers" && a != "--seed" && a != "--dir") {
      return Usage("unknown option " + a);
    }
    if (i + 1 >= argc) return Usage(a + " needs a value");
    if (a == "--untornd")
      untornd = argv[i + 1];
    else if (a == "--cycles")
      cycles = std::atoi(argv[i + 1]);
    else if (a == "--writers")
      writers = std::atoi(argv[i + 1]);
    else if (a == "--seed")
      seed = std::strtoull(argv[i + 1], nullptr, 0);
    else if (a == "--dir")
      dir = argv[i + 1];
    else
      return Usage("unknown option " + a);
  }
  if (untornd.empty()) return Usage("--untornd PATH is required");
  if (cycles < 1) return Usage("--cycles must be at least 1");
  if (writers < 1 || writers > kSlots) {
    return Usage("--writers must be 1 to " + std::to_string(kSlots));
  }
  const bool own_dir = dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/untorn-torture-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      std::fprintf(stderr, "untorn-torture: mkdtemp %s: %s\n", tmpl, std::strerror(errno));
      return 1;
    }
    dir = tmpl;
  } else if (std::error_code ec; !std::filesystem::create_directories(dir, ec) && ec) {
    std::fprintf(stderr, "untorn-torture: --dir %s: %s\n", dir.c_str(), ec.message().c_str());
    return 1;
  }
  {
    std::ofstream config(dir + "/untornd.json");
    config << R"({"portals":[{"listen":"127.0.0.1:0"}],"data_dir":")" << dir << R"(/data",
  "limits":{"nop_interval_seconds":0},
  "targets":[{"iqn":")"
           << kIqn << R"(","luns":[{"id":0,"backing_file":"lun.img","size":"64MiB",
    "journal_size":"8MiB","max_transfer_length":1024,
    "atomic":{"max_transfer_length":1024,"alignment":8,"granularity":8}}]}]})";
    if (!config.flush()) {
      std::fprintf(stderr, "untorn-torture: cannot write %s/untornd.json\n", dir.c_str());
      return 1;
    }
  }
  std::printf("untorn-torture: seed %llu, %d cycles, %d writers, %d slots of %d KiB\n",
              static_cast<unsigned long long>(seed), cycles, writers, kSlots,
              kSlotBlocks * kBlock / 1024);
  std::mt19937_64 rng(seed);
  Daemon d(untornd, dir);
  std::vector<uint64_t> issued(kSlots, 0), acked(kSlots, 0);
  Totals t;
  int rc = 0;
  uint16_t port = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    if (!d.Start(port)) {
      std::fprintf(stderr, "cycle %d: untornd did not start (see %s/untornd.log)\n", cycle,
                   dir.c_str());
      rc = 1;
      break;
    }
    port = d.port();
    Totals before = t;
    if (!Verify(d.portal(), issued, acked, &t)) {
      std::fprintf(stderr, "cycle %d: verification read failed\n", cycle);
      rc = 1;
      (void)d.Kill();
      break;
    }
    std::atomic<bool> stop{false};
    std::atomic<bool> killing{false};  // set just before the SIGKILL: failures after it are it
    std::atomic<uint64_t> acked_now{0}, failed_now{0};
    // A command or login that failed: the kill if it came after killing was set, else an error
    // of the daemon's (it must serve every command until it is killed).
    const auto failed = [&] {
      if (!killing.load()) ++failed_now;
    };
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        iscsi_context* c =
            Connect(d.portal(), "iqn.2026-11.org.untorn:torture-w" + std::to_string(w));
        if (c == nullptr) {
          failed();
          return;
        }
        std::mt19937_64 r(seed ^ (static_cast<uint64_t>(cycle) << 16) ^ static_cast<uint64_t>(w));
        std::vector<uint8_t> buf;
        while (!stop.load()) {
          const uint32_t slot =
              static_cast<uint32_t>(w + writers * static_cast<int>(r() % (kSlots / writers)));
          const uint64_t seq = ++issued[slot];  // slots are owned by one writer
          Fill(buf, slot, seq);
          scsi_task* task =
              iscsi_writeatomic16_sync(c, 0, uint64_t{slot} * kSlotBlocks, buf.data(),
                                       static_cast<uint32_t>(buf.size()), kBlock, 0, 0, r() % 2, 0);
          const bool good = task != nullptr && task->status == SCSI_STATUS_GOOD;
          if (task) scsi_free_scsi_task(task);
          if (!good) {
            failed();
            break;
          }
          acked[slot] = seq;
          ++acked_now;
        }
        iscsi_destroy_context(c);
      });
    }
    threads.emplace_back([&] {  // live isolation check: reads never see half a slot
      iscsi_context* c = Connect(d.portal(), "iqn.2026-11.org.untorn:torture-reader");
      if (c == nullptr) {
        failed();
        return;
      }
      std::mt19937_64 r(seed + static_cast<uint64_t>(cycle));
      while (!stop.load()) {
        const uint32_t slot = static_cast<uint32_t>(r() % kSlots);
        scsi_task* task = iscsi_read16_sync(c, 0, uint64_t{slot} * kSlotBlocks,
                                            kSlotBlocks * kBlock, kBlock, 0, 0, 0, 0, 0);
        if (task == nullptr || task->status != SCSI_STATUS_GOOD) {
          if (task) scsi_free_scsi_task(task);
          failed();
          break;
        }
        uint64_t first = 0;
        std::memcpy(&first, task->datain.data + 8, 8);
        for (int i = 1; i < kSlotBlocks; ++i) {
          uint64_t s = 0;
          std::memcpy(&s, task->datain.data + static_cast<size_t>(i) * kBlock + 8, 8);
          if (s != first) {
            ++t.live_torn;
            break;
          }
        }
        ++t.reads;
        scsi_free_scsi_task(task);
      }
      iscsi_destroy_context(c);
    });
    // The moment of the power cut: a random time into the cycle (the tool's own schedule, not
    // a wait for anything).
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
    killing = true;
    const bool alive = d.Kill();
    stop = true;
    for (auto& th : threads) th.join();
    t.acked += acked_now.load();
    t.failed_before_kill += failed_now.load();
    std::printf(
        "cycle %2d: %5llu atomic writes acknowledged; verify before: %llu torn, %llu lost, "
        "%llu garbage\n",
        cycle, static_cast<unsigned long long>(acked_now.load()),
        static_cast<unsigned long long>(t.torn - before.torn),
        static_cast<unsigned long long>(t.lost - before.lost),
        static_cast<unsigned long long>(t.garbage - before.garbage));
    std::fflush(stdout);
    if (!alive) {
      std::fprintf(stderr, "cycle %d: untornd had exited before the SIGKILL (see %s/untornd.log)\n",
                   cycle, dir.c_str());
      rc = 1;
      break;
    }
    if (failed_now.load() > 0) {
      std::fprintf(stderr, "cycle %d: %llu commands or logins failed before the SIGKILL\n", cycle,
                   static_cast<unsigned long long>(failed_now.load()));
      rc = 1;
      break;
    }
    if (acked_now.load() == 0) {
      std::fprintf(stderr, "cycle %d: no atomic write was acknowledged before the SIGKILL\n",
                   cycle);
      rc = 1;
      break;
    }
  }
  if (rc == 0) {  // final verification after the last kill
    if (!d.Start(port) || !Verify(d.portal(), issued, acked, &t)) rc = 1;
    if (d.Term() != 0) rc = 1;
  }
  std::printf(
      "untorn-torture: %d cycles, %llu acknowledged atomic writes, %llu live reads, %llu "
      "failures before a kill: %llu torn, %llu lost, %llu garbage, %llu torn reads\n",
      cycles, static_cast<unsigned long long>(t.acked), static_cast<unsigned long long>(t.reads),
      static_cast<unsigned long long>(t.failed_before_kill),
      static_cast<unsigned long long>(t.torn), static_cast<unsigned long long>(t.lost),
      static_cast<unsigned long long>(t.garbage), static_cast<unsigned long long>(t.live_torn));
  if (t.torn || t.lost || t.garbage || t.live_torn || t.acked == 0) rc = 1;
  for (const std::string& line : d.SanitizerReports()) {
    std::fprintf(stderr, "untorn-torture: sanitizer report in untornd.log: %s\n", line.c_str());
    rc = 1;
  }
  if (own_dir && rc == 0) std::filesystem::remove_all(dir);
  if (rc != 0) std::printf("untorn-torture: FAILED (files kept in %s)\n", dir.c_str());
  return rc;
}
