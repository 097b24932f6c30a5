#include "report/svg.h"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace backstop::report::svg {
namespace {

constexpr double kWidth = 760, kHeight = 300;
constexpr double kLeft = 64, kRight = 180, kTop = 34, kBottom = 56;
constexpr double kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;
constexpr int kYTicks = 4;
constexpr std::size_t kMaxXLabels = 8;

constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

const char* color(std::size_t i) { return kPalette[i % std::size(kPalette)]; }

std::string num(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}

// A value as an axis or a tooltip shows it, with the decimals the scale `y_max` needs.
std::string tick_label(double value, bool percent, std::string_view unit, double y_max) {
  char text[48];
  if (percent) {
    std::snprintf(text, sizeof text, y_max < 0.2 ? "%.1f%%" : "%.0f%%", value * 100);
  } else {
    const int decimals = y_max >= 100 ? 0 : y_max >= 1 ? 2 : y_max >= 0.01 ? 4 : 6;
    std::snprintf(text, sizeof text, "%s%.*f", std::string(unit).c_str(), decimals, value);
  }
  return text;
}

double y_of(double value, double y_max) {
  return kTop + kPlotH * (1 - std::clamp(value / y_max, 0.0, 1.0));
}

// The <svg> open tag, the title, the y axis with its grid and the x axis with its labels.
std::string frame(const std::string& title, const std::vector<std::string>& x_labels,
                  const std::vector<double>& x_positions, double y_max, bool percent,
                  std::string_view unit) {
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" +
                    num(kWidth) + "\" height=\"" + num(kHeight) + "\" viewBox=\"0 0 " +
                    num(kWidth) + " " + num(kHeight) + "\" role=\"img\" aria-label=\"" +
                    escape(title) + "\">";
  out += "<text class=\"title\" x=\"" + num(kLeft) + "\" y=\"20\">" + escape(title) + "</text>";
  for (int i = 0; i <= kYTicks; ++i) {
    const double value = y_max * i / kYTicks;
    const std::string y = num(y_of(value, y_max));
    out += "<line class=\"grid\" x1=\"" + num(kLeft) + "\" x2=\"" + num(kLeft + kPlotW) +
           "\" y1=\"" + y + "\" y2=\"" + y + "\"/>";
    out += "<text class=\"tick\" text-anchor=\"end\" x=\"" + num(kLeft - 6) + "\" y=\"" + y +
           "\" dy=\"4\">" + escape(tick_label(value, percent, unit, y_max)) + "</text>";
  }
  out += "<line class=\"axis\" x1=\"" + num(kLeft) + "\" x2=\"" + num(kLeft + kPlotW) + "\" y1=\"" +
         num(kTop + kPlotH) + "\" y2=\"" + num(kTop + kPlotH) + "\"/>";
  const std::size_t every =
      std::max<std::size_t>(1, (x_labels.size() + kMaxXLabels - 1) / kMaxXLabels);
  for (std::size_t i = 0; i < x_labels.size(); i += every) {
    out += "<text class=\"tick\" text-anchor=\"middle\" x=\"" + num(x_positions[i]) + "\" y=\"" +
           num(kTop + kPlotH + 18) + "\">" + escape(x_labels[i]) + "</text>";
  }
  return out;
}

// The legend at the right: a swatch and a name per entry.
std::string legend(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const double y = kTop + 18.0 * static_cast<double>(i);
    out += "<rect class=\"swatch\" x=\"" + num(kLeft + kPlotW + 16) + "\" y=\"" + num(y) +
           "\" width=\"12\" height=\"12\" fill=\"" + entries[i].second + "\"/>";
    out += "<text class=\"legend\" x=\"" + num(kLeft + kPlotW + 34) + "\" y=\"" + num(y + 10) +
           "\">" + escape(entries[i].first) + "</text>";
  }
  return out;
}

std::vector<double> spread(std::size_t n, double band_share) {
  std::vector<double> xs(n);
  for (std::size_t i = 0; i < n; ++i) {
    // Centred in n equal bands (bars), or spread edge to edge (lines, band_share 0).
    xs[i] = band_share > 0 || n == 1
                ? kLeft + kPlotW * (static_cast<double>(i) + 0.5) / static_cast<double>(n)
                : kLeft + kPlotW * static_cast<double>(i) / static_cast<double>(n - 1);
  }
  return xs;
}

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string line_chart(const LineChart& chart) {
  double y_max = chart.y_max;
  if (y_max <= 0) {
    for (const Series& s : chart.series) {
      for (double v : s.values) y_max = std::max(y_max, v);
    }
  }
  if (y_max <= 0) y_max = 1;
  const std::vector<double> xs = spread(chart.x_labels.size(), 0);
  std::string out = frame(chart.title, chart.x_labels, xs, y_max, chart.percent, "");
  std::vector<std::pair<std::string, std::string>> entries;
  for (const Stripe& stripe : chart.stripes) {
    const double top = y_of(std::min(stripe.high, y_max), y_max);
    const double bottom = y_of(std::min(stripe.low, y_max), y_max);
    if (bottom - top <= 0) continue;
    out += "<rect class=\"stripe\" x=\"" + num(kLeft) + "\" y=\"" + num(top) + "\" width=\"" +
           num(kPlotW) + "\" height=\"" + num(bottom - top) + "\" fill=\"" + stripe.color +
           "\"><title>" + escape(stripe.label) + "</title></rect>";
    entries.push_back({stripe.label, stripe.color});
  }
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const Series& series = chart.series[s];
    std::string points, marks;
    for (std::size_t i = 0; i < series.values.size() && i < xs.size(); ++i) {
      const std::string x = num(xs[i]), y = num(y_of(series.values[i], y_max));
      points += (points.empty() ? "" : " ") + x + "," + y;
      marks += "<circle class=\"mark\" cx=\"" + x + "\" cy=\"" + y + "\" r=\"3\" fill=\"" +
               color(s) + "\"><title>" +
               escape(series.name + " " + chart.x_labels[i] + ": " +
                      tick_label(series.values[i], chart.percent, "", y_max)) +
               "</title></circle>";
    }
    out += "<polyline class=\"series\" fill=\"none\" stroke-width=\"2\" stroke=\"" +
           std::string(color(s)) + "\" points=\"" + points + "\"/>" + marks;
    entries.insert(entries.begin() + static_cast<std::ptrdiff_t>(s), {series.name, color(s)});
  }
  return out + legend(entries) + "</svg>";
}

