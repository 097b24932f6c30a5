#include "dialects/anthropic/anthropic.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "json/json.h"

namespace backstop::dialects::anthropic {
namespace {

namespace bj = boost::json;
using chat::FinishReason;
using chat::Role;
using chat::ToolChoice;
using core::ErrorCode;

bj::object parsed(std::string_view text) { return json::parse_object(text).value(); }

struct BadRequest {
  std::string body;
  std::string message;
};

void PrintTo(const BadRequest& bad, std::ostream* out) { *out << bad.body; }

class DecodeRequestErrorTest : public testing::TestWithParam<BadRequest> {};

TEST_P(DecodeRequestErrorTest, NamesThePathOfWhatIsWrong) {
  auto result = decode_request(GetParam().body);
  ASSERT_FALSE(result) << GetParam().body;
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.error().message, GetParam().message);
}

// A valid prefix: model, max_tokens and one user message; cases append fields after it.
#define BASE R"("model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}])"
#define USER(content) \
  R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":)" content "}]}"

INSTANTIATE_TEST_SUITE_P(
    Cases, DecodeRequestErrorTest,
    testing::Values(
        BadRequest{"3", "body must be a JSON object, got a number"},
        BadRequest{R"({"max_tokens":1,"messages":[]})", "`model` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":"hi"}]})",
                   "`max_tokens` is required"},
        BadRequest{R"({"model":"m","max_tokens":0,"messages":[]})",
                   "`max_tokens` must be at least 1, got 0"},
        BadRequest{R"({"model":"m","max_tokens":1.5,"messages":[]})",
                   "`max_tokens` must be an integer, got a number"},
        BadRequest{R"({"model":"m","max_tokens":1})", "`messages` is required"},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":{}})",
                   "`messages` must be an array, got an object"},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":[]})", "`messages` must not be empty"},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":[{"role":"tool","content":"x"}]})",
                   "`messages[0].role` must be one of user, assistant, system; got \"tool\""},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":[{"role":"system","content":7}]})",
                   "`messages[0].content` must be a string or an array of text blocks, got a "
                   "number"},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":[{"role":"system","content":
                   [{"type":"image","source":{}}]}]})",
                   "`messages[0].content[0].type` must be \"text\", got \"image\""},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":[{"role":"user"}]})",
                   "`messages[0].content` is required"},
        BadRequest{USER("7"), "`messages[0].content` must be a string or an array, got a number"},
        BadRequest{USER(R"([{"type":"document","source":{}}])"),
                   "`messages[0].content[0].source.type` is required"},
        BadRequest{USER(R"([{"type":"document"}])"), "`messages[0].content[0].source` is required"},
        BadRequest{USER(R"([{"type":"document","source":{"type":"base64","data":"AA"}}])"),
                   "`messages[0].content[0].source.media_type` is required"},
        BadRequest{USER(R"([{"type":"text"}])"), "`messages[0].content[0].text` is required"},
        BadRequest{USER(R"([{"type":"image","source":{"type":"file","file_id":"f"}}])"),
                   "`messages[0].content[0].source.type` must be one of base64, url; got \"file\""},
        BadRequest{USER(R"([{"type":"image","source":{"type":"base64","data":"AA"}}])"),
                   "`messages[0].content[0].source.media_type` is required"},
        BadRequest{USER(R"([{"type":"image"}])"), "`messages[0].content[0].source` is required"},
        BadRequest{USER(R"([{"type":"tool_result","content":"x"}])"),
                   "`messages[0].content[0].tool_use_id` is required"},
        BadRequest{USER(R"([{"type":"tool_result","tool_use_id":"t","is_error":"yes"}])"),
                   "`messages[0].content[0].is_error` must be a boolean, got a string"},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":
                   [{"type":"tool_use","id":"t","input":{}}]}]})",
                   "`messages[0].content[0].name` is required"},
        BadRequest{R"({"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":
                   [{"type":"tool_use","id":"t","name":"f","input":"{}"}]}]})",
                   "`messages[0].content[0].input` must be an object, got a string"},
        BadRequest{"{" BASE R"(,"system":5})",
                   "`system` must be a string or an array of text blocks, got a number"},
        BadRequest{"{" BASE R"(,"system":[{"type":"image"}]})",
                   "`system[0].type` must be \"text\", got \"image\""},
        BadRequest{"{" BASE R"(,"tools":[{"description":"d","input_schema":{}}]})",
                   "`tools[0].name` is required"},
        BadRequest{"{" BASE R"(,"tools":[{"name":"f"}]})", "`tools[0].input_schema` is required"},
        BadRequest{"{" BASE R"(,"thinking":"on"})", "`thinking` must be an object, got a string"},
        BadRequest{"{" BASE R"(,"context_management":[]})",
                   "`context_management` must be an object, got an array"},
        BadRequest{"{" BASE R"(,"output_config":"high"})",
                   "`output_config` must be an object, got a string"},
        BadRequest{"{" BASE R"(,"output_config":{"format":{"type":"text"}}})",
                   "`output_config.format.type` must be \"json_schema\", got \"text\""},
        BadRequest{"{" BASE R"(,"output_config":{"format":{"type":"json_schema"}}})",
                   "`output_config.format.schema` is required"},
        BadRequest{"{" BASE R"(,"output_format":{"schema":{}}})",
                   "`output_format.type` is required"},
        BadRequest{"{" BASE R"(,"tool_choice":"auto"})",
                   "`tool_choice` must be an object, got a string"},
        BadRequest{"{" BASE R"(,"tool_choice":{"type":"sometimes"}})",
                   "`tool_choice.type` must be one of auto, any, tool, none; got \"sometimes\""},
        BadRequest{"{" BASE R"(,"tool_choice":{"type":"tool"}})", "`tool_choice.name` is required"},
        BadRequest{"{" BASE R"(,"tools":[{"name":"f","input_schema":{}}],
                   "tool_choice":{"type":"tool","name":"g"}})",
                   "`tool_choice.name` is \"g\", which is not one of `tools`"},
        BadRequest{"{" BASE R"(,"stop_sequences":"END"})",
                   "`stop_sequences` must be an array, got a string"},
        BadRequest{"{" BASE R"(,"stop_sequences":[1]})",
                   "`stop_sequences[0]` must be a string, got a number"},
        BadRequest{"{" BASE R"(,"temperature":"warm"})",
                   "`temperature` must be a number, got a string"},
        BadRequest{"{" BASE R"(,"stream":1})", "`stream` must be a boolean, got a number"},
        BadRequest{"{" BASE R"(,"metadata":"u"})", "`metadata` must be an object, got a string"},
        // Infinity has no JSON form: it would reach the upstream as `Infinity`.
        BadRequest{"{" BASE R"(,"top_p":1e999})",
                   "not valid JSON at byte 86: number out of range"}));

