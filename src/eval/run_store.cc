#include "eval/run_store.h"

#include <sqlite3.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string_view>

namespace backstop::eval {
namespace {

using core::ErrorCode;

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS eval_runs ("
    "id TEXT PRIMARY KEY, unix_ms INTEGER NOT NULL, suite TEXT NOT NULL, "
    "suite_hash TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, "
    "stack TEXT NOT NULL, cases INTEGER NOT NULL, passed INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS eval_cases ("
    "run TEXT NOT NULL REFERENCES eval_runs (id), ordinal INTEGER NOT NULL, "
    "case_id TEXT NOT NULL, workload TEXT NOT NULL, verdict TEXT NOT NULL, "
    "reason TEXT NOT NULL, detail TEXT NOT NULL, input_tokens INTEGER NOT NULL, "
    "cached_input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
    "cost_micro_usd INTEGER NOT NULL, latency_ms INTEGER NOT NULL, attempts INTEGER NOT NULL, "
    "PRIMARY KEY (run, ordinal)) WITHOUT ROWID;";

constexpr const char* kRunColumns =
    "SELECT id, unix_ms, suite, suite_hash, provider, model, stack, cases, passed FROM eval_runs";

// An open connection and one statement, closed on every path out.
struct Connection {
  sqlite3* db = nullptr;
  sqlite3_stmt* statement = nullptr;
  ~Connection() {
    sqlite3_finalize(statement);
    sqlite3_close(db);
  }
  core::Result<void> prepare(const char* sql, const std::string& name) {
    sqlite3_finalize(statement);
    statement = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) == SQLITE_OK) return {};
    return core::fail(ErrorCode::kInvalidArgument, name + sqlite3_errmsg(db));
  }
};

std::string label(const std::string& path) { return "eval runs \"" + path + "\": "; }

std::string text(sqlite3_stmt* s, int column) {
  const auto* bytes = sqlite3_column_text(s, column);
  return bytes == nullptr ? std::string()
                          : std::string(reinterpret_cast<const char*>(bytes),
                                        static_cast<std::size_t>(sqlite3_column_bytes(s, column)));
}

void bind(sqlite3_stmt* s, int index, std::string_view value) {
  sqlite3_bind_text(s, index, value.data() != nullptr ? value.data() : "",
                    static_cast<int>(value.size()), SQLITE_TRANSIENT);
}

core::Result<void> open(Connection& c, const std::string& path, bool write) {
  const int flags = write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  if (!write && !std::filesystem::exists(path)) {
    return core::fail(ErrorCode::kNotFound, label(path) + "no such file");
  }
  if (sqlite3_open_v2(path.c_str(), &c.db, flags, nullptr) != SQLITE_OK) {
    return core::fail(ErrorCode::kInvalidArgument,
                      label(path) + (c.db != nullptr ? sqlite3_errmsg(c.db) : "out of memory"));
  }
  sqlite3_busy_timeout(c.db, 5000);
  return {};
}

// Whether the read-only connection sees the eval tables.
bool has_tables(Connection& c) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(c.db,
                         "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                         "('eval_runs', 'eval_cases')",
                         -1, &s, nullptr) != SQLITE_OK) {
    return false;
  }
  const bool both = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 2;
  sqlite3_finalize(s);
  return both;
}

RunRecord run_of(sqlite3_stmt* s) {
  return RunRecord{text(s, 0),
                   sqlite3_column_int64(s, 1),
                   text(s, 2),
                   text(s, 3),
                   text(s, 4),
                   text(s, 5),
                   text(s, 6),
                   sqlite3_column_int64(s, 7),
                   sqlite3_column_int64(s, 8)};
}

core::Result<void> insert_run(Connection& c, const RunRecord& r, const std::string& name) {
  if (auto p = c.prepare("INSERT INTO eval_runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", name);
      !p) {
    return p;
  }
  bind(c.statement, 1, r.id);
  sqlite3_bind_int64(c.statement, 2, r.unix_ms);
  bind(c.statement, 3, r.suite);
  bind(c.statement, 4, r.suite_hash);
  bind(c.statement, 5, r.provider);
  bind(c.statement, 6, r.model);
  bind(c.statement, 7, r.stack);
  sqlite3_bind_int64(c.statement, 8, r.cases);
  sqlite3_bind_int64(c.statement, 9, r.passed);
  if (sqlite3_step(c.statement) != SQLITE_DONE) {
    return core::fail(ErrorCode::kInvalidArgument, name + sqlite3_errmsg(c.db));
  }
  return {};
}

