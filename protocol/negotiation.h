// Operational parameter negotiation (RFC 7143 §6.2, §13) as a pure state machine: offers in,
// answers out. Security keys (AuthMethod, CHAP_*) and the identity keys (InitiatorName,
// TargetName, SessionType) are the login's business, not handled here.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "protocol/text_keys.h"

namespace untorn::protocol {

// Values in force for a connection/session once login completes; defaults are RFC 7143 §13.
struct SessionParams {
  bool header_digest = false;
  bool data_digest = false;
  uint32_t initiator_max_recv_data_segment = 8192;  // largest segment we may send
  uint32_t target_max_recv_data_segment = 8192;     // largest segment we accept (we declare it)
  uint32_t max_burst_length = 262144;
  uint32_t first_burst_length = 65536;
  bool initial_r2t = true;
  bool immediate_data = true;
  uint32_t max_outstanding_r2t = 1;
  bool data_pdu_in_order = true;
  bool data_sequence_in_order = true;
  uint32_t default_time2wait = 2;
  uint32_t default_time2retain = 20;
  uint32_t error_recovery_level = 0;
  uint32_t max_connections = 1;
};

// What this target is willing to do; the negotiated result never exceeds it.
struct TargetCapabilities {
  uint32_t max_recv_data_segment = 262144;
  uint32_t max_burst_length = 16776192;
  uint32_t first_burst_length = 262144;
  uint32_t max_outstanding_r2t = 16;
  bool allow_digests = true;
  bool want_immediate_data = true;
  bool want_initial_r2t = false;
};

class Negotiator {
 public:
  explicit Negotiator(const TargetCapabilities& caps);

  // Answers a set of operational offers; keys not handled here must be filtered out first.
  // Returns false (and *error) on a protocol violation: a key offered twice in one
  // negotiation, or a key we answered being re-declared.
  [[nodiscard]] bool Respond(const KeyList& offers, KeyList* answers, std::string* error);

  // Called when the initiator asks to leave operational negotiation. Declares
  // MaxRecvDataSegmentLength if not yet sent, and offers MaxBurstLength and FirstBurstLength
  // where the initiator offered neither and the target's limit is below the RFC default that
  // would otherwise be in force (§13.13, §13.14), so that what is enforced is what was agreed.
  // `offer_limits` is false for discovery sessions, where the burst keys are irrelevant.
  // Returns true when it made offers: the initiator answers them in its next request, and the
  // login must not transit before that.
  bool Finish(KeyList* answers, bool offer_limits = true);

  // Offers made by Finish that the initiator has not answered yet.
  [[nodiscard]] bool awaiting_answers() const { return !offered_.empty(); }

  [[nodiscard]] const SessionParams& params() const { return params_; }

  // True for keys this class negotiates.
  [[nodiscard]] static bool Handles(const std::string& key);

 private:
  [[nodiscard]] std::string Answer(const std::string& key, const std::string& value);
  // The initiator's answer to a key the target offered; false (and *error) when it refuses it.
  [[nodiscard]] bool TakeAnswer(const std::string& key, const std::string& value,
                                std::string* error);

  TargetCapabilities caps_;
  SessionParams params_;
  std::set<std::string> seen_;
  bool declared_mrdsl_ = false;
  std::map<std::string, uint32_t> offered_;  // target offers awaiting the initiator's answer
};

}  // namespace untorn::protocol
