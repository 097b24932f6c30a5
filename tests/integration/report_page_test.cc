// The HTML report in a real browser: headless Chromium loads the page from a file and a
// measuring script (added by the test, never part of the page) counts the plot marks the
// browser laid out with a non-zero size.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>

#include "report/report.h"

namespace backstop {
namespace {

// The first of Debian's and other distributions' names for the browser on PATH; empty: none.
std::string chromium_path() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/bin";
    for (std::size_t start = 0; start <= dirs.size();) {
      std::size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      const std::filesystem::path candidate =
          std::filesystem::path(dirs.substr(start, end - start)) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
      start = end + 1;
    }
  }
  return {};
}

std::string run(const std::string& command) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return out;
  std::array<char, 4096> buffer;
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) {
    out.append(buffer.data(), n);
  }
  return out;
}

// Counts, per kind of mark, the elements whose laid-out box is not empty.
constexpr const char* kMeasure = R"(<script>
const laidOut = (selector) => [...document.querySelectorAll(selector)]
    .filter((e) => { const b = e.getBBox(); return b.width > 0 && b.height > 0; }).length;
const result = document.createElement('pre');
result.id = 'measured';
result.textContent = ['svg.chart', 'circle.mark', 'polyline.series', 'rect.bar', 'rect.stripe']
    .map((s) => s + '=' + laidOut(s)).join(' ');
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

TEST(ReportPage, ChromiumRendersEveryPlotOfTheHtmlReport) {
  const std::string chromium = chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  const auto dir = std::filesystem::temp_directory_path() /
                   ("backstop_report_page_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto data = rows();
  std::string html = report::render_html(report::build_report(data, nullptr), data);
  const std::size_t end = html.rfind("</body>");
  ASSERT_NE(end, std::string::npos);
  html.insert(end, kMeasure);
  const auto page = dir / "report.html";
  std::ofstream(page) << html;

  const std::string dom =
      run("'" + chromium +
          "' --headless --no-sandbox --disable-gpu --no-first-run "
          "--user-data-dir='" +
          (dir / "profile").string() + "' --dump-dom 'file://" + page.string() + "' 2>/dev/null");
  std::filesystem::remove_all(dir);
  std::smatch found;
  ASSERT_TRUE(std::regex_search(dom, found, std::regex("<pre id=\"measured\">([^<]*)</pre>")))
      << dom.substr(0, 2000);
  // 3 plots; 48 points on one line; 3 days x 2 models of spend plus 3 reasons of one workload;
  // the 3 bands drawn behind the rate.
  EXPECT_EQ(found[1].str(),
            "svg.chart=3 circle.mark=48 polyline.series=1 rect.bar=9 rect.stripe=3");
}

}  // namespace
}  // namespace backstop
