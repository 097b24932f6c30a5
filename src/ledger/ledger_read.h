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
};

// Every request of the SQLite ledger at `path` that the filter keeps, with its attempts in
// order, ordered as written. Opens the file read-only and never creates it. kNotFound when
// the file does not exist; kInvalidArgument naming the file when it is not a ledger of this
// backstop's schema (an earlier backstop's daily totals included). `progress`, when set, is
// told the count of requests read so far every `progress_every` requests.
[[nodiscard]] core::Result<std::vector<RequestRow>> read_requests(
    const std::string& path, const ReadFilter& filter,
    const std::function<void(std::int64_t)>& progress = {}, std::int64_t progress_every = 100'000);

}  // namespace backstop::ledger
