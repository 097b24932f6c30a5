#include "providers/http_provider.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chat/stream.h"
#include "dialects/anthropic/dialect.h"
#include "dialects/openai/dialect.h"
#include "http/server.h"
#include "mock/mock_upstream.h"
#include "mock/test_upstream.h"
#include "providers/connections.h"

namespace backstop::providers {
namespace {

namespace net = boost::asio;
using mock::MockOptions;
using mock::MockUpstream;
using mock::TestUpstream;
using Outcome = core::Result<chat::ChatResponse>;

constexpr std::string_view kKey = "sk-secret-123";

std::unique_ptr<TestUpstream> mock_upstream(MockOptions options = {}) {
  return std::make_unique<TestUpstream>([options](net::io_context& loop, int) {
    return std::make_unique<MockUpstream>(loop, options);
  });
}

chat::ChatRequest request_saying(std::string_view text, bool stream = false) {
  boost::json::object body{
      {"stream", stream},
      {"model", "agentic"},
      {"messages", boost::json::array{boost::json::object{{"role", "user"}, {"content", text}}}},
      {"tools", boost::json::parse(R"([{"type":"function","function":{"name":"get_weather",
          "parameters":{"type":"object","properties":{"city":{"type":"string"},
          "unit":{"enum":["c","f"]}},"required":["city","unit"]}}}])")}};
  auto request = dialects::openai::decode_request(boost::json::serialize(body));
  EXPECT_TRUE(request.has_value()) << request.error().message;
  return *request;
}

HttpProviderOptions provider_options(const dialects::Dialect* dialect, std::string base_url,
                                     std::string model = "up-model") {
  HttpProviderOptions o;
  o.name = "up";
  o.dialect = dialect;
  o.base_url = std::move(base_url);
  o.model = std::move(model);
  o.api_key = std::string(kKey);
  o.timeout_ms = 5'000;
  return o;
}

std::unique_ptr<HttpProvider> make(HttpProviderOptions options) {
  auto provider = HttpProvider::create(std::move(options));
  EXPECT_TRUE(provider.has_value());
  return std::move(*provider);
}

net::awaitable<void> call_once(Provider& provider, const chat::ChatRequest& request,
                               CallContext& context, std::optional<Outcome>& out) {
  out = co_await provider.complete(request, context);
}

// One call of provider.complete() on a fresh loop and client; `setup` may change the context.
Outcome call(Provider& provider, const chat::ChatRequest& request,
             std::string_view request_id = "req-1",
             const std::function<void(CallContext&)>& setup = {}) {
  net::io_context loop;
  Connections client(loop);
  core::SystemClock clock;
  CallContext context{loop, client, clock, request_id};
  if (setup) setup(context);
  std::optional<Outcome> out;
  net::co_spawn(loop, call_once(provider, request, context, out), net::detached);
  loop.run();
  EXPECT_TRUE(out.has_value());
  return out ? std::move(*out) : core::fail(core::ErrorCode::kInternal, "no outcome");
}

TEST(HttpProvider, OpenAIPassPath) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")));
  EXPECT_EQ(provider->target(), "/v1/chat/completions");
  const Outcome r = call(*provider, request_saying("weather in Paris?"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->model, "up-model");
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].name, "get_weather");
  const auto args = boost::json::parse(r->tool_calls[0].arguments).as_object();
  EXPECT_EQ(args.at("unit").as_string(), "c");
  EXPECT_EQ(r->finish_reason, chat::FinishReason::kToolCalls);
  EXPECT_GE(r->usage.input_tokens, 1);
}

TEST(HttpProvider, AnthropicPassPath) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(&dialects::anthropic::dialect(), upstream->url()));
  EXPECT_EQ(provider->target(), "/v1/messages");
  const Outcome r = call(*provider, request_saying("weather in Paris?"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->model, "up-model");
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].name, "get_weather");
  EXPECT_TRUE(r->tool_calls[0].id.starts_with("toolu_"));
  EXPECT_EQ(boost::json::parse(r->tool_calls[0].arguments).as_object().at("city").as_string(),
            "example");
}

