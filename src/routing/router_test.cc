#include "routing/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "http/client.h"
#include "providers/connections.h"
#include "telemetry/hooks.h"

namespace backstop::routing {
namespace {

namespace net = boost::asio;
using core::ErrorCode;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using validation::Reason;

// A provider that answers from a script, one entry per call.
class ScriptedProvider final : public providers::Provider {
 public:
  ScriptedProvider(std::string name, std::string model)
      : name_(std::move(name)), model_(std::move(model)) {}
  const std::string& name() const override { return name_; }
  const std::string& model() const override { return model_; }
  net::awaitable<core::Result<chat::ChatResponse>> complete(
      const chat::ChatRequest&, providers::CallContext& context) override {
    if (co_await begin_call(context)) co_return core::fail(ErrorCode::kUpstream, "cancelled");
    if (script.empty()) co_return core::fail(ErrorCode::kInternal, "script ran out");
    auto next = std::move(script.front());
    script.pop_front();
    co_return next;
  }
  // A stream of the next scripted batches: each batch one next(); the stream's first
  // comes when the call is let go (as complete()).
  net::awaitable<core::Result<std::unique_ptr<providers::EventStream>>> stream(
      const chat::ChatRequest&, providers::CallContext& context) override {
    if (co_await begin_call(context)) co_return core::fail(ErrorCode::kUpstream, "cancelled");
    if (stream_script.empty()) co_return core::fail(ErrorCode::kInternal, "script ran out");
    auto batches = std::move(stream_script.front());
    stream_script.pop_front();
    co_return std::make_unique<ScriptedStream>(std::move(batches), context.loop, rest_delay);
  }
  std::deque<std::deque<std::vector<chat::StreamEvent>>> stream_script;
  std::chrono::milliseconds rest_delay{0};  // a stream's wait before each batch after its first
  std::deque<core::Result<chat::ChatResponse>> script;
  int calls = 0;
  std::vector<std::chrono::milliseconds> budgets;  // what each call was allowed
  std::vector<bool> first_token_limits;
  std::function<void(providers::CallContext&)> on_call;  // runs during each call
  bool carries_all = true;  // false: carries no request (as for another dialect's features)
  bool carries(const chat::ChatRequest&) const override { return carries_all; }
  bool hold = false;                 // each call waits for release() or its cancellation
  int cancelled = 0;                 // calls that ended by their cancellation
  std::function<void()> after_hold;  // runs when a held call goes on
  // Lets the held call go on to its scripted answer.
  void release() {
    if (gate_ != nullptr) gate_->cancel();
  }

 private:
  class ScriptedStream final : public providers::EventStream {
   public:
    ScriptedStream(std::deque<std::vector<chat::StreamEvent>> batches, net::io_context& loop,
                   std::chrono::milliseconds rest_delay)
        : batches_(std::move(batches)), loop_(loop), rest_delay_(rest_delay) {}
    net::awaitable<core::Result<std::vector<chat::StreamEvent>>> next() override {
      if (++asked_ > 1 && rest_delay_.count() > 0) {
        net::steady_timer wait(loop_, rest_delay_);
        co_await wait.async_wait(net::as_tuple(net::use_awaitable));
      }
      if (batches_.empty()) co_return std::vector<chat::StreamEvent>{};
      auto batch = std::move(batches_.front());
      batches_.pop_front();
      co_return batch;
    }

   private:
    std::deque<std::vector<chat::StreamEvent>> batches_;
    net::io_context& loop_;
    std::chrono::milliseconds rest_delay_;
    int asked_ = 0;
  };

  // Counts the call and, when `hold`, waits for release() or the call's cancellation;
  // true when it was cancelled.
  net::awaitable<bool> begin_call(providers::CallContext& context) {
    ++calls;
    budgets.push_back(context.budget);
    first_token_limits.push_back(context.first_token_limit);
    if (on_call) on_call(context);
    if (!hold) co_return false;
    net::steady_timer gate(context.loop, net::steady_timer::time_point::max());
    gate_ = &gate;
    bool was_cancelled = false;
    core::Cancellation::Subscription sub;
    if (context.cancel != nullptr) {
      sub = context.cancel->subscribe([&] {
        was_cancelled = true;
        gate.cancel();
      });
    }
    co_await gate.async_wait(net::as_tuple(net::use_awaitable));
    gate_ = nullptr;
    if (after_hold) after_hold();
    if (was_cancelled) ++cancelled;
    co_return was_cancelled;
  }

  net::steady_timer* gate_ = nullptr;
  std::string name_;
  std::string model_;
};

chat::ChatResponse tool_answer(std::string args) {
  chat::ChatResponse r;
  r.model = "m";
  r.tool_calls.push_back({"call_1", "get_weather", std::move(args)});
  r.finish_reason = chat::FinishReason::kToolCalls;
  r.usage = {1000, 0, 0, 100};
  return r;
}

core::Error upstream(ErrorCode code, int status, int retry_after_ms = -1) {
  core::Error e{code, "HTTP " + std::to_string(status), status, retry_after_ms};
  return e;
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : registry_(1), spend_(ledger::make_memory_store()), http_(loop_) {
    config::Provider primary;
    primary.name = "primary";
    primary.model = "v4";
    primary.price.input = 140000;
    primary.price.output = 280000;
    config::Provider fallback;
    fallback.name = "fallback";
    fallback.model = "claude";
    fallback.price.input = 3000000;
    fallback.price.output = 15000000;
    config_.providers = {primary, fallback};
    config::Workload w;
    w.name = "agentic";
    w.route = {"primary", "fallback"};
    w.validate.enabled = true;
    w.validate.tool_call = config::ToolCallCheck::kRequired;
    w.validate.tool_names_declared = true;
    w.validate.arguments = config::ArgumentsCheck::kSchema;
    w.retries.max = 1;
    w.retries.base_backoff_ms = 0;
    config_.workloads.push_back(w);
    auto p = std::make_unique<ScriptedProvider>("primary", "v4");
    auto f = std::make_unique<ScriptedProvider>("fallback", "claude");
    primary_ = p.get();
    fallback_ = f.get();
    providers_.push_back(std::move(p));
    providers_.push_back(std::move(f));
    router_ = std::make_unique<Router>(config_, providers_, registry_, *spend_, clock_);

    request_.model = "agentic";
    chat::Tool tool;
    tool.name = "get_weather";
    tool.parameters = boost::json::parse(
        R"({"type":"object","properties":{"unit":{"enum":["c","f"]}},"required":["unit"]})");
    request_.tools.push_back(tool);
  }

  RouteResult run(core::Cancellation* cancel = nullptr) {
    WorkerContext worker{loop_, http_, registry_.shard(0), schemas_, rng_, cancel};
    auto future =
        net::co_spawn(loop_, router_->route(*router_->find("agentic"), request_, worker, "req-1"),
                      net::use_future);
    loop_.run();
    loop_.restart();
    return future.get();
  }

  double counter(telemetry::FamilyId f, std::vector<std::string> labels) {
    return registry_.counter_value(f, labels);
  }

  net::io_context loop_;
  core::ManualClock clock_;
  telemetry::Registry registry_;
  std::unique_ptr<ledger::SpendStore> spend_;
  providers::Connections http_;
  validation::SchemaCache schemas_;
  std::mt19937_64 rng_{1};
  config::Config config_;
  std::vector<std::unique_ptr<providers::Provider>> providers_;
  ScriptedProvider* primary_;
  ScriptedProvider* fallback_;
  std::unique_ptr<Router> router_;
  chat::ChatRequest request_;
};

TEST_F(RouterTest, PassingPrimaryIsServedByIt) {
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kPrimary);
  ASSERT_EQ(r.attempts.size(), 1u);
  EXPECT_TRUE(r.attempts[0].pass);
  EXPECT_EQ(r.served_by->provider->name(), "primary");
  EXPECT_EQ(fallback_->calls, 0);
  EXPECT_EQ(counter(router_->metrics().requests_total, {"agentic", "primary"}), 1);
  EXPECT_EQ(counter(router_->metrics().attempts_total, {"agentic", "primary", "pass"}), 1);
  // 1000 input at 0.14 + 100 output at 0.28 USD/Mtok = 140 + 28 micro-dollars.
  EXPECT_EQ(r.cost_micro_usd, 168);
  EXPECT_DOUBLE_EQ(counter(router_->metrics().spend_usd_total, {"agentic", "primary", "v4"}),
                   0.000168);
}

TEST_F(RouterTest, SchemaFailureFallsBackAtOnceWithoutRetry) {
  primary_->script.push_back(tool_answer(R"({"unit":"kelvin"})"));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  EXPECT_EQ(primary_->calls, 1);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kSchema);
  EXPECT_EQ(r.fallback_reason, Reason::kSchema);
  EXPECT_EQ(
      counter(router_->metrics().fallbacks_total, {"agentic", "primary", "fallback", "schema"}), 1);
  EXPECT_EQ(counter(router_->metrics().validation_failures_total, {"agentic", "primary", "schema"}),
            1);
  // Both answers were paid for.
  EXPECT_EQ(r.cost_micro_usd, 168 + 3000 + 1500);
}

