#include "dialects/openai/openai.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "json/json.h"

namespace backstop::dialects::openai {
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

// A valid prefix: the model and one user message; cases append fields after it.
#define BASE R"("model":"m","messages":[{"role":"user","content":"hi"}])"

INSTANTIATE_TEST_SUITE_P(
    Cases, DecodeRequestErrorTest,
    testing::Values(
        BadRequest{"[1]", "body must be a JSON object, got an array"},
        BadRequest{R"({"messages":[]})", "`model` is required"},
        BadRequest{R"({"model":7})", "`model` must be a string, got a number"},
        BadRequest{R"({"model":"m"})", "`messages` is required"},
        BadRequest{R"({"model":"m","messages":"hi"})", "`messages` must be an array, got a string"},
        BadRequest{R"({"model":"m","messages":[]})", "`messages` must not be empty"},
        BadRequest{R"({"model":"m","messages":["hi"]})",
                   "`messages[0]` must be an object, got a string"},
        BadRequest{R"({"model":"m","messages":[{"content":"x"}]})",
                   "`messages[0].role` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":"a"},
                   {"role":"assistant","content":"b"},{"role":"robot","content":"c"}]})",
                   "`messages[2].role` must be one of system, developer, user, assistant, tool; "
                   "got \"robot\""},
        BadRequest{R"({"model":"m","messages":[{"role":"user"}]})",
                   "`messages[0].content` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"assistant","content":null}]})",
                   "`messages[0].content` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":5}]})",
                   "`messages[0].content` must be a string or an array, got a number"},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":[{"type":"text",
                   "text":"a"},{"type":"input_audio"}]}]})",
                   "`messages[0].content[1].type` must be one of text, image_url; got "
                   "\"input_audio\""},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":[{"text":"a"}]}]})",
                   "`messages[0].content[0].type` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})",
                   "`messages[0].content[0].text` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url",
                   "image_url":{}}]}]})",
                   "`messages[0].content[0].image_url.url` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"tool","content":"42"}]})",
                   "`messages[0].tool_call_id` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":
                   [{"id":"c1","type":"function","function":{"name":"f","arguments":{}}}]}]})",
                   "`messages[0].tool_calls[0].function.arguments` must be a string, got an "
                   "object"},
        BadRequest{R"({"model":"m","messages":[{"role":"assistant","tool_calls":
                   [{"type":"function","function":{"name":"f","arguments":"{}"}}]}]})",
                   "`messages[0].tool_calls[0].id` is required"},
        BadRequest{R"({"model":"m","messages":[{"role":"assistant","tool_calls":
                   [{"id":"c","type":"custom","function":{"name":"f","arguments":"{}"}}]}]})",
                   "`messages[0].tool_calls[0].type` must be \"function\", got \"custom\""},
        BadRequest{R"({"model":"m","messages":[{"role":"user","content":"a","name":3}]})",
                   "`messages[0].name` must be a string, got a number"},
        BadRequest{"{" BASE R"(,"tools":{}})", "`tools` must be an array, got an object"},
        BadRequest{"{" BASE R"(,"tools":[{"type":"function","function":{}}]})",
                   "`tools[0].function.name` is required"},
        BadRequest{"{" BASE R"(,"tools":[{"type":"function","function":{"name":""}}]})",
                   "`tools[0].function.name` must not be empty"},
        BadRequest{"{" BASE R"(,"tools":[{"type":"function"}]})",
                   "`tools[0].function` is required"},
        BadRequest{"{" BASE R"(,"tools":[{"type":"custom","custom":{"name":"x"}}]})",
                   "`tools[0].type` must be \"function\", got \"custom\""},
        BadRequest{"{" BASE R"(,"tools":[{"type":"function","function":{"name":"f",
                   "parameters":"{}"}}]})",
                   "`tools[0].function.parameters` must be an object, got a string"},
        BadRequest{"{" BASE R"(,"tools":[{"type":"function","function":{"name":"f",
                   "description":1}}]})",
                   "`tools[0].function.description` must be a string, got a number"},
        BadRequest{"{" BASE R"(,"tool_choice":"sometimes"})",
                   "`tool_choice` must be one of auto, none, required; got \"sometimes\""},
        BadRequest{"{" BASE R"(,"tool_choice":1})",
                   "`tool_choice` must be a string or an object, got a number"},
        BadRequest{"{" BASE R"(,"tools":[{"type":"function","function":{"name":"f"}}],
                   "tool_choice":{"type":"function","function":{"name":"nope"}}})",
                   "`tool_choice.function.name` is \"nope\", which is not one of `tools`"},
        BadRequest{"{" BASE R"(,"tool_choice":{"type":"function"}})",
                   "`tool_choice.function` is required"},
        BadRequest{"{" BASE R"(,"response_format":{"type":"xml"}})",
                   "`response_format.type` must be one of text, json_object, json_schema; got "
                   "\"xml\""},
        BadRequest{"{" BASE R"(,"response_format":{"type":"json_schema"}})",
                   "`response_format.json_schema` is required"},
        BadRequest{"{" BASE R"(,"response_format":{"type":"json_schema","json_schema":{}}})",
                   "`response_format.json_schema.name` is required"},
        BadRequest{"{" BASE R"(,"response_format":{"type":"json_schema","json_schema":
                   {"name":"x","schema":[]}}})",
                   "`response_format.json_schema.schema` must be an object, got an array"},
        BadRequest{"{" BASE R"(,"max_tokens":0})", "`max_tokens` must be at least 1, got 0"},
        BadRequest{"{" BASE R"(,"max_completion_tokens":"many"})",
                   "`max_completion_tokens` must be an integer, got a string"},
        BadRequest{"{" BASE R"(,"temperature":"hot"})",
                   "`temperature` must be a number, got a string"},
        BadRequest{"{" BASE R"(,"top_p":true})", "`top_p` must be a number, got a boolean"},
        BadRequest{"{" BASE R"(,"stop":5})",
                   "`stop` must be a string or an array of strings, got a number"},
        BadRequest{"{" BASE R"(,"stop":["a",1]})", "`stop[1]` must be a string, got a number"},
        BadRequest{"{" BASE R"(,"stream":"yes"})", "`stream` must be a boolean, got a string"},
        BadRequest{"{" BASE R"(,"stream_options":{"include_usage":1}})",
                   "`stream_options.include_usage` must be a boolean, got a number"},
        BadRequest{"{" BASE R"(,"parallel_tool_calls":"no"})",
                   "`parallel_tool_calls` must be a boolean, got a string"}));

