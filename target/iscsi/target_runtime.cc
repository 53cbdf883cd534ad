#include "target/iscsi/target_runtime.h"

#include <algorithm>

namespace untorn::target {

namespace {
// Nexus ids outlive sessions (persistent reservations key on them); bound the table.
constexpr size_t kMaxRememberedNexuses = 65536;
}  // namespace

std::shared_ptr<LogicalUnit> TargetRuntime::Find(uint16_t lun) const {
  std::lock_guard lk(mu_);
  for (const auto& l : luns_) {
    if (l->id() == lun) return l;
  }
  return nullptr;
}

std::vector<std::shared_ptr<LogicalUnit>> TargetRuntime::Luns() const {
  std::lock_guard lk(mu_);
  return luns_;
}

std::vector<uint16_t> TargetRuntime::LunIds() const {
  std::lock_guard lk(mu_);
  std::vector<uint16_t> ids;
  for (const auto& l : luns_) ids.push_back(l->id());
  return ids;
}

bool TargetRuntime::Add(std::shared_ptr<LogicalUnit> lu, bool announce) {
  std::lock_guard lk(mu_);
  for (const auto& l : luns_) {
    if (l->id() == lu->id()) return false;
  }
  luns_.push_back(std::move(lu));
  std::sort(luns_.begin(), luns_.end(),
            [](const auto& a, const auto& b) { return a->id() < b->id(); });
  Publish(announce);
  return true;
}

std::shared_ptr<LogicalUnit> TargetRuntime::Remove(uint16_t lun) {
  std::lock_guard lk(mu_);
  for (auto it = luns_.begin(); it != luns_.end(); ++it) {
    if ((*it)->id() != lun) continue;
    std::shared_ptr<LogicalUnit> removed = std::move(*it);
    luns_.erase(it);
    Publish(true);
    return removed;
  }
  return nullptr;
}

void TargetRuntime::Publish(bool announce) {
  std::vector<uint16_t> ids;
  for (const auto& l : luns_) ids.push_back(l->id());
  for (const auto& l : luns_) {
    l->SetTargetLuns(ids);
    if (announce) l->EstablishUnitAttention(protocol::sense::ReportedLunsDataChanged(), 0);
  }
}

std::shared_ptr<TargetRuntime> TargetRegistry::Find(const std::string& iqn) const {
  std::lock_guard lk(mu_);
  for (const auto& t : targets_) {
    if (t->config->iqn == iqn) return t;
  }
  return nullptr;
}

std::vector<std::shared_ptr<TargetRuntime>> TargetRegistry::All() const {
  std::lock_guard lk(mu_);
  return targets_;
}

bool TargetRegistry::Add(std::shared_ptr<TargetRuntime> target) {
  std::lock_guard lk(mu_);
  for (const auto& t : targets_) {
    if (t->config->iqn == target->config->iqn) return false;
  }
  targets_.push_back(std::move(target));
  return true;
}

std::shared_ptr<TargetRuntime> TargetRegistry::Remove(const std::string& iqn) {
  std::lock_guard lk(mu_);
  for (auto it = targets_.begin(); it != targets_.end(); ++it) {
    if ((*it)->config->iqn != iqn) continue;
    std::shared_ptr<TargetRuntime> removed = std::move(*it);
    targets_.erase(it);
    return removed;
  }
  return nullptr;
}

std::optional<SessionRegistry::Admission> SessionRegistry::Admit(
    const NewSession& session, uint32_t max_sessions, const std::shared_ptr<Connection>& conn,
    Refusal* why) {
  std::lock_guard lk(mu_);
  const std::string& target = session.target;
  const std::string& identity = session.identity;
  const Key key{session.initiator, session.isid, target};
  Admission a;
  uint32_t on_target = 0;
  auto reinstated = sessions_.end();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.conn.expired()) {
      it = sessions_.erase(it);
      continue;
    }
    if (it->second.key == key) {
      if (it->second.session.identity != identity) {
        *why = Refusal::kOtherIdentity;
        return std::nullopt;
      }
      reinstated = it;
    } else if (std::get<2>(it->second.key) == target) {
      ++on_target;
    }
    ++it;
  }
  if (on_target >= max_sessions) {
    *why = Refusal::kTooManySessions;
    return std::nullopt;
  }
  if (reinstated != sessions_.end()) {
    a.replaced = reinstated->second.conn.lock();
    sessions_.erase(reinstated);
  }
  auto nx = nexus_ids_.find(key);
  if (nx != nexus_ids_.end() && nx->second.identity != identity) {
    nexus_ids_.erase(nx);  // another identity: none of the old nexus's state is inherited
    nx = nexus_ids_.end();
  }
  if (nx == nexus_ids_.end()) {
    if (nexus_ids_.size() >= kMaxRememberedNexuses) nexus_ids_.erase(nexus_ids_.begin());
    nx = nexus_ids_.emplace(key, Nexus{next_nexus_++, identity}).first;
  }
  a.nexus_id = nx->second.id;
  do {
    a.tsih = next_tsih_++;
    if (next_tsih_ == 0) next_tsih_ = 1;
  } while (a.tsih == 0 || sessions_.count(a.tsih) != 0);
  a.counters = std::make_shared<SessionCounters>();
  sessions_[a.tsih] =
      Entry{key, a.nexus_id, session, std::chrono::system_clock::now(), a.counters, conn};
  *why = Refusal::kNone;
  return a;
}

bool SessionRegistry::Has(uint16_t tsih, const std::string& initiator, uint64_t isid,
                          const std::string& target, const std::string& identity) {
  std::lock_guard lk(mu_);
  auto it = sessions_.find(tsih);
  return it != sessions_.end() && !it->second.conn.expired() &&
         it->second.key == Key{initiator, isid, target} && it->second.session.identity == identity;
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

std::vector<SessionInfo> SessionRegistry::List() {
  std::lock_guard lk(mu_);
  std::vector<SessionInfo> out;
  for (auto& [tsih, e] : sessions_) {
    if (auto c = e.conn.lock()) {
      out.push_back({tsih, e.nexus_id, e.session, e.since, e.counters, std::move(c)});
    }
  }
  return out;
}

size_t SessionRegistry::size() {
  std::lock_guard lk(mu_);
  return sessions_.size();
}

}  // namespace untorn::target
