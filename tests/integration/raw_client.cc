#include "raw_client.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "protocol/framing.h"

namespace untorn::testing {

using protocol::Pdu;

RawClient::RawClient(uint16_t port, const char* source) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (source != nullptr) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
  int one = 1;
  if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

void RawClient::SendRaw(const std::vector<uint8_t>& bytes) {
  size_t done = 0;
  while (fd_ >= 0 && done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

size_t RawClient::SendFor(std::span<const uint8_t> bytes, int timeout_ms, int stall_ms) {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto moved = Clock::now();  // when the peer last took something
  int queued = -1;            // bytes in our send queue the peer has not taken (SIOCOUTQ)
  size_t done = 0;
  while (fd_ >= 0 && done < bytes.size() && Clock::now() < end) {
    // Progress is what leaves our send queue, sampled every 100 ms: POLLOUT alone only wakes
    // once much of a large send buffer is free, which a slow peer can take seconds to reach.
    int outq = 0;
    if (::ioctl(fd_, SIOCOUTQ, &outq) == 0 && outq != queued) {
      queued = outq;
      moved = Clock::now();
    }
    if (stall_ms > 0 && Clock::now() - moved >= std::chrono::milliseconds(stall_ms)) break;
    pollfd pfd{fd_, POLLOUT, 0};
    const int r = ::poll(&pfd, 1, 100);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    const ssize_t n =
        ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
    moved = Clock::now();
  }
  return done;
}

std::vector<uint8_t> RawClient::Frame(Pdu pdu) const {
  pdu.SyncLengths();
  return protocol::Serialize(pdu, header_digest_, data_digest_);
}

void RawClient::Send(Pdu pdu, bool corrupt_data_digest) {
  const bool has_data = !pdu.data.empty();
  auto bytes = Frame(std::move(pdu));
  if (corrupt_data_digest && data_digest_ && has_data) bytes.back() ^= 0xff;
  SendRaw(bytes);
}

bool RawClient::ReadExact(uint8_t* p, size_t n, int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  size_t done = 0;
  while (done < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) return false;
    const ssize_t r = ::recv(fd_, p + done, n - done, 0);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

std::optional<Pdu> RawClient::Receive(int timeout_ms) {
  Pdu p;
  if (fd_ < 0 || !ReadExact(p.bhs.data(), p.bhs.size(), timeout_ms)) return std::nullopt;
  const auto l = protocol::LayoutOf(p.bhs);
  p.ahs.resize(l.ahs_bytes);
  if (l.ahs_bytes && !ReadExact(p.ahs.data(), l.ahs_bytes, timeout_ms)) return std::nullopt;
  uint8_t d[4];
  if (header_digest_) {
    if (!ReadExact(d, 4, timeout_ms)) return std::nullopt;
    if (protocol::LoadLe32(d, 0) != protocol::HeaderDigest(p)) digest_error_ = true;
  }
  p.data.resize(l.padded_data_bytes);
  if (l.padded_data_bytes) {
    if (!ReadExact(p.data.data(), p.data.size(), timeout_ms)) return std::nullopt;
    if (data_digest_) {
      if (!ReadExact(d, 4, timeout_ms)) return std::nullopt;
      if (protocol::LoadLe32(d, 0) !=
          protocol::DataDigest(protocol::Bytes(p.data).first(l.data_bytes))) {
        digest_error_ = true;
      }
    }
  }
  p.data.resize(l.data_bytes);
  const uint8_t op = p.RawOpcode();
  const bool status_pdu = op == 0x21 || op == 0x22 || op == 0x23 || op == 0x24 || op == 0x26 ||
                          op == 0x3f || (op == 0x25 && (p.bhs[1] & 0x01)) ||
                          (op == 0x20 && p.Itt() != protocol::kReservedTag);
  if (status_pdu) exp_stat_sn_ = p.Field32(24) + 1;
  return p;
}

bool RawClient::ClosedWithin(int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  uint8_t buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 50) > 0) {
      const ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r <= 0) return true;
    }
  }
  return false;
}

