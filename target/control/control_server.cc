#include "target/control/control_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <istream>

#include "target/log.h"

namespace untorn::target {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::local::stream_protocol;

namespace {
constexpr size_t kMaxRequest = 1 << 20;  // one request line
constexpr int kMaxClients = 16;
}  // namespace

ControlServer::ControlServer(asio::io_context& io, asio::thread_pool& work, ControlService& service)
    : io_(io), work_(work), service_(service), acceptor_(io) {}

ControlServer::~ControlServer() { Close(); }

bool ControlServer::Open(const std::string& path, std::string* error) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    *error = "control socket path " + path + " is longer than " +
             std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes";
    return false;
  }
  boost::system::error_code ec;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = path + " exists and is not a socket";
      return false;
    }
    stream_protocol::socket probe(io_);
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) {
      *error = "another untornd answers on " + path;
      return false;
    }
    ::unlink(path.c_str());  // left by a daemon that is gone
  }
  // Created 0600 (the umask covers the window between bind and chmod).
  const mode_t old = ::umask(0177);
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(path), ec);
  ::umask(old);
  if (!ec) ::chmod(path.c_str(), 0600);
  if (!ec) acceptor_.listen(kMaxClients, ec);
  if (ec) {
    *error = "cannot listen on " + path + ": " + ec.message();
    return false;
  }
  path_ = path;
  return true;
}

void ControlServer::Start() { asio::co_spawn(io_, Accept(), asio::detached); }

void ControlServer::Close() {
  if (closed_ || path_.empty()) return;
  closed_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  ::unlink(path_.c_str());
}

awaitable<void> ControlServer::Accept() {
  while (!closed_) {
    boost::system::error_code ec;
    stream_protocol::socket socket =
        co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (closed_ || ec == asio::error::operation_aborted) break;
      UNTORN_LOG_WARN("control: accept: ", ec.message());
      continue;
    }
    if (clients_ >= kMaxClients) {
      UNTORN_LOG_WARN("control: refusing a client: ", kMaxClients, " already connected");
      socket.close(ec);
      continue;
    }
    asio::co_spawn(io_, Client(std::move(socket)), asio::detached);
  }
}

awaitable<void> ControlServer::Client(stream_protocol::socket socket) {
  ++clients_;
  asio::streambuf buf(kMaxRequest);
  for (;;) {
    boost::system::error_code ec;
    const size_t n =
        co_await asio::async_read_until(socket, buf, '\n', asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::not_found) {  // a line longer than kMaxRequest
        const std::string e =
            R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid request","data":{"reason":"request longer than 1 MiB"}},"id":null})"
            "\n";
        co_await asio::async_write(socket, asio::buffer(e),
                                   asio::redirect_error(use_awaitable, ec));
      }
      break;
    }
    std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + n);
    buf.consume(n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) continue;
    // Answered on the storage pool (a resize waits for I/O); this coroutine stays on io_.
    std::string response = co_await asio::co_spawn(
        work_, [this, &line]() -> awaitable<std::string> { co_return service_.Handle(line); },
        use_awaitable);
    if (response.empty()) continue;
    co_await asio::async_write(socket, asio::buffer(response),
                               asio::redirect_error(use_awaitable, ec));
    if (ec || closed_) break;
  }
  boost::system::error_code ignored;
  socket.close(ignored);
  --clients_;
}

}  // namespace untorn::target
