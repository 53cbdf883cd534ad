#include "target/iscsi/connection.h"

#include <openssl/rand.h>

#include "protocol/scsi_pages.h"
#include "protocol/serial_number.h"
#include "protocol/text_keys.h"
#include "target/log.h"

namespace untorn::target {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using protocol::kReservedTag;
using protocol::Opcode;
using protocol::Pdu;
using protocol::SerialLess;

namespace {

std::string Endpoint(const asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

}  // namespace

Connection::Connection(Socket socket, ServerContext ctx, uint64_t id)
    : socket_(std::move(socket)),
      ctx_(ctx),
      session_buffers_(uint64_t{ctx.config->limits.max_session_buffer_megabytes} << 20,
                       ctx.buffers),
      id_(id),
      write_signal_(socket_.get_executor()),
      keepalive_timer_(socket_.get_executor()),
      watchdog_timer_(socket_.get_executor()),
      login_timer_(socket_.get_executor()),
      drained_signal_(socket_.get_executor()),
      last_tx_(std::chrono::steady_clock::now()),
      last_rx_(last_tx_) {
  boost::system::error_code ec;
  peer_ = Endpoint(socket_.remote_endpoint(ec));
  local_ = Endpoint(socket_.local_endpoint(ec));
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);  // for the WriteLoop's writes that must not wait
  if (ctx_.send_buffer > 0) {
    socket_.set_option(asio::socket_base::send_buffer_size(ctx_.send_buffer), ec);
  }
  write_signal_.expires_at(std::chrono::steady_clock::time_point::max());
  drained_signal_.expires_at(std::chrono::steady_clock::time_point::max());
  ctx_.connections->fetch_add(1);
  ctx_.metrics->Get("untorn_connections", {}, "Open iSCSI connections", true).fetch_add(1);
  ctx_.metrics->Add("untorn_connections_total", {}, "iSCSI connections accepted");
}

Connection::~Connection() {
  ctx_.connections->fetch_sub(1);
  ctx_.metrics->Get("untorn_connections", {}, "Open iSCSI connections", true).fetch_sub(1);
}

void Connection::Start() {
  Login::Environment env;
  env.config = ctx_.config.get();
  env.local_address = local_;
  env.random = [](uint8_t* p, size_t n) {
    if (RAND_bytes(p, static_cast<int>(n)) != 1) {
      // The CSPRNG failed: refuse to issue predictable challenges.
      throw std::runtime_error("RAND_bytes failed");
    }
  };
  env.admit = [this](const Login& l, LoginStatus* status) -> std::optional<uint16_t> {
    if (l.tsih() != 0) {
      // Adding a connection to a session (§11.13.5): to one that exists, refused (one connection
      // per session here); to one that does not, "session does not exist".
      const bool exists = !l.discovery() && l.target() != nullptr &&
                          ctx_.sessions->Has(l.tsih(), l.initiator_name(), l.isid(),
                                             l.target()->iqn, l.auth_identity());
      *status = exists ? LoginStatus::kTooManyConnections : LoginStatus::kSessionDoesNotExist;
      return std::nullopt;
    }
    if (l.discovery()) {
      // Discovery needs no credentials: their number is capped apart, so that sessions held
      // open with NOP-Outs cannot take the slots normal logins need.
      auto slot = ctx_.limits->AdmitDiscovery();
      if (!slot) {
        *status = LoginStatus::kOutOfResources;
        ctx_.metrics->Add("untorn_connections_refused_total", {{"reason", "discovery"}},
                          "Connections or logins refused by a cap, by reason");
        return std::nullopt;
      }
      discovery_slot_ = std::move(slot);
      return static_cast<uint16_t>(0x8000 | (id_ & 0x7fff));
    }
    SessionRegistry::Refusal refusal{};
    auto a = ctx_.sessions->Admit(
        {l.initiator_name(), l.isid(), l.target()->iqn, l.auth_identity(), peer_},
        ctx_.config->limits.max_sessions_per_target, shared_from_this(), &refusal);
    if (!a) {
      // A live session of the same initiator port opened under another identity is not this
      // login's to take over (nor are its reservations): authorization failure, and it goes on.
      *status = refusal == SessionRegistry::Refusal::kOtherIdentity
                    ? LoginStatus::kAuthorizationFailure
                    : LoginStatus::kOutOfResources;
      return std::nullopt;
    }
    replaced_ = std::move(a->replaced);
    admitted_nexus_ = a->nexus_id;
    counters_ = std::move(a->counters);
    return a->tsih;
  };
  login_ = std::make_unique<Login>(std::move(env));
  stat_sn_ = 1;
  auto self = shared_from_this();
  const auto ex = socket_.get_executor();
  asio::co_spawn(ex, ReadLoop(), [self](const std::exception_ptr&) {});
  asio::co_spawn(ex, WriteLoop(), [self](const std::exception_ptr&) {});
  asio::co_spawn(ex, LoginTimeout(), [self](const std::exception_ptr&) {});
}

void Connection::Stop() {
  stop_requested_.store(true);
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->Close("stopped"); });
}