#undef BASE

TEST(DecodeRequestTest, InvalidJsonSaysWhere) {
  auto result = decode_request(R"({"model": "m",})");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(result.error().message.starts_with("not valid JSON at byte "))
      << result.error().message;
}

// A number too large for a double would be sent upstream as `Infinity`, which is not JSON.
TEST(DecodeRequestTest, NumbersOutOfRangeAreRejected) {
  for (std::string_view body :
       {R"({"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":1e999})",
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",
            "function":{"name":"f","parameters":{"type":"number","maximum":-1e999}}}]})",
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1e999})"}) {
    auto result = decode_request(body);
    ASSERT_FALSE(result) << body;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_TRUE(result.error().message.ends_with(": number out of range"))
        << result.error().message;
  }
}

TEST(DecodeRequestTest, ReadsEveryModelledField) {
  auto result = decode_request(R"({
    "model": "agentic",
    "messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "name": "ada", "content": [{"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "high"}}]},
      {"role": "assistant", "content": null, "reasoning_content": "Think.",
       "tool_calls": [{"id": "c1", "type": "function",
                       "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "done"}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "response_format": {"type": "json_schema",
                        "json_schema": {"name": "s", "strict": true, "schema": {"type": "object"}}},
    "max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.5, "top_p": 1,
    "stop": "END", "stream": true, "stream_options": {"include_usage": true},
    "parallel_tool_calls": false, "user": "u-1", "seed": 3
  })");
  ASSERT_TRUE(result) << result.error().message;
  const auto& r = *result;
  EXPECT_EQ(r.model, "agentic");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, Role::kSystem);
  EXPECT_EQ(r.messages[0].text(), "Be brief.");
  EXPECT_EQ(r.messages[1].name, "ada");
  ASSERT_EQ(r.messages[1].content.size(), 2u);
  EXPECT_EQ(r.messages[1].content[1].kind, chat::ContentPart::Kind::kImage);
  EXPECT_EQ(r.messages[1].content[1].image_url, "https://x/y.png");
  EXPECT_TRUE(r.messages[2].content.empty());
  EXPECT_EQ(r.messages[2].reasoning, "Think.");
  ASSERT_EQ(r.messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(r.messages[2].tool_calls[0].id, "c1");
  EXPECT_EQ(r.messages[2].tool_calls[0].name, "f");
  EXPECT_EQ(r.messages[2].tool_calls[0].arguments, R"({"a":1})");
  EXPECT_EQ(r.messages[3].role, Role::kTool);
  EXPECT_EQ(r.messages[3].tool_call_id, "c1");
  ASSERT_EQ(r.tools.size(), 1u);
  EXPECT_EQ(r.tools[0].description, "d");
  EXPECT_EQ(r.tools[0].parameters, bj::value(bj::object()));
  EXPECT_EQ(r.tool_choice.kind, ToolChoice::Kind::kNamed);
  EXPECT_EQ(r.tool_choice.name, "f");
  EXPECT_EQ(r.response_format.kind, chat::ResponseFormat::Kind::kJsonSchema);
  EXPECT_EQ(r.response_format.name, "s");
  EXPECT_EQ(r.response_format.schema, bj::value(parsed(R"({"type":"object"})")));
  EXPECT_EQ(r.max_tokens, 20);
  EXPECT_EQ(r.temperature, 0.5);
  EXPECT_EQ(r.top_p, 1.0);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.parallel_tool_calls, false);
  EXPECT_EQ(r.metadata.at("user_id"), "u-1");
  EXPECT_EQ(r.origin, openai::kName);
  EXPECT_TRUE(r.has_original());
  EXPECT_EQ(r.original_tree().at("seed"), 3);
}

