#pragma once
// Inside the ledger module only: spend totals per (day, workload, provider, model).

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "ledger/ledger.h"

namespace backstop::ledger {

// utc_day of the last time asked for, kept while the day lasts: one string per day, not per
// row. Not locked: its owner serializes use.
class DayCache {
 public:
  std::string_view day(std::int64_t unix_ms) {
    const std::int64_t number = floor_div_ms(unix_ms);
    if (text_.empty() || number != number_) {
      number_ = number;
      text_ = utc_day(unix_ms);
    }
    return text_;
  }

 private:
  static std::int64_t floor_div_ms(std::int64_t unix_ms) {
    constexpr std::int64_t kDay = 24 * 60 * 60 * 1000;
    return unix_ms / kDay - (unix_ms % kDay < 0 ? 1 : 0);
  }

  std::int64_t number_ = 0;
  std::string text_;
};

// Totals aggregated per key, ordered by day, then names.
class SpendTable {
 public:
  void add(const DaySpend& spend) {
    DaySpend& total = row(spend.day, spend.workload, spend.provider, spend.model);
    total.attempts += spend.attempts;
    total.input_tokens += spend.input_tokens;
    total.cached_input_tokens += spend.cached_input_tokens;
    total.output_tokens += spend.output_tokens;
    total.cost_micro_usd += spend.cost_micro_usd;
  }

  // Every attempt of one request, on the day the request arrived.
  void add(const RequestRow& request) {
    const std::string_view day = days_.day(request.unix_ms);
    for (const AttemptRow& attempt : request.attempts) {
      DaySpend& total = row(day, request.workload, attempt.provider, attempt.model);
      total.attempts += 1;
      total.input_tokens += attempt.input_tokens;
      total.cached_input_tokens += attempt.cached_input_tokens;
      total.output_tokens += attempt.output_tokens;
      total.cost_micro_usd += attempt.cost_micro_usd;
    }
  }

  [[nodiscard]] std::vector<DaySpend> to_vector() const {
    std::vector<DaySpend> out;
    out.reserve(rows_.size());
    for (const auto& [key, spend] : rows_) out.push_back(spend);
    return out;
  }

 private:
  // Found by views, so that adding to an existing row copies no string.
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  using KeyView =
      std::tuple<std::string_view, std::string_view, std::string_view, std::string_view>;

  DaySpend& row(std::string_view day, std::string_view workload, std::string_view provider,
                std::string_view model) {
    auto it = rows_.find(KeyView{day, workload, provider, model});
    if (it == rows_.end()) {
      DaySpend spend{std::string(day), std::string(workload), std::string(provider),
                     std::string(model)};
      it = rows_.emplace(Key{spend.day, spend.workload, spend.provider, spend.model}, spend).first;
    }
    return it->second;
  }

  std::map<Key, DaySpend, std::less<>> rows_;
  DayCache days_;
};

}  // namespace backstop::ledger