std::string bar_chart(const BarChart& chart) {
  const std::size_t n = chart.x_labels.size();
  std::vector<double> totals(n, 0);
  for (const Series& s : chart.stacks) {
    for (std::size_t i = 0; i < n && i < s.values.size(); ++i) totals[i] += s.values[i];
  }
  double y_max = totals.empty() ? 0 : *std::max_element(totals.begin(), totals.end());
  if (y_max <= 0) y_max = 1;
  const std::vector<double> xs = spread(n, 0.6);
  const double bar_w = n == 0 ? 0 : 0.6 * kPlotW / static_cast<double>(n);
  std::string out = frame(chart.title, chart.x_labels, xs, y_max, false, chart.unit);
  std::vector<double> base(n, 0);
  std::vector<std::pair<std::string, std::string>> entries;
  for (std::size_t s = 0; s < chart.stacks.size(); ++s) {
    const Series& stack = chart.stacks[s];
    for (std::size_t i = 0; i < n && i < stack.values.size(); ++i) {
      const double v = stack.values[i];
      if (v <= 0) continue;
      const double top = y_of(base[i] + v, y_max), bottom = y_of(base[i], y_max);
      base[i] += v;
      out += "<rect class=\"bar\" x=\"" + num(xs[i] - bar_w / 2) + "\" y=\"" + num(top) +
             "\" width=\"" + num(bar_w) + "\" height=\"" + num(std::max(bottom - top, 1.0)) +
             "\" fill=\"" + color(s) + "\"><title>" +
             escape(stack.name + " " + chart.x_labels[i] + ": " +
                    tick_label(v, false, chart.unit, y_max)) +
             "</title></rect>";
    }
    entries.push_back({stack.name, color(s)});
  }
  return out + legend(entries) + "</svg>";
}

std::string interval_chart(const IntervalChart& chart) {
  const double y_max = chart.y_max > 0 ? chart.y_max : 1;
  const std::size_t n = chart.x_labels.size();
  const std::vector<double> xs = spread(n, 0.6);
  std::string out = frame(chart.title, chart.x_labels, xs, y_max, chart.percent, "");
  // The series share the middle 60 % of each label's band, evenly.
  const double band = n == 0 ? 0 : 0.6 * kPlotW / static_cast<double>(n);
  const double step = chart.series.empty() ? 0 : band / static_cast<double>(chart.series.size());
  std::vector<std::pair<std::string, std::string>> entries;
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const IntervalSeries& series = chart.series[s];
    const double offset = -band / 2 + step * (static_cast<double>(s) + 0.5);
    for (std::size_t i = 0; i < n && i < series.values.size(); ++i) {
      if (!series.values[i]) continue;
      const Estimate& e = *series.values[i];
      const std::string x = num(xs[i] + offset);
      const std::string tip = series.name + " " + chart.x_labels[i] + ": " +
                              tick_label(e.value, chart.percent, "", y_max) + " [" +
                              tick_label(e.low, chart.percent, "", y_max) + ", " +
                              tick_label(e.high, chart.percent, "", y_max) + "]";
      out += "<line class=\"interval\" stroke-width=\"2\" stroke=\"" + std::string(color(s)) +
             "\" x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + num(y_of(e.low, y_max)) + "\" y2=\"" +
             num(y_of(e.high, y_max)) + "\"><title>" + escape(tip) + "</title></line>";
      out += "<circle class=\"mark\" cx=\"" + x + "\" cy=\"" + num(y_of(e.value, y_max)) +
             "\" r=\"4\" fill=\"" + color(s) + "\"><title>" + escape(tip) + "</title></circle>";
    }
    entries.push_back({series.name, color(s)});
  }
  return out + legend(entries) + "</svg>";
}

std::string page(std::string_view title, std::string_view body) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" +
      escape(title) +
      "</title><style>"
      "body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}"
      "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}"
      "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:right;"
      "border-bottom:1px solid #eee}th{background:#f6f6f6}td:first-child,th:first-child"
      "{text-align:left}.chart{display:block;margin:12px 0}.chart .title{font-weight:600;"
      "font-size:14px}.chart .tick,.chart .legend{font-size:11px;fill:#444}.chart .grid"
      "{stroke:#e6e6e6}.chart .axis{stroke:#888}.stripe{opacity:.35}.note{color:#666}"
      ".regression,.change-point{color:#b00020;font-weight:600}"
      "</style></head><body>\n";
  out += body;
  out += "\n</body></html>\n";
  return out;
}

}  // namespace backstop::report::svg
