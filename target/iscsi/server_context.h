// What every connection shares with the server. Owned by Server; outlives all connections.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "config/config.h"
#include "target/asio.h"
#include "target/iscsi/buffer_budget.h"
#include "target/iscsi/connection_limits.h"
#include "target/metrics.h"
#include "target/iscsi/target_runtime.h"

namespace untorn::target {

struct ServerContext {
  const config::Config* config = nullptr;
  std::vector<std::unique_ptr<TargetRuntime>>* targets = nullptr;
  SessionRegistry* sessions = nullptr;
  Metrics* metrics = nullptr;
  boost::asio::thread_pool* storage_pool = nullptr;  // blocking storage work runs here
  std::atomic<int>* connections = nullptr;           // live connection count
  BufferBudget* buffers = nullptr;                   // command data, all connections
  int send_buffer = 0;                               // SO_SNDBUF to set; 0: leave to autotuning
  ConnectionLimits* limits = nullptr;                // per-address and discovery caps

  [[nodiscard]] TargetRuntime* FindTarget(const config::Target* t) const {
    for (const auto& r : *targets) {
      if (r->config == t) return r.get();
    }
    return nullptr;
  }
};

}  // namespace untorn::target