TEST(DecodeRequestTest, ToolChoiceStrings) {
  for (auto [text, kind] :
       {std::pair{"auto", ToolChoice::Kind::kAuto}, std::pair{"none", ToolChoice::Kind::kNone},
        std::pair{"required", ToolChoice::Kind::kRequired}}) {
    auto result = decode_request(std::string(R"({"model":"m","messages":[{"role":"user",)"
                                             R"("content":"a"}],"tool_choice":")") +
                                 text + "\"}");
    ASSERT_TRUE(result) << text;
    EXPECT_EQ(result->tool_choice.kind, kind) << text;
  }
}

TEST(EncodeRequestTest, OpenAIPassthroughKeepsUnknownFields) {
  auto request = decode_request(R"({"model":"agentic","seed":7,"logit_bias":{"50256":-100},
      "chat_template_kwargs":{"enable_thinking":false},"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(request);
  auto body = parsed(encode_request(*request, "deepseek-ai/DeepSeek-V4-Flash"));
  EXPECT_EQ(body, parsed(R"({"model":"deepseek-ai/DeepSeek-V4-Flash","seed":7,
      "logit_bias":{"50256":-100},"chat_template_kwargs":{"enable_thinking":false},
      "messages":[{"role":"user","content":"hi"}]})"));
}

TEST(EncodeRequestTest, StreamingPassthroughAsksForUsage) {
  auto request =
      decode_request(R"({"model":"a","stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(request);
  auto body = parsed(encode_request(*request, "up"));
  EXPECT_EQ(body.at("stream_options"), bj::value(parsed(R"({"include_usage":true})")));
}

TEST(EncodeRequestTest, PassthroughSendsTheClientBytesWithOnlyTheModelReplaced) {
  // Spacing, number spellings and escapes a re-serialization would change all survive.
  const std::string body =
      "{ \"seed\": 1.50, \"model\" :\t\"agentic\" , \"metadata\": {\"model\": \"inner\"},\n"
      "  \"messages\": [{\"role\": \"user\", \"content\": \"caf\\u00e9 \\\"q\\\" {[\"}],"
      " \"top_p\": 1e0 }";
  auto request = decode_request(body);
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(encode_request(*request, "deepseek-ai/DeepSeek-V4-Flash"),
            "{ \"seed\": 1.50, \"model\" :\t\"deepseek-ai/DeepSeek-V4-Flash\" , \"metadata\": "
            "{\"model\": \"inner\"},\n  \"messages\": [{\"role\": \"user\", \"content\": "
            "\"caf\\u00e9 \\\"q\\\" {[\"}], \"top_p\": 1e0 }");
}

TEST(EncodeRequestTest, PassthroughEscapesTheModel) {
  auto request = decode_request(R"({"model":"a","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(request);
  EXPECT_EQ(parsed(encode_request(*request, "we\"ird\\model")).at("model"), "we\"ird\\model");
}

// Bodies whose top-level keys cannot be told apart from the bytes alone are re-serialized:
// the upstream must never see a second `model` that the client chose.
TEST(EncodeRequestTest, AmbiguousBodiesAreSerializedWithOneModel) {
  for (
      std::string_view body :
      {R"({"model":"x","messages":[{"role":"user","content":"hi"}],"model":"agentic"})",
       R"({"mod\u0065l":"agentic","messages":[{"role":"user","content":"hi"}]})",
       R"({"model":"agentic","stream":false,"stream":false,"messages":[{"role":"user","content":"hi"}]})"}) {
    auto request = decode_request(body);
    ASSERT_TRUE(request) << body;
    const std::string out = encode_request(*request, "up");
    EXPECT_EQ(parsed(out).at("model"), "up") << body;
    EXPECT_EQ(out.find("model"), out.rfind("model")) << out;
  }
}

TEST(EncodeRequestTest, StreamingPassthroughAddsTheUsageOptionToTheBytes) {
  auto request =
      decode_request(R"({"model":"a", "stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(request);
  EXPECT_EQ(encode_request(*request, "up"),
            R"({"stream_options":{"include_usage":true},"model":"up", "stream":true,)"
            R"("messages":[{"role":"user","content":"hi"}]})");
}

TEST(EncodeRequestTest, StreamingWithUsageOffIsTurnedOn) {
  auto request =
      decode_request(R"({"model":"a","stream":true,"stream_options":)"
                     R"({"include_usage":false},"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(request);
  EXPECT_EQ(parsed(encode_request(*request, "up")).at("stream_options"),
            bj::value(parsed(R"({"include_usage":true})")));
}

TEST(EncodeRequestTest, StreamTurnedOnAfterDecodingIsSent) {
  // What a provider does to stream a request the client sent whole.
  auto request = decode_request(R"({"model":"a","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(request);
  request->stream = true;
  auto body = parsed(encode_request(*request, "up"));
  EXPECT_EQ(body.at("stream"), true);
  EXPECT_EQ(body.at("stream_options"), bj::value(parsed(R"({"include_usage":true})")));
}

TEST(EncodeRequestTest, StreamTurnedOffAfterDecodingIsSent) {
  auto request =
      decode_request(R"({"model":"a","stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(request);
  request->stream = false;
  auto body = parsed(encode_request(*request, "up"));
  EXPECT_EQ(body.at("stream"), false);
  EXPECT_FALSE(body.contains("stream_options"));
}

// The JSON a decoded request holds lives in its arena: copies, assignments and moves must
// keep it readable after the request they came from is gone.
TEST(DecodeRequestTest, DecodedJsonOutlivesTheRequestItCameFrom) {
  // Mapped (kept as bytes), and unmapped (an escaped key: kept as the tree `original`).
  for (std::string_view model_key : {R"("model")", R"("mod\u0065l")"}) {
    const std::string body =
        "{" + std::string(model_key) +
        R"(:"a","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",)"
        R"("function":{"name":"f","parameters":{"type":"object","properties":{"city":)"
        R"({"type":"string","description":"a long description of the city field"}}}}}]})";
    chat::ChatRequest copy;
    chat::ChatRequest assigned = decode_request(body).value();
    {
      chat::ChatRequest first = decode_request(body).value();
      copy = first;
      chat::ChatRequest moved = std::move(first);
      assigned = moved;
    }
    for (const chat::ChatRequest* r : {&copy, &assigned}) {
      EXPECT_EQ(r->original.empty(), model_key == R"("model")");
      EXPECT_EQ(bj::serialize(r->tools.at(0).parameters),
                R"({"type":"object","properties":{"city":{"type":"string",)"
                R"("description":"a long description of the city field"}}})");
      EXPECT_EQ(r->original_tree().at("model"), "a");
      const bj::object sent = parsed(encode_request(*r, "up"));
      EXPECT_EQ(sent.at("model"), "up");
      // The schema moved out of the decoder's tree still reaches a same-dialect target.
      EXPECT_EQ(sent.at("tools").at(0).at("function").at("parameters"), r->tools.at(0).parameters);
    }
  }
}

TEST(EncodeRequestTest, RequestWithoutOriginalIsBuiltFromFields) {
  chat::ChatRequest request;
  request.model = "agentic";
  chat::Message user;
  user.content.push_back({chat::ContentPart::Kind::kText, "hi", {}});
  request.messages.push_back(user);
  request.max_tokens = 5;
  request.metadata["user_id"] = "u-9";
  auto body = parsed(encode_request(request, "up"));
  EXPECT_EQ(body, parsed(R"({"model":"up","messages":[{"role":"user","content":"hi"}],
                             "max_tokens":5,"user":"u-9"})"));
}

TEST(DecodeResponseTest, ReadsAChatCompletion) {
  auto result = decode_response(R"({"id":"chatcmpl-1","object":"chat.completion","created":17,
    "model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":null,
    "reasoning_content":"hmm","tool_calls":[{"id":"c1","type":"function","function":{"name":"f",
    "arguments":"{\"x\":2}"}}]},"finish_reason":"tool_calls"}],
    "usage":{"prompt_tokens":100,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":60}}})");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->id, "chatcmpl-1");
  EXPECT_EQ(result->model, "deepseek-chat");
  EXPECT_EQ(result->created, 17);
  EXPECT_FALSE(result->content);
  EXPECT_EQ(result->reasoning, "hmm");
  ASSERT_EQ(result->tool_calls.size(), 1u);
  EXPECT_EQ(result->tool_calls[0].arguments, R"({"x":2})");
  EXPECT_EQ(result->finish_reason, FinishReason::kToolCalls);
  EXPECT_EQ(result->usage.input_tokens, 40);
  EXPECT_EQ(result->usage.cached_input_tokens, 60);
  EXPECT_EQ(result->usage.output_tokens, 7);
}

TEST(DecodeResponseTest, CapturesTheSystemFingerprint) {
  // The one-pass reader's shape, and one it leaves to the tree reader (a repeated field).
  for (const char* created : {R"("created":1,)", R"("created":1,"created":2,)"}) {
    auto result = decode_response(std::string(R"({"object":"chat.completion",)") + created +
                                  R"("system_fingerprint":"fp_8802369eaa_prod0623",)"
                                  R"("choices":[{"message":{"content":"x"}}]})");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->system_fingerprint, "fp_8802369eaa_prod0623") << created;
  }
  // vLLM sends null: none.
  auto none =
      decode_response(R"({"system_fingerprint":null,"choices":[{"message":{"content":"x"}}]})");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->system_fingerprint, "");
}

TEST(DecodeResponseTest, DeepSeekCacheHitTokensAreCachedInput) {
  auto result = decode_response(R"({"object":"chat.completion","choices":[{"message":
    {"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":3,
    "prompt_cache_hit_tokens":90,"prompt_cache_miss_tokens":10}})");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->usage.input_tokens, 10);
  EXPECT_EQ(result->usage.cached_input_tokens, 90);
  EXPECT_EQ(result->usage.output_tokens, 3);
  EXPECT_EQ(result->content, "ok");
}

TEST(DecodeResponseTest, FinishReasons) {
  for (auto [wire, reason] :
       {std::pair{R"("stop")", FinishReason::kStop},
        std::pair{R"("length")", FinishReason::kLength},
        std::pair{R"("tool_calls")", FinishReason::kToolCalls},
        std::pair{R"("function_call")", FinishReason::kToolCalls},
        std::pair{R"("content_filter")", FinishReason::kContentFilter},
        std::pair{R"("eos")", FinishReason::kUnknown}, std::pair{"null", FinishReason::kUnknown}}) {
    auto result = decode_response(std::string(R"({"choices":[{"message":{"content":"x"},)") +
                                  R"("finish_reason":)" + wire + "}]}");
    ASSERT_TRUE(result) << wire;
    EXPECT_EQ(result->finish_reason, reason) << wire;
  }
}

TEST(DecodeResponseTest, AnythingElseIsABadResponse) {
  for (std::string_view body :
       {"<html>502</html>", R"({"object":"list","data":[]})", R"({"choices":[]})",
        R"({"object":"chat.completion"})", R"({"choices":[{"finish_reason":"stop"}]})",
        R"({"choices":[{"message":{"content":3}}]})",
        R"({"choices":[{"message":{"content":null,"tool_calls":[{"id":"c"}]}}]})",
        R"({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":1e999}})"}) {
    auto result = decode_response(body);
    ASSERT_FALSE(result) << body;
    EXPECT_EQ(result.error().code, ErrorCode::kBadResponse) << body;
    EXPECT_TRUE(result.error().message.starts_with("not a chat completion: "))
        << result.error().message;
  }
}

