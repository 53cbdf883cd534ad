// A read the target sends from a mapping of the store's file instead of a copy of it
// (BlockStore::ReadMapped). It holds the range's shared lock: no write changes the bytes until
// it is destroyed, so whoever holds one must hand the bytes to the kernel without waiting on a
// peer (a send that does not block), or copy them (CopyOut) and let it go.
//
// The bytes are never touched from user space: a page that fails to read after it was mapped
// raises SIGBUS on a touch, while the kernel's own copy (send(2)) fails with EFAULT instead.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "storage/file_system.h"
#include "storage/range_lock.h"
#include "storage/status.h"

namespace untorn::storage {

class MappedRead {
 public:
  MappedRead(std::span<const uint8_t> bytes, File& file, uint64_t offset, RangeLock::Guard guard)
      : bytes_(bytes), file_(file), offset_(offset), guard_(std::move(guard)) {}
  MappedRead(const MappedRead&) = delete;
  MappedRead& operator=(const MappedRead&) = delete;

  [[nodiscard]] std::span<const uint8_t> bytes() const { return bytes_; }
  // The same bytes read into `out` (as long as bytes()) by pread, not through the mapping: an
  // I/O error is a Status here, not a signal.
  [[nodiscard]] Status CopyOut(std::span<uint8_t> out) const { return file_.PRead(offset_, out); }

 private:
  const std::span<const uint8_t> bytes_;
  File& file_;
  const uint64_t offset_;
  const RangeLock::Guard guard_;
};

// ReadMapped for a store whose reads are PReads of `file` under a shared lock of `locks`:
// nullptr where the file cannot map the range (MapForSend), having locked nothing.
std::unique_ptr<MappedRead> MapShared(RangeLock& locks, File& file, uint64_t offset,
                                      uint64_t length);

}  // namespace untorn::storage
