#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backstop_test_paths.h"

namespace backstop::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The kinds a gateway built with the two upstream dialects takes.
const ParseOptions kTwoDialects{{"openai", "anthropic"}};

LoadResult load(std::string_view yaml) { return parse(yaml, "test.yaml", kTwoDialects); }

// Every error as "file:line: path: message", in the order reported.
std::vector<std::string> errors_of(const LoadResult& result) {
  std::vector<std::string> out;
  for (const ConfigError& e : result.errors) out.push_back(e.to_string());
  return out;
}

// The smallest valid config, with `extra` appended at the end (top level).
constexpr std::string_view kMinimal = R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a]}
)";

TEST(ConfigParse, FullConfigFillsEveryField) {
  constexpr std::string_view kYaml = R"(listen: 0.0.0.0:9090
threads: 4
server:
  max_body_bytes: 1000
  max_header_bytes: 2000
  read_timeout_ms: 3000
  idle_timeout_ms: 4000
  max_connections: 50
  drain_timeout_ms: 6000
ledger: {path: /var/lib/backstop/spend.db, flush_ms: 250}
log: {access_log: /var/log/backstop.log}
providers:
  v4-flash:
    kind: openai
    base_url: http://127.0.0.1:8000/v1
    model: deepseek-ai/DeepSeek-V4-Flash
    api_key_env: V4_API_KEY
    ca_file: /etc/ssl/extra.pem
    timeout_ms: 30000
    connect_timeout_ms: 2500
    first_token_timeout_ms: 8000
    idle_timeout_ms: 20000
    max_tokens: 8192
    price: {input: 0.14, output: 0.28, cached_input: 0.014}
  claude:
    kind: anthropic
    base_url: https://api.anthropic.com
    model: claude-sonnet-4-5
    api_key_env: ANTHROPIC_API_KEY
    anthropic_version: "2024-01-01"
    price: {input: 3.0, output: 15}
  sim:
    kind: simulated
    model: fake
    simulation:
      latency_p50_ms: 40
      latency_p99_ms: 250.5
      seed: 7
      faults: {no_tool_call: 0.1, unknown_tool: 0.2, invalid_json: 0.03, schema: 0.04,
               empty: 0.05, truncated: 0.06, rate_limited: 0.07, server_error: 0.08,
               timeout: 0.09}
workloads:
  agentic:
    route: [v4-flash, claude]
    validate:
      tool_call: required
      tool_names: declared
      arguments: schema
      allow_truncated: true
    retries: {max: 2, base_backoff_ms: 50, max_backoff_ms: 400, retry_after_cap_ms: 0}
    deadline_ms: 90000
    bands: {move_above: 0.4, underused_below: 0.02, healthy_low: 0.05, healthy_high: 0.3,
            window_s: 120}
  extract:
    route: [sim]
    validate: {tool_call: optional, tool_names: [lookup, search], arguments: json,
               content: json}
  docs-qa:
    route: [claude]
)";
  LoadResult result = parse(kYaml, "full.yaml");
  ASSERT_THAT(errors_of(result), ElementsAre());
  ASSERT_NE(result.config, nullptr);
  const Config& c = *result.config;
  EXPECT_EQ(c.file, "full.yaml");
  EXPECT_EQ(c.server.listen, "0.0.0.0:9090");
  EXPECT_EQ(c.server.threads, 4);
  EXPECT_EQ(c.server.max_body_bytes, 1000);
  EXPECT_EQ(c.server.max_header_bytes, 2000);
  EXPECT_EQ(c.server.read_timeout_ms, 3000);
  EXPECT_EQ(c.server.idle_timeout_ms, 4000);
  EXPECT_EQ(c.server.max_connections, 50);
  EXPECT_EQ(c.server.drain_timeout_ms, 6000);
  EXPECT_EQ(c.ledger.path, "/var/lib/backstop/spend.db");
  EXPECT_EQ(c.ledger.flush_ms, 250);
  EXPECT_EQ(c.log.access_log, "/var/log/backstop.log");

  ASSERT_EQ(c.providers.size(), 3u);
  const Provider& flash = c.providers[0];
  EXPECT_EQ(flash.name, "v4-flash");
  EXPECT_EQ(flash.line, 13);
  EXPECT_EQ(flash.kind, ProviderKind::kHttp);
  EXPECT_EQ(flash.dialect, "openai");
  EXPECT_EQ(flash.base_url, "http://127.0.0.1:8000/v1");
  EXPECT_EQ(flash.model, "deepseek-ai/DeepSeek-V4-Flash");
  EXPECT_EQ(flash.api_key_env, "V4_API_KEY");
  EXPECT_EQ(flash.ca_file, "/etc/ssl/extra.pem");
  EXPECT_EQ(flash.timeout_ms, 30000);
  EXPECT_EQ(flash.connect_timeout_ms, 2500);
  EXPECT_EQ(flash.first_token_timeout_ms, 8000);
  EXPECT_EQ(flash.idle_timeout_ms, 20000);
  EXPECT_EQ(flash.max_tokens, 8192);
  EXPECT_EQ(flash.anthropic_version, "2023-06-01");
  EXPECT_EQ(flash.price.input, 140000);
  EXPECT_EQ(flash.price.output, 280000);
  EXPECT_EQ(flash.price.cached_input, 14000);

  const Provider& claude = c.providers[1];
  EXPECT_EQ(claude.name, "claude");
  EXPECT_EQ(claude.kind, ProviderKind::kHttp);
  EXPECT_EQ(claude.dialect, "anthropic");
  EXPECT_EQ(claude.base_url, "https://api.anthropic.com");
  EXPECT_EQ(claude.anthropic_version, "2024-01-01");
  EXPECT_EQ(claude.price.input, 3000000);
  EXPECT_EQ(claude.price.output, 15000000);
  EXPECT_EQ(claude.price.cached_input, std::nullopt);
  EXPECT_EQ(claude.connect_timeout_ms, 5000);       // default
  EXPECT_EQ(claude.first_token_timeout_ms, 10000);  // default
  EXPECT_EQ(claude.idle_timeout_ms, 30000);         // default
  EXPECT_EQ(claude.timeout_ms, 600000);             // default
  EXPECT_EQ(claude.max_tokens, 4096);               // default

  const Provider& sim = c.providers[2];
  EXPECT_EQ(sim.kind, ProviderKind::kSimulated);
  EXPECT_EQ(sim.base_url, "");
  EXPECT_EQ(sim.simulation.latency_p50_ms, 40);
  EXPECT_EQ(sim.simulation.latency_p99_ms, 250.5);
  EXPECT_EQ(sim.simulation.seed, 7u);
  EXPECT_EQ(sim.simulation.no_tool_call, 0.1);
  EXPECT_EQ(sim.simulation.unknown_tool, 0.2);
  EXPECT_EQ(sim.simulation.invalid_json, 0.03);
  EXPECT_EQ(sim.simulation.schema, 0.04);
  EXPECT_EQ(sim.simulation.empty, 0.05);
  EXPECT_EQ(sim.simulation.truncated, 0.06);
  EXPECT_EQ(sim.simulation.rate_limited, 0.07);
  EXPECT_EQ(sim.simulation.server_error, 0.08);
  EXPECT_EQ(sim.simulation.timeout, 0.09);

  ASSERT_EQ(c.workloads.size(), 3u);
  const Workload& agentic = c.workloads[0];
  EXPECT_EQ(agentic.name, "agentic");
  EXPECT_EQ(agentic.line, 43);
  EXPECT_THAT(agentic.route, ElementsAre("v4-flash", "claude"));
  EXPECT_TRUE(agentic.validate.enabled);
  EXPECT_EQ(agentic.validate.tool_call, ToolCallCheck::kRequired);
  EXPECT_TRUE(agentic.validate.tool_names_declared);
  EXPECT_THAT(agentic.validate.tool_names, ElementsAre());
  EXPECT_EQ(agentic.validate.arguments, ArgumentsCheck::kSchema);
  EXPECT_EQ(agentic.validate.content, ContentCheck::kOff);
  EXPECT_TRUE(agentic.validate.allow_truncated);
  EXPECT_EQ(agentic.retries.max, 2);
  EXPECT_EQ(agentic.retries.base_backoff_ms, 50);
  EXPECT_EQ(agentic.retries.max_backoff_ms, 400);
  EXPECT_EQ(agentic.retries.retry_after_cap_ms, 0);
  EXPECT_EQ(agentic.deadline_ms, 90000);
  EXPECT_EQ(c.workloads[1].deadline_ms, 120000);  // default
  EXPECT_EQ(agentic.bands.move_above, 0.4);
  EXPECT_EQ(agentic.bands.underused_below, 0.02);
  EXPECT_EQ(agentic.bands.healthy_low, 0.05);
  EXPECT_EQ(agentic.bands.healthy_high, 0.3);
  EXPECT_EQ(agentic.bands.window_s, 120);

  const Workload& extract = c.workloads[1];
  EXPECT_EQ(extract.validate.tool_call, ToolCallCheck::kOptional);
  EXPECT_FALSE(extract.validate.tool_names_declared);
  EXPECT_THAT(extract.validate.tool_names, ElementsAre("lookup", "search"));
  EXPECT_EQ(extract.validate.arguments, ArgumentsCheck::kJson);
  EXPECT_EQ(extract.validate.content, ContentCheck::kJson);
  EXPECT_FALSE(extract.validate.allow_truncated);

  const Workload& docs = c.workloads[2];
  EXPECT_FALSE(docs.validate.enabled);  // no validate block: no checks at all
  EXPECT_EQ(docs.retries.max, 0);
  EXPECT_EQ(docs.bands.move_above, 0.30);

  EXPECT_EQ(c.find_provider("claude"), &claude);
  EXPECT_EQ(c.find_provider("nope"), nullptr);
  EXPECT_EQ(c.find_workload("docs-qa"), &docs);
  EXPECT_EQ(c.find_workload("claude"), nullptr);
}

