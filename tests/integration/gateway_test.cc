// The whole gateway on port 0 against the mock upstream, over real sockets.
#include "server/gateway.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "config/config.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "providers/mock_upstream.h"

namespace backstop {
namespace {

namespace net = boost::asio;

// The mock upstream in-process, on its own port.
class Mock {
 public:
  Mock()
      : server_(http::ServerLimits{}, 1,
                [](net::io_context& loop, int) -> std::unique_ptr<http::Service> {
                  return std::make_unique<providers::MockUpstream>(loop);
                }) {
    EXPECT_TRUE(server_.listen("127.0.0.1", 0).has_value());
    server_.start();
  }
  ~Mock() {
    server_.stop(std::chrono::milliseconds(50));
    server_.wait();
  }
  std::uint16_t port() const { return server_.port(); }

 private:
  http::Server server_;
};

// A port with nothing listening on it.
std::uint16_t closed_port() {
  net::io_context loop;
  net::ip::tcp::acceptor a(loop, {net::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
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
)";

constexpr const char* kTools = R"([{"type":"function","function":{"name":"get_weather",
  "parameters":{"type":"object","properties":{"city":{"type":"string"},
  "unit":{"type":"string","enum":["c","f"]}},"required":["city","unit"]}}}])";

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string yaml = replace_all(kConfig, "MOCK", std::to_string(mock_.port()));
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

TEST_F(GatewayTest, ConnectionRefusedFallsBack) {
  auto r = chat("refused", "hello");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "connect");
  EXPECT_EQ(r.header("x-backstop-served-by"), "gpt");
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
  ASSERT_EQ(models.at("data").as_array().size(), 5u);
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

TEST_F(GatewayTest, ClientGoneMidStreamIsStillCountedAndPriced) {
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
  // The gateway notices when it writes the stream; wait until it has booked the request.
  for (int i = 0; i < 2000 && counter(metrics().requests_total, {"plain", "primary"}) < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "primary"}), 1);
  EXPECT_EQ(counter(metrics().attempts_total, {"plain", "v4", "pass"}), 1);
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

}  // namespace
}  // namespace backstop
