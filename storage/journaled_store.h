// The crash-atomic backing store: a plain data file (any tool can read it) plus a write-ahead
// journal and a superblock beside it (docs/journal-format.md).
//
// - WriteAtomic appends one checksummed record, waits for group commit to make it (and every
//   earlier record) durable, then applies it to the data file. Records are written through
//   FileSystem::OpenLog: kept in memory, written straight to the device by the group commit. An
//   exclusive LBA range lock is held from before the append until after the apply, so overlapping
//   reads see all old or all new data, and overlapping writes are ordered.
// - Plain writes go straight to the data file, unless they overlap a range journaled since the
//   last checkpoint: then they are journaled too, so replay can never revert them.
// - Durable plain writes (FUA, or write cache off) and Flush share a group-committed fdatasync
//   of the data file.
// - The journal is circular. A background checkpoint (or a writer that finds the journal full)
//   notes the last record reserved, waits until that record and all before it are applied,
//   syncs the data file (written back a window of ranges at a time first, so the journal's
//   group commits do not queue behind all of it) and writes the superblock (temp file + fsync +
//   rename + directory fsync) naming that record and where the next one starts; the space before it
//   is then reused. Appends go on while a checkpoint runs; only a full journal makes writers wait.
// - Open() recovers before anything is served: replays the records of the superblock's epoch in
//   sequence order from the superblock's start offset, stops at the first torn, corrupt, stale
//   or out-of-sequence record, syncs, and starts a new epoch with an empty journal.
// - A failed write or sync is sticky: every later write is refused until restart, with the
//   first failure named. Out of space is not: the write is refused and nothing else changes.
// - A durable record whose apply to the data file fails is never retired: its blocks read as
//   an unrecovered read error, and no write goes over them, until it is applied again (out of
//   space: by the next write or the background thread once there is room) or, after a sticky
//   failure, replayed at the next start.
//
// Thread-safe: the target calls it from its storage pool.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storage/block_store.h"
#include "storage/file_system.h"
#include "storage/group_sync.h"
#include "storage/journal_format.h"
#include "storage/range_lock.h"

namespace untorn::storage {

class JournaledStore final : public BlockStore {
 public:
  struct RecoveryReport {
    uint64_t records_replayed = 0;
    uint64_t bytes_replayed = 0;
    uint64_t first_sequence = 0, last_sequence = 0;
    uint64_t epoch = 0;       // epoch after recovery
    std::string stop_reason;  // why the scan stopped
    double seconds = 0;
  };
  struct Options {
    std::string data_path;  // journal and superblock: data_path + ".journal" / ".super"
    uint64_t size_bytes = 0;
    uint32_t block_size = 512;
    bool read_only = false;
    // Thick provisioning: reserve the whole data file at Open, so a full file system shows
    // then and not in the middle of a run. Thin stores reserve each journaled write's range.
    bool preallocate = false;
    uint64_t journal_bytes = 64ull << 20;
    FileSystem* fs = nullptr;  // default: the real file system
    bool background_checkpoint = true;
    double checkpoint_fill = 0.5;  // checkpoint in the background beyond this fill
    // Called during recovery, at most once per progress_interval, with what has been replayed
    // so far (records_replayed, bytes_replayed, seconds): a large journal takes a while.
    std::function<void(const RecoveryReport&)> on_progress;
    std::chrono::milliseconds progress_interval{1000};
  };

  static Status Open(const Options& options, std::unique_ptr<JournaledStore>* out,
                     RecoveryReport* report);
  ~JournaledStore() override;

  [[nodiscard]] uint32_t block_size() const override { return options_.block_size; }
  [[nodiscard]] uint64_t size_bytes() const override { return size_bytes_.load(); }
  Status Read(uint64_t offset, std::span<uint8_t> out) override;
  [[nodiscard]] std::unique_ptr<MappedRead> ReadMapped(uint64_t offset, uint64_t length) override;
  [[nodiscard]] std::optional<Status> TryReadNoWait(uint64_t offset,
                                                    std::span<uint8_t> out) override;
  Status Write(uint64_t offset, std::span<const uint8_t> data, Durability d) override;
  Status WriteAtomic(uint64_t offset, std::span<const uint8_t> data, Durability d) override;
  [[nodiscard]] bool TryStartWrite(uint64_t offset, std::span<const uint8_t> data, WriteKind kind,
                                   Durability d, const WriteDone& done) override;
  Status Update(uint64_t offset, uint64_t length, const Modify& modify, Durability d) override;
  Status Flush() override;
  Status Unmap(uint64_t offset, uint64_t length, Durability d) override;
  [[nodiscard]] Extent Provisioning(uint64_t offset, uint64_t max_length) override;
  // Under an exclusive lock of the whole LUN: a checkpoint retires every record (none may name
  // blocks past a smaller end, and recovery checks records against the size) and the
  // superblock takes the new size; the data file is extended (reserved, if thick) before that,
  // or cut after it. A crash in between leaves a data file longer than the superblock's size,
  // which Open serves at that size.
  Status Resize(uint64_t new_size) override;

  // Applies nothing new; makes the journal empty (used at shutdown and by tests).
  Status Checkpoint();

  struct Stats {
    uint64_t journal_syncs = 0, journal_records = 0;  // group commit: records per sync
    uint64_t data_syncs = 0, data_sync_waiters = 0;
    uint64_t checkpoints = 0;
    uint64_t journal_wraps = 0;  // records placed at offset 0 because the end had no room
    uint64_t journal_used = 0, journal_size = 0;
  };
  [[nodiscard]] Stats stats();

