#pragma once
// Live drift: a workload's fallback rate before and after its primary's inference stack
// changed.

#include <cstdint>
#include <string>
#include <vector>

#include "routing/router.h"

namespace backstop::routing {

// A stack change after which the primary's fallback rate moved beyond chance.
struct DriftEvent {
  std::string workload;
  std::string provider;  // the workload's primary
  std::string from_stack, to_stack;
  std::int64_t before_requests = 0, before_fallbacks = 0;  // the window before the change
  std::int64_t after_requests = 0, after_fallbacks = 0;    // since the change
  double p_value = 1;                                      // two-proportion z-test

  // The hook body: {"event": "drift", "workload", ...}.
  [[nodiscard]] std::string json() const;
  // One line for the log.
  [[nodiscard]] std::string line() const;
};

// Watches each workload's primary: when the stack it reports changes, the fallback rate of
// the window before the change is kept; once `min_requests` have been routed since (and the
// window before held as many), the two rates are compared, and a change with p < 0.05 is one
// event. Each change is judged once. Not thread-safe: one caller, on a timer.
class DriftWatch {
 public:
  explicit DriftWatch(const Router& router, std::int64_t min_requests = 30)
      : router_(router), min_requests_(min_requests) {}
  // The events decided at unix_ms.
  [[nodiscard]] std::vector<DriftEvent> check(std::int64_t unix_ms);

 private:
  struct State {
    std::string stack;  // seen last
    std::string from;   // before the change being judged
    std::int64_t change_ms = 0;
    std::int64_t before_requests = 0, before_fallbacks = 0;
    bool judging = false;
  };
  const Router& router_;
  std::int64_t min_requests_;
  std::vector<State> states_;
};

}  // namespace backstop::routing
