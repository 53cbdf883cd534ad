#include "protocol/negotiation.h"

#include <algorithm>
#include <array>
#include <optional>

namespace untorn::protocol {
namespace {

constexpr std::array<const char*, 18> kHandled = {"HeaderDigest",
                                                  "DataDigest",
                                                  "MaxRecvDataSegmentLength",
                                                  "MaxBurstLength",
                                                  "FirstBurstLength",
                                                  "InitialR2T",
                                                  "ImmediateData",
                                                  "MaxOutstandingR2T",
                                                  "DataPDUInOrder",
                                                  "DataSequenceInOrder",
                                                  "DefaultTime2Wait",
                                                  "DefaultTime2Retain",
                                                  "ErrorRecoveryLevel",
                                                  "MaxConnections",
                                                  "IFMarker",
                                                  "OFMarker",
                                                  "IFMarkInt",
                                                  "OFMarkInt"};

std::optional<bool> ParseBool(const std::string& v) {
  if (v == "Yes") return true;
  if (v == "No") return false;
  return std::nullopt;
}

const char* YesNo(bool b) { return b ? "Yes" : "No"; }

// Numeric value within [lo, hi]; nullopt otherwise.
std::optional<uint32_t> Ranged(const std::string& v, uint64_t lo, uint64_t hi) {
  auto n = ParseNumber(v);
  if (!n || *n < lo || *n > hi) return std::nullopt;
  return static_cast<uint32_t>(*n);
}

}  // namespace

Negotiator::Negotiator(const TargetCapabilities& caps) : caps_(caps) {
  params_.target_max_recv_data_segment = caps.max_recv_data_segment;
}

bool Negotiator::Handles(const std::string& key) {
  return std::any_of(kHandled.begin(), kHandled.end(), [&](const char* k) { return key == k; });
}

bool Negotiator::Respond(const KeyList& offers, KeyList* answers, std::string* error) {
  KeyList fresh;
  for (const auto& [key, value] : offers) {
    if (offered_.count(key) != 0) {  // the answer to the target's own offer
      if (!TakeAnswer(key, value, error)) return false;
      continue;
    }
    fresh.push_back({key, value});
  }
  for (const auto& [key, value] : fresh) {
    if (!seen_.insert(key).second) {
      *error = "key negotiated twice: " + key;
      return false;
    }
  }
  // MaxBurstLength is answered before FirstBurstLength whatever their order, so that the
  // FirstBurstLength answered never exceeds it (§13.14).
  const auto answer = [&](const TextKey& offer) {
    std::string a = Answer(offer.key, offer.value);
    if (!a.empty()) answers->push_back({offer.key, std::move(a)});
  };
  for (const auto& offer : fresh) {
    if (offer.key == "MaxBurstLength") answer(offer);
  }
  for (const auto& offer : fresh) {
    if (offer.key != "MaxBurstLength") answer(offer);
  }
  return true;
}

bool Negotiator::TakeAnswer(const std::string& key, const std::string& value, std::string* error) {
  const uint32_t offered = offered_.at(key);
  offered_.erase(key);
  // Both keys take the minimum (§13.13, §13.14): the answer is at most what was offered.
  const auto n = Ranged(value, 512, offered);
  if (!n) {
    *error = "initiator answered the target's offer " + key + "=" + std::to_string(offered) +
             " with " + value.substr(0, 64);
    return false;
  }
  (key == "MaxBurstLength" ? params_.max_burst_length : params_.first_burst_length) = *n;
  return true;
}

std::string Negotiator::Answer(const std::string& key, const std::string& value) {
  constexpr uint64_t kMaxLen = (1u << 24) - 1;
  if (key == "HeaderDigest" || key == "DataDigest") {
    for (const auto& choice : SplitList(value)) {
      const bool crc = choice == "CRC32C";
      if (choice == "None" || (crc && caps_.allow_digests)) {
        (key == "HeaderDigest" ? params_.header_digest : params_.data_digest) = crc;
        return choice;
      }
    }
    return "Reject";
  }
  if (key == "MaxRecvDataSegmentLength") {  // declarative (§13.12): no answer of its own
    auto n = Ranged(value, 512, kMaxLen);
    if (!n) return "Reject";
    params_.initiator_max_recv_data_segment = *n;
    return {};
  }
  if (key == "MaxBurstLength" || key == "FirstBurstLength") {
    auto n = Ranged(value, 512, kMaxLen);
    if (!n) return "Reject";
    const bool max = key == "MaxBurstLength";
    // Both min (§13.13, §13.14); FirstBurstLength also within the MaxBurstLength in force (the
    // answer to it, or the default), so that nothing is clamped later behind the peer's back.
    // (The target's own MaxBurstLength bounds it too: that is the most the target may offer
    // later, when the initiator offers no MaxBurstLength.)
    const uint32_t r = max ? std::min(*n, caps_.max_burst_length)
                           : std::min({*n, caps_.first_burst_length, params_.max_burst_length,
                                       caps_.max_burst_length});
    (max ? params_.max_burst_length : params_.first_burst_length) = r;
    return std::to_string(r);
  }
  // Obsoleted by RFC 7143 (§13.26): IFMarker and OFMarker SHOULD be answered Reject (No is
  // allowed); OFMarkInt and IFMarkInt MUST be.
  if (key == "IFMarker" || key == "OFMarker" || key == "IFMarkInt" || key == "OFMarkInt") {
    return "Reject";
  }
  if (key == "InitialR2T" || key == "ImmediateData" || key == "DataPDUInOrder" ||
      key == "DataSequenceInOrder") {
    auto b = ParseBool(value);
    if (!b) return "Reject";
    if (key == "InitialR2T") {  // OR (§13.10)
      params_.initial_r2t = *b || caps_.want_initial_r2t;
      return YesNo(params_.initial_r2t);
    }
    if (key == "ImmediateData") {  // AND (§13.11)
      params_.immediate_data = *b && caps_.want_immediate_data;
      return YesNo(params_.immediate_data);
    }
    // DataPDUInOrder / DataSequenceInOrder: OR; this target always delivers in order.
    return "Yes";
  }
  if (key == "MaxOutstandingR2T") {
    auto n = Ranged(value, 1, 65535);
    if (!n) return "Reject";
    params_.max_outstanding_r2t = std::min(*n, caps_.max_outstanding_r2t);
    return std::to_string(params_.max_outstanding_r2t);
  }
  if (key == "DefaultTime2Wait") {  // max (§13.15)
    auto n = Ranged(value, 0, 3600);
    if (!n) return "Reject";
    params_.default_time2wait = std::max<uint32_t>(*n, 2);
    return std::to_string(params_.default_time2wait);
  }
  if (key == "DefaultTime2Retain") {  // min (§13.16)
    auto n = Ranged(value, 0, 3600);
    if (!n) return "Reject";
    params_.default_time2retain = std::min<uint32_t>(*n, 20);
    return std::to_string(params_.default_time2retain);
  }
  if (key == "ErrorRecoveryLevel") {  // min; only level 0 is implemented
    if (!Ranged(value, 0, 2)) return "Reject";
    params_.error_recovery_level = 0;
    return "0";
  }
  if (key == "MaxConnections") {  // min; one connection per session
    if (!Ranged(value, 1, 65535)) return "Reject";
    params_.max_connections = 1;
    return "1";
  }
  return "NotUnderstood";
}

bool Negotiator::Finish(KeyList* answers, bool offer_limits) {
  if (!declared_mrdsl_) {
    answers->push_back(
        {"MaxRecvDataSegmentLength", std::to_string(params_.target_max_recv_data_segment)});
    declared_mrdsl_ = true;
  }
  bool offered = false;
  const auto offer = [&](const char* key, uint32_t value, uint32_t in_force) {
    if (!offer_limits || seen_.count(key) != 0 || value >= in_force) return;
    seen_.insert(key);
    offered_[key] = value;
    answers->push_back({key, std::to_string(value)});
    offered = true;
  };
  offer("MaxBurstLength", caps_.max_burst_length, params_.max_burst_length);
  offer("FirstBurstLength", std::min(caps_.first_burst_length, caps_.max_burst_length),
        params_.first_burst_length);
  params_.first_burst_length = std::min(params_.first_burst_length, params_.max_burst_length);
  return offered;
}

}  // namespace untorn::protocol