void Connection::Close(const std::string& why) {
  if (stopped_) return;
  stopped_ = true;
  closed_.store(true);
  UNTORN_LOG_DEBUG("connection ", id_, " from ", peer_, " closed: ", why);
  // The caps count open connections: given back now, not when the last reference goes, and
  // before the socket closes, so that a peer that sees the close finds its slot free.
  address_slot_.reset();
  discovery_slot_.reset();
  boost::system::error_code ec;
  socket_.shutdown(Socket::shutdown_both, ec);
  socket_.close(ec);
  write_signal_.cancel();
  keepalive_timer_.cancel();
  watchdog_timer_.cancel();
  login_timer_.cancel();
  drained_signal_.cancel();
  out_queue_.clear();
  out_bytes_ = 0;
  EndSession();
}

void Connection::EndSession() {
  if (!full_feature_ || discovery_ || target_ == nullptr) return;
  const bool still_ours = ctx_.sessions->Remove(tsih_, this);
  // Tasks not yet on a storage thread are dropped here; executing ones finish and are dropped
  // in Complete(). The I_T nexus is lost unless a reinstating session already took it over.
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    it = it->second.executing ? std::next(it) : tasks_.erase(it);
  }
  if (still_ours) {
    for (const auto& lu : target_->Luns()) lu->NexusLost(nexus_);
  }
  ctx_.metrics->Get("untorn_sessions", {{"target", target_->config->iqn}}, "Open sessions", true)
      .fetch_sub(1);
  UNTORN_LOG_INFO("session ", tsih_, " of ", nexus_.initiator, " on ", target_->config->iqn,
                  " ended");
  target_ = nullptr;
}

void Connection::CloseAfterFlush() {
  close_after_flush_ = true;
  write_signal_.cancel_one();
}

protocol::SeqNumbers Connection::PeekStatus() const { return {stat_sn_, exp_cmd_sn_, max_cmd_sn_}; }

protocol::SeqNumbers Connection::NextStatus() {
  UpdateWindow();
  return {stat_sn_++, exp_cmd_sn_, max_cmd_sn_};
}

void Connection::UpdateWindow() {
  const uint32_t limit = ctx_.config->limits.max_outstanding_commands;
  const auto active = static_cast<uint32_t>(tasks_.size() + held_commands_.size());
  const uint32_t room = active >= limit ? 0 : limit - active;
  const uint32_t candidate = exp_cmd_sn_ + room - 1;
  // MaxCmdSN never moves backwards (RFC 7143 §4.2.2.1): a full window just stops growing.
  if (SerialLess(max_cmd_sn_, candidate)) max_cmd_sn_ = candidate;
}

void Connection::Reject(protocol::RejectReason reason, const Pdu& pdu) {
  ctx_.metrics->Add("untorn_rejects_total", {{"reason", std::to_string(static_cast<int>(reason))}},
                    "Reject PDUs sent, by RFC 7143 reason code");
  Send(protocol::EncodeReject(reason, pdu.bhs, NextStatus()));
}