TEST_F(RouterTest, RateLimitIsRetriedOnTheSameTargetThenFallsBack) {
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kRateLimited, 429, 0)));
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 500)));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  EXPECT_EQ(primary_->calls, 2);
  ASSERT_EQ(r.attempts.size(), 3u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kRateLimited);
  EXPECT_EQ(r.attempts[0].status, 429);
  EXPECT_EQ(r.attempts[1].reason, Reason::kUpstreamError);
  EXPECT_EQ(r.fallback_reason, Reason::kUpstreamError);
  EXPECT_EQ(counter(router_->metrics().attempts_total, {"agentic", "primary", "fail"}), 2);
}

TEST_F(RouterTest, ClientErrorsAreNotRetried) {
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 400)));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = run();
  EXPECT_EQ(primary_->calls, 1);
  EXPECT_EQ(r.outcome, Outcome::kFallback);
}

TEST_F(RouterTest, ARejectionEndsTheRouteWithoutFallback) {
  core::Error refused{ErrorCode::kRejected, "flagged by the content policy", 400};
  refused.upstream_code = "content_filter";
  primary_->script.push_back(std::unexpected(refused));
  fallback_->script.push_back(tool_answer(R"({"unit":"c"})"));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kRejected);
  ASSERT_TRUE(r.rejection.has_value());
  EXPECT_EQ(r.rejection->upstream_code, "content_filter");
  EXPECT_EQ(r.rejection->upstream_status, 400);
  EXPECT_EQ(primary_->calls, 1);   // not retried
  EXPECT_EQ(fallback_->calls, 0);  // not fallen back
  ASSERT_EQ(r.attempts.size(), 1u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kRejected);
  EXPECT_FALSE(r.fallback_reason.has_value());
  EXPECT_EQ(counter(router_->metrics().requests_total, {"agentic", "rejected"}), 1);
  EXPECT_EQ(
      counter(router_->metrics().fallbacks_total, {"agentic", "primary", "fallback", "rejected"}),
      0);
  // A rejection says nothing about the primary: the fallback rate does not move.
  EXPECT_EQ(router_->find("agentic")->window->requests(clock_.unix_ms()), 0);
}

TEST_F(RouterTest, EveryTargetFailingListsEveryAttempt) {
  primary_->script.push_back(tool_answer("{\"unit\":"));
  fallback_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 503)));
  fallback_->script.push_back(std::unexpected(upstream(ErrorCode::kTimeout, 0)));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  ASSERT_EQ(r.attempts.size(), 3u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kInvalidJson);
  EXPECT_EQ(r.attempts[1].reason, Reason::kUpstreamError);
  EXPECT_EQ(r.attempts[2].reason, Reason::kTimeout);
  EXPECT_EQ(counter(router_->metrics().requests_total, {"agentic", "failed"}), 1);
  EXPECT_FALSE(r.response.has_value());
}

TEST_F(RouterTest, ATimeoutIsNeverRetriedOnTheSameTarget) {
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kTimeout, 0)));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  EXPECT_EQ(primary_->calls, 1);  // retries.max is 1: a 5xx would have had a second call
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kTimeout);
  EXPECT_EQ(r.fallback_reason, Reason::kTimeout);
  EXPECT_EQ(
      counter(router_->metrics().fallbacks_total, {"agentic", "primary", "fallback", "timeout"}),
      1);
}

