#include "storage/journaled_store.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <utility>
#include <vector>

#include "storage/file_store.h"
#include "storage/journal_scan.h"

namespace untorn::storage {

using journal::RecordKind;

namespace {

constexpr auto kCheckpointInterval = std::chrono::seconds(30);

// Adds [b, e) to disjoint ranges (start -> end), merging it with those it overlaps or touches.
void AddRange(std::map<uint64_t, uint64_t>& ranges, uint64_t b, uint64_t e) {
  auto it = ranges.upper_bound(b);
  if (it != ranges.begin() && std::prev(it)->second >= b) --it;
  while (it != ranges.end() && it->first <= e) {
    b = std::min(b, it->first);
    e = std::max(e, it->second);
    it = ranges.erase(it);
  }
  ranges[b] = e;
}

bool Overlaps(const std::map<uint64_t, uint64_t>& ranges, uint64_t offset, uint64_t length) {
  const uint64_t end = offset + length;
  auto it = ranges.upper_bound(offset);
  if (it != ranges.begin() && std::prev(it)->second > offset) return true;
  return it != ranges.end() && it->first < end;
}

// Groups sorted disjoint ranges into the windows a checkpoint writes back one after another,
// each covering about kWindowBytes of the ranges (whatever the gaps between them): enough
// dirty blocks at once to keep the device busy, few enough that the journal's group commits
// do not queue behind all of them. With 16 KiB random atomic writes over 1 GiB, windows of
// 1 MiB of ranges (8 MiB of file) against 256 KiB (2 MiB): p99 2.6-2.9 ms vs 3.9-4.2 ms.
std::vector<std::pair<uint64_t, uint64_t>> WriteBackWindows(
    const std::map<uint64_t, uint64_t>& ranges) {
  constexpr uint64_t kWindowBytes = 1ull << 20;
  std::vector<std::pair<uint64_t, uint64_t>> windows;
  uint64_t in_window = kWindowBytes;
  for (const auto& [b, e] : ranges) {
    if (in_window < kWindowBytes) {
      windows.back().second = e;
    } else {
      windows.emplace_back(b, e);
      in_window = 0;
    }
    in_window += e - b;
  }
  return windows;
}

// Whether the file at `path` is all zeros (or empty).
Status HoldsNothing(FileSystem& fs, const std::string& path, bool* empty) {
  std::unique_ptr<File> f;
  if (Status s = fs.Open(path, false, true, &f); !s.ok()) return s;
  const uint64_t size = f->Size();
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t at = 0; at < size; at += buf.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - at));
    if (Status s = f->PRead(at, std::span(buf).first(n)); !s.ok()) return s;
    if (std::any_of(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n),
                    [](uint8_t b) { return b != 0; })) {
      *empty = false;
      return Status::Ok();
    }
  }
  *empty = true;
  return Status::Ok();
}

}  // namespace

