#include "target/iscsi/server.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "storage/file_store.h"
#include "storage/journaled_store.h"
#include "target/iscsi/connection.h"
#include "target/log.h"

namespace untorn::target {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

constexpr size_t kMaxHttpRequest = 8192;
// Threads that run connections, each with an io_context of its own (server.h).
constexpr int kNetworkThreads = 2;

std::string HumanSize(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++u;
  }
  return std::to_string(bytes) + " " + units[u];
}

// The last number in a /proc/sys file ("4096 16384 4194304" -> 4194304), 0 if unreadable.
uint64_t SysctlLast(const char* path) {
  std::ifstream f(path);
  uint64_t v = 0, last = 0;
  while (f >> v) last = v;
  return last;
}

// SO_SNDBUF for every connection, or 0 to leave the send buffer to TCP autotuning. A buffer
// that does not have to grow carries large Data-In faster (1 MiB reads at QD8 over loopback
// 7-18 % faster in alternated runs, docs/performance.md), but only one at least as large as
// autotuning would reach (tcp_wmem's maximum) is worth it; net.core.wmem_max caps what may be
// asked (the kernel doubles it), and on a stock Debian wmem_max (208 KiB) autotuning stays.
int FixedSendBuffer() {
  const uint64_t wmem_max = SysctlLast("/proc/sys/net/core/wmem_max");
  const uint64_t autotune_max = SysctlLast("/proc/sys/net/ipv4/tcp_wmem");
  const uint64_t ask = std::min<uint64_t>(wmem_max, 4 << 20);
  if (ask == 0 || autotune_max == 0 || 2 * ask < autotune_max) return 0;
  UNTORN_LOG_INFO("TCP send buffer per connection: ", HumanSize(2 * ask), " (SO_SNDBUF ", ask,
                  "; autotuning would stop at ", autotune_max, " bytes)");
  return static_cast<int>(ask);
}

// Connections still alive, for shutdown (discovery sessions are not in the registry).
std::mutex g_live_mu;
std::vector<std::weak_ptr<Connection>> g_live;  // guarded by g_live_mu

}  // namespace

Server::Server(config::Config config, std::string config_file, std::string version,
               std::string commit)
    : config_(std::move(config)),
      config_file_(std::move(config_file)),
      version_(std::move(version)),
      commit_(std::move(commit)),
      buffers_(uint64_t{config_.limits.max_buffer_megabytes} << 20),
      limits_(config_.limits.max_connections_per_address, config_.limits.max_discovery_sessions),
      storage_pool_(config_.io_threads) {
  for (int i = 0; i < kNetworkThreads; ++i) {
    network_.push_back(std::make_unique<asio::io_context>(1));  // run by one thread
  }
  metrics_
      .Get("untorn_build_info", {{"version", version_}, {"commit", commit_}},
           "The build serving: always 1, the labels name it", true)
      .store(1);
}

Server::~Server() { storage_pool_.join(); }

