#pragma once
// `backstop report`'s split of each workload's fallback rate by the inference stack that
// served its first attempt, with the change points where the rate moved beyond chance.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ledger/ledger.h"

namespace backstop::report {

// Consecutive requests of a workload whose first attempt went to the same stack (shadow
// calls are no requests of the workload).
struct StackSegment {
  std::string stack;  // "unknown" when the ledger has none
  std::int64_t first_ms = 0, last_ms = 0;
  std::int64_t requests = 0;                    // routed: primary, fallback or failed
  std::int64_t fallbacks = 0;                   // fallback or failed
  std::map<std::string, std::int64_t> reasons;  // the first attempt's failures, by reason

  [[nodiscard]] double fallback_rate() const;
};

// The move from segment `index - 1` to `index`.
struct ChangePoint {
  std::size_t index = 0;
  double p_value = 1;        // two-proportion z-test of the two segments' fallback rates
  bool significant = false;  // p < 0.05
};

struct StackSplit {
  std::string workload;
  std::vector<StackSegment> segments;  // in time order
  std::vector<ChangePoint> changes;    // one per stack change
};

// The change from the segment before into segment `index` of `split`; null for the first.
[[nodiscard]] const ChangePoint* change_into(const StackSplit& split, std::size_t index);

// The split of every workload (by name) whose rows name a stack at all; rows in the order
// the ledger wrote them. Rejected requests, shadow calls and requests without attempts are
// left out.
[[nodiscard]] std::vector<StackSplit> split_by_stack(const std::vector<ledger::RequestRow>& rows);

// Lines for the report's table: each workload's segments and its change points.
[[nodiscard]] std::string render_stack_split(const std::vector<StackSplit>& splits);

}  // namespace backstop::report