Status JournaledStore::Open(const Options& options, std::unique_ptr<JournaledStore>* out,
                            RecoveryReport* report) {
  const auto start = std::chrono::steady_clock::now();
  Options o = options;
  if (o.fs == nullptr) o.fs = PosixFileSystem();
  if (o.block_size == 0 || o.size_bytes == 0 || o.size_bytes % o.block_size != 0) {
    return Status::Error(Status::Code::kInvalid, "size must be a non-zero multiple of block size");
  }
  if (o.journal_bytes < 64 << 10 || o.journal_bytes % journal::kRecordAlign != 0) {
    return Status::Error(Status::Code::kInvalid,
                         "journal must be at least 64 KiB, in 512-byte units");
  }
  std::unique_ptr<File> data, jfile;
  if (Status s = o.fs->Open(o.data_path, true, o.read_only, &data); !s.ok()) return s;
  if (!o.read_only && data->Size() < o.size_bytes) {
    if (Status s = data->Truncate(o.size_bytes); !s.ok()) return s;
    if (Status s = data->Sync(); !s.ok()) return s;
  }
  if (!o.read_only && o.preallocate) {
    if (Status s = ReserveThick(*data, o.size_bytes); !s.ok()) return s;
  }
  // The superblock decides what the journal holds: without one, nothing in it is valid.
  journal::Superblock sb;
  const std::string super_path = SuperPath(o.data_path);
  bool have_super = false;
  if (o.fs->Exists(super_path)) {
    std::unique_ptr<File> f;
    if (Status s = o.fs->Open(super_path, false, true, &f); !s.ok()) return s;
    std::vector<uint8_t> b(journal::kSuperSize);
    if (Status s = f->PRead(0, b); !s.ok()) return s;
    std::string why;
    auto decoded = journal::DecodeSuperblock(b, &why);
    if (!decoded) return Status::Error(Status::Code::kIoError, super_path + ": " + why);
    if (decoded->lun_size != o.size_bytes || decoded->block_size != o.block_size) {
      return Status::Error(
          Status::Code::kInvalid,
          super_path + " belongs to a LUN of " + std::to_string(decoded->lun_size) + " bytes in " +
              std::to_string(decoded->block_size) + "-byte blocks; the configuration says " +
              std::to_string(o.size_bytes) + " in " + std::to_string(o.block_size));
    }
    sb = *decoded;
    have_super = true;
  }
  if (!have_super && o.fs->Exists(JournalPath(o.data_path))) {
    // Without its superblock nothing says which of the journal's records are live: starting a
    // new epoch over them could let a later recovery accept old ones, and dropping them could
    // lose acknowledged writes. A journal of zeros (a first start cut short) holds nothing.
    bool empty = false;
    if (Status s = HoldsNothing(*o.fs, JournalPath(o.data_path), &empty); !s.ok()) return s;
    if (!empty) {
      return Status::Error(
          Status::Code::kInvalid,
          JournalPath(o.data_path) + " holds records but " + super_path +
              " is missing, so they cannot be replayed safely; restore the superblock, or "
              "remove the journal to serve the data file as it is (its unapplied records are "
              "then lost)");
    }
  }
  if (!o.read_only || o.fs->Exists(JournalPath(o.data_path))) {
    if (Status s = o.fs->Open(JournalPath(o.data_path), true, o.read_only, &jfile); !s.ok()) {
      return s;
    }
  }
  std::unique_ptr<JournaledStore> store(new JournaledStore(o, std::move(data), std::move(jfile)));
  RecoveryReport local;
  RecoveryReport* r = report != nullptr ? report : &local;
  if (have_super) {
    if (Status s = store->Recover(sb, r); !s.ok()) return s;
    if (o.read_only && r->records_replayed > 0) {
      // The records are the LUN's own metadata: served without them, the data file could be
      // torn or missing acknowledged writes. Replay them (read-write), then serve read-only.
      const uint64_t pending = r->records_replayed;
      store.reset();
      Options rw = o;
      rw.read_only = false;
      rw.background_checkpoint = false;
      rw.preallocate = false;
      std::unique_ptr<JournaledStore> writer;
      Status s = Open(rw, &writer, r);
      if (s.ok()) s = writer->Checkpoint();
      if (!s.ok()) {
        return Status::Error(s.code(), "read-only LUN " + o.data_path + ": its journal holds " +
                                           std::to_string(pending) +
                                           " record(s) to replay before it can be served, and "
                                           "replaying needs its files writable: " +
                                           s.message());
      }
      writer.reset();
      RecoveryReport after;  // the journal is empty now
      s = Open(o, out, &after);
      r->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return s;
    }
  } else {
    r->stop_reason = "new journal";
    store->epoch_ = 0;
    store->last_sequence_ = 0;
  }
  if (!o.read_only) {
    if (store->journal_->Size() != o.journal_bytes) {
      // Written out, not sparse: appending into allocated blocks lets each group-commit
      // fdatasync flush data only, with no block allocation to commit.
      if (Status s = store->journal_->Truncate(0); !s.ok()) return s;
      const std::vector<uint8_t> zeros(1 << 20, 0);
      for (uint64_t at = 0; at < o.journal_bytes; at += zeros.size()) {
        const size_t n =
            static_cast<size_t>(std::min<uint64_t>(zeros.size(), o.journal_bytes - at));
        if (Status s = store->journal_->PWrite(at, {zeros.data(), n}); !s.ok()) return s;
      }
      if (Status s = store->journal_->Sync(); !s.ok()) return s;
    }
    // Records of the new epoch start on the journal device's physical blocks, so that a group
    // commit never rewrites (read-modify-write, tearable by a power cut) a block holding an
    // acknowledged record.
    store->record_align_ = std::clamp<uint64_t>(store->journal_->PhysicalBlockSize(),
                                                journal::kRecordAlign, journal::kMaxRecordAlign);
    if ((store->record_align_ & (store->record_align_ - 1)) != 0) {
      store->record_align_ = journal::kMaxRecordAlign;  // not a power of two: round up safely
    }
    // Start a new epoch: whatever the journal holds is now stale.
    if (Status s = store->StartEpoch(); !s.ok()) return s;
    // Appends from here on: records kept in memory until a group commit writes them, straight.
    std::unique_ptr<File> log;
    if (Status s = o.fs->OpenLog(JournalPath(o.data_path), &log); !s.ok()) return s;
    store->journal_ = std::move(log);
  }
  store->journal_sync_ =
      std::make_unique<GroupSync>(store->journal_.get(), store->last_sequence_ + 1);
  r->epoch = store->epoch_;
  r->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.background_checkpoint && !o.read_only) {
    store->background_ = std::thread([s = store.get()] { s->BackgroundLoop(); });
  }
  *out = std::move(store);
  return Status::Ok();
}

