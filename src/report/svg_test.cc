#include "report/svg.h"

#include <gtest/gtest.h>

#include "report/report.h"

namespace backstop::report {
namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Svg, ALineChartHasAPolylinePerSeriesAMarkPerValueAndItsStripes) {
  svg::LineChart chart{"rate",
                       {"a", "b", "c"},
                       {{"x", {0.1, 0.2, 0.3}}, {"y", {0, 0.5, 1}}},
                       {{0, 0.05, "under-used", "#76b7b2"}, {0.3, 1, "move", "#e15759"}},
                       1,
                       true};
  const std::string out = svg::line_chart(chart);
  EXPECT_EQ(out.rfind("<svg ", 0), 0u);
  EXPECT_EQ(count(out, "<polyline class=\"series\""), 2u);
  EXPECT_EQ(count(out, "<circle class=\"mark\""), 6u);
  EXPECT_EQ(count(out, "<rect class=\"stripe\""), 2u);
  EXPECT_NE(out.find(">100%</text>"), std::string::npos);  // percent ticks
}

TEST(Svg, ABarChartStacksOneRectPerNonZeroValue) {
  svg::BarChart chart{"spend", {"d1", "d2"}, {{"m1", {1, 0}}, {"m2", {2, 3}}}, "$"};
  const std::string out = svg::bar_chart(chart);
  EXPECT_EQ(count(out, "<rect class=\"bar\""), 3u);
  EXPECT_EQ(count(out, "<rect class=\"swatch\""), 2u);
  EXPECT_NE(out.find(">$3.00</text>"), std::string::npos);  // the top tick is the tallest stack
}

TEST(Svg, AnIntervalChartDrawsADotOnAnIntervalPerMeasuredValue) {
  svg::IntervalChart chart{"pass rate",
                           {"agentic", "qa"},
                           {{"A", {svg::Estimate{0.9, 0.6, 1.0}, svg::Estimate{0.5, 0.25, 0.75}}},
                            {"B", {svg::Estimate{0.4, 0.17, 0.69}, std::nullopt}}},
                           1,
                           true};
  const std::string out = svg::interval_chart(chart);
  EXPECT_EQ(out.rfind("<svg ", 0), 0u);
  EXPECT_EQ(count(out, "<circle class=\"mark\""), 3u);  // B has nothing for qa
  EXPECT_EQ(count(out, "<line class=\"interval\""), 3u);
  EXPECT_EQ(count(out, "<rect class=\"swatch\""), 2u);
  // The plot is 210 high from y=34: 60 % .. 100 % spans y=118 .. y=34.
  EXPECT_NE(out.find("y1=\"118.00\" y2=\"34.00\""), std::string::npos) << out;
  EXPECT_NE(out.find("<title>B agentic: 40% [17%, 69%]</title>"), std::string::npos);
}

TEST(Svg, TextIsEscaped) {
  EXPECT_EQ(svg::escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  svg::BarChart chart{"<script>", {"</svg>"}, {{"m", {1}}}, ""};
  const std::string out = svg::bar_chart(chart);
  EXPECT_EQ(out.find("<script>"), std::string::npos);
  EXPECT_EQ(out.find("</svg>"), out.size() - 6);
}

TEST(Html, TheReportPageIsSelfContainedWithItsThreePlots) {
  std::vector<ledger::RequestRow> rows;
  for (int i = 0; i < 30; ++i) {
    ledger::RequestRow row{"r",    1'796'112'000'000 + i * 60'000,      10,   "agentic",
                           "team", i % 5 == 0 ? "fallback" : "primary", "v4", {}};
    if (i % 5 == 0) row.attempts.push_back({"v4", "v4-flash", "schema", 200, 1, 0, 1, 3, 1});
    row.attempts.push_back({"v4", "v4-flash", "", 200, 10, 0, 5, 7, 1});
    rows.push_back(row);
  }
  const std::string html = render_html(build_report(rows, nullptr), rows);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<svg "), 3u);  // rate over time, spend, reasons
  EXPECT_EQ(count(html, "<rect class=\"stripe\""), 3u);
  EXPECT_EQ(count(html, "<circle class=\"mark\""), 30u);  // one point a minute
  // Nothing is fetched: no script, no link, no source; the only URL is SVG's namespace.
  for (const char* fetch : {"<script", "<link", "src=", "href=", "url("}) {
    EXPECT_EQ(html.find(fetch), std::string::npos) << fetch;
  }
  EXPECT_EQ(count(html, "http"), count(html, "http://www.w3.org/2000/svg"));
}

}  // namespace
}  // namespace backstop::report
