// One iSCSI connection and, since this target negotiates MaxConnections=1, its session.
//
// Executor: everything in this class runs on the connection's strand (the socket's executor),
// except Stop() and in_flight(), which any thread may call. Storage work is posted to the
// server's storage pool and its completion is posted back to the strand.
//
// Structure (after the Asio examples): a reader coroutine that frames PDUs (header digest and
// data digest checked here) and dispatches them; a writer coroutine that drains an outbound
// queue; a keep-alive coroutine that pings an idle initiator with NOP-In. Errors are handled at
// three levels, each converted to the next in one place: connection-fatal (close), Reject PDU,
// and SCSI CHECK CONDITION (from the logical unit).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "protocol/framing.h"
#include "protocol/negotiation.h"
#include "protocol/pdu.h"
#include "target/asio.h"
#include "target/iscsi/buffer_budget.h"
#include "target/iscsi/login.h"
#include "target/iscsi/server_context.h"
#include "target/scsi/scsi_task.h"

namespace untorn::target {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = boost::asio::ip::tcp::socket;

  Connection(Socket socket, ServerContext ctx, uint64_t id);
  ~Connection();

  void Start();
  // Closes the socket and abandons queued work; in-flight storage work completes and is dropped.
  void Stop();
  [[nodiscard]] int in_flight() const { return in_flight_.load(); }
  // A task management function of another session reset `lu` (nullptr: every LU of the
  // target), or ends the session (TARGET COLD RESET): this session's tasks for it end without
  // a response (SAM-5: aborted by another I_T nexus; the unit attention tells the initiator),
  // commands held behind a CmdSN gap for it included. Any thread: posted to the strand.
  void AbortForReset(const TargetRuntime* target, const LogicalUnit* lu, bool close);
  // The per-address slot Server admitted this connection with; given back when it ends.
  void HoldAddressSlot(ConnectionLimits::Slot slot) { address_slot_.emplace(std::move(slot)); }
  // Closed: no task of this connection will be dispatched from now on (any thread).
  [[nodiscard]] bool closed() const { return closed_.load(); }
  // The initiator's "address:port" (any thread: set before Start).
  [[nodiscard]] const std::string& peer() const { return peer_; }

 private:
  struct R2tState {
    uint32_t offset = 0, length = 0, received = 0, next_data_sn = 0;
  };
  // A SCSI task from command to response. Lives in tasks_ (keyed by ITT).
  struct Task {
    uint64_t serial = 0;
    std::chrono::steady_clock::time_point arrived;  // its Command PDU, for the latency metric
    uint32_t itt = 0, cmd_sn = 0, edtl = 0;
    uint64_t lun_field = 0;
    bool read = false, write = false;
    std::shared_ptr<LogicalUnit> lu;  // held: a LUN removed meanwhile lives until its tasks end
    std::vector<uint8_t> cdb;
    uint32_t spdtl = 0;             // data-out bytes the CDB asks for
    uint32_t want = 0;              // data-out bytes to collect: SPDTL, or less if EDTL is
    std::vector<uint8_t> data;      // data-out collected, `want` bytes
    uint32_t received = 0;          // bytes of [0, want) received
    uint32_t unsolicited_end = 0;   // initiator sends [0, unsolicited_end) without R2T
    bool unsolicited_open = false;  // unsolicited Data-Out PDUs still to come
    uint32_t unsolicited_data_sn = 0;
    uint32_t unsolicited_next = 0;  // offset the next unsolicited Data-Out must start at
    uint32_t next_r2t_offset = 0, r2t_sn = 0;
    std::map<uint32_t, R2tState> r2ts;  // outstanding, by TTT
    bool executing = false, aborted = false;
    BufferBudget::Charge buffers;  // data-out and data-in this task may hold
    // Since when it waits for Data-Out (its command, or the last Data-Out that came for it).
    std::chrono::steady_clock::time_point data_wait_since;
  };
  // A command held behind a CmdSN gap, its data segment charged to the session's budget.
  struct Held {
    protocol::Pdu pdu;
    BufferBudget::Charge charge;
  };
  // Data-in of one task, shared by its Data-In PDUs until the last is written; holds the
  // task's buffer charge until then. Either `bytes`, or `mapped`: the store's mapping of the
  // blocks, locked against writes while it is held, and so held only while the socket takes
  // what is sent without waiting (WriteLoop); else copied into `bytes` and released (Unmap).
  struct Payload {
    DataInBuffer bytes;
    std::shared_ptr<storage::MappedRead> mapped;
    BufferBudget::Charge buffers;
    [[nodiscard]] const uint8_t* data() const {
      return mapped ? mapped->bytes().data() : bytes.data();
    }
  };
  // One PDU queued for the socket: `head` (the whole PDU, or the part before a data segment
  // sent in place from `payload`), the data segment, then `tail` (padding, data digest).
  struct Outbound {
    std::vector<uint8_t> head;
    std::shared_ptr<Payload> payload;
    uint32_t offset = 0, length = 0;
    std::array<uint8_t, 3 + protocol::kDigestLength> tail{};
    size_t tail_length = 0;
    [[nodiscard]] size_t wire_bytes() const { return head.size() + length + tail_length; }
  };
  struct PendingTmf {
    uint32_t itt = 0;
    protocol::TmfResponse response = protocol::TmfResponse::kComplete;
    std::set<uint64_t> waiting;  // serials of executing tasks being aborted
    bool close_after = false;
  };

