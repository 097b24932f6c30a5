// The whole gateway on port 0 against the mock upstream, over real sockets.
#include "server/gateway.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "config/config.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "mock/mock_upstream.h"
#include "mock/test_upstream.h"
#include "telemetry/hooks.h"

namespace backstop {
namespace {

namespace net = boost::asio;

using Mock = mock::MockServer;
using mock::replace_all;

// A port with nothing listening on it.
std::uint16_t closed_port() {
  net::io_context loop;
  net::ip::tcp::acceptor a(loop, {net::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

constexpr const char* kConfig = R"(
listen: 127.0.0.1:0
threads: 1
server: {drain_timeout_ms: 100, max_body_bytes: 65536}
log: {access_log: ""}
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:MOCK/v1
    model: v4-flash
    timeout_ms: 300
    price: {input: 0.14, output: 0.28}
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:MOCK
    model: claude-sonnet
    price: {input: 3.0, output: 15.0}
  gpt:
    kind: openai
    base_url: http://127.0.0.1:MOCK/v1
    model: gpt-x
    price: {input: 1.0, output: 2.0}
  dead:
    kind: openai
    base_url: http://127.0.0.1:DEAD/v1
    model: nothing
    connect_timeout_ms: 500
workloads:
  agentic:
    route: [v4, claude]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
    retries: {max: 1, base_backoff_ms: 1}
  classify:
    route: [v4, gpt]
    validate: {content: schema}
  docs:
    route: [v4, claude]
    validate: {content: non_empty}
  refused:
    route: [dead, gpt]
    validate: {content: non_empty}
  plain:
    route: [v4]
  dead-only:
    route: [dead]
  held:
    route: [v4, gpt]
    stream_mode: buffer
  passed:
    route: [v4, claude]
    validate: {tool_call: required}
    stream_mode: pass
  claude-plain:
    route: [claude, gpt]
  claude-checked:
    route: [claude, gpt]
    validate: {content: non_empty}
)";

constexpr const char* kTools = R"([{"type":"function","function":{"name":"get_weather",
  "parameters":{"type":"object","properties":{"city":{"type":"string"},
  "unit":{"type":"string","enum":["c","f"]}},"required":["city","unit"]}}}])";

class GatewayTest : public ::testing::Test {
 protected:
  // The config the gateway runs on, before the ports are filled in.
  [[nodiscard]] virtual std::string config_text() const { return kConfig; }

  void SetUp() override {
    std::string yaml = replace_all(config_text(), "MOCK", std::to_string(mock_.port()));
    yaml = replace_all(yaml, "DEAD", std::to_string(closed_port()));
    auto loaded = config::parse(yaml, "test.yaml");
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
    server::GatewayOptions options;
    options.logger = &logger_;
    auto g = server::Gateway::create(loaded.config, std::move(options));
    ASSERT_TRUE(g.has_value()) << g.error().message;
    gateway_ = std::move(*g);
    ASSERT_TRUE(gateway_->start().has_value());
    origin_ = {false, "127.0.0.1", gateway_->port(), "", ""};
  }

  http::ClientResponse call(std::string method, std::string target, std::string body,
                            std::vector<http::Header> headers = {}) {
    http::ClientRequest request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    request.headers = std::move(headers);
    request.headers.push_back({"content-type", "application/json"});
    request.timeout = std::chrono::milliseconds(10'000);
    auto future = net::co_spawn(loop_, client_.send(origin_, std::move(request)), net::use_future);
    loop_.run();
    loop_.restart();
    auto response = future.get();
    EXPECT_TRUE(response.has_value()) << response.error().message;
    return response.value_or(http::ClientResponse{});
  }

  http::ClientResponse chat(const std::string& workload, const std::string& text,
                            bool tools = false, const std::string& extra = "") {
    std::string body = R"({"model":")" + workload + R"(","messages":[{"role":"user","content":)" +
                       boost::json::serialize(boost::json::value(text)) + "}]";
    if (tools) body += std::string(R"(,"tools":)") + kTools;
    body += extra + "}";
    return call("POST", "/v1/chat/completions", body);
  }

  double counter(telemetry::FamilyId family, std::vector<std::string> labels) {
    return gateway_->registry().counter_value(family, labels);
  }
  const telemetry::Metrics& metrics() { return gateway_->router().metrics(); }

  static boost::json::value json(const http::ClientResponse& r) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  }

  core::NullLogger logger_;
  Mock mock_;
  std::unique_ptr<server::Gateway> gateway_;
  http::Origin origin_;
  net::io_context loop_;
  http::Client client_{loop_};
};

TEST_F(GatewayTest, PassingPrimaryAnswersInOpenAIShape) {
  auto r = chat("agentic", "weather in Paris?", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-workload"), "agentic");
  EXPECT_EQ(r.header("x-backstop-served-by"), "v4");
  EXPECT_EQ(r.header("x-backstop-attempts"), "1");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "");
  EXPECT_FALSE(r.header("x-request-id").empty());
  auto body = json(r);
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(body.at("model"), "v4-flash");
  const auto& call0 = body.at_pointer("/choices/0/message/tool_calls/0/function");
  EXPECT_EQ(call0.at("name"), "get_weather");
  EXPECT_EQ(counter(metrics().requests_total, {"agentic", "primary"}), 1);
}

TEST_F(GatewayTest, ClientRequestIdIsEchoed) {
  auto r = call("POST", "/v1/chat/completions",
                R"({"model":"docs","messages":[{"role":"user","content":"hi"}]})",
                {{"x-request-id", "abc-123"}});
  EXPECT_EQ(r.header("x-request-id"), "abc-123");
}

struct ReasonCase {
  const char* fault;
  const char* reason;
};

class FallbackReasonTest : public GatewayTest, public ::testing::WithParamInterface<ReasonCase> {};

TEST_P(FallbackReasonTest, EachReasonFallsBackToClaude) {
  const ReasonCase& c = GetParam();
  auto r = chat("agentic", std::string("weather? [mock:") + c.fault + "@v4-flash]", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "claude");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), c.reason);
  auto body = json(r);
  EXPECT_EQ(body.at("model"), "claude-sonnet");
  EXPECT_EQ(body.at_pointer("/choices/0/message/tool_calls/0/function/name"), "get_weather");
  EXPECT_EQ(counter(metrics().fallbacks_total, {"agentic", "v4", "claude", c.reason}), 1);
  EXPECT_EQ(counter(metrics().requests_total, {"agentic", "fallback"}), 1);
}

INSTANTIATE_TEST_SUITE_P(Validation, FallbackReasonTest,
                         ::testing::Values(ReasonCase{"no_tool_call", "no_tool_call"},
                                           ReasonCase{"unknown_tool", "tool_mismatch"},
                                           ReasonCase{"invalid_json", "invalid_json"},
                                           ReasonCase{"schema", "schema"},
                                           ReasonCase{"empty", "no_tool_call"},
                                           ReasonCase{"truncated", "truncated"},
                                           ReasonCase{"bad_response", "bad_response"}),
                         [](const auto& info) { return std::string(info.param.fault); });

TEST_F(GatewayTest, ValidationFailureIsCountedPerReason) {
  chat("agentic", "weather? [mock:schema@v4-flash]", true);
  EXPECT_EQ(counter(metrics().validation_failures_total, {"agentic", "v4", "schema"}), 1);
  EXPECT_EQ(counter(metrics().attempts_total, {"agentic", "v4", "fail"}), 1);
  EXPECT_EQ(counter(metrics().attempts_total, {"agentic", "claude", "pass"}), 1);
}

TEST_F(GatewayTest, ContentChecksFallBack) {
  auto r = chat("docs", "hello [mock:empty@v4-flash]");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "empty");
  std::string format =
      R"(,"response_format":{"type":"json_schema","json_schema":{"name":"t","schema":)"
      R"({"type":"object","properties":{"label":{"enum":["a","b"]}},"required":["label"]}}})";
  auto s = chat("classify", "label it [mock:schema@v4-flash]", false, format);
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.header("x-backstop-fallback-reason"), "schema");
  EXPECT_EQ(s.header("x-backstop-served-by"), "gpt");
  auto ok = chat("classify", "label it", false, format);
  EXPECT_EQ(ok.header("x-backstop-served-by"), "v4");
}

