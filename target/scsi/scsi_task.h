// What the iSCSI layer hands the SCSI layer and gets back. Independent of PDUs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/sense.h"
#include "storage/mapped_read.h"

namespace untorn::target {

// An I_T nexus: one initiator port (InitiatorName + ISID) talking to this target port.
// `id` is unique for the daemon's lifetime and keys per-nexus state (unit attentions,
// reservations). A reinstated session keeps the nexus of the session it replaces.
struct Nexus {
  uint64_t id = 0;
  std::string initiator;
  uint64_t isid = 0;
  [[nodiscard]] std::string TransportId() const;  // "iqn...,i,0x<isid>" (SPC-4 §7.6.4.6)
};

// An allocator whose value-initialisation leaves bytes as they are: a buffer about to be
// filled by a read is not zeroed first (a 1 MiB READ spent ~9 % of its CPU in that memset).
template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  explicit UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialised: indeterminate for bytes
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
// Data-in of a command. Whoever sizes one must write every byte before it is sent.
using DataInBuffer = std::vector<uint8_t, UninitializedAllocator<uint8_t>>;

struct ScsiOutcome {
  protocol::ScsiStatus status = protocol::ScsiStatus::kGood;
  DataInBuffer data_in;
  std::optional<protocol::Sense> sense;
  // Data-in sent from the store's mapping instead of data_in (a large READ Executed with
  // DataInMode::kMayMap): the range stays locked against writes until this is released.
  std::shared_ptr<storage::MappedRead> mapped_in;

  [[nodiscard]] size_t data_in_size() const {
    return mapped_in ? mapped_in->bytes().size() : data_in.size();
  }

  static ScsiOutcome Good() { return {}; }
  static ScsiOutcome Check(protocol::Sense s) {
    return {protocol::ScsiStatus::kCheckCondition, {}, std::move(s), nullptr};
  }
  static ScsiOutcome Data(DataInBuffer d) {
    return {protocol::ScsiStatus::kGood, std::move(d), std::nullopt, nullptr};
  }
  // Parameter data built as a plain vector (pages, lists: small), copied.
  static ScsiOutcome Data(const std::vector<uint8_t>& d) {
    return Data(DataInBuffer(d.begin(), d.end()));
  }
  static ScsiOutcome WithStatus(protocol::ScsiStatus st) { return {st, {}, std::nullopt, nullptr}; }
};

// Outcome of the checks a command passes before any data moves.
struct CommandPlan {
  std::optional<ScsiOutcome> done;  // set: answer now, transfer nothing
  uint32_t data_out_length = 0;     // bytes the CDB asks the initiator to send (SPDTL)
  uint32_t data_in_length = 0;      // bytes of data-in it produces, where that can be large
  // Non-zero if the command may run on a prefix of its data-out when EDTL < SPDTL (FCP-4
  // §9.4.2 a: "process normally, but transfer no data beyond EDTL"): the prefix is cut to a
  // multiple of this. Zero for commands whose meaning changes when cut (atomic, compare...).
  uint32_t truncation_unit = 0;
  // Set for commands whose data-out length must match EDTL exactly (COMPARE AND WRITE, WRITE
  // SAME, WRITE ATOMIC, ...): the sense to answer with when it does not.
  std::optional<protocol::Sense> length_mismatch;
};

}  // namespace untorn::target
