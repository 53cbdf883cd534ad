// SPC-4 persistent reservations (§5.13) for one logical unit, as a state machine over I_T nexus
// ids: PERSISTENT RESERVE OUT actions change it, PERSISTENT RESERVE IN reads it, and Conflicts()
// answers whether a command from a nexus must get RESERVATION CONFLICT.
//
// Persist through power loss (PTPL_C = 1, §5.13.5): when the last REGISTER asked for it (APTPL),
// the owner keeps Encode()'s text beside the LUN, and a restart Decode()s it. Nexus ids do not
// outlive the process, so the text names each registrant by its TransportID; a restored
// registration (and reservation) waits, unbound, until an I_T nexus with that TransportID
// comes back (Bind), and counts meanwhile (READ KEYS lists it, its reservation conflicts).
// Not thread-safe: the owner (LogicalUnit) locks it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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

  // APTPL as the last REGISTER set it: the state is to survive power loss.
  [[nodiscard]] bool aptpl() const { return aptpl_; }
  [[nodiscard]] uint32_t generation() const { return generation_; }
  // The state as text, registrants named by TransportID (`transport_ids` maps the bound ones).
  [[nodiscard]] std::string Encode(const std::map<uint64_t, std::string>& transport_ids) const;
  // Restores what Encode wrote, every registration unbound. False (state unchanged) with
  // *error on text that is not such a state.
  [[nodiscard]] bool Decode(std::string_view text, std::string* error);
  // An I_T nexus with `transport_id` is here: it takes over that TransportID's restored
  // registration and reservation, if any.
  void Bind(uint64_t nexus, const std::string& transport_id);

 private:
  [[nodiscard]] bool AllRegistrants() const {
    return type_ == kWriteExclusiveAllRegistrants || type_ == kExclusiveAccessAllRegistrants;
  }
  [[nodiscard]] bool IsHolder(uint64_t nexus) const;
  void Unregister(uint64_t nexus, Result* r);
  [[nodiscard]] bool NoRegistrations() const { return keys_.empty() && unbound_.empty(); }
  // The reservation key of the holder (bound or restored), for READ RESERVATION and PREEMPT.
  [[nodiscard]] std::optional<uint64_t> HolderKey() const;

  uint32_t generation_ = 0;
  std::map<uint64_t, uint64_t> keys_;  // nexus id -> reservation key
  uint8_t type_ = 0;                   // 0 = no reservation
  uint64_t holder_ = 0;                // nexus id; unused for all-registrants types
  bool aptpl_ = false;
  // Restored registrations whose I_T nexus has not come back yet: TransportID -> key; and the
  // TransportID of a restored holder not yet bound (holder_ is then 0).
  std::map<std::string, uint64_t> unbound_;
  std::string unbound_holder_;
};

}  // namespace untorn::target
