#include "target/target_runtime.h"

#include "target/connection.h"

namespace untorn::target {

namespace {
// Nexus ids outlive sessions (persistent reservations key on them); bound the table.
constexpr size_t kMaxRememberedNexuses = 65536;
}  // namespace

std::optional<SessionRegistry::Admission> SessionRegistry::Admit(
    const std::string& initiator, uint64_t isid, const std::string& target, uint32_t max_sessions,
    const std::shared_ptr<Connection>& conn) {
  std::lock_guard lk(mu_);
  const Key key{initiator, isid, target};
  Admission a;
  uint32_t on_target = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.conn.expired()) {
      it = sessions_.erase(it);
      continue;
    }
    if (it->second.key == key) {
      a.replaced = it->second.conn.lock();
      it = sessions_.erase(it);
      continue;
    }
    if (std::get<2>(it->second.key) == target) ++on_target;
    ++it;
  }
  if (on_target >= max_sessions) return std::nullopt;
  auto nx = nexus_ids_.find(key);
  if (nx == nexus_ids_.end()) {
    if (nexus_ids_.size() >= kMaxRememberedNexuses) nexus_ids_.erase(nexus_ids_.begin());
    nx = nexus_ids_.emplace(key, next_nexus_++).first;
  }
  a.nexus_id = nx->second;
  do {
    a.tsih = next_tsih_++;
    if (next_tsih_ == 0) next_tsih_ = 1;
  } while (a.tsih == 0 || sessions_.count(a.tsih) != 0);
  sessions_[a.tsih] = Entry{key, conn};
  return a;
}

bool SessionRegistry::Has(uint16_t tsih, const std::string& initiator, uint64_t isid,
                          const std::string& target) {
  std::lock_guard lk(mu_);
  auto it = sessions_.find(tsih);
  return it != sessions_.end() && !it->second.conn.expired() &&
         it->second.key == Key{initiator, isid, target};
}

bool SessionRegistry::Remove(uint16_t tsih, const Connection* conn) {
  std::lock_guard lk(mu_);
  auto it = sessions_.find(tsih);
  if (it == sessions_.end()) return false;
  auto owner = it->second.conn.lock();
  if (owner && owner.get() != conn) return false;
  sessions_.erase(it);
  return true;
}

std::vector<std::shared_ptr<Connection>> SessionRegistry::All() {
  std::lock_guard lk(mu_);
  std::vector<std::shared_ptr<Connection>> out;
  for (auto& [t, e] : sessions_) {
    if (auto c = e.conn.lock()) out.push_back(std::move(c));
  }
  return out;
}

size_t SessionRegistry::size() {
  std::lock_guard lk(mu_);
  return sessions_.size();
}

}  // namespace untorn::target
