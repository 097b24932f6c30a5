#include "mock/mock_upstream.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/client.h"
#include "http/sse.h"
#include "mock/test_upstream.h"

namespace backstop::mock {
namespace {

namespace net = boost::asio;
namespace bj = boost::json;
using Reply = core::Result<http::ClientResponse>;

constexpr std::string_view kTools = R"([{"type":"function","function":{"name":"lookup",
    "parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}}])";

class MockUpstreamTest : public ::testing::Test {
 protected:
  MockUpstreamTest()
      : upstream_([](net::io_context& loop, int) {
          MockOptions options;
          options.timeout_wait = std::chrono::milliseconds(50);
          options.max_tracked_ids = 2;
          return std::make_unique<MockUpstream>(loop, options);
        }) {}

  static net::awaitable<void> send_once(http::Client& client, http::Origin origin,
                                        http::ClientRequest request, std::optional<Reply>& out) {
    out = co_await client.send(origin, std::move(request));
  }

  Reply send(std::string method, std::string target, std::string body,
             std::vector<http::Header> headers = {}) {
    net::io_context loop;
    http::Client client(loop);
    http::ClientRequest request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    request.headers = std::move(headers);
    request.headers.push_back({"content-type", "application/json"});
    request.timeout = std::chrono::milliseconds(5'000);
    const auto origin = http::parse_origin(upstream_.url());
    EXPECT_TRUE(origin.has_value());
    std::optional<Reply> out;
    net::co_spawn(loop, send_once(client, *origin, std::move(request), out), net::detached);
    loop.run();
    return out ? std::move(*out) : core::fail(core::ErrorCode::kInternal, "no reply");
  }

  // POST /v1/chat/completions with one user message and one tool.
  Reply chat(std::string_view model, std::string_view text,
             std::vector<http::Header> headers = {}) {
    bj::object body{{"model", model},
                    {"messages", bj::array{bj::object{{"role", "user"}, {"content", text}}}},
                    {"tools", bj::parse(kTools)}};
    return send("POST", "/v1/chat/completions", bj::serialize(body), std::move(headers));
  }

  Reply messages(std::string_view model, std::string_view text) {
    bj::object body{{"model", model},
                    {"max_tokens", 100},
                    {"messages", bj::array{bj::object{{"role", "user"}, {"content", text}}}}};
    return send("POST", "/v1/messages", bj::serialize(body));
  }

  TestUpstream upstream_;
};

int status(const Reply& reply) { return reply ? reply->status : -1; }

bj::object body_of(const Reply& reply) {
  EXPECT_TRUE(reply.has_value());
  return bj::parse(reply->body).as_object();
}

// choices[0].message of an OpenAI answer.
const bj::object& first_message(const bj::object& body) {
  return body.at("choices").as_array()[0].as_object().at("message").as_object();
}

TEST_F(MockUpstreamTest, HealthzAndUnknownRoutes) {
  EXPECT_EQ(status(send("GET", "/healthz", "")), 200);
  EXPECT_EQ(status(send("GET", "/nope", "")), 404);
  EXPECT_EQ(status(send("GET", "/v1/chat/completions", "")), 404);
}

TEST_F(MockUpstreamTest, AnswersOpenAIWithAToolCall) {
  const Reply reply = chat("m1", "find it");
  ASSERT_EQ(status(reply), 200);
  const bj::object body = body_of(reply);
  EXPECT_EQ(body.at("model").as_string(), "m1");
  const auto& message = first_message(body);
  const auto& call = message.at("tool_calls").as_array()[0].as_object();
  EXPECT_EQ(call.at("function").as_object().at("name").as_string(), "lookup");
  const auto args = bj::parse(call.at("function").as_object().at("arguments").as_string());
  EXPECT_TRUE(args.as_object().contains("q"));
}

TEST_F(MockUpstreamTest, AnswersAnthropicWithAMessage) {
  const Reply reply = messages("claude-x", "hello");
  ASSERT_EQ(status(reply), 200);
  const bj::object body = body_of(reply);
  EXPECT_EQ(body.at("type").as_string(), "message");
  EXPECT_TRUE(body.at("id").as_string().starts_with("msg_"));
  EXPECT_EQ(body.at("model").as_string(), "claude-x");
}

TEST_F(MockUpstreamTest, UndecodableRequestIs400InTheDialect) {
  const Reply openai = send("POST", "/v1/chat/completions", R"({"model":1})");
  ASSERT_EQ(status(openai), 400);
  EXPECT_TRUE(body_of(openai).at("error").is_object());
  const Reply anthropic = send("POST", "/v1/messages", "not json");
  ASSERT_EQ(status(anthropic), 400);
  EXPECT_EQ(body_of(anthropic).at("type").as_string(), "error");
}

TEST_F(MockUpstreamTest, FaultHeaderChoosesTheFault) {
  const Reply empty = chat("m", "q", {{"x-mock-fault", "empty"}});
  ASSERT_EQ(status(empty), 200);
  const bj::object body = body_of(empty);
  const auto& message = first_message(body);
  EXPECT_EQ(message.at("content").as_string(), "");
  EXPECT_FALSE(message.contains("tool_calls") && !message.at("tool_calls").as_array().empty());

  EXPECT_EQ(status(chat("m", "q", {{"x-mock-fault", "no_such_fault"}})), 400);
}

TEST_F(MockUpstreamTest, RateLimitedSendsRetryAfterZero) {
  const Reply reply = chat("m", "q [mock:rate_limited]");
  ASSERT_EQ(status(reply), 429);
  EXPECT_EQ(reply->header("retry-after"), "0");
  EXPECT_TRUE(body_of(reply).at("error").is_object());
  const Reply anthropic = messages("m", "q [mock:rate_limited]");
  ASSERT_EQ(status(anthropic), 429);
  EXPECT_EQ(body_of(anthropic).at("type").as_string(), "error");
}

TEST_F(MockUpstreamTest, ServerErrorBadResponseAndTimeout) {
  EXPECT_EQ(status(chat("m", "[mock:server_error]")), 500);
  const Reply bad = chat("m", "[mock:bad_response]");
  ASSERT_EQ(status(bad), 200);
  boost::system::error_code ec;
  bj::parse(bad->body, ec);
  EXPECT_TRUE(ec.failed());
  EXPECT_EQ(status(chat("m", "[mock:timeout]")), 504);  // after the 50 ms of this fixture
}

TEST_F(MockUpstreamTest, InvalidJsonArgumentsCrossTheWire) {
  const Reply reply = chat("m", "[mock:invalid_json]");
  ASSERT_EQ(status(reply), 200);
  const bj::object body = body_of(reply);
  const auto& call = first_message(body).at("tool_calls").as_array()[0].as_object();
  boost::system::error_code ec;
  bj::parse(call.at("function").as_object().at("arguments").as_string(), ec);
  EXPECT_TRUE(ec.failed());
}

TEST_F(MockUpstreamTest, TargetedMarkersApplyOnlyToTheirModel) {
  const std::string text = "q [mock:empty@other] [mock:server_error@primary]";
  EXPECT_EQ(status(chat("primary", text)), 500);
  EXPECT_EQ(status(chat("fallback", text)), 200);
}

TEST_F(MockUpstreamTest, CountedMarkersApplyToTheFirstNRequestsOfAnId) {
  const std::string text = "q [mock:server_error*2]";
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "abc"}})), 500);
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "abc"}})), 500);
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "abc"}})), 200);
  EXPECT_EQ(status(chat("other-model", text, {{"x-request-id", "abc"}})), 500);
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "xyz"}})), 500);
  // Without an id every request is a first one.
  EXPECT_EQ(status(chat("m", text)), 500);
  EXPECT_EQ(status(chat("m", text)), 500);
  EXPECT_EQ(status(chat("m", text)), 500);
}