TEST(ConfigParse, DefaultsWhenOptionalSectionsAreAbsent) {
  LoadResult result = load(kMinimal);
  ASSERT_THAT(errors_of(result), ElementsAre());
  const Config& c = *result.config;
  EXPECT_EQ(c.server.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.server.threads, 0);
  EXPECT_EQ(c.log.access_log, "-");
  EXPECT_EQ(c.ledger.path, "");
  EXPECT_EQ(c.ledger.flush_ms, 1000);
  EXPECT_EQ(c.providers[0].simulation.seed, 1u);
}

TEST(ConfigParse, HooksAreReadWithTheirEventsAndSecretVariable) {
  LoadResult result = load(std::string(kMinimal) + R"(hooks:
  - {url: "https://hooks.example.com/b", events: [fallback, all_failed], secret_env: HOOK_SECRET}
  - {url: "http://127.0.0.1:9009/", events: [breaker]}
)");
  ASSERT_THAT(errors_of(result), ElementsAre());
  const Config& c = *result.config;
  ASSERT_EQ(c.hooks.size(), 2u);
  EXPECT_EQ(c.hooks[0].url, "https://hooks.example.com/b");
  EXPECT_THAT(c.hooks[0].events, ElementsAre("fallback", "all_failed"));
  EXPECT_EQ(c.hooks[0].secret_env, "HOOK_SECRET");
  EXPECT_EQ(c.hooks[1].secret_env, "");
}

TEST(ConfigParse, HookErrorsNameTheLineAndPath) {
  LoadResult result = load(std::string(kMinimal) + R"(hooks:
  - {url: "ftp://x/", events: [fallback, oops]}
  - {events: [fallback]}
)");
  EXPECT_THAT(
      errors_of(result),
      ElementsAre("test.yaml:6: hooks[0].url: must be an http:// or https:// URL, got \"ftp://x/\"",
                  "test.yaml:6: hooks[0].events[1]: must be one of fallback, all_failed, "
                  "band, bypass, breaker, budget, drift; got \"oops\"",
                  "test.yaml:7: hooks[1]: missing required key \"url\""));
}

