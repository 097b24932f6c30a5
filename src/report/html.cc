// `backstop report --format html`: one self-contained page with inline SVG plots.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "core/stats.h"
#include "report/report.h"
#include "report/svg.h"

namespace backstop::report {
namespace {

constexpr std::int64_t kSecond = 1000, kMinute = 60 * kSecond, kHour = 60 * kMinute,
                       kDayMs = 24 * kHour;

// A bucket size that cuts [first, last] into at most a few dozen points.
std::int64_t bucket_ms(std::int64_t span_ms) {
  for (std::int64_t size : {5 * kSecond, kMinute, 10 * kMinute, kHour}) {
    if (span_ms <= 60 * size) return size;
  }
  return kDayMs;
}

// "2026-12-01" for days, "12-01 14:00" for hours, "14:05:30" below.
std::string bucket_label(std::int64_t start_ms, std::int64_t size) {
  const std::string day = ledger::utc_day(start_ms);
  if (size >= kDayMs) return day;
  const std::int64_t in_day = ((start_ms % kDayMs) + kDayMs) % kDayMs;
  char text[32];
  if (size >= kHour) {
    std::snprintf(text, sizeof text, "%s %02" PRId64 ":00", day.substr(5).c_str(), in_day / kHour);
  } else {
    std::snprintf(text, sizeof text, "%02" PRId64 ":%02" PRId64 ":%02" PRId64, in_day / kHour,
                  in_day % kHour / kMinute, in_day % kMinute / kSecond);
  }
  return text;
}

struct Tick {
  std::int64_t routed = 0, fell_back = 0;
};

// The fallback rate over time of one workload: one point per bucket with routed requests.
std::string rate_chart(const Summary& s, const std::vector<ledger::RequestRow>& rows,
                       std::int64_t size) {
  std::map<std::int64_t, Tick> ticks;
  for (const ledger::RequestRow& row : rows) {
    // Shadow calls are no traffic of the workload.
    if (row.workload != s.workload || row.outcome == "rejected" || row.outcome == "shadow") {
      continue;
    }
    Tick& t = ticks[row.unix_ms - (((row.unix_ms % size) + size) % size)];
    ++t.routed;
    if (row.outcome != "primary") ++t.fell_back;
  }
  svg::LineChart chart;
  chart.title = "Fallback rate of " + s.workload + " over time (UTC)";
  chart.percent = true;
  svg::Series series{"fallback rate", {}};
  double highest = s.bands.move_above;
  for (const auto& [start, t] : ticks) {
    chart.x_labels.push_back(bucket_label(start, size));
    const double rate = static_cast<double>(t.fell_back) / static_cast<double>(t.routed);
    series.values.push_back(rate);
    highest = std::max(highest, rate);
  }
  chart.series.push_back(std::move(series));
  // Rounded up to a fifth, so that the four grid lines fall on round percentages.
  chart.y_max = std::min(1.0, std::ceil(highest * 1.25 * 5) / 5);
  const config::Bands& b = s.bands;
  chart.stripes = {{0, b.underused_below, "under-used", "#76b7b2"},
                   {b.healthy_low, b.healthy_high, "healthy", "#59a14f"},
                   {b.move_above, 1.0, "move", "#e15759"}};
  return svg::line_chart(chart);
}

// Spend per model per day, stacked by model, over every workload.
std::string spend_chart(const Summary& total) {
  std::set<std::string> days;
  std::map<std::string, std::map<std::string, std::int64_t>> by_model;  // model -> day -> cost
  for (const ledger::DaySpend& d : total.spend) {
    days.insert(d.day);
    by_model[d.model][d.day] += d.cost_micro_usd;
  }
  svg::BarChart chart{"Spend per model per day (USD)", {days.begin(), days.end()}, {}, "$"};
  for (const auto& [model, per_day] : by_model) {
    svg::Series series{model, {}};
    for (const std::string& day : chart.x_labels) {
      auto it = per_day.find(day);
      series.values.push_back(it == per_day.end() ? 0 : static_cast<double>(it->second) / 1e6);
    }
    chart.stacks.push_back(std::move(series));
  }
  return svg::bar_chart(chart);
}

// Failed attempts per workload, stacked by reason.
std::string reasons_chart(const std::vector<Summary>& workloads) {
  std::set<std::string> reasons;
  svg::BarChart chart{"Failed attempts by reason", {}, {}, ""};
  for (const Summary& s : workloads) {
    if (s.failures_by_reason.empty()) continue;
    chart.x_labels.push_back(s.workload.empty() ? "(refused)" : s.workload);
    for (const auto& [reason, count] : s.failures_by_reason) reasons.insert(reason);
  }
  for (const std::string& reason : reasons) {
    svg::Series series{reason, {}};
    for (const Summary& s : workloads) {
      if (s.failures_by_reason.empty()) continue;
      auto it = s.failures_by_reason.find(reason);
      series.values.push_back(it == s.failures_by_reason.end() ? 0
                                                               : static_cast<double>(it->second));
    }
    chart.stacks.push_back(std::move(series));
  }
  return svg::bar_chart(chart);
}

std::string cell(const std::string& text) { return "<td>" + svg::escape(text) + "</td>"; }

std::string percent(double rate) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f%%", rate * 100);
  return text;
}

std::string summary_table(const Report& report) {
  std::string out =
      "<table><tr><th>workload</th><th>requests</th><th>fallback rate</th><th>band</th>"
      "<th>spend $</th><th>fallback only $</th><th>saved $</th></tr>";
  std::vector<const Summary*> all;
  for (const Summary& s : report.workloads) all.push_back(&s);
  all.push_back(&report.total);
  for (const Summary* s : all) {
    const std::string name = s->workload == "*"    ? "TOTAL"
                             : s->workload.empty() ? "(refused before routing)"
                                                   : s->workload;
    out += "<tr>" + cell(name) + cell(std::to_string(s->requests)) +
           cell(percent(s->fallback_rate)) + "<td title=\"" + svg::escape(s->advice) + "\">" +
           svg::escape(s->band) + "</td>" + cell(usd(s->cost_micro_usd)) +
           cell(s->fallback_only ? usd(s->fallback_only->cost_micro_usd) : "-") +
           cell(s->saved_micro_usd ? usd(*s->saved_micro_usd) : "-") + "</tr>";
  }
  return out + "</table>";
}

std::string keys_table(const std::vector<KeySummary>& keys) {
  std::string out =
      "<h2>Per client key</h2><table><tr><th>key</th><th>requests</th><th>fallback rate</th>"
      "<th>rejected</th><th>spend $</th></tr>";
  for (const KeySummary& k : keys) {
    out += "<tr>" + cell(k.key.empty() ? "(no key)" : k.key) + cell(std::to_string(k.requests)) +
           cell(percent(k.fallback_rate)) + cell(std::to_string(k.rejected)) +
           cell(usd(k.cost_micro_usd)) + "</tr>";
  }
  return out + "</table>";
}

// "2026-12-01 14:05:30" (UTC).
std::string utc_time(std::int64_t unix_ms) {
  return ledger::utc_day(unix_ms) + " " + bucket_label(unix_ms, kSecond);
}

// The fallback rate of each segment on its Wilson 95 % interval, in time order.
std::string stack_chart(const StackSplit& split) {
  svg::IntervalChart chart;
  chart.title = "Fallback rate of " + split.workload + " by stack, 95 % intervals";
  svg::IntervalSeries series{"fallback rate", {}};
  double highest = 0;
  for (const StackSegment& seg : split.segments) {
    const core::Interval ci = core::wilson(seg.fallbacks, seg.requests);
    chart.x_labels.push_back(seg.stack);
    series.values.push_back(svg::Estimate{seg.fallback_rate(), ci.low, ci.high});
    highest = std::max(highest, ci.high);
  }
  chart.series.push_back(std::move(series));
  chart.y_max = std::max(0.2, std::min(1.0, std::ceil(highest * 5) / 5));
  return svg::interval_chart(chart);
}

std::string change_cell(const StackSplit& split, std::size_t index) {
  const ChangePoint* c = change_into(split, index);
  if (c == nullptr) return cell("-");
  char text[64];
  std::snprintf(text, sizeof text, "%s (p = %.3g)",
                c->significant ? "CHANGE POINT" : "stack changed", c->p_value);
  return std::string(c->significant ? "<td class=\"change-point\">" : "<td>") + svg::escape(text) +
         "</td>";
}

std::string stack_table(const StackSplit& split) {
  std::string out =
      "<table class=\"stacks\"><tr><th>stack</th><th>from (UTC)</th><th>to</th>"
      "<th>requests</th><th>fallback rate [95% CI]</th><th>first-attempt failures</th>"
      "<th>change</th></tr>";
  for (std::size_t i = 0; i < split.segments.size(); ++i) {
    const StackSegment& seg = split.segments[i];
    const core::Interval ci = core::wilson(seg.fallbacks, seg.requests);
    std::string reasons;
    for (const auto& [reason, count] : seg.reasons) {
      reasons += (reasons.empty() ? "" : ", ") + reason + " " + std::to_string(count);
    }
    out += "<tr>" + cell(seg.stack) + cell(utc_time(seg.first_ms)) + cell(utc_time(seg.last_ms)) +
           cell(std::to_string(seg.requests)) +
           cell(percent(seg.fallback_rate()) + " [" + percent(ci.low) + ", " + percent(ci.high) +
                "]") +
           cell(reasons.empty() ? "-" : reasons) + change_cell(split, i) + "</tr>";
  }
  return out + "</table>";
}

// Each workload whose ledger names stacks: its segments' table, and their plot when it ran on
// more than one; empty when none does.
std::string stack_section(const Report& report) {
  std::string out;
  for (const Summary& s : report.workloads) {
    if (s.by_stack.segments.empty()) continue;
    out += "<h3>" + svg::escape(s.workload) + "</h3>";
    if (s.by_stack.segments.size() > 1) out += stack_chart(s.by_stack);
    out += stack_table(s.by_stack);
  }
  return out.empty() ? out : "<h2>Fallback rate by inference stack</h2>" + out;
}

}  // namespace