  static std::string JournalPath(const std::string& data_path) { return data_path + ".journal"; }
  static std::string SuperPath(const std::string& data_path) { return data_path + ".super"; }

 private:
  JournaledStore(const Options& o, std::unique_ptr<File> data, std::unique_ptr<File> journal);
  Status Recover(const journal::Superblock& sb, RecoveryReport* report);
  Status WriteSuperblock(uint64_t epoch, uint64_t applied, uint64_t start);
  Status StartEpoch();  // at Open, nothing in flight: sync, next epoch, empty journal
  Status CheckRange(uint64_t offset, uint64_t length) const;
  Status CheckWritable(uint64_t offset, uint64_t length);
  // Where a journal record goes.
  struct Slot {
    uint64_t sequence = 0, epoch = 0, at = 0;
  };
  // Journal, make durable, apply. Caller holds the exclusive range lock.
  Status AppendAndApply(journal::RecordKind kind, uint64_t offset, std::span<const uint8_t> data);
  // The steps of AppendAndApply. ReserveLocked (mu_ held) takes journal space for a record of
  // `length` bytes at `offset` if there is room now; WriteRecord writes it and marks it
  // written for group commit; Apply, once it is durable (or failed), writes the data file.
  [[nodiscard]] Status CheckRecordSize(uint64_t length) const;
  bool ReserveLocked(uint64_t offset, uint64_t length, Slot* slot);
  Status WriteRecord(journal::RecordKind kind, const Slot& slot, uint64_t offset,
                     std::span<const uint8_t> data);
  Status Apply(const Slot& slot, uint64_t offset, std::span<const uint8_t> data, Status durable);
  Status WriteData(uint64_t offset, std::span<const uint8_t> data, Durability d);
  Status SyncData();  // a group-committed fdatasync of the data file; sticky on failure
  // Every write's first step: writable, in range, and no torn record left (RepairTorn).
  Status BeforeWrite(uint64_t offset, uint64_t length);
  // Applies the torn records again, in sequence order, each under its range's exclusive lock.
  Status RepairTorn();
  // An error if the range overlaps a torn record (the range lock held).
  Status CheckNotTorn(uint64_t offset, uint64_t length, bool writing);
  Status CheckpointLocked(std::unique_lock<std::mutex>& lk);
  [[nodiscard]] bool OverlapsJournaled(uint64_t offset, uint64_t length) const;  // mu_ held
  Status Fail(Status s);                    // sticky: remembers the first failure
  Status FailedEarlier(Status::Code code);  // what a failed store answers, naming that failure
  Status FailUnlessNoSpace(Status s);       // a failed write: sticky (Fail) unless out of space
  void BackgroundLoop();

  const Options options_;
  std::atomic<uint64_t> size_bytes_;  // options_.size_bytes until a Resize
  FileSystem* const fs_;
  const std::unique_ptr<File> data_;
  std::unique_ptr<File> journal_;  // set before the first append (Open), then unchanged
  uint64_t record_align_ = journal::kRecordAlign;  // set at Open: the journal's physical block
  RangeLock locks_;
  GroupSync data_sync_;
  std::unique_ptr<GroupSync> journal_sync_;
  std::atomic<bool> failed_{false};
  std::mutex failure_mu_;
  Status failure_;  // guarded by failure_mu_: the first sticky failure

  std::mutex mu_;
  std::condition_variable cv_;  // space freed, checkpoint done, in-flight drained
  uint64_t epoch_ = 0;          // guarded by mu_
  uint64_t last_sequence_ = 0;  // guarded by mu_: last sequence reserved
  // The live region of the circular journal: `used_` bytes from the record after the last
  // checkpoint up to `position_`, counting tails skipped when a record wrapped to offset 0.
  uint64_t position_ = 0;           // guarded by mu_: where the next record goes
  uint64_t used_ = 0;               // guarded by mu_
  std::set<uint64_t> unapplied_;    // guarded by mu_: sequences reserved, not yet applied
  bool checkpointing_ = false;      // guarded by mu_
  bool checkpoint_wanted_ = false;  // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  // Byte ranges [begin, end) of the LUN written by live records: plain writes to them are
  // journaled so replay cannot revert them. `retiring_` holds the ranges of the records a
  // running checkpoint retires, `journaled_` those of records reserved since it began.
  std::map<uint64_t, uint64_t> journaled_;  // guarded by mu_
  std::map<uint64_t, uint64_t> retiring_;   // guarded by mu_
  uint64_t checkpoints_ = 0;                // guarded by mu_
  uint64_t wraps_ = 0;                      // guarded by mu_
  // Records durable in the journal whose apply to the data file failed, by sequence: their
  // blocks are torn in the data file until RepairTorn applies them again (docs/journal-format.md).
  struct Torn {
    uint64_t offset;
    std::vector<uint8_t> data;
    Status why;
  };
  std::map<uint64_t, Torn> torn_;      // guarded by mu_; entries erased only by RepairTorn
  std::atomic<bool> has_torn_{false};  // !torn_.empty(), read without mu_ on the hot paths
  std::mutex repair_mu_;               // one RepairTorn at a time; taken before locks_ and mu_
  std::thread background_;
};

}  // namespace untorn::storage