TEST_F(MockUpstreamTest, RemembersABoundedNumberOfIds) {
  const std::string text = "q [mock:server_error*1]";
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "a"}})), 500);
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "a"}})), 200);
  // This fixture remembers 2 ids: b and c push a out, so a counts from 1 again.
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "b"}})), 500);
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "c"}})), 500);
  EXPECT_EQ(status(chat("m", text, {{"x-request-id", "a"}})), 500);
}

TEST_F(MockUpstreamTest, SlowWaitsTheGivenDelay) {
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(status(chat("m", "q [mock:slow] [mock-delay:30]")), 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(status(chat("m", "q", {{"x-mock-delay-ms", "30"}})), 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));
}

TEST_F(MockUpstreamTest, OpenAIToolRoundTripEndsWithTextAfterTheToolResult) {
  const bj::value body = bj::parse(R"({"model": "m", "tools": )" + std::string(kTools) + R"(,
    "messages": [
      {"role": "user", "content": "find it"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "lookup", "arguments": "{\"q\":\"it\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "found it"}]})");
  const Reply reply = send("POST", "/v1/chat/completions", bj::serialize(body));
  ASSERT_EQ(status(reply), 200);
  const bj::object answer = body_of(reply);
  const auto& message = first_message(answer);
  EXPECT_FALSE(message.contains("tool_calls") && !message.at("tool_calls").as_array().empty());
  EXPECT_FALSE(message.at("content").as_string().empty());
  EXPECT_EQ(answer.at("choices").as_array()[0].at("finish_reason").as_string(), "stop");
}

TEST_F(MockUpstreamTest, AnthropicToolRoundTripEndsWithTextAfterTheToolResult) {
  // As Claude Code sends it: the tool_result block followed by a text block.
  const bj::value body = bj::parse(R"({"model": "m", "max_tokens": 100,
    "tools": [{"name": "lookup", "input_schema": {"type": "object",
      "properties": {"q": {"type": "string"}}, "required": ["q"]}}],
    "messages": [
      {"role": "user", "content": "find it"},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup",
        "input": {"q": "it"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found it"},
        {"type": "text", "text": "<system-reminder>note</system-reminder>"}]}]})");
  const Reply reply = send("POST", "/v1/messages", bj::serialize(body));
  ASSERT_EQ(status(reply), 200);
  const bj::object answer = body_of(reply);
  EXPECT_EQ(answer.at("stop_reason").as_string(), "end_turn");
  const auto& content = answer.at("content").as_array();
  ASSERT_EQ(content.size(), 1u);
  EXPECT_EQ(content[0].at("type").as_string(), "text");
  EXPECT_FALSE(content[0].at("text").as_string().empty());
}