TEST(HttpProvider, RateLimitedCarriesStatusAndRetryAfter) {
  const auto upstream = mock_upstream();
  for (const auto dialect : {&dialects::openai::dialect(), &dialects::anthropic::dialect()}) {
    const auto provider = make(provider_options(
        dialect, upstream->url(dialect == &dialects::openai::dialect() ? "/v1" : "")));
    const Outcome r = call(*provider, request_saying("hi [mock:rate_limited]"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, core::ErrorCode::kRateLimited);
    EXPECT_EQ(r.error().upstream_status, 429);
    EXPECT_EQ(r.error().retry_after_ms, 0);
    EXPECT_TRUE(r.error().message.starts_with("HTTP 429: ")) << r.error().message;
  }
}

TEST(HttpProvider, ServerErrorIsUpstreamWithTheStatusAndMessage) {
  const auto upstream = mock_upstream();
  for (const auto dialect : {&dialects::openai::dialect(), &dialects::anthropic::dialect()}) {
    const auto provider = make(provider_options(
        dialect, upstream->url(dialect == &dialects::openai::dialect() ? "/v1" : "")));
    const Outcome r = call(*provider, request_saying("hi [mock:server_error]"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, core::ErrorCode::kUpstream);
    EXPECT_EQ(r.error().upstream_status, 500);
    EXPECT_EQ(r.error().message, "HTTP 500: mock: server error");
  }
}

TEST(HttpProvider, UndecodableBodyIsBadResponse) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")));
  const Outcome r = call(*provider, request_saying("hi [mock:bad_response]"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kBadResponse);
  EXPECT_TRUE(r.error().message.starts_with("HTTP 200 body does not decode: "))
      << r.error().message;
}

TEST(HttpProvider, ARetryWithTheSameRequestIdGetsPastACountedFault) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")));
  const auto request = request_saying("hi [mock:server_error*1]");
  const Outcome first = call(*provider, request, "r-9");
  ASSERT_FALSE(first.has_value());
  EXPECT_EQ(first.error().upstream_status, 500);
  EXPECT_TRUE(call(*provider, request, "r-9").has_value());
}

TEST(HttpProvider, AMarkerForThePrimaryModelSparesTheFallback) {
  const auto upstream = mock_upstream();
  const auto primary =
      make(provider_options(&dialects::openai::dialect(), upstream->url("/v1"), "primary-m"));
  const auto fallback =
      make(provider_options(&dialects::anthropic::dialect(), upstream->url(), "fb-m"));
  const auto request = request_saying("hi [mock:schema@primary-m]");
  const Outcome bad = call(*primary, request);
  ASSERT_TRUE(bad.has_value());
  EXPECT_FALSE(boost::json::parse(bad->tool_calls.at(0).arguments).as_object().contains("city"));
  const Outcome good = call(*fallback, request);
  ASSERT_TRUE(good.has_value());
  EXPECT_TRUE(boost::json::parse(good->tool_calls.at(0).arguments).as_object().contains("city"));
}

TEST(HttpProvider, RefusedConnectionIsConnect) {
  std::uint16_t port = 0;
  {
    net::io_context loop;
    net::ip::tcp::acceptor acceptor(loop, {net::ip::make_address("127.0.0.1"), 0});
    port = acceptor.local_endpoint().port();
  }
  const auto provider = make(provider_options(&dialects::openai::dialect(),
                                              "http://127.0.0.1:" + std::to_string(port) + "/v1"));
  const Outcome r = call(*provider, request_saying("hi"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kConnect);
  EXPECT_EQ(r.error().message.find(kKey), std::string::npos);
}

TEST(HttpProvider, ErrorsNameTheProviderNeverTheUpstreamsAddress) {
  net::io_context loop;
  net::ip::tcp::acceptor probe(loop, {net::ip::make_address("127.0.0.1"), 0});
  const std::uint16_t port = probe.local_endpoint().port();
  probe.close();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const auto provider =
      make(provider_options(&dialects::openai::dialect(), "http://" + address + "/v1"));
  const Outcome r = call(*provider, request_saying("hi"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kConnect);
  EXPECT_EQ(r.error().message.find("127.0.0.1"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("provider up"), std::string::npos) << r.error().message;
  // Only whole names are replaced: a longer name or number that holds the host stays.
  EXPECT_EQ(provider->redact("at " + address + ", not 127.0.0.10 or x127.0.0.1 or 127.0.0.1.x"),
            "at provider up, not 127.0.0.10 or x127.0.0.1 or 127.0.0.1.x");
  EXPECT_EQ(provider->redact("cannot resolve 127.0.0.1."), "cannot resolve provider up.");
}

TEST(HttpProvider, SlowUpstreamIsTimeout) {
  MockOptions mock;
  mock.timeout_wait = std::chrono::milliseconds(400);
  const auto upstream = mock_upstream(mock);
  auto options = provider_options(&dialects::openai::dialect(), upstream->url("/v1"));
  options.timeout_ms = 100;
  const Outcome r = call(*make(options), request_saying("hi [mock:timeout]"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kTimeout);
}

TEST(HttpProvider, TheFirstTokenTimeoutAppliesOnlyWhenTheCallAsks) {
  const auto upstream = mock_upstream();
  auto options = provider_options(&dialects::openai::dialect(), upstream->url("/v1"));
  options.first_token_timeout_ms = 50;
  const auto provider = make(options);
  const auto slow = request_saying("hi [mock:slow] [mock-delay:300]");
  const Outcome cut = call(*provider, slow);
  ASSERT_FALSE(cut.has_value());
  EXPECT_EQ(cut.error().code, core::ErrorCode::kTimeout);
  EXPECT_NE(cut.error().message.find("sent no first byte of its answer within 50 ms"),
            std::string::npos)
      << cut.error().message;
  // On a route's last target there is nobody to hand over to: the answer may take its time.
  const Outcome waited =
      call(*provider, slow, "req-2", [](CallContext& c) { c.first_token_limit = false; });
  EXPECT_TRUE(waited.has_value()) << waited.error().message;
}

TEST(HttpProvider, TheCallersBudgetCutsTheTimeouts) {
  MockOptions mock;
  mock.timeout_wait = std::chrono::milliseconds(2'000);
  const auto upstream = mock_upstream(mock);
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")));
  const Outcome r =
      call(*provider, request_saying("hi [mock:timeout]"), "req-1", [](CallContext& c) {
        c.first_token_limit = false;
        c.budget = std::chrono::milliseconds(50);
      });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kTimeout);
  EXPECT_NE(r.error().message.find("sent no first byte of its answer within 50 ms"),
            std::string::npos)
      << r.error().message;
}

TEST(HttpProvider, BadBaseUrlIsInvalidArgument) {
  const auto provider =
      HttpProvider::create(provider_options(&dialects::openai::dialect(), "ftp://x"));
  ASSERT_FALSE(provider.has_value());
  EXPECT_EQ(provider.error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_TRUE(provider.error().message.starts_with("provider up: ")) << provider.error().message;
}

// Records the last request and answers 401 with the key echoed back, as some vendors do.
struct Recorded {
  std::mutex mutex;
  std::optional<http::Request> last;
};

http::Response key_error(const std::string& key) {
  const boost::json::object error{{"message", "Incorrect API key provided: " + key},
                                  {"type", "invalid_request_error"}};
  http::Response response;
  response.status = 401;
  response.body = boost::json::serialize(boost::json::object{{"error", error}});
  return response;
}

class RecordingService final : public http::Service {
 public:
  explicit RecordingService(Recorded& recorded) : recorded_(recorded) {}
  net::awaitable<void> handle(http::Request request, http::Responder& responder) override {
    std::string echoed(request.header("authorization"));
    if (echoed.empty()) echoed = request.header("x-api-key");
    {
      const std::lock_guard lock(recorded_.mutex);
      recorded_.last = request;
    }
    co_await responder.send(key_error(echoed));
  }

 private:
  Recorded& recorded_;
};

std::unique_ptr<TestUpstream> recording_upstream(Recorded& recorded) {
  return std::make_unique<TestUpstream>(
      [&recorded](net::io_context&, int) { return std::make_unique<RecordingService>(recorded); });
}

TEST(HttpProvider, OpenAISendsBearerKeyAndNeverEchoesIt) {
  Recorded recorded;
  const auto upstream = recording_upstream(recorded);
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")));
  const Outcome r = call(*provider, request_saying("hi"), "req-42");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kUpstream);
  EXPECT_EQ(r.error().upstream_status, 401);
  EXPECT_EQ(r.error().message.find(kKey), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("[redacted]"), std::string::npos) << r.error().message;

  const std::lock_guard lock(recorded.mutex);
  ASSERT_TRUE(recorded.last.has_value());
  const http::Request& sent = *recorded.last;
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/chat/completions");
  EXPECT_EQ(sent.header("authorization"), "Bearer " + std::string(kKey));
  EXPECT_EQ(sent.header("x-api-key"), "");
  EXPECT_EQ(sent.header("x-request-id"), "req-42");
  EXPECT_EQ(sent.header("user-agent"), "backstop/0.1");
  EXPECT_EQ(sent.header("content-type"), "application/json");
  EXPECT_EQ(sent.header("accept"), "application/json");
  EXPECT_EQ(boost::json::parse(sent.body).as_object().at("model").as_string(), "up-model");
}

TEST(HttpProvider, AnthropicSendsApiKeyAndVersion) {
  Recorded recorded;
  const auto upstream = recording_upstream(recorded);
  const auto provider = make(provider_options(&dialects::anthropic::dialect(), upstream->url()));
  const Outcome r = call(*provider, request_saying("hi"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.find(kKey), std::string::npos) << r.error().message;

  const std::lock_guard lock(recorded.mutex);
  ASSERT_TRUE(recorded.last.has_value());
  const http::Request& sent = *recorded.last;
  EXPECT_EQ(sent.target, "/v1/messages");
  EXPECT_EQ(sent.header("x-api-key"), kKey);
  EXPECT_EQ(sent.header("anthropic-version"), "2023-06-01");
  EXPECT_EQ(sent.header("authorization"), "");
  const auto body = boost::json::parse(sent.body).as_object();
  EXPECT_EQ(body.at("model").as_string(), "up-model");
  EXPECT_EQ(body.at("max_tokens").as_int64(), 4096);
}

chat::ChatRequest anthropic_request(std::string_view body,
                                    std::vector<std::pair<std::string, std::string>> headers) {
  auto request = dialects::anthropic::decode_count_tokens_request(body);
  EXPECT_TRUE(request.has_value()) << request.error().message;
  request->dialect_headers = std::move(headers);
  return std::move(*request);
}

constexpr std::string_view kAnthropicBody =
    R"({"model":"agentic","max_tokens":10,"messages":[{"role":"user","content":"hi"}]})";

TEST(HttpProvider, AnthropicClientHeadersReachAnthropicTargetsOnly) {
  const chat::ChatRequest request = anthropic_request(
      kAnthropicBody,
      {{"anthropic-version", "2099-01-01"}, {"anthropic-beta", "context-management-2025-06-27,x"}});
  Recorded recorded;
  const auto upstream = recording_upstream(recorded);
  (void)call(*make(provider_options(&dialects::anthropic::dialect(), upstream->url())), request);
  {
    const std::lock_guard lock(recorded.mutex);
    ASSERT_TRUE(recorded.last.has_value());
    EXPECT_EQ(recorded.last->header("anthropic-version"), "2099-01-01");
    EXPECT_EQ(recorded.last->header("anthropic-beta"), "context-management-2025-06-27,x");
    EXPECT_EQ(recorded.last->header("x-api-key"), kKey);
    recorded.last.reset();
  }
  (void)call(*make(provider_options(&dialects::openai::dialect(), upstream->url("/v1"))), request);
  const std::lock_guard lock(recorded.mutex);
  ASSERT_TRUE(recorded.last.has_value());
  EXPECT_EQ(recorded.last->header("anthropic-version"), "");
  EXPECT_EQ(recorded.last->header("anthropic-beta"), "");
}

net::awaitable<void> count_once(Provider& provider, const chat::ChatRequest& request,
                                CallContext& context,
                                std::optional<core::Result<RelayedAnswer>>& out) {
  out = co_await provider.count_tokens(request, context);
}

TEST(HttpProvider, CountTokensRelaysTheUpstreamsAnswerWithTheKeyRedacted) {
  Recorded recorded;
  const auto upstream = recording_upstream(recorded);
  const auto provider = make(provider_options(&dialects::anthropic::dialect(), upstream->url()));
  ASSERT_TRUE(provider->counts_tokens());
  net::io_context loop;
  Connections client(loop);
  core::SystemClock clock;
  CallContext context{loop, client, clock, "req-7"};
  std::optional<core::Result<RelayedAnswer>> out;
  const auto request =
      anthropic_request(R"({"model":"agentic","messages":[{"role":"user","content":"hi"}]})",
                        {{"anthropic-beta", "token-counting-2024-11-01"}});
  net::co_spawn(loop, count_once(*provider, request, context, out), net::detached);
  loop.run();
  ASSERT_TRUE(out.has_value() && out->has_value());
  EXPECT_EQ((*out)->status, 401);  // the upstream's status, relayed
  EXPECT_EQ((*out)->body.find(kKey), std::string::npos) << (*out)->body;

  const std::lock_guard lock(recorded.mutex);
  ASSERT_TRUE(recorded.last.has_value());
  EXPECT_EQ(recorded.last->target, "/v1/messages/count_tokens");
  EXPECT_EQ(recorded.last->header("anthropic-beta"), "token-counting-2024-11-01");
  EXPECT_EQ(recorded.last->body,
            R"({"model":"up-model","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_FALSE(
      make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")))->counts_tokens());
}

TEST(HttpProvider, ADialectOnlyRequestIsCarriedOnlyInItsDialect) {
  chat::ChatRequest request = anthropic_request(kAnthropicBody, {});
  const auto anthropic =
      make(provider_options(&dialects::anthropic::dialect(), "http://127.0.0.1:1"));
  const auto openai = make(provider_options(&dialects::openai::dialect(), "http://127.0.0.1:1/v1"));
  EXPECT_TRUE(openai->carries(request));
  request.dialect_only = "`tools[0]` (web_search_20250305)";
  EXPECT_TRUE(anthropic->carries(request));
  EXPECT_FALSE(openai->carries(request));
}

TEST(HttpProvider, EmptyKeySendsNoAuthHeader) {
  Recorded recorded;
  const auto upstream = recording_upstream(recorded);
  auto options = provider_options(&dialects::openai::dialect(), upstream->url("/v1"));
  options.api_key.clear();
  (void)call(*make(options), request_saying("hi"));
  const std::lock_guard lock(recorded.mutex);
  ASSERT_TRUE(recorded.last.has_value());
  EXPECT_EQ(recorded.last->header("authorization"), "");
}

http::ClientResponse with_header(std::string name, std::string value) {
  http::ClientResponse response;
  response.status = 429;
  response.headers.push_back({std::move(name), std::move(value)});
  return response;
}

// One row of the status table: what an upstream answered, and what backstop makes of it.
struct StatusCase {
  const dialects::Dialect* dialect;
  int status;
  std::string body;
  core::ErrorCode code;
  std::string upstream_code;  // kRejected only
};

TEST(StatusError, EachClassOfUpstreamErrorGetsItsCode) {
  using core::ErrorCode;
  const auto* const kO = &dialects::openai::dialect();
  const auto* const kA = &dialects::anthropic::dialect();
  const std::vector<StatusCase> cases = {
      // Content policy: the request's own fault, whichever status carries it.
      {kO, 400,
       R"({"error":{"message":"Your request was rejected as a result of our safety system.",)"
       R"("type":"invalid_request_error","param":null,"code":"content_policy_violation"}})",
       ErrorCode::kRejected, "content_policy_violation"},
      {kO, 400,
       R"({"error":{"message":"The response was filtered due to the prompt triggering Azure )"
       R"(OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter"}})",
       ErrorCode::kRejected, "content_filter"},
      {kO, 403, R"({"error":{"message":"flagged","type":"content_policy","code":null}})",
       ErrorCode::kRejected, "content_policy"},
      // Any other invalid request about the request itself.
      {kO, 422,
       R"({"error":{"message":"messages[1].role is invalid","type":"invalid_request_error"}})",
       ErrorCode::kRejected, "invalid_request_error"},
      {kA, 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"messages: text )"
       R"(content blocks must be non-empty"}})",
       ErrorCode::kRejected, "invalid_request_error"},
      // vLLM's older error shape.
      {kO, 400,
       R"({"object":"error","message":"Input contains an invalid image","type":"BadRequestError","code":400})",
       ErrorCode::kRejected, "BadRequestError"},
      // The context window: a larger one may take it.
      {kO, 400,
       R"({"error":{"message":"This model's maximum context length is 8192 tokens.",)"
       R"("type":"invalid_request_error","code":"context_length_exceeded"}})",
       ErrorCode::kUpstream, ""},
      {kA, 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too )"
       R"(long: 210000 tokens > 200000 maximum"}})",
       ErrorCode::kUpstream, ""},
      {kO, 400,
       R"({"object":"error","message":"'max_tokens' or 'max_completion_tokens' is too large: )"
       R"(32000.","type":"BadRequestError","code":400})",
       ErrorCode::kUpstream, ""},
      // What this target does not support, its model, its account.
      {kO, 400,
       R"({"object":"error","message":"\"auto\" tool choice requires --enable-auto-tool-choice )"
       R"(and --tool-call-parser to be set","type":"BadRequestError","code":400})",
       ErrorCode::kUpstream, ""},
      {kA, 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"This model does )"
       R"(not support assistant message prefill."}})",
       ErrorCode::kUpstream, ""},
      {kO, 400, R"({"error":{"message":"The model `x` does not exist","code":"model_not_found"}})",
       ErrorCode::kUpstream, ""},
      {kA, 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"Your credit )"
       R"(balance is too low to access the Anthropic API."}})",
       ErrorCode::kUpstream, ""},
      // Auth, permission, not found, body limits: the target's.
      {kO, 401, R"({"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}})",
       ErrorCode::kUpstream, ""},
      {kA, 403,
       R"({"type":"error","error":{"type":"permission_error","message":"Your API key does not )"
       R"(have permission to use the specified resource."}})",
       ErrorCode::kUpstream, ""},
      {kO, 404, R"({"error":{"message":"Not Found"}})", ErrorCode::kUpstream, ""},
      {kA, 404,
       R"({"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}})",
       ErrorCode::kUpstream, ""},
      {kO, 413, "<html>413 Request Entity Too Large</html>", ErrorCode::kUpstream, ""},
      // A 400 that is not the API's error shape came from something in front of it.
      {kO, 400, "<html>400 Bad Request</html>", ErrorCode::kUpstream, ""},
      // Rate limits and server errors keep their codes.
      {kO, 429, R"({"error":{"message":"slow down","code":"rate_limit_exceeded"}})",
       ErrorCode::kRateLimited, ""},
      {kA, 529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
       ErrorCode::kUpstream, ""},
  };
  for (const StatusCase& c : cases) {
    SCOPED_TRACE(std::to_string(c.status) + " " + c.body);
    http::ClientResponse response;
    response.status = c.status;
    response.body = c.body;
    const core::Error error = status_error(response, *c.dialect);
    EXPECT_EQ(error.code, c.code) << core::to_string(error.code);
    EXPECT_EQ(error.upstream_status, c.status);
    EXPECT_EQ(error.upstream_code, c.upstream_code);
    if (c.code == core::ErrorCode::kRejected) {
      // As the upstream said it, without backstop's "HTTP 400: ".
      EXPECT_FALSE(error.message.starts_with("HTTP ")) << error.message;
      EXPECT_FALSE(error.message.empty());
    } else {
      EXPECT_TRUE(error.message.starts_with("HTTP " + std::to_string(c.status) + ": "))
          << error.message;
    }
  }
}