bool Server::OpenStore(const config::Target& t, const config::Lun& lun, const std::string& path,
                       std::unique_ptr<storage::BlockStore>* out) {
  if (!lun.journal) {
    storage::FileStore::Options o{path, lun.size, lun.block_size, lun.read_only};
    o.preallocate = !lun.thin;
    std::unique_ptr<storage::FileStore> store;
    storage::Status s = storage::FileStore::Open(o, &store);
    if (!s.ok()) {
      UNTORN_LOG_ERROR("target ", t.iqn, " LUN ", lun.id, ": ", s.message());
      return false;
    }
    *out = std::move(store);
    return true;
  }
  storage::JournaledStore::Options o;
  o.data_path = path;
  o.size_bytes = lun.size;
  o.block_size = lun.block_size;
  o.read_only = lun.read_only;
  o.preallocate = !lun.thin;
  o.journal_bytes = lun.journal_size;
  o.on_progress = [iqn = t.iqn, id = lun.id](const storage::JournaledStore::RecoveryReport& r) {
    UNTORN_LOG_INFO("target ", iqn, " LUN ", id, ": recovering the journal: ", r.records_replayed,
                    " record(s), ", r.bytes_replayed >> 20, " MiB replayed in ",
                    static_cast<int>(r.seconds), " s so far");
  };
  std::unique_ptr<storage::JournaledStore> store;
  storage::JournaledStore::RecoveryReport r;
  storage::Status s = storage::JournaledStore::Open(o, &store, &r);
  if (!s.ok()) {
    UNTORN_LOG_ERROR("target ", t.iqn, " LUN ", lun.id, ": ", s.message());
    return false;
  }
  UNTORN_LOG_INFO("target ", t.iqn, " LUN ", lun.id, ": journal recovered in ", r.seconds * 1000,
                  " ms: ", r.records_replayed, " record(s), ", r.bytes_replayed,
                  " bytes replayed; scan stopped: ", r.stop_reason, "; epoch ", r.epoch);
  storage::JournaledStore* raw = store.get();
  const Metrics::Labels labels{{"target", t.iqn}, {"lun", std::to_string(lun.id)}};
  metrics_.AddCollector([raw, labels](Metrics& m) {
    const auto st = raw->stats();
    m.Get("untorn_journal_syncs_total", labels, "Journal fdatasyncs (group commits)")
        .store(static_cast<int64_t>(st.journal_syncs));
    m.Get("untorn_journal_records_total", labels, "Journal records made durable")
        .store(static_cast<int64_t>(st.journal_records));
    m.Get("untorn_data_syncs_total", labels, "Data file fdatasyncs")
        .store(static_cast<int64_t>(st.data_syncs));
    m.Get("untorn_checkpoints_total", labels, "Journal checkpoints")
        .store(static_cast<int64_t>(st.checkpoints));
    m.Get("untorn_journal_used_bytes", labels, "Journal bytes in use", true)
        .store(static_cast<int64_t>(st.journal_used));
    m.Get("untorn_journal_size_bytes", labels, "Journal size", true)
        .store(static_cast<int64_t>(st.journal_size));
  });
  metrics_.Add("untorn_recovered_records_total", labels, "Journal records replayed at start",
               static_cast<int64_t>(r.records_replayed));
  *out = std::move(store);
  return true;
}

std::shared_ptr<LogicalUnit> Server::OpenLun(const config::Target& t, const config::Lun& lun) {
  const std::string path = config::BackingPath(config_, lun);
  std::unique_ptr<storage::BlockStore> store;
  if (!OpenStore(t, lun, path, &store)) return nullptr;
  auto lu = std::make_shared<LogicalUnit>(lun, t.iqn, std::move(store), &metrics_);
  // Reservations kept through power loss (APTPL) live beside the LUN's files.
  if (const storage::Status s = lu->KeepReservationsIn(path + ".pr"); !s.ok()) {
    UNTORN_LOG_ERROR("target ", t.iqn, " LUN ", lun.id, ": ", s.message());
    return nullptr;
  }
  const config::LinuxAtomicUnits u =
      config::LinuxAtomicView(lun.atomic, lun.block_size, lun.physical_block_size);
  UNTORN_LOG_INFO("target ", t.iqn, " LUN ", lun.id, ": ", path, ", ", HumanSize(lun.size), " (",
                  lun.size / lun.block_size, " blocks of ", lun.block_size, " B, physical ",
                  lun.physical_block_size, " B), write cache ", lun.write_cache ? "on" : "off",
                  lun.read_only ? ", read-only" : "",
                  lun.journal ? ", journaled" : ", not journaled (atomic only to readers)",
                  ", atomic writes ",
                  u.unit_min == 0 ? std::string("off")
                                  : HumanSize(uint64_t{u.unit_min} * lun.block_size) + " to " +
                                        HumanSize(uint64_t{u.unit_max} * lun.block_size));
  return lu;
}

