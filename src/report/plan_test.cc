#include "report/plan.h"

#include <gtest/gtest.h>

namespace backstop::report {
namespace {

constexpr std::int64_t kDec1 = 1'796'112'000'000;  // 2026-12-01T08:00:00Z
constexpr std::int64_t kDay = 86'400'000;

// The brief's rule of thumb: one GPU at about $2/hour serving V4-Flash, against a managed
// model at $3 / $15 per million tokens (a fifth of the tokens output), breaks even near
// 10M tokens a day.
PlanInput one_gpu_flash(double tokens_per_day) {
  PlanInput in;
  in.workload = "rag";
  in.tokens_per_day = tokens_per_day;
  in.output_share = 0.2;
  in.fallback_rate = 0.2;
  in.hardware = Hardware{2.0, 1, 600, 0.6};
  in.managed = ApiPrice{"claude", 3.0, 15.0};
  in.primary_api = ApiPrice{"v4-flash", 0.14, 0.28};
  return in;
}

TEST(Plan, OneGpuAgainstAManagedModelBreaksEvenNearTenMillionTokensADay) {
  const PlanResult r = plan(one_gpu_flash(10e6));
  EXPECT_DOUBLE_EQ(r.self_host_cost_per_day, 48.0);                  // $2 x 1 GPU x 24 h
  EXPECT_DOUBLE_EQ(r.managed->usd_per_million, 0.8 * 3 + 0.2 * 15);  // $5.40/M
  ASSERT_TRUE(r.managed->break_even_tokens_per_day);
  EXPECT_NEAR(*r.managed->break_even_tokens_per_day, 48.0 / 5.4 * 1e6, 1);  // 8.9M
  EXPECT_GT(*r.managed->break_even_tokens_per_day, 7e6);
  EXPECT_LT(*r.managed->break_even_tokens_per_day, 12e6);
  // Under it the API is cheaper, over it the GPU.
  EXPECT_GT(plan(one_gpu_flash(5e6)).self_host_cost_per_day,
            plan(one_gpu_flash(5e6)).managed->api_cost_per_day);
  EXPECT_LT(plan(one_gpu_flash(20e6)).self_host_cost_per_day,
            plan(one_gpu_flash(20e6)).managed->api_cost_per_day);
}

TEST(Plan, BlendedCostPaysTheFallbackShareAtManagedPrices) {
  const PlanResult r = plan(one_gpu_flash(10e6));
  ASSERT_TRUE(r.blended_cost_per_day);
  EXPECT_NEAR(*r.blended_cost_per_day, 48.0 + 0.2 * 54.0, 1e-9);
  ASSERT_TRUE(r.blended_break_even_tokens_per_day);
  EXPECT_NEAR(*r.blended_break_even_tokens_per_day, 48.0 / (0.8 * 5.4) * 1e6, 1);  // 11.1M
}

TEST(Plan, AnEightGpuNodeNeedsHundredsOfMillionsOfTokensToBeatV4sOwnApi) {
  PlanInput in;
  in.workload = "agentic";
  in.tokens_per_day = 10e6;
  in.output_share = 0.2;
  in.hardware = Hardware{2.5, 8, 10'000, 0.6};  // 8 x H100 serving V4-Pro
  in.primary_api = ApiPrice{"v4-pro", 1.74, 3.48};
  const PlanResult r = plan(in);
  EXPECT_DOUBLE_EQ(r.self_host_cost_per_day, 480.0);  // $2.50 x 8 x 24 h
  ASSERT_TRUE(r.primary_api->break_even_tokens_per_day);
  const double break_even = *r.primary_api->break_even_tokens_per_day;
  EXPECT_NEAR(break_even, 480.0 / 2.088 * 1e6, 1);  // 230M tokens/day
  EXPECT_GT(break_even, 100e6);
  EXPECT_LT(break_even, 1e9);
  EXPECT_LT(r.primary_api->api_cost_per_day, r.self_host_cost_per_day / 10);
  // Against V4-Flash's API ($0.168/M) the node never pays: 2.9B tokens/day exceed what it serves.
  in.primary_api = ApiPrice{"v4-flash", 0.14, 0.28};
  EXPECT_FALSE(plan(in).primary_api->break_even_tokens_per_day);
}

TEST(Plan, TheTableNamesTheCheapestWayToServeTheTraffic) {
  PlanInput low = one_gpu_flash(5e6);
  low.primary_api.reset();
  EXPECT_NE(render_plan_table({plan(low)}).find("cheapest         claude alone, $27.00/day"),
            std::string::npos);
  PlanInput high = one_gpu_flash(30e6);
  high.primary_api.reset();
  // $48 + 20 % x $162.
  EXPECT_NE(render_plan_table({plan(high)})
                .find("cheapest         self-hosted with the fallback, $80.40/day"),
            std::string::npos);
  // V4-Flash's own API with the same fallback share: $0.84 + 20 % x $27.
  EXPECT_NE(render_plan_table({plan(one_gpu_flash(5e6))})
                .find("cheapest         v4-flash's API with the fallback, $6.24/day"),
            std::string::npos);
}

TEST(Plan, TrafficBeyondOneNodeNeedsMoreNodes) {
  const PlanResult r = plan(one_gpu_flash(70e6));  // a node serves 31.1M tokens/day
  EXPECT_EQ(r.nodes, 3);
  EXPECT_DOUBLE_EQ(r.self_host_cost_per_day, 144.0);
}

TEST(Plan, TrafficIsMeasuredFromTheLedgerRows) {
  std::vector<ledger::RequestRow> rows = {
      {"a", kDec1, 1, "w", "", "primary", "v4", {{"v4", "m", "", 200, 600, 0, 200, 1, 1}}},
      {"b",
       kDec1 + kDay,
       1,
       "w",
       "",
       "fallback",
       "claude",
       {{"v4", "m", "schema", 200, 999, 0, 999, 1, 1}, {"c", "m", "", 200, 900, 100, 200, 1, 1}}},
      {"c", kDec1 + kDay, 1, "w", "", "rejected", "", {}},
  };
  const Traffic t = traffic_of(rows);
  EXPECT_EQ(t.days, 2);
  EXPECT_DOUBLE_EQ(t.tokens_per_day, (800.0 + 1200.0) / 2);  // the answering attempt's tokens
  EXPECT_DOUBLE_EQ(t.output_share, 400.0 / 2000.0);
  EXPECT_DOUBLE_EQ(t.fallback_rate, 0.5);
}

}  // namespace
}  // namespace backstop::report
