// Caps that keep one peer from holding every connection slot (docs/hardening.md): connections
// per remote address, and discovery sessions (which need no credentials) in all. Each admitted
// connection or discovery session holds a Slot until it ends. Thread-safe; owned by Server.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace untorn::target {

class ConnectionLimits {
 public:
  ConnectionLimits(uint32_t per_address, uint32_t discovery)
      : per_address_(per_address), discovery_(discovery) {}

  // Gives back what it holds when destroyed.
  class Slot {
   public:
    Slot(Slot&& o) noexcept : owner_(o.owner_), address_(std::move(o.address_)) {
      o.owner_ = nullptr;
    }
    Slot& operator=(Slot&& o) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }

   private:
    friend class ConnectionLimits;
    Slot(ConnectionLimits* owner, std::string address)
        : owner_(owner), address_(std::move(address)) {}
    void Release();
    ConnectionLimits* owner_;
    std::string address_;  // empty: a discovery slot
  };

  // A connection from `address` (no port, not empty), or nullopt past the per-address cap.
  [[nodiscard]] std::optional<Slot> AdmitAddress(const std::string& address);
  // A discovery session, or nullopt past the discovery cap.
  [[nodiscard]] std::optional<Slot> AdmitDiscovery();
  // New caps (a reload): slots already held stand; new ones are measured against them.
  void SetCaps(uint32_t per_address, uint32_t discovery) {
    std::lock_guard lk(mu_);
    per_address_ = per_address;
    discovery_ = discovery;
  }

 private:
  void Give(const std::string& address);

  std::mutex mu_;
  uint32_t per_address_, discovery_;            // guarded by mu_
  std::map<std::string, uint32_t> by_address_;  // guarded by mu_
  uint32_t discovery_sessions_ = 0;             // guarded by mu_
};

}  // namespace untorn::target
