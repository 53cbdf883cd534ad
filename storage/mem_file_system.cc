#include "storage/mem_file_system.h"

#include <algorithm>
#include <cstring>

#include "storage/log_file.h"

namespace untorn::storage {

class MemFile final : public File {
 public:
  MemFile(MemFileSystem* fs, uint64_t node, bool read_only)
      : fs_(fs), node_(node), read_only_(read_only) {}
  bool TryPReadNoWait(uint64_t offset, std::span<uint8_t> out) override {
    return fs_->FileRead(node_, offset, out).ok();  // memory never waits for a device
  }
  Status PRead(uint64_t offset, std::span<uint8_t> out) override {
    return fs_->FileRead(node_, offset, out);
  }
  Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    if (read_only_) return Status::Error(Status::Code::kReadOnly, "read-only file");
    return fs_->FileWrite(node_, offset, data);
  }
  Status Sync() override { return fs_->FileSync(node_); }
  Status Truncate(uint64_t size) override { return fs_->FileTruncate(node_, size); }
  Status Allocate(uint64_t, uint64_t) override { return fs_->FileAllocate(node_); }
  uint64_t Size() override { return fs_->FileSize(node_); }
  Status PunchHole(uint64_t offset, uint64_t length) override {
    // Modelled as a write of zeros: what a crash can leave of it is the same.
    const uint64_t size = Size();
    if (offset >= size) return Status::Ok();
    const uint64_t n = std::min(length, size - offset);
    std::vector<uint8_t> zeros(n, 0);
    return fs_->FileWrite(node_, offset, zeros);
  }
  uint64_t NextData(uint64_t offset) override { return offset < Size() ? offset : UINT64_MAX; }
  uint32_t PhysicalBlockSize() override { return fs_->sector(); }
  uint64_t NextHole(uint64_t) override { return Size(); }

 private:
  MemFileSystem* const fs_;
  const uint64_t node_;
  const bool read_only_;
};

// OpenLog's straight writes: logged writes like any other (a power cut keeps any subset of
// their sectors until the Sync that follows them).
class MemStraightWriter final : public StraightWriter {
 public:
  explicit MemStraightWriter(std::unique_ptr<File> file) : file_(std::move(file)) {}
  Status WriteStraight(uint64_t offset, std::span<const iovec> buffers) override {
    for (const iovec& b : buffers) {
      const std::span<const uint8_t> bytes(static_cast<const uint8_t*>(b.iov_base), b.iov_len);
      if (Status s = file_->PWrite(offset, bytes); !s.ok()) return s;
      offset += b.iov_len;
    }
    return Status::Ok();
  }

 private:
  const std::unique_ptr<File> file_;
};

void MemFileSystem::Log(Event e) { log_.push_back(std::move(e)); }

Status MemFileSystem::OpenLog(const std::string& path, std::unique_ptr<File>* out) {
  std::unique_ptr<File> file, straight;
  if (Status s = Open(path, false, false, &file); !s.ok()) return s;
  if (Status s = Open(path, false, false, &straight); !s.ok()) return s;
  *out = std::make_unique<LogFile>(
      std::move(file), std::make_unique<MemStraightWriter>(std::move(straight)), path, 512);
  return Status::Ok();
}

size_t MemFileSystem::UnreadableSectors() {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& [id, node] : nodes_) n += node.unreadable.size();
  return n;
}

Status MemFileSystem::CheckSyncFault() {
  if (syncs_left_ == 0) return Status::Error(Status::Code::kSyncFailed, "injected sync failure");
  if (syncs_left_ > 0) --syncs_left_;
  return Status::Ok();
}

Status MemFileSystem::Open(const std::string& path, bool create, bool read_only,
                           std::unique_ptr<File>* out) {
  std::lock_guard lk(mu_);
  auto it = names_.find(path);
  if (it == names_.end()) {
    if (!create || read_only) return Status::Error(Status::Code::kIoError, "no such file " + path);
    const uint64_t id = next_node_++;
    nodes_[id] = Node{};
    it = names_.emplace(path, id).first;
    Log({Event::Kind::kCreate, id, path});
  }
  *out = std::make_unique<MemFile>(this, it->second, read_only);
  return Status::Ok();
}

bool MemFileSystem::Exists(const std::string& path) {
  std::lock_guard lk(mu_);
  return names_.count(path) != 0;
}

Status MemFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard lk(mu_);
  auto it = names_.find(from);
  if (it == names_.end()) return Status::Error(Status::Code::kIoError, "no such file " + from);
  const uint64_t id = it->second;
  names_.erase(it);
  names_[to] = id;
  Log({Event::Kind::kRename, id, from, to});
  return Status::Ok();
}

Status MemFileSystem::Remove(const std::string& path) {
  std::lock_guard lk(mu_);
  names_.erase(path);
  Log({Event::Kind::kRemove, 0, path});
  return Status::Ok();
}

Status MemFileSystem::SyncDir(const std::string& path) {
  std::lock_guard lk(mu_);
  if (Status s = CheckSyncFault(); !s.ok()) return s;
  Log({Event::Kind::kSyncDir, 0, path});
  return Status::Ok();
}

