#include "access/budget.h"

#include <algorithm>
#include <utility>

#include "ledger/ledger.h"

namespace backstop::access {
namespace {

constexpr std::int64_t kDayMs = 24 * 60 * 60 * 1000;

// Days since the Unix epoch (UTC), rounding down for times before it.
std::int64_t day_number(std::int64_t unix_ms) {
  return unix_ms / kDayMs - (unix_ms % kDayMs < 0 ? 1 : 0);
}

// One worker's spend against one budget on one day. Written by that worker only; a cache
// line of its own, so that workers adding to the same budget do not share one.
struct alignas(64) Cell {
  std::atomic<std::int64_t> day{-1};
  std::atomic<std::int64_t> micro_usd{0};
};

}  // namespace

std::string_view to_string(BudgetScope scope) {
  return scope == BudgetScope::kKey ? "key" : "workload";
}

struct Budgets::Slot {
  Slot(BudgetScope s, std::string n, config::Budget b) : scope(s), name(std::move(n)), budget(b) {}
  BudgetScope scope;
  std::string name;
  config::Budget budget;
  std::int64_t seed_day = -1;  // the ledger's spend at start-up, of that day
  std::int64_t seed_micro_usd = 0;
  std::atomic<std::int64_t> merged_day{-1};
  std::atomic<std::int64_t> merged_micro_usd{0};
  std::int64_t announced_day = -1;  // under merge_mutex_
};

// One worker's cells, one per budget.
struct Budgets::Counters {
  explicit Counters(std::size_t slots) : cells(std::make_unique<Cell[]>(slots)) {}
  std::unique_ptr<Cell[]> cells;
};

Budgets::Budgets(const config::Config& config, int workers) {
  for (const config::Workload& w : config.workloads) {
    if (!w.budget) continue;
    slots_.push_back(std::make_unique<Slot>(BudgetScope::kWorkload, w.name, *w.budget));
  }
  for (const config::ClientKey& k : config.auth.keys) {
    if (!k.budget) continue;
    slots_.push_back(std::make_unique<Slot>(BudgetScope::kKey, k.name, *k.budget));
  }
  for (int i = 0; i < std::max(1, workers); ++i) {
    counters_.push_back(std::make_unique<Counters>(slots_.size()));
  }
}

Budgets::~Budgets() = default;

void Budgets::slots_of(std::string_view workload, std::string_view key, int out[2]) const {
  out[0] = out[1] = -1;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = *slots_[i];
    if (s.scope == BudgetScope::kWorkload && s.name == workload) out[0] = static_cast<int>(i);
    if (s.scope == BudgetScope::kKey && !key.empty() && s.name == key) {
      out[1] = static_cast<int>(i);
    }
  }
}

void Budgets::seed(std::string_view workload, std::string_view key, std::int64_t unix_ms,
                   std::int64_t micro_usd) {
  int found[2];
  slots_of(workload, key, found);
  const std::int64_t day = day_number(unix_ms);
  for (int i : found) {
    if (i < 0) continue;
    Slot& s = *slots_[i];
    if (day < s.seed_day) continue;  // only the latest day counts
    if (day > s.seed_day) s.seed_micro_usd = 0;
    s.seed_day = day;
    s.seed_micro_usd += micro_usd;
  }
}

void Budgets::add(int worker, std::string_view workload, std::string_view key,
                  std::int64_t arrived_ms, std::int64_t micro_usd) {
  if (slots_.empty()) return;
  int found[2];
  slots_of(workload, key, found);
  const std::int64_t day = day_number(arrived_ms);
  Counters& mine = *counters_[static_cast<std::size_t>(worker) % counters_.size()];
  for (int i : found) {
    if (i < 0) continue;
    Cell& cell = mine.cells[i];
    const std::int64_t cell_day = cell.day.load(std::memory_order_relaxed);
    if (day < cell_day) continue;  // a request of a day already over
    if (day > cell_day) {
      // Zeroed before the new day shows, so that a merge never counts yesterday's as today's.
      cell.micro_usd.store(0, std::memory_order_relaxed);
      cell.day.store(day, std::memory_order_release);
    }
    cell.micro_usd.fetch_add(micro_usd, std::memory_order_relaxed);
  }
}

std::vector<BudgetHit> Budgets::merge(std::int64_t now_ms) {
  std::lock_guard lock(merge_mutex_);
  return merge_locked(now_ms);
}

std::vector<BudgetHit> Budgets::merge_locked(std::int64_t now_ms) {
  const std::int64_t today = day_number(now_ms);
  std::vector<BudgetHit> newly_spent;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = *slots_[i];
    std::int64_t total = s.seed_day == today ? s.seed_micro_usd : 0;
    for (const auto& worker : counters_) {
      const Cell& cell = worker->cells[i];
      if (cell.day.load(std::memory_order_acquire) != today) continue;
      total += cell.micro_usd.load(std::memory_order_relaxed);
    }
    s.merged_micro_usd.store(total, std::memory_order_relaxed);
    s.merged_day.store(today, std::memory_order_release);
    if (total >= s.budget.daily_micro_usd && s.announced_day != today) {
      s.announced_day = today;
      newly_spent.push_back(
          {s.scope, s.name, s.budget.daily_micro_usd, total, ledger::utc_day(now_ms)});
    }
  }
  last_merge_ms_.store(now_ms, std::memory_order_relaxed);
  return newly_spent;
}

std::int64_t Budgets::spent(BudgetScope scope, std::string_view name, std::int64_t now_ms) const {
  for (const auto& s : slots_) {
    if (s->scope != scope || s->name != name) continue;
    const bool today = s->merged_day.load(std::memory_order_acquire) == day_number(now_ms);
    return today ? s->merged_micro_usd.load(std::memory_order_relaxed) : 0;
  }
  return -1;
}

BudgetVerdict Budgets::check(std::string_view workload, std::string_view key, std::int64_t now_ms) {
  BudgetVerdict verdict;
  if (slots_.empty()) return verdict;
  const std::int64_t last = last_merge_ms_.load(std::memory_order_relaxed);
  const bool stale = now_ms - last >= kMergeIntervalMs || day_number(now_ms) != day_number(last);
  // One worker merges; the others read the totals as they are rather than wait for it.
  if (stale) {
    std::unique_lock lock(merge_mutex_, std::try_to_lock);
    if (lock.owns_lock()) verdict.newly_spent = merge_locked(now_ms);
  }
  int found[2];
  slots_of(workload, key, found);
  // The key's budget first: it rejects whatever the workload's says.
  for (int i : {found[1], found[0]}) {
    if (i < 0) continue;
    const Slot& s = *slots_[i];
    const std::int64_t spent_now = spent(s.scope, s.name, now_ms);
    if (spent_now < s.budget.daily_micro_usd) continue;
    const bool reject =
        s.scope == BudgetScope::kKey || s.budget.on_exceeded == config::BudgetAction::kReject;
    verdict.action = reject ? BudgetVerdict::Action::kReject : BudgetVerdict::Action::kPrimaryOnly;
    verdict.hit =
        BudgetHit{s.scope, s.name, s.budget.daily_micro_usd, spent_now, ledger::utc_day(now_ms)};
    if (reject) break;
  }
  return verdict;
}

}  // namespace backstop::access
