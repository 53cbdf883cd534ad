// The daemon-wide bound on memory held for command data (limits.max_buffer_megabytes): data-out
// collected from initiators and data-in waiting to be sent. A command is charged what it may
// hold before any buffer is allocated; one that does not fit is answered BUSY, so the sessions
// already holding buffers finish undisturbed and the initiator retries later.
//
// Thread-safe; a Charge may be released on any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace untorn::target {

class BufferBudget {
 public:
  explicit BufferBudget(uint64_t limit_bytes) : limit_(limit_bytes) {}

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
      if (budget_ != nullptr) budget_->used_.fetch_sub(bytes_, std::memory_order_relaxed);
      budget_ = nullptr;
    }
    BufferBudget* budget_ = nullptr;
    uint64_t bytes_ = 0;
  };

  // Charges `bytes` if they fit. A command larger than the whole budget is admitted only when
  // nothing else is charged, so it is delayed, never refused for ever.
  [[nodiscard]] bool TryCharge(uint64_t bytes, Charge* out) {
    if (bytes == 0) return true;
    uint64_t used = used_.load(std::memory_order_relaxed);
    do {
      if (used != 0 && used + bytes > limit_) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    *out = Charge(this, bytes);
    return true;
  }

  [[nodiscard]] uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  [[nodiscard]] uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

}  // namespace untorn::target
