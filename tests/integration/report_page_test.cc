// The HTML report in a real browser: headless Chromium loads the page from a file and a
// measuring script (added by the test, never part of the page) counts the plot marks the
// browser laid out with a non-zero size.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "chromium.h"
#include "report/report.h"

namespace backstop {
namespace {

// Counts, per kind of mark, the elements whose laid-out box is not empty (a vertical line's
// has no width), and the rows of the stack tables.
constexpr const char* kMeasure = R"(<script>
const laidOut = (selector) => [...document.querySelectorAll(selector)]
    .filter((e) => {
      const b = e.getBBox();
      return b.height > 0 && (b.width > 0 || e.tagName === 'line');
    }).length;
const result = document.createElement('pre');
result.id = 'measured';
result.textContent =
    ['svg.chart', 'circle.mark', 'polyline.series', 'rect.bar', 'rect.stripe', 'line.interval']
        .map((s) => s + '=' + laidOut(s)).join(' ') +
    ' stack_rows=' + document.querySelectorAll('table.stacks tr').length +
    ' errors=' + JSON.stringify(pageErrors);
document.body.appendChild(result);
</script>)";

std::vector<ledger::RequestRow> rows() {
  std::vector<ledger::RequestRow> out;
  const char* reasons[] = {"schema", "invalid_json", "no_tool_call"};
  for (int i = 0; i < 48; ++i) {
    // An hour apart from 08:00: the rate over time has 48 points, spend three days.
    ledger::RequestRow row{"r",    1'796'112'000'000 + i * 3'600'000,   10,   "agentic",
                           "team", i % 4 == 0 ? "fallback" : "primary", "v4", {}};
    if (i % 4 == 0) {
      row.attempts.push_back({"v4", "v4-flash", reasons[i % 3], 200, 1, 0, 1, 3, 1});
      row.attempts.push_back({"claude", "claude-sonnet", "", 200, 10, 0, 5, 900, 1});
    } else {
      row.attempts.push_back({"v4", "v4-flash", "", 200, 10, 0, 5, 7, 1});
    }
    out.push_back(row);
  }
  return out;
}

// What Chromium laid out of the report page of `data`; empty when there was no result.
std::string measured(const std::string& chromium, const std::vector<ledger::RequestRow>& data) {
  const std::string html = testing::with_probes(
      report::render_html(report::build_report(data, nullptr), data), kMeasure);
  if (html.empty()) return {};
  const std::string dom = testing::dump_dom(chromium, html, "report_page");
  std::smatch found;
  if (!std::regex_search(dom, found, std::regex("<pre id=\"measured\">([^<]*)</pre>"))) {
    return "no result in: " + dom.substr(0, 2000);
  }
  return found[1].str();
}

TEST(ReportPage, ChromiumRendersEveryPlotOfTheHtmlReport) {
  const std::string chromium = testing::chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  // 3 plots; 48 points on one line; 3 days x 2 models of spend plus 3 reasons of one workload;
  // the 3 bands drawn behind the rate; no error in the console.
  EXPECT_EQ(measured(chromium, rows()),
            "svg.chart=3 circle.mark=48 polyline.series=1 rect.bar=9 rect.stripe=3 "
            "line.interval=0 stack_rows=0 errors=[]");
}

TEST(ReportPage, ChromiumRendersTheSplitByStack) {
  const std::string chromium = testing::chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  auto data = rows();
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i].attempts.front().stack = i < 24 ? "vllm-0.7.3" : "sglang-0.4.6";
  }
  // The three plots as before, and the split's: a dot on its interval per stack; a table of a
  // header and the two stacks.
  EXPECT_EQ(measured(chromium, data),
            "svg.chart=4 circle.mark=50 polyline.series=1 rect.bar=9 rect.stripe=3 "
            "line.interval=2 stack_rows=3 errors=[]");
}

}  // namespace
}  // namespace backstop