JournaledStore::JournaledStore(const Options& o, std::unique_ptr<File> data,
                               std::unique_ptr<File> journal)
    : options_(o),
      fs_(o.fs),
      data_(std::move(data)),
      journal_(std::move(journal)),
      data_sync_(data_.get()) {}

JournaledStore::~JournaledStore() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (background_.joinable()) background_.join();
  if (!options_.read_only && !failed_.load()) (void)Checkpoint();  // fast restart
}

Status JournaledStore::Recover(const journal::Superblock& sb, RecoveryReport* report) {
  epoch_ = sb.epoch;
  last_sequence_ = sb.applied_sequence;
  report->first_sequence = sb.applied_sequence + 1;
  if (journal_ == nullptr) {
    report->stop_reason = "no journal file";
    return Status::Ok();
  }
  journal::ScanResult scan;
  Status s = journal::Scan(
      *journal_, sb, options_.size_bytes,
      [&](const journal::RecordHeader& h, uint64_t, protocol::Bytes payload) {
        return options_.read_only ? Status::Ok() : data_->PWrite(h.offset, payload);
      },
      &scan);
  if (!s.ok()) return s;
  last_sequence_ = scan.last_sequence;
  report->records_replayed = scan.records;
  report->bytes_replayed = scan.bytes;
  report->last_sequence = scan.last_sequence;
  report->stop_reason = scan.stop_reason;
  if (scan.records > 0 && !options_.read_only) return data_->Sync();
  return Status::Ok();
}

Status JournaledStore::WriteSuperblock(uint64_t epoch, uint64_t applied, uint64_t start) {
  // Written to `.super.tmp`, then renamed over `.super`. The tmp file is made again at once,
  // already written, so that the next superblock goes into space the file system has given:
  // checkpoints (and a restart) still work when the file system is full.
  const std::string path = SuperPath(options_.data_path);
  const std::string tmp = path + ".tmp";
  journal::Superblock sb{epoch,
                         applied,
                         options_.journal_bytes,
                         options_.size_bytes,
                         options_.block_size,
                         start,
                         static_cast<uint32_t>(record_align_)};
  const std::vector<uint8_t> bytes = journal::EncodeSuperblock(sb);
  std::unique_ptr<File> f;
  if (Status s = fs_->Open(tmp, true, false, &f); !s.ok()) return s;
  if (f->Size() > bytes.size()) {
    if (Status s = f->Truncate(bytes.size()); !s.ok()) return s;
  }
  if (Status s = f->PWrite(0, bytes); !s.ok()) {
    if (s.code() != Status::Code::kIoError) return s;
    // The spare was being written when the power went and its sector cannot be read back to
    // be rewritten in part: start a new file instead.
    f.reset();
    if (Status r = fs_->Remove(tmp); !r.ok()) return r;
    if (Status r = fs_->Open(tmp, true, false, &f); !r.ok()) return r;
    if (Status r = f->PWrite(0, bytes); !r.ok()) return r;
  }
  if (Status s = f->Sync(); !s.ok()) return s;
  f.reset();
  if (Status s = fs_->Rename(tmp, path); !s.ok()) return s;
  if (Status s = fs_->SyncDir(path); !s.ok()) return s;
  // The spare. Without room for it the next superblock write tries again, as it would anyway.
  if (fs_->Open(tmp, true, false, &f).ok()) (void)f->PWrite(0, std::vector<uint8_t>(bytes.size()));
  return Status::Ok();
}

