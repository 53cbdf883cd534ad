// SCSI tasks of a Connection: SCSI Command PDUs, data-out collection (immediate, unsolicited and
// R2T-solicited), dispatch to the storage pool, Data-In / SCSI Response with residuals, and
// task management. RFC 7143 §4.2.1, §11.3-11.8.
#include <algorithm>

#include "protocol/cdb.h"
#include "protocol/scsi_pages.h"
#include "protocol/serial_number.h"
#include "target/iscsi/connection.h"
#include "target/log.h"

namespace untorn::target {

namespace asio = boost::asio;
using protocol::kReservedTag;
using protocol::Pdu;
using protocol::ScsiStatus;
using protocol::TmfResponse;
namespace sense = protocol::sense;

void Connection::OnScsiCommand(const Pdu& pdu) {
  const auto cmd = protocol::DecodeScsiCommand(pdu);
  if (!cmd || cmd->itt == kReservedTag) {
    Reject(protocol::RejectReason::kInvalidPduField, pdu);
    return;
  }
  if (tasks_.count(cmd->itt) != 0) {
    Reject(protocol::RejectReason::kTaskInProgress, pdu);
    return;
  }
  const auto immediate = static_cast<uint32_t>(pdu.data.size());
  if (immediate > 0 &&
      (!cmd->write || !params_.immediate_data || immediate > params_.first_burst_length ||
       immediate > cmd->expected_length)) {
    Reject(protocol::RejectReason::kProtocolError, pdu);
    return;
  }
  Task t;
  t.arrived = std::chrono::steady_clock::now();
  t.serial = next_serial_++;
  t.itt = cmd->itt;
  t.cmd_sn = cmd->cmd_sn;
  t.edtl = cmd->expected_length;
  t.lun_field = cmd->lun;
  t.read = cmd->read;
  t.write = cmd->write;
  t.cdb = cmd->cdb;
  std::atomic<int64_t>*& counter = command_counters_[t.cdb[0]];
  if (counter == nullptr) {
    counter = &ctx_.metrics->Get(
        "untorn_iscsi_commands_total",
        {{"target", target_->config->iqn}, {"opcode", std::to_string(static_cast<int>(t.cdb[0]))}},
        "SCSI Command PDUs received, by SCSI opcode");
  }
  counter->fetch_add(1, std::memory_order_relaxed);

  if (tasks_.size() >= ctx_.config->limits.max_outstanding_commands) {
    SendScsiResult(t, ScsiOutcome::WithStatus(ScsiStatus::kTaskSetFull));
    return;
  }
  t.lu = target_->Find(protocol::DecodeLun(cmd->lun));
  if (t.lu == nullptr) {
    SendScsiResult(t, NoSuchLun(t.cdb));
    return;
  }
  const CommandPlan plan = t.lu->Prepare(nexus_, t.cdb);
  if (plan.done) {
    SendScsiResult(t, *plan.done);
    return;
  }
  t.spdtl = plan.data_out_length;
  t.want = t.spdtl;
  if (plan.length_mismatch && t.spdtl != (t.write ? t.edtl : 0)) {
    SendScsiResult(t, ScsiOutcome::Check(*plan.length_mismatch));
    return;
  }
  if (t.spdtl > 0 && (!t.write || t.edtl < t.spdtl)) {
    // The initiator sends less than the CDB asks for. Commands that can run on a whole-block
    // prefix do so (FCP-4 §9.4.2 a); the rest, and partial blocks, get INVALID FIELD IN
    // COMMAND INFORMATION UNIT with nothing transferred (§9.4.2 b). Both report the overflow.
    const uint32_t edtl = t.write ? t.edtl : 0;
    if (plan.truncation_unit == 0 || edtl % plan.truncation_unit != 0) {
      SendScsiResult(t, ScsiOutcome::Check({protocol::SenseKey::kIllegalRequest, 0x0e, 0x03}));
      return;
    }
    t.want = edtl;
  }
  // Charge this session's share of the daemon-wide buffer budget before any buffer is
  // allocated; past either, BUSY, and the commands already holding buffers finish undisturbed.
  const uint64_t buffer_bytes =
      std::max({t.want, plan.data_in_length, t.read ? t.edtl : uint32_t{0}});
  if (!session_buffers_.TryCharge(buffer_bytes, &t.buffers)) {
    ctx_.metrics->Add("untorn_buffer_busy_total", {{"target", target_->config->iqn}},
                      "Commands answered BUSY because the buffer budget was spent");
    SendScsiResult(t, ScsiOutcome::WithStatus(ScsiStatus::kBusy));
    return;
  }
  if (t.want > 0) {
    t.data_wait_since = std::chrono::steady_clock::now();
    t.data.resize(t.want);
    const uint32_t take = std::min(immediate, t.want);
    std::copy_n(pdu.data.begin(), take, t.data.begin());
    t.received = take;
    t.unsolicited_next = immediate;
    // FirstBurstLength is a maximum (§13.14): F on the command means no unsolicited Data-Out
    // follows, so what is not immediate is solicited from where the immediate data ended.
    t.unsolicited_end = params_.initial_r2t || cmd->final
                            ? immediate
                            : std::min(params_.first_burst_length, t.edtl);
    t.unsolicited_open = t.unsolicited_end > immediate;
    t.next_r2t_offset = std::min(immediate, t.want);
  }
  auto [it, inserted] = tasks_.emplace(t.itt, std::move(t));
  IssueR2ts(it->second);
  MaybeDispatch(it->second);
}

void Connection::IssueR2ts(Task& t) {
  // Not while unsolicited data may still come: where it ends is known only then, and R2T
  // offsets must not go back (DataSequenceInOrder=Yes, §13.20).
  if (t.unsolicited_open) return;
  while (t.next_r2t_offset < t.want && t.r2ts.size() < params_.max_outstanding_r2t) {
    const uint32_t len = std::min(params_.max_burst_length, t.want - t.next_r2t_offset);
    uint32_t ttt = next_ttt_++;
    if (ttt == kReservedTag) ttt = next_ttt_++;
    t.r2ts.emplace(ttt, R2tState{t.next_r2t_offset, len, 0, 0});
    Send(protocol::EncodeR2t({t.lun_field, t.itt, ttt, t.r2t_sn++, t.next_r2t_offset, len},
                             PeekStatus()));
    t.next_r2t_offset += len;
  }
}

void Connection::OnDataOut(const Pdu& pdu) {
  const protocol::DataOutPdu d = protocol::DecodeDataOut(pdu);
  auto it = tasks_.find(d.itt);
  if (it == tasks_.end() || it->second.executing || it->second.want == 0) {
    // A task already answered (e.g. refused before its data arrived) or aborted.
    UNTORN_LOG_DEBUG("connection ", id_, ": Data-Out for no waiting task, ITT ", d.itt);
    return;
  }
  Task& t = it->second;
  const auto len = static_cast<uint32_t>(pdu.data.size());
  // Data past EDTL, out of its sequence or for no R2T: a protocol error. At ERL 0 the task
  // cannot be recovered: the PDU is rejected and the task ends at once with ABORTED COMMAND
  // (DATA OFFSET ERROR or TOO MUCH WRITE DATA, SPC-4 annex D), so the session goes on.
  const auto protocol_error = [&](uint8_t ascq) {
    Reject(protocol::RejectReason::kProtocolError, pdu);
    const Task failed = std::move(t);
    tasks_.erase(it);
    SendScsiResult(failed, ScsiOutcome::Check({protocol::SenseKey::kAbortedCommand, 0x4b, ascq}));
  };
  constexpr uint8_t kTooMuchWriteData = 0x02;
  constexpr uint8_t kDataOffsetError = 0x05;
  if (d.buffer_offset > t.edtl || len > t.edtl - d.buffer_offset) {
    protocol_error(kTooMuchWriteData);
    return;
  }
  if (d.ttt == kReservedTag) {  // unsolicited
    // DataPDUInOrder=Yes (always negotiated here, RFC 7143 §13.19): each PDU starts where the
    // previous one (or the immediate data) ended; no gaps, no overlays.
    if (!t.unsolicited_open || d.buffer_offset != t.unsolicited_next ||
        d.buffer_offset + len > t.unsolicited_end || d.data_sn != t.unsolicited_data_sn) {
      protocol_error(kDataOffsetError);
      return;
    }
    ++t.unsolicited_data_sn;
    t.unsolicited_next += len;
    if (d.final || t.unsolicited_next == t.unsolicited_end) {
      // The unsolicited sequence ended, possibly short of FirstBurstLength: the rest is
      // solicited from here (§11.7.1).
      t.unsolicited_open = false;
      t.unsolicited_end = t.unsolicited_next;
      t.next_r2t_offset = std::min(t.unsolicited_next, t.want);
    }
  } else {
    auto r = t.r2ts.find(d.ttt);
    if (r == t.r2ts.end() || d.buffer_offset != r->second.offset + r->second.received ||
        d.buffer_offset + len > r->second.offset + r->second.length ||
        d.data_sn != r->second.next_data_sn) {
      protocol_error(kDataOffsetError);
      return;
    }
    ++r->second.next_data_sn;
    r->second.received += len;
    if (d.final || r->second.received >= r->second.length) t.r2ts.erase(r);
  }
  t.data_wait_since = std::chrono::steady_clock::now();  // progress: the Data-Out timeout restarts
  // Keep what falls inside [0, want); bytes past it (EDTL > SPDTL) are discarded.
  if (d.buffer_offset < t.want) {
    const uint32_t n = std::min(len, t.want - d.buffer_offset);
    std::copy_n(pdu.data.begin(), n, t.data.begin() + d.buffer_offset);
    t.received += n;
  }
  IssueR2ts(t);
  MaybeDispatch(t);
}

void Connection::MaybeDispatch(Task& t) {
  if (t.executing || t.received < t.want || !t.r2ts.empty() || t.next_r2t_offset < t.want) {
    return;
  }
  Dispatch(t);
}

void Connection::Dispatch(Task& t) {
  // A session being reinstated starts nothing more: the new one waits only for what is running.
  if (stop_requested_.load()) return;
  t.executing = true;
  in_flight_.fetch_add(1);
  // Completion is posted to this connection's strand, never called in place: callers still
  // hold `t`, and a durable write completes on the store's thread.
  const LogicalUnit::Completion done = [self = shared_from_this(), itt = t.itt,
                                        serial = t.serial](ScsiOutcome o) {
    asio::post(self->socket_.get_executor(), [self, itt, serial, o = std::move(o)]() mutable {
      self->in_flight_.fetch_sub(1);
      self->Complete(itt, serial, std::move(o));
    });
  };
  // Cached reads and small writes start here, without the storage pool.
  if (t.lu->TryStart(nexus_, t.cdb, t.data, done)) return;
  // Large reads are sent from the store's mapping where nothing here reads the bytes.
  const auto mode =
      data_digest_ ? LogicalUnit::DataInMode::kCopy : LogicalUnit::DataInMode::kMayMap;
  asio::post(*ctx_.storage_pool,
             [lu = t.lu, nexus = nexus_, cdb = t.cdb, data = std::move(t.data), done,
              mode]() mutable { done(lu->Execute(nexus, cdb, std::move(data), mode)); });
}

void Connection::Complete(uint32_t itt, uint64_t serial, ScsiOutcome outcome) {
  auto it = tasks_.find(itt);
  if (it == tasks_.end() || it->second.serial != serial) return;
  Task t = std::move(it->second);
  tasks_.erase(it);
  if (!t.aborted && !stopped_) SendScsiResult(t, std::move(outcome), std::move(t.buffers));
  for (auto& tmf : pending_tmfs_) tmf.waiting.erase(serial);
  MaybeAnswerTmfs();
  MaybeFinishLogout();
}

void Connection::SendScsiResult(const Task& t, ScsiOutcome o, BufferBudget::Charge buffers) {
  // Residuals (RFC 7143 §11.4.5): what the command moved (data-in it produced, or the data-out
  // its CDB asked for) against what the initiator expected (EDTL; nothing for data-in without R).
  const bool data_in = o.data_in_size() > 0;
  const uint32_t moved = data_in ? static_cast<uint32_t>(o.data_in_size()) : t.spdtl;
  const uint32_t expected = data_in && !t.read ? 0 : t.edtl;
  const bool overflow = moved > expected;
  const bool underflow = moved < expected;
  const uint32_t residual = overflow ? moved - expected : expected - moved;
  const uint32_t to_send = data_in && t.read ? std::min(moved, t.edtl) : 0;
  if (t.lu != nullptr) t.lu->RecordLatency(std::chrono::steady_clock::now() - t.arrived);
  if (counters_) {
    counters_->commands.fetch_add(1, std::memory_order_relaxed);
    counters_->bytes_read.fetch_add(to_send, std::memory_order_relaxed);
    counters_->bytes_written.fetch_add(t.received, std::memory_order_relaxed);
  }

  const bool collapse = o.status == ScsiStatus::kGood && !o.sense;
  uint32_t data_sn = 0;
  if (to_send > 0) {
    // The Data-In PDUs send slices of one buffer in place; it (and the charge) lives until the
    // last of them is written.
    const auto payload = std::make_shared<Payload>(
        Payload{std::move(o.data_in), std::move(o.mapped_in), std::move(buffers)});
    // PDUs of at most the initiator's MaxRecvDataSegmentLength, in sequences of at most
    // MaxBurstLength: F ends each sequence, DataSN runs on (RFC 7143 §11.7.1, §13.13).
    const uint32_t seg = params_.initiator_max_recv_data_segment;
    const uint32_t burst = params_.max_burst_length;
    for (uint32_t off = 0; off < to_send;) {
      const uint32_t n = std::min({seg, to_send - off, burst - off % burst});
      const bool last = off + n == to_send;
      protocol::DataIn d;
      d.itt = t.itt;
      d.lun = t.lun_field;
      d.data_sn = data_sn++;
      d.buffer_offset = off;
      d.final = last || (off + n) % burst == 0;
      if (last && collapse) {
        d.status = static_cast<uint8_t>(o.status);
        d.overflow = overflow;
        d.underflow = underflow;
        d.residual = residual;
        SendData(protocol::EncodeDataInHeader(d, n, NextStatus()), payload, off, n);
        return;
      }
      SendData(protocol::EncodeDataInHeader(d, n, PeekStatus()), payload, off, n);
      off += n;
    }
  }
  protocol::ScsiResponse r;
  r.itt = t.itt;
  r.status = static_cast<uint8_t>(o.status);
  r.overflow = overflow;
  r.underflow = underflow;
  r.residual = residual;
  r.exp_data_sn = data_sn;
  if (o.sense) r.sense = protocol::EncodeFixedSense(*o.sense);
  Send(protocol::EncodeScsiResponse(r, NextStatus()));
}

ScsiOutcome Connection::NoSuchLun(const std::vector<uint8_t>& cdb) const {
  // SPC-4 §4.6.19: INQUIRY answers with peripheral qualifier 011b, REPORT LUNS works, REQUEST
  // SENSE returns the sense, anything else gets LOGICAL UNIT NOT SUPPORTED.
  switch (cdb[0]) {
    case protocol::op::kInquiry: {
      std::vector<uint8_t> d(36, 0);
      d[0] = 0x7f;
      d[2] = 0x06;
      d[3] = 0x12;
      d[4] = 31;
      d.resize(std::min<size_t>(d.size(), protocol::LoadBe16(cdb, 3)));
      return ScsiOutcome::Data(std::move(d));
    }
    case protocol::op::kReportLuns: {
      auto d = protocol::ReportLuns(target_->LunIds());
      d.resize(std::min<size_t>(d.size(), protocol::LoadBe32(cdb, 6)));
      return ScsiOutcome::Data(std::move(d));
    }
    case protocol::op::kRequestSense: {
      auto d = protocol::EncodeFixedSense(sense::LunNotSupported());
      d.resize(std::min<size_t>(d.size(), cdb[4]));
      return ScsiOutcome::Data(std::move(d));
    }
    default:
      return ScsiOutcome::Check(sense::LunNotSupported());
  }
}

void Connection::AbortTasks(PendingTmf& tmf, const std::function<bool(const Task&)>& match) {
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    if (!match(it->second)) {
      ++it;
      continue;
    }
    if (it->second.executing) {  // storage work cannot be recalled: answer the TMF after it
      it->second.aborted = true;
      tmf.waiting.insert(it->second.serial);
      ++it;
    } else {
      it = tasks_.erase(it);
    }
  }
}

