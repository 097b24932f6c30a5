#include "routing/drift.h"

#include <cmath>
#include <cstdio>

#include "core/json_string.h"
#include "core/stats.h"

namespace backstop::routing {
namespace {

constexpr double kSignificance = 0.05;

// Requests and fallbacks of a window (since since_ms when given).
std::pair<std::int64_t, std::int64_t> counts(const FallbackWindow& window, std::int64_t now,
                                             std::int64_t since_ms = 0) {
  const std::int64_t n = window.requests(now, since_ms);
  return {n, std::llround(window.ratio(now, since_ms) * static_cast<double>(n))};
}

std::string rate(std::int64_t k, std::int64_t n) {
  char out[32];
  std::snprintf(out, sizeof out, "%.1f%%", n == 0 ? 0.0 : 100.0 * k / n);
  return out;
}

}  // namespace

std::string DriftEvent::json() const {
  std::string out = "{\"event\":\"drift\"";
  const auto field = [&out](std::string_view key, std::string_view value) {
    out += ",\"" + std::string(key) + "\":";
    core::append_json_string(out, value);
  };
  field("workload", workload);
  field("provider", provider);
  field("from_stack", from_stack);
  field("to_stack", to_stack);
  char p[32];
  std::snprintf(p, sizeof p, "%.6g", p_value);
  out += ",\"before\":{\"requests\":" + std::to_string(before_requests) +
         ",\"fallbacks\":" + std::to_string(before_fallbacks) +
         "},\"after\":{\"requests\":" + std::to_string(after_requests) +
         ",\"fallbacks\":" + std::to_string(after_fallbacks) + "},\"p_value\":" + p + "}";
  return out;
}

std::string DriftEvent::line() const {
  char p[32];
  std::snprintf(p, sizeof p, "%.3g", p_value);
  return "drift: workload " + workload + ": primary " + provider + " moved from stack " +
         from_stack + " to " + to_stack + ", fallback rate " +
         rate(before_fallbacks, before_requests) + " -> " + rate(after_fallbacks, after_requests) +
         " (p = " + p + ")";
}

std::vector<DriftEvent> DriftWatch::check(std::int64_t unix_ms) {
  const auto& workloads = router_.workloads();
  states_.resize(workloads.size());
  std::vector<DriftEvent> out;
  for (std::size_t i = 0; i < workloads.size(); ++i) {
    const Workload& w = *workloads[i];
    if (w.route.empty() || !w.window) continue;
    State& s = states_[i];
    const std::string stack = w.route.front().provider->stack();
    if (stack != s.stack) {
      if (!s.stack.empty() && !stack.empty()) {
        std::tie(s.before_requests, s.before_fallbacks) = counts(*w.window, unix_ms);
        s.from = s.stack;
        s.change_ms = unix_ms;
        s.judging = true;
      }
      s.stack = stack;
      continue;
    }
    if (!s.judging) continue;
    const auto [after_n, after_f] = counts(*w.window, unix_ms, s.change_ms);
    if (after_n < min_requests_) continue;
    s.judging = false;
    if (s.before_requests < min_requests_) continue;
    const double p =
        core::two_proportion_p(s.before_fallbacks, s.before_requests, after_f, after_n);
    if (p >= kSignificance) continue;
    out.push_back(DriftEvent{w.name, w.route.front().provider->name(), s.from, s.stack,
                             s.before_requests, s.before_fallbacks, after_n, after_f, p});
  }
  return out;
}

}  // namespace backstop::routing
