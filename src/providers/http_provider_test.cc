#include "providers/http_provider.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "dialects/openai/openai.h"
#include "http/server.h"
#include "providers/mock_upstream.h"
#include "providers/test_upstream.h"

namespace backstop::providers {
namespace {

namespace net = boost::asio;
using Outcome = core::Result<chat::ChatResponse>;

constexpr std::string_view kKey = "sk-secret-123";

std::unique_ptr<TestUpstream> mock_upstream(MockOptions options = {}) {
  return std::make_unique<TestUpstream>([options](net::io_context& loop, int) {
    return std::make_unique<MockUpstream>(loop, options);
  });
}

chat::ChatRequest request_saying(std::string_view text) {
  boost::json::object body{
      {"model", "agentic"},
      {"messages", boost::json::array{boost::json::object{{"role", "user"}, {"content", text}}}},
      {"tools", boost::json::parse(R"([{"type":"function","function":{"name":"get_weather",
          "parameters":{"type":"object","properties":{"city":{"type":"string"},
          "unit":{"enum":["c","f"]}},"required":["city","unit"]}}}])")}};
  auto request = dialects::openai::decode_request(boost::json::serialize(body));
  EXPECT_TRUE(request.has_value()) << request.error().message;
  return *request;
}

HttpProviderOptions provider_options(chat::Dialect dialect, std::string base_url,
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

// One call of provider.complete() on a fresh loop and client.
Outcome call(Provider& provider, const chat::ChatRequest& request,
             std::string_view request_id = "req-1") {
  net::io_context loop;
  http::Client client(loop);
  core::SystemClock clock;
  CallContext context{loop, client, clock, request_id};
  std::optional<Outcome> out;
  net::co_spawn(loop, call_once(provider, request, context, out), net::detached);
  loop.run();
  EXPECT_TRUE(out.has_value());
  return out ? std::move(*out) : core::fail(core::ErrorCode::kInternal, "no outcome");
}

TEST(HttpProvider, OpenAIPassPath) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(chat::Dialect::kOpenAI, upstream->url("/v1")));
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
  const auto provider = make(provider_options(chat::Dialect::kAnthropic, upstream->url()));
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
  for (const auto dialect : {chat::Dialect::kOpenAI, chat::Dialect::kAnthropic}) {
    const auto provider = make(
        provider_options(dialect, upstream->url(dialect == chat::Dialect::kOpenAI ? "/v1" : "")));
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
  for (const auto dialect : {chat::Dialect::kOpenAI, chat::Dialect::kAnthropic}) {
    const auto provider = make(
        provider_options(dialect, upstream->url(dialect == chat::Dialect::kOpenAI ? "/v1" : "")));
    const Outcome r = call(*provider, request_saying("hi [mock:server_error]"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, core::ErrorCode::kUpstream);
    EXPECT_EQ(r.error().upstream_status, 500);
    EXPECT_EQ(r.error().message, "HTTP 500: mock: server error");
  }
}

TEST(HttpProvider, UndecodableBodyIsBadResponse) {
  const auto upstream = mock_upstream();
  const auto provider = make(provider_options(chat::Dialect::kOpenAI, upstream->url("/v1")));
  const Outcome r = call(*provider, request_saying("hi [mock:bad_response]"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kBadResponse);
  EXPECT_TRUE(r.error().message.starts_with("HTTP 200 body does not decode: "))
      << r.error().message;
}

TEST(HttpProvider, RefusedConnectionIsConnect) {
  std::uint16_t port = 0;
  {
    net::io_context loop;
    net::ip::tcp::acceptor acceptor(loop, {net::ip::make_address("127.0.0.1"), 0});
    port = acceptor.local_endpoint().port();
  }
  const auto provider = make(
      provider_options(chat::Dialect::kOpenAI, "http://127.0.0.1:" + std::to_string(port) + "/v1"));
  const Outcome r = call(*provider, request_saying("hi"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kConnect);
  EXPECT_EQ(r.error().message.find(kKey), std::string::npos);
}

TEST(HttpProvider, SlowUpstreamIsTimeout) {
  MockOptions mock;
  mock.timeout_wait = std::chrono::milliseconds(400);
  const auto upstream = mock_upstream(mock);
  auto options = provider_options(chat::Dialect::kOpenAI, upstream->url("/v1"));
  options.timeout_ms = 100;
  const Outcome r = call(*make(options), request_saying("hi [mock:timeout]"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::ErrorCode::kTimeout);
}

TEST(HttpProvider, BadBaseUrlIsInvalidArgument) {
  const auto provider = HttpProvider::create(provider_options(chat::Dialect::kOpenAI, "ftp://x"));
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
  const auto provider = make(provider_options(chat::Dialect::kOpenAI, upstream->url("/v1")));
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
  const auto provider = make(provider_options(chat::Dialect::kAnthropic, upstream->url()));
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

TEST(HttpProvider, EmptyKeySendsNoAuthHeader) {
  Recorded recorded;
  const auto upstream = recording_upstream(recorded);
  auto options = provider_options(chat::Dialect::kOpenAI, upstream->url("/v1"));
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

TEST(RetryAfter, ReadsMillisecondsThenSeconds) {
  EXPECT_EQ(retry_after_ms(with_header("retry-after-ms", "1500")), 1500);
  EXPECT_EQ(retry_after_ms(with_header("Retry-After", "2")), 2000);
  EXPECT_EQ(retry_after_ms(with_header("Retry-After", "0.5")), 500);
  EXPECT_EQ(retry_after_ms(with_header("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT")), -1);
  EXPECT_EQ(retry_after_ms(with_header("x-other", "1")), -1);
}

}  // namespace
}  // namespace backstop::providers