awaitable<bool> Connection::OnLoginPdu(Pdu& pdu) {
  if (pdu.RawOpcode() != static_cast<uint8_t>(Opcode::kLoginRequest)) {
    UNTORN_LOG_WARN("connection from ", peer_, ": opcode 0x", std::hex,
                    static_cast<int>(pdu.RawOpcode()), std::dec, " before login completed");
    co_return false;
  }
  LoginOutcome out = login_->OnPdu(pdu, stat_sn_, ctx_.config->limits.max_outstanding_commands);
  if (out.failed) {
    UNTORN_LOG_WARN("login from ", peer_, " (", login_->initiator_name(), ") refused: ", out.log);
    ctx_.metrics->Add("untorn_login_failures_total", {}, "Logins refused");
  }
  if (out.complete && replaced_) {
    // Session reinstatement (RFC 7143 §6.3.5): the old session's tasks end before this one
    // starts, so none of its writes can land after a write of the new session.
    // Waits for as long as it takes: the login timer still runs, and ends this login (stopped_)
    // rather than let the new session run beside a write of the old one.
    replaced_->Stop();
    asio::steady_timer wait(socket_.get_executor());
    while (!stopped_ && (!replaced_->closed() || replaced_->in_flight() > 0)) {
      wait.expires_after(std::chrono::milliseconds(10));
      boost::system::error_code ec;
      co_await wait.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    replaced_.reset();
    if (stopped_) co_return false;  // closed while the old session drained
    UNTORN_LOG_INFO("session of ", login_->initiator_name(), " reinstated");
  }
  for (const Pdu& r : out.responses) {
    Send(r);
    ++stat_sn_;
  }
  if (out.failed) {
    CloseAfterFlush();
    co_return false;
  }
  if (!out.complete) co_return true;

  // Full feature phase from here on; digests apply to every PDU after the final login response.
  full_feature_ = true;
  login_timer_.cancel();
  params_ = login_->params();
  header_digest_ = params_.header_digest;
  data_digest_ = params_.data_digest;
  discovery_ = login_->discovery();
  tsih_ = login_->tsih();
  cid_ = login_->cid();
  exp_cmd_sn_ = login_->exp_cmd_sn();
  max_cmd_sn_ = exp_cmd_sn_ - 1;
  UpdateWindow();
  nexus_ = Nexus{admitted_nexus_, login_->initiator_name(), login_->isid()};
  if (!discovery_) {
    target_ = ctx_.FindTarget(login_->target()->iqn);
    if (target_ == nullptr) {  // removed by a reload while this login ran
      UNTORN_LOG_WARN("login from ", peer_, " to ", login_->target()->iqn,
                      ": the target was removed meanwhile");
      Close("target removed");
      co_return false;
    }
    for (const auto& lu : target_->Luns()) lu->AddNexus(nexus_);
    ctx_.metrics->Get("untorn_sessions", {{"target", target_->config->iqn}}, "Open sessions", true)
        .fetch_add(1);
    ctx_.metrics->Add("untorn_sessions_total", {{"target", target_->config->iqn}},
                      "Sessions established");
    UNTORN_LOG_INFO("session ", tsih_, ": ", nexus_.initiator, " from ", peer_, " on ",
                    target_->config->iqn, " (digests ", header_digest_ ? "CRC32C" : "None", "/",
                    data_digest_ ? "CRC32C" : "None", ")");
  }
  login_.reset();
  asio::co_spawn(socket_.get_executor(), KeepAlive(),
                 [self = shared_from_this()](const std::exception_ptr&) {});
  last_text_ = std::chrono::steady_clock::now();
  asio::co_spawn(socket_.get_executor(), Watchdog(),
                 [self = shared_from_this()](const std::exception_ptr&) {});
  co_return true;
}

awaitable<void> Connection::Watchdog() {
  const auto& limits = ctx_.config->limits;
  const auto idle = std::chrono::seconds(limits.discovery_idle_seconds);
  const auto data_out = std::chrono::seconds(limits.data_out_timeout_seconds);
  const auto gap = std::chrono::seconds(limits.cmdsn_gap_timeout_seconds);
  while (!stopped_) {
    watchdog_timer_.expires_after(std::chrono::milliseconds(250));
    boost::system::error_code ec;
    co_await watchdog_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopped_) break;
    const auto now = std::chrono::steady_clock::now();
    // A discovery session lives for its SendTargets: one that asks nothing for
    // discovery_idle_seconds is ended, NOP-Outs or not (they keep it alive, not busy).
    if (discovery_ && now - last_text_ > idle) {
      UNTORN_LOG_INFO("discovery session from ", peer_, " idle for ", idle.count(), " s; closing");
      Close("discovery session idle");
      break;
    }
    // Answers queued for an initiator that reads none of them hold their buffers (Data-In):
    // ended after nop_timeout_seconds, keep-alive pings on or off.
    if (out_bytes_ > 0 && now - last_tx_ > std::chrono::seconds(limits.nop_timeout_seconds)) {
      EndUnused("not_reading", "initiator " + peer_ + " stopped reading its responses");
      break;
    }
    // Commands held behind a CmdSN gap hold their data and a place in the window.
    if (!held_commands_.empty() && now - gap_since_ > gap) {
      EndUnused("cmdsn_gap", "connection from " + peer_ + ": CmdSN " + std::to_string(exp_cmd_sn_) +
                                 " missing for " + std::to_string(gap.count()) + " s with " +
                                 std::to_string(held_commands_.size()) + " command(s) held");
      break;
    }
    // A task whose Data-Out does not come holds its buffers (ERL 0: the task cannot be
    // recovered on its own, so the connection ends and gives everything back).
    for (const auto& [itt, t] : tasks_) {
      if (t.executing || t.received >= t.want || now - t.data_wait_since <= data_out) continue;
      EndUnused("data_out_timeout",
                "connection from " + peer_ + ": no Data-Out for ITT " + std::to_string(itt) +
                    " in " + std::to_string(data_out.count()) + " s (" +
                    std::to_string(t.received) + " of " + std::to_string(t.want) + " bytes)");
      co_return;
    }
  }
}

