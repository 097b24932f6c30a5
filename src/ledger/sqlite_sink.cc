// The SQLite ledger: tables `requests` and `attempts`, WAL, one transaction per batch.
#include <sqlite3.h>

#include <string>
#include <string_view>
#include <utility>

#include "ledger/ledger.h"
#include "ledger/spend_table.h"

namespace backstop::ledger {
namespace {

using core::ErrorCode;

// PRAGMA user_version of the schema below. 0 with none of its tables: a new file.
constexpr int kSchemaVersion = 2;

constexpr const char* kSchema =
    "CREATE TABLE requests ("
    "id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, unix_ms INTEGER NOT NULL, "
    "day TEXT NOT NULL, workload TEXT NOT NULL, key_name TEXT NOT NULL, outcome TEXT NOT NULL, "
    "served_by TEXT NOT NULL, duration_ms INTEGER NOT NULL, cost_micro_usd INTEGER NOT NULL);"
    "CREATE INDEX requests_day ON requests (day);"
    "CREATE INDEX requests_request_id ON requests (request_id);"
    "CREATE TABLE attempts ("
    "request INTEGER NOT NULL REFERENCES requests (id), attempt INTEGER NOT NULL, "
    "provider TEXT NOT NULL, model TEXT NOT NULL, reason TEXT NOT NULL, status INTEGER NOT NULL, "
    "input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL, "
    "output_tokens INTEGER NOT NULL, cost_micro_usd INTEGER NOT NULL, "
    "latency_ms INTEGER NOT NULL, PRIMARY KEY (request, attempt)) WITHOUT ROWID;"
    "PRAGMA user_version = 2;";

constexpr const char* kInsertRequest =
    "INSERT INTO requests (request_id, unix_ms, day, workload, key_name, outcome, served_by, "
    "duration_ms, cost_micro_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

constexpr const char* kInsertAttempt =
    "INSERT INTO attempts (request, attempt, provider, model, reason, status, input_tokens, "
    "cached_input_tokens, output_tokens, cost_micro_usd, latency_ms, stack) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

// The attempts' inference-stack column, added to a ledger written before it existed (and to
// a new one: the schema above predates it). Idempotent.
constexpr const char* kHasStack =
    "SELECT count(*) FROM pragma_table_info('attempts') WHERE name = 'stack'";
constexpr const char* kAddStack = "ALTER TABLE attempts ADD COLUMN stack TEXT NOT NULL DEFAULT ''";

constexpr const char* kTotals =
    "SELECT r.day, r.workload, a.provider, a.model, count(*), sum(a.input_tokens), "
    "sum(a.cached_input_tokens), sum(a.output_tokens), sum(a.cost_micro_usd) "
    "FROM attempts a JOIN requests r ON r.id = a.request "
    "GROUP BY r.day, r.workload, a.provider, a.model ORDER BY 1, 2, 3, 4";

std::string column_text(sqlite3_stmt* statement, int column) {
  const auto* text = sqlite3_column_text(statement, column);
  return text == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(text),
                           static_cast<std::size_t>(sqlite3_column_bytes(statement, column)));
}

void bind_text(sqlite3_stmt* statement, int index, std::string_view text) {
  // A null pointer would bind NULL, which the NOT NULL columns refuse.
  sqlite3_bind_text(statement, index, text.data() != nullptr ? text.data() : "",
                    static_cast<int>(text.size()), SQLITE_STATIC);
}

void bind_int(sqlite3_stmt* statement, int index, std::int64_t number) {
  sqlite3_bind_int64(statement, index, number);
}

class SqliteSink final : public Sink {
 public:
  // Takes ownership of an open connection and its prepared statements.
  SqliteSink(sqlite3* db, sqlite3_stmt* insert_request, sqlite3_stmt* insert_attempt,
             sqlite3_stmt* totals)
      : db_(db),
        insert_request_(insert_request),
        insert_attempt_(insert_attempt),
        totals_(totals) {}

  ~SqliteSink() override {
    sqlite3_finalize(insert_request_);
    sqlite3_finalize(insert_attempt_);
    sqlite3_finalize(totals_);
    sqlite3_close(db_);
  }

  SqliteSink(const SqliteSink&) = delete;
  SqliteSink& operator=(const SqliteSink&) = delete;

