// An in-memory FileSystem that logs every mutation, and the power-cut simulator built on the log.
//
// MemFileSystem behaves like a POSIX file system whose every write, truncate, sync, create,
// rename and directory sync is appended to an event log. CrashState() replays a prefix of that
// log and returns the on-disk state a power cut at that moment could leave: everything synced
// survives; of what was written since its file's last sync, any subset of sector-sized pieces
// survives, in any order (so a journal record can be half written), and a sector being written
// may come back unreadable (a read error until a write covers it whole), as a disk's sector does
// when the power goes while the disk writes it; namespace changes survive up to the last
// directory sync plus any prefix of the later ones.
//
// The sector is the simulated device's physical block (File::PhysicalBlockSize); OpenLog runs
// the journal through LogFile, as on the real file system, with its straight writes logged as
// writes.
//
// Thread-safe: one mutex guards the whole file system.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include "storage/file_system.h"

namespace untorn::storage {

class MemFileSystem final : public FileSystem {
 public:
  struct Event {
    enum class Kind { kCreate, kWrite, kTruncate, kSync, kRename, kRemove, kSyncDir, kMark };
    Kind kind;
    uint64_t node = 0;  // file identity (survives renames)
    std::string path, path2;
    uint64_t offset = 0;  // write offset, truncate size, or mark value
    std::vector<uint8_t> data;
  };

  explicit MemFileSystem(uint32_t sector = 512) : sector_(sector) {}
  [[nodiscard]] uint32_t sector() const { return sector_; }

  Status Open(const std::string& path, bool create, bool read_only,
              std::unique_ptr<File>* out) override;
  bool Exists(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status OpenLog(const std::string& path, std::unique_ptr<File>* out) override;

  // A test's own point in the log (e.g. "write 17 was acknowledged as durable").
  void Mark(uint64_t value);
  [[nodiscard]] std::vector<Event> Events();
  [[nodiscard]] size_t EventCount();
  // Takes the current state as the durable base of a new, empty log (e.g. for a file system
  // CrashState made, before recovering on it, to crash recovery itself).
  void RestartLog();

  // Fault injection: every Sync (file or directory) fails once `syncs_left` more succeeded.
  void FailSyncsAfter(int syncs_left);
  void FailWrites(bool fail);
  // The file at `path` gets no more room: its PWrites and Allocates fail with kNoSpace (stricter
  // than a real full file system, where overwriting allocated blocks still works).
  void SetNoSpace(const std::string& path, bool full);

  // Contents of a file as the current (not crashed) state holds it; empty if absent.
  [[nodiscard]] std::vector<uint8_t> Contents(const std::string& path);

  // Builds the state a power cut after the first `prefix` events of the log could leave: each
  // sector an unsynced write touches comes back unreadable with probability `unreadable`.
  [[nodiscard]] std::unique_ptr<MemFileSystem> CrashState(size_t prefix, std::mt19937_64& rng,
                                                          double unreadable = 0);
  // Sectors that read as errors now, over all files.
  [[nodiscard]] size_t UnreadableSectors();

 private:
  friend class MemFile;
  struct Node {
    std::vector<uint8_t> data;
    std::set<uint64_t> unreadable;  // sector numbers: reads fail until a write covers them
  };
  void Log(Event e);
  Status FileWrite(uint64_t node, uint64_t offset, std::span<const uint8_t> data);
  Status FileRead(uint64_t node, uint64_t offset, std::span<uint8_t> out);
  Status FileSync(uint64_t node);
  Status FileTruncate(uint64_t node, uint64_t size);
  Status FileAllocate(uint64_t node);
  uint64_t FileSize(uint64_t node);
  Status CheckSyncFault();

  const uint32_t sector_;
  std::mutex mu_;
  std::map<uint64_t, Node> nodes_;              // guarded by mu_
  std::map<std::string, uint64_t> names_;       // guarded by mu_
  std::vector<Event> log_;                      // guarded by mu_
  std::map<uint64_t, Node> base_nodes_;         // guarded by mu_: durable state the log starts from
  std::map<std::string, uint64_t> base_names_;  // guarded by mu_
  uint64_t next_node_ = 1;                      // guarded by mu_
  int syncs_left_ = -1;                         // guarded by mu_; -1 = never fail
  bool fail_writes_ = false;                    // guarded by mu_
  std::set<uint64_t> no_space_;                 // guarded by mu_: nodes that get no more room
};

}  // namespace untorn::storage