TEST(RetryAfter, ReadsMillisecondsThenSeconds) {
  EXPECT_EQ(retry_after_ms(with_header("retry-after-ms", "1500")), 1500);
  EXPECT_EQ(retry_after_ms(with_header("Retry-After", "2")), 2000);
  EXPECT_EQ(retry_after_ms(with_header("Retry-After", "0.5")), 500);
  EXPECT_EQ(retry_after_ms(with_header("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT")), -1);
  EXPECT_EQ(retry_after_ms(with_header("x-other", "1")), -1);
}

// One streamed call: the error of stream(), or the batches and then the error of next()
// or the clean end.
struct Streamed {
  std::optional<core::Error> open_error;
  std::vector<std::vector<chat::StreamEvent>> batches;
  std::optional<core::Error> error;
  bool ended = false;
  std::int64_t skipped = 0;

  [[nodiscard]] chat::ChatResponse assembled() const {
    chat::StreamAssembler assembler;
    for (const auto& batch : batches) assembler.add(batch);
    return assembler.response();
  }
};

net::awaitable<void> stream_once(Provider& provider, const chat::ChatRequest& request,
                                 CallContext& context, Streamed& out) {
  auto opened = co_await provider.stream(request, context);
  if (!opened) {
    out.open_error = opened.error();
    co_return;
  }
  for (int i = 0; i < 10'000; ++i) {
    auto batch = co_await (*opened)->next();
    out.skipped = (*opened)->skipped_events();
    if (!batch) {
      out.error = batch.error();
      co_return;
    }
    if (batch->empty()) {
      out.ended = true;
      co_return;
    }
    out.batches.push_back(std::move(*batch));
  }
}

