#include "report/report.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "core/json_string.h"

namespace backstop::report {
namespace {

constexpr const char* kTotal = "*";

ledger::Price ledger_price(const config::Price& price) {
  return ledger::Price{price.input, price.output, price.cached_input.value_or(-1)};
}

// Nearest rank: the smallest value with at least `percent` % of values at or below it.
std::int64_t percentile(const std::vector<std::int64_t>& sorted, std::int64_t percent) {
  const auto n = static_cast<std::int64_t>(sorted.size());
  const std::int64_t rank = (n * percent + 99) / 100;
  return sorted[static_cast<std::size_t>(std::max<std::int64_t>(rank, 1) - 1)];
}

std::string advice_for(const std::string& band, const config::Bands& b) {
  const auto pct = [](double x) { return std::to_string(static_cast<int>(x * 100 + 0.5)) + "%"; };
  if (band == "move") {
    return "above " + pct(b.move_above) +
           ": the primary is wrong for this traffic; move it to another primary";
  }
  if (band == "under-used") {
    return "below " + pct(b.underused_below) +
           ": the primary answers nearly everything; route more traffic through it";
  }
  if (band == "healthy") {
    return "within " + pct(b.healthy_low) + "-" + pct(b.healthy_high) +
           ": the fallback pattern pays for itself here";
  }
  if (band == "watch") {
    return "between the bands: keep watching it";
  }
  return "no routed request in the range";
}

// What `rows` would have cost sent to `provider` alone at `price`.
Counterfactual priced_on(const std::vector<const ledger::RequestRow*>& rows, std::string provider,
                         const ledger::Price& price) {
  Counterfactual c{std::move(provider), 0};
  for (const ledger::RequestRow* row : rows) {
    if (const ledger::AttemptRow* a = standing_attempt(*row)) {
      c.cost_micro_usd +=
          ledger::cost_micro_usd(chat::Usage{.input_tokens = a->input_tokens,
                                             .cached_input_tokens = a->cached_input_tokens,
                                             .output_tokens = a->output_tokens},
                                 price);
    }
  }
  return c;
}

// Accumulates one Summary from its rows.
class Tally {
 public:
  Tally(std::string workload, config::Bands bands) {
    summary_.workload = std::move(workload);
    summary_.bands = bands;
  }

  void add(const ledger::RequestRow& row) {
    Summary& s = summary_;
    ++s.requests;
    if (row.outcome == "primary") ++s.primary;
    if (row.outcome == "fallback") ++s.fallback;
    if (row.outcome == "failed") ++s.failed;
    if (row.outcome == "rejected") ++s.rejected;
    durations_[row.outcome].push_back(row.duration_ms);
    const std::string day = ledger::utc_day(row.unix_ms);
    for (const ledger::AttemptRow& a : row.attempts) {
      if (!a.reason.empty()) ++s.failures_by_reason[a.reason];
      ledger::DaySpend& d = spend_[{day, a.provider, a.model}];
      d.attempts += 1;
      d.input_tokens += a.input_tokens;
      d.cached_input_tokens += a.cached_input_tokens;
      d.output_tokens += a.output_tokens;
      d.cost_micro_usd += a.cost_micro_usd;
      s.cost_micro_usd += a.cost_micro_usd;
    }
  }

  // A shadow call: counted apart, never as a request of the workload.
  void add_shadow(const ledger::RequestRow& row) {
    for (const ledger::AttemptRow& a : row.attempts) {
      ShadowFigures& f = summary_.shadow[a.provider];
      ++f.calls;
      if (!a.reason.empty()) {
        ++f.failed;
        ++f.failures_by_reason[a.reason];
      }
      f.cost_micro_usd += a.cost_micro_usd;
      f.would_be_fallback_rate = static_cast<double>(f.failed) / static_cast<double>(f.calls);
    }
  }

  Summary& summary() { return summary_; }

