#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "chat/stream.h"
#include "dialects/openai/openai.h"
#include "dialects/responses/responses.h"

namespace backstop::dialects::responses {
namespace {

namespace bj = boost::json;
using chat::FinishReason;
using core::ErrorCode;

bj::value json_of(std::string_view text) { return bj::parse(text); }

TEST(ResponsesUpstream, AnotherDialectsRequestIsEncodedAsInstructionsAndInputItems) {
  auto request = openai::decode_request(R"({"model": "w", "max_tokens": 50,
    "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": "weather in Paris?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "18C"}],
    "tools": [{"type": "function", "function": {"name": "get_weather",
      "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})");
  ASSERT_TRUE(request) << request.error().message;
  const bj::value body = json_of(encode_upstream_request(*request, "gpt-5"));
  EXPECT_EQ(body.at("model"), "gpt-5");
  EXPECT_EQ(body.at("instructions"), "be brief");
  EXPECT_EQ(body.at("store"), false);
  EXPECT_EQ(body.at("max_output_tokens"), 50);
  const bj::array& input = body.at("input").as_array();
  ASSERT_EQ(input.size(), 3u);
  EXPECT_EQ(input[0].at("role"), "user");
  EXPECT_EQ(input[0].at("content").at(0).at("type"), "input_text");
  EXPECT_EQ(input[1].at("type"), "function_call");
  EXPECT_EQ(input[1].at("call_id"), "call_1");
  EXPECT_EQ(input[1].at("arguments"), R"({"city":"Paris"})");
  EXPECT_EQ(input[2].at("type"), "function_call_output");
  EXPECT_EQ(input[2].at("output"), "18C");
  EXPECT_EQ(body.at("tools").at(0).at("type"), "function");
  EXPECT_EQ(body.at("tools").at(0).at("name"), "get_weather");
  EXPECT_EQ(body.at("tool_choice").at("name"), "get_weather");
}

TEST(ResponsesUpstream, AResponsesClientsBodyPassesThroughWithTheModelReplaced) {
  auto request = decode_request(R"({"model": "w", "input": "hi", "previous_response_id": "resp_9",
    "tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]})");
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_NE(request->dialect_only.find("file_search"), std::string::npos);
  const bj::value body = json_of(encode_upstream_request(*request, "gpt-5"));
  EXPECT_EQ(body.at("model"), "gpt-5");
  EXPECT_EQ(body.at("previous_response_id"), "resp_9");
  EXPECT_EQ(body.at("tools").as_array().size(), 2u);
}

TEST(ResponsesUpstream, AResponseObjectDecodesToTheAnswer) {
  auto answer = decode_upstream_response(R"({"id": "resp_1", "object": "response",
    "created_at": 1700000000, "status": "completed", "model": "gpt-5",
    "output": [
      {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
      {"type": "message", "id": "msg_1", "role": "assistant",
       "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
      {"type": "function_call", "id": "fc_1", "call_id": "call_7", "name": "get_weather",
       "arguments": "{\"city\":\"Paris\"}"}],
    "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
              "output_tokens": 12}})");
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->id, "resp_1");
  EXPECT_EQ(answer->model, "gpt-5");
  EXPECT_EQ(answer->created, 1700000000);
  EXPECT_EQ(answer->reasoning, "think");
  EXPECT_EQ(answer->content, "Let me look.");
  ASSERT_EQ(answer->tool_calls.size(), 1u);
  EXPECT_EQ(answer->tool_calls[0].id, "call_7");
  EXPECT_EQ(answer->tool_calls[0].name, "get_weather");
  EXPECT_EQ(answer->finish_reason, FinishReason::kToolCalls);
  EXPECT_EQ(answer->usage.input_tokens, 60);
  EXPECT_EQ(answer->usage.cached_input_tokens, 40);
  EXPECT_EQ(answer->usage.output_tokens, 12);
}

TEST(ResponsesUpstream, IncompleteIsLengthFailedIsAnUpstreamErrorAndOtherBodiesAreBad) {
  auto cut = decode_upstream_response(R"({"object": "response", "status": "incomplete",
    "incomplete_details": {"reason": "max_output_tokens"},
    "output": [{"type": "message", "content": [{"type": "output_text", "text": "Once"}]}]})");
  ASSERT_TRUE(cut) << cut.error().message;
  EXPECT_EQ(cut->finish_reason, FinishReason::kLength);
  auto failed = decode_upstream_response(R"({"object": "response", "status": "failed",
    "error": {"code": "server_error", "message": "the model crashed"}, "output": []})");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kUpstream);
  EXPECT_EQ(failed.error().message, "the model crashed");
  auto chat = decode_upstream_response(R"({"object": "chat.completion", "choices": []})");
  ASSERT_FALSE(chat);
  EXPECT_EQ(chat.error().code, ErrorCode::kBadResponse);
}

// The frames of a stream, as (event, data) pairs.
std::vector<std::pair<std::string, std::string>> events_of(const std::string& frames) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t at = 0;
  while (at < frames.size()) {
    const std::size_t end = frames.find("\n\n", at);
    const std::string frame = frames.substr(at, end - at);
    at = end == std::string::npos ? frames.size() : end + 2;
    std::string event;
    std::string data;
    std::size_t line = 0;
    while (line < frame.size()) {
      const std::size_t stop = std::min(frame.find('\n', line), frame.size());
      const std::string text = frame.substr(line, stop - line);
      if (text.starts_with("event: ")) event = text.substr(7);
      if (text.starts_with("data: ")) data = text.substr(6);
      line = stop + 1;
    }
    if (!data.empty()) out.emplace_back(event, data);
  }
  return out;
}

TEST(ResponsesUpstream, ItsOwnStreamReadsBackAsTheAnswer) {
  chat::ChatResponse answer;
  answer.id = "resp_1";
  answer.model = "gpt-5";
  answer.content = "Checking.";
  answer.reasoning = "the user wants weather";
  answer.tool_calls = {{"call_1", "get_weather", R"({"city":"Paris"})"}};
  answer.finish_reason = FinishReason::kToolCalls;
  answer.usage = {70, 30, 0, 9};
  Echo echo;
  echo.model = "gpt-5";
  StreamEncoder encoder(echo);
  std::string frames;
  for (const auto& event : chat::to_events(answer)) frames += encoder.encode(event);
  frames += encoder.finish();

  UpstreamStreamDecoder decoder;
  chat::StreamAssembler assembled;
  for (const auto& [event, data] : events_of(frames)) {
    EXPECT_FALSE(decoder.complete()) << "ended before " << event;
    std::vector<chat::StreamEvent> out;
    auto fed = decoder.feed(event, data, out);
    ASSERT_TRUE(fed) << event << ": " << fed.error().message;
    assembled.add(out);
  }
  EXPECT_TRUE(decoder.complete());
  const chat::ChatResponse& got = assembled.response();
  EXPECT_EQ(got.content, "Checking.");
  EXPECT_EQ(got.reasoning, "the user wants weather");
  ASSERT_EQ(got.tool_calls.size(), 1u);
  EXPECT_EQ(got.tool_calls[0].id, "call_1");
  EXPECT_EQ(got.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(got.finish_reason, FinishReason::kToolCalls);
  EXPECT_EQ(got.usage.input_tokens, 70);
  EXPECT_EQ(got.usage.cached_input_tokens, 30);
  EXPECT_EQ(got.usage.output_tokens, 9);
}

TEST(ResponsesUpstream, StreamErrorsAreUpstreamAndGarbageIsSkippable) {
  UpstreamStreamDecoder decoder;
  std::vector<chat::StreamEvent> out;
  auto garbage = decoder.feed("response.output_text.delta", "{oops", out);
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, ErrorCode::kBadResponse);
  EXPECT_TRUE(out.empty());
  auto failed = decoder.feed(
      "response.failed",
      R"({"type": "response.failed", "response": {"error": {"message": "overloaded"}}})", out);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kUpstream);
  EXPECT_EQ(failed.error().message, "overloaded");
  auto error = decoder.feed("error", R"({"type": "error", "message": "rate limit"})", out);
  ASSERT_FALSE(error);
  EXPECT_EQ(error.error().message, "rate limit");
}

}  // namespace
}  // namespace backstop::dialects::responses
