#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace backstop::config {

// USD per million tokens, held as integer micro-dollars per million tokens
// (0.14 USD -> 140000), so that cost arithmetic stays exact.
struct Price {
  std::int64_t input = 0;
  std::int64_t output = 0;
  std::optional<std::int64_t> cached_input;  // absent: cache reads cost `input`
};

// The simulated provider's behaviour: latency ~ lognormal with this median and p99,
// and a rate (0..1) of each fault. Seeded, so a run is reproducible.
struct Simulation {
  double latency_p50_ms = 50;
  double latency_p99_ms = 200;
  std::uint64_t seed = 1;
  double no_tool_call = 0;
  double unknown_tool = 0;
  double invalid_json = 0;
  double schema = 0;  // arguments that violate the tool's schema
  double empty = 0;
  double truncated = 0;
  double rate_limited = 0;  // 429
  double server_error = 0;  // 500
  double timeout = 0;       // no answer within timeout_ms
};

// kHttp: a model behind an HTTP API in a dialect (Provider::dialect); kSimulated: the
// built-in simulation.
enum class ProviderKind { kHttp, kSimulated };

// A provider's circuit breaker: open after `failures` consecutive transport failures
// (connect, timeout, 5xx, 429), half-open after `cooldown_ms` with one probe at a time.
struct Breaker {
  int failures = 5;
  std::int64_t cooldown_ms = 30'000;
};

struct Provider {
  std::string name;
  ProviderKind kind = ProviderKind::kHttp;
  std::string dialect;      // kHttp: the config's `kind`, naming a dialect ("openai")
  std::string base_url;     // as the vendor SDK takes it (openai: ".../v1"; anthropic: the host)
  std::string model;        // the upstream's model name
  std::string api_key_env;  // the variable holding the key; empty: no key sent
  std::string ca_file;      // extra CA bundle for TLS; empty: the system store
  std::int64_t connect_timeout_ms = 5'000;       // TCP + TLS handshake
  std::int64_t first_token_timeout_ms = 10'000;  // head + first body byte; not on a last target
  std::int64_t idle_timeout_ms = 30'000;         // longest silence once the body has begun
  std::int64_t timeout_ms = 600'000;             // the whole call, a streamed body included
  std::int64_t max_tokens = 4096;  // Anthropic requires max_tokens: used when the client sent none
  std::string anthropic_version = "2023-06-01";
  Price price;
  std::string stack;      // the inference-stack label; empty: detected from the upstream
  Simulation simulation;  // kSimulated only
  // kSimulated only: simulation.stacks, each stack label's own fault rates (only the fault
  // fields are set), which replace simulation's when `stack` names that label.
  std::vector<std::pair<std::string, Simulation>> stack_faults;
  std::optional<Breaker> breaker;  // absent: no breaker
  int line = 0;                    // where it was defined, for messages
};

enum class ToolCallCheck { kOff, kRequired, kOptional };
enum class ArgumentsCheck { kNone, kJson, kSchema };
enum class ContentCheck { kOff, kNonEmpty, kJson, kSchema };

// A workload's `validate:` block. `enabled` is false when the block is absent:
// then no check runs at all (not even truncation).
struct Validate {
  bool enabled = false;
  ToolCallCheck tool_call = ToolCallCheck::kOff;
  bool tool_names_declared = false;     // tool_names: declared
  std::vector<std::string> tool_names;  // tool_names: [a, b]
  ArgumentsCheck arguments = ArgumentsCheck::kNone;
  ContentCheck content = ContentCheck::kOff;
  bool allow_truncated = false;  // finish_reason length passes
};

struct Retries {
  int max = 0;                         // same-target retries after the first try
  std::int64_t base_backoff_ms = 100;  // first backoff; doubles each retry, full jitter
  std::int64_t max_backoff_ms = 2'000;
  std::int64_t retry_after_cap_ms = 5'000;  // Retry-After honoured up to this
};

struct Bands {
  double move_above = 0.30;
  double underused_below = 0.05;
  double healthy_low = 0.10;  // 10-25 %: the pattern pays for itself
  double healthy_high = 0.25;
  std::int64_t window_s = 600;  // the recent window the ratio gauge covers
};

// Bands that act: above `bypass_above` (over bands.window_s, at least `min_requests`) the
// primary is bypassed, a `probe` share still tries it first, and when the probes' fallback
// rate falls below `restore_below` it is restored.
struct Adapt {
  double bypass_above = 0.30;
  double restore_below = 0.20;
  std::int64_t min_requests = 50;
  double probe = 0.05;
};

// What a workload does once its day's budget is spent: refuse requests (429 budget_exceeded)
// or cut its route to the first target (no fallback).
enum class BudgetAction { kReject, kPrimaryOnly };

// A spending limit per UTC day, in integer micro-dollars (`daily_usd: 50` -> 50'000'000).
struct Budget {
  std::int64_t daily_micro_usd = 0;
  BudgetAction on_exceeded = BudgetAction::kReject;  // a key's budget always rejects
};

// How a workload's streamed answers reach the client: kBuffer holds each target's whole
// answer before the first byte goes out (a cut or stalled target falls back unseen), kPass
// streams straight through (no checks on streams), kAuto buffers when there are checks.
enum class StreamMode { kAuto, kBuffer, kPass };

