// What a file is known to hold allocated, so that reserving space for a write into blocks
// already reserved costs no file system lookup: one bit per granule (a power of two of at
// least 4 KiB, chosen so a file of the size given holds at most 2^24 granules: at most 2 MiB
// of bits). A set bit means the whole granule is allocated; a clear bit means "not known".
//
// Callers keep it true: Mark only what the file system has just said or made allocated, Forget
// before and after anything that may deallocate. A range is never marked while something
// deallocating it runs (the stores' range locks keep the two apart). Thread-safe.
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
  // [offset, offset + length) is allocated: marks the granules wholly inside it.
  void Mark(uint64_t offset, uint64_t length);
  // [offset, offset + length) may no longer be allocated: clears every granule it touches.
  void Forget(uint64_t offset, uint64_t length);

  [[nodiscard]] uint64_t granule() const { return granule_; }

 private:
  static constexpr uint64_t kMaxGranules = uint64_t{1} << 24;

  const uint64_t granule_;
  std::mutex mu_;
  std::vector<uint64_t> bits_;  // guarded by mu_; grows as granules are marked
};

}  // namespace untorn::storage
