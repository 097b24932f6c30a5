#include "eval/diff.h"

#include <gtest/gtest.h>

namespace backstop::eval {
namespace {

// A run of `passes` then `fails` cases of one workload, ids c0, c1, ...
StoredRun run_of(std::string id, std::string workload, int passes, int fails, int first = 0) {
  StoredRun run;
  run.run.id = std::move(id);
  run.run.suite_hash = "h";
  for (int i = 0; i < passes + fails; ++i) {
    CaseRecord c;
    c.case_id = workload + std::to_string(first + i);
    c.workload = workload;
    c.verdict = i < passes ? "pass" : "fail";
    if (i >= passes) {
      c.reason = "schema";
      c.detail = "arguments of f: /x must be a string";
    }
    run.cases.push_back(c);
  }
  return run;
}

TEST(DiffRunsTest, SixOfTenFlippingToFailIsASignificantRegression) {
  const RunDiff d = diff_runs(run_of("A", "agentic", 10, 0), run_of("B", "agentic", 4, 6));
  EXPECT_EQ(d.total.pass_to_fail, 6);
  EXPECT_EQ(d.total.fail_to_pass, 0);
  EXPECT_DOUBLE_EQ(d.total.p_value, 2.0 / 64);  // 2 * 0.5^6
  EXPECT_TRUE(d.total.regression);
  EXPECT_TRUE(d.regression());
  ASSERT_EQ(d.flips.size(), 6u);
  EXPECT_EQ(d.flips[0].case_id, "agentic4");
  EXPECT_EQ(d.flips[0].from, "pass");
  EXPECT_EQ(d.flips[0].to, "fail: schema");
  EXPECT_EQ(d.flips[0].detail, "arguments of f: /x must be a string");
  ASSERT_EQ(d.workloads.size(), 1u);
  EXPECT_NEAR(d.workloads[0].rate_b.low, 0.16818, 1e-4);  // Wilson of 4/10
  EXPECT_NEAR(d.workloads[0].rate_b.high, 0.68734, 1e-4);
}

TEST(DiffRunsTest, FiveFlipsAreNotSignificant) {
  const RunDiff d = diff_runs(run_of("A", "agentic", 10, 0), run_of("B", "agentic", 5, 5));
  EXPECT_DOUBLE_EQ(d.total.p_value, 2.0 / 32);
  EXPECT_FALSE(d.regression());
}

TEST(DiffRunsTest, ASignificantImprovementIsNoRegression) {
  const RunDiff d = diff_runs(run_of("A", "qa", 2, 8), run_of("B", "qa", 10, 0));
  EXPECT_EQ(d.total.fail_to_pass, 8);
  EXPECT_TRUE(d.total.improvement);
  EXPECT_FALSE(d.regression());
}

TEST(DiffRunsTest, ARegressionInOneWorkloadCountsEvenWhenAnotherImproves) {
  StoredRun a = run_of("A", "agentic", 10, 0);
  StoredRun b = run_of("B", "agentic", 3, 7);
  for (auto& c : run_of("A", "qa", 3, 7).cases) a.cases.push_back(c);
  for (auto& c : run_of("B", "qa", 10, 0).cases) b.cases.push_back(c);
  const RunDiff d = diff_runs(a, b);
  EXPECT_FALSE(d.total.regression);  // 7 against 7 flips
  ASSERT_EQ(d.workloads.size(), 2u);
  EXPECT_EQ(d.workloads[0].workload, "agentic");
  EXPECT_NEAR(d.workloads[0].p_value, 2.0 / 128, 1e-12);
  EXPECT_TRUE(d.workloads[0].regression);
  EXPECT_TRUE(d.regression());
}

TEST(DiffRunsTest, CasesInOneRunOnlyCountInItsRateButAreNotPaired) {
  const RunDiff d = diff_runs(run_of("A", "qa", 4, 0), run_of("B", "qa", 4, 0, 2));
  EXPECT_EQ(d.only_a, 2);
  EXPECT_EQ(d.only_b, 2);
  EXPECT_EQ(d.total.paired, 2);
  EXPECT_EQ(d.total.cases_a, 4);
}

TEST(RenderDiffTest, ShowsRatesFlipsAndTheVerdict) {
  const std::string out =
      render_diff(diff_runs(run_of("A", "agentic", 10, 0), run_of("B", "agentic", 4, 6)));
  EXPECT_NE(out.find("10/10 100.0% [72.2%, 100.0%]"), std::string::npos) << out;
  EXPECT_NE(out.find("4/10 40.0% [16.8%, 68.7%]"), std::string::npos) << out;
  EXPECT_NE(out.find("REGRESSION"), std::string::npos);
  EXPECT_NE(out.find("agentic9 (agentic): pass -> fail: schema"), std::string::npos);
  EXPECT_NE(out.find("drift: B is significantly worse"), std::string::npos);
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(RenderDiffHtmlTest, APageWithTheIntervalPlotTheMcNemarTestTheFlipsAndTheVerdict) {
  StoredRun a = run_of("A", "agentic", 10, 0);
  StoredRun b = run_of("B", "agentic", 4, 6);
  a.run.stack = "vllm-0.7.3";
  b.run.stack = "sglang-<0.4.6>";
  const std::string html = render_diff_html(diff_runs(a, b));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<svg "), 1u);
  EXPECT_EQ(count(html, "<circle class=\"mark\""), 4u);  // A and B for agentic and for all
  EXPECT_EQ(count(html, "<line class=\"interval\""), 4u);
  EXPECT_NE(html.find("<td>4/10 40.0% [16.8%, 68.7%]</td>"), std::string::npos);
  EXPECT_NE(html.find("6 passed in A and not in B, 0 the other way; p = 0.03125"),
            std::string::npos);
  EXPECT_EQ(count(html, "<td>pass</td><td>fail: schema</td>"), 6u);
  EXPECT_NE(html.find("B sglang-&lt;0.4.6&gt;"), std::string::npos);  // escaped
  EXPECT_NE(html.find("<p class=\"verdict regression\">drift: B is significantly worse"),
            std::string::npos);
  for (const char* fetch : {"<script", "<link", "src=", "href=", "url("}) {
    EXPECT_EQ(html.find(fetch), std::string::npos) << fetch;
  }
}

TEST(RenderDiffHtmlTest, NoRegressionSaysSo) {
  const std::string html =
      render_diff_html(diff_runs(run_of("A", "qa", 5, 0), run_of("B", "qa", 5, 0)));
  EXPECT_NE(html.find("<p class=\"verdict\">no significant regression</p>"), std::string::npos);
  EXPECT_NE(html.find("No paired case changed its verdict."), std::string::npos);
}

}  // namespace
}  // namespace backstop::eval