void MemFileSystem::Mark(uint64_t value) {
  std::lock_guard lk(mu_);
  Log({Event::Kind::kMark, 0, {}, {}, value});
}

std::vector<MemFileSystem::Event> MemFileSystem::Events() {
  std::lock_guard lk(mu_);
  return log_;
}

size_t MemFileSystem::EventCount() {
  std::lock_guard lk(mu_);
  return log_.size();
}

void MemFileSystem::RestartLog() {
  std::lock_guard lk(mu_);
  base_nodes_ = nodes_;
  base_names_ = names_;
  log_.clear();
}

void MemFileSystem::FailSyncsAfter(int syncs_left) {
  std::lock_guard lk(mu_);
  syncs_left_ = syncs_left;
}

void MemFileSystem::FailWrites(bool fail) {
  std::lock_guard lk(mu_);
  fail_writes_ = fail;
}

void MemFileSystem::SetNoSpace(const std::string& path, bool full) {
  std::lock_guard lk(mu_);
  auto it = names_.find(path);
  if (it == names_.end()) return;
  if (full) {
    no_space_.insert(it->second);
  } else {
    no_space_.erase(it->second);
  }
}

Status MemFileSystem::FileAllocate(uint64_t node) {
  std::lock_guard lk(mu_);
  if (no_space_.contains(node)) return Status::Error(Status::Code::kNoSpace, "injected: no space");
  return Status::Ok();
}

std::vector<uint8_t> MemFileSystem::Contents(const std::string& path) {
  std::lock_guard lk(mu_);
  auto it = names_.find(path);
  return it == names_.end() ? std::vector<uint8_t>{} : nodes_[it->second].data;
}

Status MemFileSystem::FileWrite(uint64_t node, uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lk(mu_);
  if (fail_writes_) return Status::Error(Status::Code::kIoError, "injected write failure");
  if (no_space_.contains(node)) return Status::Error(Status::Code::kNoSpace, "injected: no space");
  if (data.empty()) return Status::Ok();
  std::set<uint64_t>& bad = nodes_[node].unreadable;
  const uint64_t first = offset / sector_, last = (offset + data.size() - 1) / sector_;
  for (auto it = bad.lower_bound(first); it != bad.end() && *it <= last;) {
    // A write of a whole unreadable sector makes it good; part of one needs the rest of it,
    // which cannot be read (a 512e disk's read-modify-write fails the same way).
    if (*it * sector_ < offset || (*it + 1) * sector_ > offset + data.size()) {
      return Status::Error(Status::Code::kIoError,
                           "write into unreadable sector " + std::to_string(*it));
    }
    it = bad.erase(it);
  }
  auto& d = nodes_[node].data;
  if (d.size() < offset + data.size()) d.resize(offset + data.size(), 0);
  std::copy(data.begin(), data.end(), d.begin() + static_cast<ptrdiff_t>(offset));
  log_.push_back({Event::Kind::kWrite, node, {}, {}, offset, {data.begin(), data.end()}});
  return Status::Ok();
}

Status MemFileSystem::FileRead(uint64_t node, uint64_t offset, std::span<uint8_t> out) {
  std::lock_guard lk(mu_);
  const std::set<uint64_t>& bad = nodes_[node].unreadable;
  if (!bad.empty() && !out.empty()) {
    auto it = bad.lower_bound(offset / sector_);
    if (it != bad.end() && *it <= (offset + out.size() - 1) / sector_) {
      return Status::Error(Status::Code::kIoError,
                           "unrecovered read error: sector " + std::to_string(*it));
    }
  }
  const auto& d = nodes_[node].data;
  std::fill(out.begin(), out.end(), 0);
  if (offset < d.size()) {
    const size_t n = std::min<size_t>(out.size(), d.size() - offset);
    std::copy_n(d.begin() + static_cast<ptrdiff_t>(offset), n, out.begin());
  }
  return Status::Ok();
}

Status MemFileSystem::FileSync(uint64_t node) {
  std::lock_guard lk(mu_);
  if (Status s = CheckSyncFault(); !s.ok()) return s;
  Log({Event::Kind::kSync, node});
  return Status::Ok();
}

Status MemFileSystem::FileTruncate(uint64_t node, uint64_t size) {
  std::lock_guard lk(mu_);
  nodes_[node].data.resize(size, 0);
  Log({Event::Kind::kTruncate, node, {}, {}, size});
  return Status::Ok();
}

uint64_t MemFileSystem::FileSize(uint64_t node) {
  std::lock_guard lk(mu_);
  return nodes_[node].data.size();
}

