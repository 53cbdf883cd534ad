// Connection's socket side: PDU framing through the receive buffer, the write queue and its
// gathered writes, output back-pressure, and the login and keep-alive timers. The protocol side
// (login, CmdSN window, dispatch, text, logout) is in connection.cc, SCSI tasks in scsi_tasks.cc.
#include <algorithm>

#include "protocol/framing.h"
#include "target/iscsi/connection.h"
#include "target/log.h"

namespace untorn::target {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using protocol::kReservedTag;
using protocol::Pdu;

namespace {

constexpr uint32_t kLoginMaxRecvDataSegment = 8192;  // RFC 7143 §13.12 default during login
constexpr size_t kMaxWriteBatch = 64;                // PDUs gathered into one writev
// Bytes read from the socket at a time: at queue depth 32 one read brings many PDUs, not one
// recv per 48-byte header. Reads of at least half of this go straight to their destination.
constexpr size_t kReceiveBuffer = 64 << 10;
// Answers queued per connection beyond which no more PDUs are read from it: an initiator that
// sends without reading is held back by TCP instead of growing the queue without bound.
constexpr size_t kMaxQueuedOutput = 8 << 20;

// `buffers` without their first `skip` bytes.
std::vector<asio::const_buffer> Skip(const std::vector<asio::const_buffer>& buffers, size_t skip) {
  std::vector<asio::const_buffer> rest;
  rest.reserve(buffers.size());
  for (const auto& b : buffers) {
    if (skip >= b.size()) {
      skip -= b.size();
      continue;
    }
    rest.push_back(b + skip);
    skip = 0;
  }
  return rest;
}

}  // namespace

awaitable<void> Connection::LoginTimeout() {
  // Start() posts this from the acceptor's thread while the connection's own thread may already
  // run the login to its end: a timer armed after Close() would hold the connection (and its
  // place under max_connections) for the whole login timeout.
  if (stopped_ || full_feature_) co_return;
  login_timer_.expires_after(std::chrono::seconds(ctx_.config->limits.login_timeout_seconds));
  boost::system::error_code ec;
  co_await login_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  if (!ec && !full_feature_ && !stopped_) {
    UNTORN_LOG_WARN("login from ", peer_, " timed out");
    Close("login timeout");
  }
}

awaitable<void> Connection::KeepAlive() {
  const auto interval = std::chrono::seconds(ctx_.config->limits.nop_interval_seconds);
  const auto timeout = std::chrono::seconds(ctx_.config->limits.nop_timeout_seconds);
  if (interval.count() == 0) co_return;
  while (!stopped_) {
    keepalive_timer_.expires_after(std::chrono::seconds(1));
    boost::system::error_code ec;
    co_await keepalive_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopped_) break;
    const auto now = std::chrono::steady_clock::now();
    if (out_bytes_ > kMaxQueuedOutput) {
      // Reading is held back, answers to pings included: the initiator shows it is alive by
      // reading what is queued for it (the Watchdog ends it if it does not).
      ping_sent_.reset();
      continue;
    }
    if (ping_sent_ && now - *ping_sent_ > timeout) {
      UNTORN_LOG_WARN("initiator ", peer_, " did not answer NOP-In; closing");
      Close("keep-alive timeout");
      break;
    }
    if (!ping_sent_ && now - last_rx_ >= interval) {
      uint32_t ttt = next_ttt_++;
      if (ttt == kReservedTag) ttt = next_ttt_++;
      Send(protocol::EncodeNopIn(0, kReservedTag, ttt, {}, PeekStatus()));
      ping_sent_ = now;
    }
  }
}

awaitable<void> Connection::Receive(std::span<uint8_t> out) {
  const size_t buffered = std::min(out.size(), rx_end_ - rx_begin_);
  std::copy_n(rx_.begin() + static_cast<std::ptrdiff_t>(rx_begin_), buffered, out.begin());
  rx_begin_ += buffered;
  if (buffered == out.size()) co_return;
  const std::span<uint8_t> rest = out.subspan(buffered);
  rx_begin_ = rx_end_ = 0;
  if (rest.size() >= kReceiveBuffer / 2) {
    co_await asio::async_read(socket_, asio::buffer(rest.data(), rest.size()), use_awaitable);
    co_return;
  }
  if (rx_.empty()) rx_.resize(kReceiveBuffer);
  while (rx_end_ < rest.size()) {
    rx_end_ += co_await socket_.async_read_some(
        asio::buffer(rx_.data() + rx_end_, rx_.size() - rx_end_), use_awaitable);
  }
  std::copy_n(rx_.begin(), rest.size(), rest.begin());
  rx_begin_ = rest.size();
}