TEST_F(GatewayTest, RateLimitIsRetriedThenFallsBack) {
  auto r = chat("agentic", "weather? [mock:rate_limited@v4-flash]", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-attempts"), "3");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "rate_limited");
  EXPECT_EQ(counter(metrics().attempts_total, {"agentic", "v4", "fail"}), 2);
}

TEST_F(GatewayTest, ServerErrorRetrySucceedsOnTheSameTarget) {
  auto r =
      call("POST", "/v1/chat/completions",
           std::string(R"({"model":"agentic","tools":)") + kTools +
               R"(,"messages":[{"role":"user","content":"w? [mock:server_error*1@v4-flash]"}]})",
           {{"x-request-id", "retry-once-1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "v4");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
}

TEST_F(GatewayTest, TimeoutFallsBack) {
  auto r = chat("docs", "hello [mock:timeout@v4-flash]");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "timeout");
  EXPECT_EQ(r.header("x-backstop-served-by"), "claude");
}

TEST_F(GatewayTest, ATimedOutTargetIsNotRetriedButLeftForTheNext) {
  // agentic has retries {max: 1}: a 5xx would have had a second call to v4.
  auto r = chat("agentic", "weather? [mock:timeout@v4-flash]", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_EQ(r.header("x-backstop-served-by"), "claude");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "timeout");
  EXPECT_EQ(counter(metrics().attempts_total, {"agentic", "v4", "fail"}), 1);
}

TEST_F(GatewayTest, PipelinedRequestsAreEachAnsweredWhileTheClientIsWatched) {
  net::ip::tcp::socket socket(loop_);
  socket.connect({net::ip::make_address("127.0.0.1"), gateway_->port()});
  const std::string body = R"({"model":"docs","messages":[{"role":"user","content":"hi"}]})";
  const auto request = [&body](std::string_view extra) {
    return "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: "
           "application/json\r\n" +
           std::string(extra) + "content-length: " + std::to_string(body.size()) + "\r\n\r\n" +
           body;
  };
  net::write(socket, net::buffer(request("") + request("") + request("connection: close\r\n")));
  std::string got;
  char buffer[4096];
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = socket.read_some(net::buffer(buffer), ec);
    got.append(buffer, n);
    if (ec) break;
  }
  std::size_t answered = 0;
  for (std::size_t at = got.find("HTTP/1.1 200 OK"); at != std::string::npos;
       at = got.find("HTTP/1.1 200 OK", at + 1)) {
    ++answered;
  }
  EXPECT_EQ(answered, 3u) << got;
  EXPECT_EQ(counter(metrics().requests_total, {"docs", "primary"}), 3);
}

TEST_F(GatewayTest, ConnectionRefusedFallsBack) {
  auto r = chat("refused", "hello");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "connect");
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
}

// The gateway with a breaker on the dead provider and a workload that adapts.
class AdaptiveGatewayTest : public GatewayTest {
 protected:
  std::string config_text() const override {
    std::string text = replace_all(kConfig, "    connect_timeout_ms: 500\n",
                                   "    connect_timeout_ms: 500\n"
                                   "    breaker: {failures: 1, cooldown_ms: 600000}\n");
    return text +
           "  adaptive:\n"
           "    route: [v4, gpt]\n"
           "    validate: {content: non_empty}\n"
           "    adapt: {bypass_above: 0.5, restore_below: 0.1, min_requests: 1, probe: 0.01}\n";
  }
};

TEST_F(AdaptiveGatewayTest, OpenBreakerSkipsTheDeadProviderWithoutAnAttempt) {
  auto first = chat("refused", "hello");
  EXPECT_EQ(first.header("x-backstop-attempts"), "2");
  auto second = chat("refused", "hello");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(second.header("x-backstop-attempts"), "1");
  EXPECT_NE(gateway_->registry().render().find(
                "backstop_breaker_state{provider=\"dead\",state=\"open\"} 1\n"),
            std::string::npos);
}

TEST_F(AdaptiveGatewayTest, BypassedStreamSaysSoInAHeaderAndSkipsThePrimary) {
  chat("adaptive", "hello [mock:empty@v4-flash]");
  auto r = chat("adaptive", "hello", false, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("x-backstop-route"), "bypass");
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(r.header("x-backstop-attempts"), "1");
}

TEST_F(AdaptiveGatewayTest, BypassedRequestSaysSoInAHeader) {
  auto failed = chat("adaptive", "hello [mock:empty@v4-flash]");
  EXPECT_EQ(failed.header("x-backstop-route"), "");  // tried the primary first
  EXPECT_EQ(failed.header("x-backstop-served-by"), "gpt");
  auto bypassed = chat("adaptive", "hello");
  ASSERT_EQ(bypassed.status, 200) << bypassed.body;
  EXPECT_EQ(bypassed.header("x-backstop-route"), "bypass");
  EXPECT_EQ(bypassed.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(bypassed.header("x-backstop-attempts"), "1");
  EXPECT_NE(gateway_->registry().render().find(
                "backstop_route_state{workload=\"adaptive\",state=\"bypass\"} 1\n"),
            std::string::npos);
}

// The gateway with workloads that hedge, track client retries and shadow a candidate.
class ActingGatewayTest : public GatewayTest {
 protected:
  std::string config_text() const override {
    return std::string(kConfig) +
           "  hedged:\n"
           "    route: [v4, gpt]\n"
           "    validate: {content: non_empty}\n"
           "    hedge: {after_ms: 50}\n"
           "  hedged_pass:\n"
           "    route: [v4, gpt]\n"
           "    stream_mode: pass\n"
           "    hedge: {after_ms: 50}\n"
           "  sessions:\n"
           "    route: [v4, gpt]\n"
           "    validate: {content: non_empty}\n"
           "    sessions: {retry_threshold: 1, window_s: 600, escalate_s: 900}\n"
           "  shadowed:\n"
           "    route: [v4, claude]\n"
           "    validate: {content: non_empty}\n"
           "    shadow: {provider: gpt, sample: 1.0}\n";
  }
  double acting_counter(std::string_view name, const std::string& labels) {
    const std::string text = gateway_->registry().render();
    const std::string line = std::string(name) + "{" + labels + "} ";
    const std::size_t at = text.find(line);
    return at == std::string::npos ? 0 : std::stod(text.substr(at + line.size()));
  }
};

TEST_F(ActingGatewayTest, ASlowPrimaryIsHedgedAndTheHedgeWins) {
  // The primary waits a second; the hedge starts after 50 ms and answers at once.
  auto r = chat("hedged", "hello [mock:slow@v4-flash]");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "timeout");
  EXPECT_EQ(acting_counter("backstop_hedges_total", "workload=\"hedged\",winner=\"hedge\""), 1);
  // A primary that answers in time is not hedged.
  auto fast = chat("hedged", "hello");
  EXPECT_EQ(fast.header("x-backstop-served-by"), "v4");
  EXPECT_EQ(fast.header("x-backstop-attempts"), "1");
}

TEST_F(ActingGatewayTest, AHeldStreamIsHedgedBeforeItsFirstByte) {
  auto r = chat("hedged", "hello [mock:slow@v4-flash]", false, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(acting_counter("backstop_hedges_total", "workload=\"hedged\",winner=\"hedge\""), 1);
}

TEST_F(ActingGatewayTest, APassThroughStreamIsHedgedUntilItsFirstByte) {
  auto r = chat("hedged_pass", "hello [mock:slow@v4-flash]", false, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(acting_counter("backstop_hedges_total", "workload=\"hedged_pass\",winner=\"hedge\""),
            1);
  // A stream that begins in time is not hedged.
  auto fast = chat("hedged_pass", "hello", false, R"(,"stream":true)");
  EXPECT_EQ(fast.header("x-backstop-served-by"), "v4");
  EXPECT_EQ(fast.header("x-backstop-attempts"), "1");
}

TEST_F(ActingGatewayTest, ASessionRetryingPastItsThresholdGoesStraightToTheFallback) {
  const std::vector<http::Header> session = {{"x-session-id", "s-42"}};
  const std::string body = R"({"model":"sessions","messages":[{"role":"user","content":"hello"}]})";
  auto first = call("POST", "/v1/chat/completions", body, session);
  EXPECT_EQ(first.header("x-backstop-served-by"), "v4");
  auto retry = call("POST", "/v1/chat/completions", body, session);
  EXPECT_EQ(retry.header("x-backstop-served-by"), "v4");  // one retry: at the threshold
  auto escalated = call("POST", "/v1/chat/completions", body, session);
  ASSERT_EQ(escalated.status, 200) << escalated.body;
  EXPECT_EQ(escalated.header("x-backstop-route"), "escalate");
  EXPECT_EQ(escalated.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(escalated.header("x-backstop-fallback-reason"), "retry");
  EXPECT_EQ(acting_counter("backstop_client_retries_total", "workload=\"sessions\""), 2);
  // An SDK's own retry header counts too.
  call("POST", "/v1/chat/completions",
       R"({"model":"sessions","messages":[{"role":"user","content":"other"}]})",
       {{"x-stainless-retry-count", "1"}});
  EXPECT_EQ(acting_counter("backstop_client_retries_total", "workload=\"sessions\""), 3);
}

TEST_F(ActingGatewayTest, AShadowCopyIsCheckedAndCountedWithoutTouchingTheAnswer) {
  auto r = chat("shadowed", "hello [mock:empty@gpt-x]");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "v4");
  EXPECT_EQ(r.header("x-backstop-attempts"), "1");
  // The shadow runs off the request's path: wait for its verdict without a fixed sleep.
  for (int i = 0; i < 500 && acting_counter("backstop_shadow_verdicts_total",
                                            "workload=\"shadowed\",provider=\"gpt\",result="
                                            "\"fail\",reason=\"empty\"") == 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(acting_counter("backstop_shadow_verdicts_total",
                           "workload=\"shadowed\",provider=\"gpt\",result=\"fail\",reason="
                           "\"empty\""),
            1);
  EXPECT_EQ(counter(metrics().requests_total, {"shadowed", "primary"}), 1);
}

TEST_F(GatewayTest, EveryTargetFailingGives502WithEveryAttempt) {
  auto r =
      chat("agentic", "w? [mock:invalid_json@v4-flash] [mock:server_error@claude-sonnet]", true);
  ASSERT_EQ(r.status, 502) << r.body;
  auto body = json(r);
  EXPECT_EQ(body.at_pointer("/error/code"), "all_targets_failed");
  const auto& attempts = body.at_pointer("/error/attempts").as_array();
  ASSERT_EQ(attempts.size(), 3u);  // v4 once (invalid answers are not retried), claude twice
  EXPECT_EQ(attempts[0].at("provider"), "v4");
  EXPECT_EQ(attempts[0].at("model"), "v4-flash");
  EXPECT_EQ(attempts[0].at("reason"), "invalid_json");
  EXPECT_EQ(attempts[0].at("status"), 200);
  EXPECT_EQ(attempts[1].at("provider"), "claude");
  EXPECT_EQ(attempts[1].at("reason"), "upstream_error");
  EXPECT_EQ(attempts[1].at("status"), 500);
  EXPECT_TRUE(attempts[1].at("latency_ms").is_number());
  EXPECT_TRUE(attempts[1].at("detail").is_string());
  EXPECT_EQ(counter(metrics().requests_total, {"agentic", "failed"}), 1);
}

TEST_F(GatewayTest, BadInputGetsTheSpecific4xx) {
  auto not_json = call("POST", "/v1/chat/completions", "{\"model\": ");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_NE(json(not_json).at_pointer("/error/message").as_string().find("not valid JSON"),
            std::string::npos);
  auto no_messages = call("POST", "/v1/chat/completions", R"({"model":"docs"})");
  EXPECT_EQ(no_messages.status, 400);
  EXPECT_NE(json(no_messages).at_pointer("/error/message").as_string().find("messages"),
            std::string::npos);
  auto bad_role = call("POST", "/v1/chat/completions",
                       R"({"model":"docs","messages":[{"role":"robot","content":"x"}]})");
  EXPECT_EQ(bad_role.status, 400);
  auto unknown = chat("nope", "hi");
  EXPECT_EQ(unknown.status, 404);
  auto unknown_body = json(unknown);
  EXPECT_EQ(unknown_body.at_pointer("/error/code"), "model_not_found");
  EXPECT_NE(unknown_body.at_pointer("/error/message").as_string().find("agentic"),
            std::string::npos);
  EXPECT_EQ(call("GET", "/v1/chat/completions", "").status, 405);
  EXPECT_EQ(call("GET", "/nowhere", "").status, 404);
  EXPECT_EQ(counter(metrics().requests_total, {"", "rejected"}), 4);
}

TEST(AccessLogTest, OneLinePerRequestWithoutPromptOrKey) {
  Mock mock;
  std::string path = ::testing::TempDir() + "backstop_access_log_test.jsonl";
  std::remove(path.c_str());
  std::string yaml = replace_all(kConfig, "MOCK", std::to_string(mock.port()));
  yaml = replace_all(yaml, "DEAD", std::to_string(closed_port()));
  yaml = replace_all(yaml, R"(log: {access_log: ""})", "log: {access_log: \"" + path + "\"}");
  yaml = replace_all(yaml, "    model: v4-flash\n",
                     "    model: v4-flash\n    api_key_env: TEST_V4_KEY\n");
  auto loaded = config::parse(yaml, "test.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  core::NullLogger logger;
  server::GatewayOptions options;
  options.logger = &logger;
  options.env = [](const char* name) -> const char* {
    return std::string_view(name) == "TEST_V4_KEY" ? "sk-very-secret" : nullptr;
  };
  auto gateway = server::Gateway::create(loaded.config, std::move(options));
  ASSERT_TRUE(gateway.has_value()) << gateway.error().message;
  ASSERT_TRUE((*gateway)->start().has_value());

  net::io_context loop;
  http::Client client(loop);
  http::Origin origin{false, "127.0.0.1", (*gateway)->port(), "", ""};
  auto send = [&](std::string target, std::string body) {
    http::ClientRequest request;
    request.method = body.empty() ? "GET" : "POST";
    request.target = std::move(target);
    request.body = std::move(body);
    request.headers = {{"content-type", "application/json"}, {"x-request-id", "log-test-1"}};
    auto future = net::co_spawn(loop, client.send(origin, std::move(request)), net::use_future);
    loop.run();
    loop.restart();
    return future.get();
  };
  auto r = send("/v1/chat/completions",
                R"({"model":"docs","messages":[{"role":"user","content":"TOP SECRET PROMPT"}]})");
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->status, 200);
  ASSERT_TRUE(send("/healthz", "").has_value());  // probes are not logged
  (*gateway)->stop();
  (*gateway)->wait();

  std::ifstream file(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 1u);
  auto entry = boost::json::parse(lines[0]);
  EXPECT_EQ(entry.at("request_id"), "log-test-1");
  EXPECT_EQ(entry.at("workload"), "docs");
  EXPECT_EQ(entry.at("outcome"), "primary");
  EXPECT_EQ(entry.at("served_by"), "v4");
  EXPECT_EQ(entry.at_pointer("/attempts/0/result"), "pass");
  EXPECT_EQ(lines[0].find("TOP SECRET"), std::string::npos);
  EXPECT_EQ(lines[0].find("sk-very-secret"), std::string::npos);
  std::remove(path.c_str());
}

TEST(AccessLogTest, ARejectedRequestsLineSaysWhyAndWhetherItStreamed) {
  Mock mock;
  std::string path = ::testing::TempDir() + "backstop_access_log_rejected_test.jsonl";
  std::remove(path.c_str());
  std::string yaml = replace_all(kConfig, "MOCK", std::to_string(mock.port()));
  yaml = replace_all(yaml, "DEAD", std::to_string(closed_port()));
  yaml = replace_all(yaml, R"(log: {access_log: ""})", "log: {access_log: \"" + path + "\"}");
  auto loaded = config::parse(yaml, "test.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  core::NullLogger logger;
  server::GatewayOptions options;
  options.logger = &logger;
  auto gateway = server::Gateway::create(loaded.config, std::move(options));
  ASSERT_TRUE(gateway.has_value()) << gateway.error().message;
  ASSERT_TRUE((*gateway)->start().has_value());
  net::io_context loop;
  http::Client client(loop);
  http::Origin origin{false, "127.0.0.1", (*gateway)->port(), "", ""};
  for (
      std::string body :
      {R"({"model":"docs","stream":true,"max_tokens":5,"messages":[{"role":"robot","content":"x"}]})",
       R"({"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]})"}) {
    http::ClientRequest request;
    request.target = "/v1/messages";
    request.headers = {{"content-type", "application/json"}};
    request.body = body;
    auto future = net::co_spawn(loop, client.send(origin, std::move(request)), net::use_future);
    loop.run();
    loop.restart();
    ASSERT_TRUE(future.get().has_value());
  }
  (*gateway)->stop();
  (*gateway)->wait();
  std::ifstream file(path);
  std::vector<boost::json::value> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(boost::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("status"), 400);
  EXPECT_EQ(lines[0].at("outcome"), "rejected");
  EXPECT_EQ(lines[0].at("stream"), true);
  EXPECT_EQ(lines[0].at_pointer("/error/code"), "invalid_argument");
  EXPECT_EQ(lines[0].at_pointer("/error/message"),
            "`messages[0].role` must be one of user, assistant, system; got \"robot\"");
  EXPECT_EQ(lines[1].at("status"), 404);
  EXPECT_EQ(lines[1].at("stream"), false);
  EXPECT_EQ(lines[1].at_pointer("/error/code"), "model_not_found");
  std::remove(path.c_str());
}

TEST_F(GatewayTest, OversizedBodiesGet413InTheEndpointsDialect) {
  std::string big(70'000, 'x');
  auto openai = call("POST", "/v1/chat/completions", big);
  EXPECT_EQ(openai.status, 413);
  EXPECT_EQ(json(openai).at_pointer("/error/code"), "payload_too_large");
  auto anthropic = call("POST", "/v1/messages", big);
  EXPECT_EQ(anthropic.status, 413);
  auto body = json(anthropic);
  EXPECT_EQ(body.at("type"), "error");
  EXPECT_EQ(body.at_pointer("/error/type"), "request_too_large");
}

TEST_F(GatewayTest, ModelsHealthAndReadiness) {
  auto models = json(call("GET", "/v1/models", ""));
  ASSERT_EQ(models.at("data").as_array().size(), 10u);
  EXPECT_EQ(models.at_pointer("/data/0/id"), "agentic");
  auto anthropic = json(call("GET", "/v1/models", "", {{"anthropic-version", "2023-06-01"}}));
  EXPECT_EQ(anthropic.at_pointer("/data/0/type"), "model");
  EXPECT_EQ(anthropic.at("has_more"), false);
  EXPECT_EQ(anthropic.at("first_id"), "agentic");
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(call("GET", "/readyz", "").status, 200);
}

TEST_F(GatewayTest, AnthropicClientsGetAnthropicShape) {
  auto r = call("POST", "/v1/messages",
                R"({"model":"docs","max_tokens":64,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = json(r);
  EXPECT_EQ(body.at("type"), "message");
  EXPECT_EQ(body.at("role"), "assistant");
}

// What Claude Code sends: system messages inside `messages` (its last entry among them),
// betas, thinking, context management, effort, a deferred tool, a JSON string as user_id.
constexpr const char* kClaudeCodeBody = R"({"model":"WORKLOAD","max_tokens":32000,"stream":false,
  "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332;"},
            {"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],
  "messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>r</system-reminder>"},
                                        {"type":"text","text":"say hi"}]},
              {"role":"system","content":[{"type":"text","text":"# Environment",
                                           "cache_control":{"type":"ephemeral"}}]}],
  "tools":[{"name":"DeferredToolPlaceholder","description":"d","defer_loading":true,
            "input_schema":{"type":"object","properties":{}}}],
  "metadata":{"user_id":"{\"device_id\":\"abc\"}"},
  "thinking":{"type":"adaptive","display":"omitted"},
  "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
  "output_config":{"effort":"high"}})";

