#include "storage/log_file.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace untorn::storage {
namespace {

size_t RoundUp(size_t n, size_t a) { return (n + a - 1) / a * a; }

}  // namespace

void LogFile::Free::operator()(uint8_t* p) const { std::free(p); }

LogFile::LogFile(std::unique_ptr<File> file, std::unique_ptr<StraightWriter> writer,
                 std::string path, size_t mem_align)
    : file_(std::move(file)),
      writer_(std::move(writer)),
      path_(std::move(path)),
      mem_align_(mem_align) {}

LogFile::~LogFile() {
  std::lock_guard lk(sync_mu_);
  (void)WriteKeptLocked();
}

Status LogFile::PWrite(uint64_t offset, std::span<const uint8_t> data) {
  return PWriteParts(offset, {data});
}

Status LogFile::PWriteParts(uint64_t offset,
                            std::initializer_list<std::span<const uint8_t>> parts) {
  size_t length = 0;
  for (const auto& part : parts) length += part.size();
  if (offset % kUnit != 0 || length % kUnit != 0) {
    return Status::Error(Status::Code::kInvalid, "log write not in 512-byte units: " + path_);
  }
  if (length == 0) return Status::Ok();
  Kept k{
      offset, length,
      Buffer(static_cast<uint8_t*>(std::aligned_alloc(mem_align_, RoundUp(length, mem_align_))))};
  if (k.data == nullptr) return Status::Error(Status::Code::kIoError, "out of memory");
  size_t at = 0;
  for (const auto& part : parts) {
    if (!part.empty()) std::memcpy(k.data.get() + at, part.data(), part.size());
    at += part.size();
  }
  std::unique_lock lk(mu_);
  while (OverlapsKeptLocked(offset, length)) {
    // Rewriting what is kept (never done by the journal): the older write goes out first.
    lk.unlock();
    {
      std::lock_guard sl(sync_mu_);
      if (Status s = WriteKeptLocked(); !s.ok()) return s;
    }
    lk.lock();
  }
  kept_.emplace(offset, std::move(k));
  return Status::Ok();
}

Status LogFile::Sync() {
  std::lock_guard lk(sync_mu_);
  Status s = WriteKeptLocked();
  if (s.ok()) s = file_->Sync();  // same inode: fdatasync flushes the device's cache
  if (!s.ok() && failure_.ok()) failure_ = s;
  return s;
}

Status LogFile::PRead(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = WriteKept(); !s.ok()) return s;
  return file_->PRead(offset, out);
}

Status LogFile::Truncate(uint64_t size) {
  if (Status s = WriteKept(); !s.ok()) return s;
  return file_->Truncate(size);
}

Status LogFile::WriteBack(uint64_t offset, uint64_t length) {
  if (Status s = WriteKept(); !s.ok()) return s;
  return file_->WriteBack(offset, length);
}

uint64_t LogFile::Size() {
  (void)WriteKept();
  return file_->Size();
}

Status LogFile::PunchHole(uint64_t offset, uint64_t length) {
  if (Status s = WriteKept(); !s.ok()) return s;
  return file_->PunchHole(offset, length);
}

uint64_t LogFile::NextData(uint64_t offset) {
  (void)WriteKept();
  return file_->NextData(offset);
}

uint64_t LogFile::NextHole(uint64_t offset) {
  (void)WriteKept();
  return file_->NextHole(offset);
}

bool LogFile::OverlapsKeptLocked(uint64_t offset, uint64_t length) const {
  auto it = kept_.lower_bound(offset);
  if (it != kept_.end() && it->first < offset + length) return true;
  return it != kept_.begin() &&
         std::prev(it)->second.offset + std::prev(it)->second.length > offset;
}

Status LogFile::WriteKept() {
  std::lock_guard lk(sync_mu_);
  return WriteKeptLocked();
}

Status LogFile::WriteKeptLocked() {
  // Each run of contiguous writes in as few requests as IOV_MAX allows.
  std::map<uint64_t, Kept> batch;
  {
    std::lock_guard lk(mu_);
    batch.swap(kept_);
  }
  // After a failure, what is written is dropped (never to be made durable), not kept.
  if (!failure_.ok()) {
    return Status::Error(Status::Code::kSyncFailed,
                         "an earlier write or sync of the log failed: " + failure_.message());
  }
  std::vector<iovec> iov;
  auto it = batch.begin();
  while (it != batch.end()) {
    const uint64_t start = it->first;
    uint64_t end = start;
    iov.clear();
    while (it != batch.end() && it->first == end && iov.size() < IOV_MAX) {
      iov.push_back({it->second.data.get(), it->second.length});
      end += it->second.length;
      ++it;
    }
    if (Status s = writer_->WriteStraight(start, iov); !s.ok()) {
      failure_ = s;
      return s;
    }
  }
  return Status::Ok();
}

}  // namespace untorn::storage
