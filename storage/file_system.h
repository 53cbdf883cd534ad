// The file-system seam the journaled store is written against (after leveldb's Env): a real
// POSIX implementation, and an in-memory one that records every write and sync so the
// power-cut simulator (power_cut.h) can produce any state a crash could leave.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "storage/status.h"

namespace untorn::storage {

// An open file. Thread-safe for concurrent PRead/PWrite of disjoint ranges, like pread(2).
class File {
 public:
  virtual ~File() = default;
  virtual Status PRead(uint64_t offset, std::span<uint8_t> out) = 0;  // short file reads zeros
  // PRead only if it needs no waiting for the device (all of it in the page cache): false if
  // it would block, and `out` is then unspecified. The default never tries.
  [[nodiscard]] virtual bool TryPReadNoWait(uint64_t, std::span<uint8_t>) { return false; }
  virtual Status PWrite(uint64_t offset, std::span<const uint8_t> data) = 0;
  // One PWrite of the parts one after another (a record's header, payload and padding). The
  // default joins them in a buffer; a file that copies its writes anyway joins them there.
  virtual Status PWriteParts(uint64_t offset,
                             std::initializer_list<std::span<const uint8_t>> parts);
  // Bytes [offset, offset + length) as read-only memory shared with the page cache, read in
  // already (so a page that cannot be read now fails here), for a caller that hands
  // them to the kernel to copy (send(2)) rather than copying them itself: empty where the file
  // cannot be mapped or the range read; PRead then gives the bytes or the error. Valid while
  // the file is open; they change as the file does. Never to be touched from user space
  // (mapped_read.h). The default cannot map.
  [[nodiscard]] virtual std::span<const uint8_t> MapForSend(uint64_t /*offset*/,
                                                            uint64_t /*length*/) {
    return {};
  }
  // Makes every completed PWrite and Truncate durable (fdatasync).
  virtual Status Sync() = 0;
  // Writes the range's dirty cached pages to the device and waits for them, without a
  // device flush or metadata: durable only after a later Sync, which then has less to do
  // (sync_file_range). The default does nothing.
  virtual Status WriteBack(uint64_t /*offset*/, uint64_t /*length*/) { return Status::Ok(); }
  virtual Status Truncate(uint64_t size) = 0;
  // Reserves space for the range, so that PWrites inside it cannot fail for want of room
  // (fallocate): kNoSpace when the file system has none. Ranges already allocated cost a lookup.
  // Where the file system cannot reserve, it returns Ok and a later PWrite may still fail.
  virtual Status Allocate(uint64_t offset, uint64_t length) = 0;
  [[nodiscard]] virtual uint64_t Size() = 0;
  // Deallocates a range (it then reads as zeros); may fall back to writing zeros.
  virtual Status PunchHole(uint64_t offset, uint64_t length) = 0;
  // The unit the device under the file writes whole (its physical block): a write to part of
  // one makes the device read, modify and write all of it, and a power cut then may tear or
  // lose any of it. The journal starts each record on one, so that writing a record never
  // rewrites a block that holds an earlier, acknowledged one. The default: 512.
  [[nodiscard]] virtual uint32_t PhysicalBlockSize() { return 512; }
  // First byte at or after `offset` that may hold data, or nullopt-equivalent UINT64_MAX.
  [[nodiscard]] virtual uint64_t NextData(uint64_t offset) = 0;
  // First byte at or after `offset` that is a hole (or the size).
  [[nodiscard]] virtual uint64_t NextHole(uint64_t offset) = 0;
};

inline Status File::PWriteParts(uint64_t offset,
                                std::initializer_list<std::span<const uint8_t>> parts) {
  std::vector<uint8_t> joined;
  for (const auto& part : parts) joined.insert(joined.end(), part.begin(), part.end());
  return PWrite(offset, joined);
}

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Opens (creating if `create`) a file for reading and writing, or read-only.
  virtual Status Open(const std::string& path, bool create, bool read_only,
                      std::unique_ptr<File>* out) = 0;
  [[nodiscard]] virtual bool Exists(const std::string& path) = 0;
  // Atomically replaces `to` with `from`; durable after SyncDir of the directory.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // Makes renames and creations in the directory of `path` durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Opens an existing file for a log written in place: PWrites (offsets and lengths in
  // 512-byte units) are kept in memory and go to the device at the next Sync, straight, past
  // the page cache, contiguous ones in one request; reads and the other calls see them. The
  // journal's group commit then costs one copy of each record, not a page-cache copy and its
  // writeback. Where the file system cannot write straight (no O_DIRECT, larger alignment),
  // and by default, the file is opened as Open does; what a Sync makes durable is the same.
  virtual Status OpenLog(const std::string& path, std::unique_ptr<File>* out) {
    return Open(path, false, false, out);
  }
};

// The real file system.
FileSystem* PosixFileSystem();

}  // namespace untorn::storage