TEST_F(MockUpstreamTest, AToolMarkerChoosesTheToolTheAnswerCalls) {
  const std::string tools = R"([{"type":"function","function":{"name":"first",
      "parameters":{"type":"object","properties":{}}}},)" +
                            std::string(kTools.substr(1));
  for (const auto& [text, name] :
       {std::pair{"find it [mock-tool:lookup]", "lookup"},
        std::pair{"find it [mock-tool:not_offered]", "first"}, std::pair{"find it", "first"}}) {
    const bj::object body{{"model", "m"},
                          {"messages", bj::array{bj::object{{"role", "user"}, {"content", text}}}},
                          {"tools", bj::parse(tools)}};
    const Reply reply = send("POST", "/v1/chat/completions", bj::serialize(body));
    ASSERT_EQ(status(reply), 200) << text;
    const bj::object answer = body_of(reply);
    const auto& call = first_message(answer).at("tool_calls").as_array()[0];
    EXPECT_EQ(call.at_pointer("/function/name").as_string(), name) << text;
  }
}

TEST_F(MockUpstreamTest, CountTokensAnswersADeterministicEstimateOfTheBody) {
  const std::string body =
      R"({"model": "claude-x", "messages": [{"role": "user", "content": "how many tokens?"}]})";
  const Reply first = send("POST", "/v1/messages/count_tokens", body);
  ASSERT_EQ(status(first), 200);
  EXPECT_EQ(first->header("content-type"), "application/json");
  const bj::object counted = body_of(first);
  EXPECT_EQ(counted.size(), 1u);
  EXPECT_EQ(counted.at("input_tokens").to_number<std::int64_t>(),
            static_cast<std::int64_t>(body.size() / 4));
  EXPECT_EQ(body_of(send("POST", "/v1/messages/count_tokens", body)), counted);
}

TEST_F(MockUpstreamTest, CountTokensRejectsABodyWithoutModelAndMessagesInAnthropicShape) {
  for (const std::string body :
       {"not json", "[]", R"({"model": "m"})", R"({"messages": []})", ""}) {
    const Reply reply = send("POST", "/v1/messages/count_tokens", body);
    ASSERT_EQ(status(reply), 400) << body;
    const bj::object error = body_of(reply);
    EXPECT_EQ(error.at("type").as_string(), "error") << body;
    EXPECT_EQ(error.at("error").at("type").as_string(), "invalid_request_error") << body;
  }
  EXPECT_EQ(status(send("GET", "/v1/messages/count_tokens", "")), 404);
}

