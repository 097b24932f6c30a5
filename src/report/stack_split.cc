#include "report/stack_split.h"

#include <cstdio>

#include "core/stats.h"

namespace backstop::report {
namespace {

constexpr double kSignificance = 0.05;

std::string percent(double share) {
  char out[16];
  std::snprintf(out, sizeof out, "%.1f%%", 100 * share);
  return out;
}

void add(StackSegment& s, const ledger::RequestRow& row) {
  if (s.requests == 0) s.first_ms = row.unix_ms;
  s.last_ms = row.unix_ms;
  ++s.requests;
  if (row.outcome == "fallback" || row.outcome == "failed") ++s.fallbacks;
  const std::string& reason = row.attempts.front().reason;
  if (!reason.empty()) ++s.reasons[reason];
}

void judge(StackSplit& split) {
  for (std::size_t i = 1; i < split.segments.size(); ++i) {
    const StackSegment& a = split.segments[i - 1];
    const StackSegment& b = split.segments[i];
    const double p = core::two_proportion_p(a.fallbacks, a.requests, b.fallbacks, b.requests);
    split.changes.push_back({i, p, p < kSignificance});
  }
}

std::string reasons_of(const StackSegment& s) {
  std::string out;
  for (const auto& [reason, count] : s.reasons) {
    out += (out.empty() ? "" : ", ") + reason + " " + std::to_string(count);
  }
  return out.empty() ? "-" : out;
}

}  // namespace

double StackSegment::fallback_rate() const {
  return requests == 0 ? 0 : static_cast<double>(fallbacks) / static_cast<double>(requests);
}

const ChangePoint* change_into(const StackSplit& split, std::size_t index) {
  for (const ChangePoint& c : split.changes) {
    if (c.index == index) return &c;
  }
  return nullptr;
}

std::vector<StackSplit> split_by_stack(const std::vector<ledger::RequestRow>& rows) {
  std::map<std::string, StackSplit> by_workload;
  std::map<std::string, bool> named;  // whether any row of the workload names a stack
  for (const ledger::RequestRow& row : rows) {
    if (row.outcome == "rejected" || row.outcome == "shadow" || row.attempts.empty()) continue;
    StackSplit& split = by_workload[row.workload];
    const std::string& stack = row.attempts.front().stack;
    named[row.workload] = named[row.workload] || !stack.empty();
    const std::string label = stack.empty() ? "unknown" : stack;
    if (split.segments.empty() || split.segments.back().stack != label) {
      StackSegment segment;
      segment.stack = label;
      split.segments.push_back(std::move(segment));
    }
    add(split.segments.back(), row);
  }
  std::vector<StackSplit> out;
  for (auto& [workload, split] : by_workload) {
    if (!named[workload]) continue;
    split.workload = workload;
    judge(split);
    out.push_back(std::move(split));
  }
  return out;
}

std::string render_stack_split(const std::vector<StackSplit>& splits) {
  std::string out;
  for (const StackSplit& split : splits) {
    out += "by stack: " + split.workload + "\n";
    for (std::size_t i = 0; i < split.segments.size(); ++i) {
      const StackSegment& s = split.segments[i];
      if (const ChangePoint* c = change_into(split, i)) {
        char p[32];
        std::snprintf(p, sizeof p, "%.3g", c->p_value);
        out += std::string("  ") + (c->significant ? "CHANGE POINT" : "stack changed") +
               ": fallback rate " + percent(split.segments[i - 1].fallback_rate()) + " -> " +
               percent(s.fallback_rate()) + " (p = " + p + ")\n";
      }
      char line[256];
      std::snprintf(line, sizeof line, "  %-24s %6lld requests  fallback %6s  ", s.stack.c_str(),
                    static_cast<long long>(s.requests), percent(s.fallback_rate()).c_str());
      out += line + reasons_of(s) + "\n";
    }
  }
  return out;
}

}  // namespace backstop::report