TEST(ConfigParse, EmptyValidateBlockIsEnabledWithNoChecks) {
  LoadResult result = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a], validate: {}}
  v:
    route: [a]
    validate:
)");
  ASSERT_THAT(errors_of(result), ElementsAre());
  for (const Workload& w : result.config->workloads) {
    EXPECT_TRUE(w.validate.enabled) << w.name;
    EXPECT_EQ(w.validate.tool_call, ToolCallCheck::kOff);
    EXPECT_EQ(w.validate.content, ContentCheck::kOff);
  }
}

TEST(ConfigParse, DemoConfigIsValid) {
  LoadResult result = parse(demo_yaml(), "<demo>");
  ASSERT_THAT(errors_of(result), ElementsAre());
  const Config& c = *result.config;
  EXPECT_EQ(c.server.listen, "127.0.0.1:0");
  EXPECT_EQ(c.server.threads, 2);
  EXPECT_EQ(c.ledger.path, "");
  EXPECT_EQ(c.log.access_log, "");
  const Provider* flash = c.find_provider("v4-flash");
  ASSERT_NE(flash, nullptr);
  EXPECT_EQ(flash->kind, ProviderKind::kSimulated);
  EXPECT_EQ(flash->model, "deepseek-v4-flash");
  EXPECT_EQ(flash->price.input, 140000);
  EXPECT_EQ(flash->simulation.seed, 7u);
  EXPECT_EQ(flash->simulation.schema, 0.05);
  const Provider* claude = c.find_provider("claude");
  ASSERT_NE(claude, nullptr);
  EXPECT_EQ(claude->price.output, 15000000);
  EXPECT_EQ(claude->simulation.latency_p50_ms, 400);
  const Workload* agentic = c.find_workload("agentic");
  ASSERT_NE(agentic, nullptr);
  EXPECT_EQ(agentic->validate.tool_call, ToolCallCheck::kRequired);
  EXPECT_EQ(agentic->retries.max, 1);
  EXPECT_EQ(c.find_workload("classify")->validate.content, ContentCheck::kSchema);
  EXPECT_EQ(c.find_workload("docs-qa")->validate.content, ContentCheck::kNonEmpty);
}

TEST(ConfigPrice, DecimalsAreExact) {
  auto input_price = [](std::string_view text) {
    std::string yaml = "providers:\n  a:\n    kind: simulated\n    model: m\n    price: {input: " +
                       std::string(text) + ", output: 0}\nworkloads:\n  w: {route: [a]}\n";
    return load(yaml);
  };
  struct Case {
    std::string_view text;
    std::int64_t micros;
  };
  for (Case c : {Case{"0.14", 140000}, Case{"3", 3000000}, Case{"3.0", 3000000},
                 Case{"15.000000", 15000000}, Case{"0.000001", 1}, Case{"0.1400000", 140000},
                 Case{"1234.5", 1234500000}, Case{"0", 0}, Case{".5", 500000}}) {
    LoadResult r = input_price(c.text);
    ASSERT_THAT(errors_of(r), ElementsAre()) << c.text;
    EXPECT_EQ(r.config->providers[0].price.input, c.micros) << c.text;
  }
  EXPECT_THAT(errors_of(input_price("0.0000001")),
              ElementsAre("test.yaml:5: providers.a.price.input: has more than 6 decimal places, "
                          "got \"0.0000001\""));
  EXPECT_THAT(
      errors_of(input_price("-1")),
      ElementsAre("test.yaml:5: providers.a.price.input: must not be negative, got \"-1\""));
  EXPECT_THAT(errors_of(input_price("1e-3")),
              ElementsAre("test.yaml:5: providers.a.price.input: must be a decimal number, got "
                          "\"1e-3\""));
  EXPECT_THAT(errors_of(input_price("cheap")),
              ElementsAre("test.yaml:5: providers.a.price.input: must be a decimal number, got "
                          "\"cheap\""));
}

TEST(ConfigPrice, InputAndOutputAreRequired) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    price: {input: 1}
workloads:
  w: {route: [a]}
)");
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:5: providers.a.price: missing required key \"output\""));
}

TEST(ConfigErrors, UnknownProviderInRouteSuggestsTheClosestName) {
  LoadResult r = load(R"(providers:
  v4-flash: {kind: simulated, model: m}
  claude: {kind: simulated, model: m}
workloads:
  agentic:
    route:
      - v4-flash
      - claud
      - gpt
)");
  EXPECT_EQ(r.config, nullptr);
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:8: workloads.agentic.route[1]: unknown provider \"claud\" "
                          "(did you mean \"claude\"?)",
                          "test.yaml:9: workloads.agentic.route[2]: unknown provider \"gpt\""));
}

TEST(ConfigErrors, RouteChecksProvidersDefinedLaterInTheFile) {
  LoadResult r = load(R"(workloads:
  w: {route: [late]}
providers:
  late: {kind: simulated, model: m}
)");
  EXPECT_THAT(errors_of(r), ElementsAre());
}

TEST(ConfigErrors, ProviderListedTwiceInRoute) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a, a]}
)");
  EXPECT_THAT(errors_of(r), ElementsAre("test.yaml:4: workloads.w.route[1]: provider \"a\" is "
                                        "listed twice (first at workloads.w.route[0])"));
}

TEST(ConfigErrors, EmptyOrMissingRoute) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: []}
  v: {validate: {}}
  u: {route: a}
)");
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:4: workloads.w.route: must name at least one provider",
                          "test.yaml:5: workloads.v: missing required key \"route\"",
                          "test.yaml:6: workloads.u.route: must be a list of provider names, got "
                          "\"a\""));
}

TEST(ConfigErrors, UnknownKeyNamesTheKeyAndTheAllowedKeys) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    timout_ms: 100
workloads:
  w: {route: [a]}
colour: blue
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre("test.yaml:5: providers.a.timout_ms: unknown key \"timout_ms\" (did you mean "
                  "\"timeout_ms\"?); allowed keys: kind, base_url, model, api_key_env, ca_file, "
                  "connect_timeout_ms, first_token_timeout_ms, idle_timeout_ms, timeout_ms, "
                  "max_tokens, anthropic_version, price, simulation, breaker, max_in_flight, stack",
                  "test.yaml:8: colour: unknown key \"colour\"; allowed keys: listen, threads, "
                  "server, ledger, log, providers, workloads, hooks, auth, plan"));
}