TEST_F(RouterTest, EachCallGetsTheTimeLeftAndTheLastTargetNoFirstTokenLimit) {
  primary_->on_call = [this](providers::CallContext&) { clock_.advance(std::chrono::seconds(50)); };
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kTimeout, 0)));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  // The default deadline_ms, 120 s, less the 50 s the primary took.
  EXPECT_EQ(primary_->budgets, (std::vector<std::chrono::milliseconds>{120'000ms}));
  EXPECT_EQ(fallback_->budgets, (std::vector<std::chrono::milliseconds>{70'000ms}));
  EXPECT_EQ(primary_->first_token_limits, (std::vector<bool>{true}));
  EXPECT_EQ(fallback_->first_token_limits, (std::vector<bool>{false}));
}

TEST_F(RouterTest, NothingMoreIsTriedOnceTheDeadlineHasPassed) {
  primary_->on_call = [this](providers::CallContext&) {
    clock_.advance(std::chrono::seconds(121));
  };
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 503)));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(primary_->calls, 1);  // a 503 is retried, but not past the deadline
  EXPECT_EQ(fallback_->calls, 0);
  ASSERT_EQ(r.attempts.size(), 1u);
  EXPECT_EQ(counter(router_->metrics().requests_total, {"agentic", "failed"}), 1);
}

TEST_F(RouterTest, AReplayOnAFreshConnectionIsAnAttemptOfItsOwn) {
  primary_->on_call = [](providers::CallContext& context) {
    context.replays.push_back(
        core::Error{ErrorCode::kUpstream, "127.0.0.1:1 closed the connection before answering"});
  };
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  RouteResult r = run();
  EXPECT_EQ(r.outcome, Outcome::kPrimary);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_FALSE(r.attempts[0].pass);
  EXPECT_EQ(r.attempts[0].provider, "primary");
  EXPECT_EQ(r.attempts[0].reason, Reason::kConnect);
  EXPECT_EQ(r.attempts[0].detail,
            "replayed on a fresh connection: 127.0.0.1:1 closed the connection before answering");
  EXPECT_TRUE(r.attempts[1].pass);
  EXPECT_EQ(counter(router_->metrics().attempts_total, {"agentic", "primary", "fail"}), 1);
  EXPECT_EQ(counter(router_->metrics().attempts_total, {"agentic", "primary", "pass"}), 1);
}

TEST_F(RouterTest, AClientThatLeftStopsTheRouteAndItsCallIsStillBooked) {
  core::Cancellation cancel;
  primary_->on_call = [&cancel](providers::CallContext& context) {
    EXPECT_EQ(context.cancel, &cancel);
    cancel.request();
  };
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 503)));
  RouteResult r = run(&cancel);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(primary_->calls, 1);   // no retry
  EXPECT_EQ(fallback_->calls, 0);  // and no fallback
  ASSERT_EQ(r.attempts.size(), 1u);
  EXPECT_EQ(counter(router_->metrics().attempts_total, {"agentic", "primary", "fail"}), 1);
  EXPECT_EQ(counter(router_->metrics().requests_total, {"agentic", "failed"}), 1);
}

// Keeps every batch the ledger writes.
class CapturingSink final : public ledger::Sink {
 public:
  core::Result<void> write(const std::vector<ledger::RequestRow>& batch) override {
    rows.insert(rows.end(), batch.begin(), batch.end());
    return {};
  }
  std::vector<ledger::DaySpend> totals() override { return {}; }
  std::vector<ledger::RequestRow> rows;  // read after flush(), which the test thread runs
};

TEST_F(RouterTest, RoutedRequestIsOneLedgerRowWithEveryAttempt) {
  auto sink = std::make_unique<CapturingSink>();
  CapturingSink& captured = *sink;
  ledger::SpendStore ledger(std::move(sink), {3'600'000, {}});
  telemetry::Registry registry(1);
  Router router(config_, providers_, registry, ledger, clock_);
  primary_->script.push_back(tool_answer(R"({"unit":"kelvin"})"));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  WorkerContext worker{loop_, http_, registry.shard(0), schemas_, rng_};
  auto future = net::co_spawn(
      loop_, router.route(*router.find("agentic"), request_, worker, "req-7"), net::use_future);
  loop_.run();
  RouteResult r = future.get();
  router.count_rejected(registry.shard(0), "", "req-8");
  ASSERT_TRUE(ledger.flush().has_value());

  ASSERT_EQ(captured.rows.size(), 2u);
  const ledger::RequestRow& row = captured.rows[0];
  EXPECT_EQ(row.request_id, "req-7");
  EXPECT_EQ(row.unix_ms, clock_.unix_ms());
  EXPECT_EQ(row.workload, "agentic");
  EXPECT_EQ(row.key_name, "");
  EXPECT_EQ(row.outcome, "fallback");
  EXPECT_EQ(row.served_by, "fallback");
  EXPECT_EQ(row.attempts, (std::vector<ledger::AttemptRow>{
                              {"primary", "v4", "schema", 200, 1000, 0, 100, 168, 0},
                              {"fallback", "claude", "", 200, 1000, 0, 100, 4500, 0}}));
  // The ledger and /metrics agree on what was spent.
  EXPECT_EQ(row.cost_micro_usd(), r.cost_micro_usd);
  EXPECT_DOUBLE_EQ(
      registry.counter_value(router.metrics().spend_usd_total, {"agentic", "primary", "v4"}) +
          registry.counter_value(router.metrics().spend_usd_total,
                                 {"agentic", "fallback", "claude"}),
      static_cast<double>(row.cost_micro_usd()) / 1e6);

  const ledger::RequestRow& rejected = captured.rows[1];
  EXPECT_EQ(rejected.request_id, "req-8");
  EXPECT_EQ(rejected.outcome, "rejected");
  EXPECT_TRUE(rejected.attempts.empty());
}

TEST_F(RouterTest, ASessionRetryingMoreThanItsThresholdSkipsThePrimary) {
  config_.workloads[0].sessions = config::Sessions{1, 600, 900};
  telemetry::Registry registry(1);
  router_ = std::make_unique<Router>(config_, providers_, registry, *spend_, clock_);
  auto run = [&] {
    WorkerContext worker{loop_, http_, registry.shard(0), schemas_, rng_};
    auto future = net::co_spawn(
        loop_, router_->route(*router_->find("agentic"), request_, worker, "req"), net::use_future);
    loop_.run();
    loop_.restart();
    return future.get();
  };
  chat::Message m;
  m.content.push_back({chat::ContentPart::Kind::kText, "weather in Paris?", {}});
  request_.messages.push_back(m);
  for (int i = 0; i < 2; ++i) {
    primary_->script.push_back(tool_answer(R"({"unit":"kelvin"})"));
    fallback_->script.push_back(tool_answer(R"({"unit":"c"})"));
    RouteResult r = run();
    EXPECT_EQ(r.client_retry, i == 1);
    EXPECT_FALSE(r.escalated);
    clock_.advance(1s);
  }
  // The second retry is above the threshold of one: the primary is not asked.
  fallback_->script.push_back(tool_answer(R"({"unit":"c"})"));
  RouteResult escalated = run();
  EXPECT_TRUE(escalated.client_retry);
  EXPECT_TRUE(escalated.escalated);
  EXPECT_EQ(primary_->calls, 2);
  EXPECT_EQ(escalated.outcome, Outcome::kFallback);
  EXPECT_EQ(escalated.fallback_reason, Reason::kRetry);
  ASSERT_EQ(escalated.attempts.size(), 2u);
  EXPECT_EQ(escalated.attempts[0].provider, "primary");
  EXPECT_EQ(escalated.attempts[0].reason, Reason::kRetry);
  EXPECT_EQ(escalated.attempts[0].cost_micro_usd, 0);
  EXPECT_TRUE(escalated.attempts[1].pass);
  EXPECT_EQ(registry.counter_value(router_->metrics().fallbacks_total,
                                   {"agentic", "primary", "fallback", "retry"}),
            1);
  EXPECT_THAT(registry.render(),
              HasSubstr("backstop_client_retries_total{workload=\"agentic\"} 2\n"));
}