Status JournaledStore::StartEpoch() {
  // Every replayed record is in the data file; make that durable, then retire the journal.
  Status s = data_->Sync();
  if (s.ok()) s = WriteSuperblock(epoch_ + 1, last_sequence_, 0);
  if (!s.ok()) return Fail(s);
  std::lock_guard lk(mu_);
  ++epoch_;
  position_ = 0;
  used_ = 0;
  journaled_.clear();
  return Status::Ok();
}

Status JournaledStore::CheckpointLocked(std::unique_lock<std::mutex>& lk) {
  // One at a time. A caller that finds one running waits, then runs its own: records it
  // cares about may be newer than that one's snapshot.
  while (checkpointing_) cv_.wait(lk);
  checkpointing_ = true;
  const uint64_t applied = last_sequence_;
  const uint64_t start = position_;
  const uint64_t retired_bytes = used_;
  retiring_ = std::move(journaled_);
  journaled_.clear();
  cv_.wait(lk, [&] { return unapplied_.empty() || *unapplied_.begin() > applied; });
  if (failed_.load() || !torn_.empty()) {
    // A record up to `applied` failed to apply (or the store failed while this waited): the
    // superblock must not retire it. Nothing is retired; the records stay the journal's.
    for (const auto& [b, e] : retiring_) AddRange(journaled_, b, e);
    retiring_.clear();
    checkpointing_ = false;
    checkpoint_wanted_ = false;
    cv_.notify_all();
    if (!torn_.empty()) {
      const Status& why = torn_.begin()->second.why;
      return Status::Error(
          why.code() == Status::Code::kNoSpace ? Status::Code::kNoSpace : Status::Code::kReadOnly,
          "checkpoint held back: " + why.message());
    }
    return FailedEarlier(Status::Code::kReadOnly);
  }
  const uint64_t epoch = epoch_;
  const std::vector<std::pair<uint64_t, uint64_t>> windows = WriteBackWindows(retiring_);
  lk.unlock();
  // Records up to `applied` are in the data file; make that durable, then retire them. Appends
  // of later records go on meanwhile; their space is outside [old start, start). The retired
  // ranges are written back a window at a time first: one fdatasync of all of them would put
  // every dirty block in the device's queue at once, ahead of the journal's group commits.
  Status s = Status::Ok();
  for (const auto& [b, e] : windows) {
    if (s = data_->WriteBack(b, e - b); !s.ok()) break;
  }
  if (s.ok()) s = data_->Sync();
  if (s.ok()) s = WriteSuperblock(epoch, applied, start == options_.journal_bytes ? 0 : start);
  lk.lock();
  checkpointing_ = false;
  checkpoint_wanted_ = false;
  if (s.ok()) {
    used_ -= retired_bytes;
    retiring_.clear();
    ++checkpoints_;
  } else {
    // The old superblock and every record stand (out of space: tried again later; else the
    // store fails): nothing is retired, and the records go back to being the journal's, so that
    // a write still in flight over their blocks is journaled after them, never under them.
    for (const auto& [b, e] : retiring_) AddRange(journaled_, b, e);
    retiring_.clear();
  }
  cv_.notify_all();
  if (!s.ok()) return FailUnlessNoSpace(std::move(s));
  return Status::Ok();
}

Status JournaledStore::Checkpoint() {
  if (options_.read_only) return Status::Ok();
  if (failed_.load()) return FailedEarlier(Status::Code::kSyncFailed);
  std::unique_lock lk(mu_);
  return CheckpointLocked(lk);
}

void JournaledStore::BackgroundLoop() {
  std::unique_lock lk(mu_);
  auto last = std::chrono::steady_clock::now();
  while (!stopping_) {
    cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_ || checkpoint_wanted_; });
    if (stopping_) continue;
    if (failed_.load()) {
      checkpoint_wanted_ = false;  // nothing to do until restart; wake once a second, not spin
      continue;
    }
    if (has_torn_.load()) {
      // A record that found no room when applied: try again once a second, so that writes and
      // checkpoints resume by themselves once there is room.
      lk.unlock();
      const bool repaired = RepairTorn().ok();
      lk.lock();
      if (!repaired) {
        checkpoint_wanted_ = false;
        continue;
      }
    }
    const bool full =
        used_ > static_cast<uint64_t>(options_.journal_bytes * options_.checkpoint_fill);
    const bool old = used_ > 0 && std::chrono::steady_clock::now() - last > kCheckpointInterval;
    if (checkpoint_wanted_ || full || old) {
      (void)CheckpointLocked(lk);
      last = std::chrono::steady_clock::now();
    }
  }
}

