// The backing store of one logical unit, addressed in bytes. Offsets and lengths are multiples of
// block_size(). Implementations are thread-safe: the target calls them from a pool of threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>

#include "storage/mapped_read.h"
#include "storage/status.h"

namespace untorn::storage {

enum class Durability {
  kCached,   // may sit in a volatile cache until Flush()
  kDurable,  // durable before the call returns (FUA / write-through)
};

enum class WriteKind {
  kPlain,   // Write
  kAtomic,  // WriteAtomic
};

class BlockStore {
 public:
  virtual ~BlockStore() = default;

  [[nodiscard]] virtual uint32_t block_size() const = 0;
  [[nodiscard]] virtual uint64_t size_bytes() const = 0;

  virtual Status Read(uint64_t offset, std::span<uint8_t> out) = 0;
  // Read only if it needs no waiting (no conflicting lock, data cached): nullopt if it would
  // block, for the caller to Read on a thread that may block. The default never tries.
  [[nodiscard]] virtual std::optional<Status> TryReadNoWait(uint64_t, std::span<uint8_t>) {
    return std::nullopt;
  }
  // The range as memory to hand to the kernel (send) instead of a copy, held against writes
  // until the MappedRead is destroyed (mapped_read.h): for large reads, where the copy into a
  // buffer costs as much as the send. nullptr, having held nothing, when the store cannot; Read
  // then gives the data or the error. The default cannot.
  [[nodiscard]] virtual std::unique_ptr<MappedRead> ReadMapped(uint64_t /*offset*/,
                                                               uint64_t /*length*/) {
    return nullptr;
  }
  virtual Status Write(uint64_t offset, std::span<const uint8_t> data, Durability d) = 0;
  // All-or-nothing with respect to crashes, and isolated: a concurrent Read of an overlapping
  // range sees either none or all of `data`.
  virtual Status WriteAtomic(uint64_t offset, std::span<const uint8_t> data, Durability d) = 0;
  // Starts a write for a caller that must not block (the network thread): false, having done
  // nothing, when it would have to wait (for a conflicting write, journal space, ...), and the
  // caller then uses Write / WriteAtomic from a thread that may block. Otherwise `done` runs
  // exactly once with the result: before this returns when nothing is left to wait for, else
  // later on a thread of the store's once the write is durable. `data` must stay valid until
  // then. The copy into the page cache happens in the calling thread. The default never starts.
  using WriteDone = std::function<void(Status)>;
  [[nodiscard]] virtual bool TryStartWrite(uint64_t, std::span<const uint8_t>, WriteKind,
                                           Durability, const WriteDone&) {
    return false;
  }
  // Reads [offset, offset + length), lets `modify` change the bytes, and writes them back as
  // WriteAtomic would, all under one exclusive hold of the range: no other write to these
  // blocks lands between the read and the write (COMPARE AND WRITE, ORWRITE). `modify` returns
  // false to write nothing (a miscompare); Update then returns Ok having written nothing.
  using Modify = std::function<bool(std::span<uint8_t> blocks)>;
  virtual Status Update(uint64_t offset, uint64_t length, const Modify& modify, Durability d) = 0;
  // Makes every completed write durable.
  virtual Status Flush() = 0;
  // Deallocates a range; it then reads as zeros. kDurable: the deallocation survives a power
  // cut once this returns, as a durable write would.
  virtual Status Unmap(uint64_t offset, uint64_t length, Durability d) = 0;
  // Provisioning status of the extent starting at `offset` (GET LBA STATUS): how many bytes,
  // at most max_length and in whole blocks, share the status of the first block. May answer
  // "mapped" for deallocated space, never the other way round.
  struct Extent {
    uint64_t length = 0;
    bool mapped = true;
  };
  [[nodiscard]] virtual Extent Provisioning(uint64_t offset, uint64_t max_length) = 0;

  // Changes the size to `new_size` bytes (a non-zero multiple of block_size()): growing adds
  // blocks that read as zeros; shrinking drops the blocks past the new end. Waits for the reads
  // and writes in flight; those that start later are checked against the new size. Durable
  // when it returns. The default cannot.
  virtual Status Resize(uint64_t /*new_size*/) {
    return Status::Error(Status::Code::kInvalid, "this store cannot be resized");
  }
};

}  // namespace untorn::storage