class HedgeTest : public RouterTest {
 protected:
  HedgeTest() {
    config_.workloads[0].hedge = config::Hedge{1, false};
    router_ = std::make_unique<Router>(config_, providers_, registry_hedge_, *spend_, clock_);
  }
  RouteResult go() {
    WorkerContext worker{loop_, http_, registry_hedge_.shard(0), schemas_, rng_};
    auto future = net::co_spawn(
        loop_, router_->route(*router_->find("agentic"), request_, worker, "req"), net::use_future);
    loop_.run();
    loop_.restart();
    return future.get();
  }
  double hedges(std::string winner) {
    return registry_hedge_.counter_value(router_->hedges_total(), {"agentic", winner});
  }
  telemetry::Registry registry_hedge_{1};
};

TEST_F(HedgeTest, AHedgeThatPassesFirstWinsAndTheSlowCallIsCancelled) {
  primary_->hold = true;  // slower than the hedge's 1 ms, until cancelled
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = go();
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  EXPECT_EQ(r.served_by->provider->name(), "fallback");
  EXPECT_EQ(primary_->cancelled, 1);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].provider, "primary");
  EXPECT_FALSE(r.attempts[0].pass);
  EXPECT_EQ(r.attempts[0].reason, Reason::kTimeout);
  EXPECT_TRUE(r.attempts[1].pass);
  EXPECT_EQ(r.fallback_reason, Reason::kTimeout);
  EXPECT_EQ(hedges("hedge"), 1);
  EXPECT_EQ(hedges("first"), 0);
  // Both calls are in the books: the winner's tokens are billed.
  EXPECT_EQ(r.cost_micro_usd, r.attempts[1].cost_micro_usd);
  EXPECT_GT(r.cost_micro_usd, 0);
}

TEST_F(HedgeTest, TheFirstCallPassingBeforeTheHedgeWinsAndBothAreBilled) {
  primary_->hold = true;
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  // The hedge starts, and while it is held the primary's answer arrives.
  fallback_->hold = true;
  fallback_->on_call = [this](providers::CallContext&) { primary_->release(); };
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = go();
  EXPECT_EQ(r.outcome, Outcome::kPrimary);
  EXPECT_EQ(fallback_->calls, 1);
  EXPECT_EQ(fallback_->cancelled, 1);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_TRUE(r.attempts[0].pass);
  EXPECT_EQ(r.attempts[1].provider, "fallback");
  EXPECT_EQ(r.attempts[1].reason, Reason::kTimeout);
  EXPECT_FALSE(r.fallback_reason.has_value());
  EXPECT_EQ(hedges("first"), 1);
  EXPECT_EQ(hedges("hedge"), 0);
}

TEST_F(HedgeTest, AFailingFirstAnswerWaitsForTheHedge) {
  primary_->hold = true;
  primary_->script.push_back(tool_answer(R"({"unit":"kelvin"})"));  // fails the schema
  // The hedge starts and waits; the primary's failing answer comes, then the hedge's.
  fallback_->hold = true;
  fallback_->on_call = [this](providers::CallContext&) { primary_->release(); };
  primary_->after_hold = [this] { fallback_->release(); };
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult r = go();
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kSchema);
  EXPECT_TRUE(r.attempts[1].pass);
  EXPECT_EQ(r.cost_micro_usd, r.attempts[0].cost_micro_usd + r.attempts[1].cost_micro_usd);
  EXPECT_EQ(hedges("hedge"), 1);
}

TEST_F(HedgeTest, AQuickRateLimitBeforeAnyHedgeIsRetriedOnTheSameTarget) {
  config_.workloads[0].hedge = config::Hedge{60'000, false};
  telemetry::Registry registry(1);
  router_ = std::make_unique<Router>(config_, providers_, registry, *spend_, clock_);
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kRateLimited, 429, 0)));
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  WorkerContext worker{loop_, http_, registry.shard(0), schemas_, rng_};
  auto future = net::co_spawn(
      loop_, router_->route(*router_->find("agentic"), request_, worker, "req"), net::use_future);
  loop_.run();
  RouteResult r = future.get();
  EXPECT_EQ(r.outcome, Outcome::kPrimary);
  EXPECT_EQ(primary_->calls, 2);
  EXPECT_EQ(fallback_->calls, 0);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kRateLimited);
}

TEST_F(HedgeTest, NoHedgeWhenTheFirstCallAnswersInTime) {
  config_.workloads[0].hedge = config::Hedge{60'000, false};
  telemetry::Registry registry(1);
  router_ = std::make_unique<Router>(config_, providers_, registry, *spend_, clock_);
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  WorkerContext worker{loop_, http_, registry.shard(0), schemas_, rng_};
  auto future = net::co_spawn(
      loop_, router_->route(*router_->find("agentic"), request_, worker, "req"), net::use_future);
  loop_.run();
  EXPECT_EQ(future.get().outcome, Outcome::kPrimary);
  EXPECT_EQ(fallback_->calls, 0);
}

// A text answer as the batches of a stream: its start and first words, then the rest.
std::deque<std::vector<chat::StreamEvent>> text_stream(const std::string& first,
                                                       const std::string& rest) {
  using Kind = chat::StreamEvent::Kind;
  auto event = [](Kind kind, std::string text = {}) {
    chat::StreamEvent e;
    e.kind = kind;
    e.text = std::move(text);
    return e;
  };
  chat::StreamEvent start = event(Kind::kStart);
  start.id = "s1";
  start.model = "m";
  chat::StreamEvent usage = event(Kind::kUsage);
  usage.usage = {1000, 0, 0, 100};
  const chat::StreamEvent head = event(Kind::kTextDelta, first);
  const chat::StreamEvent tail = event(Kind::kTextDelta, rest);
  const chat::StreamEvent finish = event(Kind::kFinish);
  return {{start, head}, {tail, finish, usage}};
}

// What a client of a streamed route was sent.
class RecordingSink final : public StreamSink {
 public:
  net::awaitable<bool> begin(const RouteResult& result) override {
    served_by = result.served_by->provider->name();
    attempts_at_begin = result.attempts.size();
    co_return true;
  }
  net::awaitable<bool> send(const std::vector<chat::StreamEvent>& events) override {
    for (const chat::StreamEvent& e : events) text += e.text;
    if (on_send) on_send();
    co_return true;
  }
  net::awaitable<void> finish() override {
    finished = true;
    co_return;
  }
  net::awaitable<void> abort(const core::Error&) override { co_return; }
  std::string served_by;
  std::size_t attempts_at_begin = 0;
  std::string text;
  bool finished = false;
  std::function<void()> on_send;
};

// A pass-through streamed workload (no checks before the first byte) that hedges after 1 ms.
class StreamHedgeTest : public HedgeTest {
 protected:
  StreamHedgeTest() {
    config_.workloads[0].stream_mode = config::StreamMode::kPass;
    router_ = std::make_unique<Router>(config_, providers_, registry_hedge_, *spend_, clock_);
    request_.stream = true;
  }
  RouteResult go_stream() {
    WorkerContext worker{loop_, http_, registry_hedge_.shard(0), schemas_, rng_};
    auto future = net::co_spawn(
        loop_, router_->route_stream(*router_->find("agentic"), request_, worker, "req", sink_),
        net::use_future);
    loop_.run();
    loop_.restart();
    return future.get();
  }
  RecordingSink sink_;
};

TEST_F(StreamHedgeTest, APassThroughStreamSlowToBeginIsHedgedAndTheFirstToBeginServes) {
  primary_->hold = true;  // slower than the hedge's 1 ms to begin, until cancelled
  primary_->stream_script.push_back(text_stream("slow ", "primary"));
  fallback_->stream_script.push_back(text_stream("quick ", "fallback"));
  RouteResult r = go_stream();
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  EXPECT_EQ(sink_.served_by, "fallback");
  EXPECT_EQ(sink_.text, "quick fallback");
  EXPECT_TRUE(sink_.finished);
  EXPECT_EQ(primary_->cancelled, 1);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].provider, "primary");
  EXPECT_EQ(r.attempts[0].reason, Reason::kTimeout);
  EXPECT_TRUE(r.attempts[1].pass);
  EXPECT_EQ(r.fallback_reason, Reason::kTimeout);
  EXPECT_EQ(hedges("hedge"), 1);
  EXPECT_GT(r.attempts[1].cost_micro_usd, 0);  // the served stream's usage is billed
}