#undef USER
#undef BASE

TEST(DecodeRequestTest, ReadsEveryModelledField) {
  auto result = decode_request(R"({
    "model": "agentic", "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "top_k": 5,
    "stop_sequences": ["END"], "stream": true, "metadata": {"user_id": "u-1"},
    "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
    "messages": [
      {"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
      {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "calling"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "t2", "is_error": true,
         "content": [{"type": "text", "text": "two"}]},
        {"type": "text", "text": "next"}]}
    ]})");
  ASSERT_TRUE(result) << result.error().message;
  const auto& r = *result;
  EXPECT_EQ(r.model, "agentic");
  EXPECT_EQ(r.max_tokens, 100);
  EXPECT_EQ(r.temperature, 0.2);
  EXPECT_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.metadata.at("user_id"), "u-1");
  ASSERT_EQ(r.tools.size(), 1u);
  EXPECT_EQ(r.tools[0].parameters, bj::value(parsed(R"({"type":"object"})")));
  EXPECT_EQ(r.tool_choice.kind, ToolChoice::Kind::kRequired);
  EXPECT_EQ(r.parallel_tool_calls, false);

  ASSERT_EQ(r.messages.size(), 6u);
  EXPECT_EQ(r.messages[0].role, Role::kSystem);
  ASSERT_EQ(r.messages[0].content.size(), 2u);
  EXPECT_EQ(r.messages[0].content[1].text, "B");
  ASSERT_EQ(r.messages[1].content.size(), 3u);
  EXPECT_EQ(r.messages[1].content[1].image_url, "data:image/png;base64,AA==");
  EXPECT_EQ(r.messages[1].content[2].image_url, "https://x/y.png");
  EXPECT_EQ(r.messages[2].role, Role::kAssistant);
  EXPECT_EQ(r.messages[2].reasoning, "hmm");
  EXPECT_EQ(r.messages[2].text(), "calling");
  ASSERT_EQ(r.messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(r.messages[2].tool_calls[0].arguments, R"({"a":1})");
  EXPECT_EQ(r.messages[3].role, Role::kTool);
  EXPECT_EQ(r.messages[3].tool_call_id, "t1");
  EXPECT_EQ(r.messages[3].text(), "one");
  EXPECT_FALSE(r.messages[3].tool_error);
  EXPECT_EQ(r.messages[4].tool_call_id, "t2");
  EXPECT_TRUE(r.messages[4].tool_error);
  EXPECT_EQ(r.messages[4].text(), "two");
  EXPECT_EQ(r.messages[5].role, Role::kUser);
  EXPECT_EQ(r.messages[5].text(), "next");
  EXPECT_EQ(r.origin, anthropic::kName);
  EXPECT_EQ(r.original_tree().at("top_k"), 5);
}