const std::vector<http::Header> kClaudeCodeHeaders = {
    {"anthropic-version", "2023-06-01"},
    {"anthropic-beta", "claude-code-20250219,context-management-2025-06-27"},
    {"x-api-key", "anything"}};

TEST_F(GatewayTest, ClaudeCodesFirstRequestIsServedOnEveryKindOfRoute) {
  // docs: a translating OpenAI primary with checks; plain: the primary alone; anthropic-only
  // is not configured here, the translated route is the one that used to answer 400.
  for (std::string workload : {"docs", "plain"}) {
    auto r = call("POST", "/v1/messages?beta=true",
                  replace_all(kClaudeCodeBody, "WORKLOAD", workload), kClaudeCodeHeaders);
    ASSERT_EQ(r.status, 200) << workload << ": " << r.body;
    EXPECT_EQ(r.header("x-backstop-served-by"), "v4") << workload;
    EXPECT_EQ(json(r).at("type"), "message");
  }
}

TEST_F(GatewayTest, CountTokensIsForwardedToTheFirstAnthropicTarget) {
  const std::string body =
      R"({"model":"docs","messages":[{"role":"user","content":"how many tokens is this?"}]})";
  auto r = call("POST", "/v1/messages/count_tokens", body, kClaudeCodeHeaders);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "claude");
  EXPECT_EQ(r.header("x-backstop-token-count"), "");
  EXPECT_GT(json(r).at("input_tokens").as_int64(), 0);
}

TEST_F(GatewayTest, CountTokensWithoutAnAnthropicTargetIsALocalEstimate) {
  const std::string body = R"({"model":"classify","system":"Label it.","messages":[
    {"role":"user","content":")" +
                           std::string(400, 'a') + R"("}]})";
  auto r = call("POST", "/v1/messages/count_tokens", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-token-count"), "estimate");
  const std::int64_t tokens = json(r).at("input_tokens").as_int64();
  EXPECT_GE(tokens, 100);  // 409 bytes of text at about four a token, plus framing
  EXPECT_LE(tokens, 130);
  auto unknown = call("POST", "/v1/messages/count_tokens",
                      R"({"model":"nope","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json(unknown).at_pointer("/error/type"), "not_found_error");
}