struct Workload {
  std::string name;
  std::vector<std::string> route;  // provider names, tried in order
  Validate validate;
  StreamMode stream_mode = StreamMode::kAuto;
  Retries retries;
  std::int64_t deadline_ms = 120'000;  // the whole request, every attempt included
  Bands bands;
  std::optional<Adapt> adapt;    // absent: bands only report
  std::optional<Budget> budget;  // absent: no limit
  int line = 0;
};

struct Server {
  std::string listen = "127.0.0.1:8080";
  int threads = 0;  // 0: one per core
  std::int64_t max_body_bytes = 16 * 1024 * 1024;
  std::int64_t max_header_bytes = 16 * 1024;
  std::int64_t read_timeout_ms = 30'000;
  std::int64_t idle_timeout_ms = 75'000;
  std::int64_t max_connections = 10'000;
  std::int64_t drain_timeout_ms = 30'000;
  // After the first stop signal: /readyz answers 503 while the listener keeps accepting.
  std::int64_t drain_delay_ms = 5'000;
};

struct Ledger {
  std::string path;              // SQLite file; empty: spend kept in memory only
  std::int64_t flush_ms = 1000;  // rows are written at least this often
};

struct Log {
  std::string access_log = "-";  // "-": stdout; "": off; else a file path (appended)
};

// A webhook: events POSTed as JSON, signed with HMAC-SHA256 when a secret is set.
struct Hook {
  std::string url;                  // http(s)://host[:port]/path
  std::vector<std::string> events;  // of kHookEvents
  std::string secret_env;           // the secret is read from this variable; empty: unsigned
  int line = 0;
};

// The events a hook may ask for (DESIGN: fallback, all_failed, band, bypass, breaker, budget,
// drift); backstop sends those it produces.
inline constexpr std::string_view kHookEvents[] = {"fallback", "all_failed", "band", "bypass",
                                                   "breaker",  "budget",     "drift"};

// One client key of the `auth:` block. Exactly one of key_env and key_sha256 is set.
struct ClientKey {
  std::string name;                    // what logs, the ledger and reports show; never the key
  std::string key_env;                 // the variable holding the key
  std::string key_sha256;              // or the key's SHA-256, 64 lowercase hex digits
  bool all_workloads = false;          // workloads: all
  std::vector<std::string> workloads;  // else the workloads it may use
  std::optional<Budget> budget;        // absent: no limit; exceeded: its requests get 429
  int line = 0;
};

// The `auth:` block. `enabled` is false when it is absent: then no key is asked for.
struct Auth {
  bool enabled = false;
  std::vector<ClientKey> keys;
  std::string metrics_key_env;  // the bearer /metrics asks for; empty: /metrics is open
};

// The `plan:` block: the self-hosted node `backstop plan` prices (its flags override each).
struct Plan {
  std::optional<double> gpu_hour_usd;       // all-in USD per GPU-hour
  std::optional<std::int64_t> gpus;         // GPUs per node
  std::optional<double> tokens_per_second;  // a node's sustained throughput at full load
  std::optional<double> utilization;        // the share of it in use (0.01..1)
};

// A validated, immutable configuration. Built once, shared as shared_ptr<const Config>.
struct Config {
  std::string file;  // where it came from, for messages
  Server server;
  Ledger ledger;
  Log log;
  Auth auth;
  std::vector<Provider> providers;  // in file order
  std::vector<Workload> workloads;  // in file order
  std::vector<Hook> hooks;
  Plan plan;

  [[nodiscard]] const Provider* find_provider(std::string_view name) const;
  [[nodiscard]] const Workload* find_workload(std::string_view name) const;
};

// One problem in a config file: "file:line: path: message".
struct ConfigError {
  std::string file;
  int line = 0;
  std::string path;  // "workloads.agentic.route[1]"
  std::string message;

  [[nodiscard]] std::string to_string() const;
};

// Parses and validates YAML text; `file` is used in messages only. Collects every error
// it can find rather than stopping at the first. Unknown keys are errors.
struct LoadResult {
  std::shared_ptr<const Config> config;  // null when errors is not empty
  std::vector<ConfigError> errors;
};
// What a config is checked against besides its own rules.
struct ParseOptions {
  // The names a provider's `kind` may take besides "simulated": the dialects with an upstream
  // side, from the composition root's registry (dialects::Registry::upstream_kinds()).
  // Empty: any name is taken, and the gateway refuses an unknown one when it starts.
  std::vector<std::string> kinds;
};

[[nodiscard]] LoadResult parse(std::string_view yaml, std::string_view file,
                               const ParseOptions& options = {});

// Reads and parses a file. A missing or unreadable file is one error at line 0.
[[nodiscard]] LoadResult load_file(const std::string& path, const ParseOptions& options = {});

// Splits a listen address "HOST:PORT" ("[::1]:8080": the brackets are removed; port 0: any
// free port). kInvalidArgument naming the address when it is malformed.
[[nodiscard]] core::Result<std::pair<std::string, std::uint16_t>> split_listen(
    std::string_view listen);

// The config `backstop demo` runs on: simulated primary and fallback, three workloads.
[[nodiscard]] std::string_view demo_yaml();

}  // namespace backstop::config