std::shared_ptr<TargetRuntime> Server::OpenTarget(const config::Target& t) {
  auto rt = std::make_shared<TargetRuntime>(t);
  for (const auto& lun : t.luns) {
    auto lu = OpenLun(t, lun);
    if (lu == nullptr) return nullptr;
    rt->Add(std::move(lu), false);
  }
  return rt;
}

bool Server::Open() {
  portals_as_loaded_ = config_.portals;
  std::error_code fec;
  std::filesystem::create_directories(config_.data_dir, fec);
  if (fec) {
    UNTORN_LOG_ERROR("cannot create data directory ", config_.data_dir, ": ", fec.message());
    return false;
  }
  for (const auto& t : config_.targets) {
    auto rt = OpenTarget(t);
    if (rt == nullptr) return false;
    // Series that count rare events exist from the start, at 0, so that a dashboard or an
    // alert sees zero rather than no data.
    const Metrics::Labels target_label{{"target", t.iqn}};
    metrics_.Get("untorn_sessions", target_label, "Open sessions", true);
    metrics_.Add("untorn_sessions_total", target_label, "Sessions established", 0);
    metrics_.Add("untorn_buffer_busy_total", target_label,
                 "Commands answered BUSY because the buffer budget was spent", 0);
    targets_.Add(std::move(rt));
  }
  for (auto& p : config_.portals) {
    boost::system::error_code ec;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(p.host, std::to_string(p.port), ec);
    if (ec || results.empty()) {
      UNTORN_LOG_ERROR("cannot resolve portal ", p.host, ": ", ec.message());
      return false;
    }
    auto acceptor = std::make_unique<tcp::acceptor>(io_);
    const tcp::endpoint ep = results.begin()->endpoint();
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      UNTORN_LOG_ERROR("cannot listen on ", p.host, ":", p.port, ": ", ec.message());
      return false;
    }
    const uint16_t port = acceptor->local_endpoint().port();
    bound_ports_.push_back(port);
    p.port = port;  // port 0 asked for any port: SendTargets must name the real one
    if (p.advertise.size() > 2 && p.advertise.compare(p.advertise.size() - 2, 2, ":0") == 0) {
      p.advertise.replace(p.advertise.size() - 1, 1, std::to_string(port));  // HOST:0 = this port
    }
    for (const auto& t : config_.targets) {
      UNTORN_LOG_INFO("listening on ", p.host, ":", port, " for ", t.iqn, t.chap ? " (CHAP)" : "");
    }
    acceptors_.push_back(std::move(acceptor));
  }
  send_buffer_ = FixedSendBuffer();
  metrics_.Get("untorn_connections", {}, "Open iSCSI connections", true);
  metrics_.Add("untorn_login_failures_total", {}, "Logins refused", 0);
  for (const char* reason : {"per_address", "discovery"}) {
    metrics_.Add("untorn_connections_refused_total", {{"reason", reason}},
                 "Connections or logins refused by a cap, by reason", 0);
  }
  ControlService::Runtime rt{&config_, &targets_, &sessions_, config_file_,
                             version_ + " (" + commit_ + ")"};
  rt.load_config = load_config_;
  rt.portals_as_loaded = portals_as_loaded_;
  rt.publish_config = [this] { PublishConfig(); };
  rt.open_lun = [this](const config::Target& t, const config::Lun& lun) { return OpenLun(t, lun); };
  rt.open_target = [this](const config::Target& t) { return OpenTarget(t); };
  control_service_ = std::make_unique<ControlService>(std::move(rt));
  if (const std::string path = config::ControlSocketPath(config_); !path.empty()) {
    control_ = std::make_unique<ControlServer>(io_, storage_pool_, *control_service_);
    std::string error;
    if (!control_->Open(path, &error)) {
      UNTORN_LOG_ERROR("control interface: ", error);
      return false;
    }
    UNTORN_LOG_INFO("control interface on ", path, " (untornctl --socket ", path, ")");
  }
  if (!config_.metrics.empty()) {
    config::Portal mp;
    std::string error;
    if (!config::ParseHostPort(config_.metrics, &mp, &error)) {
      UNTORN_LOG_ERROR("metrics: ", error);
      return false;
    }
    boost::system::error_code ec;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(mp.host, std::to_string(mp.port), ec);
    metrics_acceptor_ = std::make_unique<tcp::acceptor>(io_);
    if (!ec && !results.empty()) {
      const tcp::endpoint ep = results.begin()->endpoint();
      metrics_acceptor_->open(ep.protocol(), ec);
      if (!ec) metrics_acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) metrics_acceptor_->bind(ep, ec);
      if (!ec) metrics_acceptor_->listen(16, ec);
    }
    if (ec || results.empty()) {
      UNTORN_LOG_ERROR("cannot serve metrics on ", config_.metrics, ": ", ec.message());
      return false;
    }
    UNTORN_LOG_INFO("metrics on http://", mp.host, ":", metrics_acceptor_->local_endpoint().port(),
                    "/metrics");
  }
  PublishConfig();
  return true;
}