TEST_F(GatewayTest, UnknownPathsAnswerInTheirEndpointsDialect) {
  auto anthropic = call("POST", "/v1/messages/batches", "{}");
  EXPECT_EQ(anthropic.status, 404);
  EXPECT_EQ(json(anthropic).at("type"), "error");
  EXPECT_EQ(json(anthropic).at_pointer("/error/type"), "not_found_error");
  auto openai = call("POST", "/v1/chat/completion", "{}");
  EXPECT_EQ(openai.status, 404);
  EXPECT_EQ(json(openai).at_pointer("/error/code"), "not_found");
  EXPECT_EQ(call("HEAD", "/", "").status, 200);  // Claude Code's probe of the base URL
}

TEST_F(GatewayTest, ServerToolsGoToTheAnthropicTargetOrGetA400) {
  const std::string body = R"({"model":"WORKLOAD","max_tokens":64,
    "tools":[{"type":"web_search_20250305","name":"web_search"}],
    "messages":[{"role":"user","content":"news?"}]})";
  auto served = call("POST", "/v1/messages", replace_all(body, "WORKLOAD", "docs"));
  ASSERT_EQ(served.status, 200) << served.body;
  EXPECT_EQ(served.header("x-backstop-served-by"), "claude");  // v4 is skipped, not tried
  EXPECT_EQ(served.header("x-backstop-attempts"), "1");
  auto refused = call("POST", "/v1/messages", replace_all(body, "WORKLOAD", "classify"));
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json(refused).at_pointer("/error/type"), "invalid_request_error");
  EXPECT_EQ(json(refused).at_pointer("/error/message"),
            "`tools[0]` (web_search_20250305) can only be sent to a target of the anthropic "
            "dialect, and workload \"classify\" has none");
}

TEST_F(GatewayTest, OutputConfigFormatIsCheckedByContentSchema) {
  const std::string body = R"({"model":"classify","max_tokens":64,
    "messages":[{"role":"user","content":"label it MARKER"}],
    "output_config":{"format":{"type":"json_schema","schema":{"type":"object",
      "properties":{"label":{"type":"string"}},"required":["label"],
      "additionalProperties":false}}}})";
  auto ok = call("POST", "/v1/messages", replace_all(body, "MARKER", ""));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.header("x-backstop-served-by"), "v4");
  auto bad = call("POST", "/v1/messages", replace_all(body, "MARKER", "[mock:schema@v4-flash]"));
  ASSERT_EQ(bad.status, 200) << bad.body;
  EXPECT_EQ(bad.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(bad.header("x-backstop-fallback-reason"), "schema");
}

// A tool whose parameters use a lookahead, which RE2 (and so backstop) cannot run.
constexpr const char* kLookaheadTools = R"json([{"type":"function","function":{"name":"get_weather",
  "parameters":{"type":"object","properties":{"city":{"type":"string","pattern":"^(?=[A-Z])"}},
  "required":["city"]}}}])json";

TEST_F(GatewayTest, InvalidToolSchemaIs400InOpenAIShapeNamingTheTool) {
  auto r = chat("agentic", "weather?", false, std::string(R"(,"tools":)") + kLookaheadTools);
  ASSERT_EQ(r.status, 400) << r.body;
  auto body = json(r);
  EXPECT_EQ(body.at_pointer("/error/type"), "invalid_request_error");
  EXPECT_EQ(body.at_pointer("/error/message"),
            "tools[0] \"get_weather\": parameters: pattern \"^(?=[A-Z])\" does not compile: "
            "invalid perl operator: (?= (patterns run on RE2: no lookaround, no backreferences)");
}

TEST_F(GatewayTest, InvalidSchemaIs400InAnthropicShapeNamingTheField) {
  auto tool =
      call("POST", "/v1/messages",
           R"({"model":"agentic","max_tokens":64,"messages":[{"role":"user","content":"w?"}],
                       "tools":[{"name":"f","input_schema":{"type":"object"}},
                                {"name":"loop","input_schema":{"$ref":"#"}}]})");
  ASSERT_EQ(tool.status, 400) << tool.body;
  auto body = json(tool);
  EXPECT_EQ(body.at("type"), "error");
  EXPECT_EQ(body.at_pointer("/error/type"), "invalid_request_error");
  EXPECT_EQ(body.at_pointer("/error/message"),
            "tools[1] \"loop\": input_schema: $ref cycle: a subschema refers back to itself "
            "without descending into the value");

  auto format = call("POST", "/v1/messages",
                     R"json({"model":"classify","max_tokens":64,
                       "messages":[{"role":"user","content":"label it"}],
                       "output_config":{"format":{"type":"json_schema","schema":{"type":"object",
                         "properties":{"label":{"type":"string","pattern":"(a)\\1"}}}}}})json");
  ASSERT_EQ(format.status, 400) << format.body;
  EXPECT_TRUE(json(format)
                  .at_pointer("/error/message")
                  .as_string()
                  .starts_with("output_config.format.schema: pattern \"(a)\\1\" does not compile"))
      << format.body;
}

TEST_F(GatewayTest, InvalidSchemaNeverReachesAnUpstreamNorCountsAsSchemaFailure) {
  // Before: the primary's answer failed `schema` on the client's own schema, and the
  // fallback was called and paid for the same request.
  auto r = chat("agentic", "weather?", false, std::string(R"(,"tools":)") + kLookaheadTools);
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.header("x-backstop-attempts"), "");
  EXPECT_EQ(counter(metrics().validation_failures_total, {"agentic", "v4", "schema"}), 0);
  EXPECT_EQ(counter(metrics().fallbacks_total, {"agentic", "v4", "claude", "schema"}), 0);
  EXPECT_EQ(counter(metrics().attempts_total, {"agentic", "v4", "fail"}), 0);
  EXPECT_EQ(counter(metrics().attempts_total, {"agentic", "claude", "pass"}), 0);
  EXPECT_EQ(counter(metrics().requests_total, {"", "rejected"}), 1);
  auto format = chat("classify", "label it", false,
                     R"json(,"response_format":{"type":"json_schema","json_schema":{"name":"t",
                       "schema":{"type":"string","pattern":"(?<!x)y"}}})json");
  ASSERT_EQ(format.status, 400) << format.body;
  EXPECT_EQ(counter(metrics().attempts_total, {"classify", "v4", "fail"}), 0);
  EXPECT_EQ(counter(metrics().fallbacks_total, {"classify", "v4", "gpt", "schema"}), 0);
}

TEST_F(GatewayTest, SchemaWithARE2PatternIsServed) {
  const std::string tools = R"([{"type":"function","function":{"name":"get_weather",
    "parameters":{"type":"object","properties":{"city":{"type":"string","pattern":"^.*$"},
    "unit":{"type":"string","enum":["c","f"]}},"required":["city","unit"]}}}])";
  auto r = chat("agentic", "weather?", false, R"(,"tools":)" + tools);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "v4");
}

TEST_F(GatewayTest, MetricsAfterAKnownSequence) {
  chat("agentic", "w?", true);
  chat("agentic", "w? [mock:schema@v4-flash]", true);
  chat("plain", "hello");
  std::string text = call("GET", "/metrics", "").body;
  EXPECT_NE(text.find("backstop_requests_total{workload=\"agentic\",outcome=\"primary\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("backstop_requests_total{workload=\"agentic\",outcome=\"fallback\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("backstop_requests_total{workload=\"plain\",outcome=\"primary\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("backstop_fallbacks_total{workload=\"agentic\",from=\"v4\",to=\"claude\","
                      "reason=\"schema\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("backstop_request_duration_seconds_count{workload=\"agentic\","
                      "outcome=\"fallback\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("backstop_fallback_ratio{workload=\"agentic\"} 0.5"), std::string::npos);
  EXPECT_NE(text.find("# TYPE backstop_spend_usd_total counter"), std::string::npos);
  EXPECT_NE(text.find("backstop_tokens_total{provider=\"v4\",model=\"v4-flash\",type=\"input\"}"),
            std::string::npos);
}

TEST_F(GatewayTest, LedgerSpendMatchesMetricsAndItsQueueDepthIsExported) {
  chat("agentic", "w?", true);
  chat("agentic", "w? [mock:schema@v4-flash]", true);
  chat("no-such-workload", "hello");  // refused: a row without spend
  const std::string text = call("GET", "/metrics", "").body;
  EXPECT_NE(text.find("# TYPE backstop_ledger_queue_depth gauge\nbackstop_ledger_queue_depth "),
            std::string::npos)
      << text;
  std::int64_t ledger = 0;
  for (const auto& row : gateway_->spend().totals()) ledger += row.cost_micro_usd;
  const double spend = counter(metrics().spend_usd_total, {"agentic", "v4", "v4-flash"}) +
                       counter(metrics().spend_usd_total, {"agentic", "claude", "claude-sonnet"});
  EXPECT_GT(ledger, 0);
  EXPECT_EQ(ledger, std::llround(spend * 1e6));
  EXPECT_EQ(gateway_->spend().queue_depth(), 0);  // totals() wrote every row first
}

// The data payloads of an SSE body, in order.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    std::size_t end = body.find('\n', pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = body.find("event: ", pos)) != std::string::npos) {
    std::size_t end = body.find('\n', pos);
    out.push_back(body.substr(pos + 7, end - pos - 7));
    pos = end;
  }
  return out;
}

// Tool call name and concatenated arguments from OpenAI chunks; every chunk's model.
struct Assembled {
  std::string content;
  std::string tool_name;
  std::string arguments;
  std::set<std::string> models;
  bool done = false;
  bool error = false;
  bool usage = false;
};

Assembled assemble_openai(const std::string& body) {
  Assembled a;
  for (const auto& data : sse_data(body)) {
    if (data == "[DONE]") {
      a.done = true;
      continue;
    }
    auto v = boost::json::parse(data);
    if (v.as_object().contains("error")) {
      a.error = true;
      continue;
    }
    a.models.insert(std::string(v.at("model").as_string()));
    if (v.as_object().contains("usage") && v.at("usage").is_object()) a.usage = true;
    for (const auto& choice : v.at("choices").as_array()) {
      const auto& delta = choice.at("delta").as_object();
      if (const auto* c = delta.if_contains("content"); c && c->is_string()) {
        a.content += c->as_string();
      }
      if (const auto* calls = delta.if_contains("tool_calls")) {
        for (const auto& call : calls->as_array()) {
          const auto& f = call.at("function").as_object();
          if (const auto* n = f.if_contains("name"); n && n->is_string()) {
            a.tool_name = std::string(n->as_string());
          }
          if (const auto* args = f.if_contains("arguments"); args && args->is_string()) {
            a.arguments += args->as_string();
          }
        }
      }
    }
  }
  return a;
}

TEST_F(GatewayTest, StreamWithChecksReplaysThePassingAnswer) {
  auto r = chat("agentic", "weather in Paris?", true, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("x-backstop-served-by"), "v4");
  Assembled a = assemble_openai(r.body);
  EXPECT_TRUE(a.done);
  EXPECT_FALSE(a.error);
  EXPECT_EQ(a.tool_name, "get_weather");
  auto args = boost::json::parse(a.arguments);
  EXPECT_TRUE(args.as_object().contains("unit"));
  EXPECT_EQ(a.models, std::set<std::string>{"v4-flash"});
}

TEST_F(GatewayTest, StreamFallsBackBeforeTheClientSeesAByte) {
  auto r = chat("agentic", "weather? [mock:invalid_json@v4-flash]", true,
                R"(,"stream":true,"stream_options":{"include_usage":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "claude");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "invalid_json");
  Assembled a = assemble_openai(r.body);
  EXPECT_TRUE(a.done);
  EXPECT_TRUE(a.usage);
  EXPECT_EQ(a.models, std::set<std::string>{"claude-sonnet"});  // one model, never a mix
  EXPECT_NO_THROW(boost::json::parse(a.arguments));
  EXPECT_EQ(counter(metrics().fallbacks_total, {"agentic", "v4", "claude", "invalid_json"}), 1);
}

TEST_F(GatewayTest, StreamWithoutChecksPassesThrough) {
  auto r = chat("plain", "hello", false, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  Assembled a = assemble_openai(r.body);
  EXPECT_TRUE(a.done);
  EXPECT_FALSE(a.content.empty());
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "primary"}), 1);
}

TEST_F(GatewayTest, StreamBrokenAfterBytesEndsWithAnErrorNotDone) {
  auto r = chat("plain", "hello [mock:stream_break@v4-flash]", false, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  Assembled a = assemble_openai(r.body);
  EXPECT_TRUE(a.error) << r.body;
  EXPECT_FALSE(a.done) << r.body;
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "failed"}), 1);
}

