#include "storage/group_sync.h"

#include <string>
#include <vector>

namespace untorn::storage {

void GroupSync::FailLocked(Status why) {
  if (!failed_) failure_ = std::move(why);
  failed_ = true;
  cv_.notify_all();
}

Status GroupSync::FailureLocked() const {
  // The first failure's message, so that whoever sees it first logs the real error.
  return Status::Error(Status::Code::kSyncFailed, failure_.message());
}

GroupSync::~GroupSync() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void GroupSync::MarkFailed(uint64_t sequence, Status why) {
  std::lock_guard lk(mu_);
  // contiguous_ never passes `sequence`: no sync can make it or a later write durable.
  FailLocked(Status::Error(why.code(), "journal record " + std::to_string(sequence) +
                                           " was not written: " + why.message()));
}

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
  const uint64_t ticket = ++contiguous_;
  if (!waiters_.empty()) cv_.notify_all();  // the worker may be waiting for more to sync
  return ticket;
}

void GroupSync::SyncLocked(std::unique_lock<std::mutex>& lk) {
  syncing_ = true;
  const uint64_t target = contiguous_;
  lk.unlock();
  const Status s = file_->Sync();
  lk.lock();
  syncing_ = false;
  if (s.ok()) {
    ++stats_.syncs;
    stats_.writes += target - durable_;
    durable_ = target;
  } else {
    FailLocked(s);
  }
  cv_.notify_all();
}

Status GroupSync::WaitDurable(uint64_t sequence) {
  std::unique_lock lk(mu_);
  while (durable_ < sequence) {
    if (failed_) return FailureLocked();
    if (syncing_ || contiguous_ <= durable_) {
      cv_.wait(lk);  // a sync is running, or earlier writes are still being written
      continue;
    }
    SyncLocked(lk);
  }
  return Status::Ok();
}

void GroupSync::WhenDurable(uint64_t sequence, Callback done) {
  std::unique_lock lk(mu_);
  if (failed_ || durable_ >= sequence) {
    const Status result = failed_ ? FailureLocked() : Status::Ok();
    lk.unlock();
    done(result);
    return;
  }
  waiters_.emplace(sequence, std::move(done));
  if (!worker_.joinable()) worker_ = std::thread([this] { Work(); });
  cv_.notify_all();
}

void GroupSync::Work() {
  std::unique_lock lk(mu_);
  while (true) {
    // Hand out what is decided: waiters a sync (ours or a blocking caller's) has covered, or
    // every waiter once a sync has failed.
    if (!waiters_.empty() && (failed_ || waiters_.begin()->first <= durable_)) {
      const Status result = failed_ ? FailureLocked() : Status::Ok();
      const auto end = failed_ ? waiters_.end() : waiters_.upper_bound(durable_);
      std::vector<Callback> ready;
      for (auto it = waiters_.begin(); it != end; it = waiters_.erase(it)) {
        ready.push_back(std::move(it->second));
      }
      lk.unlock();
      for (auto& cb : ready) cb(result);
      lk.lock();
      continue;
    }
    if (waiters_.empty()) {
      if (stopping_) return;
      cv_.wait(lk);
      continue;
    }
    // Someone waits: sync everything written so far, unless a sync is already running or the
    // writes before the first waiter are still being written.
    if (syncing_ || contiguous_ <= durable_) {
      cv_.wait(lk);
      continue;
    }
    SyncLocked(lk);
  }
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