TEST(DecodeRequestTest, SystemMessagesStayWhereTheClientPutThem) {
  auto result = decode_request(R"({"model": "m", "max_tokens": 10, "system": "top",
    "messages": [
      {"role": "user", "content": "hi"},
      {"role": "system", "content": [{"type": "text", "text": "env", "cache_control":
        {"type": "ephemeral"}}, {"type": "text", "text": "more"}]},
      {"role": "assistant", "content": "hello"},
      {"role": "system", "content": "late"}]})");
  ASSERT_TRUE(result) << result.error().message;
  const auto& m = result->messages;
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].role, Role::kSystem);
  EXPECT_EQ(m[0].text(), "top");
  EXPECT_EQ(m[1].role, Role::kUser);
  EXPECT_EQ(m[2].role, Role::kSystem);
  ASSERT_EQ(m[2].content.size(), 2u);
  EXPECT_EQ(m[2].content[0].text, "env");
  EXPECT_EQ(m[2].content[1].text, "more");
  EXPECT_EQ(m[3].role, Role::kAssistant);
  EXPECT_EQ(m[4].role, Role::kSystem);
  EXPECT_EQ(m[4].text(), "late");
  EXPECT_TRUE(result->dialect_only.empty());
}

TEST(DecodeRequestTest, ServerToolsAreCarriedOnlyToAnthropic) {
  auto result = decode_request(R"({"model": "m", "max_tokens": 10,
    "tools": [{"name": "f", "input_schema": {"type": "object"}},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    "tool_choice": {"type": "tool", "name": "web_search"},
    "messages": [{"role": "user", "content": "news?"}]})");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->dialect_only, "`tools[1]` (web_search_20250305)");
  ASSERT_EQ(result->tools.size(), 1u);  // the custom tool only
  EXPECT_EQ(result->tools[0].name, "f");
}

