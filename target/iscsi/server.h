// untornd's server: opens the LUNs, listens on the portals, accepts connections, serves metrics,
// and shuts down cleanly on SIGINT/SIGTERM (stop accepting, end sessions, let in-flight storage
// work finish, flush every LUN).
//
// Threads: the main thread runs `io_` (acceptors, signals, metrics, shutdown); each of
// kNetworkThreads threads runs an io_context of its own, and each connection lives on one of
// them (on a strand, for the few calls from other threads), so a connection's work never
// passes between threads; a storage pool of config.io_threads threads does blocking I/O.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "storage/block_store.h"
#include "target/asio.h"
#include "target/control/control_server.h"
#include "target/iscsi/buffer_budget.h"
#include "target/iscsi/server_context.h"
#include "target/iscsi/target_runtime.h"
#include "target/metrics.h"

namespace untorn::target {

class Server {
 public:
  // `config_file` is what --config named (empty: the embedded default), for the control
  // interface's config.save; `version` and `commit` are what it and the untorn_build_info
  // metric report.
  explicit Server(config::Config config, std::string config_file = {}, std::string version = {},
                  std::string commit = {});
  ~Server();

  // Where a reload (SIGHUP, untornctl reload) reads the configuration again: the file, with
  // the command line's overrides applied. Unset: nothing to reload. Before Open.
  void SetConfigSource(std::function<bool(config::Config*, std::string*)> load) {
    load_config_ = std::move(load);
  }

  // Opens backing stores and binds the portals; false (with a logged reason) on failure.
  [[nodiscard]] bool Open();
  // Serves until a stop signal; returns the process exit code.
  int Run();
  // Actual bound ports (after Open), in config order.
  [[nodiscard]] const std::vector<uint16_t>& bound_ports() const { return bound_ports_; }

 private:
  boost::asio::awaitable<void> Accept(boost::asio::ip::tcp::acceptor& acceptor);
  boost::asio::awaitable<void> ServeMetrics(boost::asio::ip::tcp::acceptor& acceptor);
  boost::asio::awaitable<void> MetricsClient(boost::asio::ip::tcp::socket socket);
  void Shutdown();
  void WaitForHangup(boost::asio::signal_set& hangup);
  // The configuration new connections get (ServerContext::config); PublishConfig replaces it
  // with a copy of config_ (after a reload).
  [[nodiscard]] std::shared_ptr<const config::Config> Snapshot();
  void PublishConfig();
  bool OpenStore(const config::Target& t, const config::Lun& lun, const std::string& path,
                 std::unique_ptr<storage::BlockStore>* out);
  // Opens a LUN's store (recovering its journal) and makes its logical unit, with its
  // persistent reservations; null (the reason logged) on failure. At start and for lun.add.
  std::shared_ptr<LogicalUnit> OpenLun(const config::Target& t, const config::Lun& lun);
  // A target's runtime with its LUNs opened; null (the reason logged) on failure.
  std::shared_ptr<TargetRuntime> OpenTarget(const config::Target& t);

  // Declaration order is destruction order in reverse: the io_context (whose pending handlers
  // may own connections) goes before the state connections point into.
  // The running configuration: ports as bound, LUN sizes as resized; after Open, changed only by
  // the control service (under its mutex). Connections read snapshots of it, never it.
  config::Config config_;
  const std::string config_file_, version_, commit_;
  std::function<bool(config::Config*, std::string*)> load_config_;
  std::vector<config::Portal> portals_as_loaded_;
  std::mutex snapshot_mu_;
  std::shared_ptr<const config::Config> snapshot_;  // guarded by snapshot_mu_
  Metrics metrics_;
  SessionRegistry sessions_;
  TargetRegistry targets_;
  std::atomic<int> connections_{0};
  BufferBudget buffers_;
  ConnectionLimits limits_;
  int send_buffer_ = 0;  // SO_SNDBUF for each connection; 0: autotuned
  boost::asio::io_context io_;
  // Connections are spread over these, one thread each.
  std::vector<std::unique_ptr<boost::asio::io_context>> network_;
  size_t next_network_ = 0;
  boost::asio::thread_pool storage_pool_;
  std::unique_ptr<ControlService> control_service_;  // reload (SIGHUP) and the socket's methods
  std::unique_ptr<ControlServer> control_;           // none when config.control_socket is empty
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> metrics_acceptor_;
  std::vector<uint16_t> bound_ports_;
  uint64_t next_connection_id_ = 1;
  bool stopping_ = false;
};

}  // namespace untorn::target