TEST_F(MockUpstreamTest, EchoesAnthropicBetaOnEveryAnthropicAnswer) {
  const std::string beta = "claude-code-20250219,interleaved-thinking-2025-05-14";
  const std::vector<http::Header> headers{{"anthropic-beta", beta}};
  const std::string message = R"({"model": "m", "max_tokens": 10,
      "messages": [{"role": "user", "content": "hi"}]})";
  const std::string streamed = R"({"model": "m", "max_tokens": 10, "stream": true,
      "messages": [{"role": "user", "content": "hi"}]})";
  const std::string limited = R"({"model": "m", "max_tokens": 10,
      "messages": [{"role": "user", "content": "[mock:rate_limited]"}]})";
  const std::string counted = R"({"model": "m", "messages": []})";
  struct Case {
    std::string target, body;
    int status;
  };
  for (const Case& c : {Case{"/v1/messages", message, 200}, Case{"/v1/messages", streamed, 200},
                        Case{"/v1/messages", limited, 429}, Case{"/v1/messages", "not json", 400},
                        Case{"/v1/messages/count_tokens", counted, 200},
                        Case{"/v1/messages/count_tokens", "{}", 400}}) {
    const Reply reply = send("POST", c.target, c.body, headers);
    ASSERT_EQ(status(reply), c.status) << c.target << " " << c.body;
    EXPECT_EQ(reply->header("x-mock-anthropic-beta"), beta) << c.target << " " << c.body;
  }
  // No beta header: none echoed; and OpenAI answers never carry it.
  const Reply plain = send("POST", "/v1/messages", message);
  ASSERT_EQ(status(plain), 200);
  EXPECT_EQ(plain->header("x-mock-anthropic-beta"), "");
  const Reply openai = chat("m", "q", headers);
  ASSERT_EQ(status(openai), 200);
  EXPECT_EQ(openai->header("x-mock-anthropic-beta"), "");
}

// The SSE events of a body, fed to the parser a few bytes at a time.
std::vector<http::SseEvent> sse_events(std::string_view body) {
  http::SseParser parser;
  std::vector<http::SseEvent> events;
  for (std::size_t at = 0; at < body.size(); at += 7) parser.feed(body.substr(at, 7), events);
  EXPECT_EQ(parser.pending(), 0u);
  return events;
}

bj::object stream_body(std::string_view text, bool include_usage) {
  bj::object body{{"model", "m1"},
                  {"stream", true},
                  {"messages", bj::array{bj::object{{"role", "user"}, {"content", text}}}},
                  {"tools", bj::parse(kTools)}};
  if (include_usage) body["stream_options"] = bj::object{{"include_usage", true}};
  return body;
}

TEST_F(MockUpstreamTest, StreamsOpenAIChunksEndingWithDone) {
  for (const bool include_usage : {true, false}) {
    const Reply reply =
        send("POST", "/v1/chat/completions", bj::serialize(stream_body("find it", include_usage)));
    ASSERT_EQ(status(reply), 200);
    EXPECT_EQ(reply->header("content-type"), "text/event-stream");
    const auto events = sse_events(reply->body);
    ASSERT_GE(events.size(), 5u);
    EXPECT_EQ(events.back().data, "[DONE]");
    std::string arguments;
    int argument_chunks = 0;
    bool usage = false;
    for (std::size_t i = 0; i + 1 < events.size(); ++i) {
      const bj::object chunk = bj::parse(events[i].data).as_object();
      EXPECT_EQ(chunk.at("object").as_string(), "chat.completion.chunk");
      EXPECT_EQ(chunk.at("model").as_string(), "m1");
      if (chunk.contains("usage") && chunk.at("usage").is_object()) usage = true;
      for (const auto& choice : chunk.at("choices").as_array()) {
        const auto* calls = choice.at("delta").as_object().if_contains("tool_calls");
        if (calls == nullptr) continue;
        const auto& function = calls->as_array()[0].at("function").as_object();
        if (const auto* args = function.if_contains("arguments")) {
          arguments += args->as_string();
          argument_chunks += !args->as_string().empty();
        }
      }
    }
    EXPECT_EQ(usage, include_usage);
    EXPECT_GE(argument_chunks, 3);
    EXPECT_TRUE(bj::parse(arguments).as_object().contains("q")) << arguments;
  }
}