TEST(ConfigErrors, KeyInTheFileGetsTheEnvironmentHint) {
  LoadResult r = load(R"(providers:
  a:
    kind: openai
    base_url: https://api.example.com/v1
    model: m
    api_key: sk-123
workloads:
  w: {route: [a]}
)");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 6);
  EXPECT_EQ(r.errors[0].path, "providers.a.api_key");
  EXPECT_THAT(r.errors[0].message,
              HasSubstr("unknown key \"api_key\" (keys are read from the environment: use "
                        "api_key_env)"));
  // The secret itself never appears in a message.
  EXPECT_THAT(r.errors[0].message, ::testing::Not(HasSubstr("sk-123")));
}

TEST(ConfigErrors, UnknownKeysInNestedBlocks) {
  LoadResult r = load(R"(server: {max_body: 1}
ledger: {file: x}
log: {acces_log: x}
providers:
  a:
    kind: simulated
    model: m
    price: {input: 1, output: 1, cache: 1}
    simulation: {faults: {slow: 0.1}, jitter: 1}
workloads:
  w:
    route: [a]
    validate: {tools: declared}
    retries: {maximum: 1}
    bands: {high: 1}
)");
  std::vector<std::string> paths;
  for (const ConfigError& e : r.errors) paths.push_back(std::to_string(e.line) + " " + e.path);
  EXPECT_THAT(paths,
              ElementsAre("1 server.max_body", "2 ledger.file", "3 log.acces_log",
                          "8 providers.a.price.cache", "9 providers.a.simulation.faults.slow",
                          "9 providers.a.simulation.jitter", "13 workloads.w.validate.tools",
                          "14 workloads.w.retries.maximum", "15 workloads.w.bands.high"));
}

TEST(ConfigErrors, WrongTypes) {
  LoadResult r = load(R"(threads: many
providers:
  v4-flash:
    kind: simulated
    model: [m]
    timeout_ms: fast
    max_tokens: 1.5
workloads:
  w:
    route: [v4-flash]
    validate: {allow_truncated: yes}
    bands: {move_above: high}
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre("test.yaml:1: threads: must be an integer, got \"many\"",
                  "test.yaml:5: providers.v4-flash.model: must be a string, got a list",
                  "test.yaml:6: providers.v4-flash.timeout_ms: must be an integer, got \"fast\"",
                  "test.yaml:7: providers.v4-flash.max_tokens: must be an integer, got \"1.5\"",
                  "test.yaml:11: workloads.w.validate.allow_truncated: must be true or false, got "
                  "\"yes\"",
                  "test.yaml:12: workloads.w.bands.move_above: must be a number, got \"high\""));
}

TEST(ConfigErrors, BadEnumValuesListTheAllowedValues) {
  LoadResult r = load(R"(providers:
  a: {kind: vllm, model: m}
workloads:
  w:
    route: [a]
    validate:
      tool_call: always
      tool_names: some
      arguments: yaml
      content: text
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre(
          "test.yaml:2: providers.a.kind: must be one of openai, anthropic, simulated, got "
          "\"vllm\"",
          "test.yaml:7: workloads.w.validate.tool_call: must be one of required, optional, got "
          "\"always\"",
          "test.yaml:8: workloads.w.validate.tool_names: must be \"declared\" or a non-empty list "
          "of tool names, got \"some\"",
          "test.yaml:9: workloads.w.validate.arguments: must be one of none, json, schema, got "
          "\"yaml\"",
          "test.yaml:10: workloads.w.validate.content: must be one of non_empty, json, schema, "
          "got \"text\""));
}

TEST(ConfigParse, ProviderKindIsAnyDialectTheOptionsName) {
  constexpr std::string_view kYaml = R"(providers:
  a: {kind: openai_responses, base_url: "http://127.0.0.1:1/v1", model: m}
workloads:
  w: {route: [a]}
)";
  EXPECT_FALSE(errors_of(load(kYaml)).empty());
  LoadResult r = parse(kYaml, "test.yaml", ParseOptions{{"openai", "openai_responses"}});
  ASSERT_TRUE(r.errors.empty()) << errors_of(r).front();
  EXPECT_EQ(r.config->providers.front().kind, ProviderKind::kHttp);
  EXPECT_EQ(r.config->providers.front().dialect, "openai_responses");
}

TEST(ConfigParse, StreamModeIsAutoUnlessSet) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a]}
  held: {route: [a], stream_mode: buffer}
  passed: {route: [a], stream_mode: pass, validate: {content: non_empty}}
  chosen: {route: [a], stream_mode: auto}
)");
  ASSERT_TRUE(r.errors.empty()) << errors_of(r).front();
  EXPECT_EQ(r.config->find_workload("w")->stream_mode, StreamMode::kAuto);
  EXPECT_EQ(r.config->find_workload("held")->stream_mode, StreamMode::kBuffer);
  EXPECT_EQ(r.config->find_workload("passed")->stream_mode, StreamMode::kPass);
  EXPECT_EQ(r.config->find_workload("chosen")->stream_mode, StreamMode::kAuto);
}

TEST(ConfigErrors, StreamModeMustBeAutoBufferOrPass) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a], stream_mode: hold}
  v: {route: [a], stream_mode: [buffer]}
)");
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:4: workloads.w.stream_mode: must be one of auto, buffer, "
                          "pass, got \"hold\"",
                          HasSubstr("test.yaml:5: workloads.v.stream_mode: must be")));
}

TEST(ConfigErrors, DuplicateKeysAreReportedAtTheSecondOccurrence) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    model: n
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a], route: [a]}
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre("test.yaml:5: providers.a.model: duplicate key \"model\" (first at line 4)",
                  "test.yaml:6: providers.a: duplicate key \"a\" (first at line 2)",
                  "test.yaml:8: workloads.w.route: duplicate key \"route\" (first at line 8)"));
}

