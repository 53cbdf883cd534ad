#include "storage/group_sync.h"

namespace untorn::storage {

void GroupSync::MarkWritten(uint64_t sequence) {
  std::lock_guard lk(mu_);
  if (sequence == contiguous_ + 1) {
    ++contiguous_;
    while (!ahead_.empty() && *ahead_.begin() == contiguous_ + 1) {
      ahead_.erase(ahead_.begin());
      ++contiguous_;
    }
  } else if (sequence > contiguous_) {
    ahead_.insert(sequence);
  }
  cv_.notify_all();
}

uint64_t GroupSync::CompletedUnordered() {
  std::lock_guard lk(mu_);
  return ++contiguous_;
}

Status GroupSync::WaitDurable(uint64_t sequence) {
  std::unique_lock lk(mu_);
  while (durable_ < sequence) {
    if (failed_) return Status::Error(Status::Code::kSyncFailed, "an earlier sync failed");
    if (syncing_ || contiguous_ <= durable_) {
      cv_.wait(lk);  // a sync is running, or earlier writes are still being written
      continue;
    }
    syncing_ = true;
    const uint64_t target = contiguous_;
    lk.unlock();
    Status s = file_->Sync();
    lk.lock();
    syncing_ = false;
    if (!s.ok()) {
      failed_ = true;
      cv_.notify_all();
      return s;
    }
    ++stats_.syncs;
    stats_.writes += target - durable_;
    durable_ = target;
    cv_.notify_all();
  }
  return Status::Ok();
}

void GroupSync::Reset(uint64_t first_sequence) {
  std::lock_guard lk(mu_);
  contiguous_ = durable_ = first_sequence - 1;
  ahead_.clear();
}

GroupSync::Stats GroupSync::stats() {
  std::lock_guard lk(mu_);
  return stats_;
}

}  // namespace untorn::storage
