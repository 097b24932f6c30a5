#pragma once
// Reading the SQLite ledger back, for `backstop report` and `backstop plan`.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "ledger/ledger.h"

namespace backstop::ledger {

// Which requests to read. Days are UTC "2026-12-01", both ends included; empty: open.
struct ReadFilter {
  std::string since_day;
  std::string until_day;
  std::optional<std::string> workload;  // absent: every workload ("" is the refused-early rows)
  std::optional<std::string> key_name;  // absent: every client key ("" is the rows without one)
};

// Every request of the SQLite ledger at `path` that the filter keeps, with its attempts in
// order, ordered as written. Opens the file read-only and never creates it. kNotFound when
// the file does not exist; kInvalidArgument naming the file when it is not a ledger of this
// backstop's schema (an earlier backstop's daily totals included). `progress`, when set, is
// told the count of requests read so far every `progress_every` requests.
[[nodiscard]] core::Result<std::vector<RequestRow>> read_requests(
    const std::string& path, const ReadFilter& filter,
    const std::function<void(std::int64_t)>& progress = {}, std::int64_t progress_every = 100'000);

// The spend of one (workload, client key) on one day.
struct KeySpend {
  std::string workload;
  std::string key_name;  // empty: no client key
  std::int64_t cost_micro_usd = 0;

  friend bool operator==(const KeySpend&, const KeySpend&) = default;
};

// The spend of every (workload, key) of requests that arrived on `day` ("2026-12-01", UTC),
// ordered by workload then key: what the day's budgets have used. Errors as read_requests.
[[nodiscard]] core::Result<std::vector<KeySpend>> read_day_spend(const std::string& path,
                                                                 const std::string& day);

}  // namespace backstop::ledger
