#include "target/metrics.h"

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
  return out.str();
}

}  // namespace untorn::target