awaitable<bool> Connection::ReadPdu(Pdu& pdu, bool* data_digest_ok) {
  co_await Receive(pdu.bhs);
  const protocol::FrameLayout l = protocol::LayoutOf(pdu.bhs);
  const size_t max_data =
      full_feature_ ? params_.target_max_recv_data_segment : kLoginMaxRecvDataSegment;
  if (l.data_bytes > max_data) {
    UNTORN_LOG_WARN("connection from ", peer_, ": data segment of ", l.data_bytes,
                    " bytes exceeds MaxRecvDataSegmentLength ", max_data);
    co_return false;
  }
  pdu.ahs.resize(l.ahs_bytes);
  if (l.ahs_bytes > 0) co_await Receive(pdu.ahs);
  uint8_t digest[protocol::kDigestLength];
  if (header_digest_) {
    co_await Receive(digest);
    if (protocol::LoadLe32(digest, 0) != protocol::HeaderDigest(pdu)) {
      UNTORN_LOG_WARN("connection from ", peer_, ": header digest mismatch");
      co_return false;  // ERL 0: the header cannot be trusted, nor the framing after it
    }
  }
  pdu.data.resize(l.padded_data_bytes);
  if (l.padded_data_bytes > 0) {
    co_await Receive(pdu.data);
    if (data_digest_) {
      co_await Receive(digest);
      *data_digest_ok = protocol::LoadLe32(digest, 0) ==
                        protocol::DataDigest(protocol::Bytes(pdu.data).first(l.data_bytes));
    }
  }
  pdu.data.resize(l.data_bytes);
  co_return true;
}