  // --- Socket I/O (connection_io.cc) ---
  boost::asio::awaitable<void> ReadLoop();
  boost::asio::awaitable<void> WriteLoop();
  boost::asio::awaitable<void> KeepAlive();
  // Once a second: ends a connection that holds resources without using them (an idle
  // discovery session, a CmdSN gap, withheld Data-Out).
  boost::asio::awaitable<void> Watchdog();
  // Ends a connection holding resources it does not use: logs `why`, counts
  // untorn_connections_ended_total{reason}, closes.
  void EndUnused(const char* reason, const std::string& why);
  boost::asio::awaitable<void> LoginTimeout();
  // Fills `out` from the receive buffer, reading the socket as needed.
  boost::asio::awaitable<void> Receive(std::span<uint8_t> out);
  // Reads one PDU; returns false when the connection must close.
  boost::asio::awaitable<bool> ReadPdu(protocol::Pdu& pdu, bool* data_digest_ok);
  void Send(const protocol::Pdu& pdu);
  // Sends `header` with [offset, offset + length) of `payload` as its data segment, no copy.
  void SendData(const protocol::Pdu& header, std::shared_ptr<Payload> payload, uint32_t offset,
                uint32_t length);
  void Enqueue(Outbound out);  // queues for the WriteLoop, counting out_bytes_
  // Writes what the socket takes of `buffers` now; returns how many bytes (all of them, or
  // fewer when the socket is full). Throws on a failed write.
  size_t WriteWithoutWaiting(const std::vector<boost::asio::const_buffer>& buffers);
  // Copies a mapped payload into its own bytes and releases the mapping; false (the connection
  // closed) if the copy failed.
  bool Unmap(Payload& p);
  bool UnmapQueued(std::vector<Outbound>& batch);  // Unmap of each payload in batch and queue

  // --- Closing, sequence numbers, Reject (connection.cc) ---
  void CloseAfterFlush();
  void Close(const std::string& why);
  [[nodiscard]] protocol::SeqNumbers NextStatus();  // consumes a StatSN
  [[nodiscard]] protocol::SeqNumbers PeekStatus() const;
  void Reject(protocol::RejectReason reason, const protocol::Pdu& pdu);
  void UpdateWindow();

  // --- Login and session-level PDUs (connection.cc) ---
  boost::asio::awaitable<bool> OnLoginPdu(protocol::Pdu& pdu);
  void OnFullFeaturePdu(protocol::Pdu& pdu);
  void Process(protocol::Pdu& pdu);  // after the CmdSN check
  // Returns false if the PDU is outside the CmdSN window (dropped) or queued for later.
  bool AcceptCmdSn(protocol::Pdu& pdu);
  void OnNopOut(const protocol::Pdu& pdu);
  void OnText(const protocol::Pdu& pdu);
  void OnLogout(const protocol::Pdu& pdu);
  void MaybeFinishLogout();
  [[nodiscard]] std::vector<uint8_t> SendTargets(const std::string& which) const;

  // --- SCSI tasks (scsi_tasks.cc) ---
  void OnScsiCommand(const protocol::Pdu& pdu);
  void OnDataOut(const protocol::Pdu& pdu);
  void IssueR2ts(Task& t);
  void MaybeDispatch(Task& t);
  void Dispatch(Task& t);
  void Complete(uint32_t itt, uint64_t serial, ScsiOutcome outcome);
  // Answers `t` with `o`; `buffers` (the task's charge) is held until the data-in is sent.
  void SendScsiResult(const Task& t, ScsiOutcome o, BufferBudget::Charge buffers = {});
  [[nodiscard]] ScsiOutcome NoSuchLun(const std::vector<uint8_t>& cdb) const;
  void OnTaskManagement(const protocol::Pdu& pdu);
  void AbortTasks(PendingTmf& tmf, const std::function<bool(const Task&)>& match);
  // Drops the commands held behind a CmdSN gap that `match` (by their LUN field) names; their
  // CmdSNs count as received (the window moves on).
  void DropHeld(const std::function<bool(uint64_t lun_field)>& match);
  // The other sessions of this target: AbortForReset on each.
  void ResetOtherSessions(const LogicalUnit* lu, bool close);
  void MaybeAnswerTmfs();
  void EndSession();

