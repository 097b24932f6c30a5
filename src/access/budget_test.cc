#include "access/budget.h"

#include <gtest/gtest.h>

namespace backstop::access {
namespace {

using Action = BudgetVerdict::Action;

// 2026-12-01T00:00:00Z.
constexpr std::int64_t kDay1 = 1'796'083'200'000;
constexpr std::int64_t kDayMs = 24 * 60 * 60 * 1000;

std::shared_ptr<const config::Config> config_of() {
  auto loaded = config::parse(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  capped: {route: [a], budget: {daily_usd: 1}}
  cut: {route: [a], budget: {daily_usd: 2, on_exceeded: primary_only}}
  open: {route: [a]}
auth:
  keys:
    - {name: team, key_env: T, workloads: all, budget: {daily_usd: 0.5}}
    - {name: ci, key_env: C, workloads: all}
)",
                              "budget.yaml");
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  return loaded.config;
}

class BudgetsTest : public ::testing::Test {
 protected:
  std::shared_ptr<const config::Config> config_ = config_of();
  Budgets budgets_{*config_, 2};
};

TEST_F(BudgetsTest, AWorkloadBudgetRejectsOnceItsDayTotalReachesTheLimit) {
  EXPECT_EQ(budgets_.check("capped", "", kDay1).action, Action::kAllow);
  budgets_.add(0, "capped", "", kDay1, 600'000);
  budgets_.add(1, "capped", "", kDay1 + 10, 400'000);
  BudgetVerdict verdict = budgets_.check("capped", "", kDay1 + Budgets::kMergeIntervalMs);
  EXPECT_EQ(verdict.action, Action::kReject);
  ASSERT_TRUE(verdict.hit.has_value());
  EXPECT_EQ(*verdict.hit,
            (BudgetHit{BudgetScope::kWorkload, "capped", 1'000'000, 1'000'000, "2026-12-01"}));
  EXPECT_EQ(verdict.newly_spent, std::vector<BudgetHit>{*verdict.hit});
  EXPECT_EQ(budgets_.spent(BudgetScope::kWorkload, "capped", kDay1 + 2000), 1'000'000);
}

TEST_F(BudgetsTest, ASpentBudgetIsAnnouncedOnceADay) {
  budgets_.add(0, "capped", "", kDay1, 2'000'000);
  EXPECT_EQ(budgets_.merge(kDay1 + 1).size(), 1u);
  EXPECT_TRUE(budgets_.merge(kDay1 + 2).empty());
  EXPECT_TRUE(budgets_.check("capped", "", kDay1 + 5000).newly_spent.empty());
  budgets_.add(0, "capped", "", kDay1 + kDayMs, 2'000'000);
  EXPECT_EQ(budgets_.merge(kDay1 + kDayMs + 1).size(), 1u);
}

TEST_F(BudgetsTest, ChecksReadTotalsAtMostOneMergeIntervalOld) {
  EXPECT_EQ(budgets_.check("capped", "", kDay1).action, Action::kAllow);  // merges at kDay1
  budgets_.add(0, "capped", "", kDay1, 1'000'000);
  // The overshoot the README states: within the interval the spend is not seen yet.
  EXPECT_EQ(budgets_.check("capped", "", kDay1 + Budgets::kMergeIntervalMs - 1).action,
            Action::kAllow);
  EXPECT_EQ(budgets_.check("capped", "", kDay1 + Budgets::kMergeIntervalMs).action,
            Action::kReject);
}

TEST_F(BudgetsTest, UtcMidnightStartsANewDayAtZero) {
  const std::int64_t last_ms_of_day = kDay1 + kDayMs - 1;
  budgets_.add(0, "capped", "", last_ms_of_day, 5'000'000);
  EXPECT_EQ(budgets_.check("capped", "", last_ms_of_day).action, Action::kReject);
  // The next millisecond is the next UTC day: no merge interval to wait for.
  EXPECT_EQ(budgets_.check("capped", "", kDay1 + kDayMs).action, Action::kAllow);
  EXPECT_EQ(budgets_.spent(BudgetScope::kWorkload, "capped", kDay1 + kDayMs), 0);
  // A request that arrived yesterday and ends today is booked on yesterday.
  budgets_.add(0, "capped", "", kDay1 + kDayMs + 5, 100);
  budgets_.add(0, "capped", "", last_ms_of_day, 7'000'000);
  (void)budgets_.merge(kDay1 + kDayMs + 10);
  EXPECT_EQ(budgets_.spent(BudgetScope::kWorkload, "capped", kDay1 + kDayMs + 10), 100);
}

TEST_F(BudgetsTest, PrimaryOnlyCutsTheRouteAndAKeyBudgetRejectsFirst) {
  budgets_.add(0, "cut", "ci", kDay1, 2'000'000);
  BudgetVerdict cut = budgets_.check("cut", "ci", kDay1 + 1);
  EXPECT_EQ(cut.action, Action::kPrimaryOnly);
  EXPECT_EQ(cut.hit->scope, BudgetScope::kWorkload);
  budgets_.add(1, "open", "team", kDay1, 500'000);
  (void)budgets_.merge(kDay1 + 2);
  BudgetVerdict key = budgets_.check("cut", "team", kDay1 + 3);
  EXPECT_EQ(key.action, Action::kReject);
  EXPECT_EQ(key.hit->scope, BudgetScope::kKey);
  EXPECT_EQ(key.hit->name, "team");
  EXPECT_EQ(key.hit->spent_micro_usd, 500'000);
  // Other keys and unbudgeted workloads are not held to it.
  EXPECT_EQ(budgets_.check("open", "ci", kDay1 + 4).action, Action::kAllow);
  EXPECT_EQ(budgets_.check("open", "", kDay1 + 5).action, Action::kAllow);
}

TEST_F(BudgetsTest, TheLedgersSpendOfTodaySeedsTheTotalsAndYesterdaysDoesNot) {
  Budgets restarted(*config_, 1);
  restarted.seed("capped", "team", kDay1 - 1, 9'000'000);  // yesterday
  restarted.seed("capped", "team", kDay1 + 100, 300'000);
  restarted.seed("capped", "", kDay1 + 200, 700'000);
  EXPECT_EQ(restarted.check("capped", "", kDay1 + 300).action, Action::kReject);
  EXPECT_EQ(restarted.spent(BudgetScope::kWorkload, "capped", kDay1 + 300), 1'000'000);
  EXPECT_EQ(restarted.spent(BudgetScope::kKey, "team", kDay1 + 300), 300'000);
}

TEST(Budgets, AConfigWithoutBudgetsAlwaysAllows) {
  auto loaded = config::parse(
      "providers: {a: {kind: simulated, model: m}}\n"
      "workloads: {w: {route: [a]}}\n",
      "none.yaml");
  ASSERT_TRUE(loaded.config);
  Budgets budgets(*loaded.config, 4);
  EXPECT_TRUE(budgets.empty());
  budgets.add(3, "w", "", kDay1, 1'000'000'000);
  EXPECT_EQ(budgets.check("w", "", kDay1 + 5000).action, Action::kAllow);
}

}  // namespace
}  // namespace backstop::access