TEST_F(StreamHedgeTest, AHedgedStreamWhoseFirstCallBeginsFirstIsServedByIt) {
  primary_->hold = true;
  primary_->stream_script.push_back(text_stream("first ", "primary"));
  // The hedge starts, and while it waits the primary's stream begins.
  fallback_->hold = true;
  fallback_->on_call = [this](providers::CallContext&) { primary_->release(); };
  fallback_->stream_script.push_back(text_stream("second ", "fallback"));
  RouteResult r = go_stream();
  EXPECT_EQ(r.outcome, Outcome::kPrimary);
  EXPECT_EQ(sink_.text, "first primary");
  EXPECT_EQ(fallback_->cancelled, 1);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].provider, "fallback");
  EXPECT_EQ(r.attempts[0].reason, Reason::kTimeout);
  EXPECT_EQ(r.attempts[1].provider, "primary");
  EXPECT_TRUE(r.attempts[1].pass);
  EXPECT_EQ(hedges("first"), 1);
  EXPECT_FALSE(r.fallback_reason.has_value());
}

TEST_F(StreamHedgeTest, AStreamThatBeganIsNeverHedgedHoweverSlowItsRest) {
  primary_->stream_script.push_back(text_stream("begun ", "later"));
  // Once the first words are sent, the rest of the stream comes well after the hedge's 1 ms.
  primary_->rest_delay = 20ms;
  RouteResult r = go_stream();
  EXPECT_EQ(r.outcome, Outcome::kPrimary);
  EXPECT_EQ(sink_.text, "begun later");
  EXPECT_EQ(fallback_->calls, 0);
  EXPECT_EQ(hedges("first") + hedges("hedge"), 0);
}

// A workload with a shadow candidate beside its primary and fallback.
class ShadowTest : public RouterTest {
 protected:
  ShadowTest() {
    config::Provider candidate;
    candidate.name = "candidate";
    candidate.model = "pro";
    candidate.price.input = 1'000'000;
    candidate.price.output = 2'000'000;
    candidate.max_in_flight = 1;
    config_.providers.push_back(candidate);
    auto c = std::make_unique<ScriptedProvider>("candidate", "pro");
    candidate_ = c.get();
    providers_.push_back(std::move(c));
    config_.workloads[0].shadow = config::Shadow{"candidate", 0.25};
    router_ = std::make_unique<Router>(config_, providers_, registry_shadow_, *spend_, clock_);
  }
  // Starts one request; run_all() runs it (and any shadow) to its end.
  std::future<RouteResult> start() {
    // Kept alive: the coroutine holds a reference to its worker until it ends.
    WorkerContext& worker = workers_.emplace_back(
        WorkerContext{loop_, http_, registry_shadow_.shard(0), schemas_, rng_});
    return net::co_spawn(loop_, router_->route(*router_->find("agentic"), request_, worker, "req"),
                         net::use_future);
  }
  void run_all() {
    loop_.run();
    loop_.restart();
  }
  double verdicts(std::string result, std::string reason) {
    return registry_shadow_.counter_value(router_->shadow_verdicts_total(),
                                          {"agentic", "candidate", result, reason});
  }
  ScriptedProvider* candidate_;
  telemetry::Registry registry_shadow_{1};
  std::deque<WorkerContext> workers_;  // one per started request
};

TEST_F(ShadowTest, AnExactShareIsShadowedCheckedCountedAndBookedApart) {
  candidate_->script.push_back(tool_answer(R"({"unit":"c"})"));
  candidate_->script.push_back(tool_answer(R"({"unit":"kelvin"})"));
  for (int i = 0; i < 8; ++i) {
    primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
    auto served = start();
    run_all();
    EXPECT_EQ(served.get().outcome, Outcome::kPrimary);  // the shadow never serves
  }
  EXPECT_EQ(candidate_->calls, 2);  // 25 % of 8
  EXPECT_EQ(verdicts("pass", ""), 1);
  EXPECT_EQ(verdicts("fail", "schema"), 1);
  EXPECT_EQ(verdicts("dropped", ""), 0);
  EXPECT_EQ(
      registry_shadow_.counter_value(router_->metrics().requests_total, {"agentic", "primary"}), 8);
  EXPECT_THAT(
      registry_shadow_.render(),
      HasSubstr("backstop_shadow_fallback_ratio{workload=\"agentic\",provider=\"candidate\"} "
                "0.5\n"));
  ASSERT_TRUE(spend_->flush());
  std::int64_t shadow_cost = 0;
  for (const ledger::DaySpend& d : spend_->totals()) {
    if (d.provider == "candidate") shadow_cost += d.cost_micro_usd;
  }
  EXPECT_EQ(shadow_cost, 2 * ledger::cost_micro_usd({1000, 0, 0, 100}, {1'000'000, 2'000'000}));
}

TEST_F(ShadowTest, ACopyWithNoPlaceLeftIsDroppedAndCounted) {
  // The candidate's max_in_flight is 1: while its first shadow call is held, the next sampled
  // copy has no place.
  candidate_->hold = true;
  candidate_->script.push_back(tool_answer(R"({"unit":"c"})"));
  std::vector<std::future<RouteResult>> served;
  for (int i = 0; i < 8; ++i) {
    primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
    served.push_back(start());
    loop_.poll();
    loop_.restart();
  }
  EXPECT_EQ(candidate_->calls, 1);
  EXPECT_EQ(verdicts("dropped", ""), 1);
  for (auto& f : served) {
    EXPECT_EQ(f.get().outcome, Outcome::kPrimary);  // nobody waited for the held shadow
  }
  candidate_->release();
  run_all();
  EXPECT_EQ(verdicts("pass", ""), 1);
}

