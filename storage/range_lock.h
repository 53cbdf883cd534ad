// Shared/exclusive locks over byte ranges. Overlapping exclusive holders exclude each other and
// all shared holders; disjoint ranges never wait on each other. Waiters are served in arrival
// order so a stream of readers cannot starve a writer. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>

namespace untorn::storage {

class RangeLock {
 public:
  enum class Mode { kShared, kExclusive };

 private:
  struct Entry {
    uint64_t begin, end;
    Mode mode;
  };

 public:
  class Guard {
   public:
    Guard(Guard&& o) noexcept : lock_(o.lock_), it_(o.it_) { o.lock_ = nullptr; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    Guard& operator=(Guard&&) = delete;
    ~Guard();

   private:
    friend class RangeLock;
    Guard(RangeLock* lock, std::list<Entry>::iterator it) : lock_(lock), it_(it) {}
    RangeLock* lock_;
    std::list<Entry>::iterator it_;
  };

  [[nodiscard]] Guard Lock(uint64_t offset, uint64_t length, Mode mode);
  // The lock if it can be granted now (nothing conflicting holds or waits before it), else
  // nullopt without waiting.
  [[nodiscard]] std::optional<Guard> TryLock(uint64_t offset, uint64_t length, Mode mode);

 private:
  [[nodiscard]] bool Conflicts(const Entry& a, const Entry& b) const;
  [[nodiscard]] bool CanGrant(std::list<Entry>::iterator it) const;
  void Release(std::list<Entry>::iterator it);

  std::mutex mu_;
  std::condition_variable cv_;
  std::list<Entry> entries_;  // guarded by mu_; in arrival order
};

}  // namespace untorn::storage