TEST_F(GatewayTest, StreamWhereEveryTargetFailsGets502) {
  auto r = chat("agentic", "w? [mock:schema@v4-flash] [mock:server_error@claude-sonnet]", true,
                R"(,"stream":true)");
  ASSERT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(json(r).at_pointer("/error/code"), "all_targets_failed");
}

TEST_F(GatewayTest, ClientGoneBeforeTheStreamIsStillCounted) {
  {
    // A raw client that sends a streaming request and hangs up before any answer.
    net::ip::tcp::socket socket(loop_);
    socket.connect({net::ip::make_address("127.0.0.1"), gateway_->port()});
    std::string body =
        R"({"model":"plain","stream":true,"messages":[{"role":"user","content":"hi [mock-delay:50]"}]})";
    std::string head =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: "
        "application/json\r\ncontent-length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    net::write(socket, net::buffer(head + body));
    socket.shutdown(net::ip::tcp::socket::shutdown_both);
  }
  // The gateway sees the client leave while the upstream is still thinking, and cancels the
  // call; wait until it has booked the request.
  for (int i = 0; i < 2000 && counter(metrics().requests_total, {"plain", "failed"}) < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "failed"}), 1);
  EXPECT_EQ(counter(metrics().attempts_total, {"plain", "v4", "fail"}), 1);
  // The gateway still answers (no connection or coroutine leaked on the way).
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);
}

TEST_F(GatewayTest, AnthropicStreamFromAnOpenAIUpstream) {
  auto r = call("POST", "/v1/messages",
                R"({"model":"plain","max_tokens":64,"stream":true,)"
                R"("messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = sse_events(r.body);
  ASSERT_GE(events.size(), 5u) << r.body;
  EXPECT_EQ(events.front(), "message_start");
  EXPECT_EQ(events[1], "content_block_start");
  EXPECT_EQ(events.back(), "message_stop");
  EXPECT_EQ(events[events.size() - 2], "message_delta");
}

TEST_F(GatewayTest, ResponsesApiIsBridgedToAChatCompletionsPrimary) {
  auto r = call("POST", "/v1/responses",
                R"({"model":"agentic","input":"weather in Paris?","store":true,
                    "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object",
                    "properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},
                    "required":["city","unit"]}}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "v4");
  auto body = json(r);
  EXPECT_EQ(body.at("object"), "response");
  EXPECT_EQ(body.at("status"), "completed");
  EXPECT_EQ(body.at("store"), false);
  const auto& output = body.at("output").as_array();
  ASSERT_FALSE(output.empty());
  EXPECT_EQ(output.back().at("type"), "function_call");
  EXPECT_EQ(output.back().at("name"), "get_weather");
  EXPECT_TRUE(body.at("usage").as_object().contains("input_tokens"));
}

