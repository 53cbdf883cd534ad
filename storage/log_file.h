// FileSystem::OpenLog's file: writes kept in memory, in 512-byte units, until the next Sync
// writes them straight to the device (past the page cache), contiguous ones in one request, and
// then syncs. Reads and every other call see the kept writes (they are written out first). A
// failed straight write or sync is sticky: what was kept is gone, so no later Sync may succeed,
// and every later one names the first failure.
//
// How a run of buffers reaches the device is the StraightWriter's: pwritev on an O_DIRECT
// descriptor for the real file system (posix_file_system.cc), plain writes for the in-memory
// one, so that the power-cut simulator runs the journal through this same file. Thread-safe.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "storage/file_system.h"

namespace untorn::storage {

class StraightWriter {
 public:
  virtual ~StraightWriter() = default;
  // Writes the buffers one after another from `offset`, all of them or an error.
  virtual Status WriteStraight(uint64_t offset, std::span<const iovec> buffers) = 0;
};

class LogFile final : public File {
 public:
  // `file` serves reads and everything but the kept writes; `mem_align` is the alignment the
  // writer needs of its buffers.
  LogFile(std::unique_ptr<File> file, std::unique_ptr<StraightWriter> writer, std::string path,
          size_t mem_align);
  ~LogFile() override;  // writes what is kept, unsynced, as a buffered file's close would

  Status PWrite(uint64_t offset, std::span<const uint8_t> data) override;
  Status PWriteParts(uint64_t offset,
                     std::initializer_list<std::span<const uint8_t>> parts) override;
  Status Sync() override;
  Status PRead(uint64_t offset, std::span<uint8_t> out) override;
  Status Truncate(uint64_t size) override;
  Status WriteBack(uint64_t offset, uint64_t length) override;
  Status Allocate(uint64_t offset, uint64_t length) override {
    return file_->Allocate(offset, length);
  }
  uint64_t Size() override;
  Status PunchHole(uint64_t offset, uint64_t length) override;
  uint64_t NextData(uint64_t offset) override;
  uint64_t NextHole(uint64_t offset) override;
  uint32_t PhysicalBlockSize() override { return file_->PhysicalBlockSize(); }

 private:
  static constexpr uint64_t kUnit = 512;
  struct Free {
    void operator()(uint8_t* p) const;
  };
  using Buffer = std::unique_ptr<uint8_t, Free>;
  struct Kept {
    uint64_t offset;
    size_t length;
    Buffer data;
  };

  [[nodiscard]] bool OverlapsKeptLocked(uint64_t offset, uint64_t length) const;
  Status WriteKept();
  Status WriteKeptLocked();

  const std::unique_ptr<File> file_;
  const std::unique_ptr<StraightWriter> writer_;
  const std::string path_;
  const size_t mem_align_;
  std::mutex sync_mu_;  // one writer of what is kept at a time; taken before mu_
  Status failure_;      // guarded by sync_mu_: the first failed write or sync, sticky
  std::mutex mu_;
  std::map<uint64_t, Kept> kept_;  // guarded by mu_: by offset, disjoint
};

}  // namespace untorn::storage
