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
      # A bad deploy: from its 40th call to its 90th the primary fails most tool calls,
      # then it is fixed and answers cleanly.
      episodes:
        - {from_call: 40, to_call: 90, faults: {schema: 0.6, invalid_json: 0.3}}
        - {from_call: 90, to_call: 1000000, faults: {no_tool_call: 0.02, schema: 0.02}}
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
    # Acts on its numbers: bypasses the primary while its fallback rate is above 30 %, half
    # of the requests still probing it, and restores it once the probes pass again.
    # A short window (100 ms buckets) so that a few seconds of demo can see both changes.
    bands: {window_s: 6}
    adapt: {bypass_above: 0.30, restore_below: 0.20, min_requests: 20, probe: 0.5}
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
