// The Prometheus text the metrics endpoint serves: counters, gauges, and histograms with
// cumulative buckets, a sum and a count.
#include "target/metrics.h"

#include <gtest/gtest.h>

namespace untorn::target {
namespace {

TEST(Metrics, HistogramRendersCumulativeBucketsSumAndCount) {
  Metrics m;
  auto& h = m.GetHistogram("x_seconds", {{"lun", "0"}}, "help text");
  h.Observe(std::chrono::microseconds(30));   // <= 50 us
  h.Observe(std::chrono::microseconds(700));  // <= 1 ms
  h.Observe(std::chrono::milliseconds(700));  // <= 1 s
  h.Observe(std::chrono::seconds(60));        // +Inf only
  const std::string text = m.Render();
  EXPECT_NE(text.find("# TYPE x_seconds histogram\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_bucket{lun=\"0\",le=\"0.00005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_bucket{lun=\"0\",le=\"0.0005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_bucket{lun=\"0\",le=\"0.001\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("x_seconds_bucket{lun=\"0\",le=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("x_seconds_bucket{lun=\"0\",le=\"10\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("x_seconds_bucket{lun=\"0\",le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("x_seconds_count{lun=\"0\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("x_seconds_sum{lun=\"0\"} 60.70073\n"), std::string::npos) << text;
}

TEST(Metrics, CountersAndGaugesCarryTheirType) {
  Metrics m;
  m.Add("a_total", {{"k", "v\"q"}}, "a counter", 3);
  m.Get("b", {}, "a gauge", true).store(-2);
  const std::string text = m.Render();
  EXPECT_NE(text.find("# TYPE a_total counter\na_total{k=\"v\\\"q\"} 3\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE b gauge\nb -2\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace untorn::target
