#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "core/error.h"

namespace backstop::ledger {

// Integer micro-dollars per million tokens (0.14 USD/Mtok -> 140000).
struct Price {
  std::int64_t input = 0;
  std::int64_t output = 0;
  std::int64_t cached_input = -1;  // -1: cache reads cost `input`
};

// Cost of a usage in integer micro-dollars, rounded half up once per call.
[[nodiscard]] std::int64_t cost_micro_usd(const chat::Usage& usage, const Price& price);

// One attempt's spend.
struct SpendRecord {
  std::int64_t unix_ms = 0;
  std::string workload;
  std::string provider;
  std::string model;
  chat::Usage usage;
  std::int64_t cost_micro_usd = 0;
};

// Spend of one (day, workload, provider, model).
struct DaySpend {
  std::string day;  // "2026-12-01" (UTC)
  std::string workload;
  std::string provider;
  std::string model;
  std::int64_t requests = 0;
  std::int64_t input_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cost_micro_usd = 0;

  friend bool operator==(const DaySpend&, const DaySpend&) = default;
};

// Where spend goes. record() is called on the request path from any worker and must not
// block on I/O; totals() returns what was recorded, durable stores included after flush.
class SpendStore {
 public:
  virtual ~SpendStore() = default;
  virtual void record(const SpendRecord& record) = 0;
  // Writes buffered records out (durable stores); called periodically and at shutdown.
  virtual core::Result<void> flush() = 0;
  // Every (day, workload, provider, model) total, ordered by day then names.
  [[nodiscard]] virtual std::vector<DaySpend> totals() = 0;
};

// Kept in memory only.
[[nodiscard]] std::unique_ptr<SpendStore> make_memory_store();
// SQLite at `path` (created if needed); records are buffered in memory and written in one
// transaction per flush(). kInvalidArgument when the file cannot be opened.
[[nodiscard]] core::Result<std::unique_ptr<SpendStore>> make_sqlite_store(const std::string& path);

// "2026-12-01" for a Unix time in milliseconds (UTC).
[[nodiscard]] std::string utc_day(std::int64_t unix_ms);

}  // namespace backstop::ledger
