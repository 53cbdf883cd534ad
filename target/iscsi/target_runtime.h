// What the server knows about its targets while running: each configured target with its
// logical units, and the registry of live sessions (for session reinstatement, per-target
// session limits and stable I_T nexus ids). Thread-safe where stated.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "config/config.h"
#include "target/scsi/logical_unit.h"

namespace untorn::target {

class Connection;

struct TargetRuntime {
  const config::Target* config = nullptr;
  std::vector<std::unique_ptr<LogicalUnit>> luns;  // immutable after start

  [[nodiscard]] LogicalUnit* Find(uint16_t lun) const {
    for (const auto& l : luns) {
      if (l->id() == lun) return l.get();
    }
    return nullptr;
  }
  [[nodiscard]] std::vector<uint16_t> LunIds() const {
    std::vector<uint16_t> ids;
    for (const auto& l : luns) ids.push_back(l->id());
    return ids;
  }
};

// Live sessions, keyed by (InitiatorName, ISID, TargetName), each with the identity that
// authenticated it (Login::auth_identity). Thread-safe.
class SessionRegistry {
 public:
  struct Admission {
    uint16_t tsih = 0;
    uint64_t nexus_id = 0;
    std::shared_ptr<Connection> replaced;  // session being reinstated, to be stopped
  };
  enum class Refusal { kNone, kTooManySessions, kOtherIdentity };
  // Registers a new session for `conn`; reinstates (replaces) a live one with the same key if
  // the same identity opened it. Fails (nullopt, *why) when the target already has
  // max_sessions sessions, or when a live session with this key belongs to another identity.
  // The I_T nexus id (which persistent reservations key on) is kept across sessions of one
  // identity only: another identity under the same key gets a new one.
  [[nodiscard]] std::optional<Admission> Admit(const std::string& initiator, uint64_t isid,
                                               const std::string& target,
                                               const std::string& identity, uint32_t max_sessions,
                                               const std::shared_ptr<Connection>& conn,
                                               Refusal* why);
  // Whether a live session with this TSIH belongs to (initiator, ISID, target) and `identity`:
  // a login that names it is adding a connection to it.
  [[nodiscard]] bool Has(uint16_t tsih, const std::string& initiator, uint64_t isid,
                         const std::string& target, const std::string& identity);
  // Removes the session if `conn` still owns it; false if another connection took it over.
  bool Remove(uint16_t tsih, const Connection* conn);
  [[nodiscard]] std::vector<std::shared_ptr<Connection>> All();
  [[nodiscard]] size_t size();

 private:
  using Key = std::tuple<std::string, uint64_t, std::string>;
  struct Entry {
    Key key;
    std::string identity;
    std::weak_ptr<Connection> conn;
  };
  struct Nexus {
    uint64_t id = 0;
    std::string identity;
  };
  std::mutex mu_;
  std::map<uint16_t, Entry> sessions_;  // by TSIH; guarded by mu_
  std::map<Key, Nexus> nexus_ids_;      // stable I_T nexus ids; guarded by mu_
  uint16_t next_tsih_ = 1;              // guarded by mu_
  uint64_t next_nexus_ = 1;             // guarded by mu_
};

}  // namespace untorn::target
