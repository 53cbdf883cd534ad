#include "storage/fault_file_system.h"

#include <utility>

namespace untorn::storage {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status Injected(FaultFileSystem::Op op, const std::string& path, Status::Code code) {
  const char* what =
      code == Status::Code::kNoSpace ? "no space left on device" : "input/output error";
  return Status::Error(
      code, std::string("injected: ") + FaultFileSystem::OpName(op) + " " + path + ": " + what);
}

// A file of the decorated file system: every call asks the FaultFileSystem first.
class FaultFile final : public File {
 public:
  FaultFile(FaultFileSystem* fs, std::unique_ptr<File> base, std::string path)
      : fs_(fs), base_(std::move(base)), path_(std::move(path)) {}

  Status PRead(uint64_t offset, std::span<uint8_t> out) override {
    if (auto d = Check(FaultFileSystem::Op::kPRead, offset, out.size()); d.fail) {
      return Injected(FaultFileSystem::Op::kPRead, path_, d.code);
    }
    return base_->PRead(offset, out);
  }
  bool TryPReadNoWait(uint64_t, std::span<uint8_t>) override { return false; }  // PRead decides
  Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    const auto d = Check(FaultFileSystem::Op::kPWrite, offset, data.size());
    if (!d.fail) return base_->PWrite(offset, data);
    if (d.torn_sector != 0) {
      const size_t prefix = data.size() / 2 / d.torn_sector * d.torn_sector;
      if (prefix > 0) (void)base_->PWrite(offset, data.first(prefix));
    }
    return Injected(FaultFileSystem::Op::kPWrite, path_, d.code);
  }
  // Joined here so that a fault sees the whole write, as the default does.
  Status PWriteParts(uint64_t offset,
                     std::initializer_list<std::span<const uint8_t>> parts) override {
    return File::PWriteParts(offset, parts);
  }
  Status Sync() override {
    return Simple(FaultFileSystem::Op::kSync, 0, 0, [&] { return base_->Sync(); });
  }
  Status WriteBack(uint64_t offset, uint64_t length) override {
    return Simple(FaultFileSystem::Op::kWriteBack, offset, length,
                  [&] { return base_->WriteBack(offset, length); });
  }
  Status Truncate(uint64_t size) override {
    return Simple(FaultFileSystem::Op::kTruncate, size, 0, [&] { return base_->Truncate(size); });
  }
  Status Allocate(uint64_t offset, uint64_t length) override {
    return Simple(FaultFileSystem::Op::kAllocate, offset, length,
                  [&] { return base_->Allocate(offset, length); });
  }
  uint64_t Size() override { return base_->Size(); }
  Status PunchHole(uint64_t offset, uint64_t length) override {
    return Simple(FaultFileSystem::Op::kPunchHole, offset, length,
                  [&] { return base_->PunchHole(offset, length); });
  }
  uint64_t NextData(uint64_t offset) override { return base_->NextData(offset); }
  uint64_t NextHole(uint64_t offset) override { return base_->NextHole(offset); }

 private:
  FaultFileSystem::Decision Check(FaultFileSystem::Op op, uint64_t offset, uint64_t length) {
    return fs_->Check({op, path_, offset, length});
  }
  template <typename F>
  Status Simple(FaultFileSystem::Op op, uint64_t offset, uint64_t length, F&& call) {
    if (auto d = Check(op, offset, length); d.fail) return Injected(op, path_, d.code);
    return call();
  }

  FaultFileSystem* const fs_;
  const std::unique_ptr<File> base_;
  const std::string path_;
};

}  // namespace

const char* FaultFileSystem::OpName(Op op) {
  switch (op) {
    case Op::kPRead:
      return "pread";
    case Op::kPWrite:
      return "pwrite";
    case Op::kSync:
      return "fdatasync";
    case Op::kWriteBack:
      return "sync_file_range";
    case Op::kTruncate:
      return "ftruncate";
    case Op::kAllocate:
      return "fallocate";
    case Op::kPunchHole:
      return "punch hole";
    case Op::kOpen:
      return "open";
    case Op::kRename:
      return "rename";
    case Op::kSyncDir:
      return "fsync (directory)";
  }
  return "?";
}

void FaultFileSystem::Inject(Fault f) {
  std::lock_guard lk(mu_);
  rules_.push_back({std::move(f)});
}

void FaultFileSystem::ClearFaults() {
  std::lock_guard lk(mu_);
  rules_.clear();
}

void FaultFileSystem::SetHook(Hook hook) {
  std::lock_guard lk(mu_);
  hook_ = std::move(hook);
}

FaultFileSystem::Decision FaultFileSystem::Check(const Call& call) {
  Decision d;
  Hook hook;
  {
    std::lock_guard lk(mu_);
    hook = hook_;
    for (Rule& r : rules_) {
      if (r.spent || r.fault.op != call.op || !EndsWith(call.path, r.fault.path_suffix)) continue;
      if (++r.seen < r.fault.nth) continue;
      if (!r.fault.sticky) r.spent = true;
      if (!d.fail) d = {true, r.fault.code, r.fault.torn_sector};
    }
  }
  if (hook) hook(call);
  if (d.fail) injected_.fetch_add(1);
  return d;
}

Status FaultFileSystem::Open(const std::string& path, bool create, bool read_only,
                             std::unique_ptr<File>* out) {
  if (auto d = Check({Op::kOpen, path}); d.fail) return Injected(Op::kOpen, path, d.code);
  std::unique_ptr<File> f;
  if (Status s = base_->Open(path, create, read_only, &f); !s.ok()) return s;
  *out = std::make_unique<FaultFile>(this, std::move(f), path);
  return Status::Ok();
}

Status FaultFileSystem::OpenLog(const std::string& path, std::unique_ptr<File>* out) {
  if (auto d = Check({Op::kOpen, path}); d.fail) return Injected(Op::kOpen, path, d.code);
  std::unique_ptr<File> f;
  if (Status s = base_->OpenLog(path, &f); !s.ok()) return s;
  *out = std::make_unique<FaultFile>(this, std::move(f), path);
  return Status::Ok();
}

Status FaultFileSystem::Rename(const std::string& from, const std::string& to) {
  if (auto d = Check({Op::kRename, to}); d.fail) return Injected(Op::kRename, to, d.code);
  return base_->Rename(from, to);
}

Status FaultFileSystem::SyncDir(const std::string& path) {
  if (auto d = Check({Op::kSyncDir, path}); d.fail) return Injected(Op::kSyncDir, path, d.code);
  return base_->SyncDir(path);
}

}  // namespace untorn::storage
