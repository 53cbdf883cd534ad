// The oracle shared by the power-cut simulation and the fault-injection test: writes stamp each
// block with (op id, LBA, index), marks in the in-memory file system's event log say when each
// op was issued and acknowledged and when each flush began and ended, and Verify reads back a
// recovered store and classifies every block:
//   torn      an atomic write partly present, partly replaced by what was there before it (or
//             partly unreadable where no later write was)
//   lost      a block older than the newest write acknowledged durable before the cut, or
//             unreadable where that write is the newest issued there
//   reverted  that older block comes from an atomic write (replay undid a later write)
//   corrupt   a block that no write ever wrote
// Op ids of overlapping ops follow their order (callers keep overlapping ops apart in time). A
// block of zeros is what the newest UNMAP issued there before the cut left (or never written).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <vector>

#include "storage/block_store.h"
#include "storage/mem_file_system.h"

namespace untorn::storage::testing {

inline constexpr uint64_t kNever = UINT64_MAX;
inline constexpr uint64_t kUnreadableBlock = UINT64_MAX - 1;

enum MarkType : uint64_t { kIssue = 1, kDone = 2, kFlushStart = 3, kFlushDone = 4 };
inline uint64_t MarkOf(MarkType t, uint64_t id) { return (uint64_t{t} << 56) | id; }

struct Op {
  uint64_t id = 0;
  bool atomic = false, fua = false, flush = false, unmap = false;
  uint32_t lba = 0, blocks = 0;
  uint64_t issue = kNever, done = kNever, durable = kNever;  // event indexes
};

struct Counts {
  uint64_t crash_points = 0, recovery_crashes = 0, atomic_checked = 0;
  uint64_t torn = 0, lost = 0, reverted = 0, corrupt = 0, unreadable = 0;
};

class CrashChecker {
 public:
  CrashChecker(uint32_t block, uint32_t blocks) : block_(block), blocks_(blocks) {}

  [[nodiscard]] uint32_t block() const { return block_; }
  [[nodiscard]] uint32_t blocks() const { return blocks_; }

  // The data op `id` writes to [lba, lba + n).
  [[nodiscard]] std::vector<uint8_t> Data(uint64_t id, uint32_t lba, uint32_t n) const {
    std::vector<uint8_t> data(size_t{n} * block_);
    for (uint32_t b = 0; b < n; ++b) Stamp(data, size_t{b} * block_, id, lba + b, b);
    return data;
  }

  // Fills issue/done/durable from the marks in `events`. Durable: acknowledged with
  // `durable_when_done` (FUA, write-through, atomic), or covered by a flush that began after
  // the op was acknowledged and completed.
  static void Analyse(const std::vector<MemFileSystem::Event>& events, std::vector<Op>& ops,
                      bool plain_cached = true) {
    std::vector<std::pair<uint64_t, uint64_t>> flushes;  // (start, done) event indexes
    std::map<uint64_t, uint64_t> flush_start;
    for (uint64_t i = 0; i < events.size(); ++i) {
      if (events[i].kind != MemFileSystem::Event::Kind::kMark) continue;
      const uint64_t type = events[i].offset >> 56, id = events[i].offset & ((1ull << 56) - 1);
      if (id >= ops.size()) continue;
      if (type == kIssue) ops[id].issue = i;
      if (type == kDone) ops[id].done = i;
      if (type == kFlushStart) flush_start[id] = i;
      if (type == kFlushDone) flushes.push_back({flush_start[id], i});
    }
    for (Op& op : ops) {
      if (op.id == 0 || op.flush || op.done == kNever) continue;
      if (op.atomic || op.fua || !plain_cached) {
        op.durable = op.done;
        continue;
      }
      for (const auto& [start, done] : flushes) {
        if (start > op.done) op.durable = std::min(op.durable, done);
      }
    }
  }

  // Which ops touch each block, in id order.
  [[nodiscard]] std::vector<std::vector<uint64_t>> ByBlock(const std::vector<Op>& ops) const {
    std::vector<std::vector<uint64_t>> by_block(blocks_);
    for (const Op& op : ops) {
      if (op.id == 0 || op.flush || op.issue == kNever) continue;
      for (uint32_t b = op.lba; b < op.lba + op.blocks; ++b) by_block[b].push_back(op.id);
    }
    return by_block;
  }

