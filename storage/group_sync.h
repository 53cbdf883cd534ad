// Group commit over one file: writers mark their writes complete and wait until a Sync() covers
// them; one waiter at a time issues the Sync for everything completed so far, so one fdatasync
// serves every writer waiting. Writes are identified by sequence numbers; a write is durable
// only when it and every write before it are (the journal's recovery stops at the first gap).
// A failed Sync, or a write marked failed, is sticky: every wait not yet satisfied and every
// later one fails, with the first failure's own message.
//
// Waiting can also be asynchronous (WhenDurable): the callback runs once the write is durable,
// on the GroupSync's own thread, which issues the syncs such waiters need. A caller that must
// not block (the network thread) hands its durable wait over instead of parking a thread per
// write. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "storage/file_system.h"

namespace untorn::storage {

class GroupSync {
 public:
  using Callback = std::function<void(Status)>;

  explicit GroupSync(File* file, uint64_t first_sequence = 1)
      : file_(file), contiguous_(first_sequence - 1), durable_(first_sequence - 1) {}
  // Runs the callbacks still waiting (after the syncs they need) before returning; every write
  // they wait for must have been marked written.
  ~GroupSync();
  GroupSync(const GroupSync&) = delete;
  GroupSync& operator=(const GroupSync&) = delete;

  // Write `sequence` has completed (journal records: sequences assigned at reservation).
  void MarkWritten(uint64_t sequence);
  // Write `sequence` failed: no sync will ever cover it or anything after it (recovery would
  // stop at the gap it leaves), so every wait not yet satisfied fails with `why`, now and later.
  void MarkFailed(uint64_t sequence, Status why);
  // A write whose position in the order does not matter has completed; returns its ticket.
  [[nodiscard]] uint64_t CompletedUnordered();
  // Blocks until `sequence` (and all before it) are durable.
  Status WaitDurable(uint64_t sequence);
  // Calls `done` once `sequence` (and all before it) are durable, or with the error if a sync
  // fails: at once if that is already decided, else later from this GroupSync's thread.
  // Callbacks run one after another and must not block for long: they hold up the next sync.
  void WhenDurable(uint64_t sequence, Callback done);
  // Restarts numbering (after a checkpoint resets the journal); no write may be in flight.
  void Reset(uint64_t first_sequence);

  struct Stats {
    uint64_t syncs = 0;
    uint64_t writes = 0;  // writes made durable by those syncs
  };
  [[nodiscard]] Stats stats();

 private:
  void SyncLocked(std::unique_lock<std::mutex>& lk);  // one fdatasync for all written so far
  void Work();                                        // the thread behind WhenDurable
  void FailLocked(Status why);                        // mu_ held: sticky failure
  [[nodiscard]] Status FailureLocked() const;         // mu_ held: what a failed wait returns

  File* const file_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t contiguous_;                        // guarded by mu_: every sequence <= this is written
  uint64_t durable_;                           // guarded by mu_: every sequence <= this is durable
  std::set<uint64_t> ahead_;                   // guarded by mu_: written, beyond a gap
  bool syncing_ = false;                       // guarded by mu_
  bool failed_ = false;                        // guarded by mu_
  Status failure_;                             // guarded by mu_: the first failure
  bool stopping_ = false;                      // guarded by mu_
  Stats stats_;                                // guarded by mu_
  std::multimap<uint64_t, Callback> waiters_;  // guarded by mu_: WhenDurable, by sequence
  std::thread worker_;                         // started by the first WhenDurable
};

}  // namespace untorn::storage