TEST(ConfigErrors, ProviderRequirements) {
  LoadResult r = load(R"(providers:
  a:
    kind: openai
    model: m
  b:
    kind: anthropic
    base_url: api.anthropic.com
    model: m
    api_key_env: my-key
  c:
    base_url: http://x
  d:
    kind: openai
    base_url: http://x/v1
    model: m
    timeout_ms: 0
    simulation: {seed: 1}
workloads:
  w: {route: [a]}
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre("test.yaml:2: providers.a: missing required key \"base_url\"",
                  "test.yaml:7: providers.b.base_url: must be an http:// or https:// URL, got "
                  "\"api.anthropic.com\"",
                  "test.yaml:9: providers.b.api_key_env: must be the name of an environment "
                  "variable ([A-Z_][A-Z0-9_]*); the value is not shown, in case it is the key "
                  "itself",
                  "test.yaml:10: providers.c: missing required key \"kind\"",
                  "test.yaml:10: providers.c: missing required key \"model\"",
                  "test.yaml:16: providers.d.timeout_ms: must be at least 1, got 0",
                  "test.yaml:17: providers.d.simulation: is only allowed for kind simulated"));
}

TEST(ConfigErrors, APartOfTheCallMayNotExceedTheWholeCall) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    timeout_ms: 1000
    connect_timeout_ms: 1000
    first_token_timeout_ms: 1001
    idle_timeout_ms: 0
  b:
    kind: simulated
    model: m
    idle_timeout_ms: 700000
workloads:
  w: {route: [a, b], deadline_ms: 0}
)");
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:7: providers.a.first_token_timeout_ms: first_token_timeout_ms "
                          "(1001) must not exceed timeout_ms (1000)",
                          "test.yaml:8: providers.a.idle_timeout_ms: must be at least 1, got 0",
                          "test.yaml:12: providers.b.idle_timeout_ms: idle_timeout_ms (700000) "
                          "must not exceed timeout_ms (600000)",
                          "test.yaml:14: workloads.w.deadline_ms: must be at least 1, got 0"));
}

TEST(ConfigParse, AShortTimeoutAloneIsValid) {
  // The defaults of its parts (connect 5 s, first token 10 s, idle 30 s) are cut to it.
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m, timeout_ms: 300}
workloads:
  w: {route: [a]}
)");
  ASSERT_THAT(errors_of(r), ElementsAre());
  EXPECT_EQ(r.config->providers[0].timeout_ms, 300);
}

TEST(ConfigErrors, SimulationRanges) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    simulation:
      latency_p50_ms: 100
      latency_p99_ms: 50
      faults: {empty: 1.5}
  b:
    kind: simulated
    model: m
    simulation:
      faults:
        empty: 0.5
        timeout: 0.25
        server_error: 0.5
workloads:
  w: {route: [a, b]}
)");
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:7: providers.a.simulation.latency_p99_ms: latency_p99_ms (50) "
                          "must be at least latency_p50_ms (100)",
                          "test.yaml:8: providers.a.simulation.faults.empty: must be between 0 "
                          "and 1, got 1.5",
                          "test.yaml:14: providers.b.simulation.faults: the fault rates sum to "
                          "1.25, more than 1"));
}

TEST(ConfigErrors, RetriesAndBandsRanges) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w:
    route: [a]
    retries: {max: 11}
  v:
    route: [a]
    retries:
      base_backoff_ms: 500
      max_backoff_ms: 100
    bands:
      move_above: 0.1
      underused_below: 0.2
      healthy_low: 0.3
      healthy_high: 0.2
      window_s: 0
)");
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:6: workloads.w.retries.max: must be between 0 and 10, got 11",
                          "test.yaml:11: workloads.v.retries.max_backoff_ms: max_backoff_ms (100) "
                          "must be at least base_backoff_ms (500)",
                          "test.yaml:14: workloads.v.bands.underused_below: underused_below (0.2) "
                          "must be less than move_above (0.1)",
                          "test.yaml:15: workloads.v.bands.healthy_low: healthy_low (0.3) must "
                          "not exceed healthy_high (0.2)",
                          "test.yaml:17: workloads.v.bands.window_s: must be at least 1, got 0"));
}

TEST(ConfigParse, BreakerAndAdaptAreReadAndOptional) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    breaker: {failures: 3, cooldown_ms: 2000}
  b: {kind: simulated, model: m}
workloads:
  w:
    route: [a, b]
    adapt: {bypass_above: 0.4, restore_below: 0.1, min_requests: 20, probe: 0.25}
  v: {route: [b]}
)");
  ASSERT_TRUE(r.config) << errors_of(r).front();
  const Config& c = *r.config;
  ASSERT_TRUE(c.providers[0].breaker.has_value());
  EXPECT_EQ(c.providers[0].breaker->failures, 3);
  EXPECT_EQ(c.providers[0].breaker->cooldown_ms, 2000);
  EXPECT_FALSE(c.providers[1].breaker.has_value());
  ASSERT_TRUE(c.workloads[0].adapt.has_value());
  EXPECT_DOUBLE_EQ(c.workloads[0].adapt->bypass_above, 0.4);
  EXPECT_DOUBLE_EQ(c.workloads[0].adapt->restore_below, 0.1);
  EXPECT_EQ(c.workloads[0].adapt->min_requests, 20);
  EXPECT_DOUBLE_EQ(c.workloads[0].adapt->probe, 0.25);
  EXPECT_FALSE(c.workloads[1].adapt.has_value());
}

TEST(ConfigErrors, BreakerAndAdaptRanges) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    breaker: {failures: 0, cooldown_ms: 0, open: 1}
workloads:
  w:
    route: [a]
    adapt: {bypass_above: 0.2, restore_below: 0.3, min_requests: 0}
  v:
    route: [a]
    adapt: {probe: 0, bypass_above: 2}
  u:
    route: [a]
    adapt: {probe: 0}
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre(
          "test.yaml:5: providers.a.breaker.failures: must be between 1 and 1000, got 0",
          "test.yaml:5: providers.a.breaker.cooldown_ms: must be at least 1, got 0",
          "test.yaml:5: providers.a.breaker.open: unknown key \"open\"; allowed keys: failures, "
          "cooldown_ms",
          "test.yaml:9: workloads.w.adapt.min_requests: must be at least 1, got 0",
          "test.yaml:9: workloads.w.adapt.restore_below: restore_below (0.3) must be less than "
          "bypass_above (0.2)",
          "test.yaml:12: workloads.v.adapt.bypass_above: must be between 0 and 1, got 2",
          "test.yaml:15: workloads.u.adapt.probe: must be more than 0: probes are how a bypassed "
          "primary is restored"));
}

