#include "ledger/ledger.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <string_view>
#include <tuple>
#include <utility>

namespace backstop::ledger {
namespace {

using core::ErrorCode;

// (day, workload, provider, model): ordered by day, then names. Found by views, so that
// adding to an existing row copies no string.
using SpendKey = std::tuple<std::string, std::string, std::string, std::string>;
using SpendKeyView =
    std::tuple<std::string_view, std::string_view, std::string_view, std::string_view>;

// Totals aggregated per key.
class SpendTable {
 public:
  void add(const DaySpend& spend) {
    DaySpend& total = row(spend.day, spend.workload, spend.provider, spend.model);
    total.requests += spend.requests;
    total.input_tokens += spend.input_tokens;
    total.cached_input_tokens += spend.cached_input_tokens;
    total.output_tokens += spend.output_tokens;
    total.cost_micro_usd += spend.cost_micro_usd;
  }

  // One request's record, on `day`.
  void add(std::string_view day, const SpendRecord& record) {
    DaySpend& total = row(day, record.workload, record.provider, record.model);
    total.requests += 1;
    total.input_tokens += record.usage.input_tokens;
    total.cached_input_tokens += record.usage.cached_input_tokens;
    total.output_tokens += record.usage.output_tokens;
    total.cost_micro_usd += record.cost_micro_usd;
  }

  void merge(const SpendTable& other) {
    for (const auto& [key, spend] : other.rows_) add(spend);
  }

  [[nodiscard]] bool empty() const { return rows_.empty(); }
  [[nodiscard]] const auto& rows() const { return rows_; }

  [[nodiscard]] std::vector<DaySpend> to_vector() const {
    std::vector<DaySpend> out;
    out.reserve(rows_.size());
    for (const auto& [key, spend] : rows_) out.push_back(spend);
    return out;
  }

 private:
  DaySpend& row(std::string_view day, std::string_view workload, std::string_view provider,
                std::string_view model) {
    const SpendKeyView key{day, workload, provider, model};
    auto it = rows_.find(key);
    if (it == rows_.end()) {
      DaySpend spend{std::string(day), std::string(workload), std::string(provider),
                     std::string(model)};
      it = rows_.emplace(SpendKey{spend.day, spend.workload, spend.provider, spend.model}, spend)
               .first;
    }
    return it->second;
  }

  std::map<SpendKey, DaySpend, std::less<>> rows_;
};

// utc_day of the last time asked for, kept while the day lasts: one string per day, not per
// record. Not locked: each store keeps one under its own lock.
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

class MemoryStore final : public SpendStore {
 public:
  void record(const SpendRecord& record) override {
    std::lock_guard lock(mutex_);
    table_.add(days_.day(record.unix_ms), record);
  }

  core::Result<void> flush() override { return {}; }

  std::vector<DaySpend> totals() override {
    std::lock_guard lock(mutex_);
    return table_.to_vector();
  }

 private:
  std::mutex mutex_;
  SpendTable table_;
  DayCache days_;
};

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS spend ("
    "day TEXT NOT NULL, workload TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, "
    "requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, "
    "cached_input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
    "cost_micro_usd INTEGER NOT NULL, "
    "PRIMARY KEY (day, workload, provider, model))";

constexpr const char* kUpsert =
    "INSERT INTO spend (day, workload, provider, model, requests, input_tokens, "
    "cached_input_tokens, output_tokens, cost_micro_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
    "?9) ON CONFLICT (day, workload, provider, model) DO UPDATE SET "
    "requests = requests + excluded.requests, "
    "input_tokens = input_tokens + excluded.input_tokens, "
    "cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens, "
    "output_tokens = output_tokens + excluded.output_tokens, "
    "cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd";

constexpr const char* kSelect =
    "SELECT day, workload, provider, model, requests, input_tokens, cached_input_tokens, "
    "output_tokens, cost_micro_usd FROM spend";

std::string column_text(sqlite3_stmt* statement, int column) {
  const auto* text = sqlite3_column_text(statement, column);
  return text == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(text),
                           static_cast<std::size_t>(sqlite3_column_bytes(statement, column)));
}

class SqliteStore final : public SpendStore {
 public:
  // Takes ownership of an open connection and its prepared statements.
  SqliteStore(sqlite3* db, sqlite3_stmt* upsert, sqlite3_stmt* select)
      : db_(db), upsert_(upsert), select_(select) {}

  ~SqliteStore() override {
    // Spend recorded since the last flush is written out; nothing to report it to here.
    (void)flush();
    sqlite3_finalize(upsert_);
    sqlite3_finalize(select_);
    sqlite3_close(db_);
  }

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  void record(const SpendRecord& record) override {
    std::lock_guard lock(buffer_mutex_);
    buffer_.add(days_.day(record.unix_ms), record);
  }