Status JournaledStore::Fail(Status s) {
  {
    std::lock_guard lk(failure_mu_);
    if (failure_.ok()) failure_ = s;
  }
  failed_.store(true);
  return s;
}

Status JournaledStore::FailedEarlier(Status::Code code) {
  std::lock_guard lk(failure_mu_);
  return Status::Error(code,
                       "store failed earlier (" + failure_.message() + "); restart to recover");
}

Status JournaledStore::FailUnlessNoSpace(Status s) {
  // ENOSPC leaves nothing behind that a later write or sync would trip over: a data-file write
  // is not acknowledged (whatever part of it reached the page cache SBC allows for a failed
  // write) and nothing journaled depends on it; a superblock write that found no room leaves
  // the old superblock standing. Anything else may be a failing device.
  if (s.code() == Status::Code::kNoSpace) return s;
  return Fail(std::move(s));
}

Status JournaledStore::CheckRange(uint64_t offset, uint64_t length) const {
  if (offset > options_.size_bytes || length > options_.size_bytes - offset) {
    return Status::Error(Status::Code::kOutOfRange, "range past end of store");
  }
  if (offset % options_.block_size != 0 || length % options_.block_size != 0) {
    return Status::Error(Status::Code::kInvalid, "range not block aligned");
  }
  return Status::Ok();
}

Status JournaledStore::CheckWritable(uint64_t offset, uint64_t length) {
  if (options_.read_only) return Status::Error(Status::Code::kReadOnly, "store is read-only");
  if (failed_.load()) return FailedEarlier(Status::Code::kReadOnly);
  return CheckRange(offset, length);
}

bool JournaledStore::OverlapsJournaled(uint64_t offset, uint64_t length) const {
  return Overlaps(journaled_, offset, length) || Overlaps(retiring_, offset, length);
}

bool JournaledStore::ReserveLocked(uint64_t offset, uint64_t length, Slot* slot) {
  const uint64_t size = options_.journal_bytes;
  const uint64_t span = journal::RecordSpan(static_cast<uint32_t>(length), record_align_);
  // A record that does not fit before the end goes at offset 0; the tail is wasted.
  uint64_t at = position_;
  uint64_t waste = 0;
  if (at + span > size) {
    waste = size - at;
    at = 0;
  }
  if (used_ + waste + span > size) return false;
  if (at == 0 && position_ != 0) ++wraps_;
  used_ += waste + span;
  slot->sequence = ++last_sequence_;
  slot->epoch = epoch_;
  slot->at = at;
  position_ = at + span;
  unapplied_.insert(slot->sequence);
  // Remember the range, so later plain writes to it are journaled too.
  AddRange(journaled_, offset, offset + length);
  if (used_ > size * options_.checkpoint_fill && !checkpointing_) {
    checkpoint_wanted_ = true;
    cv_.notify_all();
  }
  return true;
}

Status JournaledStore::CheckRecordSize(uint64_t length) const {
  if (journal::RecordSpan(static_cast<uint32_t>(length), record_align_) >
      options_.journal_bytes / 2) {
    return Status::Error(Status::Code::kInvalid, "write larger than half the journal");
  }
  return Status::Ok();
}

Status JournaledStore::WriteRecord(RecordKind kind, const Slot& slot, uint64_t offset,
                                   std::span<const uint8_t> data) {
  static constexpr std::array<uint8_t, journal::kMaxRecordAlign> kZeros{};
  const auto header = journal::EncodeRecordHeader(kind, slot.epoch, slot.sequence, offset, data);
  const size_t padding = journal::RecordSpan(static_cast<uint32_t>(data.size()), record_align_) -
                         header.size() - data.size();
  const Status s = journal_->PWriteParts(slot.at, {header, data, std::span(kZeros).first(padding)});
  if (s.ok()) {
    journal_sync_->MarkWritten(slot.sequence);
  } else {
    // A gap: recovery would stop here, so no later record may be acknowledged either. Their
    // waits fail (sticky), and so does this store.
    journal_sync_->MarkFailed(slot.sequence, s);
  }
  return s;
}

