// One SCSI logical unit: a direct-access block device (SBC-4) over a storage::BlockStore.
//
// Commands go through one table (kCommands in logical_unit.cc) and one place for the shared
// checks (Prepare): CDB length and CONTROL byte, pending unit attentions, reservations, write
// protection. Each command then has a Validate step (before data transfer, on the connection's
// executor: cheap, no I/O) and a Run step (on a storage pool thread: may block on I/O).
//
// Thread-safety: all public methods may be called from any thread. Mutable SCSI state (mode
// parameters, unit attentions, reservations) is guarded by state_mu_; storage is thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "protocol/byte_order.h"
#include "protocol/cdb.h"
#include "protocol/scsi_pages.h"
#include "storage/block_store.h"
#include "storage/file_system.h"
#include "target/metrics.h"
#include "target/scsi/persistent_reservations.h"
#include "target/scsi/scsi_task.h"

namespace untorn::target {

class LogicalUnit {
 public:
  LogicalUnit(const config::Lun& lun, const std::string& target_iqn,
              std::unique_ptr<storage::BlockStore> store, Metrics* metrics);

  [[nodiscard]] uint16_t id() const { return id_; }
  // What INQUIRY and READ CAPACITY describe, with the capacity as it is now.
  [[nodiscard]] protocol::DiskDescription Describe() const;
  [[nodiscard]] uint64_t BlockCount() const { return block_count_.load(); }
  // A command of this LU was answered `d` after it arrived (untorn_command_latency_seconds).
  void RecordLatency(std::chrono::nanoseconds d) { latency_.Observe(d); }
  [[nodiscard]] bool WriteCacheEnabled() const { return write_cache_.load(); }
  [[nodiscard]] storage::BlockStore& store() const { return *store_; }

  // Changes the capacity to `bytes` (a multiple of the block size): growing always, shrinking
  // only with `allow_shrink` (the blocks past the new end are lost). The store is resized
  // first (it waits for the I/O in flight), then READ CAPACITY answers the new size and every
  // I_T nexus gets CAPACITY DATA HAS CHANGED (2Ah/09h). Blocks: run it off the network threads.
  [[nodiscard]] storage::Status Resize(uint64_t bytes, bool allow_shrink);

  // Shared checks + the command's own validation. Never blocks.
  [[nodiscard]] CommandPlan Prepare(const Nexus& nexus, protocol::Bytes cdb);
  // Performs a prepared command with its data-out bytes. May block on storage. With kMayMap,
  // a READ of at least kMappedReadMin bytes may answer with ScsiOutcome::mapped_in (the
  // store's mapping, locked until released) rather than a copy: for a caller that sends it
  // without touching it and without waiting on the initiator while it holds it.
  enum class DataInMode { kCopy, kMayMap };
  static constexpr uint64_t kMappedReadMin = 128 << 10;
  [[nodiscard]] ScsiOutcome Execute(const Nexus& nexus, protocol::Bytes cdb,
                                    std::vector<uint8_t> data_out,
                                    DataInMode mode = DataInMode::kCopy);
  // Starts a prepared command without blocking the caller, where it can: a READ of up to
  // 128 KiB whose blocks are cached and not being written atomically is answered here; a WRITE
  // or WRITE ATOMIC of up to 128 KiB whose blocks no other write holds is copied to the page
  // cache here and completes once durable, from the store's own thread
  // (BlockStore::TryStartWrite). Returns false, having taken nothing, when the command must be
  // Executed on a thread that may block; otherwise `done` runs exactly once, before or after
  // this returns, and `data_out` has been taken. Lets the network thread run the common
  // commands without a hand-off to the storage pool.
  using Completion = std::function<void(ScsiOutcome)>;
  [[nodiscard]] bool TryStart(const Nexus& nexus, protocol::Bytes cdb,
                              std::vector<uint8_t>& data_out, const Completion& done);

  // Task management and nexus life cycle.
  void Reset(const Nexus& by);         // LOGICAL UNIT RESET / target reset: UA to every other nexus
  void NexusLost(const Nexus& nexus);  // session ended: drops RESERVE(6) reservations it held
  void AddNexus(const Nexus& nexus);   // new I_T nexus: POWER ON/RESET unit attention pending
  // Unit attention to every nexus except `except` (0 = all).
  void EstablishUnitAttention(const protocol::Sense& s, uint64_t except);

  // Persistent reservations asked to survive power loss (APTPL) are kept in `path`, beside the
  // LUN, written atomically before PERSISTENT RESERVE OUT answers GOOD. Loads what the file
  // holds (its registrations wait for their I_T nexus to log in again); an error when it cannot
  // be read or understood: the LUN must not serve without the fencing it promised. At start,
  // before any nexus.
  [[nodiscard]] storage::Status KeepReservationsIn(std::string path,
                                                   storage::FileSystem* fs = nullptr);

  // The LUN numbers of the target this LU belongs to (REPORT LUNS); set again when LUNs are
  // added or removed.
  void SetTargetLuns(std::vector<uint16_t> luns);

