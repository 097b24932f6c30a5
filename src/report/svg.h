#pragma once
// Small inline-SVG charts and a self-contained HTML page to hold them: no script, no network,
// no external asset. Shared by `backstop report --format html` and other HTML reports.

#include <optional>
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

// A measured share with its interval (a 95 % confidence interval, say).
struct Estimate {
  double value = 0;
  double low = 0;
  double high = 0;
};

// One named series of estimates, one per x label (nullopt: nothing measured there).
struct IntervalSeries {
  std::string name;
  std::vector<std::optional<Estimate>> values;
};

// Estimates per x label, the series side by side, each with its interval drawn.
struct IntervalChart {
  std::string title;
  std::vector<std::string> x_labels;
  std::vector<IntervalSeries> series;  // each with one estimate per x label
  double y_max = 1;
  bool percent = true;  // values are ratios, labelled as percentages
};

// An <svg> element: a line (polyline class "series") and a dot (circle class "mark") per
// value of each series, over the stripes (rect class "stripe"), with axes and a legend.
[[nodiscard]] std::string line_chart(const LineChart& chart);
// An <svg> element: a rect class "bar" per non-zero value, stacked per x label, with axes and
// a legend.
[[nodiscard]] std::string bar_chart(const BarChart& chart);

// An <svg> element: per x label, a dot (circle class "mark") per series with a value, side by
// side, each on a vertical line (line class "interval") from its low to its high, with axes
// and a legend.
[[nodiscard]] std::string interval_chart(const IntervalChart& chart);

// Text made safe inside HTML or SVG elements and attributes.
[[nodiscard]] std::string escape(std::string_view text);
// A whole HTML document around `body`, with its stylesheet inline.
[[nodiscard]] std::string page(std::string_view title, std::string_view body);

}  // namespace backstop::report::svg
