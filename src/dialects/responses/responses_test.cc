#include "dialects/responses/responses.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "chat/stream.h"
#include "json/json.h"

namespace backstop::dialects::responses {
namespace {

namespace bj = boost::json;
using chat::ContentPart;
using chat::FinishReason;
using chat::ResponseFormat;
using chat::Role;
using chat::StreamEvent;
using chat::ToolChoice;
using core::ErrorCode;

Echo echo_named(std::string model) {
  Echo echo;
  echo.model = std::move(model);
  return echo;
}

chat::ChatRequest decoded(std::string_view body) {
  auto request = decode_request(body);
  EXPECT_TRUE(request) << request.error().message;
  return request ? std::move(*request) : chat::ChatRequest{};
}

std::string refusal(std::string_view body) {
  auto request = decode_request(body);
  EXPECT_FALSE(request) << body;
  if (request) return {};
  EXPECT_EQ(request.error().code, ErrorCode::kInvalidArgument);
  return request.error().message;
}

bj::object parsed(std::string_view text) { return json::parse(text).value().get_object(); }

TEST(ResponsesDecode, StringInputIsOneUserMessageAfterInstructions) {
  auto request = decoded(R"({"model":"agentic","instructions":"Be brief.","input":"say hi"})");
  EXPECT_EQ(request.origin, responses::kName);
  EXPECT_EQ(request.model, "agentic");
  ASSERT_EQ(request.messages.size(), 2u);
  EXPECT_EQ(request.messages[0].role, Role::kSystem);
  EXPECT_EQ(request.messages[0].text(), "Be brief.");
  EXPECT_EQ(request.messages[1].role, Role::kUser);
  EXPECT_EQ(request.messages[1].text(), "say hi");
  EXPECT_TRUE(request.has_original());  // kept for a target of kind openai_responses
}

TEST(ResponsesDecode, ItemsBecomeTurnsWithCallsOnTheAssistantTurnAndReasoningCarried) {
  auto request = decoded(R"({"model":"m","input":[
    {"type":"message","role":"developer","content":[{"type":"input_text","text":"rules"}]},
    {"role":"user","content":[{"type":"input_text","text":"weather?"},
                              {"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},
    {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"need a tool"}],
     "encrypted_content":"opaque"},
    {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
    {"type":"function_call","call_id":"call_2","name":"get_time","arguments":"{}"},
    {"type":"function_call_output","call_id":"call_1","output":"18C"},
    {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"noon"}]},
    {"type":"message","role":"assistant","content":[{"type":"output_text","text":"18C at noon"}]},
    {"role":"user","content":"thanks"}]})");
  ASSERT_EQ(request.messages.size(), 7u);
  EXPECT_EQ(request.messages[0].role, Role::kSystem);
  EXPECT_EQ(request.messages[1].role, Role::kUser);
  ASSERT_EQ(request.messages[1].content.size(), 2u);
  EXPECT_EQ(request.messages[1].content[1].kind, ContentPart::Kind::kImage);
  const auto& calls = request.messages[2];
  EXPECT_EQ(calls.role, Role::kAssistant);
  EXPECT_EQ(calls.reasoning, "need a tool");
  ASSERT_EQ(calls.tool_calls.size(), 2u);
  EXPECT_EQ(calls.tool_calls[0].id, "call_1");
  EXPECT_EQ(calls.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(calls.tool_calls[1].name, "get_time");
  EXPECT_EQ(request.messages[3].role, Role::kTool);
  EXPECT_EQ(request.messages[3].tool_call_id, "call_1");
  EXPECT_EQ(request.messages[4].text(), "noon");
  EXPECT_EQ(request.messages[5].role, Role::kAssistant);
  EXPECT_EQ(request.messages[5].text(), "18C at noon");
  EXPECT_EQ(request.messages[6].text(), "thanks");
}

TEST(ResponsesDecode, AssistantTextThenCallIsOneTurn) {
  auto request = decoded(R"({"model":"m","input":[{"role":"user","content":"go"},
    {"role":"assistant","content":"Looking it up."},
    {"type":"function_call","call_id":"c","name":"f","arguments":"{}"}]})");
  ASSERT_EQ(request.messages.size(), 2u);
  EXPECT_EQ(request.messages[1].text(), "Looking it up.");
  EXPECT_EQ(request.messages[1].tool_calls.size(), 1u);
}

