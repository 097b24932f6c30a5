#include "ledger/ledger.h"

#include <chrono>
#include <cstdio>
#include <limits>
#include <utility>

#include "ledger/spend_table.h"

namespace backstop::ledger {
namespace {

// Totals of the rows written, in memory.
class MemorySink final : public Sink {
 public:
  core::Result<void> write(const std::vector<RequestRow>& batch) override {
    for (const RequestRow& row : batch) table_.add(row);
    return {};
  }

  std::vector<DaySpend> totals() override { return table_.to_vector(); }

 private:
  SpendTable table_;
};

// Floor division, so that rounding half up also holds for (unexpected) negative counts.
__int128 floor_div(__int128 a, __int128 b) {
  __int128 q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

std::int64_t cost_micro_usd(const chat::Usage& usage, const Price& price) {
  const std::int64_t cached_price = price.cached_input < 0 ? price.input : price.cached_input;
  // Products of tokens and micro-dollars per million can exceed 64 bits.
  const __int128 total = static_cast<__int128>(usage.input_tokens) * price.input +
                         static_cast<__int128>(usage.cached_input_tokens) * cached_price +
                         static_cast<__int128>(usage.output_tokens) * price.output;
  const __int128 cost = floor_div(total + 500'000, 1'000'000);
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  if (cost > kMax) return kMax;
  if (cost < kMin) return kMin;
  return static_cast<std::int64_t>(cost);
}

std::int64_t RequestRow::cost_micro_usd() const {
  std::int64_t total = 0;
  for (const AttemptRow& attempt : attempts) total += attempt.cost_micro_usd;
  return total;
}

std::string utc_day(std::int64_t unix_ms) {
  using namespace std::chrono;
  const year_month_day date{floor<days>(sys_time<milliseconds>{milliseconds(unix_ms)})};
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return buffer;
}

std::unique_ptr<Sink> make_memory_sink() { return std::make_unique<MemorySink>(); }

std::unique_ptr<SpendStore> make_memory_store(LedgerOptions options) {
  return std::make_unique<SpendStore>(make_memory_sink(), std::move(options));
}

core::Result<std::unique_ptr<SpendStore>> make_sqlite_store(const std::string& path,
                                                            LedgerOptions options) {
  auto sink = make_sqlite_sink(path);
  if (!sink) return std::unexpected(sink.error());
  return std::make_unique<SpendStore>(std::move(*sink), std::move(options));
}

}  // namespace backstop::ledger
