// `backstop eval diff --format html` in a real browser: headless Chromium loads the page from
// a file; a measuring script (added by the test, never part of the page) counts the plot's
// marks laid out with a size, reads the tables and the verdict, and lists console errors.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "chromium.h"
#include "eval/diff.h"

namespace backstop {
namespace {

constexpr const char* kMeasure = R"(<script>
const laidOut = (selector, both) => [...document.querySelectorAll(selector)]
    .filter((e) => { const b = e.getBBox(); return (!both || b.width > 0) && b.height > 0; })
    .length;
const text = (selector) => document.querySelector(selector)?.textContent ?? 'none';
const result = document.createElement('pre');
result.id = 'measured';
result.textContent = [
  'charts=' + laidOut('svg.chart', true),
  'marks=' + laidOut('circle.mark', true),
  'intervals=' + laidOut('line.interval', false),
  'workload_rows=' + document.querySelectorAll('table.workloads tr').length,
  'flip_rows=' + document.querySelectorAll('table.flips tr').length,
  'first_flip=' + text('table.flips tr:nth-child(2) td:first-child'),
  'verdict=' + text('.verdict'),
  'fetched=' + performance.getEntriesByType('resource').length,
  'errors=' + JSON.stringify(pageErrors),
].join('|');
document.body.appendChild(result);
</script>)";

// `passes` then `fails` cases of `workload` on `stack`, ids workload0, workload1, ...
eval::StoredRun run_of(std::string id, std::string stack,
                       std::vector<std::tuple<std::string, int, int>> workloads) {
  eval::StoredRun run;
  run.run = {std::move(id), 1'796'112'000'000, "suite.jsonl", "abc", "v4", "m", std::move(stack)};
  for (const auto& [workload, passes, fails] : workloads) {
    for (int i = 0; i < passes + fails; ++i) {
      eval::CaseRecord c;
      c.case_id = workload + std::to_string(i);
      c.workload = workload;
      c.verdict = i < passes ? "pass" : "fail";
      if (i >= passes) {
        c.reason = "schema";
        c.detail = "arguments of get_weather: /city must be a string";
      }
      run.cases.push_back(c);
    }
  }
  return run;
}

TEST(EvalDiffPage, ChromiumRendersThePassRatePlotTheFlipsAndTheVerdict) {
  const std::string chromium = testing::chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  const eval::RunDiff diff =
      eval::diff_runs(run_of("A", "vllm-0.7.3", {{"agentic", 10, 0}, {"qa", 8, 2}}),
                      run_of("B", "sglang-0.4.6", {{"agentic", 3, 7}, {"qa", 8, 2}}));
  const std::string html = testing::with_probes(eval::render_diff_html(diff), kMeasure);
  ASSERT_FALSE(html.empty());
  const std::string dom = testing::dump_dom(chromium, html, "eval_diff_page");
  std::smatch found;
  ASSERT_TRUE(std::regex_search(dom, found, std::regex("<pre id=\"measured\">([^<]*)</pre>")))
      << dom.substr(0, 2000);
  // One plot: runs A and B for agentic, qa and all, each a dot on its interval; a header and
  // three rows of workloads; a header and the 7 flipped cases of agentic, first agentic3.
  EXPECT_EQ(found[1].str(),
            "charts=1|marks=6|intervals=6|workload_rows=4|flip_rows=8|first_flip=agentic3|"
            "verdict=drift: B is significantly worse than A (p &lt; 0.05)|fetched=0|errors=[]");
}

}  // namespace
}  // namespace backstop