Streamed stream(Provider& provider, const chat::ChatRequest& request,
                const std::function<void(CallContext&)>& setup = {}) {
  net::io_context loop;
  Connections client(loop);
  core::SystemClock clock;
  CallContext context{loop, client, clock, "req-s"};
  if (setup) setup(context);
  Streamed out;
  net::co_spawn(loop, stream_once(provider, request, context, out), net::detached);
  loop.run();
  return out;
}

std::string base_url(const TestUpstream& upstream, const dialects::Dialect* dialect) {
  return upstream.url(dialect == &dialects::openai::dialect() ? "/v1" : "");
}

const dialects::Dialect* const kDialects[] = {&dialects::openai::dialect(),
                                              &dialects::anthropic::dialect()};

chat::ChatRequest text_request(bool stream) {
  auto request = dialects::openai::decode_request(
      stream ? R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]})"
             : R"({"model":"m","messages":[{"role":"user","content":"hello"}]})");
  EXPECT_TRUE(request.has_value());
  return *request;
}

TEST(HttpProviderStream, ToolCallsAssembleToWhatCompleteReturns) {
  const auto upstream = mock_upstream();
  for (const auto dialect : kDialects) {
    SCOPED_TRACE(dialect->name());
    const auto provider = make(provider_options(dialect, base_url(*upstream, dialect)));
    const Outcome whole = call(*provider, request_saying("weather in Paris?"));
    ASSERT_TRUE(whole.has_value()) << whole.error().message;
    const Streamed s = stream(*provider, request_saying("weather in Paris?", true));
    ASSERT_FALSE(s.open_error.has_value()) << s.open_error->message;
    ASSERT_FALSE(s.error.has_value()) << s.error->message;
    EXPECT_TRUE(s.ended);
    EXPECT_GT(s.batches.size(), 1u);
    const chat::ChatResponse got = s.assembled();
    EXPECT_EQ(got.model, "up-model");
    ASSERT_EQ(got.tool_calls.size(), 1u);
    EXPECT_EQ(got.tool_calls[0].name, whole->tool_calls[0].name);
    EXPECT_EQ(got.tool_calls[0].arguments, whole->tool_calls[0].arguments);
    EXPECT_FALSE(got.tool_calls[0].id.empty());
    EXPECT_EQ(got.finish_reason, chat::FinishReason::kToolCalls);
    EXPECT_EQ(got.usage.input_tokens, whole->usage.input_tokens);
    EXPECT_EQ(got.usage.output_tokens, whole->usage.output_tokens);
    EXPECT_GE(got.usage.output_tokens, 1);
  }
}