TEST(ResponsesDecode, FunctionToolsChoiceFormatAndParameters) {
  auto request = decoded(R"({"model":"m","input":"x","stream":true,"store":true,
    "tools":[{"type":"function","name":"get_weather","description":"Weather","strict":true,
              "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],
    "tool_choice":{"type":"function","name":"get_weather"},
    "text":{"format":{"type":"json_schema","name":"answer","strict":true,
                      "schema":{"type":"object","properties":{"a":{"type":"integer"}}}}},
    "max_output_tokens":256,"temperature":0.2,"top_p":0.9,"parallel_tool_calls":false,
    "reasoning":{"effort":"high","summary":"auto"},"metadata":{"k":"v"},
    "include":["reasoning.encrypted_content"],"user":"u-1"})");
  ASSERT_EQ(request.tools.size(), 1u);
  EXPECT_EQ(request.tools[0].name, "get_weather");
  EXPECT_EQ(request.tools[0].description, "Weather");
  EXPECT_EQ(bj::serialize(request.tools[0].parameters),
            R"({"type":"object","properties":{"city":{"type":"string"}}})");
  EXPECT_EQ(request.tool_choice.kind, ToolChoice::Kind::kNamed);
  EXPECT_EQ(request.response_format.kind, ResponseFormat::Kind::kJsonSchema);
  EXPECT_EQ(request.response_format.name, "answer");
  EXPECT_TRUE(request.response_format.strict);
  EXPECT_EQ(bj::serialize(request.response_format.schema),
            R"({"type":"object","properties":{"a":{"type":"integer"}}})");
  EXPECT_EQ(request.max_tokens, 256);
  EXPECT_EQ(request.temperature, 0.2);
  EXPECT_EQ(request.top_p, 0.9);
  EXPECT_EQ(request.parallel_tool_calls, false);
  EXPECT_EQ(request.reasoning_effort, "high");
  EXPECT_TRUE(request.stream);
  EXPECT_EQ(bj::serialize(request.metadata), R"({"user_id":"u-1"})");
}

TEST(ResponsesDecode, StatefulFieldsAndBuiltInToolsAreForAResponsesTargetOnlyNamingWhat) {
  const auto only = [](std::string_view body) { return decoded(body).dialect_only; };
  EXPECT_NE(only(R"({"model":"m","input":"x","previous_response_id":"resp_1"})")
                .find("`previous_response_id`"),
            std::string::npos);
  EXPECT_NE(only(R"({"model":"m","input":"x","conversation":"conv_1"})").find("`conversation`"),
            std::string::npos);
  EXPECT_NE(only(R"({"model":"m","input":"x","tools":[{"type":"file_search"}]})")
                .find("`tools[0]` is the built-in tool \"file_search\""),
            std::string::npos);
  EXPECT_NE(
      only(R"({"model":"m","input":[{"type":"item_reference","id":"msg_1"}]})").find("`input[0]`"),
      std::string::npos);
  EXPECT_NE(only(R"({"model":"m","input":"x","background":true})").find("`background"),
            std::string::npos);
  EXPECT_NE(only(R"({"model":"m","input":"x","background":true})").find("kind openai_responses"),
            std::string::npos);
  EXPECT_EQ(only(R"({"model":"m","input":"x"})"), "");
}

TEST(ResponsesDecode, CodexsWebSearchAndNamespaceToolsAreLeftOut) {
  auto request = decoded(R"({"model":"m","input":"x","tools":[
    {"type":"function","name":"exec_command","parameters":{"type":"object"}},
    {"type":"namespace","name":"multi_agent_v1","description":"Sub-agents",
     "tools":[{"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]},
    {"type":"web_search","external_web_access":false}]})");
  ASSERT_EQ(request.tools.size(), 1u);
  EXPECT_EQ(request.tools[0].name, "exec_command");
}

TEST(ResponsesDecode, BadInputNamesThePath) {
  EXPECT_EQ(refusal(R"({"model":"m"})"), "`input` is required");
  EXPECT_EQ(refusal(R"({"model":"m","input":[]})"), "`input` must not be empty");
  EXPECT_EQ(refusal(R"({"model":"m","input":"x","tool_choice":"sometimes"})"),
            "`tool_choice` must be one of auto, none, required; got \"sometimes\"");
  EXPECT_NE(
      refusal(R"({"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]})")
          .find("input[0].call_id"),
      std::string::npos);
  EXPECT_NE(
      refusal(R"({"model":"m","input":[{"role":"robot","content":"x"}]})").find("`input[0].role`"),
      std::string::npos);
  EXPECT_NE(refusal(R"({"model":"m","input":"x","max_output_tokens":0})")
                .find("`max_output_tokens` must be at least 1"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"}],
                      "tool_choice":{"type":"function","name":"g"}})")
                .find("not one of `tools`"),
            std::string::npos);
}

