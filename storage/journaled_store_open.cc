// The journaled store's start: Open (creating or sizing the files, reading the superblock,
// recovery, a read-only LUN's replay, the journal written out, a new epoch) and what it uses:
// Recover (the replay), WriteSuperblock and StartEpoch. docs/journal-format.md, "Recovery".
#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "storage/file_store.h"
#include "storage/journal_scan.h"
#include "storage/journaled_store.h"

namespace untorn::storage {

namespace {

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
              std::to_string(o.size_bytes) + " in " + std::to_string(o.block_size) +
              (decoded->block_size == o.block_size
                   ? " (if the LUN was resized while it ran, its size is now " +
                         std::to_string(decoded->lun_size) +
                         ": put that in the configuration, which `untornctl config save` does)"
                   : ""));
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

Status JournaledStore::Recover(const journal::Superblock& sb, RecoveryReport* report) {
  epoch_ = sb.epoch;
  last_sequence_ = sb.applied_sequence;
  report->first_sequence = sb.applied_sequence + 1;
  if (journal_ == nullptr) {
    report->stop_reason = "no journal file";
    return Status::Ok();
  }
  journal::ScanResult scan;
  const auto start = std::chrono::steady_clock::now();
  auto reported = start;
  RecoveryReport so_far = *report;
  Status s = journal::Scan(
      *journal_, sb, options_.size_bytes,
      [&](const journal::RecordHeader& h, uint64_t, protocol::Bytes payload) {
        ++so_far.records_replayed;
        so_far.bytes_replayed += payload.size();
        if (options_.on_progress) {
          const auto now = std::chrono::steady_clock::now();
          if (now - reported >= options_.progress_interval) {
            reported = now;
            so_far.seconds = std::chrono::duration<double>(now - start).count();
            options_.on_progress(so_far);
          }
        }
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
                         size_bytes_.load(),
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

}  // namespace untorn::storage