Status JournaledStore::Apply(const Slot& slot, uint64_t offset, std::span<const uint8_t> data,
                             Status durable) {
  // Only a durable record is applied: the data file never holds what replay could not restore.
  Status s = durable.ok() ? data_->PWrite(offset, data) : durable;
  {
    std::lock_guard lk(mu_);
    if (durable.ok() && !s.ok()) {
      // Durable but half applied: the blocks are torn in the data file. Remembered before the
      // caller lets go of the range lock, so no read sees them and no write goes over them, and
      // no checkpoint retires the record while it is here (replay at the next start applies
      // it whole). Out of space, it is applied again once there is room (RepairTorn).
      s = Status::Error(s.code(), "applying journal record " + std::to_string(slot.sequence) +
                                      " to bytes " + std::to_string(offset) + "+" +
                                      std::to_string(data.size()) + " of the LUN: " + s.message());
      torn_.emplace(slot.sequence, Torn{offset, {data.begin(), data.end()}, s});
      has_torn_.store(true);
    }
    unapplied_.erase(slot.sequence);
  }
  cv_.notify_all();
  if (!s.ok()) return durable.ok() ? FailUnlessNoSpace(std::move(s)) : Fail(std::move(s));
  return Status::Ok();
}

Status JournaledStore::RepairTorn() {
  std::lock_guard repair(repair_mu_);  // one repairer; torn_ entries are erased only here
  while (true) {
    uint64_t sequence = 0;
    const Torn* t = nullptr;
    {
      std::lock_guard lk(mu_);
      if (torn_.empty()) {
        has_torn_.store(false);
        return Status::Ok();
      }
      sequence = torn_.begin()->first;
      t = &torn_.begin()->second;  // stable: map nodes move only when erased, here
    }
    auto guard = locks_.Lock(t->offset, t->data.size(), RangeLock::Mode::kExclusive);
    if (Status s = data_->PWrite(t->offset, t->data); !s.ok()) {
      s = Status::Error(s.code(), "applying journal record " + std::to_string(sequence) +
                                      " again: " + s.message());
      return FailUnlessNoSpace(std::move(s));
    }
    std::lock_guard lk(mu_);
    torn_.erase(sequence);
  }
}

Status JournaledStore::CheckNotTorn(uint64_t offset, uint64_t length, bool writing) {
  if (!has_torn_.load()) return Status::Ok();
  std::lock_guard lk(mu_);
  for (const auto& [sequence, t] : torn_) {
    if (offset < t.offset + t.data.size() && t.offset < offset + length) {
      // A reader gets an unrecovered read error, as from a disk's unreadable sector; a writer
      // the failure that left the blocks torn (out of space: until there is room).
      const bool no_space = writing && t.why.code() == Status::Code::kNoSpace;
      return Status::Error(no_space ? Status::Code::kNoSpace : Status::Code::kIoError,
                           "bytes " + std::to_string(offset) + "+" + std::to_string(length) +
                               " hold a write that could not be applied: " + t.why.message());
    }
  }
  return Status::Ok();
}

Status JournaledStore::BeforeWrite(uint64_t offset, uint64_t length) {
  if (Status s = CheckWritable(offset, length); !s.ok()) return s;
  // Writes wait for no torn record: a torn record holds back every checkpoint.
  if (has_torn_.load()) return RepairTorn();
  return Status::Ok();
}

Status JournaledStore::AppendAndApply(RecordKind kind, uint64_t offset,
                                      std::span<const uint8_t> data) {
  if (Status s = CheckRecordSize(data.size()); !s.ok()) return s;
  // Room in the data file first: a durable record must never be left that cannot be applied.
  if (Status s = data_->Allocate(offset, data.size()); !s.ok()) return s;
  Slot slot;
  {
    std::unique_lock lk(mu_);
    while (true) {
      if (failed_.load()) return FailedEarlier(Status::Code::kReadOnly);
      if (ReserveLocked(offset, data.size(), &slot)) break;
      // Journal full: back-pressure until a checkpoint frees space (run one here if none is).
      if (!checkpointing_) {
        if (Status s = CheckpointLocked(lk); !s.ok()) return s;
      } else {
        cv_.wait(lk);
      }
    }
  }
  Status s = WriteRecord(kind, slot, offset, data);
  if (s.ok()) s = journal_sync_->WaitDurable(slot.sequence);
  return Apply(slot, offset, data, std::move(s));
}

