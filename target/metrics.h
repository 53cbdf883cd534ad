// Counters, gauges and histograms exported in Prometheus text format (--metrics HOST:PORT). They
// are created once at start or lazily under the registry mutex and then updated lock-free;
// references stay valid for the registry's lifetime (std::map nodes are stable). Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
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

  // A histogram of durations: cumulative buckets at fixed bounds (seconds), a sum and a count,
  // rendered as Prometheus histogram `name` (`name_bucket{le=...}`, `name_sum`, `name_count`).
  // Observe is lock-free.
  class Histogram {
   public:
    static constexpr std::array<double, 15> kBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                       0.0025,  0.005,  0.01,    0.025,  0.05,
                                                       0.1,     0.25,   1.0,     2.5,    10.0};
    static constexpr std::array<const char*, 15> kBoundLabels = {
        "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
        "0.025",   "0.05",   "0.1",     "0.25",   "1",     "2.5",    "10"};
    void Observe(std::chrono::nanoseconds d);

   private:
    friend class Metrics;
    std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // last: above every bound
    std::atomic<uint64_t> sum_ns_{0};
  };
  Histogram& GetHistogram(const std::string& name, const Labels& labels, const char* help);

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
  std::map<std::string, Family> families_;  // guarded by mu_
  struct HistogramFamily {
    std::string help;
    std::map<std::string, Histogram> series;  // key: the label set rendered without braces
  };
  std::map<std::string, HistogramFamily> histograms_;      // guarded by mu_
  std::vector<std::function<void(Metrics&)>> collectors_;  // fixed after start
};

}  // namespace untorn::target
