#include "storage/mapped_read.h"

namespace untorn::storage {

std::unique_ptr<MappedRead> MapShared(RangeLock& locks, File& file, uint64_t offset,
                                      uint64_t length) {
  // Faulted in under the lock: what is mapped is what a Read would return now.
  auto guard = locks.Lock(offset, length, RangeLock::Mode::kShared);
  const std::span<const uint8_t> bytes = file.MapForSend(offset, length);
  if (bytes.size() != length) return nullptr;
  return std::make_unique<MappedRead>(bytes, file, offset, std::move(guard));
}

}  // namespace untorn::storage
