#include <string_view>

#include "config/config.h"

namespace backstop::config {
namespace {

// A cheap, somewhat unreliable primary and a dependable, expensive fallback, both
// simulated, so that the demo shows fallbacks of every kind without network access.
constexpr std::string_view kDemoYaml = R"yaml(# backstop demo: simulated primary and fallback
listen: 127.0.0.1:0
threads: 2
ledger: {path: ""}      # spend kept in memory
log: {access_log: ""}   # no access log

providers:
  v4-flash:
    kind: simulated
    model: deepseek-v4-flash
    timeout_ms: 1500
    price: {input: 0.14, output: 0.28}
    simulation:
      latency_p50_ms: 40
      latency_p99_ms: 250
      seed: 7
      faults:
        no_tool_call: 0.04
        unknown_tool: 0.01
        invalid_json: 0.03
        schema: 0.05
        empty: 0.01
        truncated: 0.01
        rate_limited: 0.02
        server_error: 0.01
        timeout: 0.005
  claude:
    kind: simulated
    model: claude-sonnet-4-5
    price: {input: 3.0, output: 15.0}
    simulation:
      latency_p50_ms: 400
      latency_p99_ms: 1500
      seed: 11
      faults:
        invalid_json: 0.005
        rate_limited: 0.005
        server_error: 0.005

workloads:
  agentic:
    route: [v4-flash, claude]
    validate:
      tool_call: required
      tool_names: declared
      arguments: schema
    retries: {max: 1}
  classify:
    route: [v4-flash, claude]
    validate: {content: schema}
  docs-qa:
    route: [v4-flash, claude]
    validate: {content: non_empty}
)yaml";

}  // namespace

std::string_view demo_yaml() { return kDemoYaml; }

}  // namespace backstop::config
