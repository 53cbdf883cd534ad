#include "storage/allocation_map.h"

#include <algorithm>
#include <limits>

namespace untorn::storage {
namespace {

uint64_t GranuleFor(uint64_t file_size) {
  uint64_t g = 4096;
  while (file_size / g > (uint64_t{1} << 24)) g <<= 1;
  return g;
}

}  // namespace

AllocationMap::AllocationMap(uint64_t file_size) : granule_(GranuleFor(file_size)) {}

bool AllocationMap::Covered(uint64_t offset, uint64_t length) {
  if (length == 0) return true;
  if (offset > std::numeric_limits<uint64_t>::max() - length) return false;
  const uint64_t first = offset / granule_;
  const uint64_t last = (offset + length - 1) / granule_;
  std::lock_guard lk(mu_);
  if (last / 64 >= bits_.size()) return false;
  for (uint64_t g = first; g <= last; ++g) {
    if ((bits_[g / 64] >> (g % 64) & 1) == 0) return false;
  }
  return true;
}

uint64_t AllocationMap::Generation() {
  std::lock_guard lk(mu_);
  return generation_;
}

void AllocationMap::Mark(uint64_t offset, uint64_t length, uint64_t generation) {
  if (offset > std::numeric_limits<uint64_t>::max() - length) return;
  const uint64_t first = (offset + granule_ - 1) / granule_;  // granules wholly inside
  const uint64_t end = std::min((offset + length) / granule_, kMaxGranules);
  if (first >= end) return;
  std::lock_guard lk(mu_);
  if (generation != generation_) return;  // a Forget ran since the lookup: it may be stale
  if ((end - 1) / 64 >= bits_.size()) bits_.resize((end - 1) / 64 + 1, 0);
  for (uint64_t g = first; g < end; ++g) bits_[g / 64] |= uint64_t{1} << (g % 64);
}

void AllocationMap::Forget(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  const uint64_t first = offset / granule_;
  const uint64_t last = offset > std::numeric_limits<uint64_t>::max() - length
                            ? std::numeric_limits<uint64_t>::max() / granule_
                            : (offset + length - 1) / granule_;
  std::lock_guard lk(mu_);
  ++generation_;
  const uint64_t end = std::min<uint64_t>(last + 1, bits_.size() * 64);
  for (uint64_t g = first; g < end; ++g) bits_[g / 64] &= ~(uint64_t{1} << (g % 64));
}

}  // namespace untorn::storage
