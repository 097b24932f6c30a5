#pragma once
// Budgets per client key and per workload, per UTC day: checked before a request is routed.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace backstop::access {

// Whose budget: a client key's or a workload's (the `scope` label).
enum class BudgetScope { kKey, kWorkload };
[[nodiscard]] std::string_view to_string(BudgetScope scope);  // key | workload

// One budget found spent: whose, its limit and what was spent on the day.
struct BudgetHit {
  BudgetScope scope = BudgetScope::kWorkload;
  std::string name;
  std::int64_t limit_micro_usd = 0;
  std::int64_t spent_micro_usd = 0;
  std::string day;  // "2026-12-01" (UTC)

  friend bool operator==(const BudgetHit&, const BudgetHit&) = default;
};

// What a request may do under its key's and its workload's budgets.
struct BudgetVerdict {
  enum class Action { kAllow, kReject, kPrimaryOnly };
  Action action = Action::kAllow;
  std::optional<BudgetHit> hit;  // the budget that decided, unless kAllow
  // Budgets this check's merge found spent for the first time on their day (to announce once).
  std::vector<BudgetHit> newly_spent;
};

// The day's spend against each budget of a config. Each worker adds its requests' costs to
// counters of its own (no lock, no shared cache line); check() reads totals that are merged
// from every worker at least once a second, so a check never takes a lock held by another
// worker. A budget is spent once the day's total reaches daily_usd; the overshoot is bounded
// by the requests in flight when it was reached plus one merge interval of requests.
// Totals start at zero at each UTC midnight. Thread-safe.
class Budgets {
 public:
  // How stale the totals that check() reads may be.
  static constexpr std::int64_t kMergeIntervalMs = 1'000;

  // Budgets of the config's workloads and keys, with counters for `workers` workers.
  Budgets(const config::Config& config, int workers);
  ~Budgets();
  Budgets(const Budgets&) = delete;
  Budgets& operator=(const Budgets&) = delete;

  // Whether the config has any budget (else checks always allow).
  [[nodiscard]] bool empty() const { return slots_.empty(); }
  // Adds spend the ledger already holds for the day of unix_ms (at start-up, so that a
  // restart does not reset the day's budgets). Before any check or add.
  void seed(std::string_view workload, std::string_view key, std::int64_t unix_ms,
            std::int64_t micro_usd);
  // The verdict for a request of `workload` by `key` (empty: no auth) at now_ms. A key's
  // spent budget rejects; a workload's rejects or cuts the route, as its on_exceeded says.
  [[nodiscard]] BudgetVerdict check(std::string_view workload, std::string_view key,
                                    std::int64_t now_ms);
  // Books a request's cost on worker `worker`'s counters, on the UTC day it arrived.
  void add(int worker, std::string_view workload, std::string_view key, std::int64_t arrived_ms,
           std::int64_t micro_usd);
  // Sums every worker's counters now; the budgets found spent for the first time on the day.
  [[nodiscard]] std::vector<BudgetHit> merge(std::int64_t now_ms);
  // The day's merged total of one budget (for tests and reports); -1 when there is none.
  [[nodiscard]] std::int64_t spent(BudgetScope scope, std::string_view name,
                                   std::int64_t now_ms) const;

 private:
  struct Slot;
  struct Counters;

  // The slots that apply to a request (its workload's and its key's), as indexes.
  void slots_of(std::string_view workload, std::string_view key, int out[2]) const;
  std::vector<BudgetHit> merge_locked(std::int64_t now_ms);

  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::unique_ptr<Counters>> counters_;  // one per worker
  std::mutex merge_mutex_;
  std::atomic<std::int64_t> last_merge_ms_{0};
};

}  // namespace backstop::access