TEST(ConfigParse, SessionsHedgeShadowAndMaxInFlightAreRead) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m, max_in_flight: 8}
  b: {kind: simulated, model: m}
  c: {kind: simulated, model: m}
workloads:
  w:
    route: [a, b]
    sessions: {retry_threshold: 3, window_s: 60, escalate_s: 120}
    hedge: {after_ms: 1500}
    shadow: {provider: c, sample: 0.25}
  v:
    route: [a, b]
    hedge: {after: p95}
)");
  ASSERT_TRUE(r.config) << errors_of(r).front();
  const Config& c = *r.config;
  EXPECT_EQ(c.providers[0].max_in_flight, 8);
  EXPECT_EQ(c.providers[1].max_in_flight, 0);
  const Workload& w = c.workloads[0];
  ASSERT_TRUE(w.sessions && w.hedge && w.shadow);
  EXPECT_EQ(w.sessions->retry_threshold, 3);
  EXPECT_EQ(w.sessions->window_s, 60);
  EXPECT_EQ(w.sessions->escalate_s, 120);
  EXPECT_EQ(w.hedge->after_ms, 1500);
  EXPECT_FALSE(w.hedge->p95);
  EXPECT_EQ(w.shadow->provider, "c");
  EXPECT_DOUBLE_EQ(w.shadow->sample, 0.25);
  ASSERT_TRUE(c.workloads[1].hedge);
  EXPECT_TRUE(c.workloads[1].hedge->p95);
  EXPECT_FALSE(c.workloads[1].sessions || c.workloads[1].shadow);
}

TEST(ConfigParse, SimulationEpisodesAreRead) {
  LoadResult r = load(R"(providers:
  a:
    kind: simulated
    model: m
    simulation:
      episodes:
        - {from_call: 100, to_call: 200, faults: {schema: 0.6}}
        - {to_call: 0}
workloads:
  w: {route: [a]}
)");
  EXPECT_THAT(errors_of(r),
              ElementsAre("test.yaml:8: providers.a.simulation.episodes[1]: to_call must be more "
                          "than from_call"));
  r = load(R"(providers:
  a:
    kind: simulated
    model: m
    simulation:
      episodes: [{from_call: 100, to_call: 200, faults: {schema: 0.6}}]
workloads:
  w: {route: [a]}
)");
  ASSERT_TRUE(r.config) << errors_of(r).front();
  ASSERT_EQ(r.config->providers[0].simulation.episodes.size(), 1u);
  const config::SimulationEpisode& e = r.config->providers[0].simulation.episodes[0];
  EXPECT_EQ(e.from_call, 100);
  EXPECT_EQ(e.to_call, 200);
  EXPECT_DOUBLE_EQ(e.schema, 0.6);
}

TEST(ConfigErrors, SessionsHedgeAndShadowRanges) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m, max_in_flight: 0}
workloads:
  w:
    route: [a]
    sessions: {retry_threshold: -1, window_s: 0}
    hedge: {after: p99}
    shadow: {provider: aa, sample: 2}
  v:
    route: [a]
    hedge: {after: p95, after_ms: 10}
    shadow: {sample: 0.1}
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre(
          "test.yaml:2: providers.a.max_in_flight: must be at least 1, got 0",
          "test.yaml:6: workloads.w.sessions.retry_threshold: must be between 0 and 1000, got -1",
          "test.yaml:6: workloads.w.sessions.window_s: must be at least 1, got 0",
          "test.yaml:7: workloads.w.hedge.after: must be p95 (or use after_ms), got \"p99\"",
          "test.yaml:8: workloads.w.shadow.sample: must be between 0 and 1, got 2",
          "test.yaml:8: workloads.w.shadow.provider: unknown provider \"aa\" (did you mean "
          "\"a\"?)",
          "test.yaml:11: workloads.v.hedge: takes after_ms or after, not both",
          "test.yaml:12: workloads.v.shadow: missing required key \"provider\""));
}

TEST(ConfigErrors, LedgerFlushMsRange) {
  EXPECT_THAT(errors_of(load(std::string(kMinimal) + "ledger:\n  flush_ms: 0\n")),
              ElementsAre("test.yaml:6: ledger.flush_ms: must be between 1 and 3600000, got 0"));
  EXPECT_THAT(errors_of(load(std::string(kMinimal) + "ledger: {flush_ms: soon}\n")),
              ElementsAre("test.yaml:5: ledger.flush_ms: must be an integer, got \"soon\""));
  EXPECT_THAT(errors_of(load(std::string(kMinimal) + "ledger: {flush_ms: 3600001}\n")),
              ElementsAre("test.yaml:5: ledger.flush_ms: must be between 1 and 3600000, got "
                          "3600001"));
}

TEST(ConfigErrors, TopLevelRequirements) {
  EXPECT_THAT(errors_of(load("listen: 127.0.0.1:80\n")),
              ElementsAre("test.yaml:1: missing required key \"providers\"",
                          "test.yaml:1: missing required key \"workloads\""));
  EXPECT_THAT(errors_of(load("")),
              ElementsAre("test.yaml:1: the config must be a map with providers and workloads, "
                          "got nothing"));
  EXPECT_THAT(errors_of(load("providers: {}\nworkloads:\n")),
              ElementsAre("test.yaml:1: providers: must define at least one provider",
                          "test.yaml:2: workloads: must define at least one workload"));
}