TEST(HttpProviderStream, TextAssemblesToWhatCompleteReturns) {
  const auto upstream = mock_upstream();
  for (const auto dialect : kDialects) {
    SCOPED_TRACE(dialect->name());
    const auto provider = make(provider_options(dialect, base_url(*upstream, dialect)));
    const Outcome whole = call(*provider, text_request(false));
    ASSERT_TRUE(whole.has_value()) << whole.error().message;
    // A request that did not ask for a stream is sent as one all the same.
    const Streamed s = stream(*provider, text_request(false));
    ASSERT_FALSE(s.open_error || s.error);
    EXPECT_TRUE(s.ended);
    const chat::ChatResponse got = s.assembled();
    ASSERT_TRUE(got.content.has_value());
    EXPECT_FALSE(got.content->empty());
    // The wording is picked per served request; the token count follows the same input.
    EXPECT_EQ(got.usage.input_tokens, whole->usage.input_tokens);
    EXPECT_GE(got.usage.output_tokens, 1);
    EXPECT_EQ(got.finish_reason, chat::FinishReason::kStop);
  }
}

TEST(HttpProviderStream, InvalidJsonArgumentsStreamAsSuch) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")));
  const Streamed s = stream(*provider, request_saying("w? [mock:invalid_json]", true));
  ASSERT_TRUE(s.ended);
  boost::system::error_code ec;
  boost::json::parse(s.assembled().tool_calls.at(0).arguments, ec);
  EXPECT_TRUE(ec.failed());
}

