// What the server knows about its targets while running: each configured target with its
// logical units, and the registry of live sessions (for session reinstatement, per-target
// session limits and stable I_T nexus ids). Thread-safe where stated.
#pragma once

#include <atomic>
#include <chrono>
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

class TargetRuntime {
 public:
  // The target as configured at start, its own copy: a reload replaces the running
  // configuration, never this (the iqn it gives cannot change live). Credentials and ACLs are
  // read by each login from the configuration snapshot it started with.
  explicit TargetRuntime(const config::Target& t) : own_config(t) {}
  const config::Target own_config;
  const config::Target* const config = &own_config;

  // The logical units. LUNs are added and removed while serving (the control interface), so
  // the list is read under a lock, and each user holds what it found for as long as it uses it
  // (a removed LU lives until its last task is done). Thread-safe.
  [[nodiscard]] std::shared_ptr<LogicalUnit> Find(uint16_t lun) const;
  [[nodiscard]] std::vector<std::shared_ptr<LogicalUnit>> Luns() const;
  [[nodiscard]] std::vector<uint16_t> LunIds() const;
  // Adds `lu` (false if its LUN id is taken) or removes LUN `lun` (what was removed, or null);
  // every LU of the target then answers REPORT LUNS with the new list, and the ones that were
  // there before get REPORTED LUNS DATA HAS CHANGED for every nexus (`announce`; not at start).
  bool Add(std::shared_ptr<LogicalUnit> lu, bool announce);
  std::shared_ptr<LogicalUnit> Remove(uint16_t lun);

 private:
  void Publish(bool announce);  // mu_ held

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<LogicalUnit>> luns_;  // guarded by mu_
};

// The targets served. Targets are added and removed while serving (a reload), so the list is
// read under a lock, and each user holds what it found (a session its target) for as long as
// it uses it. Thread-safe.
class TargetRegistry {
 public:
  [[nodiscard]] std::shared_ptr<TargetRuntime> Find(const std::string& iqn) const;
  [[nodiscard]] std::vector<std::shared_ptr<TargetRuntime>> All() const;
  bool Add(std::shared_ptr<TargetRuntime> target);  // false: the name is served already
  std::shared_ptr<TargetRuntime> Remove(const std::string& iqn);

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<TargetRuntime>> targets_;  // guarded by mu_
};

// What a session did, counted by its connection (relaxed atomics: read for the control
// interface while the connection runs).
struct SessionCounters {
  std::atomic<uint64_t> commands{0};       // SCSI commands answered
  std::atomic<uint64_t> bytes_read{0};     // data-in sent to the initiator
  std::atomic<uint64_t> bytes_written{0};  // data-out received from it
};

// A login asking to become a session.
struct NewSession {
  std::string initiator;
  uint64_t isid = 0;
  std::string target;
  std::string identity;  // Login::auth_identity
  std::string peer;      // "address:port" of the initiator
};

// A live session as the control interface lists it.
struct SessionInfo {
  uint16_t tsih = 0;
  uint64_t nexus_id = 0;
  NewSession session;
  std::chrono::system_clock::time_point since;
  std::shared_ptr<const SessionCounters> counters;
  std::shared_ptr<Connection> conn;
};

// Live sessions, keyed by (InitiatorName, ISID, TargetName), each with the identity that
// authenticated it (Login::auth_identity). Thread-safe.
class SessionRegistry {
 public:
  struct Admission {
    uint16_t tsih = 0;
    uint64_t nexus_id = 0;
    std::shared_ptr<Connection> replaced;  // session being reinstated, to be stopped
    std::shared_ptr<SessionCounters> counters;
  };
  enum class Refusal { kNone, kTooManySessions, kOtherIdentity };
  // Registers a new session for `conn`; reinstates (replaces) a live one with the same key if
  // the same identity opened it. Fails (nullopt, *why) when the target already has
  // max_sessions sessions, or when a live session with this key belongs to another identity.
  // The I_T nexus id (which persistent reservations key on) is kept across sessions of one
  // identity only: another identity under the same key gets a new one.
  [[nodiscard]] std::optional<Admission> Admit(const NewSession& s, uint32_t max_sessions,
                                               const std::shared_ptr<Connection>& conn,
                                               Refusal* why);
  // Whether a live session with this TSIH belongs to (initiator, ISID, target) and `identity`:
  // a login that names it is adding a connection to it.
  [[nodiscard]] bool Has(uint16_t tsih, const std::string& initiator, uint64_t isid,
                         const std::string& target, const std::string& identity);
  // Removes the session if `conn` still owns it; false if another connection took it over.
  bool Remove(uint16_t tsih, const Connection* conn);
  [[nodiscard]] std::vector<std::shared_ptr<Connection>> All();
  // The live sessions, by TSIH.
  [[nodiscard]] std::vector<SessionInfo> List();
  [[nodiscard]] size_t size();

 private:
  using Key = std::tuple<std::string, uint64_t, std::string>;
  struct Entry {
    Key key;
    uint64_t nexus_id = 0;
    NewSession session;
    std::chrono::system_clock::time_point since;
    std::shared_ptr<SessionCounters> counters;
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