std::shared_ptr<const config::Config> Server::Snapshot() {
  std::lock_guard lk(snapshot_mu_);
  return snapshot_;
}

void Server::PublishConfig() {
  // The daemon-wide caps follow the configuration at once; the per-connection limits (the
  // session's buffer share, timeouts, windows) come with the snapshot a connection starts with.
  buffers_.SetLimit(uint64_t{config_.limits.max_buffer_megabytes} << 20);
  limits_.SetCaps(config_.limits.max_connections_per_address,
                  config_.limits.max_discovery_sessions);
  auto next = std::make_shared<const config::Config>(config_);
  std::lock_guard lk(snapshot_mu_);
  snapshot_ = std::move(next);
}

void Server::WaitForHangup(asio::signal_set& hangup) {
  hangup.async_wait([this, &hangup](const boost::system::error_code& ec, int) {
    if (ec || stopping_) return;
    UNTORN_LOG_INFO("SIGHUP: reloading ",
                    config_file_.empty() ? "(embedded default)" : config_file_);
    // As `untornctl reload` does it: on the storage pool, one control request at a time.
    asio::post(storage_pool_, [this] {
      const std::string answer =
          control_service_->Handle(R"({"jsonrpc":"2.0","method":"config.reload","id":0})");
      if (answer.find("\"error\"") != std::string::npos) {
        UNTORN_LOG_WARN("SIGHUP: reload failed: ", answer.substr(0, answer.size() - 1));
      }
    });
    WaitForHangup(hangup);
  });
}

awaitable<void> Server::Accept(tcp::acceptor& acceptor) {
  while (!stopping_) {
    boost::system::error_code ec;
    asio::io_context& home = *network_[next_network_++ % network_.size()];
    tcp::socket socket = co_await acceptor.async_accept(asio::make_strand(home),
                                                        asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) break;
      UNTORN_LOG_WARN("accept: ", ec.message());
      continue;
    }
    const std::shared_ptr<const config::Config> config = Snapshot();
    if (connections_.load() >= static_cast<int>(config->limits.max_connections)) {
      UNTORN_LOG_WARN("refusing connection: ", config->limits.max_connections,
                      " connections already open");
      socket.close(ec);
      continue;
    }
    // One remote address may hold only so many connections, so that one host (or a script
    // opening discovery sessions) cannot take every slot from the others.
    const auto remote = socket.remote_endpoint(ec);
    if (ec) {  // the peer is already gone
      socket.close(ec);
      continue;
    }
    auto slot = limits_.AdmitAddress(remote.address().to_string());
    if (!slot) {
      UNTORN_LOG_WARN("refusing connection from ", remote.address().to_string(), ": ",
                      config->limits.max_connections_per_address,
                      " connections from that address already open");
      metrics_.Add("untorn_connections_refused_total", {{"reason", "per_address"}},
                   "Connections or logins refused by a cap, by reason");
      socket.close(ec);
      continue;
    }
    ServerContext ctx{config,        &targets_, &sessions_,   &metrics_, &storage_pool_,
                      &connections_, &buffers_, send_buffer_, &limits_};
    auto conn = std::make_shared<Connection>(std::move(socket), ctx, next_connection_id_++);
    conn->HoldAddressSlot(std::move(*slot));
    {
      std::lock_guard lk(g_live_mu);
      std::erase_if(g_live, [](const auto& w) { return w.expired(); });
      g_live.push_back(conn);
    }
    conn->Start();
  }
}

