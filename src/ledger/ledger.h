#pragma once

#include <cstdint>
#include <functional>
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

// One try of one target: a row of the `attempts` table.
struct AttemptRow {
  std::string provider;
  std::string model;
  std::string reason;  // empty when the attempt passed, else one of the closed list of reasons
  int status = 0;      // upstream HTTP status; 0 when none
  std::int64_t input_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cost_micro_usd = 0;
  std::int64_t latency_ms = 0;
  std::string stack = {};  // the provider's inference-stack label at the time; empty: unknown

  friend bool operator==(const AttemptRow&, const AttemptRow&) = default;
};

// One request: a row of the `requests` table, with its attempts in the order they were made.
struct RequestRow {
  std::string request_id;  // x-request-id (the client's may repeat: not unique)
  std::int64_t unix_ms = 0;
  std::int64_t duration_ms = 0;
  std::string workload;
  std::string key_name;   // the client key's name; empty when auth is off
  std::string outcome;    // primary | fallback | failed | rejected
  std::string served_by;  // the provider that answered; empty when none did
  std::vector<AttemptRow> attempts;

  // The sum of the attempts' costs.
  [[nodiscard]] std::int64_t cost_micro_usd() const;

  friend bool operator==(const RequestRow&, const RequestRow&) = default;
};

// Spend of one (day, workload, provider, model), summed over attempts.
struct DaySpend {
  std::string day;  // "2026-12-01" (UTC), the day the request arrived
  std::string workload;
  std::string provider;
  std::string model;
  std::int64_t attempts = 0;
  std::int64_t input_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cost_micro_usd = 0;

  friend bool operator==(const DaySpend&, const DaySpend&) = default;
};

// Where the ledger's batches are written. Called by one thread at a time (the store's
// writer, or a flush() caller), never from a worker.
class Sink {
 public:
  virtual ~Sink() = default;
  // Writes a batch all or nothing; on failure nothing of it was kept.
  [[nodiscard]] virtual core::Result<void> write(const std::vector<RequestRow>& batch) = 0;
  // Every (day, workload, provider, model) total of the rows written, ordered by day then names.
  [[nodiscard]] virtual std::vector<DaySpend> totals() = 0;
};

struct LedgerOptions {
  // The writer writes what was recorded at least this often (a crash loses at most this).
  std::int64_t flush_ms = 1000;
  // Told, on the writer thread, when a write fails after the previous one succeeded; the
  // rows stay queued and are retried at the next flush.
  std::function<void(const core::Error&)> on_write_error;
};

// The request ledger: one row per request, queued on the recording thread and written by a
// writer thread in one batch per flush. record() takes no lock that another worker takes:
// each thread has its own queue, shared only with the writer. No row is ever dropped: a
// writer that falls behind (or a sink that fails) lets the queues grow.
class SpendStore {
 public:
  // Starts the writer thread.
  SpendStore(std::unique_ptr<Sink> sink, LedgerOptions options);
  // Stops the writer and writes what is still queued.
  ~SpendStore();
  SpendStore(const SpendStore&) = delete;
  SpendStore& operator=(const SpendStore&) = delete;

  // Queues one request's row; any thread, never blocks on I/O.
  void record(RequestRow row);
  // Writes every row recorded before the call, in one batch, now; kept queued on failure.
  [[nodiscard]] core::Result<void> flush();
  // Spend of every row recorded before the call (written or still queued), ordered by day
  // then names.
  [[nodiscard]] std::vector<DaySpend> totals();
  // Rows recorded and not written yet.
  [[nodiscard]] std::int64_t queue_depth() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Totals kept in memory only.
[[nodiscard]] std::unique_ptr<Sink> make_memory_sink();
// The SQLite ledger at `path` (created if needed; WAL): tables `requests` and `attempts`.
// kInvalidArgument naming the file when it cannot be opened or holds another schema.
[[nodiscard]] core::Result<std::unique_ptr<Sink>> make_sqlite_sink(const std::string& path);

// A store on the memory sink.
[[nodiscard]] std::unique_ptr<SpendStore> make_memory_store(LedgerOptions options = {});
// A store on the SQLite sink at `path`; the sink's errors as make_sqlite_sink.
[[nodiscard]] core::Result<std::unique_ptr<SpendStore>> make_sqlite_store(
    const std::string& path, LedgerOptions options = {});

// "2026-12-01" for a Unix time in milliseconds (UTC).
[[nodiscard]] std::string utc_day(std::int64_t unix_ms);

}  // namespace backstop::ledger