  Socket socket_;
  ServerContext ctx_;
  // This session's share of the daemon-wide buffer budget (ctx_.buffers its parent). Declared
  // before everything that holds a charge on it, so it outlives them.
  BufferBudget session_buffers_;
  const uint64_t id_;
  std::string peer_;
  std::string local_;
  boost::asio::steady_timer write_signal_;
  boost::asio::steady_timer keepalive_timer_;
  boost::asio::steady_timer watchdog_timer_;  // Watchdog's tick; cancelled by Close
  boost::asio::steady_timer login_timer_;
  std::vector<uint8_t> rx_;           // receive buffer (kReceiveBuffer bytes once reading starts)
  size_t rx_begin_ = 0, rx_end_ = 0;  // its unconsumed bytes
  std::deque<Outbound> out_queue_;
  // The WriteLoop waits for room in the socket: payloads queued meanwhile are not kept mapped.
  bool socket_full_ = false;
  // Bytes queued for the socket and not yet written (a whole batch counts until it is). Past
  // kMaxQueuedOutput the read loop stops taking PDUs until the initiator reads its answers.
  size_t out_bytes_ = 0;
  boost::asio::steady_timer drained_signal_;  // cancelled when out_bytes_ falls back under
  // Last completed socket write, or when output was queued after none was waiting.
  std::chrono::steady_clock::time_point last_tx_;
  bool stopped_ = false;
  bool close_after_flush_ = false;
  std::atomic<int> in_flight_{0};
  // Stop() was called: no new task is dispatched (a reinstating session waits for the old one's
  // tasks, and must not see one start after it looked).
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> closed_{false};
  std::optional<ConnectionLimits::Slot> address_slot_;    // set before Start, then unchanged
  std::optional<ConnectionLimits::Slot> discovery_slot_;  // a discovery session's; strand
  std::chrono::steady_clock::time_point last_text_;       // discovery: last Text Request; strand

  // Login / session state.
  std::unique_ptr<Login> login_;
  bool full_feature_ = false;
  bool discovery_ = false;
  std::shared_ptr<TargetRuntime> target_;  // held: a target removed meanwhile lives on for it
  Nexus nexus_;
  uint16_t tsih_ = 0;
  uint16_t cid_ = 0;
  protocol::SessionParams params_;
  bool header_digest_ = false, data_digest_ = false;  // in force on the wire now
  uint32_t stat_sn_ = 0;
  uint32_t exp_cmd_sn_ = 0, max_cmd_sn_ = 0;
  std::map<uint32_t, Held> held_commands_;           // CmdSN gaps: later commands wait here
  std::chrono::steady_clock::time_point gap_since_;  // held_commands_ became non-empty then
  std::map<uint32_t, Task> tasks_;
  // CmdSNs an ABORT TASK declared received before they arrived (RFC 7143 §11.5.1 a): each is
  // dropped if it comes, and ExpCmdSN steps over it when it is next.
  std::set<uint32_t> aborted_cmd_sns_;
  uint64_t next_serial_ = 1;
  std::array<std::atomic<int64_t>*, 256> command_counters_{};  // by SCSI opcode, on first use
  uint32_t next_ttt_ = 1;
  std::vector<PendingTmf> pending_tmfs_;
  std::optional<uint32_t> pending_logout_itt_;
  uint8_t pending_logout_response_ = 0;

  // Text continuation (RFC 7143 §11.10.1): response bytes not yet sent.
  std::vector<uint8_t> text_request_;
  std::vector<uint8_t> text_response_left_;
  uint32_t text_ttt_ = protocol::kReservedTag;

  // Session admission (set by Login's admit callback).
  std::shared_ptr<Connection> replaced_;
  uint64_t admitted_nexus_ = 0;
  std::shared_ptr<SessionCounters> counters_;  // the registry's, for the control interface

  // Keep-alive.
  std::chrono::steady_clock::time_point last_rx_;
  std::optional<std::chrono::steady_clock::time_point> ping_sent_;
};

}  // namespace untorn::target
