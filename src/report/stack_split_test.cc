#include "report/stack_split.h"

#include <gtest/gtest.h>

#include "report/report.h"

namespace backstop::report {
namespace {

// `n` requests on `stack` from unix_ms on, the first `fallbacks` of them fallen back on schema.
void add(std::vector<ledger::RequestRow>& rows, std::string stack, int n, int fallbacks,
         std::int64_t unix_ms, std::string workload = "agentic") {
  for (int i = 0; i < n; ++i) {
    const bool fell = i < fallbacks;
    ledger::RequestRow row{"r",  unix_ms + i, 10, workload, "", fell ? "fallback" : "primary",
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

TEST(StackSplitTest, ShadowCallsAreNoRequestsOfTheSplit) {
  std::vector<ledger::RequestRow> rows;
  add(rows, "vllm-0.7.3", 10, 1, 0);
  add(rows, "candidate-stack", 5, 5, 100);
  for (std::size_t i = 10; i < rows.size(); ++i) rows[i].outcome = "shadow";
  add(rows, "vllm-0.7.3", 10, 1, 200);
  const auto splits = split_by_stack(rows);
  ASSERT_EQ(splits.size(), 1u);
  ASSERT_EQ(splits[0].segments.size(), 1u);
  EXPECT_EQ(splits[0].segments[0].requests, 20);
  EXPECT_TRUE(splits[0].changes.empty());
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// agentic: 100 requests on vllm-0.7.3 (5 fell back), then 100 on sglang-0.4.6 (30); chat: 10
// on vllm-0.7.3 only.
std::vector<ledger::RequestRow> two_workloads() {
  std::vector<ledger::RequestRow> rows;
  add(rows, "vllm-0.7.3", 100, 5, 1'796'112'000'000);
  add(rows, "vllm-0.7.3", 10, 1, 1'796'112'000'500, "chat");
  add(rows, "sglang-0.4.6", 100, 30, 1'796'112'001'000);
  return rows;
}

TEST(StackSplitReport, JsonCarriesEachWorkloadsSegmentsAndTheirChangePoints) {
  const std::string json = render_json(build_report(two_workloads(), nullptr));
  const std::size_t agentic = json.find(
      R"("stacks":[{"stack":"vllm-0.7.3","first_unix_ms":1796112000000,)"
      R"("last_unix_ms":1796112000099,"requests":100,"fallbacks":5,"fallback_rate":0.050000,)"
      R"("reasons":{"schema":5},"change":null},{"stack":"sglang-0.4.6",)"
      R"("first_unix_ms":1796112001000,"last_unix_ms":1796112001099,"requests":100,)"
      R"("fallbacks":30,"fallback_rate":0.300000,"reasons":{"schema":30},)"
      R"("change":{"from_stack":"vllm-0.7.3","p_value":3.)");
  ASSERT_NE(agentic, std::string::npos) << json;
  EXPECT_EQ(json.find(R"(,"change_point":true}}]})", agentic), json.find("e-06", agentic) + 4);
  EXPECT_NE(json.find(R"("workload":"chat")"), std::string::npos);
  EXPECT_NE(json.find(R"("stacks":[{"stack":"vllm-0.7.3","first_unix_ms":1796112000500,)"),
            std::string::npos);
  EXPECT_NE(json.find(R"("shadow":[],"stacks":[]}})"), std::string::npos);  // the total
}

TEST(StackSplitReport, HtmlHasATablePerWorkloadAndAPlotWhereTheStackChanged) {
  const std::string html = render_html(build_report(two_workloads(), nullptr), two_workloads());
  EXPECT_NE(html.find("<h2>Fallback rate by inference stack</h2>"), std::string::npos);
  EXPECT_EQ(count(html, "<table class=\"stacks\">"), 2u);
  // A plot for agentic alone: one dot on its interval per stack.
  EXPECT_EQ(count(html, "Fallback rate of agentic by stack"), 2u);  // title and aria-label
  EXPECT_EQ(count(html, "by stack, 95 % intervals"), 2u);
  EXPECT_EQ(count(html, "<line class=\"interval\""), 2u);
  EXPECT_NE(html.find("<td class=\"change-point\">CHANGE POINT (p = 3.28e-06)</td>"),
            std::string::npos);
  EXPECT_NE(html.find("<td>5.0% [2.2%, 11.2%]</td>"), std::string::npos) << html;
  EXPECT_NE(html.find("<td>2026-12-01 08:00:00</td>"), std::string::npos);
}

TEST(StackSplitReport, APageWithoutStacksHasNoStackSection) {
  std::vector<ledger::RequestRow> rows;
  add(rows, "", 10, 1, 0);
  EXPECT_EQ(render_html(build_report(rows, nullptr), rows).find("inference stack"),
            std::string::npos);
}

}  // namespace
}  // namespace backstop::report
