// A minimal iSCSI initiator on a raw socket, built on untorn's own protocol codecs, for what
// libiscsi cannot do: data digests, answering (or ignoring) NOP-In pings, and hostile input.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/pdu.h"
#include "protocol/text_keys.h"

namespace untorn::testing {

class RawClient {
 public:
  // Connects to 127.0.0.1:port, from `source` (another loopback address, e.g. 127.0.0.2, for a
  // peer the target must tell apart) when given.
  explicit RawClient(uint16_t port, const char* source = nullptr);
  ~RawClient();
  [[nodiscard]] bool connected() const { return fd_ >= 0; }

  // Full login (security stage skipped) with the given extra operational keys; true if the
  // target accepted. Keys the target offers itself are answered with the value offered. Digests
  // named in `keys` are switched on when it answers CRC32C.
  bool Login(const std::string& target, const protocol::KeyList& keys, uint16_t* status = nullptr,
             protocol::KeyList* answers = nullptr);
  void Send(protocol::Pdu pdu, bool corrupt_data_digest = false);
  // The bytes Send would put on the wire (lengths filled in, digests as negotiated).
  [[nodiscard]] std::vector<uint8_t> Frame(protocol::Pdu pdu) const;
  void SendRaw(const std::vector<uint8_t>& bytes);
  // Sends as much of `bytes` as the peer takes within `timeout_ms`, or (stall_ms > 0) until it
  // has taken nothing for `stall_ms`; returns how much that was.
  size_t SendFor(std::span<const uint8_t> bytes, int timeout_ms, int stall_ms = 0);
  // Next PDU, or nullopt on close/timeout (milliseconds). Checks digests when on.
  std::optional<protocol::Pdu> Receive(int timeout_ms = 5000);
  // True if the peer closes the connection within `timeout_ms` (data that arrives first is
  // skipped).
  bool ClosedWithin(int timeout_ms);

  // SCSI helpers (LUN 0, immediate data; single-PDU reads).
  std::optional<protocol::Pdu> Scsi(const std::vector<uint8_t>& cdb, uint32_t edtl, bool read,
                                    bool write, std::vector<uint8_t> data = {},
                                    bool corrupt = false);
  uint32_t next_cmd_sn() const { return cmd_sn_; }
  // Keys the target offered during Login() that this client answered.
  int offers_answered() const { return offers_answered_; }
  bool digest_error() const { return digest_error_; }

 private:
  bool ReadExact(uint8_t* p, size_t n, int timeout_ms);
  int fd_ = -1;
  uint32_t cmd_sn_ = 1, exp_stat_sn_ = 0, itt_ = 1;
  bool header_digest_ = false, data_digest_ = false, digest_error_ = false;
  int offers_answered_ = 0;
};

}  // namespace untorn::testing
