// Starts a real untornd for a test: its own temporary data directory, a config written there,
// 127.0.0.1 with a port chosen by the kernel (read back from the log), and a clean stop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace untorn::testing {

class UntorndProcess {
 public:
  // `config_json` may contain @DATA_DIR@, replaced with the temporary directory.
  explicit UntorndProcess(const std::string& config_json,
                          const std::vector<std::string>& extra_args = {});
  ~UntorndProcess();
  UntorndProcess(const UntorndProcess&) = delete;
  UntorndProcess& operator=(const UntorndProcess&) = delete;

  [[nodiscard]] bool ok() const { return port_ != 0; }
  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] uint16_t metrics_port() const { return metrics_port_; }
  [[nodiscard]] std::string portal() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string Url(const std::string& iqn, int lun = 0) const {
    return "iscsi://" + portal() + "/" + iqn + "/" + std::to_string(lun);
  }
  [[nodiscard]] const std::string& dir() const { return dir_; }
  // The configuration file it was started with (a test may rewrite it and reload).
  [[nodiscard]] const std::string& config_path() const { return config_path_; }
  [[nodiscard]] int pid() const { return pid_; }
  [[nodiscard]] std::string Log() const;
  // GET /metrics; empty on failure.
  [[nodiscard]] std::string Metrics() const;
  // SIGTERM and wait (bounded); returns the exit status, or -1.
  int Stop();
  // SIGKILL and reap.
  void Kill();
  // Starts again on the same data directory and port.
  bool Restart();

 private:
  bool Launch(uint16_t port);

  std::string dir_;
  std::string config_path_;
  std::vector<std::string> extra_args_;
  int pid_ = -1;
  uint16_t port_ = 0;
  uint16_t metrics_port_ = 0;
};

// A default single-LUN config (the embedded default's geometry, 64 MiB), with optional extra
// JSON members for the target object (e.g. "\"chap\": {...}").
std::string DefaultConfig(const std::string& target_extra = "", const std::string& lun_extra = "");

constexpr const char* kTargetIqn = "iqn.2026-11.org.untorn:test";

}  // namespace untorn::testing