TEST_F(GatewayTest, ResponsesStreamFallsBackOnATextFormatSchemaFailure) {
  auto r = call("POST", "/v1/responses",
                R"({"model":"classify","input":"label it [mock:schema@v4-flash]","stream":true,
                    "text":{"format":{"type":"json_schema","name":"label","strict":true,
                    "schema":{"type":"object","properties":{"label":{"type":"string"}},
                    "required":["label"],"additionalProperties":false}}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "schema");
  auto events = sse_events(r.body);
  ASSERT_GE(events.size(), 4u) << r.body;
  EXPECT_EQ(events.front(), "response.created");
  EXPECT_EQ(events[1], "response.in_progress");
  EXPECT_EQ(events.back(), "response.completed");
  std::string text;
  for (const auto& data : sse_data(r.body)) {
    auto v = boost::json::parse(data);
    if (v.at("type") == "response.output_text.delta") text += v.at("delta").as_string();
  }
  auto label = boost::json::parse(text);
  EXPECT_TRUE(label.as_object().contains("label")) << text;
}

TEST_F(GatewayTest, ResponsesErrorsComeInTheResponsesShape) {
  auto stateful = call("POST", "/v1/responses",
                       R"({"model":"docs","input":"hi","previous_response_id":"resp_1"})");
  EXPECT_EQ(stateful.status, 400);
  EXPECT_NE(std::string(json(stateful).at_pointer("/error/message").as_string())
                .find("previous_response_id"),
            std::string::npos);
  auto stored = call("GET", "/v1/responses/resp_1", "");
  EXPECT_EQ(stored.status, 404);
  EXPECT_EQ(json(stored).at_pointer("/error/code"), "not_found");
  auto failed = call("POST", "/v1/responses",
                     R"({"model":"refused","input":"hi [mock:server_error@gpt-x]"})");
  EXPECT_EQ(failed.status, 502) << failed.body;
  EXPECT_EQ(json(failed).at_pointer("/error/code"), "all_targets_failed");
  EXPECT_GE(json(failed).at_pointer("/error/attempts").as_array().size(), 2u);
}

// The gateway with a target that speaks the Responses API itself.
class ResponsesTargetTest : public GatewayTest {
 protected:
  std::string config_text() const override {
    return replace_all(kConfig, "  dead:\n",
                       "  gpt-r:\n"
                       "    kind: openai_responses\n"
                       "    base_url: http://127.0.0.1:MOCK/v1\n"
                       "    model: gpt-r\n"
                       "    price: {input: 1.0, output: 2.0}\n"
                       "  dead:\n") +
           "  native:\n"
           "    route: [v4, gpt-r]\n"
           "    validate: {tool_call: required, tool_names: declared, arguments: schema}\n";
  }
};

TEST_F(ResponsesTargetTest, StatefulResponsesRequestsPassThroughToTheResponsesTargetOnly) {
  auto r = call("POST", "/v1/responses",
                R"({"model":"native","input":"weather in Paris?","previous_response_id":"resp_1",
                    "tools":[{"type":"file_search","vector_store_ids":["vs_1"]},
                    {"type":"function","name":"get_weather","parameters":{"type":"object",
                    "properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},
                    "required":["city","unit"]}}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt-r");  // v4 cannot carry it: skipped
  EXPECT_EQ(r.header("x-backstop-attempts"), "1");
  auto body = json(r);
  EXPECT_EQ(body.at("object"), "response");
  EXPECT_EQ(body.at("output").as_array().back().at("name"), "get_weather");
}

TEST_F(ResponsesTargetTest, AChatCompletionsClientFallsBackToTheResponsesTargetTranslated) {
  auto r = chat("native", "weather in Paris? [mock:no_tool_call@v4-flash]", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt-r");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "no_tool_call");
  auto body = json(r);
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(body.at_pointer("/choices/0/message/tool_calls/0/function/name"), "get_weather");
  EXPECT_GT(body.at_pointer("/usage/prompt_tokens").as_int64(), 0);
}

TEST_F(ResponsesTargetTest, AResponsesTargetsStreamIsReadAndTranslated) {
  auto r =
      chat("native", "weather in Paris? [mock:no_tool_call@v4-flash]", true, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt-r");
  Assembled a = assemble_openai(r.body);
  EXPECT_TRUE(a.done) << r.body;
  EXPECT_FALSE(a.error) << r.body;
  EXPECT_EQ(a.tool_name, "get_weather");
  EXPECT_TRUE(boost::json::parse(a.arguments).as_object().contains("city")) << a.arguments;
}

// Stream completeness by each dialect's own end, passed through and buffered.
TEST_F(GatewayTest, AnOpenAIStreamWithoutDoneIsCompletePassedThroughAndBuffered) {
  auto passed = chat("plain", "hello [mock:stream_no_done]", false, R"(,"stream":true)");
  ASSERT_EQ(passed.status, 200) << passed.body;
  Assembled a = assemble_openai(passed.body);
  EXPECT_TRUE(a.done) << passed.body;
  EXPECT_FALSE(a.error) << passed.body;
  EXPECT_FALSE(a.content.empty());
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "primary"}), 1);

  auto held = chat("agentic", "weather? [mock:stream_no_done]", true, R"(,"stream":true)");
  ASSERT_EQ(held.status, 200) << held.body;
  EXPECT_EQ(held.header("x-backstop-served-by"), "v4");
  Assembled b = assemble_openai(held.body);
  EXPECT_TRUE(b.done);
  EXPECT_FALSE(b.error);
  EXPECT_EQ(b.tool_name, "get_weather");
}

TEST_F(GatewayTest, AnAnthropicStreamWithoutMessageStopEndsInAnErrorWhenPassedThrough) {
  auto r =
      chat("claude-plain", "hello [mock:stream_no_done@claude-sonnet]", false, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  Assembled a = assemble_openai(r.body);
  EXPECT_FALSE(a.content.empty());  // the answer's text went out as it came
  EXPECT_TRUE(a.error) << r.body;
  EXPECT_FALSE(a.done) << r.body;
  EXPECT_NE(r.body.find("\"code\":\"broken_stream\""), std::string::npos) << r.body;
  EXPECT_EQ(counter(metrics().requests_total, {"claude-plain", "failed"}), 1);
}

TEST_F(GatewayTest, AnAnthropicStreamWithoutMessageStopFallsBackWhenBuffered) {
  auto r = chat("claude-checked", "hello [mock:stream_no_done@claude-sonnet]", false,
                R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "broken_stream");
  Assembled a = assemble_openai(r.body);
  EXPECT_TRUE(a.done);
  EXPECT_FALSE(a.error);
  EXPECT_EQ(a.models, std::set<std::string>{"gpt-x"});
  EXPECT_EQ(
      counter(metrics().fallbacks_total, {"claude-checked", "claude", "gpt", "broken_stream"}), 1);
}

TEST_F(GatewayTest, AnAnthropicClientGetsAnErrorEventForABrokenStream) {
  auto r = call("POST", "/v1/messages",
                R"({"model":"plain","max_tokens":64,"stream":true,)"
                R"("messages":[{"role":"user","content":"hi [mock:stream_break]"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = sse_events(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "error") << r.body;
  EXPECT_EQ(std::count(events.begin(), events.end(), "message_stop"), 0) << r.body;
}

TEST_F(GatewayTest, AnUndecodableStreamEventIsSkippedAndCounted) {
  for (const char* workload : {"plain", "claude-plain"}) {
    SCOPED_TRACE(workload);
    auto r = chat(workload, "hello [mock:stream_malformed]", false, R"(,"stream":true)");
    ASSERT_EQ(r.status, 200) << r.body;
    Assembled a = assemble_openai(r.body);
    EXPECT_TRUE(a.done) << r.body;
    EXPECT_FALSE(a.error) << r.body;
  }
  EXPECT_EQ(counter(metrics().stream_events_skipped_total, {"v4"}), 1);
  EXPECT_EQ(counter(metrics().stream_events_skipped_total, {"claude"}), 1);
  EXPECT_NE(call("GET", "/metrics", "")
                .body.find("backstop_stream_events_skipped_total{provider=\"v4\"} 1"),
            std::string::npos);
}

TEST_F(GatewayTest, BufferModeFallsBackFromACutStreamBeforeTheClientSeesAByte) {
  auto r = chat("held", "hello [mock:stream_break@v4-flash]", false, R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "broken_stream");
  Assembled a = assemble_openai(r.body);
  EXPECT_TRUE(a.done);
  EXPECT_FALSE(a.error) << r.body;
  EXPECT_EQ(a.models, std::set<std::string>{"gpt-x"});  // nothing of the cut stream went out
  EXPECT_EQ(counter(metrics().requests_total, {"held", "fallback"}), 1);
}

TEST_F(GatewayTest, PassModeStreamsUncheckedWhileUnstreamedRequestsAreStillChecked) {
  auto streamed = chat("passed", "hello [mock:no_tool_call@v4-flash]", true, R"(,"stream":true)");
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(streamed.header("x-backstop-served-by"), "v4");
  Assembled a = assemble_openai(streamed.body);
  EXPECT_TRUE(a.done);
  EXPECT_TRUE(a.tool_name.empty());

  auto whole = chat("passed", "hello [mock:no_tool_call@v4-flash]", true);
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_EQ(whole.header("x-backstop-served-by"), "claude");
  EXPECT_EQ(whole.header("x-backstop-fallback-reason"), "no_tool_call");
}

TEST_F(GatewayTest, AContentPolicyRefusalReachesTheClientAsTheUpstreamSaidIt) {
  auto r = chat("agentic", "weather? [mock:content_filter@v4-flash]", true);
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.header("x-backstop-attempts"), "1");  // no fallback
  auto body = json(r);
  EXPECT_EQ(body.at_pointer("/error/code"), "content_policy_violation");
  EXPECT_EQ(body.at_pointer("/error/type"), "invalid_request_error");
  EXPECT_EQ(body.at_pointer("/error/message"),
            "mock: this request was rejected by the content policy");
  EXPECT_EQ(counter(metrics().requests_total, {"agentic", "rejected"}), 1);
  EXPECT_EQ(counter(metrics().attempts_total, {"agentic", "claude", "pass"}), 0);

  // In Anthropic's shape for an Anthropic client, from an Anthropic upstream; streamed too.
  auto anthropic = call("POST", "/v1/messages",
                        R"({"model":"claude-plain","max_tokens":64,"stream":true,)"
                        R"("messages":[{"role":"user","content":"hi [mock:content_filter]"}]})");
  ASSERT_EQ(anthropic.status, 400) << anthropic.body;
  auto a = json(anthropic);
  EXPECT_EQ(a.at_pointer("/type"), "error");
  EXPECT_EQ(a.at_pointer("/error/type"), "invalid_request_error");
  EXPECT_EQ(a.at_pointer("/error/message"),
            "mock: this request was rejected by the content policy");
  EXPECT_EQ(counter(metrics().requests_total, {"claude-plain", "rejected"}), 1);
}

TEST_F(GatewayTest, AContextLengthRefusalMovesToTheNextTarget) {
  auto r = chat("agentic", "weather? [mock:context_length@v4-flash]", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "claude");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");

  auto anthropic_first =
      chat("claude-plain", "hi [mock:context_length@claude-sonnet]", false, R"(,"stream":true)");
  ASSERT_EQ(anthropic_first.status, 200) << anthropic_first.body;
  EXPECT_EQ(anthropic_first.header("x-backstop-served-by"), "gpt");
}

TEST_F(GatewayTest, NoUpstreamAddressReachesTheClient) {
  auto refused = chat("dead-only", "hello");
  ASSERT_EQ(refused.status, 502) << refused.body;
  EXPECT_EQ(refused.body.find("127.0.0.1"), std::string::npos) << refused.body;
  auto body = json(refused);
  EXPECT_EQ(body.at_pointer("/error/attempts/0/reason"), "connect");
  EXPECT_NE(
      std::string(body.at_pointer("/error/attempts/0/detail").as_string()).find("provider dead"),
      std::string::npos)
      << refused.body;

  // A stream cut after bytes went out: the error event names no address either.
  auto cut = chat("plain", "hello [mock:stream_abort]", false, R"(,"stream":true)");
  ASSERT_EQ(cut.status, 200) << cut.body;
  EXPECT_TRUE(assemble_openai(cut.body).error) << cut.body;
  EXPECT_EQ(cut.body.find("127.0.0.1"), std::string::npos) << cut.body;
  EXPECT_EQ(cut.body.find(":" + std::to_string(mock_.port())), std::string::npos) << cut.body;
}
// ---------------------------------------------------------------- a client that leaves

// An upstream that reads requests and never answers (or, with `trickle`, sends the start of a
// stream and then nothing). It counts the requests it has read and the connections the
// gateway closed.
class SilentUpstream {
 public:
  SilentUpstream() {
    net::co_spawn(loop_, accept(), net::detached);
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~SilentUpstream() {
    loop_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  std::atomic<int> requests{0};
  std::atomic<int> closed{0};
  std::atomic<bool> trickle{false};

 private:
  static constexpr auto kAwait = net::as_tuple(net::use_awaitable);

  net::awaitable<void> accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kAwait);
      if (ec) co_return;
      net::co_spawn(loop_, hold(std::move(socket)), net::detached);
    }
  }
  net::awaitable<void> hold(net::ip::tcp::socket socket) {
    std::string buffer;
    auto [ec, n] =
        co_await net::async_read_until(socket, net::dynamic_buffer(buffer), "\r\n\r\n", kAwait);
    if (ec) co_return;
    if (trickle) {
      const std::string chunk =
          R"(data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m",)"
          R"("choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},)"
          R"("finish_reason":null}]})"
          "\n\n";
      std::string start =
          "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: "
          "chunked\r\n\r\n";
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
      start += size + chunk + "\r\n";
      co_await net::async_write(socket, net::buffer(start), kAwait);
    }
    ++requests;
    char sink[256];
    for (;;) {
      auto [read_ec, read] = co_await socket.async_read_some(net::buffer(sink), kAwait);
      if (read_ec) break;
    }
    ++closed;
  }

  net::io_context loop_;
  net::ip::tcp::acceptor acceptor_{loop_, {net::ip::make_address("127.0.0.1"), 0}};
  std::thread thread_;
};