  core::Result<void> write(const std::vector<RequestRow>& batch) override {
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return error("begin");
    }
    for (const RequestRow& row : batch) {
      if (auto inserted = insert(row); !inserted) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return inserted;
      }
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      auto failed = error("commit");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return failed;
    }
    return {};
  }

  std::vector<DaySpend> totals() override {
    std::vector<DaySpend> out;
    sqlite3_reset(totals_);
    // A read error ends the rows early; totals() has no error channel, and the next write
    // reports the same database's trouble.
    while (sqlite3_step(totals_) == SQLITE_ROW) {
      out.push_back(DaySpend{column_text(totals_, 0), column_text(totals_, 1),
                             column_text(totals_, 2), column_text(totals_, 3),
                             sqlite3_column_int64(totals_, 4), sqlite3_column_int64(totals_, 5),
                             sqlite3_column_int64(totals_, 6), sqlite3_column_int64(totals_, 7),
                             sqlite3_column_int64(totals_, 8)});
    }
    sqlite3_reset(totals_);
    return out;
  }

 private:
  core::Result<void> error(std::string_view doing) {
    return core::fail(ErrorCode::kInternal,
                      "ledger: " + std::string(doing) + ": " + sqlite3_errmsg(db_));
  }

  // Runs a bound insert once; leaves the statement reset.
  core::Result<void> step(sqlite3_stmt* statement, std::string_view doing) {
    const bool done = sqlite3_step(statement) == SQLITE_DONE;
    auto result = done ? core::Result<void>() : error(doing);
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    return result;
  }

  core::Result<void> insert(const RequestRow& row) {
    bind_text(insert_request_, 1, row.request_id);
    bind_int(insert_request_, 2, row.unix_ms);
    bind_text(insert_request_, 3, days_.day(row.unix_ms));
    bind_text(insert_request_, 4, row.workload);
    bind_text(insert_request_, 5, row.key_name);
    bind_text(insert_request_, 6, row.outcome);
    bind_text(insert_request_, 7, row.served_by);
    bind_int(insert_request_, 8, row.duration_ms);
    bind_int(insert_request_, 9, row.cost_micro_usd());
    if (auto done = step(insert_request_, "insert request"); !done) return done;
    const std::int64_t id = sqlite3_last_insert_rowid(db_);
    std::int64_t index = 0;
    for (const AttemptRow& a : row.attempts) {
      bind_int(insert_attempt_, 1, id);
      bind_int(insert_attempt_, 2, index++);
      bind_text(insert_attempt_, 3, a.provider);
      bind_text(insert_attempt_, 4, a.model);
      bind_text(insert_attempt_, 5, a.reason);
      bind_int(insert_attempt_, 6, static_cast<std::int64_t>(a.status));
      bind_int(insert_attempt_, 7, a.input_tokens);
      bind_int(insert_attempt_, 8, a.cached_input_tokens);
      bind_int(insert_attempt_, 9, a.output_tokens);
      bind_int(insert_attempt_, 10, a.cost_micro_usd);
      bind_int(insert_attempt_, 11, a.latency_ms);
      bind_text(insert_attempt_, 12, a.stack);
      if (auto done = step(insert_attempt_, "insert attempt"); !done) return done;
    }
    return {};
  }

  sqlite3* db_;
  sqlite3_stmt* insert_request_;
  sqlite3_stmt* insert_attempt_;
  sqlite3_stmt* totals_;
  DayCache days_;
};

// The first column of the first row of `sql`, as an integer; -1 on error.
std::int64_t query_integer(sqlite3* db, const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) != SQLITE_OK) return -1;
  std::int64_t value =
      sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : -1;
  sqlite3_finalize(statement);
  return value;
}

}  // namespace

core::Result<std::unique_ptr<Sink>> make_sqlite_sink(const std::string& path) {
  sqlite3* db = nullptr;
  // One thread at a time uses the connection (the store's write lock).
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::vector<sqlite3_stmt*> statements;
  const auto failed = [&](std::string_view why) {
    std::string message =
        "ledger \"" + path + "\": " +
        (why.empty() ? std::string(db != nullptr ? sqlite3_errmsg(db) : "out of memory")
                     : std::string(why));
    for (sqlite3_stmt* s : statements) sqlite3_finalize(s);
    sqlite3_close(db);
    return core::fail(ErrorCode::kInvalidArgument, std::move(message));
  };
  if (rc != SQLITE_OK) return failed("");
  sqlite3_busy_timeout(db, 5000);
  // NORMAL: a committed batch survives the process's crash (it is in the WAL file); only a
  // power cut can undo the batches since the last checkpoint, and no commit waits for a
  // disk sync. journal_mode answers with a row; exec discards it.
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    if (sqlite3_exec(db, pragma, nullptr, nullptr, nullptr) != SQLITE_OK) return failed("");
  }
  const std::int64_t version = query_integer(db, "PRAGMA user_version");
  if (version < 0) return failed("");
  if (version == 0) {
    const std::int64_t old = query_integer(
        db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spend'");
    if (old > 0) {
      return failed(
          "holds the ledger of an earlier backstop (table spend: daily totals, no rows per "
          "request); move it aside or set ledger.path to a new file");
    }
    const std::int64_t ours = query_integer(
        db,
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('requests', "
        "'attempts')");
    if (ours != 0) {
      return failed("has tables requests or attempts that backstop did not create");
    }
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK ||
        sqlite3_exec(db, kSchema, nullptr, nullptr, nullptr) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return failed("");
    }
  } else if (version != kSchemaVersion) {
    return failed("has ledger schema version " + std::to_string(version) +
                  ", this backstop writes version " + std::to_string(kSchemaVersion));
  }
  if (query_integer(db, kHasStack) == 0 &&
      sqlite3_exec(db, kAddStack, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return failed("");
  }
  for (const char* sql : {kInsertRequest, kInsertAttempt, kTotals}) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr) !=
        SQLITE_OK) {
      return failed("");
    }
    statements.push_back(statement);
  }
  return std::make_unique<SqliteSink>(db, statements[0], statements[1], statements[2]);
}

}  // namespace backstop::ledger