chat::ChatResponse answer() {
  chat::ChatResponse response;
  response.model = "deepseek-v4";
  response.reasoning = "thinking";
  response.content = "It is 18C.";
  response.tool_calls.push_back({"call_9", "get_weather", R"({"city":"Paris"})"});
  response.finish_reason = FinishReason::kToolCalls;
  response.usage = {.input_tokens = 90, .cached_input_tokens = 10, .output_tokens = 20};
  return response;
}

TEST(ResponsesEncode, ResponseObjectHasReasoningMessageAndCallItemsWithUsage) {
  auto out = parsed(encode_response(answer(), [] {
    Echo e = echo_named("agentic");
    e.max_output_tokens = 256;
    return e;
  }()));
  EXPECT_EQ(out.at("object"), "response");
  EXPECT_TRUE(out.at("id").get_string().starts_with("resp_"));
  EXPECT_EQ(out.at("status"), "completed");
  EXPECT_EQ(out.at("model"), "agentic");
  EXPECT_EQ(out.at("store"), false);
  EXPECT_EQ(out.at("max_output_tokens"), 256);
  const auto& output = out.at("output").get_array();
  ASSERT_EQ(output.size(), 3u);
  EXPECT_EQ(output[0].at("type"), "reasoning");
  EXPECT_EQ(output[0].at("summary").at(0).at("text"), "thinking");
  EXPECT_EQ(output[1].at("type"), "message");
  EXPECT_EQ(output[1].at("content").at(0).at("type"), "output_text");
  EXPECT_EQ(output[1].at("content").at(0).at("text"), "It is 18C.");
  EXPECT_EQ(output[2].at("type"), "function_call");
  EXPECT_EQ(output[2].at("call_id"), "call_9");
  EXPECT_EQ(output[2].at("arguments"), R"({"city":"Paris"})");
  EXPECT_EQ(bj::serialize(out.at("usage")),
            R"({"input_tokens":100,"input_tokens_details":{"cached_tokens":10},)"
            R"("output_tokens":20,"output_tokens_details":{"reasoning_tokens":0},)"
            R"("total_tokens":120})");
}

TEST(ResponsesEncode, AnswerCutAtMaxTokensIsIncomplete) {
  chat::ChatResponse response;
  response.content = "partial";
  response.finish_reason = FinishReason::kLength;
  auto out = parsed(encode_response(response, echo_named("m")));
  EXPECT_EQ(out.at("status"), "incomplete");
  EXPECT_EQ(out.at("incomplete_details").at("reason"), "max_output_tokens");
}

TEST(ResponsesEncode, ErrorsHaveTheChatCompletionsShape) {
  auto out = parsed(encode_error({ErrorCode::kInvalidArgument, "bad"}));
  EXPECT_EQ(out.at("error").at("message"), "bad");
  EXPECT_EQ(out.at("error").at("type"), "invalid_request_error");
}

struct Frame {
  std::string event;
  bj::object data;
};

std::vector<Frame> frames(std::string_view text) {
  std::vector<Frame> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find("\n\n", pos);
    EXPECT_NE(end, std::string_view::npos) << text.substr(pos);
    if (end == std::string_view::npos) break;
    std::string_view frame = text.substr(pos, end - pos);
    auto newline = frame.find('\n');
    EXPECT_TRUE(frame.starts_with("event: ") && frame.substr(newline + 1).starts_with("data: "));
    out.push_back({std::string(frame.substr(7, newline - 7)), parsed(frame.substr(newline + 7))});
    pos = end + 2;
  }
  return out;
}

std::vector<std::string> names(const std::vector<Frame>& fs) {
  std::vector<std::string> out;
  for (const auto& f : fs) out.push_back(f.event);
  return out;
}