// Waits (polling, at most ~5 s) until `done` holds; returns whether it did.
template <typename Done>
bool eventually(Done done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

struct LeaveCase {
  const char* name;
  const char* workload;
  bool stream;
};

class ClientGoneTest : public ::testing::TestWithParam<LeaveCase> {
 protected:
  void SetUp() override {
    // Timeouts far beyond the test: only the client's leaving can end the upstream call.
    const std::string yaml = replace_all(R"(
listen: 127.0.0.1:0
threads: 1
server: {drain_timeout_ms: 100}
log: {access_log: ""}
providers:
  held:
    kind: openai
    base_url: http://127.0.0.1:HELD/v1
    model: held-model
    first_token_timeout_ms: 60000
    idle_timeout_ms: 60000
    timeout_ms: 60000
    price: {input: 1.0, output: 2.0}
  spare:
    kind: openai
    base_url: http://127.0.0.1:HELD/v1
    model: spare-model
workloads:
  plain: {route: [held, spare], deadline_ms: 60000}
  checked: {route: [held, spare], validate: {content: non_empty}, deadline_ms: 60000}
)",
                                         "HELD", std::to_string(upstream_.port()));
    auto loaded = config::parse(yaml, "test.yaml");
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
    server::GatewayOptions options;
    options.detect_stacks = false;  // the upstream counts every request it gets
    options.logger = &logger_;
    auto g = server::Gateway::create(loaded.config, std::move(options));
    ASSERT_TRUE(g.has_value()) << g.error().message;
    gateway_ = std::move(*g);
    ASSERT_TRUE(gateway_->start().has_value());
  }

  double counter(telemetry::FamilyId family, std::vector<std::string> labels) {
    return gateway_->registry().counter_value(family, labels);
  }

  core::NullLogger logger_;
  SilentUpstream upstream_;
  std::unique_ptr<server::Gateway> gateway_;
};

TEST_P(ClientGoneTest, TheUpstreamCallIsCancelledAtOnceAndStillBooked) {
  const LeaveCase& c = GetParam();
  {
    net::io_context io;
    net::ip::tcp::socket socket(io);
    socket.connect({net::ip::make_address("127.0.0.1"), gateway_->port()});
    const std::string body = std::string(R"({"model":")") + c.workload +
                             R"(","messages":[{"role":"user","content":"hi"}],"stream":)" +
                             (c.stream ? "true" : "false") + "}";
    const std::string head =
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: "
        "application/json\r\ncontent-length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    net::write(socket, net::buffer(head + body));
    ASSERT_TRUE(eventually([&] { return upstream_.requests.load() == 1; }));
    EXPECT_EQ(upstream_.closed.load(), 0);
  }  // the client leaves
  EXPECT_TRUE(eventually([&] { return upstream_.closed.load() == 1; }));
  const auto& m = gateway_->router().metrics();
  EXPECT_TRUE(eventually([&] { return counter(m.requests_total, {c.workload, "failed"}) == 1; }));
  EXPECT_EQ(counter(m.attempts_total, {c.workload, "held", "fail"}), 1);
  EXPECT_EQ(upstream_.requests.load(), 1);  // nothing else was tried for a client that left
}

