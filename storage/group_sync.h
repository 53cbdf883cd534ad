// Group commit over one file: writers mark their writes complete and wait until a Sync() covers
// them; one waiter at a time issues the Sync for everything completed so far, so one fdatasync
// serves every writer waiting. Writes are identified by sequence numbers; a write is durable
// only when it and every write before it are (the journal's recovery stops at the first gap).
// A failed Sync is sticky: every later wait fails. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>

#include "storage/file_system.h"

namespace untorn::storage {

class GroupSync {
 public:
  explicit GroupSync(File* file, uint64_t first_sequence = 1)
      : file_(file), contiguous_(first_sequence - 1), durable_(first_sequence - 1) {}

  // Write `sequence` has completed (journal records: sequences assigned at reservation).
  void MarkWritten(uint64_t sequence);
  // A write whose position in the order does not matter has completed; returns its ticket.
  [[nodiscard]] uint64_t CompletedUnordered();
  // Blocks until `sequence` (and all before it) are durable.
  Status WaitDurable(uint64_t sequence);
  // Restarts numbering (after a checkpoint resets the journal); no write may be in flight.
  void Reset(uint64_t first_sequence);

  struct Stats {
    uint64_t syncs = 0;
    uint64_t writes = 0;  // writes made durable by those syncs
  };
  [[nodiscard]] Stats stats();

 private:
  File* const file_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t contiguous_;       // guarded by mu_: every sequence <= this is written
  uint64_t durable_;          // guarded by mu_: every sequence <= this is durable
  std::set<uint64_t> ahead_;  // guarded by mu_: written, beyond a gap
  bool syncing_ = false;      // guarded by mu_
  bool failed_ = false;       // guarded by mu_
  Stats stats_;               // guarded by mu_
};

}  // namespace untorn::storage
