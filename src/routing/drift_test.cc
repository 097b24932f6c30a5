#include "routing/drift.h"

#include <gtest/gtest.h>

#include "providers/simulated_provider.h"

namespace backstop::routing {
namespace {

constexpr std::int64_t kT0 = 1'000'000'000;  // a multiple of the window's 10 s buckets

class DriftWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = config::parse(
        "providers:\n  v4: {kind: simulated, model: m}\n"
        "workloads:\n  w: {route: [v4]}\n",
        "test.yaml");
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
    config_ = loaded.config;
    providers::SimulatedOptions o;
    o.name = "v4";
    o.model = "m";
    providers_.push_back(std::make_unique<providers::SimulatedProvider>(o));
    providers_[0]->set_stack("vllm-0.7.3");
    router_ = std::make_unique<Router>(*config_, providers_, registry_, *spend_, clock_);
  }

  // `n` routed requests at `unix_ms`, `fallbacks` of them fallen back.
  void record(std::int64_t unix_ms, int n, int fallbacks) {
    for (int i = 0; i < n; ++i) router_->find("w")->window->record(unix_ms, i < fallbacks);
  }

  std::shared_ptr<const config::Config> config_;
  std::vector<std::unique_ptr<providers::Provider>> providers_;
  telemetry::Registry registry_{1};
  std::unique_ptr<ledger::SpendStore> spend_ = ledger::make_memory_store();
  core::ManualClock clock_;
  std::unique_ptr<Router> router_;
};

TEST_F(DriftWatchTest, AStackChangeAfterWhichTheFallbackRateJumpsIsOneEvent) {
  DriftWatch watch(*router_, 30);
  EXPECT_TRUE(watch.check(kT0).empty());
  record(kT0 + 1'000, 100, 5);
  providers_[0]->set_stack("sglang-0.4.6");
  EXPECT_TRUE(watch.check(kT0 + 20'000).empty());  // the change: judged later
  record(kT0 + 30'000, 20, 8);
  EXPECT_TRUE(watch.check(kT0 + 35'000).empty());  // 20 since the change: too few yet
  record(kT0 + 40'000, 80, 32);
  const auto events = watch.check(kT0 + 45'000);
  ASSERT_EQ(events.size(), 1u);
  const DriftEvent& e = events[0];
  EXPECT_EQ(e.workload, "w");
  EXPECT_EQ(e.provider, "v4");
  EXPECT_EQ(e.from_stack, "vllm-0.7.3");
  EXPECT_EQ(e.to_stack, "sglang-0.4.6");
  EXPECT_EQ(e.before_requests, 100);
  EXPECT_EQ(e.before_fallbacks, 5);
  EXPECT_EQ(e.after_requests, 100);
  EXPECT_EQ(e.after_fallbacks, 40);
  EXPECT_LT(e.p_value, 1e-6);
  EXPECT_NE(e.json().find(R"("event":"drift","workload":"w","provider":"v4")"), std::string::npos)
      << e.json();
  EXPECT_TRUE(watch.check(kT0 + 50'000).empty());  // each change is judged once
}

TEST_F(DriftWatchTest, AStackChangeWithinChanceIsNoEvent) {
  DriftWatch watch(*router_, 30);
  EXPECT_TRUE(watch.check(kT0).empty());
  record(kT0 + 1'000, 100, 10);
  providers_[0]->set_stack("sglang-0.4.6");
  EXPECT_TRUE(watch.check(kT0 + 20'000).empty());
  record(kT0 + 30'000, 100, 12);
  EXPECT_TRUE(watch.check(kT0 + 35'000).empty());
}

}  // namespace
}  // namespace backstop::routing
