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

}  // namespace
}  // namespace backstop::config