  // Reads every block of `store` (recovered after a cut at event `cut`) and counts into `c`.
  void Verify(BlockStore& store, uint64_t cut, const std::vector<Op>& ops,
              const std::vector<std::vector<uint64_t>>& by_block, Counts* c) const {
    std::vector<uint8_t> block(block_);
    std::vector<uint64_t> shown(blocks_);
    std::vector<uint64_t> newest_issued(blocks_, 0);  // the last op issued to it before the cut
    for (uint32_t b = 0; b < blocks_; ++b) {
      uint64_t newest_durable = 0, newest_unmap = 0;
      for (uint64_t id : by_block[b]) {
        if (ops[id].durable < cut) newest_durable = std::max(newest_durable, id);
        if (ops[id].issue < cut) {
          newest_issued[b] = std::max(newest_issued[b], id);
          if (ops[id].unmap) newest_unmap = std::max(newest_unmap, id);
        }
      }
      const Status r = store.Read(uint64_t{b} * block_, block);
      if (!r.ok()) {
        // A sector the device was writing when the power went: only a write not yet durable
        // may leave one, over whatever was durable before it.
        shown[b] = kUnreadableBlock;
        ++c->unreadable;
        if (r.code() != Status::Code::kIoError ||
            (newest_durable != 0 && newest_issued[b] == newest_durable)) {
          ++c->lost;
        }
        continue;
      }
      shown[b] = Decode(block.data(), b, ops);
      if (shown[b] == 0) shown[b] = newest_unmap;  // zeros: the newest UNMAP, or never written
      if (shown[b] == kNever || (shown[b] != 0 && ops[shown[b]].issue >= cut)) {
        ++c->corrupt;
        continue;
      }
      if (shown[b] < newest_durable) {
        if (shown[b] != 0 && ops[shown[b]].atomic) {
          ++c->reverted;
        } else {
          ++c->lost;
        }
      }
    }
    for (const Op& op : ops) {
      if (!op.atomic || op.issue >= cut) continue;
      ++c->atomic_checked;
      uint32_t mine = 0, earlier = 0;
      for (uint32_t b = op.lba; b < op.lba + op.blocks; ++b) {
        if (shown[b] == op.id) {
          ++mine;
        } else if (shown[b] == kUnreadableBlock) {
          if (newest_issued[b] == op.id) ++earlier;  // no later write was there to be torn
        } else if (shown[b] < op.id) {
          ++earlier;
        }
      }
      if (mine > 0 && earlier > 0) ++c->torn;
    }
  }

 private:
  void Stamp(std::vector<uint8_t>& buf, size_t at, uint64_t id, uint64_t lba,
             uint64_t index) const {
    uint8_t* b = buf.data() + at;
    std::memcpy(b, &id, 8);
    std::memcpy(b + 8, &lba, 8);
    std::memcpy(b + 16, &index, 8);
    for (uint32_t i = 24; i < block_; ++i) b[i] = Byte(id, index, i);
  }

  // The op whose stamp a block holds: 0 for zeros, kNever for garbage.
  uint64_t Decode(const uint8_t* b, uint64_t lba, const std::vector<Op>& ops) const {
    if (std::all_of(b, b + block_, [](uint8_t x) { return x == 0; })) return 0;
    uint64_t id = 0, at = 0, index = 0;
    std::memcpy(&id, b, 8);
    std::memcpy(&at, b + 8, 8);
    std::memcpy(&index, b + 16, 8);
    if (id == 0 || id >= ops.size() || at != lba || ops[id].flush || ops[id].unmap) return kNever;
    const Op& op = ops[id];
    if (lba < op.lba || lba >= op.lba + op.blocks || index != lba - op.lba) return kNever;
    for (uint32_t i = 24; i < block_; ++i) {
      if (b[i] != Byte(id, index, i)) return kNever;
    }
    return id;
  }

  static uint8_t Byte(uint64_t id, uint64_t index, uint32_t i) {
    return static_cast<uint8_t>(id * 31 + index * 7 + i);
  }

  const uint32_t block_, blocks_;
};

}  // namespace untorn::storage::testing
