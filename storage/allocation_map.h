// What a file is known to hold allocated, so that reserving space for a write into blocks
// already reserved costs no file system lookup: one bit per granule (a power of two of at
// least 4 KiB, chosen so a file of the size given holds at most 2^24 granules: at most 2 MiB
// of bits). A set bit means the whole granule is allocated; a clear bit means "not known".
//
// Callers keep it true: Forget before and after anything that may deallocate, and Mark only what
// the file system said or made allocated since Generation() was read: a lookup (FIEMAP) can be
// answered, then a concurrent punch-hole of a neighbouring range in the same granule forgets it,
// and the Mark that follows would be stale. Mark with the generation read before the lookup
// marks nothing if any Forget ran since. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace untorn::storage {

class AllocationMap {
 public:
  explicit AllocationMap(uint64_t file_size);

  // True if every granule [offset, offset + length) touches is known to be allocated.
  [[nodiscard]] bool Covered(uint64_t offset, uint64_t length);
  // Read before asking the file system what is allocated; counts Forgets.
  [[nodiscard]] uint64_t Generation();
  // [offset, offset + length) is allocated, as found after Generation() returned `generation`:
  // marks the granules wholly inside it, unless something was forgotten since.
  void Mark(uint64_t offset, uint64_t length, uint64_t generation);
  // [offset, offset + length) may no longer be allocated: clears every granule it touches.
  void Forget(uint64_t offset, uint64_t length);

  [[nodiscard]] uint64_t granule() const { return granule_; }

 private:
  static constexpr uint64_t kMaxGranules = uint64_t{1} << 24;

  const uint64_t granule_;
  std::mutex mu_;
  std::vector<uint64_t> bits_;  // guarded by mu_; grows as granules are marked
  uint64_t generation_ = 0;     // guarded by mu_: Forgets so far
};

}  // namespace untorn::storage