void Connection::EndUnused(const char* reason, const std::string& why) {
  UNTORN_LOG_WARN(why, "; closing");
  ctx_.metrics->Add("untorn_connections_ended_total", {{"reason", reason}},
                    "Connections ended for holding resources unused, by reason");
  Close(reason);
}

bool Connection::AcceptCmdSn(Pdu& pdu) {
  if (pdu.Immediate()) return true;
  const uint32_t sn = pdu.Field32(24);
  // Aborted before it arrived: it already counts as received (RFC 7143 §11.5.1 a).
  if (aborted_cmd_sns_.contains(sn)) return false;
  if (sn == exp_cmd_sn_) {
    ++exp_cmd_sn_;
    return true;
  }
  // Within (ExpCmdSN, MaxCmdSN]: an earlier command is missing; hold this one until it comes.
  if (SerialLess(exp_cmd_sn_, sn) && !SerialLess(max_cmd_sn_, sn) &&
      held_commands_.size() < ctx_.config->limits.max_outstanding_commands) {
    // Held data counts against the session's buffers like any other; past them, the command
    // is dropped as if outside the window (with one connection per session, TCP keeps CmdSN
    // in order: only a peer that skips numbers makes a gap). The Watchdog ends a gap that
    // lasts.
    BufferBudget::Charge charge;
    if (!session_buffers_.TryCharge(pdu.data.size(), &charge)) {
      UNTORN_LOG_WARN("connection from ", peer_, ": CmdSN ", sn,
                      " held behind a gap over the buffer budget; dropped");
      return false;
    }
    if (held_commands_.empty()) gap_since_ = std::chrono::steady_clock::now();
    held_commands_.emplace(sn, Held{std::move(pdu), std::move(charge)});
    return false;
  }
  // Outside the window: silently ignored (RFC 7143 §4.2.2.1).
  UNTORN_LOG_DEBUG("connection ", id_, ": CmdSN ", sn, " outside [", exp_cmd_sn_, ", ", max_cmd_sn_,
                   "]; dropped");
  return false;
}