bool JournaledStore::TryStartWrite(uint64_t offset, std::span<const uint8_t> data, WriteKind kind,
                                   Durability d, const WriteDone& done) {
  if (Status s = CheckWritable(offset, data.size()); !s.ok()) {
    done(std::move(s));
    return true;
  }
  if (data.empty()) {
    done(Status::Ok());
    return true;
  }
  if (has_torn_.load()) return false;  // the blocking path repairs first
  auto guard = locks_.TryLock(offset, data.size(), RangeLock::Mode::kExclusive);
  if (!guard) return false;            // an overlapping write is in flight: wait for it elsewhere
  if (has_torn_.load()) return false;  // torn while this took the lock
  bool journal = kind == WriteKind::kAtomic;
  if (journal) {
    if (Status s = CheckRecordSize(data.size()); !s.ok()) {
      done(std::move(s));
      return true;
    }
  } else {
    std::lock_guard lk(mu_);
    if (OverlapsJournaled(offset, data.size())) {
      if (!CheckRecordSize(data.size()).ok()) return false;  // the blocking path says why
      journal = true;  // still right if a checkpoint retires those records meanwhile
    }
  }
  Slot slot;
  if (journal) {
    // As in AppendAndApply: room in the data file before anything is journaled.
    if (Status s = data_->Allocate(offset, data.size()); !s.ok()) {
      done(std::move(s));
      return true;
    }
    std::lock_guard lk(mu_);
    // Journal full: the blocking path waits for a checkpoint.
    if (!ReserveLocked(offset, data.size(), &slot)) return false;
  }
  if (!journal) {
    Status s = data_->PWrite(offset, data);
    guard.reset();  // in the page cache: readers may see it; only durability is left
    if (!s.ok()) {
      done(FailUnlessNoSpace(std::move(s)));
    } else if (d == Durability::kCached) {
      done(Status::Ok());
    } else {
      data_sync_.WhenDurable(data_sync_.CompletedUnordered(), [this, done](Status st) {
        done(st.ok() ? std::move(st) : Fail(std::move(st)));
      });
    }
    return true;
  }
  const RecordKind record = kind == WriteKind::kAtomic ? RecordKind::kAtomic : RecordKind::kOrdered;
  if (Status s = WriteRecord(record, slot, offset, data); !s.ok()) {
    done(Apply(slot, offset, data, std::move(s)));
    return true;
  }
  // The range stays locked until the record is applied, as on the blocking path.
  auto held = std::make_shared<std::optional<RangeLock::Guard>>(std::move(guard));
  journal_sync_->WhenDurable(slot.sequence, [this, slot, offset, data, held, done](Status st) {
    Status applied = Apply(slot, offset, data, std::move(st));
    held->reset();  // the record is applied: overlapping reads and writes may go on
    done(std::move(applied));
  });
  return true;
}

Status JournaledStore::WriteData(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  if (Status s = data_->PWrite(offset, data); !s.ok()) return FailUnlessNoSpace(std::move(s));
  return d == Durability::kDurable ? SyncData() : Status::Ok();
}

Status JournaledStore::SyncData() {
  const uint64_t ticket = data_sync_.CompletedUnordered();
  if (Status s = data_sync_.WaitDurable(ticket); !s.ok()) return Fail(std::move(s));
  return Status::Ok();
}

Status JournaledStore::Read(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = CheckRange(offset, out.size()); !s.ok()) return s;
  auto guard = locks_.Lock(offset, out.size(), RangeLock::Mode::kShared);
  if (Status s = CheckNotTorn(offset, out.size(), false); !s.ok()) return s;
  return data_->PRead(offset, out);
}

std::unique_ptr<MappedRead> JournaledStore::ReadMapped(uint64_t offset, uint64_t length) {
  if (!CheckRange(offset, length).ok()) return nullptr;
  auto mapped = MapShared(locks_, *data_, offset, length);
  // Checked with the range held: torn blocks are Read's to refuse.
  if (mapped && !CheckNotTorn(offset, length, false).ok()) return nullptr;
  return mapped;
}

