#include "untornd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace untorn::testing {
namespace {

bool WaitForExit(int pid, std::chrono::milliseconds deadline, int* status) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    const int r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

std::string DefaultConfig(const std::string& target_extra, const std::string& lun_extra) {
  return std::string(R"({
  "portals": [{"listen": "127.0.0.1:3260"}],
  "data_dir": "@DATA_DIR@",
  "limits": {"nop_interval_seconds": 5},
  "targets": [{
    "iqn": ")") +
         kTargetIqn + R"(",
    "alias": "test disk")" +
         (target_extra.empty() ? "" : ",\n    " + target_extra) + R"(,
    "luns": [{"id": 0, "backing_file": "lun0.img", "size": "64MiB",
              "atomic": {"max_transfer_length": 1024, "alignment": 8, "granularity": 8})" +
         (lun_extra.empty() ? "" : ", " + lun_extra) + R"(}]
  }]
})";
}

UntorndProcess::UntorndProcess(const std::string& config_json,
                               const std::vector<std::string>& extra_args)
    : extra_args_(extra_args) {
  char tmpl[] = "/tmp/untorn-it-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  config_path_ = dir_ + "/untornd.json";
  std::string text = std::regex_replace(config_json, std::regex("@DATA_DIR@"), dir_ + "/data");
  std::ofstream(config_path_) << text;
  Launch(0);
}

UntorndProcess::~UntorndProcess() {
  if (pid_ > 0) {
    if (Stop() < 0) Kill();
  }
  // A sanitizer build of untornd reports into its log: any report fails the test.
  const std::string log = Log();
  if (log.find("Sanitizer") != std::string::npos ||
      log.find("runtime error") != std::string::npos) {
    ADD_FAILURE() << "untornd reported a sanitizer error:\n" << log;
  }
  std::filesystem::remove_all(dir_);
}

bool UntorndProcess::Launch(uint16_t port) {
  const std::string log = dir_ + "/untornd.log";
  ::unlink(log.c_str());
  std::vector<std::string> args = {
      UNTORND_PATH, "--config",   config_path_, "--listen", "127.0.0.1:" + std::to_string(port),
      "--metrics",  "127.0.0.1:0"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pid_ = ::fork();
  if (pid_ == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  // Poll the log for the bound ports, with a deadline.
  const std::regex listening("listening on 127\\.0\\.0\\.1:([0-9]+)");
  const std::regex metrics("metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics");
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    const std::string text = Log();
    std::smatch m, mm;
    if (std::regex_search(text, m, listening) && std::regex_search(text, mm, metrics)) {
      port_ = static_cast<uint16_t>(std::stoi(m[1]));
      metrics_port_ = static_cast<uint16_t>(std::stoi(mm[1]));
      return true;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string UntorndProcess::Log() const {
  std::ifstream in(dir_ + "/untornd.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string UntorndProcess::Metrics() const {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(metrics_port_);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

int UntorndProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!WaitForExit(pid_, std::chrono::seconds(20), &status)) return -1;
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void UntorndProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

bool UntorndProcess::Restart() {
  const uint16_t port = port_;
  port_ = 0;
  // The kernel may keep the old port in TIME_WAIT; SO_REUSEADDR in untornd handles that.
  return Launch(port);
}

}  // namespace untorn::testing