TEST(ConfigErrors, ListenMustBeHostAndPort) {
  std::string yaml = "listen: localhost\n" + std::string(kMinimal);
  EXPECT_THAT(errors_of(load(yaml)),
              ElementsAre("test.yaml:1: listen: must be HOST:PORT, got \"localhost\""));
  yaml = "listen: \"[::1]:8080\"\n" + std::string(kMinimal);
  EXPECT_EQ(load(yaml).config->server.listen, "[::1]:8080");
  yaml = "listen: 127.0.0.1:70000\n" + std::string(kMinimal);
  EXPECT_THAT(errors_of(load(yaml)),
              ElementsAre("test.yaml:1: listen: must be HOST:PORT, got \"127.0.0.1:70000\""));
}

TEST(ConfigParse, DrainDelayDefaultsToFiveSecondsAndMayBeZeroButNotNegative) {
  EXPECT_EQ(load(kMinimal).config->server.drain_delay_ms, 5000);
  std::string yaml = std::string(kMinimal) + "server: {drain_delay_ms: 0}\n";
  ASSERT_NE(load(yaml).config, nullptr);
  EXPECT_EQ(load(yaml).config->server.drain_delay_ms, 0);
  yaml = std::string(kMinimal) + "server: {drain_delay_ms: -1}\n";
  EXPECT_THAT(errors_of(load(yaml)),
              ElementsAre("test.yaml:5: server.drain_delay_ms: must be at least 0, got -1"));
}

TEST(ConfigErrors, AllErrorsAreCollectedInFileOrder) {
  LoadResult r = load(R"(threads: -1
providers:
  a:
    kind: simulated
    model: m
    price: {input: -0.5, output: 1}
workloads:
  w:
    route: [b]
    retries: {max: x}
    extra: 1
)");
  EXPECT_EQ(r.config, nullptr);
  std::vector<int> lines;
  for (const ConfigError& e : r.errors) lines.push_back(e.line);
  EXPECT_THAT(lines, ElementsAre(1, 6, 9, 10, 11));
  EXPECT_EQ(r.errors[2].to_string(),
            "test.yaml:9: workloads.w.route[0]: unknown provider \"b\" "
            "(did you mean \"a\"?)");
}

TEST(ConfigErrors, SyntaxErrorIsOneErrorWithItsLine) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a}
)");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].path, "");
  EXPECT_THAT(r.errors[0].message, HasSubstr("invalid YAML: "));
  EXPECT_EQ(r.config, nullptr);
}

TEST(ConfigErrors, HostileShapesAreErrorsNotExceptions) {
  for (std::string_view yaml :
       {"- 1\n- 2\n", "providers: [a, b]\nworkloads: 3\n", "providers: {a: 1}\nworkloads: {w: 2}\n",
        "providers: {a: {kind: simulated, model: m}}\nworkloads: {w: {route: [[a], {b: c}]}}\n",
        "? {a: 1}\n: 2\n", "{{{{", "providers: !!binary aGVsbG8=\n", "\t- x: y\n",
        "providers: &p {a: *p}\n", "threads: 99999999999999999999999\n"}) {
    LoadResult r;
    EXPECT_NO_THROW(r = load(yaml)) << yaml;
    EXPECT_EQ(r.config, nullptr) << yaml;
    EXPECT_FALSE(r.errors.empty()) << yaml;
    for (const ConfigError& e : r.errors) EXPECT_GE(e.line, 1) << e.to_string();
  }
}

TEST(ConfigLoadFile, MissingFileIsOneErrorAtLineZero) {
  LoadResult r = load_file("/nonexistent/backstop.yaml");
  EXPECT_EQ(r.config, nullptr);
  EXPECT_THAT(errors_of(r),
              ElementsAre("/nonexistent/backstop.yaml:0: cannot read config file: No such file "
                          "or directory"));
}

TEST(ConfigLoadFile, ReadsAndNamesTheFile) {
  std::filesystem::path path =
      std::filesystem::path(BACKSTOP_BINARY_DIR) / "config_test_load_file.yaml";
  {
    std::ofstream out(path);
    out << kMinimal << "threads: nope\n";
  }
  LoadResult r = load_file(path.string());
  std::filesystem::remove(path);
  EXPECT_THAT(errors_of(r),
              ElementsAre(path.string() + ":5: threads: must be an integer, got \"nope\""));
}

}  // namespace
}  // namespace backstop::config

namespace backstop::config {
namespace {

TEST(SplitListenTest, SplitsHostAndPort) {
  auto v4 = split_listen("127.0.0.1:8080");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->first, "127.0.0.1");
  EXPECT_EQ(v4->second, 8080);
  auto v6 = split_listen("[::1]:0");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 0);
  for (std::string_view bad :
       {"8080", ":8080", "::1:80", "[::1]80", "[]:80", "h:", "h:65536", "h:8o80"}) {
    auto r = split_listen(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, core::ErrorCode::kInvalidArgument);
  }
}

TEST(ConfigAuth, AbsentAuthAsksForNoKeys) {
  LoadResult r = load(kMinimal);
  ASSERT_TRUE(r.errors.empty());
  EXPECT_FALSE(r.config->auth.enabled);
}

