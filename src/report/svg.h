#pragma once
// Small inline-SVG charts and a self-contained HTML page to hold them: no script, no network,
// no external asset. Shared by `backstop report --format html` and other HTML reports.

#include <string>
#include <string_view>
#include <vector>

namespace backstop::report::svg {

// One named series of values, one per x label.
struct Series {
  std::string name;
  std::vector<double> values;
};

// A horizontal stripe behind a line chart (a band of the fallback rate, say), from y=low to
// y=high.
struct Stripe {
  double low = 0;
  double high = 0;
  std::string label;
  std::string color;  // CSS colour
};

struct LineChart {
  std::string title;
  std::vector<std::string> x_labels;
  std::vector<Series> series;  // each with one value per x label
  std::vector<Stripe> stripes;
  double y_max = 0;      // 0: the largest value
  bool percent = false;  // y values are ratios, labelled as percentages
};

// Bars per x label, each stacked from its series (a series per model, say).
struct BarChart {
  std::string title;
  std::vector<std::string> x_labels;
  std::vector<Series> stacks;  // each with one value per x label
  std::string unit;            // in the axis labels ("$")
};

// An <svg> element: a line (polyline class "series") and a dot (circle class "mark") per
// value of each series, over the stripes (rect class "stripe"), with axes and a legend.
[[nodiscard]] std::string line_chart(const LineChart& chart);
// An <svg> element: a rect class "bar" per non-zero value, stacked per x label, with axes and
// a legend.
[[nodiscard]] std::string bar_chart(const BarChart& chart);

// Text made safe inside HTML or SVG elements and attributes.
[[nodiscard]] std::string escape(std::string_view text);
// A whole HTML document around `body`, with its stylesheet inline.
[[nodiscard]] std::string page(std::string_view title, std::string_view body);

}  // namespace backstop::report::svg
