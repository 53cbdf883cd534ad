#include "target/iscsi/login.h"

#include <algorithm>

#include "protocol/chap.h"
#include "protocol/text_keys.h"

namespace untorn::target {

using protocol::KeyList;
using protocol::Pdu;

namespace {

constexpr uint32_t kMaxLoginPdus = 16;  // bounds a login that never converges
constexpr size_t kChapChallengeLength = 32;

bool IsIdentityKey(const std::string& k) {
  return k == "InitiatorName" || k == "TargetName" || k == "SessionType" || k == "InitiatorAlias";
}
bool IsSecurityKey(const std::string& k) { return k == "AuthMethod" || k.rfind("CHAP_", 0) == 0; }
bool IsTargetDeclaredKey(const std::string& k) {
  return k == "TargetAlias" || k == "TargetAddress" || k == "TargetPortalGroupTag";
}

const std::string* Find(const KeyList& keys, const char* name) {
  for (const auto& k : keys) {
    if (k.key == name) return &k.value;
  }
  return nullptr;
}

}  // namespace

Login::Login(Environment env)
    : env_(std::move(env)), negotiator_([&] {
        protocol::TargetCapabilities caps;
        const config::Limits& l = env_.config->limits;
        caps.max_recv_data_segment = l.max_recv_data_segment_length;
        caps.max_burst_length = l.max_burst_length;
        caps.first_burst_length = l.first_burst_length;
        return caps;
      }()) {}

LoginOutcome Login::Fail(LoginStatus status, const std::string& why) {
  LoginOutcome out;
  protocol::LoginResponse r;
  r.isid = isid_;
  r.itt = itt_;
  r.status_class = static_cast<uint8_t>(static_cast<uint16_t>(status) >> 8);
  r.status_detail = static_cast<uint8_t>(static_cast<uint16_t>(status) & 0xff);
  out.responses.push_back(protocol::EncodeLoginResponse(r, {}, {}));
  out.failed = true;
  out.log = why;
  return out;
}

bool Login::Identify(const KeyList& keys, std::string* why, LoginStatus* status) {
  const std::string* name = Find(keys, "InitiatorName");
  if (name == nullptr || name->empty() || name->size() > 223) {
    *status = LoginStatus::kMissingParameter;
    *why = "login without a valid InitiatorName";
    return false;
  }
  initiator_name_ = *name;
  const std::string* type = Find(keys, "SessionType");
  if (type != nullptr && *type != "Normal" && *type != "Discovery") {
    *status = LoginStatus::kSessionTypeNotSupported;
    *why = "unsupported SessionType " + *type;
    return false;
  }
  discovery_ = type != nullptr && *type == "Discovery";
  if (discovery_) return true;
  const std::string* target = Find(keys, "TargetName");
  if (target == nullptr) {
    *status = LoginStatus::kMissingParameter;
    *why = "normal session without TargetName";
    return false;
  }
  for (const auto& t : env_.config->targets) {
    if (t.iqn == *target) target_ = &t;
  }
  if (target_ == nullptr) {
    *status = LoginStatus::kNotFound;
    *why = "no target named " + target->substr(0, 223);
    return false;
  }
  // Refused before any authentication, naming neither reason to the peer beyond the status
  // (docs/hardening.md, "What a peer learns before it authenticates").
  if (!target_->Admits(*name)) {
    *status = LoginStatus::kAuthorizationFailure;
    *why = "initiator " + *name + " is not allowed on " + target_->iqn;
    return false;
  }
  chap_ = target_->ChapFor(*name);
  mutual_chap_ = target_->MutualChapFor(*name);
  return true;
}

bool Login::Security(const KeyList& keys, KeyList* answers, LoginStatus* status, std::string* why) {
  const bool chap_required = chap_ != nullptr;
  *status = LoginStatus::kAuthenticationFailure;
  const std::string* chap_n = nullptr;
  const std::string* chap_r = nullptr;
  const std::string* chap_i = nullptr;
  const std::string* chap_c = nullptr;
  for (const auto& [key, value] : keys) {
    if (key == "AuthMethod") {
      if (auth_ != Auth::kUnknown) {
        *status = LoginStatus::kInitiatorError;
        *why = "AuthMethod negotiated twice";
        return false;
      }
      const auto methods = protocol::SplitList(value);
      const auto offers = [&](const char* m) {
        return std::find(methods.begin(), methods.end(), m) != methods.end();
      };
      if (chap_required ? offers("CHAP") : offers("None")) {
        answers->push_back({key, chap_required ? "CHAP" : "None"});
        auth_ = chap_required ? Auth::kChapWaitAlgorithm : Auth::kNone;
      } else {
        answers->push_back({key, "Reject"});
        *why = chap_required ? "initiator does not offer CHAP, which the target requires"
                             : "initiator offers only authentication the target is not set up for";
        return false;
      }
    } else if (key == "CHAP_A") {
      if (auth_ != Auth::kChapWaitAlgorithm) {
        *status = LoginStatus::kInitiatorError;
        *why = "CHAP_A out of sequence";
        return false;
      }
      for (const auto& a : protocol::SplitList(value)) {
        const auto n = protocol::ParseNumber(a);
        if (n && *n <= 255 && protocol::ChapDigestLength(static_cast<int>(*n))) {
          chap_algorithm_ = static_cast<int>(*n);
          break;
        }
      }
      if (chap_algorithm_ == 0) {
        answers->push_back({key, "Reject"});
        *why = "no supported CHAP algorithm in " + value.substr(0, 64);
        return false;
      }
      env_.random(&chap_id_, 1);
      chap_challenge_.resize(kChapChallengeLength);
      env_.random(chap_challenge_.data(), chap_challenge_.size());
      answers->push_back({"CHAP_A", std::to_string(chap_algorithm_)});
      answers->push_back({"CHAP_I", std::to_string(chap_id_)});
      answers->push_back({"CHAP_C", protocol::EncodeHex(chap_challenge_)});
      auth_ = Auth::kChapWaitResponse;
    } else if (key == "CHAP_N") {
      chap_n = &value;
    } else if (key == "CHAP_R") {
      chap_r = &value;
    } else if (key == "CHAP_I") {
      chap_i = &value;
    } else if (key == "CHAP_C") {
      chap_c = &value;
    } else {
      answers->push_back({key, "NotUnderstood"});
    }
  }
  if (chap_n == nullptr && chap_r == nullptr) {
    if (chap_i != nullptr || chap_c != nullptr) {
      *status = LoginStatus::kInitiatorError;
      *why = "CHAP_I/CHAP_C without CHAP_N/CHAP_R";
      return false;
    }
    return true;
  }
  if (auth_ != Auth::kChapWaitResponse || chap_n == nullptr || chap_r == nullptr) {
    *status = LoginStatus::kInitiatorError;
    *why = "CHAP response out of sequence";
    return false;
  }
  const auto response = protocol::ParseBinary(*chap_r);
  const std::vector<uint8_t> expected =
      protocol::ChapResponse(chap_algorithm_, chap_id_, chap_->secret, chap_challenge_);
  const bool name_ok = *chap_n == chap_->username;
  const bool response_ok = response && protocol::ConstantTimeEqual(*response, expected);
  if (!name_ok || !response_ok) {
    *why = name_ok ? "CHAP response does not match" : "unknown CHAP name";
    return false;
  }
  if (chap_i != nullptr || chap_c != nullptr) {  // mutual CHAP: the target proves itself
    if (chap_i == nullptr || chap_c == nullptr) {
      *why = "mutual CHAP needs both CHAP_I and CHAP_C";
      return false;
    }
    if (mutual_chap_ == nullptr) {
      *why = "initiator asks for mutual CHAP, which this target is not set up for";
      return false;
    }
    const auto id = protocol::ParseNumber(*chap_i);
    const auto challenge = protocol::ParseBinary(*chap_c);
    if (!id || *id > 255 || !challenge || challenge->empty() ||
        challenge->size() > protocol::kMaxChapChallenge) {
      *why = "malformed mutual CHAP_I or CHAP_C";
      return false;
    }
    if (*challenge == chap_challenge_) {  // RFC 7143 §12.1.3: reflected challenge
      *why = "initiator reflected the target's CHAP challenge";
      return false;
    }
    answers->push_back({"CHAP_N", mutual_chap_->username});
    answers->push_back({"CHAP_R", protocol::EncodeHex(protocol::ChapResponse(
                                      chap_algorithm_, static_cast<uint8_t>(*id),
                                      mutual_chap_->secret, *challenge))});
  }
  auth_ = Auth::kDone;
  auth_identity_ = chap_->username;
  return true;
}

LoginOutcome Login::OnPdu(const Pdu& pdu, uint32_t stat_sn, uint32_t cmd_sn_window) {
  const protocol::LoginRequestPdu req = protocol::DecodeLoginRequest(pdu);
  if (++pdus_ > kMaxLoginPdus) return Fail(LoginStatus::kInitiatorError, "too many login PDUs");
  if (first_) {
    isid_ = req.isid;
    tsih_ = req.tsih;
    cid_ = req.cid;
    cmd_sn_ = req.cmd_sn;
    if (req.version_min > 0x00) {
      return Fail(LoginStatus::kUnsupportedVersion, "initiator needs a newer iSCSI version");
    }
    if (req.csg == 1) stage_ = 1;  // no security negotiation
  } else if (req.isid != isid_ || req.tsih != tsih_ || req.cid != cid_) {
    return Fail(LoginStatus::kInitiatorError, "ISID, TSIH or CID changed during login");
  }
  itt_ = req.itt;
  if (req.csg != stage_ || (req.transit && (req.nsg <= req.csg || req.nsg == 2)) ||
      (req.transit && req.cont)) {
    return Fail(LoginStatus::kInitiatorError, "login stage transition out of order");
  }
  pending_text_.insert(pending_text_.end(), pdu.data.begin(), pdu.data.end());
  if (pending_text_.size() > protocol::kMaxTextDataLength) {
    return Fail(LoginStatus::kInitiatorError, "login key data too long");
  }
  const protocol::SeqNumbers sn{stat_sn, cmd_sn_, cmd_sn_ + cmd_sn_window - 1};
  protocol::LoginResponse r;
  r.csg = stage_;
  r.isid = isid_;
  r.itt = itt_;
  if (req.cont) {  // more key data follows: acknowledge with an empty response
    LoginOutcome out;
    out.responses.push_back(protocol::EncodeLoginResponse(r, {}, sn));
    return out;
  }
  std::string error;
  const auto keys = protocol::ParseTextKeys(pending_text_, &error);
  pending_text_.clear();
  if (!keys) return Fail(LoginStatus::kInitiatorError, error);

  if (first_) {
    LoginStatus status{};
    if (!Identify(*keys, &error, &status)) return Fail(status, error);
    first_ = false;
  }
  KeyList security, operational, answers;
  for (const auto& k : *keys) {
    if (IsIdentityKey(k.key)) continue;
    if (IsSecurityKey(k.key)) {
      if (stage_ != 0) return Fail(LoginStatus::kInitiatorError, k.key + " outside security stage");
      security.push_back(k);
    } else if (IsTargetDeclaredKey(k.key)) {
      answers.push_back({k.key, "Irrelevant"});
    } else {
      operational.push_back(k);
    }
  }
  if (stage_ == 0) {
    LoginStatus status{};
    if (!Security(security, &answers, &status, &error)) return Fail(status, error);
  }
  if (!negotiator_.Respond(operational, &answers, &error)) {
    return Fail(LoginStatus::kInitiatorError, error);
  }
  if (!discovery_ && !sent_target_info_) {
    answers.push_back({"TargetPortalGroupTag", "1"});
    if (!target_->alias.empty()) answers.push_back({"TargetAlias", target_->alias});
    sent_target_info_ = true;
  }
  // Leaving the security stage needs authentication to be complete.
  const bool chap_required = chap_ != nullptr;
  bool transit = req.transit;
  if (transit && stage_ == 0) {
    if (auth_ == Auth::kChapWaitAlgorithm || auth_ == Auth::kChapWaitResponse) {
      transit = false;  // CHAP exchange still under way: hold the transition
    } else if (chap_required && auth_ != Auth::kDone) {
      return Fail(LoginStatus::kAuthenticationFailure, "CHAP required but not performed");
    }
  }
  if (stage_ == 1 && chap_required && auth_ != Auth::kDone) {
    return Fail(LoginStatus::kAuthenticationFailure, "security stage skipped but CHAP required");
  }
  if (stage_ == 1 || (transit && req.nsg == 3)) {
    if (negotiator_.awaiting_answers()) {
      return Fail(LoginStatus::kInitiatorError, "initiator did not answer the target's offers");
    }
    // Offers of the target's own limits hold the transition for the initiator's answer.
    if (negotiator_.Finish(&answers, !discovery_)) transit = false;
  }
  LoginOutcome out;
  if (transit && req.nsg == 3) {
    LoginStatus status = LoginStatus::kTargetError;
    const auto tsih = env_.admit(*this, &status);
    if (!tsih) return Fail(status, "session not admitted");
    tsih_ = *tsih;
    out.complete = true;
  }
  r.transit = transit;
  r.nsg = transit ? req.nsg : 0;
  r.tsih = out.complete ? tsih_ : 0;
  if (transit) stage_ = req.nsg;
  out.responses.push_back(protocol::EncodeLoginResponse(r, protocol::EncodeTextKeys(answers), sn));
  return out;
}

}  // namespace untorn::target