TEST(HttpProviderStream, ErrorsBeforeTheStreamAreMappedAsForComplete) {
  const auto upstream = mock_upstream();
  for (const auto dialect : kDialects) {
    SCOPED_TRACE(dialect->name());
    const auto provider = make(provider_options(dialect, base_url(*upstream, dialect)));
    const Streamed limited = stream(*provider, request_saying("hi [mock:rate_limited]", true));
    ASSERT_TRUE(limited.open_error.has_value());
    EXPECT_EQ(limited.open_error->code, core::ErrorCode::kRateLimited);
    EXPECT_EQ(limited.open_error->upstream_status, 429);
    EXPECT_EQ(limited.open_error->retry_after_ms, 0);

    const Streamed failed = stream(*provider, request_saying("hi [mock:server_error]", true));
    ASSERT_TRUE(failed.open_error.has_value());
    EXPECT_EQ(failed.open_error->code, core::ErrorCode::kUpstream);
    EXPECT_EQ(failed.open_error->upstream_status, 500);
    EXPECT_EQ(failed.open_error->message, "HTTP 500: mock: server error");

    const Streamed bad = stream(*provider, request_saying("hi [mock:bad_response]", true));
    ASSERT_TRUE(bad.open_error.has_value());
    EXPECT_EQ(bad.open_error->code, core::ErrorCode::kBadResponse);
    EXPECT_TRUE(bad.open_error->message.starts_with("HTTP 200 body does not decode: "))
        << bad.open_error->message;
  }
}

TEST(HttpProviderStream, ABrokenStreamIsBrokenStreamAfterSomeEvents) {
  const auto upstream = mock_upstream();
  for (const auto dialect : kDialects) {
    SCOPED_TRACE(dialect->name());
    const auto provider = make(provider_options(dialect, base_url(*upstream, dialect)));
    const Streamed s = stream(*provider, request_saying("w? [mock:stream_break]", true));
    ASSERT_FALSE(s.open_error.has_value());
    EXPECT_FALSE(s.batches.empty());
    EXPECT_FALSE(s.ended);
    ASSERT_TRUE(s.error.has_value());
    EXPECT_EQ(s.error->code, core::ErrorCode::kBrokenStream);
    EXPECT_NE(s.error->message.find("stream ended before it was complete"), std::string::npos)
        << s.error->message;
    EXPECT_FALSE(s.assembled().tool_calls.empty());
  }
}

TEST(HttpProviderStream, AnAbortedConnectionIsBrokenStreamAfterSomeEvents) {
  const auto upstream = mock_upstream();
  for (const auto dialect : kDialects) {
    SCOPED_TRACE(dialect->name());
    const auto provider = make(provider_options(dialect, base_url(*upstream, dialect)));
    const Streamed s = stream(*provider, request_saying("w? [mock:stream_abort]", true));
    ASSERT_FALSE(s.open_error.has_value());
    EXPECT_FALSE(s.batches.empty());
    ASSERT_TRUE(s.error.has_value());
    EXPECT_EQ(s.error->code, core::ErrorCode::kBrokenStream) << s.error->message;
    EXPECT_EQ(s.error->message.find(std::to_string(upstream->port())), std::string::npos)
        << s.error->message;
  }
}