TEST(DecodeRequestTest, UnmodelledBlocksAreCarriedOnlyToAnthropic) {
  struct Case {
    std::string messages;
    std::string dialect_only;
  };
  for (const Case& c : std::vector<Case>{
           {R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": [
               {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}},
               {"type": "text", "text": "found"}]}])",
            "`messages[1].content[0]` (server_tool_use)"},
           {R"([{"role": "user", "content": [{"type": "search_result", "source": "x"}]}])",
            "`messages[0].content[0]` (search_result)"},
           {R"([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
               "content": [{"type": "search_result"}]}]}])",
            "`messages[0].content[0].content[0]` (search_result)"},
           {R"([{"role": "user", "content": [{"type": "document",
               "source": {"type": "url", "url": "https://x/a.pdf"}}]}])",
            "`messages[0].content[0]` (document url)"}}) {
    auto result =
        decode_request(R"({"model": "m", "max_tokens": 10, "messages": )" + c.messages + "}");
    ASSERT_TRUE(result) << c.messages << ": " << result.error().message;
    EXPECT_EQ(result->dialect_only, c.dialect_only) << c.messages;
  }
}

TEST(DecodeRequestTest, OutputConfigFormatIsTheResponseFormat) {
  for (std::string_view field :
       {R"("output_config": {"effort": "low", "format": {"type": "json_schema", "schema":)",
        R"("output_format": {"type": "json_schema", "schema":)"}) {
    std::string body = R"({"model": "m", "max_tokens": 10, "messages": [{"role": "user",
      "content": "x"}], )" +
                       std::string(field) +
                       R"( {"type": "object", "properties": {"a": {"type": "string"}}}}})";
    if (field.starts_with(R"("output_config")")) body += "}";
    auto result = decode_request(body);
    ASSERT_TRUE(result) << body << ": " << result.error().message;
    EXPECT_EQ(result->response_format.kind, chat::ResponseFormat::Kind::kJsonSchema);
    EXPECT_TRUE(result->response_format.strict);
    EXPECT_EQ(bj::serialize(result->response_format.schema),
              R"({"type":"object","properties":{"a":{"type":"string"}}})");
  }
}

TEST(DecodeCountTokensRequestTest, NeedsNoMaxTokens) {
  auto counted = decode_count_tokens_request(
      R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_TRUE(counted) << counted.error().message;
  EXPECT_FALSE(counted->max_tokens);
  EXPECT_FALSE(
      decode_request(R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})"));
  // The same body passes through to an Anthropic target with only the model replaced.
  EXPECT_EQ(encode_request(*counted, "claude-x", 4096),
            R"({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]})");
}

TEST(DecodeRequestTest, ToolChoiceKinds) {
  for (auto [type, kind] :
       {std::pair{"auto", ToolChoice::Kind::kAuto}, std::pair{"any", ToolChoice::Kind::kRequired},
        std::pair{"none", ToolChoice::Kind::kNone}}) {
    auto result = decode_request(std::string(R"({"model":"m","max_tokens":1,"messages":[{"role":)"
                                             R"("user","content":"a"}],"tool_choice":{"type":")") +
                                 type + "\"}}");
    ASSERT_TRUE(result) << type;
    EXPECT_EQ(result->tool_choice.kind, kind) << type;
    EXPECT_FALSE(result->parallel_tool_calls) << type;
  }
}

TEST(EncodeRequestTest, AnthropicPassthroughKeepsEverything) {
  auto request = decode_request(R"({"model":"agentic","max_tokens":9,"top_k":3,
    "thinking":{"type":"enabled","budget_tokens":1024},
    "messages":[{"role":"user","content":[{"type":"text","text":"hi",
    "cache_control":{"type":"ephemeral"}}]}]})");
  ASSERT_TRUE(request);
  EXPECT_EQ(parsed(encode_request(*request, "claude-sonnet-4-5", 4096)),
            parsed(R"({"model":"claude-sonnet-4-5","max_tokens":9,"top_k":3,
    "thinking":{"type":"enabled","budget_tokens":1024},
    "messages":[{"role":"user","content":[{"type":"text","text":"hi",
    "cache_control":{"type":"ephemeral"}}]}]})"));
}