TEST_F(ClientGoneTest, AClientLeavingAStalledPassThroughStreamCancelsTheUpstream) {
  upstream_.trickle = true;
  {
    net::io_context io;
    net::ip::tcp::socket socket(io);
    socket.connect({net::ip::make_address("127.0.0.1"), gateway_->port()});
    const std::string body =
        R"({"model":"plain","messages":[{"role":"user","content":"hi"}],"stream":true})";
    const std::string head =
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: "
        "application/json\r\ncontent-length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    net::write(socket, net::buffer(head + body));
    // Read until the first words of the answer have come through.
    std::string got;
    char buffer[1024];
    while (got.find("Hel") == std::string::npos) {
      boost::system::error_code ec;
      const std::size_t n = socket.read_some(net::buffer(buffer), ec);
      ASSERT_FALSE(ec) << ec.message() << " after: " << got;
      got.append(buffer, n);
    }
    EXPECT_EQ(upstream_.closed.load(), 0);
  }  // the client leaves while the upstream is silent
  EXPECT_TRUE(eventually([&] { return upstream_.closed.load() == 1; }));
  const auto& m = gateway_->router().metrics();
  // The client had part of the answer from the primary: counted as served by it, and booked.
  EXPECT_TRUE(eventually([&] { return counter(m.requests_total, {"plain", "primary"}) == 1; }));
  EXPECT_EQ(counter(m.attempts_total, {"plain", "held", "pass"}), 1);
  EXPECT_EQ(upstream_.requests.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(EveryMode, ClientGoneTest,
                         ::testing::Values(LeaveCase{"whole", "plain", false},
                                           LeaveCase{"pass_through", "plain", true},
                                           LeaveCase{"buffered", "checked", true}),
                         [](const ::testing::TestParamInfo<LeaveCase>& info) {
                           return std::string(info.param.name);
                         });

// Requests whose body holds "[hold]" wait until release(); then every request is answered
// by the mock. Requests stay in flight for as long as a test needs, without timing.
class Holds {
 public:
  // Called on a worker: waits for release() (at once when it already came).
  net::awaitable<void> hold(net::io_context& loop) {
    net::steady_timer timer(loop, std::chrono::hours(1));
    {
      std::lock_guard lock(mutex_);
      ++entered_;
      changed_.notify_all();
      if (released_) co_return;
      timers_.push_back({&timer, &loop});
    }
    co_await timer.async_wait(net::as_tuple(net::use_awaitable));
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    // Each timer is cancelled once: a second release() must not reach a timer whose hold()
    // has ended.
    for (auto [timer, loop] : std::exchange(timers_, {})) {
      net::post(*loop, [timer] { timer->cancel(); });
    }
  }
  bool wait_entered(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(30), [&] { return entered_ >= count; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int entered_ = 0;
  bool released_ = false;
  std::vector<std::pair<net::steady_timer*, net::io_context*>> timers_;
};

class HeldUpstream final : public http::Service {
 public:
  HeldUpstream(net::io_context& loop, Holds& holds) : loop_(loop), mock_(loop), holds_(holds) {}
  net::awaitable<void> handle(http::Request request, http::Responder& responder) override {
    if (request.body.find("[hold]") != std::string::npos) co_await holds_.hold(loop_);
    co_await mock_.handle(std::move(request), responder);
  }

 private:
  net::io_context& loop_;
  mock::MockUpstream mock_;
  Holds& holds_;
};

// One request on a connection of its own, from the calling thread.
http::ClientResponse call_once(std::uint16_t port, std::string method, std::string target,
                               std::string body = "") {
  net::io_context loop;
  http::Client client(loop);
  http::ClientRequest request;
  request.method = std::move(method);
  request.target = std::move(target);
  request.body = std::move(body);
  request.headers = {{"content-type", "application/json"}};
  request.timeout = std::chrono::milliseconds(30'000);
  // Named: send() is a coroutine that keeps a reference to it until the loop has run.
  const http::Origin origin{false, "127.0.0.1", port, "", ""};
  auto future = net::co_spawn(loop, client.send(origin, request), net::use_future);
  loop.run();
  auto response = future.get();
  return response.value_or(http::ClientResponse{});  // status 0: no answer
}

bool accepts_connections(std::uint16_t port) {
  net::io_context loop;
  net::ip::tcp::socket socket(loop);
  boost::system::error_code ec;
  socket.connect({net::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

constexpr const char* kDrainConfig = R"(
listen: 127.0.0.1:0
threads: 1
server: {drain_delay_ms: DELAY, drain_timeout_ms: 30000}
log: {access_log: ""}
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:MOCK/v1
    model: v4-flash
workloads:
  plain:
    route: [v4]
)";

constexpr const char* kHeldChat =
    R"({"model":"plain","messages":[{"role":"user","content":"[hold] hi"}]})";
constexpr const char* kChat = R"({"model":"plain","messages":[{"role":"user","content":"hi"}]})";

class DrainTest : public ::testing::Test {
 protected:
  void start(std::int64_t delay_ms) {
    ASSERT_TRUE(upstream_.listen("127.0.0.1", 0).has_value());
    upstream_.start();
    std::string yaml = replace_all(kDrainConfig, "MOCK", std::to_string(upstream_.port()));
    yaml = replace_all(yaml, "DELAY", std::to_string(delay_ms));
    auto loaded = config::parse(yaml, "drain.yaml");
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
    server::GatewayOptions options;
    options.logger = &logger_;
    auto g = server::Gateway::create(loaded.config, std::move(options));
    ASSERT_TRUE(g.has_value()) << g.error().message;
    gateway_ = std::move(*g);
    ASSERT_TRUE(gateway_->start().has_value());
    port_ = gateway_->port();
  }
  void TearDown() override {
    holds_.release();
    upstream_.stop(std::chrono::milliseconds(50));
  }

  core::NullLogger logger_;
  Holds holds_;
  http::Server upstream_{http::ServerLimits{}, 1,
                         [this](net::io_context& loop, int) -> std::unique_ptr<http::Service> {
                           return std::make_unique<HeldUpstream>(loop, holds_);
                         }};
  std::unique_ptr<server::Gateway> gateway_;
  std::uint16_t port_ = 0;
};

TEST_F(DrainTest, ReadyzTurns503WhileStillAcceptingThenInFlightRequestsFinish) {
  start(/*delay_ms=*/600'000);  // ended below by stop(), as the delay's end would
  ASSERT_EQ(call_once(port_, "GET", "/readyz").status, 200);
  http::ClientResponse held;
  std::thread in_flight(
      [&] { held = call_once(port_, "POST", "/v1/chat/completions", kHeldChat); });
  ASSERT_TRUE(holds_.wait_entered(1));

  std::thread drainer([&] { gateway_->drain(); });  // the first signal
  http::ClientResponse ready;
  for (int i = 0; i < 1000 && ready.status != 503; ++i) ready = call_once(port_, "GET", "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.header("connection"), "close");
  // New connections are still accepted and served, and closed after their response.
  http::ClientResponse during = call_once(port_, "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(during.status, 200) << during.body;
  EXPECT_EQ(during.header("connection"), "close");
  EXPECT_EQ(held.status, 0);  // still held upstream

  // The delay ends: the listener closes while the held request is still in flight.
  std::thread stopper([&] { gateway_->stop(); });
  bool refused = false;
  for (int i = 0; i < 1000 && !refused; ++i) refused = !accepts_connections(port_);
  EXPECT_TRUE(refused);
  EXPECT_EQ(held.status, 0);

  holds_.release();
  in_flight.join();
  stopper.join();
  drainer.join();
  EXPECT_EQ(held.status, 200) << held.body;
  EXPECT_EQ(held.header("connection"), "close");
}

TEST_F(DrainTest, DrainStopsByItselfAfterTheDelay) {
  start(/*delay_ms=*/1);
  gateway_->drain();  // returns once the delay has passed and the server stopped
  EXPECT_FALSE(accepts_connections(port_));
}

TEST_F(DrainTest, ZeroDelayStopsAcceptingAtOnceAndStillFinishesInFlightRequests) {
  start(/*delay_ms=*/0);
  http::ClientResponse held;
  std::thread in_flight(
      [&] { held = call_once(port_, "POST", "/v1/chat/completions", kHeldChat); });
  ASSERT_TRUE(holds_.wait_entered(1));
  std::thread drainer([&] { gateway_->drain(); });
  bool refused = false;
  for (int i = 0; i < 1000 && !refused; ++i) refused = !accepts_connections(port_);
  EXPECT_TRUE(refused);
  holds_.release();
  in_flight.join();
  drainer.join();
  EXPECT_EQ(held.status, 200) << held.body;
}

TEST(AccessLogTest, LinesDroppedOnAFullQueueAreCountedInMetrics) {
  std::signal(SIGPIPE, SIG_IGN);  // the test closes the log's reader before the gateway stops
  Mock mock;
  const std::string path = ::testing::TempDir() + "backstop_access_log_fifo";
  std::remove(path.c_str());
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // A reader that never reads, holding a pipe of one page.
  const int reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  ::fcntl(reader, F_SETPIPE_SZ, 4096);
  std::string yaml = replace_all(kConfig, "MOCK", std::to_string(mock.port()));
  yaml = replace_all(yaml, "DEAD", std::to_string(closed_port()));
  yaml = replace_all(yaml, R"(log: {access_log: ""})", "log: {access_log: \"" + path + "\"}");
  auto loaded = config::parse(yaml, "test.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  core::NullLogger logger;
  server::GatewayOptions options;
  options.logger = &logger;
  options.access_log_queue_lines = 2;
  auto gateway = server::Gateway::create(loaded.config, std::move(options));
  ASSERT_TRUE(gateway.has_value()) << gateway.error().message;
  ASSERT_TRUE((*gateway)->start().has_value());
  const std::uint16_t port = (*gateway)->port();
  const std::string body = R"({"model":"nope","messages":[{"role":"user","content":"x"}]})";
  // Each line is a few hundred bytes: the page fills, the writer blocks, the queue fills.
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(call_once(port, "POST", "/v1/chat/completions", body).status, 404);
  }
  const std::string metrics = call_once(port, "GET", "/metrics").body;
  const auto& m = (*gateway)->router().metrics();
  const double dropped =
      (*gateway)->registry().counter_value(m.log_lines_dropped_total, {"access_log"});
  EXPECT_GT(dropped, 30);
  EXPECT_EQ(dropped, static_cast<double>((*gateway)->access_log().dropped()));
  EXPECT_NE(metrics.find("backstop_log_lines_dropped_total{sink=\"access_log\"} "),
            std::string::npos)
      << metrics;
  ::close(reader);
  (*gateway)->stop();
  std::remove(path.c_str());
}

// A webhook receiver: records each POST (target, signature, body) and answers 200.
class HookReceiver {
 public:
  struct Post {
    std::string target;
    std::string event;
    std::string signature;
    std::string body;
  };

  HookReceiver()
      : server_(http::ServerLimits{}, 1,
                [this](net::io_context&, int) -> std::unique_ptr<http::Service> {
                  return std::make_unique<Recorder>(*this);
                }) {
    EXPECT_TRUE(server_.listen("127.0.0.1", 0).has_value());
    server_.start();
  }
  ~HookReceiver() {
    server_.stop(std::chrono::milliseconds(50));
    server_.wait();
  }
  std::uint16_t port() const { return server_.port(); }
  std::vector<Post> posts() {
    std::lock_guard lock(mutex_);
    return posts_;
  }

 private:
  class Recorder final : public http::Service {
   public:
    explicit Recorder(HookReceiver& owner) : owner_(owner) {}
    net::awaitable<void> handle(http::Request request, http::Responder& responder) override {
      {
        std::lock_guard lock(owner_.mutex_);
        owner_.posts_.push_back({request.target, std::string(request.header("x-backstop-event")),
                                 std::string(request.header("x-backstop-signature")),
                                 request.body});
      }
      http::Response r;
      r.body = "{}";
      co_await responder.send(std::move(r));
    }

   private:
    HookReceiver& owner_;
  };

  std::mutex mutex_;
  std::vector<Post> posts_;
  http::Server server_;
};

// The gateway of GatewayTest's config plus one hook at `hook_url`, signed with "hook-secret".
class HookTest : public ::testing::Test {
 protected:
  void start(const std::string& hook_url, const std::string& events = "fallback, all_failed") {
    std::string yaml = replace_all(kConfig, "MOCK", std::to_string(mock_.port()));
    yaml = replace_all(yaml, "DEAD", std::to_string(closed_port()));
    yaml += "hooks:\n  - {url: \"" + hook_url + "\", events: [" + events +
            "], secret_env: HOOK_SECRET}\n";
    auto loaded = config::parse(yaml, "test.yaml");
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
    server::GatewayOptions options;
    options.logger = &logger_;
    options.env = [](const char* name) -> const char* {
      return std::string_view(name) == "HOOK_SECRET" ? "hook-secret" : nullptr;
    };
    options.hook_options.retry_backoff = std::chrono::milliseconds(1);
    auto g = server::Gateway::create(loaded.config, std::move(options));
    ASSERT_TRUE(g.has_value()) << g.error().message;
    gateway_ = std::move(*g);
    ASSERT_TRUE(gateway_->start().has_value());
    origin_ = {false, "127.0.0.1", gateway_->port(), "", ""};
  }

  http::ClientResponse chat(const std::string& workload, const std::string& text) {
    http::ClientRequest request;
    request.method = "POST";
    request.target = "/v1/chat/completions";
    request.body = R"({"model":")" + workload + R"(","messages":[{"role":"user","content":")" +
                   text + R"("}],"tools":)" + kTools + "}";
    request.headers.push_back({"content-type", "application/json"});
    auto future = net::co_spawn(loop_, client_.send(origin_, std::move(request)), net::use_future);
    loop_.run();
    loop_.restart();
    return future.get().value_or(http::ClientResponse{});
  }

  core::NullLogger logger_;
  Mock mock_;
  std::unique_ptr<server::Gateway> gateway_;
  http::Origin origin_;
  net::io_context loop_;
  http::Client client_{loop_};
};

TEST_F(HookTest, FallbackAndAllFailedAreSignedPostsToTheReceiver) {
  HookReceiver receiver;
  start("http://127.0.0.1:" + std::to_string(receiver.port()) + "/hooks/backstop");
  EXPECT_EQ(chat("agentic", "w? [mock:schema@v4-flash]").status, 200);
  EXPECT_EQ(
      chat("agentic", "w? [mock:server_error@v4-flash] [mock:server_error@claude-sonnet]").status,
      502);
  EXPECT_EQ(chat("agentic", "w?").status, 200);  // served by the primary: no event
  gateway_->hooks().flush();
  const auto posts = receiver.posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0].target, "/hooks/backstop");
  EXPECT_EQ(posts[0].event, "fallback");
  EXPECT_EQ(posts[0].signature,
            "sha256=" + telemetry::hmac_sha256_hex("hook-secret", posts[0].body));
  auto fallback = boost::json::parse(posts[0].body);
  EXPECT_EQ(fallback.at("event"), "fallback");
  EXPECT_EQ(fallback.at("workload"), "agentic");
  EXPECT_EQ(fallback.at("from"), "v4");
  EXPECT_EQ(fallback.at("to"), "claude");
  EXPECT_EQ(fallback.at("reason"), "schema");
  EXPECT_EQ(fallback.at("attempts").as_array().size(), 2u);
  EXPECT_EQ(posts[1].event, "all_failed");
  EXPECT_EQ(boost::json::parse(posts[1].body).at("event"), "all_failed");
  const std::string metrics = gateway_->registry().render();
  EXPECT_NE(metrics.find("backstop_hook_events_total{event=\"fallback\",result=\"sent\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(HookTest, AReceiverThatIsDownLeavesRequestsUnaffectedAndCountsTheFailure) {
  start("http://127.0.0.1:" + std::to_string(closed_port()) + "/hook");
  auto r = chat("agentic", "w? [mock:schema@v4-flash]");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-backstop-served-by"), "claude");
  gateway_->hooks().flush();
  const std::string metrics = gateway_->registry().render();
  EXPECT_NE(metrics.find("backstop_hook_events_total{event=\"fallback\",result=\"failed\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(HookTest, ABandChangeIsASignedBandEvent) {
  HookReceiver receiver;
  start("http://127.0.0.1:" + std::to_string(receiver.port()) + "/hooks", "band");
  const routing::Workload& agentic = *gateway_->router().find("agentic");
  const std::int64_t now = gateway_->clock().unix_ms();
  for (int i = 0; i < 20; ++i) agentic.window->record(now, i < 8);  // 40 %: band move
  gateway_->watch();
  gateway_->watch();  // unchanged: no second event
  gateway_->hooks().flush();
  const auto posts = receiver.posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].event, "band");
  EXPECT_EQ(posts[0].signature,
            "sha256=" + telemetry::hmac_sha256_hex("hook-secret", posts[0].body));
  auto body = boost::json::parse(posts[0].body);
  EXPECT_EQ(body.at("event"), "band");
  EXPECT_EQ(body.at("workload"), "agentic");
  EXPECT_EQ(body.at("band"), "move");
  EXPECT_TRUE(body.at("previous_band").is_null());
  EXPECT_EQ(body.at("fallback_rate_ppm"), 400000);
  EXPECT_EQ(body.at("requests"), 20);
  EXPECT_EQ(body.at("window_s"), 600);
}

}  // namespace
}  // namespace backstop