TEST(ConfigAuth, KeysFromTheEnvironmentOrAsDigests) {
  LoadResult r = load(std::string(kMinimal) + R"(auth:
  keys:
    - {name: team-a, key_env: TEAM_A_KEY, workloads: [w]}
    - {name: ci, key_sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08, workloads: all}
  metrics_key_env: METRICS_KEY
)");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front().to_string();
  const Auth& auth = r.config->auth;
  EXPECT_TRUE(auth.enabled);
  EXPECT_EQ(auth.metrics_key_env, "METRICS_KEY");
  ASSERT_EQ(auth.keys.size(), 2u);
  EXPECT_EQ(auth.keys[0].name, "team-a");
  EXPECT_EQ(auth.keys[0].key_env, "TEAM_A_KEY");
  EXPECT_FALSE(auth.keys[0].all_workloads);
  EXPECT_THAT(auth.keys[0].workloads, ElementsAre("w"));
  EXPECT_EQ(auth.keys[1].name, "ci");
  EXPECT_EQ(auth.keys[1].key_sha256,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  EXPECT_TRUE(auth.keys[1].all_workloads);
}

TEST(ConfigAuth, EachKeyProblemNamesItsLineAndNeverTheValue) {
  LoadResult r = load(std::string(kMinimal) + R"(auth:
  keys:
    - {name: a, key_env: sk-live-secret, workloads: [w]}
    - {name: b, key_sha256: sk-live-other, workloads: [x]}
    - {name: a, key_env: A, key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, workloads: all}
    - {key_env: C, workloads: [w], quota: 1}
    - {name: d, workloads: none}
  metrics_key_env: 12
)");
  std::vector<std::string> errors = errors_of(r);
  EXPECT_THAT(
      errors,
      ElementsAre(
          "test.yaml:7: auth.keys[0].key_env: must be the name of an environment variable "
          "([A-Z_][A-Z0-9_]*); the value is not shown, in case it is the key itself",
          "test.yaml:8: auth.keys[1].key_sha256: must be a SHA-256 digest, 64 hex digits (echo -n "
          "KEY | sha256sum); the value is not shown, in case it is the key itself",
          "test.yaml:8: auth.keys[1].workloads[0]: unknown workload \"x\" (did you mean \"w\"?)",
          "test.yaml:9: auth.keys[2].key_sha256: key_env and key_sha256 exclude each other",
          "test.yaml:9: auth.keys[2]: key name \"a\" is used twice (first at line 7)",
          "test.yaml:10: auth.keys[3].quota: unknown key \"quota\"; allowed keys: name, key_env, "
          "key_sha256, workloads, budget",
          "test.yaml:10: auth.keys[3]: missing required key \"name\"",
          "test.yaml:11: auth.keys[4].workloads: must be \"all\" or a non-empty list of workload "
          "names, got \"none\"",
          "test.yaml:11: auth.keys[4]: needs one of key_env or key_sha256",
          "test.yaml:12: auth.metrics_key_env: must be the name of an environment variable "
          "([A-Z_][A-Z0-9_]*); the value is not shown, in case it is the key itself"));
  for (const std::string& e : errors) EXPECT_EQ(e.find("sk-live"), std::string::npos) << e;
}

TEST(ConfigAuth, AuthNeedsAtLeastOneKeyAndKnowsOnlyItsKeys) {
  EXPECT_THAT(errors_of(load(std::string(kMinimal) + "auth: {metrics_key_env: M, user: x}\n")),
              ElementsAre("test.yaml:5: auth.user: unknown key \"user\"; allowed keys: keys, "
                          "metrics_key_env",
                          "test.yaml:5: auth: missing required key \"keys\""));
  EXPECT_THAT(errors_of(load(std::string(kMinimal) + "auth: {keys: []}\n")),
              ElementsAre("test.yaml:5: auth.keys: must be a non-empty list of keys, got a list"));
}

TEST(ConfigBudget, WorkloadAndKeyBudgetsAreExactMicroDollars) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a], budget: {daily_usd: 50.25, on_exceeded: primary_only}}
  v: {route: [a], budget: {daily_usd: 0.000001}}
auth:
  keys:
    - {name: k, key_env: K, workloads: all, budget: {daily_usd: 20}}
)");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front().to_string();
  const Workload& w = *r.config->find_workload("w");
  ASSERT_TRUE(w.budget.has_value());
  EXPECT_EQ(w.budget->daily_micro_usd, 50'250'000);
  EXPECT_EQ(w.budget->on_exceeded, BudgetAction::kPrimaryOnly);
  EXPECT_EQ(r.config->find_workload("v")->budget->daily_micro_usd, 1);
  EXPECT_EQ(r.config->find_workload("v")->budget->on_exceeded, BudgetAction::kReject);
  ASSERT_TRUE(r.config->auth.keys[0].budget.has_value());
  EXPECT_EQ(r.config->auth.keys[0].budget->daily_micro_usd, 20'000'000);
}

TEST(ConfigBudget, BadBudgetsNameTheirLine) {
  LoadResult r = load(R"(providers:
  a: {kind: simulated, model: m}
workloads:
  w: {route: [a], budget: {daily_usd: -1, on_exceeded: queue}}
  v: {route: [a], budget: {limit: 3}}
auth:
  keys:
    - {name: k, key_env: K, workloads: all, budget: {daily_usd: 5, on_exceeded: primary_only}}
)");
  EXPECT_THAT(
      errors_of(r),
      ElementsAre("test.yaml:4: workloads.w.budget.daily_usd: must not be negative, got \"-1\"",
                  "test.yaml:4: workloads.w.budget.on_exceeded: must be one of reject, "
                  "primary_only, got \"queue\"",
                  "test.yaml:5: workloads.v.budget.limit: unknown key \"limit\"; allowed keys: "
                  "daily_usd, on_exceeded",
                  "test.yaml:5: workloads.v.budget: missing required key \"daily_usd\"",
                  "test.yaml:8: auth.keys[0].budget.on_exceeded: unknown key \"on_exceeded\"; "
                  "allowed keys: daily_usd"));
}

TEST(ConfigPlan, ThePlanBlockHoldsTheNodeAndKnowsOnlyItsKeys) {
  LoadResult r = load(std::string(kMinimal) +
                      "plan: {gpu_hour_usd: 2.5, gpus: 8, tokens_per_second: 20000, "
                      "utilization: 0.5}\n");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front().to_string();
  EXPECT_EQ(r.config->plan.gpu_hour_usd, 2.5);
  EXPECT_EQ(r.config->plan.gpus, 8);
  EXPECT_EQ(r.config->plan.tokens_per_second, 20000);
  EXPECT_EQ(r.config->plan.utilization, 0.5);
  EXPECT_FALSE(load(std::string(kMinimal)).config->plan.gpu_hour_usd.has_value());
  EXPECT_THAT(errors_of(load(std::string(kMinimal) + "plan: {gpus: 0, gpu_hour: 2}\n")),
              ElementsAre("test.yaml:5: plan.gpus: must be between 1 and 4096, got 0",
                          "test.yaml:5: plan.gpu_hour: unknown key \"gpu_hour\"; allowed keys: "
                          "gpu_hour_usd, gpus, tokens_per_second, utilization"));
}

}  // namespace
}  // namespace backstop::config