TEST(HttpProviderStream, AnOpenAIStreamIsCompleteAfterItsFinishReasonWithoutDone) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream->url("/v1")));
  const Streamed s = stream(*provider, request_saying("w? [mock:stream_no_done]", true));
  ASSERT_FALSE(s.open_error.has_value()) << s.open_error->message;
  ASSERT_FALSE(s.error.has_value()) << s.error->message;
  EXPECT_TRUE(s.ended);
  EXPECT_EQ(s.assembled().finish_reason, chat::FinishReason::kToolCalls);
  EXPECT_EQ(s.assembled().tool_calls.size(), 1u);
}

TEST(HttpProviderStream, AnAnthropicStreamWithoutMessageStopIsBroken) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(&dialects::anthropic::dialect(), upstream->url()));
  // Everything came, the stop_reason included, but not message_stop.
  const Streamed s = stream(*provider, request_saying("w? [mock:stream_no_done]", true));
  ASSERT_FALSE(s.open_error.has_value());
  EXPECT_FALSE(s.ended);
  ASSERT_TRUE(s.error.has_value());
  EXPECT_EQ(s.error->code, core::ErrorCode::kBrokenStream);
  EXPECT_EQ(s.error->message, "stream ended before it was complete (no message_stop)");
}

TEST(HttpProviderStream, AnUndecodableEventIsSkippedAndCounted) {
  const auto upstream = mock_upstream();
  for (const auto dialect : kDialects) {
    SCOPED_TRACE(dialect->name());
    const auto provider = make(provider_options(dialect, base_url(*upstream, dialect)));
    const Streamed s = stream(*provider, request_saying("w? [mock:stream_malformed]", true));
    ASSERT_FALSE(s.open_error.has_value());
    ASSERT_FALSE(s.error.has_value()) << s.error->message;
    EXPECT_TRUE(s.ended);
    EXPECT_EQ(s.skipped, 1);
    const chat::ChatResponse got = s.assembled();
    ASSERT_EQ(got.tool_calls.size(), 1u);
    EXPECT_NO_THROW(boost::json::parse(got.tool_calls[0].arguments));
  }
}

// Answers every request with a text/event-stream of the given frames, then a clean end.
class ScriptedStreamService final : public http::Service {
 public:
  explicit ScriptedStreamService(std::vector<std::string> frames) : frames_(std::move(frames)) {}
  net::awaitable<void> handle(http::Request, http::Responder& responder) override {
    if (!co_await responder.begin_stream(200, "text/event-stream", {})) co_return;
    for (const std::string& frame : frames_) {
      if (!co_await responder.write(frame)) co_return;
    }
    co_await responder.end_stream();
  }

 private:
  std::vector<std::string> frames_;
};

Streamed scripted_stream(std::vector<std::string> frames) {
  const TestUpstream upstream(
      [frames](net::io_context&, int) { return std::make_unique<ScriptedStreamService>(frames); });
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream.url("/v1")));
  return stream(*provider, text_request(true));
}

#define OPENAI_CHUNK(fields) \
  "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\"," fields "}\n\n"

TEST(HttpProviderStream, TheFingerprintAStreamStartsWithBecomesTheProvidersStack) {
  const std::vector<std::string> frames = {
      OPENAI_CHUNK("\"system_fingerprint\":\"fp_stream1\",\"choices\":[{\"index\":0,"
                   "\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]"),
      OPENAI_CHUNK("\"system_fingerprint\":\"fp_stream1\",\"choices\":[{\"index\":0,"
                   "\"delta\":{},\"finish_reason\":\"stop\"}]"),
      "data: [DONE]\n\n"};
  const TestUpstream upstream(
      [frames](net::io_context&, int) { return std::make_unique<ScriptedStreamService>(frames); });
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream.url("/v1")));
  EXPECT_EQ(provider->stack(), "");
  const Streamed s = stream(*provider, text_request(true));
  ASSERT_FALSE(s.error.has_value()) << s.error->message;
  EXPECT_TRUE(s.ended);
  EXPECT_EQ(provider->stack(), "fp_stream1");
}

TEST(HttpProviderStream, AnUndecodableEventThatNothingCompletesAfterIsBroken) {
  const Streamed s = scripted_stream(
      {OPENAI_CHUNK(R"("choices":[{"index":0,"delta":{"content":"Hel"}}])"), "data: {oops\n\n"});
  EXPECT_FALSE(s.ended);
  ASSERT_TRUE(s.error.has_value());
  EXPECT_EQ(s.error->code, core::ErrorCode::kBrokenStream);
  EXPECT_TRUE(
      s.error->message.starts_with("stream ended before it was complete (no "
                                   "finish_reason); 1 undecodable event(s) skipped"))
      << s.error->message;
  EXPECT_EQ(s.skipped, 1);
}

TEST(HttpProviderStream, AStreamOfNothingButUndecodableEventsIsBrokenEvenWithDone) {
  const Streamed s = scripted_stream({"data: {oops\n\n", "data: [1]\n\n", "data: [DONE]\n\n"});
  EXPECT_FALSE(s.ended);
  ASSERT_TRUE(s.error.has_value());
  EXPECT_EQ(s.error->code, core::ErrorCode::kBrokenStream);
  EXPECT_EQ(s.skipped, 2);
}

