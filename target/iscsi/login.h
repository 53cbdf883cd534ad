// The login phase of one connection (RFC 7143 §6, §11.12-13): security negotiation (AuthMethod
// None or CHAP with optional mutual CHAP), operational negotiation, and the checks on who may log
// into what. A state machine fed Login Request PDUs; it never touches the socket, so the whole
// exchange is unit-tested. Owned by one Connection and used only on its strand.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "protocol/negotiation.h"
#include "protocol/pdu.h"

namespace untorn::target {

// Login status class/detail, RFC 7143 §11.13.5.
enum class LoginStatus : uint16_t {
  kSuccess = 0x0000,
  kInitiatorError = 0x0200,
  kAuthenticationFailure = 0x0201,
  kAuthorizationFailure = 0x0202,
  kNotFound = 0x0203,
  kUnsupportedVersion = 0x0205,
  kTooManyConnections = 0x0206,
  kMissingParameter = 0x0207,
  kSessionTypeNotSupported = 0x0209,
  kSessionDoesNotExist = 0x020a,
  kInvalidDuringLogin = 0x020b,
  kTargetError = 0x0300,
  kServiceUnavailable = 0x0301,
  kOutOfResources = 0x0302,
};

struct LoginOutcome {
  std::vector<protocol::Pdu> responses;  // send these, in order
  bool failed = false;                   // close the connection after sending
  bool complete = false;                 // full feature phase begins after sending
  std::string log;                       // why it failed (peer address is added by the caller)
};

class Login {
 public:
  struct Environment {
    const config::Config* config = nullptr;
    std::string local_address;  // "ip:port" of this connection, for SendTargets defaults
    // Random bytes for CHAP challenges and identifiers.
    std::function<void(uint8_t*, size_t)> random;
    // Session identity for a completed login: returns the TSIH to use (non-zero), or a failure
    // status (e.g. too many sessions).
    std::function<std::optional<uint16_t>(const Login&, LoginStatus*)> admit;
  };

  explicit Login(Environment env);

  // Feeds one Login Request PDU. `stat_sn` is the StatSN to put in the response (the caller
  // advances it per response); `cmd_sn_window` is the MaxCmdSN offset to announce.
  [[nodiscard]] LoginOutcome OnPdu(const protocol::Pdu& pdu, uint32_t stat_sn,
                                   uint32_t cmd_sn_window);

  // Results, valid once complete.
  [[nodiscard]] bool discovery() const { return discovery_; }
  [[nodiscard]] const config::Target* target() const { return target_; }
  [[nodiscard]] const std::string& initiator_name() const { return initiator_name_; }
  [[nodiscard]] uint64_t isid() const { return isid_; }
  [[nodiscard]] uint16_t tsih() const { return tsih_; }
  [[nodiscard]] uint16_t cid() const { return cid_; }
  [[nodiscard]] uint32_t exp_cmd_sn() const { return cmd_sn_; }
  [[nodiscard]] const protocol::SessionParams& params() const { return negotiator_.params(); }
  [[nodiscard]] uint32_t pdus_seen() const { return pdus_; }
  // Who authenticated: the CHAP name the initiator proved, empty when it needed no CHAP. A
  // session may be reinstated, or joined, only by a login of the same identity.
  [[nodiscard]] const std::string& auth_identity() const { return auth_identity_; }

 private:
  enum class Auth { kUnknown, kNone, kChapWaitAlgorithm, kChapWaitResponse, kDone };

  LoginOutcome Fail(LoginStatus status, const std::string& why);
  // First PDU: identity keys, target lookup, access control.
  bool Identify(const protocol::KeyList& keys, std::string* why, LoginStatus* status);
  // Security-stage keys; appends answers. Returns false to fail with *status.
  bool Security(const protocol::KeyList& keys, protocol::KeyList* answers, LoginStatus* status,
                std::string* why);

  Environment env_;
  protocol::Negotiator negotiator_;
  uint32_t pdus_ = 0;
  bool first_ = true;
  uint8_t stage_ = 0;
  std::vector<uint8_t> pending_text_;  // key data of PDUs sent with C=1
  uint32_t itt_ = 0;
  uint64_t isid_ = 0;
  uint16_t tsih_ = 0;
  uint16_t cid_ = 0;
  uint32_t cmd_sn_ = 0;
  bool discovery_ = false;
  const config::Target* target_ = nullptr;
  std::string initiator_name_;
  bool sent_target_info_ = false;

  Auth auth_ = Auth::kUnknown;
  int chap_algorithm_ = 0;
  uint8_t chap_id_ = 0;
  std::vector<uint8_t> chap_challenge_;
  const config::ChapCredentials* chap_ = nullptr;         // the initiator must prove these
  const config::ChapCredentials* mutual_chap_ = nullptr;  // the target proves these
  std::string auth_identity_;
};

}  // namespace untorn::target