TEST_F(RouterTest, ACallBeyondMaxInFlightIsRateLimitedAtOnceAndSparesTheBreaker) {
  config_.providers[0].max_in_flight = 1;
  config_.providers[0].breaker = config::Breaker{1, 1000};
  config_.workloads[0].retries.max = 0;
  telemetry::Registry registry(1);
  router_ = std::make_unique<Router>(config_, providers_, registry, *spend_, clock_);
  primary_->hold = true;
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  WorkerContext worker{loop_, http_, registry.shard(0), schemas_, rng_};
  const Workload& w = *router_->find("agentic");
  auto held = net::co_spawn(loop_, router_->route(w, request_, worker, "a"), net::use_future);
  loop_.poll();
  auto beyond = net::co_spawn(loop_, router_->route(w, request_, worker, "b"), net::use_future);
  loop_.poll();
  RouteResult r = beyond.get();
  EXPECT_EQ(primary_->calls, 1);  // the second request never reached the primary
  EXPECT_EQ(r.outcome, Outcome::kFallback);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].reason, Reason::kRateLimited);
  EXPECT_EQ(r.attempts[0].status, 0);
  EXPECT_THAT(r.attempts[0].detail, HasSubstr("max_in_flight (1)"));
  EXPECT_EQ(w.route[0].breaker->state(), BreakerState::kClosed);
  primary_->release();
  loop_.run();
  EXPECT_EQ(held.get().outcome, Outcome::kPrimary);
}

TEST(LatencyWindowTest, P95IsTheBucketOfThe95thPercentileCall) {
  LatencyWindow w;
  constexpr std::int64_t kT0 = 1'764'547'200'000;
  EXPECT_FALSE(w.p95(kT0).has_value());  // too few calls
  for (int i = 0; i < 95; ++i) w.record(kT0, 100);
  for (int i = 0; i < 5; ++i) w.record(kT0, 5000);
  const std::optional<double> p95 = w.p95(kT0);
  ASSERT_TRUE(p95.has_value());
  EXPECT_GE(*p95, 100);
  EXPECT_LT(*p95, 100 * 1.2);
  // Two minutes later those calls are no longer recent.
  EXPECT_FALSE(w.p95(kT0 + 120'000).has_value());
}

TEST_F(RouterTest, BandWatchReportsBandChanges) {
  BandWatch watch(*router_, 4);
  const Workload& w = *router_->find("agentic");
  std::int64_t now = clock_.unix_ms();
  for (int i = 0; i < 3; ++i) w.window->record(now, true);
  EXPECT_TRUE(watch.check(now).empty());  // too few requests to judge
  w.window->record(now, true);
  auto changes = watch.check(now);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].line,
            "workload agentic: fallback rate 100.0% over the last 600 s (4 requests) is in band "
            "move: the primary is wrong for this traffic");
  EXPECT_EQ(changes[0].workload, "agentic");
  EXPECT_FALSE(changes[0].from.has_value());
  EXPECT_EQ(changes[0].to, Band::kMove);
  EXPECT_EQ(changes[0].requests, 4);
  EXPECT_EQ(changes[0].window_s, 600);
  EXPECT_TRUE(watch.check(now).empty());  // unchanged: nothing new to say
  for (int i = 0; i < 96; ++i) w.window->record(now, false);
  changes = watch.check(now);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_NE(changes[0].line.find("4.0%"), std::string::npos) << changes[0].line;
  EXPECT_NE(changes[0].line.find("band under-used"), std::string::npos) << changes[0].line;
  EXPECT_EQ(changes[0].from, Band::kMove);
  EXPECT_EQ(changes[0].to, Band::kUnderused);
  EXPECT_DOUBLE_EQ(changes[0].fallback_rate, 0.04);
}

