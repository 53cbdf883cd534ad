#include "target/iscsi/connection_limits.h"

#include <utility>

namespace untorn::target {

ConnectionLimits::Slot& ConnectionLimits::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    Release();
    owner_ = std::exchange(o.owner_, nullptr);
    address_ = std::move(o.address_);
  }
  return *this;
}

void ConnectionLimits::Slot::Release() {
  if (owner_ != nullptr) owner_->Give(address_);
  owner_ = nullptr;
}

std::optional<ConnectionLimits::Slot> ConnectionLimits::AdmitAddress(const std::string& address) {
  std::lock_guard lk(mu_);
  uint32_t& n = by_address_[address];
  if (n >= per_address_) {
    if (n == 0) by_address_.erase(address);
    return std::nullopt;
  }
  ++n;
  return Slot(this, address);
}

std::optional<ConnectionLimits::Slot> ConnectionLimits::AdmitDiscovery() {
  std::lock_guard lk(mu_);
  if (discovery_sessions_ >= discovery_) return std::nullopt;
  ++discovery_sessions_;
  return Slot(this, {});
}

void ConnectionLimits::Give(const std::string& address) {
  std::lock_guard lk(mu_);
  if (address.empty()) {
    --discovery_sessions_;
    return;
  }
  auto it = by_address_.find(address);
  if (it != by_address_.end() && --it->second == 0) by_address_.erase(it);
}

}  // namespace untorn::target