awaitable<void> Server::MetricsClient(tcp::socket socket) {
  asio::steady_timer deadline(socket.get_executor());
  deadline.expires_after(std::chrono::seconds(5));
  deadline.async_wait([&socket](const boost::system::error_code& ec) {
    if (!ec) {
      boost::system::error_code ignored;
      socket.close(ignored);
    }
  });
  try {
    asio::streambuf buf(kMaxHttpRequest);
    co_await asio::async_read_until(socket, buf, "\r\n\r\n", use_awaitable);
    std::istream in(&buf);
    std::string method, path;
    in >> method >> path;
    std::string body, status = "200 OK";
    if (method != "GET") {
      status = "405 Method Not Allowed";
    } else if (path == "/metrics") {
      body = metrics_.Render();
    } else {
      status = "404 Not Found";
    }
    const std::string response =
        "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    co_await asio::async_write(socket, asio::buffer(response), use_awaitable);
  } catch (const std::exception&) {
    // Client went away or sent an oversized request: nothing to answer.
  }
  deadline.cancel();
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

awaitable<void> Server::ServeMetrics(tcp::acceptor& acceptor) {
  while (!stopping_) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    asio::co_spawn(io_, MetricsClient(std::move(socket)), asio::detached);
  }
}

void Server::Shutdown() {
  if (stopping_) return;
  stopping_ = true;
  UNTORN_LOG_INFO("stopping: closing portals and sessions");
  boost::system::error_code ec;
  for (auto& a : acceptors_) a->close(ec);
  if (metrics_acceptor_) metrics_acceptor_->close(ec);
  if (control_) control_->Close();
  {
    std::lock_guard lk(g_live_mu);
    for (auto& w : g_live) {
      if (auto c = w.lock()) c->Stop();
    }
  }
  // Wait (bounded) for connections to go and their storage work to drain, then stop the loop.
  asio::co_spawn(
      io_,
      [this]() -> awaitable<void> {
        asio::steady_timer t(io_);
        for (int i = 0; i < 1000 && connections_.load() > 0; ++i) {
          t.expires_after(std::chrono::milliseconds(10));
          co_await t.async_wait(use_awaitable);
        }
        io_.stop();
        for (auto& n : network_) n->stop();
      },
      asio::detached);
}

int Server::Run() {
  asio::signal_set signals(io_, SIGINT, SIGTERM);
  signals.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (!ec) {
      UNTORN_LOG_INFO("signal ", sig, " received");
      Shutdown();
    }
  });
  asio::signal_set hangup(io_, SIGHUP);
  WaitForHangup(hangup);
  for (auto& a : acceptors_) asio::co_spawn(io_, Accept(*a), asio::detached);
  if (metrics_acceptor_) asio::co_spawn(io_, ServeMetrics(*metrics_acceptor_), asio::detached);
  if (control_) control_->Start();
  std::vector<std::thread> threads;
  for (auto& n : network_) {
    threads.emplace_back([&n] {
      const auto busy = asio::make_work_guard(*n);  // idle between connections; Shutdown stops it
      n->run();
    });
  }
  io_.run();
  for (auto& t : threads) t.join();
  storage_pool_.join();
  int rc = 0;
  for (auto& t : targets_.All()) {
    for (auto& l : t->Luns()) {
      storage::Status s = l->Flush();
      if (!s.ok()) {
        UNTORN_LOG_ERROR("flush of LUN ", l->id(), " failed: ", s.message());
        rc = 1;
      }
    }
  }
  UNTORN_LOG_INFO("stopped");
  return rc;
}

}  // namespace untorn::target