  core::Result<void> flush() override {
    // db_mutex_ is held throughout, so totals() never sees the rows in neither place.
    std::lock_guard db_lock(db_mutex_);
    SpendTable pending;
    {
      std::lock_guard lock(buffer_mutex_);
      std::swap(pending, buffer_);
    }
    if (pending.empty()) return {};
    auto written = write(pending);
    if (!written) {
      // Keep the records for the next flush, with whatever arrived meanwhile.
      std::lock_guard lock(buffer_mutex_);
      pending.merge(buffer_);
      buffer_ = std::move(pending);
    }
    return written;
  }

  std::vector<DaySpend> totals() override {
    std::lock_guard db_lock(db_mutex_);
    SpendTable table;
    sqlite3_reset(select_);
    // A read error ends the rows early; totals() has no error channel, and flush() reports
    // the same database's trouble.
    while (sqlite3_step(select_) == SQLITE_ROW) {
      table.add(DaySpend{column_text(select_, 0), column_text(select_, 1), column_text(select_, 2),
                         column_text(select_, 3), sqlite3_column_int64(select_, 4),
                         sqlite3_column_int64(select_, 5), sqlite3_column_int64(select_, 6),
                         sqlite3_column_int64(select_, 7), sqlite3_column_int64(select_, 8)});
    }
    sqlite3_reset(select_);
    {
      std::lock_guard lock(buffer_mutex_);
      table.merge(buffer_);
    }
    return table.to_vector();
  }

 private:
  core::Result<void> error(std::string_view doing) {
    return core::fail(ErrorCode::kInternal,
                      "spend database: " + std::string(doing) + ": " + sqlite3_errmsg(db_));
  }

  // All rows in one transaction; rolled back on any failure.
  core::Result<void> write(const SpendTable& table) {
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return error("begin");
    }
    for (const auto& [key, spend] : table.rows()) {
      sqlite3_reset(upsert_);
      sqlite3_clear_bindings(upsert_);
      const std::string* texts[] = {&spend.day, &spend.workload, &spend.provider, &spend.model};
      for (int i = 0; i < 4; ++i) {
        sqlite3_bind_text(upsert_, i + 1, texts[i]->data(), static_cast<int>(texts[i]->size()),
                          SQLITE_STATIC);
      }
      const std::int64_t numbers[] = {spend.requests, spend.input_tokens, spend.cached_input_tokens,
                                      spend.output_tokens, spend.cost_micro_usd};
      for (int i = 0; i < 5; ++i) sqlite3_bind_int64(upsert_, i + 5, numbers[i]);
      if (sqlite3_step(upsert_) != SQLITE_DONE) {
        auto failed = error("upsert");
        sqlite3_reset(upsert_);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return failed;
      }
    }
    sqlite3_reset(upsert_);
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      auto failed = error("commit");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return failed;
    }
    return {};
  }

  sqlite3* db_;
  sqlite3_stmt* upsert_;
  sqlite3_stmt* select_;
  std::mutex db_mutex_;      // the connection and its statements; taken before buffer_mutex_
  std::mutex buffer_mutex_;  // buffer_ and days_
  SpendTable buffer_;
  DayCache days_;
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

std::string utc_day(std::int64_t unix_ms) {
  using namespace std::chrono;
  const year_month_day date{floor<days>(sys_time<milliseconds>{milliseconds(unix_ms)})};
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return buffer;
}

std::unique_ptr<SpendStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

core::Result<std::unique_ptr<SpendStore>> make_sqlite_store(const std::string& path) {
  sqlite3* db = nullptr;
  // The store serializes its own use of the connection.
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  const auto failed = [&](std::string_view doing) {
    std::string message = "cannot open spend database \"" + path + "\": " + std::string(doing) +
                          (db != nullptr ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return core::fail(ErrorCode::kInvalidArgument, std::move(message));
  };
  if (rc != SQLITE_OK) return failed("");
  sqlite3_busy_timeout(db, 5000);
  // journal_mode answers with a row; sqlite3_exec discards it.
  for (const char* statement : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", kSchema}) {
    if (sqlite3_exec(db, statement, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return failed("");
    }
  }
  sqlite3_stmt* upsert = nullptr;
  sqlite3_stmt* select = nullptr;
  if (sqlite3_prepare_v3(db, kUpsert, -1, SQLITE_PREPARE_PERSISTENT, &upsert, nullptr) !=
      SQLITE_OK) {
    return failed("prepare: ");
  }
  if (sqlite3_prepare_v3(db, kSelect, -1, SQLITE_PREPARE_PERSISTENT, &select, nullptr) !=
      SQLITE_OK) {
    sqlite3_finalize(upsert);
    return failed("prepare: ");
  }
  return std::make_unique<SqliteStore>(db, upsert, select);
}

}  // namespace backstop::ledger