TEST_F(MockUpstreamTest, StreamsAnthropicEventsWithAPing) {
  const bj::object body{{"model", "claude-x"},
                        {"max_tokens", 100},
                        {"stream", true},
                        {"messages", bj::array{bj::object{{"role", "user"}, {"content", "hi"}}}}};
  const Reply reply = send("POST", "/v1/messages", bj::serialize(body));
  ASSERT_EQ(status(reply), 200);
  EXPECT_EQ(reply->header("content-type"), "text/event-stream");
  const auto events = sse_events(reply->body);
  ASSERT_GE(events.size(), 8u);
  EXPECT_EQ(events[0].event, "message_start");
  EXPECT_TRUE(bj::parse(events[0].data).at_pointer("/message/id").as_string().starts_with("msg_"));
  EXPECT_EQ(events[1].event, "ping");
  EXPECT_EQ(events[2].event, "content_block_start");
  EXPECT_EQ(events[3].event, "content_block_delta");
  EXPECT_EQ(events[4].event, "content_block_delta");
  EXPECT_EQ(events[events.size() - 2].event, "message_delta");
  EXPECT_EQ(events.back().event, "message_stop");
  for (const auto& event : events) {
    EXPECT_EQ(bj::parse(event.data).at("type").as_string(), event.event);
  }
}

TEST_F(MockUpstreamTest, AStreamBreakEndsTheBodyBeforeDone) {
  const Reply reply =
      send("POST", "/v1/chat/completions", bj::serialize(stream_body("[mock:stream_break]", true)));
  ASSERT_EQ(status(reply), 200);
  const auto events = sse_events(reply->body);
  ASSERT_FALSE(events.empty());
  for (const auto& event : events) EXPECT_NE(event.data, "[DONE]");
  EXPECT_TRUE(bj::parse(events.front().data).as_object().contains("choices"));
}

TEST_F(MockUpstreamTest, StreamFaultsBeforeTheStreamAreWholeErrors) {
  const Reply limited = send("POST", "/v1/chat/completions",
                             bj::serialize(stream_body("[mock:rate_limited]", false)));
  ASSERT_EQ(status(limited), 429);
  EXPECT_EQ(limited->header("content-type"), "application/json");
  EXPECT_TRUE(body_of(limited).at("error").is_object());
}

// How many delta events of `events` carry the mock's filler word (the Responses API repeats
// the whole text in its done events).
int filler_events(const std::vector<http::SseEvent>& events) {
  int count = 0;
  for (const auto& event : events) {
    const bool delta = event.event.empty() || event.event.ends_with("delta");
    count += delta && event.data.find("tick ") != std::string::npos;
  }
  return count;
}

TEST_F(MockUpstreamTest, StreamChunksHeaderPutsThatManyFillerDeltasInEachDialect) {
  struct Case {
    std::string path;
    bj::object body;
    std::string last;  // the event or data that ends the stream
  };
  const auto user = bj::array{bj::object{{"role", "user"}, {"content", "hi"}}};
  const std::vector<Case> cases = {
      {"/v1/chat/completions", stream_body("find it", false), "[DONE]"},
      {"/v1/messages",
       {{"model", "claude-x"}, {"max_tokens", 100}, {"stream", true}, {"messages", user}},
       "message_stop"},
      {"/v1/responses", {{"model", "m1"}, {"stream", true}, {"input", "hi"}}, "response.completed"},
  };
  for (const Case& c : cases) {
    const Reply reply =
        send("POST", c.path, bj::serialize(c.body), {{"x-mock-stream-chunks", "7"}});
    ASSERT_EQ(status(reply), 200) << c.path;
    const auto events = sse_events(reply->body);
    ASSERT_FALSE(events.empty()) << c.path;
    EXPECT_EQ(filler_events(events), 7) << c.path;
    EXPECT_TRUE(events.back().event == c.last || events.back().data == c.last) << c.path;
  }
}

TEST_F(MockUpstreamTest, WithoutAskingAStreamHasNoFiller) {
  const Reply reply =
      send("POST", "/v1/chat/completions", bj::serialize(stream_body("find it", false)));
  ASSERT_EQ(status(reply), 200);
  EXPECT_EQ(filler_events(sse_events(reply->body)), 0);
}

TEST_F(MockUpstreamTest, ChunkIntervalMarkersSpaceTheFramesAtLeastThatFarApart) {
  // Markers instead of headers; the interval is a lower bound on the whole stream's length.
  const auto started = std::chrono::steady_clock::now();
  const Reply reply = send("POST", "/v1/chat/completions",
                           bj::serialize(stream_body("[mock-chunks:4] [mock-interval:25]", false)));
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(status(reply), 200);
  const auto events = sse_events(reply->body);
  EXPECT_EQ(filler_events(events), 4);
  // The frames after the first each waited the interval (the first frame also holds a ping
  // or nothing, so frames <= events).
  EXPECT_GE(elapsed, std::chrono::milliseconds(25) * 4);
}

}  // namespace
}  // namespace backstop::mock