TEST(EncodeRequestTest, AnthropicPassthroughSendsTheClientBytes) {
  const std::string body =
      "{\"max_tokens\": 1.0e3, \"model\": \"agentic\", \"messages\": "
      "[{\"role\": \"user\", \"content\": \"caf\\u00e9\"}]}";
  auto request = decode_request(body);
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(encode_request(*request, "claude-sonnet-4-5", 4096),
            "{\"max_tokens\": 1.0e3, \"model\": \"claude-sonnet-4-5\", \"messages\": "
            "[{\"role\": \"user\", \"content\": \"caf\\u00e9\"}]}");
}

TEST(EncodeRequestTest, ToolErrorsAreMarked) {
  chat::ChatRequest request;
  chat::Message assistant;
  assistant.role = Role::kAssistant;
  assistant.tool_calls.push_back({"t1", "f", "[1,2]"});
  chat::Message tool;
  tool.role = Role::kTool;
  tool.tool_call_id = "t1";
  tool.tool_error = true;
  tool.content.push_back({chat::ContentPart::Kind::kText, "failed", {}});
  request.messages = {assistant, tool};
  auto body = parsed(encode_request(request, "claude", 50));
  EXPECT_EQ(body, parsed(R"({"model":"claude","max_tokens":50,"messages":[
    {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"failed",
     "is_error":true}]}]})"));
}

TEST(DecodeResponseTest, ReadsAMessage) {
  auto result = decode_response(R"({"id":"msg_1","type":"message","role":"assistant",
    "model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"t","signature":"s"},
    {"type":"text","text":"a"},{"type":"text","text":"b"},
    {"type":"tool_use","id":"tu1","name":"f","input":{"x":1}}],"stop_reason":"tool_use",
    "usage":{"input_tokens":10,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,
    "output_tokens":4}})");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->id, "msg_1");
  EXPECT_EQ(result->model, "claude-sonnet-4-5");
  EXPECT_EQ(result->content, "ab");
  EXPECT_EQ(result->reasoning, "t");
  EXPECT_EQ(result->reasoning_signature, "s");
  ASSERT_EQ(result->tool_calls.size(), 1u);
  EXPECT_EQ(result->tool_calls[0].id, "tu1");
  EXPECT_EQ(result->tool_calls[0].arguments, R"({"x":1})");
  EXPECT_EQ(result->finish_reason, FinishReason::kToolCalls);
  EXPECT_EQ(result->usage.input_tokens, 30);
  EXPECT_EQ(result->usage.cached_input_tokens, 300);
  EXPECT_EQ(result->usage.cache_creation_input_tokens, 20);
  EXPECT_EQ(result->usage.output_tokens, 4);
}

TEST(DecodeResponseTest, ToolUseOnlyHasNoContent) {
  auto result = decode_response(R"({"type":"message","content":[{"type":"tool_use","id":"t",
    "name":"f","input":{}}],"stop_reason":"tool_use"})");
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->content);
}

TEST(DecodeResponseTest, StopReasons) {
  for (auto [wire, reason] : {std::pair{R"("end_turn")", FinishReason::kStop},
                              std::pair{R"("stop_sequence")", FinishReason::kStop},
                              std::pair{R"("pause_turn")", FinishReason::kStop},
                              std::pair{R"("max_tokens")", FinishReason::kLength},
                              std::pair{R"("tool_use")", FinishReason::kToolCalls},
                              std::pair{R"("refusal")", FinishReason::kContentFilter},
                              std::pair{"null", FinishReason::kUnknown}}) {
    auto result = decode_response(std::string(R"({"type":"message","content":[],"stop_reason":)") +
                                  wire + "}");
    ASSERT_TRUE(result) << wire;
    EXPECT_EQ(result->finish_reason, reason) << wire;
  }
}

