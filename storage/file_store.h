// BlockStore over one regular file (sparse, created at the configured size). Plain writes go
// straight to the file; atomic writes are isolated from overlapping I/O by a RangeLock, so a
// reader never sees half of one. Crash atomicity of WriteAtomic needs the journaled store; this
// store provides isolation only and says so in its name in logs. A failed fdatasync or write is
// sticky (every later write is refused, kReadOnly, until restart); a full file system is not.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "storage/block_store.h"
#include "storage/file_system.h"
#include "storage/range_lock.h"

namespace untorn::storage {

class FileStore final : public BlockStore {
 public:
  struct Options {
    std::string path;
    uint64_t size_bytes = 0;
    uint32_t block_size = 512;
    bool read_only = false;
    bool preallocate = false;  // thick: reserve the whole file at Open
    FileSystem* fs = nullptr;  // default: the real file system
  };
  // Opens (creating and sizing if needed) the file. A file larger than size_bytes is served at
  // size_bytes; a smaller one is extended (sparse).
  static Status Open(const Options& options, std::unique_ptr<FileStore>* out);
  ~FileStore() override;

  [[nodiscard]] uint32_t block_size() const override { return block_size_; }
  [[nodiscard]] uint64_t size_bytes() const override { return size_bytes_.load(); }
  Status Read(uint64_t offset, std::span<uint8_t> out) override;
  [[nodiscard]] std::unique_ptr<MappedRead> ReadMapped(uint64_t offset, uint64_t length) override;
  Status Write(uint64_t offset, std::span<const uint8_t> data, Durability d) override;
  Status WriteAtomic(uint64_t offset, std::span<const uint8_t> data, Durability d) override;
  Status Update(uint64_t offset, uint64_t length, const Modify& modify, Durability d) override;
  Status Flush() override;
  Status Unmap(uint64_t offset, uint64_t length, Durability d) override;
  [[nodiscard]] Extent Provisioning(uint64_t offset, uint64_t max_length) override;
  // Under an exclusive lock of the whole LUN: the file is cut or extended (reserved, if thick)
  // and synced, then served at the new size.
  Status Resize(uint64_t new_size) override;

 private:
  FileStore(std::unique_ptr<File> file, const Options& o);
  Status CheckRange(uint64_t offset, uint64_t length) const;
  Status CheckWritable(uint64_t offset, uint64_t length) const;
  // Lock(), then the range checked again: a Resize that shrank the store while it waited.
  [[nodiscard]] std::optional<RangeLock::Guard> LockInRange(uint64_t offset, uint64_t length,
                                                            RangeLock::Mode mode, Status* s);
  Status WriteLocked(uint64_t offset, std::span<const uint8_t> data, Durability d);
  Status WriteFailed(Status s);  // sticky unless out of space

  const std::unique_ptr<File> file_;
  std::atomic<uint64_t> size_bytes_;
  const uint32_t block_size_;
  const bool read_only_;
  const bool preallocate_;
  std::atomic<bool> failed_{false};  // sticky after a failed write or sync
  RangeLock locks_;
};

// Reserves all of a thick LUN's file at open (Options::preallocate, here and in JournaledStore),
// so that a full file system shows then, with the size in the message.
Status ReserveThick(File& file, uint64_t size_bytes);

// What Provisioning answers for a store over `file`: the run of blocks from `offset` (at most
// `max_length` bytes) that is all mapped or all deallocated. Shared with JournaledStore.
BlockStore::Extent ProvisionedExtent(File& file, uint64_t size_bytes, uint32_t block_size,
                                     uint64_t offset, uint64_t max_length);

}  // namespace untorn::storage
