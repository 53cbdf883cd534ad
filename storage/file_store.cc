#include "storage/file_store.h"

#include <algorithm>
#include <vector>

namespace untorn::storage {

Status FileStore::Open(const Options& o, std::unique_ptr<FileStore>* out) {
  if (o.block_size == 0 || o.size_bytes == 0 || o.size_bytes % o.block_size != 0) {
    return Status::Error(Status::Code::kInvalid, "size must be a non-zero multiple of block size");
  }
  FileSystem* fs = o.fs != nullptr ? o.fs : PosixFileSystem();
  std::unique_ptr<File> file;
  if (Status s = fs->Open(o.path, true, o.read_only, &file); !s.ok()) return s;
  if (file->Size() < o.size_bytes) {
    if (o.read_only) {
      return Status::Error(Status::Code::kIoError, o.path + " is smaller than the LUN size");
    }
    if (Status s = file->Truncate(o.size_bytes); !s.ok()) return s;
  }
  if (!o.read_only && o.preallocate) {
    if (Status s = ReserveThick(*file, o.size_bytes); !s.ok()) return s;
  }
  out->reset(new FileStore(std::move(file), o));
  return Status::Ok();
}

FileStore::FileStore(std::unique_ptr<File> file, const Options& o)
    : file_(std::move(file)),
      size_bytes_(o.size_bytes),
      block_size_(o.block_size),
      read_only_(o.read_only),
      preallocate_(o.preallocate) {}

FileStore::~FileStore() = default;

Status FileStore::CheckRange(uint64_t offset, uint64_t length) const {
  const uint64_t size = size_bytes_.load();
  if (offset > size || length > size - offset) {
    return Status::Error(Status::Code::kOutOfRange, "range past end of store");
  }
  if (offset % block_size_ != 0 || length % block_size_ != 0) {
    return Status::Error(Status::Code::kInvalid, "range not block aligned");
  }
  return Status::Ok();
}

Status FileStore::CheckWritable(uint64_t offset, uint64_t length) const {
  if (read_only_) return Status::Error(Status::Code::kReadOnly, "store is read-only");
  if (failed_.load()) {
    return Status::Error(Status::Code::kReadOnly, "store failed earlier; restart to recover");
  }
  return CheckRange(offset, length);
}

std::optional<RangeLock::Guard> FileStore::LockInRange(uint64_t offset, uint64_t length,
                                                       RangeLock::Mode mode, Status* s) {
  auto guard = locks_.Lock(offset, length, mode);
  *s = CheckRange(offset, length);
  if (!s->ok()) return std::nullopt;
  return guard;
}

Status FileStore::Read(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = CheckRange(offset, out.size()); !s.ok()) return s;
  Status s;
  auto guard = LockInRange(offset, out.size(), RangeLock::Mode::kShared, &s);
  if (!guard) return s;
  return file_->PRead(offset, out);  // past the end of a shorter block device: zeros
}

std::unique_ptr<MappedRead> FileStore::ReadMapped(uint64_t offset, uint64_t length) {
  if (!CheckRange(offset, length).ok()) return nullptr;
  return MapShared(locks_, *file_, offset, length);
}

Status FileStore::WriteLocked(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  if (Status s = file_->PWrite(offset, data); !s.ok()) return WriteFailed(std::move(s));
  if (d == Durability::kDurable) return Flush();
  return Status::Ok();
}

Status FileStore::Write(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  if (Status s = CheckWritable(offset, data.size()); !s.ok()) return s;
  Status held;
  auto guard = LockInRange(offset, data.size(), RangeLock::Mode::kExclusive, &held);
  if (!guard) return held;
  return WriteLocked(offset, data, d);
}

Status FileStore::WriteAtomic(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  // As Write, under the same exclusive range lock (what makes it atomic to readers), with its
  // space reserved first so that a full file system refuses it whole rather than half written.
  if (Status s = CheckWritable(offset, data.size()); !s.ok()) return s;
  Status held;
  auto guard = LockInRange(offset, data.size(), RangeLock::Mode::kExclusive, &held);
  if (!guard) return held;
  if (Status s = file_->Allocate(offset, data.size()); !s.ok()) return s;
  return WriteLocked(offset, data, d);
}

