#include "ledger/ledger_read.h"

#include <sqlite3.h>

#include <filesystem>
#include <string_view>
#include <utility>

namespace backstop::ledger {
namespace {

using core::ErrorCode;

// The schema version make_sqlite_sink writes (PRAGMA user_version).
constexpr std::int64_t kSchemaVersion = 2;

// One row per attempt (or one with NULL attempt columns for a request with none), in the
// order written.
constexpr const char* kRead =
    "SELECT r.id, r.request_id, r.unix_ms, r.duration_ms, r.workload, r.key_name, r.outcome, "
    "r.served_by, a.provider, a.model, a.reason, a.status, a.input_tokens, "
    "a.cached_input_tokens, a.output_tokens, a.cost_micro_usd, a.latency_ms, a.attempt, %s "
    "FROM requests r LEFT JOIN attempts a ON a.request = r.id "
    "WHERE (?1 = '' OR r.day >= ?1) AND (?2 = '' OR r.day <= ?2) "
    "AND (?3 = 0 OR r.workload = ?4) AND (?5 = 0 OR r.key_name = ?6) ORDER BY r.id, a.attempt";

constexpr const char* kDaySpend =
    "SELECT workload, key_name, SUM(cost_micro_usd) FROM requests WHERE day = ?1 "
    "GROUP BY workload, key_name ORDER BY workload, key_name";

std::string text(sqlite3_stmt* statement, int column) {
  const auto* bytes = sqlite3_column_text(statement, column);
  return bytes == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(bytes),
                           static_cast<std::size_t>(sqlite3_column_bytes(statement, column)));
}

// Closes the connection and the statement on every path out.
struct Connection {
  sqlite3* db = nullptr;
  sqlite3_stmt* statement = nullptr;
  ~Connection() {
    sqlite3_finalize(statement);
    sqlite3_close(db);
  }
};

std::int64_t query_integer(sqlite3* db, const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) != SQLITE_OK) return -1;
  const std::int64_t value =
      sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : -1;
  sqlite3_finalize(statement);
  return value;
}

// Opens the ledger at `path` read-only into `c` and checks its schema version.
core::Result<void> open_ledger(const std::string& path, const std::string& name, Connection& c) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return core::fail(ErrorCode::kNotFound, name + "no such file");
  }
  if (sqlite3_open_v2(path.c_str(), &c.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    return core::fail(ErrorCode::kInvalidArgument,
                      name + (c.db != nullptr ? sqlite3_errmsg(c.db) : "out of memory"));
  }
  sqlite3_busy_timeout(c.db, 5000);
  const std::int64_t version = query_integer(c.db, "PRAGMA user_version");
  if (version < 0) {
    return core::fail(ErrorCode::kInvalidArgument,
                      name + "not a SQLite ledger (" + sqlite3_errmsg(c.db) + ")");
  }
  if (version != kSchemaVersion) {
    const bool old = query_integer(c.db,
                                   "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                   "AND name = 'spend'") > 0;
    if (old) {
      return core::fail(ErrorCode::kInvalidArgument,
                        name +
                            "holds the ledger of an earlier backstop (table spend: daily "
                            "totals, no rows per request); it cannot be reported on");
    }
    return core::fail(ErrorCode::kInvalidArgument,
                      name + "has ledger schema version " + std::to_string(version) +
                          ", this backstop reads version " + std::to_string(kSchemaVersion));
  }
  return {};
}

}  // namespace

core::Result<std::vector<RequestRow>> read_requests(
    const std::string& path, const ReadFilter& filter,
    const std::function<void(std::int64_t)>& progress, std::int64_t progress_every) {
  const std::string name = "ledger \"" + path + "\": ";
  Connection c;
  if (auto opened = open_ledger(path, name, c); !opened) return std::unexpected(opened.error());
  // A ledger written before the attempts' stack column reads as stacks unknown.
  const bool has_stack =
      query_integer(c.db,
                    "SELECT count(*) FROM pragma_table_info('attempts') WHERE name = 'stack'") > 0;
  std::string read = kRead;
  read.replace(read.find("%s"), 2, has_stack ? "a.stack" : "''");
  if (sqlite3_prepare_v2(c.db, read.c_str(), -1, &c.statement, nullptr) != SQLITE_OK) {
    return core::fail(ErrorCode::kInvalidArgument, name + sqlite3_errmsg(c.db));
  }
  sqlite3_bind_text(c.statement, 1, filter.since_day.c_str(), -1, SQLITE_STATIC);
  sqlite3_bind_text(c.statement, 2, filter.until_day.c_str(), -1, SQLITE_STATIC);
  sqlite3_bind_int(c.statement, 3, filter.workload ? 1 : 0);
  sqlite3_bind_text(c.statement, 4, filter.workload ? filter.workload->c_str() : "", -1,
                    SQLITE_STATIC);
  sqlite3_bind_int(c.statement, 5, filter.key_name ? 1 : 0);
  sqlite3_bind_text(c.statement, 6, filter.key_name ? filter.key_name->c_str() : "", -1,
                    SQLITE_STATIC);

  std::vector<RequestRow> rows;
  std::int64_t last_id = -1;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(c.statement)) == SQLITE_ROW) {
    sqlite3_stmt* s = c.statement;
    const std::int64_t id = sqlite3_column_int64(s, 0);
    if (id != last_id) {
      last_id = id;
      if (progress && progress_every > 0 && !rows.empty() &&
          static_cast<std::int64_t>(rows.size()) % progress_every == 0) {
        progress(static_cast<std::int64_t>(rows.size()));
      }
      rows.push_back(RequestRow{text(s, 1),
                                sqlite3_column_int64(s, 2),
                                sqlite3_column_int64(s, 3),
                                text(s, 4),
                                text(s, 5),
                                text(s, 6),
                                text(s, 7),
                                {}});
    }
    if (sqlite3_column_type(s, 17) == SQLITE_NULL) continue;  // a request without attempts
    rows.back().attempts.push_back(AttemptRow{
        text(s, 8), text(s, 9), text(s, 10), sqlite3_column_int(s, 11), sqlite3_column_int64(s, 12),
        sqlite3_column_int64(s, 13), sqlite3_column_int64(s, 14), sqlite3_column_int64(s, 15),
        sqlite3_column_int64(s, 16), text(s, 18)});
  }
  if (rc != SQLITE_DONE) {
    return core::fail(ErrorCode::kInternal, name + "reading: " + sqlite3_errmsg(c.db));
  }
  return rows;
}

core::Result<std::vector<KeySpend>> read_day_spend(const std::string& path,
                                                   const std::string& day) {
  const std::string name = "ledger \"" + path + "\": ";
  Connection c;
  if (auto opened = open_ledger(path, name, c); !opened) return std::unexpected(opened.error());
  if (sqlite3_prepare_v2(c.db, kDaySpend, -1, &c.statement, nullptr) != SQLITE_OK) {
    return core::fail(ErrorCode::kInvalidArgument, name + sqlite3_errmsg(c.db));
  }
  sqlite3_bind_text(c.statement, 1, day.c_str(), -1, SQLITE_STATIC);
  std::vector<KeySpend> out;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(c.statement)) == SQLITE_ROW) {
    out.push_back(
        {text(c.statement, 0), text(c.statement, 1), sqlite3_column_int64(c.statement, 2)});
  }
  if (rc != SQLITE_DONE) {
    return core::fail(ErrorCode::kInternal, name + "reading: " + sqlite3_errmsg(c.db));
  }
  return out;
}

}  // namespace backstop::ledger
