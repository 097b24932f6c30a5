#pragma once
// `backstop report`: what the ledger says about each workload, exact to the micro-dollar.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "ledger/ledger.h"
#include "report/stack_split.h"

namespace backstop::report {

// Median and 99th percentile (nearest rank) of the end-to-end durations of one outcome.
struct Latency {
  std::int64_t count = 0;
  std::int64_t p50_ms = 0;
  std::int64_t p99_ms = 0;
};

// What the requests would have cost sent to one provider only, priced from their tokens.
struct Counterfactual {
  std::string provider;             // the workload's fallback (the last target of its route)
  std::int64_t cost_micro_usd = 0;  // absent (see Summary) when it could not be priced
};

// What a workload's shadow calls to one candidate provider say (ledger rows of outcome
// `shadow`: never counted as requests, spend or latency of the workload).
struct ShadowFigures {
  std::int64_t calls = 0;
  std::int64_t failed = 0;  // answers that failed the checks, or did not come
  // failed / calls: how often the candidate, as primary, would have fallen back.
  double would_be_fallback_rate = 0;
  std::map<std::string, std::int64_t> failures_by_reason;
  std::int64_t cost_micro_usd = 0;
};

// The figures of one workload, or of all of them together.
struct Summary {
  std::string workload;  // "" for the rows refused before a workload was known; "*" for the total
  std::int64_t requests = 0;
  std::int64_t primary = 0, fallback = 0, failed = 0, rejected = 0;
  // (fallback + failed) / (primary + fallback + failed); rejected requests are no verdict on
  // the primary, as in the router's own window. 0 when there are none.
  double fallback_rate = 0;
  std::string band;    // under-used | healthy | watch | move | none (no routed request)
  std::string advice;  // one line
  config::Bands bands;
  std::map<std::string, std::int64_t> failures_by_reason;  // attempts that failed, by reason
  std::vector<ledger::DaySpend> spend;  // per day, provider and model (workload "*" in the total)
  std::int64_t cost_micro_usd = 0;
  std::optional<Counterfactual> fallback_only;  // absent without a config's prices
  // The workload's primary (the first target of its route) alone, as if every answer had
  // passed its checks; absent without a config's prices.
  std::optional<Counterfactual> primary_only;
  std::optional<std::int64_t> saved_micro_usd;  // fallback_only - cost
  std::string unpriced;                         // why fallback_only is absent
  std::map<std::string, Latency> latency;       // by outcome
  std::map<std::string, ShadowFigures> shadow;  // by candidate provider
  // The requests by the stack their first attempt went to (segments empty when the ledger
  // names no stack for this workload; always empty in the total).
  StackSplit by_stack;
};

// The figures of one client key (the name auth: gives it), over every workload.
struct KeySummary {
  std::string key;  // "" for requests without a key (auth off)
  std::int64_t requests = 0;
  std::int64_t primary = 0, fallback = 0, failed = 0, rejected = 0;
  double fallback_rate = 0;  // as Summary's
  std::int64_t cost_micro_usd = 0;
};

struct Report {
  std::string since_day, until_day;  // as asked; empty: open
  bool priced = false;               // a config gave prices
  std::vector<Summary> workloads;    // ordered by name
  std::vector<KeySummary> keys;      // ordered by key name
  Summary total;
};

// The report of `rows` (as ledger::read_requests gives them). `config`, when given, supplies
// the bands and the prices of each workload's fallback; without it the default bands apply and
// the counterfactual is absent.
[[nodiscard]] Report build_report(const std::vector<ledger::RequestRow>& rows,
                                  const config::Config* config, std::string since_day = "",
                                  std::string until_day = "");

// The band of a fallback rate (the same rule as the router's: above move_above, below
// underused_below, inside healthy_low..healthy_high, else watch).
[[nodiscard]] std::string band_of(double rate, const config::Bands& bands);

// The attempt whose tokens stand for a request when it is priced elsewhere: the one that
// answered, else the last one tried; null when there was none.
[[nodiscard]] const ledger::AttemptRow* standing_attempt(const ledger::RequestRow& row);

// "12.345678" for 12345678 micro-dollars, exact.
[[nodiscard]] std::string usd(std::int64_t micro_usd);

// A terminal table, one block per workload then the total.
[[nodiscard]] std::string render_table(const Report& report);
// The stable JSON document the README describes (format_version 1).
[[nodiscard]] std::string render_json(const Report& report);
// One self-contained HTML page (inline SVG, no script, no network): the summary, the fallback
// rate over time with the bands drawn, spend per model per day, failures by reason, and each
// workload's split by stack (a table, and a plot when it ran on more than one stack).
// `rows` are the rows the report was built from (the plot over time needs them).
[[nodiscard]] std::string render_html(const Report& report,
                                      const std::vector<ledger::RequestRow>& rows);

}  // namespace backstop::report
