#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"

namespace backstop::config {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> errors_of(const LoadResult& result) {
  std::vector<std::string> out;
  for (const auto& e : result.errors) out.push_back(e.to_string());
  return out;
}

TEST(StackConfig, AProvidersStackLabelIsRead) {
  const LoadResult result = parse(R"(providers:
  v4: {kind: openai, base_url: "http://127.0.0.1:8000/v1", model: m, stack: vllm-0.7.3}
  other: {kind: openai, base_url: "http://127.0.0.1:8001/v1", model: m}
workloads:
  w: {route: [v4]}
)",
                                  "test.yaml");
  ASSERT_THAT(errors_of(result), ElementsAre());
  EXPECT_EQ(result.config->find_provider("v4")->stack, "vllm-0.7.3");
  EXPECT_EQ(result.config->find_provider("other")->stack, "");
}

TEST(StackConfig, AStackLabelWithOtherCharactersIsAnErrorOnItsLine) {
  const LoadResult result = parse(R"(providers:
  v4:
    kind: openai
    base_url: "http://127.0.0.1:8000/v1"
    model: m
    stack: "vllm 0.7"
workloads:
  w: {route: [v4]}
)",
                                  "test.yaml");
  EXPECT_THAT(errors_of(result),
              ElementsAre("test.yaml:6: providers.v4.stack: must be 1-64 letters, digits, '.', "
                          "'_', '+' or '-' (vllm-0.7.3), got \"vllm 0.7\""));
}

TEST(StackConfig, ASimulatedProviderTakesFaultRatesPerStack) {
  const LoadResult result = parse(R"(providers:
  sim:
    kind: simulated
    model: m
    stack: vllm-0.7.3
    simulation:
      faults: {schema: 0.02}
      stacks:
        sglang-0.4.6: {schema: 0.3, invalid_json: 0.1}
        "bad label": {schema: 0.1}
        trt-llm-0.17: {schema: 2}
workloads:
  w: {route: [sim]}
)",
                                  "test.yaml");
  EXPECT_THAT(errors_of(result),
              ElementsAre("test.yaml:10: providers.sim.simulation.stacks.bad label: a stack label "
                          "must be 1-64 letters, digits, '.', '_', '+' or '-' (vllm-0.7.3), got "
                          "\"bad label\"",
                          "test.yaml:11: providers.sim.simulation.stacks.trt-llm-0.17.schema: must "
                          "be between 0 and 1, got 2"));
  const LoadResult good = parse(R"(providers:
  sim:
    kind: simulated
    model: m
    simulation:
      faults: {schema: 0.02}
      stacks: {sglang-0.4.6: {schema: 0.3, invalid_json: 0.1}}
workloads:
  w: {route: [sim]}
)",
                                "test.yaml");
  ASSERT_THAT(errors_of(good), ElementsAre());
  const Provider& p = *good.config->find_provider("sim");
  EXPECT_DOUBLE_EQ(p.simulation.schema, 0.02);
  ASSERT_EQ(p.stack_faults.size(), 1u);
  EXPECT_EQ(p.stack_faults[0].first, "sglang-0.4.6");
  EXPECT_DOUBLE_EQ(p.stack_faults[0].second.schema, 0.3);
  EXPECT_DOUBLE_EQ(p.stack_faults[0].second.invalid_json, 0.1);
}

}  // namespace
}  // namespace backstop::config