TEST(EncodeResponseTest, WritesAChatCompletion) {
  chat::ChatResponse response;
  response.id = "r1";
  response.created = 99;
  response.model = "upstream";
  response.content = "hello";
  response.usage = {.input_tokens = 10, .cached_input_tokens = 5, .output_tokens = 2};
  EXPECT_EQ(parsed(encode_response(response, "served")), parsed(R"({"id":"r1",
    "object":"chat.completion","created":99,"model":"served","choices":[{"index":0,
    "message":{"role":"assistant","content":"hello"},"logprobs":null,"finish_reason":"stop"}],
    "usage":{"prompt_tokens":15,"completion_tokens":2,"total_tokens":17,
    "prompt_tokens_details":{"cached_tokens":5}}})"));
}

TEST(EncodeResponseTest, ToolCallsAndReasoningOnlyWhenPresent) {
  chat::ChatResponse response;
  response.finish_reason = FinishReason::kToolCalls;
  response.tool_calls.push_back({"c1", "f", "{}"});
  response.reasoning = "why";
  auto body = parsed(encode_response(response, "m"));
  const auto& message = body.at("choices").at(0).at("message").as_object();
  EXPECT_TRUE(message.at("content").is_null());
  EXPECT_EQ(message.at("tool_calls"), bj::value(json::parse(R"([{"id":"c1","type":"function",
    "function":{"name":"f","arguments":"{}"}}])")
                                                    .value()));
  EXPECT_EQ(message.at("reasoning_content"), "why");
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "tool_calls");

  chat::ChatResponse plain;
  plain.content = "x";
  auto plain_body = parsed(encode_response(plain, "m"));
  const auto& plain_message = plain_body.at("choices").at(0).at("message").as_object();
  EXPECT_FALSE(plain_message.contains("tool_calls"));
  EXPECT_FALSE(plain_message.contains("reasoning_content"));
}