std::string render_html(const Report& report, const std::vector<ledger::RequestRow>& rows) {
  const std::string range = (report.since_day.empty() ? "start" : report.since_day) + " .. " +
                            (report.until_day.empty() ? "now" : report.until_day);
  std::string body = "<h1>backstop report</h1><p class=\"note\">" + svg::escape(range) +
                     " (UTC days), " + std::to_string(report.total.requests) + " requests</p>";
  body += "<h2>Summary</h2>" + summary_table(report);
  for (const Summary& s : report.workloads) {
    if (!s.advice.empty() && !s.workload.empty()) {
      body += "<p><b>" + svg::escape(s.workload) + "</b>: " + svg::escape(s.advice) + "</p>";
    }
  }
  std::int64_t first = 0, last = 0;
  if (!rows.empty()) {
    const auto [lo, hi] = std::minmax_element(
        rows.begin(), rows.end(), [](const ledger::RequestRow& a, const ledger::RequestRow& b) {
          return a.unix_ms < b.unix_ms;
        });
    first = lo->unix_ms;
    last = hi->unix_ms;
  }
  const std::int64_t size = bucket_ms(last - first);
  body += "<h2>Fallback rate over time</h2>";
  for (const Summary& s : report.workloads) {
    if (s.band == "none" || s.workload.empty()) continue;
    body += rate_chart(s, rows, size);
  }
  body += "<h2>Spend per model per day</h2>" + spend_chart(report.total);
  body += "<h2>Failures by reason</h2>" + reasons_chart(report.workloads);
  body += stack_section(report);
  if (!report.keys.empty() && !(report.keys.size() == 1 && report.keys.front().key.empty())) {
    body += keys_table(report.keys);
  }
  return svg::page("backstop report " + range, body);
}

}  // namespace backstop::report