Status FileStore::Update(uint64_t offset, uint64_t length, const Modify& modify, Durability d) {
  if (Status s = CheckWritable(offset, length); !s.ok()) return s;
  Status held;
  auto guard = LockInRange(offset, length, RangeLock::Mode::kExclusive, &held);
  if (!guard) return held;
  std::vector<uint8_t> blocks(length);
  if (Status s = file_->PRead(offset, blocks); !s.ok()) return s;
  if (!modify(blocks)) return Status::Ok();
  if (Status s = file_->Allocate(offset, length); !s.ok()) return s;  // as WriteAtomic
  return WriteLocked(offset, blocks, d);
}

Status FileStore::Flush() {
  if (failed_.load()) {
    return Status::Error(Status::Code::kSyncFailed, "store failed earlier; restart to recover");
  }
  if (read_only_) return Status::Ok();
  if (Status s = file_->Sync(); !s.ok()) {
    failed_.store(true);
    return s;
  }
  return Status::Ok();
}

Status FileStore::Unmap(uint64_t offset, uint64_t length, Durability d) {
  if (Status s = CheckWritable(offset, length); !s.ok()) return s;
  Status held;
  auto guard = LockInRange(offset, length, RangeLock::Mode::kExclusive, &held);
  if (!guard) return held;
  // Writes zeros where holes cannot be punched.
  if (Status s = file_->PunchHole(offset, length); !s.ok()) return WriteFailed(std::move(s));
  return d == Durability::kDurable ? Flush() : Status::Ok();
}

Status FileStore::WriteFailed(Status s) {
  // Out of space is not sticky: the write is not acknowledged and nothing depends on it.
  if (s.code() != Status::Code::kNoSpace) failed_.store(true);
  return s;
}

BlockStore::Extent FileStore::Provisioning(uint64_t offset, uint64_t max_length) {
  return ProvisionedExtent(*file_, size_bytes_.load(), block_size_, offset, max_length);
}

Status FileStore::Resize(uint64_t new_size) {
  if (read_only_) return Status::Error(Status::Code::kReadOnly, "store is read-only");
  if (new_size == 0 || new_size % block_size_ != 0) {
    return Status::Error(Status::Code::kInvalid, "size must be a non-zero multiple of " +
                                                     std::to_string(block_size_) + " bytes");
  }
  if (failed_.load()) {
    return Status::Error(Status::Code::kReadOnly, "store failed earlier; restart to recover");
  }
  const uint64_t old_size = size_bytes_.load();
  if (new_size == old_size) return Status::Ok();
  auto guard = locks_.Lock(0, std::max(old_size, new_size), RangeLock::Mode::kExclusive);
  Status s = file_->Truncate(new_size);
  if (s.ok() && new_size > old_size && preallocate_) {
    s = file_->Allocate(old_size, new_size - old_size);
  }
  if (s.ok()) s = file_->Sync();
  if (!s.ok()) {
    return WriteFailed(Status::Error(s.code(), "resizing " + std::to_string(old_size) + " to " +
                                                   std::to_string(new_size) +
                                                   " bytes: " + s.message()));
  }
  size_bytes_.store(new_size);
  return Status::Ok();
}

Status ReserveThick(File& file, uint64_t size_bytes) {
  const Status s = file.Allocate(0, size_bytes);
  if (s.ok()) return s;
  return Status::Error(s.code(), "reserving the thick LUN's " + std::to_string(size_bytes) +
                                     " bytes: " + s.message());
}

BlockStore::Extent ProvisionedExtent(File& file, uint64_t size_bytes, uint32_t block_size,
                                     uint64_t offset, uint64_t max_length) {
  // The file system reports holes in its own blocks; round the answer to the LUN's block size,
  // erring towards "mapped".
  const uint64_t bs = block_size;
  const uint64_t end = std::min(size_bytes, offset + max_length);
  const uint64_t data = file.NextData(offset);
  if (data >= end) return {end - offset, false};
  if (data > offset) {
    const uint64_t hole = (data - offset) / bs * bs;
    if (hole > 0) return {hole, false};
  }
  uint64_t stop = std::min(end, file.NextHole(offset));
  stop = (stop + bs - 1) / bs * bs;
  return {std::max<uint64_t>(std::min(stop, end) - offset, bs), true};
}

}  // namespace untorn::storage
