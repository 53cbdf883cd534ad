#include "target/metrics.h"

#include <algorithm>
#include <charconv>
#include <sstream>

namespace untorn::target {
namespace {

std::string RenderLabels(const Metrics::Labels& labels) {
  if (labels.empty()) return {};
  std::string s = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) s += ",";
    first = false;
    s += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') s += '\\';
      if (c == '\n') {
        s += "\\n";
        continue;
      }
      s += c;
    }
    s += "\"";
  }
  return s + "}";
}

// Shortest text that reads back as `v` (Prometheus parses Go float syntax).
std::string FormatDouble(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

std::atomic<int64_t>& Metrics::Get(const std::string& name, const Labels& labels, const char* help,
                                   bool gauge) {
  std::lock_guard lk(mu_);
  Family& f = families_[name];
  if (f.help.empty()) {
    f.help = help;
    f.gauge = gauge;
  }
  return f.series[RenderLabels(labels)];
}

void Metrics::Histogram::Observe(std::chrono::nanoseconds d) {
  const double seconds = std::chrono::duration<double>(d).count();
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(d.count(), 0)),
                    std::memory_order_relaxed);
}

Metrics::Histogram& Metrics::GetHistogram(const std::string& name, const Labels& labels,
                                          const char* help) {
  std::lock_guard lk(mu_);
  HistogramFamily& f = histograms_[name];
  if (f.help.empty()) f.help = help;
  std::string key = RenderLabels(labels);
  if (!key.empty()) key = key.substr(1, key.size() - 2);  // without the braces: le is added
  return f.series[key];
}

std::string Metrics::Render() {
  for (auto& c : collectors_) c(*this);
  std::lock_guard lk(mu_);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << ' ' << f.help << '\n';
    out << "# TYPE " << name << ' ' << (f.gauge ? "gauge" : "counter") << '\n';
    for (const auto& [labels, value] : f.series) {
      out << name << labels << ' ' << value.load(std::memory_order_relaxed) << '\n';
    }
  }
  for (const auto& [name, f] : histograms_) {
    out << "# HELP " << name << ' ' << f.help << '\n';
    out << "# TYPE " << name << " histogram\n";
    for (const auto& [labels, h] : f.series) {
      const std::string sep = labels.empty() ? "" : ",";
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
        cumulative += h.buckets_[i].load(std::memory_order_relaxed);
        const std::string le = i < Histogram::kBounds.size() ? Histogram::kBoundLabels[i] : "+Inf";
        out << name << "_bucket{" << labels << sep << "le=\"" << le << "\"} " << cumulative << '\n';
      }
      const std::string braces = labels.empty() ? "" : "{" + labels + "}";
      out << name << "_sum" << braces << ' '
          << FormatDouble(static_cast<double>(h.sum_ns_.load(std::memory_order_relaxed)) / 1e9)
          << '\n';
      out << name << "_count" << braces << ' ' << cumulative << '\n';
    }
  }
  return out.str();
}

}  // namespace untorn::target