std::optional<Status> JournaledStore::TryReadNoWait(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = CheckRange(offset, out.size()); !s.ok()) return s;
  auto guard = locks_.TryLock(offset, out.size(), RangeLock::Mode::kShared);
  if (!guard) return std::nullopt;  // an atomic write to these blocks is in flight
  if (Status s = CheckNotTorn(offset, out.size(), false); !s.ok()) return s;
  if (!data_->TryPReadNoWait(offset, out)) return std::nullopt;
  return Status::Ok();
}

Status JournaledStore::WriteAtomic(uint64_t offset, std::span<const uint8_t> data, Durability) {
  // Journaled records are durable when acknowledged, whatever the requested durability.
  if (Status s = BeforeWrite(offset, data.size()); !s.ok()) return s;
  if (data.empty()) return Status::Ok();
  auto guard = locks_.Lock(offset, data.size(), RangeLock::Mode::kExclusive);
  if (Status s = CheckNotTorn(offset, data.size(), true); !s.ok()) return s;
  return AppendAndApply(RecordKind::kAtomic, offset, data);
}

Status JournaledStore::Update(uint64_t offset, uint64_t length, const Modify& modify, Durability) {
  // Journaled like WriteAtomic, and under the same exclusive lock from the read to the apply.
  if (Status s = BeforeWrite(offset, length); !s.ok()) return s;
  if (length == 0) return Status::Ok();
  auto guard = locks_.Lock(offset, length, RangeLock::Mode::kExclusive);
  if (Status s = CheckNotTorn(offset, length, true); !s.ok()) return s;
  std::vector<uint8_t> blocks(length);
  if (Status s = data_->PRead(offset, blocks); !s.ok()) return s;
  if (!modify(blocks)) return Status::Ok();
  return AppendAndApply(RecordKind::kAtomic, offset, blocks);
}

Status JournaledStore::Write(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  if (Status s = BeforeWrite(offset, data.size()); !s.ok()) return s;
  if (data.empty()) return Status::Ok();
  auto guard = locks_.Lock(offset, data.size(), RangeLock::Mode::kExclusive);
  if (Status s = CheckNotTorn(offset, data.size(), true); !s.ok()) return s;
  bool journal = false;
  {
    std::lock_guard lk(mu_);
    journal = OverlapsJournaled(offset, data.size());
  }
  if (journal) return AppendAndApply(RecordKind::kOrdered, offset, data);
  return WriteData(offset, data, d);
}

Status JournaledStore::Flush() {
  if (options_.read_only) return Status::Ok();
  if (failed_.load()) return FailedEarlier(Status::Code::kSyncFailed);
  return SyncData();
}

Status JournaledStore::Unmap(uint64_t offset, uint64_t length, Durability d) {
  if (Status s = BeforeWrite(offset, length); !s.ok()) return s;
  auto guard = locks_.Lock(offset, length, RangeLock::Mode::kExclusive);
  if (Status s = CheckNotTorn(offset, length, true); !s.ok()) return s;
  {
    // Replay must not resurrect data this deallocates: retire overlapping records first.
    std::unique_lock lk(mu_);
    if (OverlapsJournaled(offset, length)) {
      if (Status s = CheckpointLocked(lk); !s.ok()) return s;
    }
  }
  if (Status s = data_->PunchHole(offset, length); !s.ok()) return FailUnlessNoSpace(std::move(s));
  // Deallocation follows the write-cache mode like a write: durable before GOOD when asked.
  return d == Durability::kDurable ? SyncData() : Status::Ok();
}

BlockStore::Extent JournaledStore::Provisioning(uint64_t offset, uint64_t max_length) {
  return ProvisionedExtent(*data_, options_.size_bytes, options_.block_size, offset, max_length);
}

JournaledStore::Stats JournaledStore::stats() {
  Stats st;
  if (journal_sync_) {
    const auto j = journal_sync_->stats();
    st.journal_syncs = j.syncs;
    st.journal_records = j.writes;
  }
  const auto d = data_sync_.stats();
  st.data_syncs = d.syncs;
  st.data_sync_waiters = d.writes;
  std::lock_guard lk(mu_);
  st.checkpoints = checkpoints_;
  st.journal_wraps = wraps_;
  st.journal_used = used_;
  st.journal_size = options_.journal_bytes;
  return st;
}

}  // namespace untorn::storage