void Connection::OnTaskManagement(const Pdu& pdu) {
  const protocol::TmfRequestPdu req = protocol::DecodeTmfRequest(pdu);
  PendingTmf tmf;
  tmf.itt = req.itt;
  const uint16_t lun = protocol::DecodeLun(req.lun);
  const std::shared_ptr<LogicalUnit> lu = target_->Find(lun);
  const auto fn = static_cast<protocol::TmfFunction>(req.function);
  ctx_.metrics->Add("untorn_task_management_total",
                    {{"target", target_->config->iqn}, {"function", std::to_string(req.function)}},
                    "Task management requests, by function");
  switch (fn) {
    case protocol::TmfFunction::kAbortTask: {
      if (lu == nullptr) {
        tmf.response = TmfResponse::kLunDoesNotExist;
        break;
      }
      auto it = tasks_.find(req.referenced_tag);
      if (it == tasks_.end() || it->second.lun_field != req.lun) {
        // RFC 7143 §11.5.1 a/b: a command not received yet (RefCmdSN inside the window and
        // before this request) counts as received and aborted; anything else (e.g. a command
        // that already completed) does not exist.
        const uint32_t ref = req.ref_cmd_sn;
        using protocol::SerialLess;
        const bool pending = !SerialLess(ref, exp_cmd_sn_) && !SerialLess(max_cmd_sn_, ref) &&
                             SerialLess(ref, req.cmd_sn);
        if (pending) {
          held_commands_.erase(ref);
          aborted_cmd_sns_.insert(ref);
          tmf.response = TmfResponse::kComplete;
        } else {
          tmf.response = TmfResponse::kTaskDoesNotExist;
        }
        break;
      }
      AbortTasks(tmf, [&](const Task& t) { return t.itt == req.referenced_tag; });
      break;
    }
    case protocol::TmfFunction::kAbortTaskSet:
    case protocol::TmfFunction::kClearTaskSet:
    case protocol::TmfFunction::kLogicalUnitReset:
      if (lu == nullptr) {
        tmf.response = TmfResponse::kLunDoesNotExist;
        break;
      }
      AbortTasks(tmf, [&](const Task& t) { return t.lun_field == req.lun; });
      DropHeld([&](uint64_t lun_field) { return lun_field == req.lun; });
      if (fn == protocol::TmfFunction::kAbortTaskSet) break;  // this nexus's tasks only
      // CLEAR TASK SET and LOGICAL UNIT RESET end the tasks of every I_T nexus (SAM-5 §7.4,
      // §7.7); the others learn it from a unit attention.
      ResetOtherSessions(lu.get(), false);
      if (fn == protocol::TmfFunction::kLogicalUnitReset) {
        lu->Reset(nexus_);
      } else {
        lu->EstablishUnitAttention(protocol::sense::CommandsClearedByAnotherInitiator(), nexus_.id);
      }
      break;
    case protocol::TmfFunction::kTargetWarmReset:
    case protocol::TmfFunction::kTargetColdReset:
      AbortTasks(tmf, [](const Task&) { return true; });
      DropHeld([](uint64_t) { return true; });
      // Every session of the target; a cold reset also ends them all (RFC 7143 §11.5.1).
      ResetOtherSessions(nullptr, fn == protocol::TmfFunction::kTargetColdReset);
      for (const auto& l : target_->Luns()) l->Reset(nexus_);
      tmf.close_after = fn == protocol::TmfFunction::kTargetColdReset;
      break;
    case protocol::TmfFunction::kClearAca:
    case protocol::TmfFunction::kTaskReassign:
      tmf.response = fn == protocol::TmfFunction::kTaskReassign ? TmfResponse::kReassignNotSupported
                                                                : TmfResponse::kNotSupported;
      break;
    default:
      tmf.response = TmfResponse::kRejected;
      break;
  }
  pending_tmfs_.push_back(std::move(tmf));
  MaybeAnswerTmfs();
}