awaitable<void> Connection::ReadLoop() {
  try {
    while (!stopped_) {
      while (out_bytes_ > kMaxQueuedOutput && !stopped_) {
        boost::system::error_code ec;
        co_await drained_signal_.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      if (stopped_) break;
      Pdu pdu;
      bool data_digest_ok = true;
      if (!co_await ReadPdu(pdu, &data_digest_ok)) break;
      // A read that completed just as the connection closed hands back its PDU afterwards.
      if (stopped_) break;
      last_rx_ = std::chrono::steady_clock::now();
      ping_sent_.reset();
      if (!full_feature_) {
        if (!co_await OnLoginPdu(pdu)) break;
        continue;
      }
      if (!data_digest_ok) {
        UNTORN_LOG_WARN("connection from ", peer_, ": data digest mismatch");
        Reject(protocol::RejectReason::kDataDigestError, pdu);
        CloseAfterFlush();
        break;
      }
      OnFullFeaturePdu(pdu);
      if (close_after_flush_) break;
    }
  } catch (const std::exception& e) {
    UNTORN_LOG_DEBUG("connection ", id_, " read: ", e.what());
  }
  if (!close_after_flush_) Close("read side ended");
}

awaitable<void> Connection::WriteLoop() {
  std::vector<Outbound> batch;
  const auto buffers_of = [&batch] {
    std::vector<asio::const_buffer> buffers;
    buffers.reserve(3 * batch.size());
    for (const auto& b : batch) {
      buffers.emplace_back(asio::buffer(b.head));
      if (b.length == 0) continue;
      buffers.emplace_back(b.payload->data() + b.offset, b.length);
      if (b.tail_length > 0) buffers.emplace_back(b.tail.data(), b.tail_length);
    }
    return buffers;
  };
  try {
    while (!stopped_) {
      if (out_queue_.empty()) {
        if (close_after_flush_) {
          Close("closed after final response");
          break;
        }
        boost::system::error_code ec;
        co_await write_signal_.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      batch.clear();
      size_t batch_bytes = 0;
      while (!out_queue_.empty() && batch.size() < kMaxWriteBatch) {
        batch_bytes += out_queue_.front().wire_bytes();
        batch.push_back(std::move(out_queue_.front()));
        out_queue_.pop_front();
      }
      // What the socket takes now is written at once: mapped payloads only so, since they keep
      // their blocks locked against writes and must never wait for the initiator to read.
      const size_t written = WriteWithoutWaiting(buffers_of());
      if (written < batch_bytes) {
        // The socket is full. Nothing stays mapped while the initiator catches up.
        if (!UnmapQueued(batch)) {
          Close("data-in read failed");
          break;
        }
        socket_full_ = true;
        co_await asio::async_write(socket_, Skip(buffers_of(), written), use_awaitable);
        socket_full_ = false;
      }
      batch.clear();  // payloads (and their buffer charges) go once written
      last_tx_ = std::chrono::steady_clock::now();
      if (stopped_) break;  // Close emptied the queue and its count
      const bool was_over = out_bytes_ > kMaxQueuedOutput;
      out_bytes_ -= batch_bytes;
      if (was_over && out_bytes_ <= kMaxQueuedOutput) drained_signal_.cancel();
    }
  } catch (const std::exception& e) {
    UNTORN_LOG_DEBUG("connection ", id_, " write: ", e.what());
    Close("write failed");
  }
}

size_t Connection::WriteWithoutWaiting(const std::vector<asio::const_buffer>& buffers) {
  const size_t total = asio::buffer_size(buffers);
  size_t written = 0;
  while (written < total) {
    boost::system::error_code ec;
    // The socket is non-blocking. Most batches go in one call, without a copy of the list.
    const size_t n = written == 0 ? socket_.write_some(buffers, ec)
                                  : socket_.write_some(Skip(buffers, written), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec == asio::error::fault) {
      // The kernel could not read a mapped page of data-in (an I/O error of the data file).
      UNTORN_LOG_ERROR("connection ", id_, " from ", peer_,
                       ": data-in could not be read from the backing file; closing");
    }
    if (ec) throw boost::system::system_error(ec);
    written += n;
  }
  return written;
}

bool Connection::Unmap(Payload& p) {
  if (!p.mapped) return true;
  p.bytes.resize(p.mapped->bytes().size());
  const storage::Status s = p.mapped->CopyOut(p.bytes);
  p.mapped.reset();
  if (!s.ok()) {
    UNTORN_LOG_ERROR("connection ", id_, " from ", peer_, ": reading data-in again failed (",
                     s.message(), "); closing");
  }
  return s.ok();
}

bool Connection::UnmapQueued(std::vector<Outbound>& batch) {
  for (auto& o : batch) {
    if (o.payload && !Unmap(*o.payload)) return false;
  }
  for (auto& o : out_queue_) {
    if (o.payload && !Unmap(*o.payload)) return false;
  }
  return true;
}

void Connection::Send(const Pdu& pdu) {
  if (stopped_) return;
  Enqueue(Outbound{protocol::Serialize(pdu, header_digest_, data_digest_)});
}

void Connection::SendData(const Pdu& header, std::shared_ptr<Payload> payload, uint32_t offset,
                          uint32_t length) {
  if (stopped_) return;
  // A data digest reads the bytes from user space, which a mapping must not be (mapped_read.h).
  if (data_digest_ && !Unmap(*payload)) {
    Close("data-in read failed");
    return;
  }
  const protocol::Bytes data(payload->data() + offset, length);
  protocol::FrameEdges e = protocol::FrameAround(header, data, header_digest_, data_digest_);
  Enqueue(Outbound{std::move(e.head), std::move(payload), offset, length, e.tail, e.tail_length});
}

void Connection::Enqueue(Outbound out) {
  if (socket_full_ && out.payload && !Unmap(*out.payload)) {
    Close("data-in read failed");
    return;
  }
  // The time since output last moved is counted from when there was output to move.
  if (out_bytes_ == 0) last_tx_ = std::chrono::steady_clock::now();
  out_bytes_ += out.wire_bytes();
  out_queue_.push_back(std::move(out));
  write_signal_.cancel_one();
}

}  // namespace untorn::target