TEST(EncodeResponseTest, GeneratesAnIdAndATimestampWhenMissing) {
  chat::ChatResponse response;
  response.content = "x";
  auto first = parsed(encode_response(response, "m"));
  auto second = parsed(encode_response(response, "m"));
  std::string id(first.at("id").as_string());
  EXPECT_TRUE(id.starts_with("chatcmpl-")) << id;
  EXPECT_GT(id.size(), std::string("chatcmpl-").size());
  EXPECT_NE(first.at("id"), second.at("id"));
  EXPECT_GT(first.at("created").as_int64(), 1'600'000'000);
}

TEST(EncodeErrorTest, TypeFollowsTheStatus) {
  for (auto [code, type] : {std::pair{ErrorCode::kInvalidArgument, "invalid_request_error"},
                            std::pair{ErrorCode::kNotFound, "invalid_request_error"},
                            std::pair{ErrorCode::kPayloadTooLarge, "invalid_request_error"},
                            std::pair{ErrorCode::kUnauthorized, "authentication_error"},
                            std::pair{ErrorCode::kRateLimited, "rate_limit_error"},
                            std::pair{ErrorCode::kAllTargetsFailed, "server_error"},
                            std::pair{ErrorCode::kTimeout, "server_error"},
                            std::pair{ErrorCode::kUnavailable, "server_error"}}) {
    auto body = parsed(encode_error(core::Error{code, "boom"}));
    EXPECT_EQ(body.at("error").at("type"), type) << core::to_string(code);
    EXPECT_EQ(body.at("error").at("message"), "boom");
    EXPECT_EQ(body.at("error").at("code"), bj::value(core::to_string(code)));
  }
}

TEST(EncodeErrorTest, ExtraFieldsAreAddedAndOverride) {
  auto body = parsed(encode_error(core::Error{ErrorCode::kNotFound, "no workload \"x\""},
                                  {{"code", "model_not_found"}, {"request_id", "abc"}}));
  EXPECT_EQ(body, parsed(R"({"error":{"message":"no workload \"x\"","type":"invalid_request_error",
    "param":null,"code":"model_not_found","request_id":"abc"}})"));

  bj::object extra{{"attempts", bj::array{bj::object{{"provider", "v4"}, {"reason", "schema"}}}}};
  auto failed =
      parsed(encode_error(core::Error{ErrorCode::kAllTargetsFailed, "all failed"}, extra));
  EXPECT_EQ(failed.at("error").at("code"), "all_targets_failed");
  EXPECT_EQ(failed.at("error").at("attempts").at(0).at("reason"), "schema");
}