bool RawClient::Login(const std::string& target, const protocol::KeyList& keys, uint16_t* status,
                      protocol::KeyList* answers_out) {
  protocol::KeyList all = {{"InitiatorName", "iqn.2026-11.org.untorn:raw"},
                           {"TargetName", target},
                           {"SessionType", "Normal"}};
  all.insert(all.end(), keys.begin(), keys.end());
  Pdu p;
  p.bhs[0] = 0x43;
  p.bhs[1] = 0x87;  // T, CSG 1, NSG 3
  p.bhs[8] = 0x80;
  p.bhs[13] = 0x42;
  protocol::StoreBe32(p.bhs, 16, itt_++);
  protocol::StoreBe32(p.bhs, 24, cmd_sn_);
  p.data = protocol::EncodeTextKeys(all);
  if (answers_out) answers_out->clear();
  // A target may offer keys of its own and hold the transition (T=0) until they are answered:
  // the answer takes the offered value, as the minimum functions allow.
  for (int round = 0; round < 4; ++round) {
    Send(p);
    auto r = Receive();
    if (!r || r->RawOpcode() != 0x23) return false;
    const uint16_t st = protocol::LoadBe16(r->bhs, 36);
    if (status) *status = st;
    if (st != 0) return false;
    std::string error;
    const auto answers = protocol::ParseTextKeys(r->data, &error);
    if (!answers) return false;
    protocol::KeyList replies;
    for (const auto& k : *answers) {
      if (k.key == "HeaderDigest") header_digest_ = k.value == "CRC32C";
      if (k.key == "DataDigest") data_digest_ = k.value == "CRC32C";
      const bool ours = std::any_of(all.begin(), all.end(),
                                    [&](const protocol::TextKey& o) { return o.key == k.key; });
      if (!ours && k.key != "MaxRecvDataSegmentLength" && k.key != "TargetPortalGroupTag" &&
          k.key != "TargetAlias") {
        replies.push_back(k);
      }
      if (answers_out) answers_out->push_back(k);
    }
    if (r->bhs[1] & 0x80) return true;
    if (replies.empty()) return false;  // held without anything to answer
    offers_answered_ += static_cast<int>(replies.size());
    all.insert(all.end(), replies.begin(), replies.end());
    protocol::StoreBe32(p.bhs, 16, itt_++);
    p.data = protocol::EncodeTextKeys(replies);
  }
  return false;
}

std::optional<Pdu> RawClient::Scsi(const std::vector<uint8_t>& cdb, uint32_t edtl, bool read,
                                   bool write, std::vector<uint8_t> data, bool corrupt) {
  Pdu p;
  p.bhs[0] = 0x01;
  p.bhs[1] = static_cast<uint8_t>(0x80 | (read ? 0x40 : 0) | (write ? 0x20 : 0) | 0x01);
  protocol::StoreBe32(p.bhs, 16, itt_++);
  protocol::StoreBe32(p.bhs, 20, edtl);
  protocol::StoreBe32(p.bhs, 24, cmd_sn_++);
  protocol::StoreBe32(p.bhs, 28, exp_stat_sn_);
  std::copy(cdb.begin(), cdb.end(), p.bhs.begin() + 32);
  p.data = std::move(data);
  Send(p, corrupt);
  // Skip R2Ts/NOP-Ins; collect Data-In into one PDU's data.
  std::vector<uint8_t> in;
  while (auto r = Receive()) {
    if (r->RawOpcode() == 0x25) {
      in.insert(in.end(), r->data.begin(), r->data.end());
      if (r->bhs[1] & 0x01) {
        r->data = in;
        return r;
      }
      continue;
    }
    if (r->RawOpcode() == 0x21 || r->RawOpcode() == 0x3f) return r;
  }
  return std::nullopt;
}

}  // namespace untorn::testing
