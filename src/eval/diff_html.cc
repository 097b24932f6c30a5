// `backstop eval diff --format html`: the diff as a page, its plot drawn by report's SVG charts.
#include <cstdio>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "eval/diff.h"
#include "ledger/ledger.h"
#include "report/svg.h"

namespace backstop::eval {
namespace {

namespace svg = report::svg;

std::string percent(double share) {
  char out[16];
  std::snprintf(out, sizeof out, "%.1f%%", 100 * share);
  return out;
}

std::string p_text(double p) {
  char out[32];
  std::snprintf(out, sizeof out, "%.4g", p);
  return out;
}

std::string cell(std::string_view text) { return "<td>" + svg::escape(text) + "</td>"; }

std::string rate_cell(std::int64_t passed, std::int64_t cases, const core::Interval& ci) {
  if (cases == 0) return cell("-");
  return cell(std::to_string(passed) + "/" + std::to_string(cases) + " " +
              percent(static_cast<double>(passed) / static_cast<double>(cases)) + " [" +
              percent(ci.low) + ", " + percent(ci.high) + "]");
}

std::string runs_table(const RunDiff& diff) {
  std::string out =
      "<table class=\"runs\"><tr><th>run</th><th>id</th><th>provider</th><th>model</th>"
      "<th>stack</th><th>day (UTC)</th><th>passed</th><th>suite</th></tr>";
  for (const auto& [name, r] : {std::pair{"A", &diff.a}, std::pair{"B", &diff.b}}) {
    out += "<tr>" + cell(name) + cell(r->id) + cell(r->provider) + cell(r->model) + cell(r->stack) +
           cell(ledger::utc_day(r->unix_ms)) +
           cell(std::to_string(r->passed) + "/" + std::to_string(r->cases)) +
           cell(r->suite + " " + r->suite_hash.substr(0, 12)) + "</tr>";
  }
  out += "</table>";
  if (diff.a.suite_hash != diff.b.suite_hash) {
    out +=
        "<p class=\"note\">The runs used different suites (hashes differ); cases are paired "
        "by id.</p>";
  }
  if (diff.only_a > 0 || diff.only_b > 0) {
    out += "<p class=\"note\">Unpaired: " + std::to_string(diff.only_a) + " case(s) only in A, " +
           std::to_string(diff.only_b) + " only in B.</p>";
  }
  return out;
}

std::optional<svg::Estimate> estimate(std::int64_t passed, std::int64_t cases,
                                      const core::Interval& ci) {
  if (cases == 0) return std::nullopt;
  return svg::Estimate{static_cast<double>(passed) / static_cast<double>(cases), ci.low, ci.high};
}

// Pass rates of A and B per workload and over all, each with its Wilson interval.
std::string rates_chart(const RunDiff& diff) {
  svg::IntervalChart chart;
  chart.title = "Pass rate per workload, 95 % intervals";
  svg::IntervalSeries a{"A " + diff.a.stack, {}}, b{"B " + diff.b.stack, {}};
  std::vector<const WorkloadDiff*> all;
  for (const WorkloadDiff& w : diff.workloads) all.push_back(&w);
  all.push_back(&diff.total);
  for (const WorkloadDiff* w : all) {
    chart.x_labels.push_back(w == &diff.total ? "all" : w->workload);
    a.values.push_back(estimate(w->passed_a, w->cases_a, w->rate_a));
    b.values.push_back(estimate(w->passed_b, w->cases_b, w->rate_b));
  }
  chart.series = {std::move(a), std::move(b)};
  return svg::interval_chart(chart);
}

std::string workload_row(const WorkloadDiff& w, std::string_view name) {
  const char* verdict = w.regression ? "regression" : w.improvement ? "improvement" : "-";
  return std::string("<tr class=\"") + (w.regression ? "regression" : "") + "\">" + cell(name) +
         rate_cell(w.passed_a, w.cases_a, w.rate_a) + rate_cell(w.passed_b, w.cases_b, w.rate_b) +
         cell(std::to_string(w.paired)) + cell(std::to_string(w.pass_to_fail)) +
         cell(std::to_string(w.fail_to_pass)) + cell(p_text(w.p_value)) + cell(verdict) + "</tr>";
}

std::string workloads_table(const RunDiff& diff) {
  std::string out =
      "<table class=\"workloads\"><tr><th>workload</th><th>A passed [95% CI]</th>"
      "<th>B passed [95% CI]</th><th>paired</th><th>pass&#8594;fail</th>"
      "<th>fail&#8594;pass</th><th>p (exact McNemar)</th><th>verdict</th></tr>";
  for (const WorkloadDiff& w : diff.workloads) out += workload_row(w, w.workload);
  return out + workload_row(diff.total, "all") + "</table>";
}

std::string flips_table(const RunDiff& diff) {
  if (diff.flips.empty()) return "<p class=\"note\">No paired case changed its verdict.</p>";
  std::string out =
      "<table class=\"flips\"><tr><th>case</th><th>workload</th><th>A</th><th>B</th>"
      "<th>detail</th></tr>";
  for (const Flip& f : diff.flips) {
    out += "<tr>" + cell(f.case_id) + cell(f.workload) + cell(f.from) + cell(f.to) +
           cell(f.detail) + "</tr>";
  }
  return out + "</table>";
}

std::string mcnemar_line(const WorkloadDiff& total) {
  return "<p class=\"mcnemar\">Exact McNemar test over " + std::to_string(total.paired) +
         " paired case(s): " + std::to_string(total.pass_to_fail) + " passed in A and not in B, " +
         std::to_string(total.fail_to_pass) + " the other way; p = " + p_text(total.p_value) +
         ".</p>";
}

}  // namespace

std::string render_diff_html(const RunDiff& diff) {
  std::string body = "<h1>backstop eval diff</h1>";
  body += "<h2>Runs</h2>" + runs_table(diff);
  body += "<h2>Pass rates</h2>" + rates_chart(diff) + workloads_table(diff);
  body += mcnemar_line(diff.total);
  body += "<h2>Flipped cases (" + std::to_string(diff.flips.size()) + ")</h2>" + flips_table(diff);
  body += diff.regression()
              ? "<h2>Verdict</h2><p class=\"verdict regression\">drift: B is significantly worse "
                "than A (p &lt; 0.05)</p>"
              : "<h2>Verdict</h2><p class=\"verdict\">no significant regression</p>";
  return svg::page("backstop eval diff " + diff.a.id + " " + diff.b.id, body);
}

}  // namespace backstop::eval