core::Result<void> insert_cases(Connection& c, const StoredRun& run, const std::string& name) {
  if (auto p = c.prepare(
          "INSERT INTO eval_cases VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
          name);
      !p) {
    return p;
  }
  std::int64_t ordinal = 0;
  for (const CaseRecord& k : run.cases) {
    sqlite3_reset(c.statement);
    bind(c.statement, 1, run.run.id);
    sqlite3_bind_int64(c.statement, 2, ordinal++);
    bind(c.statement, 3, k.case_id);
    bind(c.statement, 4, k.workload);
    bind(c.statement, 5, k.verdict);
    bind(c.statement, 6, k.reason);
    bind(c.statement, 7, k.detail);
    sqlite3_bind_int64(c.statement, 8, k.input_tokens);
    sqlite3_bind_int64(c.statement, 9, k.cached_input_tokens);
    sqlite3_bind_int64(c.statement, 10, k.output_tokens);
    sqlite3_bind_int64(c.statement, 11, k.cost_micro_usd);
    sqlite3_bind_int64(c.statement, 12, k.latency_ms);
    sqlite3_bind_int64(c.statement, 13, k.attempts);
    if (sqlite3_step(c.statement) != SQLITE_DONE) {
      return core::fail(ErrorCode::kInvalidArgument, name + sqlite3_errmsg(c.db));
    }
  }
  return {};
}

}  // namespace

core::Result<void> save_run(const std::string& path, const StoredRun& run) {
  const std::string name = label(path);
  Connection c;
  if (auto opened = open(c, path, true); !opened) return opened;
  // WAL as the ledger's writer sets it, so that a serving gateway is not blocked.
  if (sqlite3_exec(c.db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_exec(c.db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_exec(c.db, kSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return core::fail(ErrorCode::kInvalidArgument, name + sqlite3_errmsg(c.db));
  }
  auto written = insert_run(c, run.run, name);
  if (written) written = insert_cases(c, run, name);
  if (written && sqlite3_exec(c.db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    written = core::fail(ErrorCode::kInvalidArgument, name + sqlite3_errmsg(c.db));
  }
  if (!written) sqlite3_exec(c.db, "ROLLBACK", nullptr, nullptr, nullptr);
  return written;
}

core::Result<std::vector<RunRecord>> list_runs(const std::string& path) {
  const std::string name = label(path);
  Connection c;
  if (auto opened = open(c, path, false); !opened) return std::unexpected(opened.error());
  std::vector<RunRecord> runs;
  if (!has_tables(c)) return runs;
  const std::string sql = std::string(kRunColumns) + " ORDER BY unix_ms, rowid";
  if (auto p = c.prepare(sql.c_str(), name); !p) return std::unexpected(p.error());
  while (sqlite3_step(c.statement) == SQLITE_ROW) runs.push_back(run_of(c.statement));
  return runs;
}

core::Result<StoredRun> load_run(const std::string& path, const std::string& id) {
  const std::string name = label(path);
  Connection c;
  if (auto opened = open(c, path, false); !opened) return std::unexpected(opened.error());
  if (!has_tables(c)) return core::fail(ErrorCode::kNotFound, name + "no run " + id);
  const std::string sql = std::string(kRunColumns) + " WHERE id = ?1";
  if (auto p = c.prepare(sql.c_str(), name); !p) return std::unexpected(p.error());
  bind(c.statement, 1, id);
  if (sqlite3_step(c.statement) != SQLITE_ROW) {
    return core::fail(ErrorCode::kNotFound, name + "no run " + id);
  }
  StoredRun out{run_of(c.statement), {}};
  if (auto p = c.prepare(
          "SELECT case_id, workload, verdict, reason, detail, input_tokens, cached_input_tokens, "
          "output_tokens, cost_micro_usd, latency_ms, attempts FROM eval_cases WHERE run = ?1 "
          "ORDER BY ordinal",
          name);
      !p) {
    return std::unexpected(p.error());
  }
  bind(c.statement, 1, id);
  while (sqlite3_step(c.statement) == SQLITE_ROW) {
    sqlite3_stmt* s = c.statement;
    out.cases.push_back(CaseRecord{text(s, 0), text(s, 1), text(s, 2), text(s, 3), text(s, 4),
                                   sqlite3_column_int64(s, 5), sqlite3_column_int64(s, 6),
                                   sqlite3_column_int64(s, 7), sqlite3_column_int64(s, 8),
                                   sqlite3_column_int64(s, 9), sqlite3_column_int64(s, 10)});
  }
  return out;
}

std::string make_run_id(std::int64_t unix_ms, std::uint64_t random) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char out[32];
  const std::size_t n = std::strftime(out, sizeof out, "%Y%m%d-%H%M%S", &utc);
  std::snprintf(out + n, sizeof out - n, "-%04x", static_cast<unsigned>(random & 0xffff));
  return out;
}

}  // namespace backstop::eval