TEST(RetryDelayTest, RetryAfterIsHonouredUpToTheCap) {
  config::Retries retries;
  retries.retry_after_cap_ms = 5'000;
  std::mt19937_64 rng(1);
  EXPECT_EQ(retry_delay_ms(retries, 0, upstream(ErrorCode::kRateLimited, 429, 1'200), rng), 1'200);
  EXPECT_EQ(retry_delay_ms(retries, 0, upstream(ErrorCode::kRateLimited, 429, 60'000), rng), 5'000);
}

TEST(RetryDelayTest, BackoffDoublesUpToItsCeilingWithJitter) {
  config::Retries retries;
  retries.base_backoff_ms = 100;
  retries.max_backoff_ms = 300;
  std::mt19937_64 rng(1);
  std::int64_t most[4] = {0, 0, 0, 0};
  for (int i = 0; i < 2'000; ++i) {
    for (int retry = 0; retry < 4; ++retry) {
      std::int64_t d = retry_delay_ms(retries, retry, upstream(ErrorCode::kUpstream, 503), rng);
      ASSERT_GE(d, 0);
      most[retry] = std::max(most[retry], d);
    }
  }
  // Ceilings 100, 200, then capped at 300; over 2000 draws the largest comes close to each.
  EXPECT_LE(most[0], 100);
  EXPECT_GT(most[0], 90);
  EXPECT_LE(most[1], 200);
  EXPECT_GT(most[1], 180);
  EXPECT_LE(most[2], 300);
  EXPECT_GT(most[2], 270);
  EXPECT_LE(most[3], 300);
}

TEST(BandTest, BandsFollowTheThresholds) {
  config::Bands b;
  EXPECT_EQ(band_of(0.02, b), Band::kUnderused);
  EXPECT_EQ(band_of(0.07, b), Band::kWatch);
  EXPECT_EQ(band_of(0.15, b), Band::kHealthy);
  EXPECT_EQ(band_of(0.28, b), Band::kWatch);
  EXPECT_EQ(band_of(0.31, b), Band::kMove);
}

TEST(FallbackWindowTest, OldBucketsLeaveTheWindow) {
  FallbackWindow w(60);  // 60 buckets of 1 s
  w.record(10'000, true);
  w.record(10'500, false);
  EXPECT_DOUBLE_EQ(w.ratio(10'900), 0.5);
  EXPECT_EQ(w.requests(10'900), 2);
  w.record(75'000, false);  // more than a window later
  EXPECT_DOUBLE_EQ(w.ratio(75'000), 0.0);
  EXPECT_EQ(w.requests(75'000), 1);
}

// Keeps every logged line.
class RecordingLogger final : public core::Logger {
 public:
  void log(core::LogLevel, std::string_view line) override { lines.emplace_back(line); }
  std::vector<std::string> lines;
};

TEST(Breaker, OpensAfterConsecutiveFailuresAndProbesOneAtATime) {
  core::ManualClock clock;
  RecordingLogger log;
  Breaker breaker("primary", {3, 1000}, clock, &log);
  for (int i = 0; i < 2; ++i) breaker.record(breaker.admit(), false);
  breaker.record(breaker.admit(), true);  // a success resets the count
  for (int i = 0; i < 2; ++i) breaker.record(breaker.admit(), false);
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  breaker.record(breaker.admit(), false);
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker.admit(), Admission::kSkip);

  clock.advance(999ms);
  EXPECT_EQ(breaker.admit(), Admission::kSkip);
  clock.advance(1ms);
  EXPECT_EQ(breaker.admit(), Admission::kProbe);
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
  EXPECT_EQ(breaker.admit(), Admission::kSkip);  // one probe at a time
  breaker.record(Admission::kProbe, false);      // a failing probe reopens it
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker.admit(), Admission::kSkip);

  clock.advance(1000ms);
  const Admission probe = breaker.admit();
  ASSERT_EQ(probe, Admission::kProbe);
  breaker.record(probe, true);  // a passing probe closes it
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_EQ(breaker.admit(), Admission::kPass);
  EXPECT_THAT(log.lines,
              ElementsAre("breaker of provider primary: closed -> open after 3 consecutive "
                          "transport failures; skipped for 1000 ms",
                          "breaker of provider primary: open -> half_open: one probe at a time",
                          "breaker of provider primary: half_open -> open: the probe failed; "
                          "skipped for 1000 ms",
                          "breaker of provider primary: open -> half_open: one probe at a time",
                          "breaker of provider primary: half_open -> closed: the probe passed"));
}

TEST(Breaker, EachChangeOfStateIsABreakerHookEvent) {
  core::ManualClock clock;
  std::vector<std::string> bodies;
  std::mutex mutex;
  telemetry::Hooks hooks({{"http://receiver/", {"breaker"}, ""}},
                         [&](const std::string&, const std::string& body, const auto&) {
                           std::lock_guard lock(mutex);
                           bodies.push_back(body);
                           return true;
                         });
  Breaker breaker("primary", {1, 1000}, clock, nullptr, &hooks);
  breaker.record(breaker.admit(), false);
  clock.advance(1000ms);
  breaker.record(breaker.admit(), true);
  hooks.flush();
  std::lock_guard lock(mutex);
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_EQ(bodies[0], R"({"event":"breaker","unix_ms":)" + std::to_string(clock.unix_ms() - 1000) +
                           R"(,"provider":"primary","from":"closed","to":"open"})");
  EXPECT_NE(bodies[1].find(R"("from":"open","to":"half_open")"), std::string::npos);
  EXPECT_NE(bodies[2].find(R"("from":"half_open","to":"closed")"), std::string::npos);
}

TEST(Breaker, WorkersRacingForTheProbeLetExactlyOneThrough) {
  core::ManualClock clock;
  Breaker breaker("primary", {1, 1000}, clock, nullptr);
  breaker.record(breaker.admit(), false);
  clock.advance(1000ms);
  std::atomic<int> probes{0};
  std::atomic<int> skips{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        Admission a = breaker.admit();
        (a == Admission::kProbe ? probes : skips).fetch_add(1);
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(probes.load(), 1);
  EXPECT_EQ(skips.load(), 3999);
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
}

TEST(Breaker, TransportFailuresAreConnectTimeout5xxAnd429) {
  EXPECT_TRUE(is_transport_failure(upstream(ErrorCode::kConnect, 0)));
  EXPECT_TRUE(is_transport_failure(upstream(ErrorCode::kTimeout, 0)));
  EXPECT_TRUE(is_transport_failure(upstream(ErrorCode::kRateLimited, 429)));
  EXPECT_TRUE(is_transport_failure(upstream(ErrorCode::kUpstream, 503)));
  EXPECT_FALSE(is_transport_failure(upstream(ErrorCode::kUpstream, 404)));
  EXPECT_FALSE(is_transport_failure(upstream(ErrorCode::kRejected, 400)));
  EXPECT_FALSE(is_transport_failure(upstream(ErrorCode::kBadResponse, 200)));
}

// A router whose primary has a breaker and whose workload adapts, on its own registry.
class AdaptiveRouterTest : public RouterTest {
 protected:
  AdaptiveRouterTest() : adaptive_registry_(1) {
    config_.providers[0].breaker = config::Breaker{2, 1000};
    config_.workloads[0].retries.max = 0;
    config_.workloads[0].bands.window_s = 60;  // one-second buckets
    config_.workloads[0].adapt = config::Adapt{0.30, 0.20, 20, 0.25};
    router_ =
        std::make_unique<Router>(config_, providers_, adaptive_registry_, *spend_, clock_, &log_);
  }

  RouteResult go() {
    WorkerContext worker{loop_, http_, adaptive_registry_.shard(0), schemas_, rng_};
    auto future = net::co_spawn(
        loop_, router_->route(*router_->find("agentic"), request_, worker, "req"), net::use_future);
    loop_.run();
    loop_.restart();
    return future.get();
  }

  // One request 100 ms after the last, the primary failing its checks `fail_in_20` times in 20.
  RouteResult step(int fail_in_20) {
    clock_.advance(100ms);
    primary_->script.push_back(tool_answer(
        primary_->calls % 20 < fail_in_20 ? R"({"unit":"kelvin"})" : R"({"unit":"c"})"));
    fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
    RouteResult r = go();
    primary_->script.clear();
    fallback_->script.clear();
    return r;
  }

  [[nodiscard]] RouteState route_state() const { return router_->find("agentic")->adapt->state(); }

  telemetry::Registry adaptive_registry_;
  RecordingLogger log_;
};

TEST_F(AdaptiveRouterTest, OpenBreakerSkipsThePrimaryUntilAProbePasses) {
  const Breaker& breaker = *router_->find("agentic")->route[0].breaker;
  for (int i = 0; i < 2; ++i) {
    primary_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 503)));
    fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
    EXPECT_EQ(go().outcome, Outcome::kFallback);
  }
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  EXPECT_THAT(adaptive_registry_.render(),
              HasSubstr("backstop_breaker_state{provider=\"primary\",state=\"open\"} 1\n"));

  // Open: the primary is not called at all; the fallback serves at once.
  fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  RouteResult skipped = go();
  EXPECT_EQ(primary_->calls, 2);
  EXPECT_EQ(skipped.outcome, Outcome::kFallback);
  ASSERT_EQ(skipped.attempts.size(), 1u);
  EXPECT_EQ(skipped.attempts[0].provider, "fallback");
  EXPECT_EQ(counter(router_->metrics().fallbacks_total,
                    {"agentic", "primary", "fallback", "upstream_error"}),
            0);

  // After the cooldown one request probes the primary; it passes and closes the breaker.
  clock_.advance(1000ms);
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  EXPECT_EQ(go().outcome, Outcome::kPrimary);
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_THAT(adaptive_registry_.render(),
              HasSubstr("backstop_breaker_state{provider=\"primary\",state=\"closed\"} 1\n"));
}

TEST_F(AdaptiveRouterTest, AProbeCutByTheDeadlineLeavesTheBreakerHalfOpen) {
  Breaker& breaker = *router_->find("agentic")->route[0].breaker;
  for (int i = 0; i < 2; ++i) breaker.record(breaker.admit(), false);
  clock_.advance(1000ms);
  // The probe outlives the request's deadline: that says nothing about the provider.
  primary_->on_call = [this](providers::CallContext&) { clock_.advance(200s); };
  primary_->script.push_back(std::unexpected(upstream(ErrorCode::kTimeout, 0)));
  EXPECT_EQ(go().outcome, Outcome::kFailed);
  EXPECT_EQ(primary_->calls, 1);
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
  EXPECT_EQ(breaker.admit(), Admission::kProbe);  // the next caller probes
}

TEST_F(AdaptiveRouterTest, NoBypassForARequestTheNextTargetCannotCarry) {
  for (int i = 0; i < 300 && route_state() == RouteState::kNormal; ++i) step(20);
  ASSERT_EQ(route_state(), RouteState::kBypass);
  fallback_->carries_all = false;
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  RouteResult r = go();
  EXPECT_FALSE(r.bypassed);
  EXPECT_EQ(r.outcome, Outcome::kPrimary);
}

TEST_F(AdaptiveRouterTest, WrongAnswersDoNotOpenTheBreaker) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(step(20).outcome, Outcome::kFallback);
  EXPECT_EQ(router_->find("agentic")->route[0].breaker->state(), BreakerState::kClosed);
}

TEST_F(AdaptiveRouterTest, OpenBreakerOnTheLastTargetIsStillTried) {
  config_.providers[0].breaker.reset();
  config_.providers[1].breaker = config::Breaker{1, 1000};
  telemetry::Registry registry(1);
  router_ = std::make_unique<Router>(config_, providers_, registry, *spend_, clock_);
  WorkerContext worker{loop_, http_, registry.shard(0), schemas_, rng_};
  for (int i = 0; i < 2; ++i) {
    primary_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 500)));
    fallback_->script.push_back(std::unexpected(upstream(ErrorCode::kUpstream, 500)));
    auto future = net::co_spawn(
        loop_, router_->route(*router_->find("agentic"), request_, worker, "req"), net::use_future);
    loop_.run();
    loop_.restart();
    EXPECT_EQ(future.get().outcome, Outcome::kFailed);
  }
  EXPECT_EQ(fallback_->calls, 2);
}

TEST_F(AdaptiveRouterTest, PrimaryIsBypassedWhenItDegradesAndRestoredViaProbes) {
  for (int i = 0; i < 60; ++i) EXPECT_EQ(step(1).bypassed, false);  // 5 %: normal
  EXPECT_EQ(route_state(), RouteState::kNormal);

  int until_bypass = 0;
  while (route_state() == RouteState::kNormal && until_bypass < 300) {
    step(12);  // 60 %
    ++until_bypass;
  }
  ASSERT_EQ(route_state(), RouteState::kBypass);
  EXPECT_THAT(adaptive_registry_.render(),
              HasSubstr("backstop_route_state{workload=\"agentic\",state=\"bypass\"} 1\n"));
  ASSERT_EQ(log_.lines.size(), 1u);
  EXPECT_THAT(log_.lines[0], HasSubstr("workload agentic: bypass: fallback rate "));

  // Bypassed: three requests in four go to the fallback first; the fourth probes the primary.
  int bypassed = 0;
  int probes = 0;
  for (int i = 0; i < 8; ++i) {
    const int calls = primary_->calls;
    RouteResult r = step(1);
    if (r.bypassed) {
      ++bypassed;
      EXPECT_EQ(primary_->calls, calls);  // the fallback passed: the primary was never asked
      EXPECT_EQ(r.served_by->provider->name(), "fallback");
    } else {
      ++probes;
      EXPECT_EQ(primary_->calls, calls + 1);
    }
  }
  EXPECT_EQ(bypassed, 6);
  EXPECT_EQ(probes, 2);

  // Back to 5 %: the probes' rate falls and the primary is restored.
  int until_restore = 0;
  while (route_state() == RouteState::kBypass && until_restore < 1000) {
    step(1);
    ++until_restore;
  }
  ASSERT_EQ(route_state(), RouteState::kNormal);
  ASSERT_EQ(log_.lines.size(), 2u);
  EXPECT_THAT(log_.lines[1], HasSubstr("workload agentic: restore: the probes' fallback rate "));
  // Judged afresh from the restore on: the bypass period does not bypass it again.
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(step(1).bypassed);
  EXPECT_EQ(route_state(), RouteState::kNormal);
  EXPECT_THAT(adaptive_registry_.render(),
              HasSubstr("backstop_route_state{workload=\"agentic\",state=\"normal\"} 1\n"));
}

}  // namespace
}  // namespace backstop::routing

namespace backstop::routing {
namespace {

TEST_F(AdaptiveRouterTest, ProbesOfABypassedPrimaryTakeAPlaceWithinItsMaxInFlight) {
  config_.providers[0].max_in_flight = 1;
  telemetry::Registry registry(1);
  router_ = std::make_unique<Router>(config_, providers_, registry, *spend_, clock_);
  const Workload& w = *router_->find("agentic");
  WorkerContext worker{loop_, http_, registry.shard(0), schemas_, rng_};
  auto start = [&] {
    clock_.advance(100ms);
    auto future = net::co_spawn(loop_, router_->route(w, request_, worker, "req"), net::use_future);
    loop_.poll();
    loop_.restart();
    return future;
  };
  for (int i = 0; i < 300 && w.adapt->state() == RouteState::kNormal; ++i) {
    primary_->script.push_back(tool_answer(R"({"unit":"kelvin"})"));
    fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
    start().get();
    primary_->script.clear();
  }
  ASSERT_EQ(w.adapt->state(), RouteState::kBypass);

  // The next probe takes the primary's only place and is held there.
  primary_->hold = true;
  primary_->script.push_back(tool_answer(R"({"unit":"c"})"));
  for (int i = 0; i < 8; ++i) fallback_->script.push_back(tool_answer(R"({"unit":"f"})"));
  const int calls = primary_->calls;
  std::future<RouteResult> probe;
  for (int i = 0; i < 4 && primary_->calls == calls; ++i) probe = start();
  ASSERT_EQ(primary_->calls, calls + 1);

  // The probe after it finds no place: rate_limited at once, without a call.
  std::optional<RouteResult> refused;
  for (int i = 0; i < 4 && !refused; ++i) {
    RouteResult r = start().get();
    if (!r.bypassed) refused = std::move(r);
  }
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(primary_->calls, calls + 1);
  ASSERT_FALSE(refused->attempts.empty());
  EXPECT_EQ(refused->attempts[0].provider, "primary");
  EXPECT_EQ(refused->attempts[0].reason, Reason::kRateLimited);
  EXPECT_EQ(refused->attempts[0].status, 0);
  EXPECT_EQ(refused->outcome, Outcome::kFallback);

  primary_->release();
  loop_.run();
  EXPECT_EQ(probe.get().outcome, Outcome::kPrimary);
}

}  // namespace
}  // namespace backstop::routing
