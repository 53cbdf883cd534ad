// What every connection shares with the server. Owned by Server; outlives all connections.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "target/asio.h"
#include "target/iscsi/buffer_budget.h"
#include "target/iscsi/connection_limits.h"
#include "target/iscsi/target_runtime.h"
#include "target/metrics.h"

namespace untorn::target {

struct ServerContext {
  // The configuration as it was when this connection was accepted: immutable, and kept alive by
  // the connection, so that a reload changes what new connections see and nothing under the
  // ones already running.
  std::shared_ptr<const config::Config> config;
  TargetRegistry* targets = nullptr;
  SessionRegistry* sessions = nullptr;
  Metrics* metrics = nullptr;
  boost::asio::thread_pool* storage_pool = nullptr;  // blocking storage work runs here
  std::atomic<int>* connections = nullptr;           // live connection count
  BufferBudget* buffers = nullptr;                   // command data, all connections
  int send_buffer = 0;                               // SO_SNDBUF to set; 0: leave to autotuning
  ConnectionLimits* limits = nullptr;                // per-address and discovery caps

  [[nodiscard]] std::shared_ptr<TargetRuntime> FindTarget(const std::string& iqn) const {
    return targets->Find(iqn);
  }
};

}  // namespace untorn::target
