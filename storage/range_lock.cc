#include "storage/range_lock.h"

namespace untorn::storage {

RangeLock::Guard::~Guard() {
  if (lock_ != nullptr) lock_->Release(it_);
}

bool RangeLock::Conflicts(const Entry& a, const Entry& b) const {
  const bool overlap = a.begin < b.end && b.begin < a.end;
  return overlap && (a.mode == Mode::kExclusive || b.mode == Mode::kExclusive);
}

bool RangeLock::CanGrant(std::list<Entry>::iterator it) const {
  // Conflicts with anything ahead of it in arrival order, granted or waiting (FIFO fairness).
  for (auto p = entries_.begin(); p != it; ++p) {
    if (Conflicts(*p, *it)) return false;
  }
  return true;
}

RangeLock::Guard RangeLock::Lock(uint64_t offset, uint64_t length, Mode mode) {
  std::unique_lock lk(mu_);
  auto it = entries_.insert(entries_.end(), Entry{offset, offset + length, mode});
  cv_.wait(lk, [&] { return CanGrant(it); });
  return Guard(this, it);
}

std::optional<RangeLock::Guard> RangeLock::TryLock(uint64_t offset, uint64_t length, Mode mode) {
  std::lock_guard lk(mu_);
  auto it = entries_.insert(entries_.end(), Entry{offset, offset + length, mode});
  if (CanGrant(it)) return Guard(this, it);
  entries_.erase(it);
  return std::nullopt;
}

void RangeLock::Release(std::list<Entry>::iterator it) {
  {
    std::lock_guard lk(mu_);
    entries_.erase(it);
  }
  cv_.notify_all();
}

}  // namespace untorn::storage