TEST(UpstreamErrorMessageTest, ReadsOpenAIShapeOrKeepsTheBody) {
  EXPECT_EQ(upstream_error_message(R"({"error":{"message":"Rate limit reached","type":"x"}})"),
            "Rate limit reached");
  EXPECT_EQ(upstream_error_message(R"({"error":"model overloaded"})"), "model overloaded");
  EXPECT_EQ(upstream_error_message("upstream connect error\r\n\x01reset"),
            "upstream connect error reset");
  EXPECT_EQ(upstream_error_message(R"({"detail":"Not Found"})"), R"({"detail":"Not Found"})");
}

// A client's error JSON must be valid UTF-8, whatever bytes the upstream's body had.
TEST(UpstreamErrorMessageTest, InvalidUtf8BecomesTheReplacementCharacter) {
  EXPECT_EQ(upstream_error_message("Bad gateway \xff"), "Bad gateway \xEF\xBF\xBD");
  EXPECT_EQ(upstream_error_message("a\xC3(b\xED\xA0\x80"
                                   "c\xE2\x82\xAC"),
            "a\xEF\xBF\xBD(b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
            "c\xE2\x82\xAC");
  EXPECT_TRUE(json::parse(
      encode_error(core::Error{ErrorCode::kUpstream, upstream_error_message("x\xC0\xAF")})));
}

// Counts from an upstream are clamped when read, so that sums of them cannot overflow.
TEST(DecodeResponseTest, HugeTokenCountsAreClamped) {
  auto result = decode_response(R"({"choices":[{"message":{"content":"x"}}],"usage":{
      "prompt_tokens":9223372036854775807,"completion_tokens":18446744073709551615,
      "prompt_tokens_details":{"cached_tokens":-5}}})");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->usage.input_tokens, std::int64_t{1} << 53);
  EXPECT_EQ(result->usage.output_tokens, std::int64_t{1} << 53);
  EXPECT_EQ(result->usage.cached_input_tokens, 0);
  auto body = parsed(encode_response(*result, "m"));
  EXPECT_EQ(body.at("usage").at("total_tokens"), std::int64_t{1} << 54);
}

TEST(UpstreamErrorMessageTest, CutsTo300BytesOnACharacterBoundary) {
  EXPECT_EQ(upstream_error_message(std::string(1000, 'x')).size(), 300u);
  // 299 ASCII bytes, then a two-byte character that would straddle the limit.
  std::string body = std::string(299, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(upstream_error_message(body), std::string(299, 'a'));
}

}  // namespace
}  // namespace backstop::dialects::openai