void Connection::DropHeld(const std::function<bool(uint64_t lun_field)>& match) {
  for (auto it = held_commands_.begin(); it != held_commands_.end();) {
    const uint64_t lun_field = protocol::LoadBe64(it->second.pdu.bhs, 8);
    if (it->second.pdu.RawOpcode() == static_cast<uint8_t>(protocol::Opcode::kScsiCommand) &&
        match(lun_field)) {
      aborted_cmd_sns_.insert(it->first);
      it = held_commands_.erase(it);
    } else {
      ++it;
    }
  }
}

void Connection::ResetOtherSessions(const LogicalUnit* lu, bool close) {
  for (const auto& other : ctx_.sessions->All()) {
    if (other.get() != this) other->AbortForReset(target_.get(), lu, close);
  }
}

void Connection::AbortForReset(const TargetRuntime* target, const LogicalUnit* lu, bool close) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), target, lu, close] {
    if (self->stopped_ || self->target_.get() != target) return;
    for (auto it = self->tasks_.begin(); it != self->tasks_.end();) {
      Task& t = it->second;
      if (lu != nullptr && t.lu.get() != lu) {
        ++it;
      } else if (t.executing) {
        t.aborted = true;  // finishes in storage; no response (Complete)
        ++it;
      } else {
        it = self->tasks_.erase(it);
      }
    }
    self->DropHeld([&](uint64_t lun_field) {
      return lu == nullptr || self->target_->Find(protocol::DecodeLun(lun_field)).get() == lu;
    });
    if (close) self->Close("target cold reset by another session");
  });
}

void Connection::MaybeAnswerTmfs() {
  while (!pending_tmfs_.empty() && pending_tmfs_.front().waiting.empty()) {
    const PendingTmf tmf = std::move(pending_tmfs_.front());
    pending_tmfs_.erase(pending_tmfs_.begin());
    Send(protocol::EncodeTmfResponse(tmf.itt, tmf.response, NextStatus()));
    if (tmf.close_after) CloseAfterFlush();
  }
}

}  // namespace untorn::target