std::unique_ptr<MemFileSystem> MemFileSystem::CrashState(size_t prefix, std::mt19937_64& rng,
                                                         double unreadable) {
  const uint32_t sector = sector_;
  std::lock_guard lk(mu_);
  const std::vector<Event>& events = log_;
  struct Pending {
    bool truncate;
    uint64_t offset;
    std::vector<uint8_t> data;
  };
  struct NodeState {
    std::vector<uint8_t> durable;
    std::set<uint64_t> unreadable;
    std::vector<Pending> pending;  // since the last sync, in order
  };
  std::map<uint64_t, NodeState> nodes;
  for (const auto& [id, n] : base_nodes_) {
    nodes[id].durable = n.data;
    nodes[id].unreadable = n.unreadable;
  }
  std::map<std::string, uint64_t> durable_names = base_names_;
  std::vector<const Event*> pending_names;  // namespace events since the last directory sync
  std::map<std::string, uint64_t> current_names = base_names_;

  prefix = std::min(prefix, events.size());
  for (size_t i = 0; i < prefix; ++i) {
    const Event& e = events[i];
    switch (e.kind) {
      case Event::Kind::kCreate:
        nodes[e.node];
        current_names[e.path] = e.node;
        pending_names.push_back(&e);
        break;
      case Event::Kind::kWrite:
        nodes[e.node].pending.push_back({false, e.offset, e.data});
        break;
      case Event::Kind::kTruncate:
        nodes[e.node].pending.push_back({true, e.offset, {}});
        break;
      case Event::Kind::kSync: {
        NodeState& n = nodes[e.node];
        for (const Pending& p : n.pending) {
          if (p.truncate) {
            n.durable.resize(p.offset, 0);
          } else {
            if (n.durable.size() < p.offset + p.data.size())
              n.durable.resize(p.offset + p.data.size(), 0);
            std::copy(p.data.begin(), p.data.end(),
                      n.durable.begin() + static_cast<ptrdiff_t>(p.offset));
            // Whole sectors written are readable again (the write succeeded, so it covered
            // every unreadable sector it touched).
            for (uint64_t at = p.offset; at < p.offset + p.data.size(); at += sector) {
              n.unreadable.erase(at / sector);
            }
          }
        }
        n.pending.clear();
        break;
      }
      case Event::Kind::kRename:
        current_names.erase(e.path);
        current_names[e.path2] = e.node;
        pending_names.push_back(&e);
        break;
      case Event::Kind::kRemove:
        current_names.erase(e.path);
        pending_names.push_back(&e);
        break;
      case Event::Kind::kSyncDir:
        durable_names = current_names;
        pending_names.clear();
        break;
      case Event::Kind::kMark:
        break;
    }
  }
  // Namespace: the durable names plus a random prefix of the later changes (journaling file
  // systems commit metadata in order).
  std::uniform_int_distribution<size_t> upto(0, pending_names.size());
  const size_t keep = upto(rng);
  std::map<std::string, uint64_t> names = durable_names;
  for (size_t i = 0; i < keep; ++i) {
    const Event& e = *pending_names[i];
    if (e.kind == Event::Kind::kCreate) names[e.path] = e.node;
    if (e.kind == Event::Kind::kRename) {
      names.erase(e.path);
      names[e.path2] = e.node;
    }
    if (e.kind == Event::Kind::kRemove) names.erase(e.path);
  }
  // Contents: durable, then a random subset of the unsynced sector-sized pieces in random order.
  auto fs = std::make_unique<MemFileSystem>(sector);
  std::bernoulli_distribution coin(0.5);
  std::bernoulli_distribution lost_sector(unreadable);
  for (auto& [id, n] : nodes) {
    std::vector<uint8_t> data = n.durable;
    struct Piece {
      bool truncate;
      uint64_t offset;
      const uint8_t* bytes;
      size_t length;
    };
    std::vector<Piece> pieces;
    for (const Pending& p : n.pending) {
      if (p.truncate) {
        pieces.push_back({true, p.offset, nullptr, 0});
        continue;
      }
      for (uint64_t off = p.offset; off < p.offset + p.data.size();) {
        const uint64_t next =
            std::min<uint64_t>((off / sector + 1) * sector, p.offset + p.data.size());
        pieces.push_back({false, off, p.data.data() + (off - p.offset), next - off});
        off = next;
      }
    }
    std::shuffle(pieces.begin(), pieces.end(), rng);
    std::set<uint64_t> bad = n.unreadable;  // a sector unreadable before stays so unless written
    for (const Piece& pc : pieces) {
      if (pc.truncate) {
        if (coin(rng)) data.resize(pc.offset, 0);
        continue;
      }
      // The sector this piece was being written to: its old bytes, its new ones, or neither.
      const uint64_t s = pc.offset / sector;
      if (unreadable > 0 && lost_sector(rng)) {
        bad.insert(s);
        continue;
      }
      if (!coin(rng)) continue;
      if (pc.length == sector) bad.erase(s);
      if (data.size() < pc.offset + pc.length) data.resize(pc.offset + pc.length, 0);
      std::memcpy(data.data() + pc.offset, pc.bytes, pc.length);
    }
    fs->nodes_[id] = Node{std::move(data), std::move(bad)};
  }
  for (const auto& [path, id] : names) fs->names_[path] = id;
  fs->next_node_ = (nodes.empty() ? 0 : nodes.rbegin()->first) + 1;
  fs->base_nodes_ = fs->nodes_;
  fs->base_names_ = fs->names_;
  return fs;
}

}  // namespace untorn::storage
