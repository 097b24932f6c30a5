#include "eval/diff.h"

#include <cstdio>
#include <map>
#include <string_view>

namespace backstop::eval {
namespace {

// "pass", or "fail: schema".
std::string outcome(const CaseRecord& c) {
  return c.verdict == "pass" ? c.verdict : c.verdict + ": " + c.reason;
}

void add_case(WorkloadDiff& d, const CaseRecord& c, bool in_a) {
  const bool pass = c.verdict == "pass";
  if (in_a) {
    ++d.cases_a;
    d.passed_a += pass ? 1 : 0;
  } else {
    ++d.cases_b;
    d.passed_b += pass ? 1 : 0;
  }
}

void add_pair(WorkloadDiff& d, bool pass_a, bool pass_b) {
  ++d.paired;
  if (pass_a && !pass_b) ++d.pass_to_fail;
  if (!pass_a && pass_b) ++d.fail_to_pass;
}

void conclude(WorkloadDiff& d) {
  d.rate_a = core::wilson(d.passed_a, d.cases_a);
  d.rate_b = core::wilson(d.passed_b, d.cases_b);
  d.p_value = core::mcnemar_exact(d.pass_to_fail, d.fail_to_pass);
  const bool significant = d.p_value < kSignificance;
  d.regression = significant && d.pass_to_fail > d.fail_to_pass;
  d.improvement = significant && d.fail_to_pass > d.pass_to_fail;
}

std::string percent(double share) {
  char out[16];
  std::snprintf(out, sizeof out, "%.1f%%", 100 * share);
  return out;
}

std::string rate_cell(std::int64_t passed, std::int64_t cases, const core::Interval& ci) {
  if (cases == 0) return "-";
  return std::to_string(passed) + "/" + std::to_string(cases) + " " +
         percent(static_cast<double>(passed) / static_cast<double>(cases)) + " [" +
         percent(ci.low) + ", " + percent(ci.high) + "]";
}

std::string line_of(const WorkloadDiff& d, std::string_view name) {
  char p[32];
  std::snprintf(p, sizeof p, "%.4g", d.p_value);
  const char* mark = d.regression ? "  REGRESSION" : d.improvement ? "  improvement" : "";
  char out[512];
  std::snprintf(out, sizeof out, "%-16s %-30s %-30s %4lld %4lld  %-8s%s\n",
                std::string(name).c_str(), rate_cell(d.passed_a, d.cases_a, d.rate_a).c_str(),
                rate_cell(d.passed_b, d.cases_b, d.rate_b).c_str(),
                static_cast<long long>(d.pass_to_fail), static_cast<long long>(d.fail_to_pass), p,
                mark);
  return out;
}

std::string run_line(const RunRecord& r) {
  return r.id + "  provider " + r.provider + " (" + r.model + ")  stack " + r.stack + "  " +
         std::to_string(r.passed) + "/" + std::to_string(r.cases) + " passed  suite " + r.suite +
         " " + r.suite_hash.substr(0, 12) + "\n";
}

}  // namespace

double WorkloadDiff::pass_rate_a() const {
  return cases_a == 0 ? 0 : static_cast<double>(passed_a) / static_cast<double>(cases_a);
}

double WorkloadDiff::pass_rate_b() const {
  return cases_b == 0 ? 0 : static_cast<double>(passed_b) / static_cast<double>(cases_b);
}

bool RunDiff::regression() const {
  if (total.regression) return true;
  for (const WorkloadDiff& w : workloads) {
    if (w.regression) return true;
  }
  return false;
}

RunDiff diff_runs(const StoredRun& a, const StoredRun& b) {
  RunDiff out;
  out.a = a.run;
  out.b = b.run;
  std::map<std::string, WorkloadDiff> by_workload;
  std::map<std::string, const CaseRecord*> in_a;
  for (const CaseRecord& c : a.cases) {
    in_a[c.case_id] = &c;
    add_case(by_workload[c.workload], c, true);
    add_case(out.total, c, true);
  }
  std::int64_t paired = 0;
  for (const CaseRecord& c : b.cases) {
    add_case(by_workload[c.workload], c, false);
    add_case(out.total, c, false);
    auto found = in_a.find(c.case_id);
    if (found == in_a.end()) {
      ++out.only_b;
      continue;
    }
    ++paired;
    const CaseRecord& before = *found->second;
    const bool pass_a = before.verdict == "pass";
    const bool pass_b = c.verdict == "pass";
    add_pair(by_workload[c.workload], pass_a, pass_b);
    add_pair(out.total, pass_a, pass_b);
    if (pass_a != pass_b) {
      out.flips.push_back(
          {c.case_id, c.workload, outcome(before), outcome(c), pass_b ? before.detail : c.detail});
    }
  }
  out.only_a = static_cast<std::int64_t>(a.cases.size()) - paired;
  for (auto& [name, d] : by_workload) {
    d.workload = name;
    conclude(d);
    out.workloads.push_back(d);
  }
  conclude(out.total);
  return out;
}

std::string render_diff(const RunDiff& diff) {
  std::string out = "A " + run_line(diff.a) + "B " + run_line(diff.b);
  if (diff.a.suite_hash != diff.b.suite_hash) {
    out += "note: the runs used different suites (hashes differ); cases are paired by id\n";
  }
  if (diff.only_a > 0 || diff.only_b > 0) {
    out += "unpaired: " + std::to_string(diff.only_a) + " case(s) only in A, " +
           std::to_string(diff.only_b) + " only in B\n";
  }
  char head[256];
  std::snprintf(head, sizeof head, "\n%-16s %-30s %-30s %4s %4s  %s\n", "workload",
                "A passed [95% CI]", "B passed [95% CI]", "p>f", "f>p", "p (McNemar)");
  out += head;
  for (const WorkloadDiff& w : diff.workloads) out += line_of(w, w.workload);
  out += line_of(diff.total, "all");
  out += "\nflipped: " + std::to_string(diff.flips.size()) + "\n";
  for (const Flip& f : diff.flips) {
    out += "  " + f.case_id + " (" + f.workload + "): " + f.from + " -> " + f.to;
    if (!f.detail.empty()) out += "  (" + f.detail + ")";
    out += "\n";
  }
  out += diff.regression() ? "\ndrift: B is significantly worse than A (p < 0.05)\n"
                           : "\nno significant regression\n";
  return out;
}

std::string render_runs(const std::vector<RunRecord>& runs) {
  std::string out;
  for (const RunRecord& r : runs) out += run_line(r);
  return out;
}

}  // namespace backstop::eval
