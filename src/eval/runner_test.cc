#include "eval/runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "dialects/openai/openai.h"
#include "providers/simulated_provider.h"

namespace backstop::eval {
namespace {

constexpr std::string_view kConfig = R"yaml(
providers:
  sim: {kind: simulated, model: sim-1}
workloads:
  agentic:
    route: [sim]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
  qa:
    route: [sim]
)yaml";

// A weather case: the request offers get_weather, whose `city` must be a string.
std::string weather_line(std::string_view id, std::string_view expect = "{}") {
  return std::string(R"({"id": ")") + std::string(id) +
         R"(", "workload": "agentic", "request": {"messages": [{"role": "user", "content": "Paris?"}],)"
         R"( "tools": [{"type": "function", "function": {"name": "get_weather", "parameters":)"
         R"( {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]},)"
         R"( "expect": )" +
         std::string(expect) + "}\n";
}

std::shared_ptr<const config::Config> config() {
  auto loaded = config::parse(kConfig, "test.yaml");
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  return loaded.config;
}

Decoders openai_only() { return {{"openai", dialects::openai::decode_request}}; }

providers::SimulatedOptions simulated(providers::FaultRates rates = {}) {
  providers::SimulatedOptions o;
  o.name = "sim";
  o.model = "sim-1";
  o.seed = 3;
  o.timeout_ms = 0;
  o.rates = rates;
  return o;
}

struct Fixture {
  Suite suite;
  std::shared_ptr<const config::Config> cfg = config();
  Prepared prepared;
  core::ManualClock clock;

  explicit Fixture(const std::string& text) : suite(parse_suite(text)) {
    prepared = prepare_cases(suite, *cfg, openai_only());
  }
  std::vector<CaseRecord> run(providers::Provider& provider, RunOptions options = {}) {
    options.backoff_ms = 0;
    return run_cases(prepared.cases, provider, ledger::Price{1'000'000, 2'000'000, -1}, clock,
                     options);
  }
};

TEST(PrepareCasesTest, AnUnknownWorkloadOrAnUndecodableRequestIsAnErrorOnItsLine) {
  Fixture f(weather_line("ok") +
            R"({"id": "w", "workload": "nope", "request": {"messages": []}})"
            "\n" +
            R"({"id": "d", "workload": "qa", "request": {"messages": 3}})"
            "\n" +
            R"({"id": "x", "workload": "qa", "dialect": "anthropic", "request": {}})"
            "\n");
  ASSERT_EQ(f.prepared.cases.size(), 1u);
  EXPECT_EQ(f.prepared.cases[0].request.model, "agentic");
  ASSERT_EQ(f.prepared.errors.size(), 3u);
  EXPECT_EQ(f.prepared.errors[0].line, 2);
  EXPECT_NE(f.prepared.errors[0].message.find("workload \"nope\""), std::string::npos);
  EXPECT_EQ(f.prepared.errors[1].line, 3);
  EXPECT_EQ(f.prepared.errors[1].message.rfind("request: ", 0), 0u);
  EXPECT_EQ(f.prepared.errors[2].line, 4);
  EXPECT_NE(f.prepared.errors[2].message.find("cannot be decoded"), std::string::npos);
}

TEST(RunCasesTest, CorrectAnswersPassTheChecksAndTheExpectationsWithTokensAndCost) {
  Fixture f(
      weather_line("a", R"({"tool": "get_weather", "arguments_schema": {"required": ["city"]}})") +
      weather_line("b"));
  providers::SimulatedProvider provider(simulated());
  const auto out = f.run(provider);
  ASSERT_EQ(out.size(), 2u);
  for (const CaseRecord& c : out) {
    EXPECT_EQ(c.verdict, "pass") << c.case_id << ": " << c.reason << " " << c.detail;
    EXPECT_EQ(c.workload, "agentic");
    EXPECT_EQ(c.attempts, 1);
    EXPECT_GT(c.input_tokens + c.output_tokens, 0);
    EXPECT_EQ(c.cost_micro_usd, c.input_tokens + 2 * c.output_tokens);
  }
  EXPECT_EQ(out[0].case_id, "a");
  EXPECT_EQ(out[1].case_id, "b");
}

TEST(RunCasesTest, TheWorkloadsChecksFailAnAnswerThatViolatesTheToolSchema) {
  Fixture f(weather_line("a"));
  providers::FaultRates rates;
  rates.schema = 1;
  providers::SimulatedProvider provider(simulated(rates));
  const auto out = f.run(provider);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].verdict, "fail");
  EXPECT_EQ(out[0].reason, "schema");
}

TEST(RunCasesTest, AnUnmetExpectationFailsACaseTheChecksPass) {
  Fixture f(weather_line("a", R"({"tool": "get_time"})"));
  providers::SimulatedProvider provider(simulated());
  const auto out = f.run(provider);
  EXPECT_EQ(out[0].verdict, "fail");
  EXPECT_EQ(out[0].reason, "tool_mismatch");
}

TEST(RunCasesTest, TransportErrorsAreRetriedUpToMaxAttemptsThenTheCaseIsAnError) {
  Fixture f(weather_line("a"));
  providers::FaultRates rates;
  rates.rate_limited = 1;
  providers::SimulatedProvider provider(simulated(rates));
  RunOptions options;
  options.max_attempts = 3;
  const auto out = f.run(provider, options);
  EXPECT_EQ(out[0].verdict, "error");
  EXPECT_EQ(out[0].reason, "rate_limited");
  EXPECT_EQ(out[0].attempts, 3);
}

// Answers after yielding to the loop once, counting the calls in flight.
class CountingProvider final : public providers::Provider {
 public:
  const std::string& name() const override { return name_; }
  const std::string& model() const override { return name_; }
  boost::asio::awaitable<core::Result<chat::ChatResponse>> complete(
      const chat::ChatRequest&, providers::CallContext& context) override {
    peak = std::max(peak, ++in_flight);
    co_await boost::asio::post(context.loop, boost::asio::use_awaitable);
    --in_flight;
    chat::ChatResponse r;
    r.tool_calls.push_back({"c1", "get_weather", R"({"city": "Paris"})"});
    co_return r;
  }
  int in_flight = 0;
  int peak = 0;

 private:
  std::string name_ = "counting";
};

TEST(RunCasesTest, AtMostConcurrencyCasesAreInFlightAndProgressIsToldAfterEach) {
  std::string text;
  for (int i = 0; i < 10; ++i) text += weather_line("c" + std::to_string(i));
  Fixture f(text);
  CountingProvider provider;
  RunOptions options;
  options.concurrency = 3;
  std::vector<Progress> told;
  options.progress = [&](const Progress& p) { told.push_back(p); };
  const auto out = f.run(provider, options);
  EXPECT_EQ(provider.peak, 3);
  ASSERT_EQ(told.size(), 10u);
  EXPECT_EQ(told.back().done, 10);
  EXPECT_EQ(told.back().total, 10);
  EXPECT_EQ(told.back().passed, 10);
}

}  // namespace
}  // namespace backstop::eval