std::string stream_of(const std::vector<StreamEvent>& events, StreamEncoder& encoder) {
  std::string out;
  for (const auto& e : events) out += encoder.encode(e);
  return out;
}

TEST(ResponsesStream, TextAnswerIsTheDocumentedEventSequenceWithSequenceNumbers) {
  StreamEncoder encoder(echo_named("agentic"));
  std::string text = stream_of({chat::start_event("x", "v4"), chat::text_event("Hel"),
                                chat::text_event("lo"), chat::finish_event(FinishReason::kStop),
                                chat::usage_event({.input_tokens = 5, .output_tokens = 2})},
                               encoder);
  text += encoder.finish();
  auto fs = frames(text);
  EXPECT_EQ(names(fs),
            (std::vector<std::string>{"response.created", "response.in_progress",
                                      "response.output_item.added", "response.content_part.added",
                                      "response.output_text.delta", "response.output_text.delta",
                                      "response.output_text.done", "response.content_part.done",
                                      "response.output_item.done", "response.completed"}));
  for (std::size_t i = 0; i < fs.size(); ++i) {
    EXPECT_EQ(fs[i].data.at("type").as_string(), fs[i].event);
    EXPECT_EQ(fs[i].data.at("sequence_number"), static_cast<std::int64_t>(i));
  }
  EXPECT_EQ(fs[4].data.at("delta"), "Hel");
  EXPECT_EQ(fs[6].data.at("text"), "Hello");
  const auto& done = fs.back().data.at("response").get_object();
  EXPECT_EQ(done.at("status"), "completed");
  EXPECT_EQ(done.at("output").at(0).at("content").at(0).at("text"), "Hello");
  EXPECT_EQ(done.at("usage").at("total_tokens"), 7);
  EXPECT_EQ(fs[0].data.at("response").at("id"), done.at("id"));
}

TEST(ResponsesStream, ReasoningThenToolCallsAreItemsWithArgumentDeltas) {
  StreamEncoder encoder(echo_named("agentic"));
  std::string text = stream_of(
      {chat::reasoning_event("hmm"), chat::signature_event("sig"),
       chat::tool_start_event(0, "call_1", "get_weather"), chat::tool_delta_event(0, R"({"city":)"),
       chat::tool_start_event(1, "call_2", "f"), chat::tool_delta_event(0, R"("Paris"})"),
       chat::tool_delta_event(1, "{}"), chat::finish_event(FinishReason::kToolCalls)},
      encoder);
  text += encoder.finish();
  auto fs = frames(text);
  EXPECT_EQ(names(fs),
            (std::vector<std::string>{
                "response.created", "response.in_progress", "response.output_item.added",
                "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
                "response.output_item.done", "response.output_item.added",
                "response.function_call_arguments.delta", "response.output_item.added",
                "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done",
                "response.function_call_arguments.done", "response.output_item.done",
                "response.completed"}));
  EXPECT_EQ(fs[8].data.at("item").at("call_id"), "call_1");
  EXPECT_EQ(fs[11].data.at("output_index"), 1);  // the first call's second fragment
  EXPECT_EQ(fs[13].data.at("arguments"), R"({"city":"Paris"})");
  const auto& output = fs.back().data.at("response").at("output").get_array();
  ASSERT_EQ(output.size(), 3u);
  EXPECT_EQ(output[2].at("arguments"), "{}");
}

TEST(ResponsesStream, CutAnswerEndsIncompleteAndBrokenStreamEndsFailed) {
  StreamEncoder cut(echo_named("m"));
  std::string text = cut.encode(chat::text_event("abc"));
  text += cut.encode(chat::finish_event(FinishReason::kLength));
  text += cut.finish();
  auto fs = frames(text);
  EXPECT_EQ(fs.back().event, "response.incomplete");
  EXPECT_EQ(fs.back().data.at("response").at("incomplete_details").at("reason"),
            "max_output_tokens");

  StreamEncoder broken(echo_named("m"));
  text = broken.encode(chat::text_event("abc"));
  text += broken.error({ErrorCode::kBadResponse, "upstream stream ended early"});
  fs = frames(text);
  EXPECT_EQ(fs.back().event, "response.failed");
  EXPECT_EQ(fs.back().data.at("response").at("status"), "failed");
  EXPECT_EQ(fs.back().data.at("response").at("error").at("message"), "upstream stream ended early");
}

}  // namespace
}  // namespace backstop::dialects::responses
