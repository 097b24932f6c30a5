#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "config/config.h"

namespace backstop::cli {

// Each subcommand returns the process exit code.

// Runs the gateway until SIGTERM or SIGINT, then drains and returns 0; a second signal
// exits at once with 128 + its number. 1 when it cannot start (config, port taken).
int serve(const std::string& config_file, const std::string& listen, int threads);
// Prints every config error as FILE:LINE: PATH: MESSAGE; 1 on any, else 0.
// What configs are checked against: the kinds of the built-in dialects.
[[nodiscard]] config::ParseOptions config_options();

int check_config(const std::string& config_file);
// The embedded demo: a gateway on the demo config, sample traffic, a summary.
struct DemoOptions {
  int requests = 300;
  int concurrency = 16;
};
int demo(const DemoOptions& options);
struct MockCliOptions {
  std::string listen = "127.0.0.1:9000";
  int threads = 1;
  std::int64_t chunk_interval_ms = 0;  // between the frames of every stream
  std::size_t stream_chunks = 0;       // filler text deltas at the head of every stream
};

// The mock upstream, until SIGTERM or SIGINT.
int mock(const MockCliOptions& options);

// `backstop report`: the ledger per workload and in total, as a table or JSON.
struct ReportOptions {
  std::string config_file;  // bands and prices; its ledger.path unless ledger_file is set
  std::string ledger_file;
  std::string since, until;        // UTC days "2026-12-01", both included; empty: open
  std::string workload;            // empty: every workload
  std::optional<std::string> key;  // absent: every client key
  std::string format = "table";    // table | json | html
  std::string out_file;            // empty: stdout
};
// 1 when the ledger is missing, of another schema, or the arguments are wrong.
int report(const ReportOptions& options);

// `backstop plan`: self-hosting each workload's primary versus its APIs.
struct PlanOptions {
  std::string config_file;     // required: the prices
  std::string ledger_file;     // traffic; the config's ledger.path when empty
  double tokens_per_day = -1;  // -1: measured in the ledger
  double output_share = -1;    // -1: measured, else 0.2
  // The node; -1: not given, the config's plan: block decides (else gpus 1, utilization 0.6).
  double gpu_hour_usd = -1;
  std::int64_t gpus = -1;
  double tokens_per_second = -1;
  double utilization = -1;
  std::string format = "table";
};
int plan(const PlanOptions& options);

// `backstop eval run`: a suite against one provider, stored in the ledger's database.
struct EvalRunOptions {
  std::string config_file;
  std::string suite_file;
  std::string provider;
  std::string stack;  // empty: the provider's stack: key, else detected
  int concurrency = 4;
};
// Ends its output with "run RUN_ID"; 1 when nothing could run or the run was not stored.
int eval_run(const EvalRunOptions& options);

// `backstop eval diff` and `backstop eval list`: the runs in a database.
struct EvalReadOptions {
  std::string config_file;  // its ledger.path, unless ledger_file is set
  std::string ledger_file;
  std::string run_a, run_b;      // diff only
  std::string format = "table";  // diff only: table | html
  std::string out_file;          // diff only; empty: stdout
};
// 1 on a significant regression of B against A (or an error), else 0.
int eval_diff(const EvalReadOptions& options);
// One run a line, oldest first.
int eval_list(const EvalReadOptions& options);

// Writes `text` to `file` (stdout when empty); false, said on stderr after `command`, when it
// cannot.
bool write_out(const std::string& text, const std::string& file, const char* command);

// Blocks SIGINT and SIGTERM in the calling thread (and threads it starts later), so that
// wait_for_signal() can take them synchronously.
void block_stop_signals();
// Waits for SIGINT or SIGTERM; returns its number.
int wait_for_signal();

}  // namespace backstop::cli