void Connection::OnFullFeaturePdu(Pdu& pdu) {
  switch (static_cast<Opcode>(pdu.RawOpcode())) {
    case Opcode::kDataOut:
      OnDataOut(pdu);
      return;
    case Opcode::kNopOut:
    case Opcode::kScsiCommand:
    case Opcode::kTaskMgmtRequest:
    case Opcode::kTextRequest:
    case Opcode::kLogoutRequest:
      if (pending_logout_itt_ && pdu.RawOpcode() != static_cast<uint8_t>(Opcode::kNopOut)) {
        Reject(protocol::RejectReason::kWaitingForLogout, pdu);
        return;
      }
      if (!AcceptCmdSn(pdu)) return;
      Process(pdu);
      // Commands held for a CmdSN gap may now be in order; a CmdSN an ABORT TASK declared
      // received fills its gap without ever arriving.
      while (true) {
        if (aborted_cmd_sns_.erase(exp_cmd_sn_) != 0) {
          ++exp_cmd_sn_;
          continue;
        }
        auto it = held_commands_.find(exp_cmd_sn_);
        if (it == held_commands_.end()) break;
        Pdu next = std::move(it->second.pdu);
        held_commands_.erase(it);
        ++exp_cmd_sn_;
        Process(next);
      }
      return;
    case Opcode::kLoginRequest:
      Reject(protocol::RejectReason::kProtocolError, pdu);
      CloseAfterFlush();
      return;
    case Opcode::kSnackRequest:  // ERL 0: no SNACK support
      Reject(protocol::RejectReason::kProtocolError, pdu);
      return;
    default:
      Reject(protocol::RejectReason::kCommandNotSupported, pdu);
      return;
  }
}

void Connection::Process(Pdu& pdu) {
  const auto op = static_cast<Opcode>(pdu.RawOpcode());
  if (discovery_ && (op == Opcode::kScsiCommand || op == Opcode::kTaskMgmtRequest)) {
    Reject(protocol::RejectReason::kProtocolError, pdu);  // discovery: Text, NOP, Logout only
    return;
  }
  switch (op) {
    case Opcode::kNopOut:
      OnNopOut(pdu);
      break;
    case Opcode::kScsiCommand:
      OnScsiCommand(pdu);
      break;
    case Opcode::kTaskMgmtRequest:
      OnTaskManagement(pdu);
      break;
    case Opcode::kTextRequest:
      OnText(pdu);
      break;
    case Opcode::kLogoutRequest:
      OnLogout(pdu);
      break;
    default:
      break;
  }
}

void Connection::OnNopOut(const Pdu& pdu) {
  const protocol::NopOutPdu n = protocol::DecodeNopOut(pdu);
  if (n.itt == kReservedTag) return;  // an answer to our NOP-In (already noted as traffic)
  std::vector<uint8_t> echo(pdu.data);
  if (echo.size() > params_.initiator_max_recv_data_segment) {
    echo.resize(params_.initiator_max_recv_data_segment);
  }
  Send(protocol::EncodeNopIn(n.lun, n.itt, kReservedTag, std::move(echo), NextStatus()));
}

std::vector<uint8_t> Connection::SendTargets(const std::string& which) const {
  std::vector<uint8_t> out;
  // The targets and their ACLs as this connection's configuration snapshot has them.
  for (const config::Target& c : ctx_.config->targets) {
    // RFC 7143 §12.3: "All" in a discovery session lists every target, in a normal session
    // only the session's own; an empty value means the session's own; a name means that one.
    const bool own = target_ != nullptr && target_->config->iqn == c.iqn;
    bool include = false;
    if (which == "All")
      include = target_ == nullptr || own;
    else if (which.empty())
      include = own;
    else
      include = which == c.iqn;
    if (!include) continue;
    if (!c.Admits(nexus_.initiator)) continue;  // only targets this initiator may log into
    protocol::AppendTextKey(out, "TargetName", c.iqn);
    for (const auto& p : ctx_.config->portals) {
      std::string addr = p.advertise;
      if (addr.empty()) {
        const bool wildcard = p.host == "0.0.0.0" || p.host == "::" || p.host.empty();
        addr = wildcard ? local_
                        : (p.host.find(':') != std::string::npos ? "[" + p.host + "]" : p.host) +
                              ":" + std::to_string(p.port);
      }
      protocol::AppendTextKey(out, "TargetAddress", addr + ",1");
    }
  }
  return out;
}

