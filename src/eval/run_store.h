#pragma once
// Eval runs in the ledger's SQLite database: tables eval_runs and eval_cases, beside the
// ledger's own (which they never touch).

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace backstop::eval {

// One run of a suite against one provider.
struct RunRecord {
  std::string id;  // "20261202-143501-3f2a": its UTC time and a random suffix
  std::int64_t unix_ms = 0;
  std::string suite;       // the suite file as given
  std::string suite_hash;  // its SHA-256
  std::string provider;
  std::string model;
  std::string stack;  // the inference-stack label; "unknown" when none was found
  std::int64_t cases = 0;
  std::int64_t passed = 0;

  friend bool operator==(const RunRecord&, const RunRecord&) = default;
};

// The outcome of one case in a run.
struct CaseRecord {
  std::string case_id;
  std::string workload;
  std::string verdict;  // pass | fail (a check or expectation) | error (no answer)
  std::string reason;   // of the closed list; empty on pass
  std::string detail;   // why, without prompt or completion text
  std::int64_t input_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cost_micro_usd = 0;
  std::int64_t latency_ms = 0;
  std::int64_t attempts = 0;  // calls made, retries included

  friend bool operator==(const CaseRecord&, const CaseRecord&) = default;
};

// A run with its cases, in suite order.
struct StoredRun {
  RunRecord run;
  std::vector<CaseRecord> cases;
};

// Writes a run and its cases to the database at `path` (created if needed) in one
// transaction. kInvalidArgument naming the file when it cannot be opened or written.
[[nodiscard]] core::Result<void> save_run(const std::string& path, const StoredRun& run);

// Every run in the database, oldest first. kNotFound when the file does not exist; no runs
// (an empty list) when it holds no eval tables.
[[nodiscard]] core::Result<std::vector<RunRecord>> list_runs(const std::string& path);

// One run with its cases; kNotFound when the file or the run does not exist.
[[nodiscard]] core::Result<StoredRun> load_run(const std::string& path, const std::string& id);

// A new run id for `unix_ms`: "YYYYMMDD-HHMMSS-" and 4 hex digits of `random`.
[[nodiscard]] std::string make_run_id(std::int64_t unix_ms, std::uint64_t random);

}  // namespace backstop::eval