TEST(DecodeResponseTest, KeepsTheStopSequenceThatFired) {
  auto result = decode_response(R"({"id":"msg_1","model":"m","content":[{"type":"text",
    "text":"a"}],"stop_reason":"stop_sequence","stop_sequence":"END"})");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->finish_reason, FinishReason::kStop);
  EXPECT_EQ(result->stop_sequence, "END");
  auto ended = decode_response(R"({"id":"msg_1","model":"m","content":[],
    "stop_reason":"end_turn","stop_sequence":null})");
  ASSERT_TRUE(ended) << ended.error().message;
  EXPECT_FALSE(ended->stop_sequence);
}

TEST(EncodeResponseTest, WritesTheSignatureAndTheStopSequence) {
  chat::ChatResponse response;
  response.id = "msg_1";
  response.content = "a";
  response.reasoning = "hmm";
  response.reasoning_signature = "sig123";
  response.stop_sequence = "END";
  auto body = json::parse(encode_response(response, "m")).value().as_object();
  EXPECT_EQ(bj::serialize(body.at("content").as_array().at(0)),
            R"({"type":"thinking","thinking":"hmm","signature":"sig123"})");
  EXPECT_EQ(body.at("stop_reason"), "stop_sequence");
  EXPECT_EQ(body.at("stop_sequence"), "END");
}

TEST(DecodeResponseTest, AnythingElseIsABadResponse) {
  for (std::string_view body :
       {"not json", R"({"type":"error","error":{"type":"api_error","message":"x"}})",
        R"({"type":"message"})", R"({"type":"message","content":"hi"})",
        R"({"type":"message","content":[{"text":"no type"}]})",
        R"({"type":"message","content":[{"type":"tool_use","id":"t","input":{}}]})",
        R"({"type":"message","content":[],"usage":{"input_tokens":-1e999}})"}) {
    auto result = decode_response(body);
    ASSERT_FALSE(result) << body;
    EXPECT_EQ(result.error().code, ErrorCode::kBadResponse) << body;
    EXPECT_TRUE(result.error().message.starts_with("not a message: ")) << result.error().message;
  }
}

// Counts from an upstream are clamped when read, so that sums of them cannot overflow.
TEST(DecodeResponseTest, HugeTokenCountsAreClamped) {
  auto result = decode_response(R"({"type":"message","content":[],"usage":{
      "input_tokens":9223372036854775807,"cache_creation_input_tokens":9223372036854775807,
      "output_tokens":-3}})");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->usage.input_tokens, std::int64_t{1} << 54);
  EXPECT_EQ(result->usage.cache_creation_input_tokens, std::int64_t{1} << 53);
  EXPECT_EQ(result->usage.output_tokens, 0);
  auto body = json::parse(encode_response(*result, "m")).value();
  EXPECT_EQ(body.at("usage").at("input_tokens"), std::int64_t{1} << 53);
}

// Anthropic clients look for tool_use to run tools; an upstream that said "stop" with tool
// calls is encoded as the stream encoder does.
TEST(EncodeResponseTest, ToolCallsWithStopAreToolUse) {
  chat::ChatResponse response;
  response.tool_calls.push_back(chat::ToolCall{"call_1", "get_weather", R"({"city":"Paris"})"});
  response.finish_reason = FinishReason::kStop;
  auto body = json::parse(encode_response(response, "m")).value();
  EXPECT_EQ(body.at("stop_reason"), "tool_use");
  response.tool_calls.clear();
  EXPECT_EQ(json::parse(encode_response(response, "m")).value().at("stop_reason"), "end_turn");
}

TEST(EncodeResponseTest, WritesAMessageWithUsageSplitBack) {
  chat::ChatResponse response;
  response.id = "chatcmpl-7";
  response.content = "hi";
  response.reasoning = "r";
  response.tool_calls.push_back({"c1", "f", R"({"k":"v"})"});
  response.finish_reason = FinishReason::kToolCalls;
  response.usage = {.input_tokens = 30,
                    .cached_input_tokens = 300,
                    .cache_creation_input_tokens = 20,
                    .output_tokens = 4};
  EXPECT_EQ(parsed(encode_response(response, "served")), parsed(R"({"id":"chatcmpl-7",
    "type":"message","role":"assistant","model":"served","content":[
    {"type":"thinking","thinking":"r","signature":""},{"type":"text","text":"hi"},
    {"type":"tool_use","id":"c1","name":"f","input":{"k":"v"}}],"stop_reason":"tool_use",
    "stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":4,
    "cache_read_input_tokens":300,"cache_creation_input_tokens":20}})"));
}