  Summary finish() {
    Summary& s = summary_;
    const std::int64_t routed = s.primary + s.fallback + s.failed;
    s.fallback_rate =
        routed == 0 ? 0 : static_cast<double>(s.fallback + s.failed) / static_cast<double>(routed);
    s.band = routed == 0 ? "none" : band_of(s.fallback_rate, s.bands);
    s.advice = advice_for(s.band, s.bands);
    for (auto& [key, d] : spend_) {
      d.day = std::get<0>(key);
      d.workload = s.workload;
      d.provider = std::get<1>(key);
      d.model = std::get<2>(key);
      s.spend.push_back(d);
    }
    for (auto& [outcome, values] : durations_) {
      std::sort(values.begin(), values.end());
      s.latency[outcome] = Latency{static_cast<std::int64_t>(values.size()), percentile(values, 50),
                                   percentile(values, 99)};
    }
    if (s.fallback_only) s.saved_micro_usd = s.fallback_only->cost_micro_usd - s.cost_micro_usd;
    return std::move(s);
  }

 private:
  Summary summary_;
  std::map<std::tuple<std::string, std::string, std::string>, ledger::DaySpend> spend_;
  std::map<std::string, std::vector<std::int64_t>> durations_;
};  // namespace

void append_int(std::string& out, std::int64_t n) { out += std::to_string(n); }

void append_rate(std::string& out, double rate) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6f", rate);
  out += buffer;
}

void append_counts_json(std::string& out, const std::map<std::string, std::int64_t>& counts) {
  out += '{';
  bool first = true;
  for (const auto& [name, count] : counts) {
    if (!first) out += ',';
    first = false;
    core::append_json_string(out, name);
    out += ':';
    append_int(out, count);
  }
  out += '}';
}

// The segments of a workload's split by stack, each with the change that began it (null for
// the first).
void append_stacks_json(std::string& out, const StackSplit& split) {
  out += '[';
  for (std::size_t i = 0; i < split.segments.size(); ++i) {
    const StackSegment& seg = split.segments[i];
    if (i > 0) out += ',';
    out += "{\"stack\":";
    core::append_json_string(out, seg.stack);
    out += ",\"first_unix_ms\":";
    append_int(out, seg.first_ms);
    out += ",\"last_unix_ms\":";
    append_int(out, seg.last_ms);
    out += ",\"requests\":";
    append_int(out, seg.requests);
    out += ",\"fallbacks\":";
    append_int(out, seg.fallbacks);
    out += ",\"fallback_rate\":";
    append_rate(out, seg.fallback_rate());
    out += ",\"reasons\":";
    append_counts_json(out, seg.reasons);
    out += ",\"change\":";
    const ChangePoint* change = change_into(split, i);
    if (change == nullptr) {
      out += "null";
    } else {
      char p[32];
      std::snprintf(p, sizeof p, "%.6g", change->p_value);
      out += "{\"from_stack\":";
      core::append_json_string(out, split.segments[i - 1].stack);
      out += ",\"p_value\":";
      out += p;
      out += ",\"change_point\":";
      out += change->significant ? "true" : "false";
      out += '}';
    }
    out += '}';
  }
  out += ']';
}

void append_summary_json(std::string& out, const Summary& s) {
  out += "{\"workload\":";
  core::append_json_string(out, s.workload);
  out += ",\"requests\":";
  append_int(out, s.requests);
  out += ",\"outcomes\":{\"primary\":";
  append_int(out, s.primary);
  out += ",\"fallback\":";
  append_int(out, s.fallback);
  out += ",\"failed\":";
  append_int(out, s.failed);
  out += ",\"rejected\":";
  append_int(out, s.rejected);
  out += "},\"fallback_rate\":";
  append_rate(out, s.fallback_rate);
  out += ",\"band\":";
  core::append_json_string(out, s.band);
  out += ",\"advice\":";
  core::append_json_string(out, s.advice);
  out += ",\"bands\":{\"underused_below\":";
  append_rate(out, s.bands.underused_below);
  out += ",\"healthy_low\":";
  append_rate(out, s.bands.healthy_low);
  out += ",\"healthy_high\":";
  append_rate(out, s.bands.healthy_high);
  out += ",\"move_above\":";
  append_rate(out, s.bands.move_above);
  out += "},\"failures_by_reason\":{";
  bool first = true;
  for (const auto& [reason, count] : s.failures_by_reason) {
    if (!first) out += ',';
    first = false;
    core::append_json_string(out, reason);
    out += ':';
    append_int(out, count);
  }
  out += "},\"spend\":[";
  first = true;
  for (const ledger::DaySpend& d : s.spend) {
    if (!first) out += ',';
    first = false;
    out += "{\"day\":";
    core::append_json_string(out, d.day);
    out += ",\"provider\":";
    core::append_json_string(out, d.provider);
    out += ",\"model\":";
    core::append_json_string(out, d.model);
    out += ",\"attempts\":";
    append_int(out, d.attempts);
    out += ",\"input_tokens\":";
    append_int(out, d.input_tokens);
    out += ",\"cached_input_tokens\":";
    append_int(out, d.cached_input_tokens);
    out += ",\"output_tokens\":";
    append_int(out, d.output_tokens);
    out += ",\"cost_micro_usd\":";
    append_int(out, d.cost_micro_usd);
    out += '}';
  }
  out += "],\"cost_micro_usd\":";
  append_int(out, s.cost_micro_usd);
  out += ",\"fallback_only\":";
  if (s.fallback_only) {
    out += "{\"provider\":";
    core::append_json_string(out, s.fallback_only->provider);
    out += ",\"cost_micro_usd\":";
    append_int(out, s.fallback_only->cost_micro_usd);
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"primary_only\":";
  if (s.primary_only) {
    out += "{\"provider\":";
    core::append_json_string(out, s.primary_only->provider);
    out += ",\"cost_micro_usd\":";
    append_int(out, s.primary_only->cost_micro_usd);
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"saved_micro_usd\":";
  if (s.saved_micro_usd) {
    append_int(out, *s.saved_micro_usd);
  } else {
    out += "null";
  }
  out += ",\"unpriced\":";
  if (s.unpriced.empty()) {
    out += "null";
  } else {
    core::append_json_string(out, s.unpriced);
  }
  out += ",\"latency_ms\":{";
  first = true;
  for (const auto& [outcome, l] : s.latency) {
    if (!first) out += ',';
    first = false;
    core::append_json_string(out, outcome);
    out += ":{\"count\":";
    append_int(out, l.count);
    out += ",\"p50\":";
    append_int(out, l.p50_ms);
    out += ",\"p99\":";
    append_int(out, l.p99_ms);
    out += '}';
  }
  out += "},\"shadow\":[";
  first = true;
  for (const auto& [provider, f] : s.shadow) {
    if (!first) out += ',';
    first = false;
    out += "{\"provider\":";
    core::append_json_string(out, provider);
    out += ",\"calls\":";
    append_int(out, f.calls);
    out += ",\"failed\":";
    append_int(out, f.failed);
    out += ",\"would_be_fallback_rate\":";
    append_rate(out, f.would_be_fallback_rate);
    out += ",\"failures_by_reason\":{";
    bool first_reason = true;
    for (const auto& [reason, count] : f.failures_by_reason) {
      if (!first_reason) out += ',';
      first_reason = false;
      core::append_json_string(out, reason);
      out += ':';
      append_int(out, count);
    }
    out += "},\"cost_micro_usd\":";
    append_int(out, f.cost_micro_usd);
    out += '}';
  }
  out += "],\"stacks\":";
  append_stacks_json(out, s.by_stack);
  out += '}';
}

std::string line(const char* format, auto... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

void append_summary_table(std::string& out, const Summary& s) {
  const std::string name = s.workload == kTotal ? "TOTAL"
                           : s.workload.empty() ? "(refused before routing)"
                                                : s.workload;
  out += "== " + name + "\n";
  out += line("requests          %" PRId64 " (primary %" PRId64 ", fallback %" PRId64
              ", failed %" PRId64 ", rejected %" PRId64 ")\n",
              s.requests, s.primary, s.fallback, s.failed, s.rejected);
  out += line("fallback rate     %.1f%%  band %s: %s\n", s.fallback_rate * 100, s.band.c_str(),
              s.advice.c_str());
  if (!s.failures_by_reason.empty()) {
    std::string reasons;
    for (const auto& [reason, count] : s.failures_by_reason) {
      if (!reasons.empty()) reasons += ", ";
      reasons += reason + " " + std::to_string(count);
    }
    out += "failures          " + reasons + "\n";
  }
  for (const auto& [outcome, l] : s.latency) {
    out += line("latency %-9s p50 %" PRId64 " ms, p99 %" PRId64 " ms (%" PRId64 " requests)\n",
                outcome.c_str(), l.p50_ms, l.p99_ms, l.count);
  }
  if (!s.spend.empty()) {
    out += line("  %-10s  %-14s  %-22s  %8s  %12s  %12s  %14s\n", "day", "provider", "model",
                "attempts", "input", "output", "USD");
    for (const ledger::DaySpend& d : s.spend) {
      out += line("  %-10s  %-14s  %-22s  %8" PRId64 "  %12" PRId64 "  %12" PRId64 "  %14s\n",
                  d.day.c_str(), d.provider.c_str(), d.model.c_str(), d.attempts, d.input_tokens,
                  d.output_tokens, usd(d.cost_micro_usd).c_str());
    }
  }
  out += "spend             $" + usd(s.cost_micro_usd) + "\n";
  if (s.fallback_only) {
    out += "fallback only     $" + usd(s.fallback_only->cost_micro_usd) + " (every request on " +
           s.fallback_only->provider + ")\n";
    out += "saved             $" + usd(*s.saved_micro_usd) + "\n";
  } else {
    out += "fallback only     not priced: " + s.unpriced + "\n";
  }
  if (s.primary_only) {
    out += "primary only      $" + usd(s.primary_only->cost_micro_usd) + " (every request on " +
           s.primary_only->provider + ", had it passed)\n";
  }
  for (const auto& [provider, f] : s.shadow) {
    std::string reasons;
    for (const auto& [reason, count] : f.failures_by_reason) {
      reasons += (reasons.empty() ? " (" : ", ") + reason + " " + std::to_string(count);
    }
    if (!reasons.empty()) reasons += ")";
    out += line("shadow            %s: %" PRId64 " calls, would-be fallback rate %.1f%%%s, $%s\n",
                provider.c_str(), f.calls, f.would_be_fallback_rate * 100, reasons.c_str(),
                usd(f.cost_micro_usd).c_str());
  }
  out += "\n";
}

// Requests, outcomes and spend per client key.
std::vector<KeySummary> keys_of(const std::vector<ledger::RequestRow>& rows) {
  std::map<std::string, KeySummary> by_key;
  for (const ledger::RequestRow& row : rows) {
    if (row.outcome == "shadow") continue;  // a shadow call is no request of the key's
    KeySummary& k = by_key[row.key_name];
    ++k.requests;
    if (row.outcome == "primary") ++k.primary;
    if (row.outcome == "fallback") ++k.fallback;
    if (row.outcome == "failed") ++k.failed;
    if (row.outcome == "rejected") ++k.rejected;
    k.cost_micro_usd += row.cost_micro_usd();
  }
  std::vector<KeySummary> out;
  for (auto& [name, k] : by_key) {
    k.key = name;
    const std::int64_t routed = k.primary + k.fallback + k.failed;
    k.fallback_rate =
        routed == 0 ? 0 : static_cast<double>(k.fallback + k.failed) / static_cast<double>(routed);
    out.push_back(std::move(k));
  }
  return out;
}

void append_keys_json(std::string& out, const std::vector<KeySummary>& keys) {
  out += "[";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const KeySummary& k = keys[i];
    if (i > 0) out += ',';
    out += "{\"key\":";
    core::append_json_string(out, k.key);
    out += ",\"requests\":";
    append_int(out, k.requests);
    out += ",\"outcomes\":{\"primary\":";
    append_int(out, k.primary);
    out += ",\"fallback\":";
    append_int(out, k.fallback);
    out += ",\"failed\":";
    append_int(out, k.failed);
    out += ",\"rejected\":";
    append_int(out, k.rejected);
    out += "},\"fallback_rate\":";
    append_rate(out, k.fallback_rate);
    out += ",\"cost_micro_usd\":";
    append_int(out, k.cost_micro_usd);
    out += '}';
  }
  out += "]";
}

void append_keys_table(std::string& out, const std::vector<KeySummary>& keys) {
  // Without auth every row has the empty key: a section would repeat the total.
  if (keys.empty() || (keys.size() == 1 && keys.front().key.empty())) return;
  out += "== per client key\n";
  out += line("  %-20s  %8s  %8s  %8s  %8s  %8s  %9s  %14s\n", "key", "requests", "primary",
              "fallback", "failed", "rejected", "fallback%", "USD");
  for (const KeySummary& k : keys) {
    out += line("  %-20s  %8" PRId64 "  %8" PRId64 "  %8" PRId64 "  %8" PRId64 "  %8" PRId64
                "  %8.1f%%  %14s\n",
                k.key.empty() ? "(no key)" : k.key.c_str(), k.requests, k.primary, k.fallback,
                k.failed, k.rejected, k.fallback_rate * 100, usd(k.cost_micro_usd).c_str());
  }
  out += "\n";
}

}  // namespace

const ledger::AttemptRow* standing_attempt(const ledger::RequestRow& row) {
  for (auto it = row.attempts.rbegin(); it != row.attempts.rend(); ++it) {
    if (it->reason.empty()) return &*it;
  }
  return row.attempts.empty() ? nullptr : &row.attempts.back();
}

std::string band_of(double rate, const config::Bands& bands) {
  if (rate > bands.move_above) return "move";
  if (rate < bands.underused_below) return "under-used";
  if (rate >= bands.healthy_low && rate <= bands.healthy_high) return "healthy";
  return "watch";
}

std::string usd(std::int64_t micro_usd) {
  const bool negative = micro_usd < 0;
  // Unsigned, so that the most negative value has a magnitude too.
  const std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(micro_usd) : static_cast<std::uint64_t>(micro_usd);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%s%" PRIu64 ".%06" PRIu64, negative ? "-" : "",
                magnitude / 1'000'000, magnitude % 1'000'000);
  return buffer;
}

Report build_report(const std::vector<ledger::RequestRow>& rows, const config::Config* config,
                    std::string since_day, std::string until_day) {
  Report report;
  report.since_day = std::move(since_day);
  report.until_day = std::move(until_day);
  report.priced = config != nullptr;

  std::map<std::string, std::vector<const ledger::RequestRow*>> by_workload;
  std::map<std::string, std::vector<const ledger::RequestRow*>> shadows;
  for (const ledger::RequestRow& row : rows) {
    // Shadow rows are no traffic of the workload: kept apart from its requests and money.
    auto& into = row.outcome == "shadow" ? shadows[row.workload] : by_workload[row.workload];
    into.push_back(&row);
    (void)by_workload[row.workload];
  }

  Tally total(kTotal, config::Bands{});
  std::int64_t fallback_only_total = 0;
  std::int64_t primary_only_total = 0;
  bool all_primary_priced = config != nullptr;
  std::string total_unpriced =
      config == nullptr ? "no config given (--config FILE has the prices)" : "";
  for (const auto& [name, workload_rows] : by_workload) {
    const config::Workload* wc = config != nullptr ? config->find_workload(name) : nullptr;
    Tally tally(name, wc != nullptr ? wc->bands : config::Bands{});
    bool has_attempts = false;
    for (const ledger::RequestRow* row : workload_rows) {
      tally.add(*row);
      total.add(*row);
      has_attempts = has_attempts || !row->attempts.empty();
    }
    for (const ledger::RequestRow* row : shadows[name]) {
      tally.add_shadow(*row);
      total.add_shadow(*row);
    }
    const config::Provider* fallback =
        wc != nullptr && !wc->route.empty() ? config->find_provider(wc->route.back()) : nullptr;
    const config::Provider* primary =
        wc != nullptr && !wc->route.empty() ? config->find_provider(wc->route.front()) : nullptr;
    if (primary != nullptr) {
      tally.summary().primary_only =
          priced_on(workload_rows, primary->name, ledger_price(primary->price));
      primary_only_total += tally.summary().primary_only->cost_micro_usd;
    } else {
      all_primary_priced = all_primary_priced && !has_attempts;
    }
    if (fallback != nullptr) {
      tally.summary().fallback_only =
          priced_on(workload_rows, fallback->name, ledger_price(fallback->price));
    } else if (config != nullptr && !has_attempts) {
      // Nothing was sent anywhere (refused before routing): it would have cost nothing.
      tally.summary().fallback_only = Counterfactual{"", 0};
    } else {
      tally.summary().unpriced = config == nullptr
                                     ? "no config given (--config FILE has the prices)"
                                     : "workload \"" + name + "\" is not in " + config->file;
    }
    if (tally.summary().fallback_only) {
      fallback_only_total += tally.summary().fallback_only->cost_micro_usd;
    } else if (total_unpriced.empty()) {
      total_unpriced = "workload \"" + name + "\" is not priced";
    }
    report.workloads.push_back(tally.finish());
  }
  for (StackSplit& split : split_by_stack(rows)) {
    for (Summary& s : report.workloads) {
      if (s.workload == split.workload) s.by_stack = std::move(split);
    }
  }
  if (total_unpriced.empty()) {
    total.summary().fallback_only = Counterfactual{"each workload's fallback", fallback_only_total};
  } else {
    total.summary().unpriced = total_unpriced;
  }
  if (all_primary_priced) {
    total.summary().primary_only = Counterfactual{"each workload's primary", primary_only_total};
  }
  report.total = total.finish();
  report.keys = keys_of(rows);
  return report;
}

std::string render_table(const Report& report) {
  std::string out;
  out += "backstop report: " + (report.since_day.empty() ? "start" : report.since_day) + " .. " +
         (report.until_day.empty() ? "now" : report.until_day) + " (UTC days)\n\n";
  for (const Summary& s : report.workloads) append_summary_table(out, s);
  append_keys_table(out, report.keys);
  append_summary_table(out, report.total);
  return out;
}

std::string render_json(const Report& report) {
  std::string out = "{\"format_version\":1,\"since\":";
  if (report.since_day.empty()) {
    out += "null";
  } else {
    core::append_json_string(out, report.since_day);
  }
  out += ",\"until\":";
  if (report.until_day.empty()) {
    out += "null";
  } else {
    core::append_json_string(out, report.until_day);
  }
  out += ",\"priced\":";
  out += report.priced ? "true" : "false";
  out += ",\"workloads\":[";
  for (std::size_t i = 0; i < report.workloads.size(); ++i) {
    if (i > 0) out += ',';
    append_summary_json(out, report.workloads[i]);
  }
  out += "],\"keys\":";
  append_keys_json(out, report.keys);
  out += ",\"total\":";
  append_summary_json(out, report.total);
  out += "}\n";
  return out;
}

}  // namespace backstop::report
