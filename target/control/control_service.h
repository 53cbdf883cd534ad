// The control interface's methods: JSON-RPC 2.0 requests (https://www.jsonrpc.org/specification)
// in, responses out, over what the server lends it. No sockets here (control_server.h carries
// the bytes), so every method is reachable from a test with a string.
//
// Methods (docs/control.md): status, session.list, session.drop, lun.resize, config.save,
// config.reload.
// Errors are JSON-RPC errors; those about a parameter carry {"field": "params.x", "reason": …}
// in their data, so a client can say which argument was wrong.
//
// Threads: Handle may be called from any thread; calls are serialized by a mutex (a resize
// blocks while the LUN's I/O drains, so the server calls it off its network threads).
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "target/iscsi/target_runtime.h"

namespace untorn::target {

class ControlService {
 public:
  struct Runtime {
    config::Config* config = nullptr;  // the running configuration (resize, reload change it)
    TargetRegistry* targets = nullptr;
    SessionRegistry* sessions = nullptr;
    std::string config_file;  // what --config named; empty: the embedded default
    std::string version;
    // For config.reload: the file read again with the command line's overrides (null: nothing
    // to reload), the portals as that gave them before ports were bound, and what publishes a
    // changed running configuration to new connections.
    std::function<bool(config::Config*, std::string*)> load_config;
    std::vector<config::Portal> portals_as_loaded;
    std::function<void()> publish_config;
    // For lun.add: opens a LUN's store and makes its logical unit (null: failed, logged).
    std::function<std::shared_ptr<LogicalUnit>(const config::Target&, const config::Lun&)> open_lun;
    // For a reload that adds a target: its runtime with its LUNs opened (null: failed, logged).
    std::function<std::shared_ptr<TargetRuntime>(const config::Target&)> open_target;
  };
  explicit ControlService(Runtime rt) : rt_(std::move(rt)) {}

  // One request (or batch) as JSON text; the response as one line of JSON, or empty when the
  // request was only notifications.
  [[nodiscard]] std::string Handle(std::string_view request);

 private:
  std::mutex mu_;  // one request at a time
  Runtime rt_;     // guarded by mu_ (the config it points to is changed only here)
};

}  // namespace untorn::target
