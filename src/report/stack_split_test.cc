#include "report/stack_split.h"

#include <gtest/gtest.h>

namespace backstop::report {
namespace {

// `n` requests on `stack` from unix_ms on, the first `fallbacks` of them fallen back on schema.
void add(std::vector<ledger::RequestRow>& rows, std::string stack, int n, int fallbacks,
         std::int64_t unix_ms) {
  for (int i = 0; i < n; ++i) {
    const bool fell = i < fallbacks;
    ledger::RequestRow row{"r",  unix_ms + i, 10, "agentic", "", fell ? "fallback" : "primary",
                           "v4", {}};
    ledger::AttemptRow first{"v4", "m", fell ? "schema" : "", 200, 1, 0, 1, 1, 1};
    first.stack = stack;
    row.attempts.push_back(first);
    rows.push_back(row);
  }
}

TEST(StackSplitTest, ARateThatMovesWithTheStackIsAChangePoint) {
  std::vector<ledger::RequestRow> rows;
  add(rows, "vllm-0.7.3", 100, 5, 0);
  add(rows, "sglang-0.4.6", 100, 30, 1'000);
  const auto splits = split_by_stack(rows);
  ASSERT_EQ(splits.size(), 1u);
  ASSERT_EQ(splits[0].segments.size(), 2u);
  EXPECT_EQ(splits[0].segments[0].stack, "vllm-0.7.3");
  EXPECT_DOUBLE_EQ(splits[0].segments[1].fallback_rate(), 0.30);
  EXPECT_EQ(splits[0].segments[1].reasons.at("schema"), 30);
  ASSERT_EQ(splits[0].changes.size(), 1u);
  EXPECT_TRUE(splits[0].changes[0].significant);
  // Pooled 35/200: z = 0.25 / sqrt(0.175 * 0.825 * 0.02) = 4.652, p = 3.3e-6.
  EXPECT_NEAR(splits[0].changes[0].p_value, 3.3e-6, 0.2e-6);
  const std::string out = render_stack_split(splits);
  EXPECT_NE(out.find("CHANGE POINT: fallback rate 5.0% -> 30.0%"), std::string::npos) << out;
}

TEST(StackSplitTest, ARateThatStaysWithinChanceIsNoChangePoint) {
  std::vector<ledger::RequestRow> rows;
  add(rows, "vllm-0.7.3", 100, 10, 0);
  add(rows, "vllm-0.8.0", 100, 12, 1'000);
  const auto splits = split_by_stack(rows);
  ASSERT_EQ(splits[0].changes.size(), 1u);
  EXPECT_FALSE(splits[0].changes[0].significant);
  EXPECT_NE(render_stack_split(splits).find("stack changed: "), std::string::npos);
}

TEST(StackSplitTest, AWorkloadWhoseLedgerNamesNoStackIsLeftOut) {
  std::vector<ledger::RequestRow> rows;
  add(rows, "", 10, 1, 0);
  EXPECT_TRUE(split_by_stack(rows).empty());
}

}  // namespace
}  // namespace backstop::report
