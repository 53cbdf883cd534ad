// Counters exported in Prometheus text format (--metrics HOST:PORT). Counters are created once at
// start or lazily under the registry mutex and then updated lock-free; references stay valid for
// the registry's lifetime (std::map nodes are stable). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace untorn::target {

class Metrics {
 public:
  using Labels = std::map<std::string, std::string>;

  // A counter or gauge for (name, labels); created on first use. `help` is kept from the first
  // call for the name.
  std::atomic<int64_t>& Get(const std::string& name, const Labels& labels, const char* help,
                            bool gauge = false);
  void Add(const std::string& name, const Labels& labels, const char* help, int64_t delta = 1) {
    Get(name, labels, help).fetch_add(delta, std::memory_order_relaxed);
  }

  // Called at every Render, before the text is built, to refresh gauges from elsewhere (e.g.
  // storage statistics). Collectors are added at start, before serving.
  void AddCollector(std::function<void(Metrics&)> collector) {
    collectors_.push_back(std::move(collector));
  }

  // The whole registry in Prometheus text exposition format 0.0.4.
  [[nodiscard]] std::string Render();

 private:
  struct Family {
    std::string help;
    bool gauge = false;
    std::map<std::string, std::atomic<int64_t>> series;  // key: rendered label set
  };
  std::mutex mu_;
  std::map<std::string, Family> families_;                 // guarded by mu_
  std::vector<std::function<void(Metrics&)>> collectors_;  // fixed after start
};

}  // namespace untorn::target
