// A FileSystem decorator that injects faults into the calls of another (after leveldb's
// fault-injection Env and RocksDB's FaultInjectionTestFS): any call on a file whose path ends
// in a given suffix (".journal", ".img", ".super") fails with EIO-like or ENOSPC-like status at
// a chosen call number, a PWrite can first write a whole-sector prefix and then fail (a torn
// write), and a hook sees every call before it runs, so a test can hold one call until another
// has arrived and force an interleaving.
//
// Counting is per rule: a rule's `nth` is the nth call, from when it was added, that matches its
// operation and path suffix. A rule fires once, or on every matching call from the nth on
// (`sticky`). Thread-safe; the hook runs on the caller's thread with no lock held.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/file_system.h"

namespace untorn::storage {

class FaultFileSystem final : public FileSystem {
 public:
  enum class Op {
    kPRead,
    kPWrite,
    kSync,
    kWriteBack,
    kTruncate,
    kAllocate,
    kPunchHole,
    kOpen,
    kRename,
    kSyncDir
  };
  struct Call {
    Op op;
    const std::string& path;
    uint64_t offset = 0, length = 0;
  };
  struct Fault {
    Op op = Op::kPWrite;
    std::string path_suffix;  // "" matches every file
    uint64_t nth = 1;         // 1: the next matching call
    Status::Code code = Status::Code::kIoError;
    bool sticky = false;  // every matching call from the nth on
    // PWrite: before failing, write the first half of the data rounded down to whole sectors
    // of this many bytes (0: write nothing). What reached the file is then a torn write.
    uint32_t torn_sector = 0;
  };
  using Hook = std::function<void(const Call&)>;

  explicit FaultFileSystem(FileSystem* base) : base_(base) {}

  void Inject(Fault f);
  void ClearFaults();
  // Runs before every call (after it is counted, before it is passed on or failed).
  void SetHook(Hook hook);
  [[nodiscard]] uint64_t injected() const { return injected_.load(); }
  [[nodiscard]] static const char* OpName(Op op);

  Status Open(const std::string& path, bool create, bool read_only,
              std::unique_ptr<File>* out) override;
  Status OpenLog(const std::string& path, std::unique_ptr<File>* out) override;
  bool Exists(const std::string& path) override { return base_->Exists(path); }
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override { return base_->Remove(path); }
  Status SyncDir(const std::string& path) override;

  // The fault this call gets, if any, after running the hook. Used by the files it opens.
  struct Decision {
    bool fail = false;
    Status::Code code = Status::Code::kOk;
    uint32_t torn_sector = 0;
  };
  Decision Check(const Call& call);

 private:
  struct Rule {
    Fault fault;
    uint64_t seen = 0;
    bool spent = false;
  };
  FileSystem* const base_;
  std::mutex mu_;
  std::vector<Rule> rules_;  // guarded by mu_
  Hook hook_;                // guarded by mu_ (copied out before it runs)
  std::atomic<uint64_t> injected_{0};
};

}  // namespace untorn::storage