void Connection::OnText(const Pdu& pdu) {
  const protocol::TextRequestPdu t = protocol::DecodeTextRequest(pdu);
  last_text_ = std::chrono::steady_clock::now();
  if (t.ttt != kReservedTag && text_ttt_ == t.ttt && !text_response_left_.empty() &&
      pdu.data.empty()) {
    // The initiator asks for the rest of a long answer.
  } else {
    if (t.ttt != kReservedTag && t.ttt != text_ttt_) {
      Reject(protocol::RejectReason::kInvalidPduField, pdu);
      return;
    }
    text_response_left_.clear();
    text_request_.insert(text_request_.end(), pdu.data.begin(), pdu.data.end());
    if (text_request_.size() > protocol::kMaxTextDataLength) {
      text_request_.clear();
      Reject(protocol::RejectReason::kProtocolError, pdu);
      return;
    }
    if (t.cont) {  // more of the request follows
      text_ttt_ = next_ttt_++;
      Send(protocol::EncodeTextResponse(t.itt, text_ttt_, false, false, {}, NextStatus()));
      return;
    }
    std::string error;
    const auto keys = protocol::ParseTextKeys(text_request_, &error);
    text_request_.clear();
    if (!keys) {
      UNTORN_LOG_WARN("text request from ", peer_, ": ", error);
      Reject(protocol::RejectReason::kProtocolError, pdu);
      return;
    }
    std::vector<uint8_t> answer;
    for (const auto& k : *keys) {
      if (k.key == "SendTargets") {
        const auto list = SendTargets(k.value);
        answer.insert(answer.end(), list.begin(), list.end());
      } else {
        protocol::AppendTextKey(answer, k.key, "NotUnderstood");
      }
    }
    text_response_left_ = std::move(answer);
  }
  const size_t chunk =
      std::min<size_t>(text_response_left_.size(), params_.initiator_max_recv_data_segment);
  std::vector<uint8_t> part(text_response_left_.begin(),
                            text_response_left_.begin() + static_cast<ptrdiff_t>(chunk));
  text_response_left_.erase(text_response_left_.begin(),
                            text_response_left_.begin() + static_cast<ptrdiff_t>(chunk));
  const bool more = !text_response_left_.empty();
  text_ttt_ = more ? next_ttt_++ : kReservedTag;
  Send(protocol::EncodeTextResponse(t.itt, text_ttt_, !more, more, std::move(part), NextStatus()));
}

void Connection::OnLogout(const Pdu& pdu) {
  const protocol::LogoutRequestPdu l = protocol::DecodeLogoutRequest(pdu);
  if (l.reason > 2) {
    Reject(protocol::RejectReason::kInvalidPduField, pdu);
    return;
  }
  uint8_t response = 0;  // closed successfully
  if (l.reason != 0 && l.cid != cid_)
    response = 1;  // CID not found
  else if (l.reason == 2)
    response = 2;  // connection recovery not supported
  pending_logout_itt_ = l.itt;
  pending_logout_response_ = response;
  if (response == 0) {
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      it = it->second.executing ? std::next(it) : tasks_.erase(it);
    }
  }
  MaybeFinishLogout();
}

void Connection::MaybeFinishLogout() {
  if (!pending_logout_itt_) return;
  if (pending_logout_response_ == 0) {
    for (const auto& [itt, t] : tasks_) {
      if (t.executing) return;  // answer once in-flight storage work is done
    }
  }
  Send(
      protocol::EncodeLogoutResponse(*pending_logout_itt_, pending_logout_response_, NextStatus()));
  if (pending_logout_response_ == 0) {
    CloseAfterFlush();
    if (!discovery_ && target_ != nullptr) {
      UNTORN_LOG_INFO("session ", tsih_, " of ", nexus_.initiator, " logged out");
    }
  }
  pending_logout_itt_.reset();
}

}  // namespace untorn::target