  // Waits for the writes TryStart began, then makes all cached writes durable (shutdown).
  storage::Status Flush();
  ~LogicalUnit();

  // Command table entry (public so the table can live in the .cc file).
  struct Command;

 private:
  // Validation (no I/O) returns nullopt to go on, or the outcome to answer with.
  using Validator = std::optional<ScsiOutcome> (LogicalUnit::*)(const Nexus&, protocol::Bytes,
                                                                CommandPlan&);
  using Runner = ScsiOutcome (LogicalUnit::*)(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  friend struct Command;

  [[nodiscard]] static std::span<const Command> Commands();
  [[nodiscard]] const Command* Find(protocol::Bytes cdb) const;
  [[nodiscard]] std::optional<protocol::Sense> TakeUnitAttention(uint64_t nexus_id);
  [[nodiscard]] storage::Durability DurabilityFor(bool fua) const;
  [[nodiscard]] std::optional<ScsiOutcome> CheckLbaRange(uint64_t lba, uint64_t blocks) const;
  void Count(const Command& c, const ScsiOutcome& o);

  // --- SPC handlers (spc_commands.cc) ---
  ScsiOutcome RunTestUnitReady(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidateInquiry(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunInquiry(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunReportLuns(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunRequestSense(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunReadCapacity10(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunServiceActionIn16(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidateModeSense(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunModeSense(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidateModeSelect(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunModeSelect(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidateStartStopUnit(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunNothing(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidateMaintenanceIn(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunMaintenanceIn(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidatePreventAllow(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunReserve6(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunRelease6(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidatePrOut(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunPrIn(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunPrOut(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::vector<uint8_t> ModePages(uint8_t pc, uint8_t page, uint8_t subpage, bool* ok) const;
  std::vector<uint8_t> SupportedOpcodes(protocol::Bytes cdb, std::optional<ScsiOutcome>* err) const;

  // --- SBC handlers (sbc_commands.cc) ---
  std::optional<ScsiOutcome> ValidateBlockCommand(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunRead(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> RunMappedRead(protocol::Bytes cdb);  // nullopt: RunRead instead
  ScsiOutcome ReadOutcome(const storage::Status& s, DataInBuffer data);
  // The answer to a write of `bytes` that ended with `s`, counted in the byte metrics.
  ScsiOutcome WriteOutcome(const storage::Status& s, size_t bytes, storage::WriteKind kind);
  ScsiOutcome RunWrite(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunWriteAtomic(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunWriteAndVerify(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunVerify(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunOrWrite(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunCompareAndWrite(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunWriteSame(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunSynchronizeCache(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunPreFetch(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidateUnmap(const Nexus&, protocol::Bytes, CommandPlan&);
  ScsiOutcome RunUnmap(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  ScsiOutcome RunGetLbaStatus(const Nexus&, protocol::Bytes, std::vector<uint8_t>&);
  std::optional<ScsiOutcome> ValidateWriteAtomic32(const Nexus&, protocol::Bytes, CommandPlan&);
  std::optional<ScsiOutcome> ValidateAtomicLimits(const protocol::BlockCdb& c) const;

  const uint16_t id_;
  protocol::DiskDescription disk_;        // disk_.block_count is the capacity at start; see below
  std::atomic<uint64_t> block_count_{0};  // the capacity now (Resize)
  std::mutex resize_mu_;                  // one Resize at a time
  const std::unique_ptr<storage::BlockStore> store_;
  Metrics* const metrics_;
  const Metrics::Labels labels_;
  // untorn_scsi_commands_total{outcome="good"} per row of Commands(), resolved on first use so
  // the common case costs one atomic add, not a label-map lookup.
  std::unique_ptr<std::atomic<std::atomic<int64_t>*>[]> good_counters_;
  // Byte and atomic-write counters, resolved once.
  std::atomic<int64_t>& read_bytes_;
  std::atomic<int64_t>& written_bytes_;
  std::atomic<int64_t>& atomic_writes_;
  std::atomic<int64_t>& atomic_bytes_;
  Metrics::Histogram& latency_;
  std::atomic<bool> write_cache_;
  // Writes started by TryStart and not yet completed: Flush and the destructor wait for them.
  std::mutex started_mu_;
  std::condition_variable started_cv_;
  int started_writes_ = 0;             // guarded by started_mu_
  std::vector<uint16_t> target_luns_;  // guarded by state_mu_

  std::mutex state_mu_;
  std::map<uint64_t, std::deque<protocol::Sense>> unit_attentions_;  // guarded by state_mu_
  std::optional<uint64_t> reserve6_holder_;                          // guarded by state_mu_
  PersistentReservations pr_;                                        // guarded by state_mu_
  std::map<uint64_t, std::string> transport_ids_;                    // guarded by state_mu_
  std::string pr_path_;  // where APTPL state is kept; empty: nowhere (set at start)
  storage::FileSystem* pr_fs_ = nullptr;  // set at start
};

// Maps a storage failure to the SCSI answer (SBC-4 §4.18); the one place this happens.
[[nodiscard]] ScsiOutcome OutcomeFromStorage(const storage::Status& s, bool writing);

}  // namespace untorn::target