TEST(EncodeResponseTest, StopReasonsAndGeneratedId) {
  for (auto [reason, wire] :
       {std::pair{FinishReason::kStop, "end_turn"}, std::pair{FinishReason::kUnknown, "end_turn"},
        std::pair{FinishReason::kLength, "max_tokens"},
        std::pair{FinishReason::kContentFilter, "refusal"}}) {
    chat::ChatResponse response;
    response.finish_reason = reason;
    auto body = parsed(encode_response(response, "m"));
    EXPECT_EQ(body.at("stop_reason"), wire);
    EXPECT_TRUE(body.at("id").as_string().starts_with("msg_"));
    EXPECT_TRUE(body.at("content").as_array().empty());
  }
}

TEST(EncodeErrorTest, TypeFollowsTheStatus) {
  for (auto [code, type] :
       {std::pair{ErrorCode::kInvalidArgument, "invalid_request_error"},
        std::pair{ErrorCode::kMethodNotAllowed, "invalid_request_error"},
        std::pair{ErrorCode::kRequestTimeout, "invalid_request_error"},
        std::pair{ErrorCode::kHeaderTooLarge, "invalid_request_error"},
        std::pair{ErrorCode::kUnauthorized, "authentication_error"},
        std::pair{ErrorCode::kNotFound, "not_found_error"},
        std::pair{ErrorCode::kPayloadTooLarge, "request_too_large"},
        std::pair{ErrorCode::kRateLimited, "rate_limit_error"},
        std::pair{ErrorCode::kAllTargetsFailed, "api_error"},
        std::pair{ErrorCode::kTimeout, "api_error"}, std::pair{ErrorCode::kInternal, "api_error"},
        std::pair{ErrorCode::kUnavailable, "overloaded_error"}}) {
    auto body = parsed(encode_error(core::Error{code, "boom"}));
    EXPECT_EQ(body, parsed(std::string(R"({"type":"error","error":{"type":")") + type +
                           R"(","message":"boom"}})"))
        << core::to_string(code);
  }
}

TEST(EncodeErrorTest, ExtraFieldsAreAdded) {
  bj::object extra{{"attempts", bj::array{bj::object{{"provider", "v4"}}}}, {"request_id", "r"}};
  auto body = parsed(encode_error(core::Error{ErrorCode::kAllTargetsFailed, "all failed"}, extra));
  EXPECT_EQ(body.at("error").at("attempts").at(0).at("provider"), "v4");
  EXPECT_EQ(body.at("error").at("request_id"), "r");
  EXPECT_EQ(body.at("error").at("type"), "api_error");
}

// A client's error JSON must be valid UTF-8, whatever bytes the upstream's body had.
TEST(UpstreamErrorMessageTest, InvalidUtf8BecomesTheReplacementCharacter) {
  EXPECT_EQ(upstream_error_message("Bad gateway \xff"), "Bad gateway \xEF\xBF\xBD");
  EXPECT_TRUE(json::parse(
      encode_error(core::Error{ErrorCode::kUpstream, upstream_error_message("x\xF5\x80")})));
}

TEST(UpstreamErrorMessageTest, ReadsAnthropicShapeOrKeepsTheBody) {
  EXPECT_EQ(upstream_error_message(
                R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"),
            "Overloaded");
  EXPECT_EQ(upstream_error_message("Bad Gateway\n"), "Bad Gateway");
  EXPECT_EQ(upstream_error_message(std::string(400, 'y')).size(), 300u);
}

}  // namespace
}  // namespace backstop::dialects::anthropic