TEST(HttpProviderStream, AFinishReasonThenACleanEndIsCompleteWithUsageOrWithout) {
  const Streamed bare = scripted_stream(
      {OPENAI_CHUNK(R"("choices":[{"index":0,"delta":{"content":"Hi"}}])"),
       OPENAI_CHUNK(R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}])")});
  ASSERT_FALSE(bare.error.has_value()) << bare.error->message;
  EXPECT_TRUE(bare.ended);
  EXPECT_EQ(bare.assembled().content, "Hi");

  const Streamed with_usage = scripted_stream(
      {OPENAI_CHUNK(R"("choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}])"),
       OPENAI_CHUNK(R"("choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1})")});
  ASSERT_FALSE(with_usage.error.has_value()) << with_usage.error->message;
  EXPECT_TRUE(with_usage.ended);
  EXPECT_EQ(with_usage.assembled().usage.output_tokens, 1);
}

TEST(HttpProviderStream, NoAnswerBeforeTheTimeoutIsTimeout) {
  MockOptions mock;
  mock.timeout_wait = std::chrono::milliseconds(400);
  const auto upstream = mock_upstream(mock);
  auto options = provider_options(&dialects::openai::dialect(), upstream->url("/v1"));
  options.timeout_ms = 100;
  const Streamed s = stream(*make(options), request_saying("hi [mock:timeout]", true));
  ASSERT_TRUE(s.open_error.has_value());
  EXPECT_EQ(s.open_error->code, core::ErrorCode::kTimeout);
}

TEST(HttpProviderStream, TheTimeoutBoundsTheWholeStream) {
  MockOptions mock;
  mock.stream_frame_delay = std::chrono::milliseconds(40);
  const auto upstream = mock_upstream(mock);
  auto options = provider_options(&dialects::openai::dialect(), upstream->url("/v1"));
  // Each frame comes well within the timeout, the whole stream (8 frames) does not.
  options.timeout_ms = 150;
  const auto start = std::chrono::steady_clock::now();
  const Streamed s = stream(*make(options), request_saying("weather?", true));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(s.open_error.has_value());
  EXPECT_FALSE(s.batches.empty());
  ASSERT_TRUE(s.error.has_value());
  EXPECT_EQ(s.error->code, core::ErrorCode::kTimeout);
  EXPECT_EQ(s.error->message, "the streamed answer did not end within 150 ms");
  EXPECT_LT(took, std::chrono::milliseconds(1000));
}

TEST(HttpProviderStream, AStreamThatKeepsFlowingOutlivesTheCallersBudget) {
  MockOptions mock;
  mock.stream_frame_delay = std::chrono::milliseconds(30);
  const auto upstream = mock_upstream(mock);
  auto options = provider_options(&dialects::openai::dialect(), upstream->url("/v1"));
  options.idle_timeout_ms = 1'000;
  // The budget bounds the wait for the first frame; the stream (8 frames, 30 ms apart) flows
  // on past it, bounded by the idle and whole-call timeouts only.
  const Streamed s = stream(*make(options), request_saying("weather?", true),
                            [](CallContext& c) { c.budget = std::chrono::milliseconds(100); });
  ASSERT_FALSE(s.open_error.has_value()) << s.open_error->message;
  EXPECT_FALSE(s.error.has_value()) << s.error->message;
  EXPECT_TRUE(s.ended);
}

TEST(HttpProviderStream, SendsStreamAcceptAndIncludeUsage) {
  Recorded recorded;
  const auto upstream = recording_upstream(recorded);
  for (const auto dialect : kDialects) {
    SCOPED_TRACE(dialect->name());
    const auto provider = make(provider_options(dialect, base_url(*upstream, dialect)));
    const Streamed s = stream(*provider, request_saying("hi"));
    ASSERT_TRUE(s.open_error.has_value());
    EXPECT_EQ(s.open_error->code, core::ErrorCode::kUpstream);
    EXPECT_EQ(s.open_error->upstream_status, 401);
    EXPECT_EQ(s.open_error->message.find(kKey), std::string::npos) << s.open_error->message;
    EXPECT_NE(s.open_error->message.find("Incorrect API key provided"), std::string::npos);

    const std::lock_guard lock(recorded.mutex);
    ASSERT_TRUE(recorded.last.has_value());
    EXPECT_EQ(recorded.last->header("accept"), "text/event-stream");
    const auto body = boost::json::parse(recorded.last->body).as_object();
    EXPECT_EQ(body.at("stream"), true);
    if (dialect == &dialects::openai::dialect()) {
      EXPECT_EQ(body.at("stream_options").at("include_usage"), true);
    }
  }
}

// Answers every request with one whole Chat Completion, as a server that ignores `stream`.
class WholeAnswerService final : public http::Service {
 public:
  net::awaitable<void> handle(http::Request, http::Responder& responder) override {
    chat::ChatResponse answer;
    answer.id = "chatcmpl-1";
    answer.content = "whole";
    answer.usage.input_tokens = 3;
    answer.usage.output_tokens = 1;
    http::Response response;
    response.body = dialects::openai::encode_response(answer, "up-model");
    co_await responder.send(std::move(response));
  }
};

TEST(HttpProviderStream, AWholeAnswerToAStreamRequestIsStreamedFromIt) {
  const TestUpstream upstream(
      [](net::io_context&, int) { return std::make_unique<WholeAnswerService>(); });
  const auto provider = make(provider_options(&dialects::openai::dialect(), upstream.url("/v1")));
  const Streamed s = stream(*provider, text_request(true));
  ASSERT_FALSE(s.open_error || s.error);
  EXPECT_TRUE(s.ended);
  EXPECT_EQ(s.assembled().content, "whole");
  EXPECT_EQ(s.assembled().usage.input_tokens, 3);
}

}  // namespace
}  // namespace backstop::providers
