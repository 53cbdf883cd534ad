// The control interface's socket: a UNIX stream socket (mode 0600, nothing on TCP) on the
// server's main io_context. Each client sends JSON-RPC 2.0 requests, one per line, and gets
// one line back per request (none for a notification); ControlService answers them on the
// storage pool, since a resize waits for the LUN's I/O to drain.
#pragma once

#include <memory>
#include <string>

#include "target/asio.h"
#include "target/control/control_service.h"

namespace untorn::target {

class ControlServer {
 public:
  ControlServer(boost::asio::io_context& io, boost::asio::thread_pool& work,
                ControlService& service);
  ~ControlServer();

  // Binds `path` (a stale socket left by a daemon that is gone is replaced; one a live daemon
  // answers on is not); false with *error.
  [[nodiscard]] bool Open(const std::string& path, std::string* error);
  void Start();
  void Close();  // stops accepting, ends clients, removes the socket file

 private:
  boost::asio::awaitable<void> Accept();
  boost::asio::awaitable<void> Client(boost::asio::local::stream_protocol::socket socket);

  boost::asio::io_context& io_;
  boost::asio::thread_pool& work_;
  ControlService& service_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::string path_;
  int clients_ = 0;  // on io_'s thread
  bool closed_ = false;
};

}  // namespace untorn::target
