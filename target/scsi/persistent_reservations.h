// SPC-4 persistent reservations (§5.13) for one logical unit, as a state machine over I_T nexus
// ids: PERSISTENT RESERVE OUT actions change it, PERSISTENT RESERVE IN reads it, and Conflicts()
// answers whether a command from a nexus must get RESERVATION CONFLICT. Registrations are not
// persisted across restarts (PTPL_C = 0). Not thread-safe: the owner (LogicalUnit) locks it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "protocol/byte_order.h"
#include "protocol/sense.h"

namespace untorn::target {

enum class AccessKind { kAlways, kRead, kWrite, kOther };

class PersistentReservations {
 public:
  // Reservation types, SPC-4 table 169.
  static constexpr uint8_t kWriteExclusive = 1;
  static constexpr uint8_t kExclusiveAccess = 3;
  static constexpr uint8_t kWriteExclusiveRegistrantsOnly = 5;
  static constexpr uint8_t kExclusiveAccessRegistrantsOnly = 6;
  static constexpr uint8_t kWriteExclusiveAllRegistrants = 7;
  static constexpr uint8_t kExclusiveAccessAllRegistrants = 8;

  struct Result {
    bool conflict = false;                 // answer RESERVATION CONFLICT
    std::optional<protocol::Sense> sense;  // or CHECK CONDITION with this sense
    std::vector<std::pair<uint64_t, protocol::Sense>> unit_attentions;  // to other nexuses
  };

  // PERSISTENT RESERVE OUT (SPC-4 §6.16). `cdb` is the 10-byte CDB, `params` the parameter list.
  [[nodiscard]] Result Out(uint64_t nexus, protocol::Bytes cdb, protocol::Bytes params);
  // PERSISTENT RESERVE IN (SPC-4 §6.15); nullopt = unsupported service action.
  [[nodiscard]] std::optional<std::vector<uint8_t>> In(
      uint8_t service_action, const std::map<uint64_t, std::string>& transport_ids) const;

  [[nodiscard]] bool Conflicts(uint64_t nexus, AccessKind kind) const;
  [[nodiscard]] bool HasReservation() const { return type_ != 0; }
  // Nexus gone (session ended): registrations stay (SPC-4 §5.13.3, I_T nexus loss keeps them).
  void Clear();

 private:
  [[nodiscard]] bool AllRegistrants() const {
    return type_ == kWriteExclusiveAllRegistrants || type_ == kExclusiveAccessAllRegistrants;
  }
  [[nodiscard]] bool IsHolder(uint64_t nexus) const;
  void Unregister(uint64_t nexus, Result* r);

  uint32_t generation_ = 0;
  std::map<uint64_t, uint64_t> keys_;  // nexus id -> reservation key
  uint8_t type_ = 0;                   // 0 = no reservation
  uint64_t holder_ = 0;                // nexus id; unused for all-registrants types
};

}  // namespace untorn::target
