#pragma once
// What changed between two runs of a suite, with significance.

#include <cstdint>
#include <string>
#include <vector>

#include "core/stats.h"
#include "eval/run_store.h"

namespace backstop::eval {

// Below this p-value a change is significant.
inline constexpr double kSignificance = 0.05;

// Pass rates of one workload (or of all: workload "") in runs A and B, and the paired test.
struct WorkloadDiff {
  std::string workload;
  std::int64_t cases_a = 0, passed_a = 0;  // every case of the run
  std::int64_t cases_b = 0, passed_b = 0;
  core::Interval rate_a, rate_b;  // Wilson 95 %
  std::int64_t paired = 0;        // cases in both runs
  std::int64_t pass_to_fail = 0;  // paired cases that passed in A and not in B
  std::int64_t fail_to_pass = 0;
  double p_value = 1;       // exact McNemar on the paired flips
  bool regression = false;  // p < kSignificance and more pass-to-fail than fail-to-pass
  bool improvement = false;

  [[nodiscard]] double pass_rate_a() const;
  [[nodiscard]] double pass_rate_b() const;
};

// A paired case whose verdict changed between pass and not pass.
struct Flip {
  std::string case_id;
  std::string workload;
  std::string from;  // "pass", or "fail: schema" / "error: timeout"
  std::string to;
  std::string detail;  // B's detail when B did not pass, else A's
};

struct RunDiff {
  RunRecord a, b;
  std::vector<WorkloadDiff> workloads;  // by name
  WorkloadDiff total;                   // every case
  std::vector<Flip> flips;              // in B's case order
  std::int64_t only_a = 0, only_b = 0;  // cases in one run only (not paired)
  // Whether B is significantly worse, over all cases or in any one workload.
  [[nodiscard]] bool regression() const;
};

// Compares run B with run A, pairing cases by id.
[[nodiscard]] RunDiff diff_runs(const StoredRun& a, const StoredRun& b);

// The diff for a terminal: the two runs, per workload pass rates with intervals, the
// McNemar test, the flipped cases, and a closing verdict line.
[[nodiscard]] std::string render_diff(const RunDiff& diff);

// The diff as one self-contained HTML page (inline SVG, no script, no network): the two runs,
// per workload pass rates with their 95 % intervals plotted, the McNemar test per workload,
// the flipped cases and the verdict.
[[nodiscard]] std::string render_diff_html(const RunDiff& diff);

// One run a line, oldest first, its id first.
[[nodiscard]] std::string render_runs(const std::vector<RunRecord>& runs);

}  // namespace backstop::eval
