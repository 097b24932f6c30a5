#include "providers/simulated_provider.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <cmath>
#include <optional>
#include <vector>

#include "chat/stream.h"
#include "http/client.h"
#include "providers/connections.h"

namespace backstop::providers {
namespace {

namespace net = boost::asio;
using Results = std::vector<core::Result<chat::ChatResponse>>;

chat::ChatRequest weather_request() {
  chat::ChatRequest request;
  chat::Message user;
  user.content.push_back({chat::ContentPart::Kind::kText, "Weather in Paris?", ""});
  request.messages.push_back(user);
  request.tools.push_back({"get_weather", "", boost::json::parse(R"({"type":"object",
      "properties":{"city":{"type":"string"}},"required":["city"]})")});
  return request;
}

SimulatedOptions faulty(std::uint64_t seed) {
  SimulatedOptions o;
  o.name = "sim";
  o.model = "sim-1";
  o.seed = seed;
  o.timeout_ms = 0;
  o.rates.no_tool_call = 0.10;
  o.rates.schema = 0.20;
  o.rates.rate_limited = 0.05;
  o.rates.server_error = 0.05;
  o.rates.timeout = 0.10;
  return o;
}

net::awaitable<void> call_n(SimulatedProvider& provider, CallContext& context,
                            const chat::ChatRequest& request, int n, Results& out) {
  for (int i = 0; i < n; ++i) out.push_back(co_await provider.complete(request, context));
}

// Runs `n` calls of provider.complete(), one after another, on a fresh io_context.
Results run(SimulatedProvider& provider, int n, const chat::ChatRequest& request) {
  net::io_context loop;
  Connections client(loop);
  core::ManualClock clock;
  CallContext context{loop, client, clock, "req-1"};
  Results results;
  net::co_spawn(loop, call_n(provider, context, request, n, results), net::detached);
  loop.run();
  return results;
}

TEST(SimulatedProvider, ATimeoutFaultWaitsNoLongerThanTheCallersBudget) {
  SimulatedOptions o;
  o.name = "sim";
  o.model = "sim-1";
  o.latency_p50_ms = 0;
  o.timeout_ms = 600'000;  // never reached: the test would hang
  o.rates.timeout = 1.0;
  SimulatedProvider provider(o);
  net::io_context loop;
  Connections client(loop);
  core::ManualClock clock;
  CallContext context{loop, client, clock, "req-1"};
  context.budget = std::chrono::milliseconds(1);
  Results results;
  net::co_spawn(loop, call_n(provider, context, weather_request(), 1, results), net::detached);
  loop.run();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_FALSE(results[0].has_value());
  EXPECT_EQ(results[0].error().code, core::ErrorCode::kTimeout);
  EXPECT_EQ(results[0].error().message, "no answer within 1 ms");
}

TEST(SimulatedProvider, SameSeedSameDraws) {
  SimulatedOptions o = faulty(7);
  o.latency_p50_ms = 100;
  o.latency_p99_ms = 900;
  const SimulatedProvider a(o), b(o);
  o.seed = 8;
  const SimulatedProvider c(o);
  int differ = 0;
  for (std::uint64_t i = 0; i < 200; ++i) {
    const SimulatedDraw x = a.draw(i), y = b.draw(i), z = c.draw(i);
    EXPECT_EQ(x.outcome, y.outcome);
    EXPECT_EQ(x.fault, y.fault);
    EXPECT_EQ(x.latency_ms, y.latency_ms);
    EXPECT_EQ(x.random, y.random);
    if (x.outcome != z.outcome || x.fault != z.fault) ++differ;
  }
  EXPECT_GT(differ, 20);
}

TEST(SimulatedProvider, CallsFollowTheDrawSequence) {
  SimulatedProvider a(faulty(3)), b(faulty(3));
  const chat::ChatRequest request = weather_request();
  const Results ra = run(a, 50, request);
  const Results rb = run(b, 50, request);
  ASSERT_EQ(ra.size(), 50u);
  for (std::size_t i = 0; i < ra.size(); ++i) {
    ASSERT_EQ(ra[i].has_value(), rb[i].has_value()) << i;
    if (ra[i]) {
      EXPECT_EQ(ra[i]->id, rb[i]->id);
      EXPECT_EQ(ra[i]->tool_calls.size(), rb[i]->tool_calls.size());
    } else {
      EXPECT_EQ(ra[i].error().code, rb[i].error().code);
    }
  }
}

TEST(SimulatedProvider, FaultRatesRoughlyMatchOver2000Calls) {
  SimulatedProvider provider(faulty(11));
  const Results results = run(provider, 2000, weather_request());
  int rate_limited = 0, server_error = 0, timeout = 0, no_tool_call = 0, schema = 0, ok = 0;
  for (const auto& r : results) {
    if (!r) {
      const core::Error& e = r.error();
      if (e.code == core::ErrorCode::kRateLimited && e.upstream_status == 429) ++rate_limited;
      if (e.code == core::ErrorCode::kUpstream && e.upstream_status == 500) ++server_error;
      if (e.code == core::ErrorCode::kTimeout && e.message == "no answer within 0 ms") ++timeout;
    } else if (r->tool_calls.empty()) {
      ++no_tool_call;
    } else if (!boost::json::parse(r->tool_calls[0].arguments).as_object().contains("city")) {
      ++schema;
    } else {
      ++ok;
    }
  }
  EXPECT_EQ(rate_limited + server_error + timeout + no_tool_call + schema + ok, 2000);
  // Within about 4 standard deviations of 2000 * rate.
  const auto near = [](int count, double rate) {
    const double mean = 2000 * rate;
    return std::abs(count - mean) < 4 * std::sqrt(mean * (1 - rate)) + 1;
  };
  EXPECT_TRUE(near(rate_limited, 0.05)) << rate_limited;
  EXPECT_TRUE(near(server_error, 0.05)) << server_error;
  EXPECT_TRUE(near(timeout, 0.10)) << timeout;
  EXPECT_TRUE(near(no_tool_call, 0.10)) << no_tool_call;
  EXPECT_TRUE(near(schema, 0.20)) << schema;
  EXPECT_TRUE(near(ok, 0.50)) << ok;
}

TEST(SimulatedProvider, LatencyIsLognormalWithTheGivenMedianAndP99) {
  SimulatedOptions o = faulty(5);
  o.latency_p50_ms = 100;
  o.latency_p99_ms = 400;
  const SimulatedProvider provider(o);
  std::vector<double> latencies;
  for (std::uint64_t i = 0; i < 4000; ++i) latencies.push_back(provider.draw(i).latency_ms);
  std::ranges::sort(latencies);
  EXPECT_NEAR(latencies[2000], 100, 10);
  EXPECT_NEAR(latencies[3960], 400, 80);
}

TEST(SimulatedProvider, AnswersCarryTheModelAndTheClock) {
  SimulatedOptions o;
  o.name = "sim";
  o.model = "sim-1";
  SimulatedProvider provider(o);
  const Results results = run(provider, 1, weather_request());
  ASSERT_TRUE(results.at(0).has_value());
  EXPECT_EQ(results[0]->model, "sim-1");
  EXPECT_EQ(results[0]->created, core::ManualClock().unix_ms() / 1000);
  EXPECT_EQ(results[0]->tool_calls.at(0).name, "get_weather");
  EXPECT_EQ(provider.name(), "sim");
}

TEST(SimulatedProvider, WaitsTheDrawnLatencyOnTheLoop) {
  SimulatedOptions o;
  o.latency_p50_ms = 20;
  o.latency_p99_ms = 20;
  SimulatedProvider provider(o);
  const auto start = std::chrono::steady_clock::now();
  const Results results = run(provider, 1, weather_request());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
  EXPECT_TRUE(results.at(0).has_value());
}

// One streamed call: the error of stream() or next(), else the batches to the clean end.
struct Streamed {
  std::optional<core::Error> error;
  std::vector<std::vector<chat::StreamEvent>> batches;

  [[nodiscard]] chat::ChatResponse assembled() const {
    chat::StreamAssembler assembler;
    for (const auto& batch : batches) assembler.add(batch);
    return assembler.response();
  }
};

net::awaitable<void> stream_n(SimulatedProvider& provider, CallContext& context,
                              const chat::ChatRequest& request, int n, std::vector<Streamed>& out) {
  for (int i = 0; i < n; ++i) {
    Streamed& s = out.emplace_back();
    auto opened = co_await provider.stream(request, context);
    if (!opened) {
      s.error = opened.error();
      continue;
    }
    for (;;) {
      auto batch = co_await (*opened)->next();
      if (!batch) {
        s.error = batch.error();
        break;
      }
      if (batch->empty()) break;
      s.batches.push_back(std::move(*batch));
    }
  }
}

std::vector<Streamed> run_streams(SimulatedProvider& provider, int n,
                                  const chat::ChatRequest& request) {
  net::io_context loop;
  Connections client(loop);
  core::ManualClock clock;
  CallContext context{loop, client, clock, "req-1"};
  std::vector<Streamed> results;
  net::co_spawn(loop, stream_n(provider, context, request, n, results), net::detached);
  loop.run();
  return results;
}

TEST(SimulatedProvider, StreamsTheSameAnswersAsComplete) {
  SimulatedProvider a(faulty(3)), b(faulty(3));
  const chat::ChatRequest request = weather_request();
  const Results whole = run(a, 50, request);
  const std::vector<Streamed> streamed = run_streams(b, 50, request);
  ASSERT_EQ(streamed.size(), 50u);
  int answers = 0;
  for (std::size_t i = 0; i < whole.size(); ++i) {
    ASSERT_EQ(whole[i].has_value(), !streamed[i].error.has_value()) << i;
    if (!whole[i]) {
      EXPECT_EQ(whole[i].error().code, streamed[i].error->code) << i;
      EXPECT_EQ(whole[i].error().upstream_status, streamed[i].error->upstream_status) << i;
      continue;
    }
    ++answers;
    const chat::ChatResponse got = streamed[i].assembled();
    EXPECT_EQ(got.id, whole[i]->id) << i;
    EXPECT_EQ(got.model, "sim-1");
    ASSERT_EQ(got.tool_calls.size(), whole[i]->tool_calls.size()) << i;
    for (std::size_t t = 0; t < got.tool_calls.size(); ++t) {
      EXPECT_EQ(got.tool_calls[t].name, whole[i]->tool_calls[t].name);
      EXPECT_EQ(got.tool_calls[t].arguments, whole[i]->tool_calls[t].arguments);
    }
    EXPECT_EQ(got.finish_reason, whole[i]->finish_reason);
    EXPECT_EQ(got.usage.output_tokens, whole[i]->usage.output_tokens);
    EXPECT_GT(streamed[i].batches.size(), 1u) << i;
  }
  EXPECT_GT(answers, 20);
}

TEST(SimulatedProvider, AStreamCutsTheTextIntoSeveralDeltas) {
  SimulatedOptions o;
  o.model = "sim-1";
  SimulatedProvider provider(o);
  const std::vector<Streamed> streamed = run_streams(provider, 1, chat::ChatRequest{});
  ASSERT_FALSE(streamed.at(0).error.has_value());
  int deltas = 0;
  for (const auto& batch : streamed[0].batches) {
    for (const auto& event : batch) deltas += event.kind == chat::StreamEvent::Kind::kTextDelta;
  }
  EXPECT_GE(deltas, 3);
  EXPECT_FALSE(streamed[0].assembled().content.value_or("").empty());
}

}  // namespace
}  // namespace backstop::providers

namespace backstop::providers {
namespace {

TEST(SimulatedProvider, ACancelledCallEndsAtOnceWithoutItsAnswer) {
  SimulatedOptions o;
  o.name = "sim";
  o.model = "sim-1";
  o.latency_p50_ms = 3'600'000;  // an hour: only the cancellation can end it in a test
  SimulatedProvider provider(o);
  net::io_context loop;
  Connections client(loop);
  core::ManualClock clock;
  core::Cancellation cancel;
  CallContext context{loop, client, clock, "req-1"};
  context.cancel = &cancel;
  Results results;
  const chat::ChatRequest request = weather_request();
  net::co_spawn(loop, call_n(provider, context, request, 1, results), net::detached);
  loop.poll();
  EXPECT_TRUE(results.empty());
  cancel.request();
  loop.run();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_FALSE(results[0]);
  EXPECT_EQ(results[0].error().code, core::ErrorCode::kUpstream);
  EXPECT_NE(results[0].error().message.find("cancelled"), std::string::npos);
}

}  // namespace
}  // namespace backstop::providers

namespace backstop::providers {
namespace {

TEST(SimulatedProvider, AnEpisodeReplacesTheRatesForItsCallsOnly) {
  SimulatedOptions o;
  o.name = "sim";
  o.model = "sim-1";
  o.episodes.push_back({10, 20, FaultRates{.schema = 1.0}});
  SimulatedProvider provider(o);
  for (std::uint64_t call = 0; call < 30; ++call) {
    const bool degraded = call >= 10 && call < 20;
    EXPECT_EQ(provider.draw(call).fault, degraded ? Fault::kSchema : Fault::kNone) << call;
  }
}

}  // namespace
}  // namespace backstop::providers
