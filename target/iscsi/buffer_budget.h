// The daemon-wide bound on memory held for command data (limits.max_buffer_megabytes): data-out
// collected from initiators and data-in waiting to be sent. A command is charged what it may
// hold before any buffer is allocated; one that does not fit is answered BUSY, so the sessions
// already holding buffers finish undisturbed and the initiator retries later.
//
// A budget may have a parent (a session's share of the daemon-wide budget): a charge then
// needs room in both, so one session can never take the whole daemon-wide budget.
//
// Thread-safe; a Charge may be released on any thread. A parent outlives its children and
// every charge.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace untorn::target {

class BufferBudget {
 public:
  explicit BufferBudget(uint64_t limit_bytes, BufferBudget* parent = nullptr)
      : limit_(limit_bytes), parent_(parent) {}

  // Bytes charged to a command; given back when destroyed.
  class Charge {
   public:
    Charge() = default;
    Charge(Charge&& o) noexcept : budget_(std::exchange(o.budget_, nullptr)), bytes_(o.bytes_) {}
    Charge& operator=(Charge&& o) noexcept {
      if (this != &o) {
        Release();
        budget_ = std::exchange(o.budget_, nullptr);
        bytes_ = o.bytes_;
      }
      return *this;
    }
    Charge(const Charge&) = delete;
    Charge& operator=(const Charge&) = delete;
    ~Charge() { Release(); }

   private:
    friend class BufferBudget;
    Charge(BufferBudget* b, uint64_t n) : budget_(b), bytes_(n) {}
    void Release() {
      if (budget_ != nullptr) budget_->Give(bytes_);
      budget_ = nullptr;
    }
    BufferBudget* budget_ = nullptr;
    uint64_t bytes_ = 0;
  };

  // Charges `bytes` if they fit. A command larger than the whole budget is admitted only when
  // nothing else is charged, so it is delayed, never refused for ever.
  [[nodiscard]] bool TryCharge(uint64_t bytes, Charge* out) {
    if (bytes == 0) return true;
    if (parent_ != nullptr && !parent_->Take(bytes)) return false;
    if (!Take(bytes)) {
      if (parent_ != nullptr) parent_->Give(bytes);
      return false;
    }
    *out = Charge(this, bytes);
    return true;
  }

  [[nodiscard]] uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  [[nodiscard]] uint64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  // A new limit (a reload): charges already made stand; new ones are measured against it.
  void SetLimit(uint64_t bytes) { limit_.store(bytes, std::memory_order_relaxed); }

 private:
  bool Take(uint64_t bytes) {
    uint64_t used = used_.load(std::memory_order_relaxed);
    do {
      if (used != 0 && used + bytes > limit_.load(std::memory_order_relaxed)) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    return true;
  }
  void Give(uint64_t bytes) {
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    if (parent_ != nullptr) parent_->Give(bytes);
  }

  std::atomic<uint64_t> limit_;
  BufferBudget* const parent_;
  std::atomic<uint64_t> used_{0};
};

}  // namespace untorn::target
