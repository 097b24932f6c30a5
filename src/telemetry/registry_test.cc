#include "telemetry/registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <sstream>
#include <thread>

namespace backstop::telemetry {
namespace {

TEST(Registry, RendersSmallRegistryByteForByte) {
  Registry registry(2);
  const FamilyId requests = registry.declare(
      {"app_requests_total", "Requests served.", MetricType::kCounter, {"route", "code"}, {}});
  const FamilyId latency = registry.declare(
      {"app_latency_seconds", "Latency.", MetricType::kHistogram, {"route"}, {0.1, 1}});
  const FamilyId ratio =
      registry.declare({"app_ratio", "A ratio.", MetricType::kGauge, {"route"}, {}});
  const FamilyId unused =
      registry.declare({"app_unused_total", "Never used.", MetricType::kCounter, {}, {}});
  (void)unused;
  registry.gauge_source(ratio, [] {
    return std::vector<std::pair<std::vector<std::string>, double>>{{{"/b"}, 0.25}, {{"/a"}, 1}};
  });

  registry.shard(0).add(requests, {"/b", "200"});
  registry.shard(0).add(requests, {"/a", "200"}, 2);
  registry.shard(1).add(requests, {"/a", "200"});
  registry.shard(1).add(requests, {"/a", "500"}, 0.5);
  registry.shard(0).observe(latency, {"/a"}, 0.05);
  registry.shard(1).observe(latency, {"/a"}, 0.5);
  registry.shard(1).observe(latency, {"/a"}, 3);

  EXPECT_EQ(registry.render(),
            "# HELP app_requests_total Requests served.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{route=\"/a\",code=\"200\"} 3\n"
            "app_requests_total{route=\"/a\",code=\"500\"} 0.5\n"
            "app_requests_total{route=\"/b\",code=\"200\"} 1\n"
            "# HELP app_latency_seconds Latency.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\n"
            "app_latency_seconds_bucket{route=\"/a\",le=\"1\"} 2\n"
            "app_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n"
            "app_latency_seconds_sum{route=\"/a\"} 3.55\n"
            "app_latency_seconds_count{route=\"/a\"} 3\n"
            "# HELP app_ratio A ratio.\n"
            "# TYPE app_ratio gauge\n"
            "app_ratio{route=\"/a\"} 1\n"
            "app_ratio{route=\"/b\"} 0.25\n"
            "# HELP app_unused_total Never used.\n"
            "# TYPE app_unused_total counter\n");
}

TEST(Registry, RendersFamiliesWithoutLabels) {
  Registry registry(1);
  const FamilyId up = registry.declare({"app_up_total", "Up.", MetricType::kCounter, {}, {}});
  const FamilyId wait =
      registry.declare({"app_wait_seconds", "Wait.", MetricType::kHistogram, {}, {1}});
  registry.shard(0).add(up, {});
  registry.shard(0).observe(wait, {}, 2);
  EXPECT_EQ(registry.render(),
            "# HELP app_up_total Up.\n"
            "# TYPE app_up_total counter\n"
            "app_up_total 1\n"
            "# HELP app_wait_seconds Wait.\n"
            "# TYPE app_wait_seconds histogram\n"
            "app_wait_seconds_bucket{le=\"1\"} 0\n"
            "app_wait_seconds_bucket{le=\"+Inf\"} 1\n"
            "app_wait_seconds_sum 2\n"
            "app_wait_seconds_count 1\n");
}

TEST(Registry, EscapesLabelValuesAndHelp) {
  Registry registry(1);
  const FamilyId family = registry.declare(
      {"app_total", "Line one\nback\\slash \"quoted\"", MetricType::kCounter, {"v"}, {}});
  registry.shard(0).add(family, {"a\\b\"c\nd"});
  EXPECT_EQ(registry.render(),
            "# HELP app_total Line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE app_total counter\n"
            "app_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(Registry, ValueOnABoundCountsInThatBucket) {
  Registry registry(1);
  const FamilyId family =
      registry.declare({"h", "H.", MetricType::kHistogram, {}, {0.001, 0.01, 0.1}});
  registry.shard(0).observe(family, {}, 0.001);
  registry.shard(0).observe(family, {}, 0.0010001);
  registry.shard(0).observe(family, {}, 0.1);
  registry.shard(0).observe(family, {}, 0.2);
  const std::string text = registry.render();
  EXPECT_NE(text.find("h_bucket{le=\"0.001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{le=\"0.01\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{le=\"0.1\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << text;
  const auto [count, sum] = registry.histogram_count_sum(family, {});
  EXPECT_EQ(count, 4u);
  EXPECT_DOUBLE_EQ(sum, 0.001 + 0.0010001 + 0.1 + 0.2);
}

TEST(Registry, CountersSumMicroDollarsExactly) {
  Registry registry(3);
  const FamilyId spend =
      registry.declare({"spend_usd_total", "Spend.", MetricType::kCounter, {"model"}, {}});
  for (int i = 0; i < 1000; ++i) registry.shard(i % 3).add(spend, {"m"}, 0.000123);
  EXPECT_EQ(registry.counter_value(spend, {"m"}), 0.123);
  EXPECT_NE(registry.render().find("spend_usd_total{model=\"m\"} 0.123\n"), std::string::npos);
}

TEST(Registry, AbsentSampleIsZero) {
  Registry registry(1);
  const FamilyId family = registry.declare({"c", "C.", MetricType::kCounter, {"a"}, {}});
  EXPECT_EQ(registry.counter_value(family, {"nobody"}), 0);
  EXPECT_EQ(registry.histogram_count_sum(family, {"nobody"}),
            (std::pair<std::uint64_t, double>{0, 0}));
}

TEST(Registry, MisuseIsANoOp) {
  Registry registry(1);
  const FamilyId counter = registry.declare({"c", "C.", MetricType::kCounter, {"a", "b"}, {}});
  const FamilyId histogram = registry.declare({"h", "H.", MetricType::kHistogram, {}, {1}});
  Shard& shard = registry.shard(0);
  shard.add(counter, {"only-one"});
  shard.add(counter, {"x", "y", "z"});
  shard.add(counter, {"x", "y"}, -1);
  shard.add(counter, {"x", "y"}, std::numeric_limits<double>::quiet_NaN());
  shard.add(histogram, {});
  shard.observe(counter, {"x", "y"}, 1);
  shard.observe(histogram, {}, std::numeric_limits<double>::quiet_NaN());
  shard.add(99, {});
  shard.observe(-1, {}, 1);
  EXPECT_EQ(registry.render(), "# HELP c C.\n# TYPE c counter\n# HELP h H.\n# TYPE h histogram\n");
}

TEST(Registry, ShardsWrittenConcurrentlyWhileRendering) {
  Registry registry(2);
  const FamilyId counter = registry.declare({"c", "C.", MetricType::kCounter, {"w", "i"}, {}});
  const FamilyId histogram =
      registry.declare({"h", "H.", MetricType::kHistogram, {"w"}, duration_buckets()});
  constexpr int kIterations = 20000;
  std::atomic<bool> done{false};
  const auto work = [&](int worker) {
    Shard& shard = registry.shard(worker);
    for (int i = 0; i < kIterations; ++i) {
      // New label sets keep appearing, so the insert path races with render().
      shard.add(counter, {"all", std::to_string(i % 50)});
      shard.observe(histogram, {"all"}, 0.001 * (i % 100));
    }
  };
  std::thread renderer([&] {
    while (!done.load()) (void)registry.render();
  });
  std::thread a(work, 0);
  std::thread b(work, 1);
  a.join();
  b.join();
  done = true;
  renderer.join();

  double total = 0;
  for (int i = 0; i < 50; ++i) total += registry.counter_value(counter, {"all", std::to_string(i)});
  EXPECT_EQ(total, 2.0 * kIterations);
  EXPECT_EQ(registry.counter_value(counter, {"all", "7"}), 2.0 * kIterations / 50);
  EXPECT_EQ(registry.histogram_count_sum(histogram, {"all"}).first, 2u * kIterations);
}

TEST(Registry, DurationBucketsResolveAMillisecondAndTwoMinutes) {
  const std::vector<double> buckets = duration_buckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_EQ(buckets.front(), 0.001);
  EXPECT_EQ(buckets.back(), 120);
  EXPECT_TRUE(std::is_sorted(buckets.begin(), buckets.end()));
}

TEST(Metrics, DeclaresDesignTableExactly) {
  Registry registry(1);
  const Metrics metrics = Metrics::declare(registry);
  registry.gauge_source(metrics.fallback_ratio, [] {
    return std::vector<std::pair<std::vector<std::string>, double>>{{{"agentic"}, 0.2}};
  });
  registry.gauge_source(metrics.ledger_queue_depth, [] {
    return std::vector<std::pair<std::vector<std::string>, double>>{{{}, 3}};
  });
  registry.shard(0).add(metrics.requests_total, {"agentic", "primary"});
  registry.shard(0).add(metrics.fallbacks_total, {"agentic", "v4", "claude", "schema"});
  registry.shard(0).add(metrics.validation_failures_total, {"agentic", "v4", "schema"});
  registry.shard(0).add(metrics.attempts_total, {"agentic", "v4", "fail"});
  registry.shard(0).add(metrics.spend_usd_total, {"agentic", "claude", "sonnet"}, 0.012207);
  registry.shard(0).add(metrics.tokens_total, {"claude", "sonnet", "input"}, 1234);
  registry.shard(0).observe(metrics.request_duration_seconds, {"agentic", "fallback"}, 1.5);
  registry.shard(0).observe(metrics.upstream_duration_seconds, {"claude"}, 1.2);
  registry.shard(0).add(metrics.log_lines_dropped_total, {"access_log"}, 3);

  std::vector<std::string> types;
  std::istringstream lines(registry.render());
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# TYPE ")) types.push_back(line.substr(7));
  }
  EXPECT_EQ(types, (std::vector<std::string>{
                       "backstop_requests_total counter",
                       "backstop_fallbacks_total counter",
                       "backstop_validation_failures_total counter",
                       "backstop_attempts_total counter",
                       "backstop_spend_usd_total counter",
                       "backstop_tokens_total counter",
                       "backstop_request_duration_seconds histogram",
                       "backstop_upstream_duration_seconds histogram",
                       "backstop_fallback_ratio gauge",
                       "backstop_stream_events_skipped_total counter",
                       "backstop_ledger_queue_depth gauge",
                       "backstop_log_lines_dropped_total counter",
                       "backstop_hook_events_total counter",
                       "backstop_route_state gauge",
                       "backstop_breaker_state gauge",
                       "backstop_budget_rejections_total counter",
                   }));

  const std::string text = registry.render();
  for (const char* sample : {
           "backstop_requests_total{workload=\"agentic\",outcome=\"primary\"} 1\n",
           "backstop_fallbacks_total{workload=\"agentic\",from=\"v4\",to=\"claude\","
           "reason=\"schema\"} 1\n",
           "backstop_validation_failures_total{workload=\"agentic\",provider=\"v4\","
           "reason=\"schema\"} 1\n",
           "backstop_attempts_total{workload=\"agentic\",provider=\"v4\",result=\"fail\"} 1\n",
           "backstop_spend_usd_total{workload=\"agentic\",provider=\"claude\",model=\"sonnet\"} "
           "0.012207\n",
           "backstop_tokens_total{provider=\"claude\",model=\"sonnet\",type=\"input\"} 1234\n",
           "backstop_request_duration_seconds_bucket{workload=\"agentic\",outcome=\"fallback\","
           "le=\"2.5\"} 1\n",
           "backstop_upstream_duration_seconds_count{provider=\"claude\"} 1\n",
           "backstop_fallback_ratio{workload=\"agentic\"} 0.2\n",
           "backstop_ledger_queue_depth 3\n",
           "backstop_log_lines_dropped_total{sink=\"access_log\"} 3\n",
       }) {
    EXPECT_NE(text.find(sample), std::string::npos) << sample;
  }
}

}  // namespace
}  // namespace backstop::telemetry
