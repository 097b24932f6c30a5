#include "providers/synth.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "chat/stream.h"

namespace backstop::providers {
namespace {

namespace bj = boost::json;

bj::value schema(std::string_view text) { return bj::parse(text); }

chat::ChatRequest tool_request(std::string_view parameters) {
  chat::ChatRequest request;
  request.model = "agentic";
  chat::Message user;
  user.role = chat::Role::kUser;
  user.content.push_back({chat::ContentPart::Kind::kText, "What is the weather in Paris?", ""});
  request.messages.push_back(user);
  request.tools.push_back({"get_weather", "Weather of a city", schema(parameters)});
  return request;
}

constexpr std::string_view kWeather = R"({
  "type": "object",
  "properties": {
    "city": {"type": "string", "minLength": 12},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 3, "maximum": 7},
    "when": {"type": "string", "format": "date"},
    "detailed": {"type": "boolean"},
    "ratio": {"type": "number", "exclusiveMinimum": 5}
  },
  "required": ["city", "unit", "days"],
  "additionalProperties": false
})";

TEST(InstanceOf, SatisfiesTypesBoundsEnumsAndFormats) {
  const bj::value v = instance_of(schema(kWeather));
  ASSERT_TRUE(v.is_object());
  const bj::object& o = v.as_object();
  EXPECT_EQ(o.size(), 6u);
  ASSERT_TRUE(o.at("city").is_string());
  EXPECT_GE(o.at("city").as_string().size(), 12u);
  EXPECT_EQ(o.at("unit").as_string(), "celsius");
  ASSERT_TRUE(o.at("days").is_int64());
  EXPECT_EQ(o.at("days").as_int64(), 3);
  EXPECT_EQ(o.at("when").as_string(), "2026-12-01");
  EXPECT_EQ(o.at("detailed").as_bool(), true);
  ASSERT_TRUE(o.at("ratio").is_number());
  EXPECT_GT(o.at("ratio").to_number<double>(), 5.0);
}

TEST(InstanceOf, WholeNumbersAreWrittenWithoutAFraction) {
  // Codex CLI reads `number` arguments into integer types and refuses "1.0".
  const bj::value v = instance_of(schema(R"({"type":"object","properties":{
    "n":{"type":"number"},"half":{"type":"number","minimum":0.25,"maximum":0.75}},
    "required":["n","half"]})"));
  EXPECT_TRUE(v.at("n").is_int64()) << bj::serialize(v);
  EXPECT_EQ(bj::serialize(v.at("n")), "1");
  EXPECT_TRUE(v.at("half").is_double()) << bj::serialize(v);
}

TEST(InstanceOf, FollowsNestedObjectsArraysRefsAndCombinators) {
  const bj::value v = instance_of(schema(R"({
    "type": "object",
    "$defs": {"item": {"type": "object", "properties": {"sku": {"const": "A-1"}},
                       "required": ["sku"]}},
    "definitions": {"qty": {"type": "integer", "maximum": -2}},
    "properties": {
      "items": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/item"}},
      "qty": {"$ref": "#/definitions/qty"},
      "choice": {"anyOf": [{"type": "string", "enum": ["x", "y"]}, {"type": "integer"}]},
      "one": {"oneOf": [{"type": "null"}, {"type": "string"}]},
      "address": {"type": "object", "properties": {"zip": {"type": "string", "maxLength": 3}},
                  "required": ["zip", "country"]},
      "tags": {"type": ["null", "array"], "items": {"type": "string"}}
    },
    "required": ["items"]
  })"));
  const bj::object& o = v.as_object();
  const bj::array& items = o.at("items").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].as_object().at("sku").as_string(), "A-1");
  EXPECT_EQ(o.at("qty").as_int64(), -2);
  EXPECT_EQ(o.at("choice").as_string(), "x");
  EXPECT_TRUE(o.at("one").is_null());
  EXPECT_EQ(o.at("address").as_object().at("zip").as_string(), "exa");
  EXPECT_TRUE(o.at("address").as_object().contains("country"));
  EXPECT_EQ(o.at("tags").as_array().size(), 1u);
}

TEST(InstanceOf, EndsOnRecursiveSchemas) {
  const bj::value v = instance_of(schema(R"({
    "$ref": "#/definitions/node",
    "definitions": {"node": {"type": "object", "properties": {
      "name": {"type": "string"}, "child": {"$ref": "#/definitions/node"}},
      "required": ["name"]}}
  })"));
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.as_object().at("name").as_string(), "example");
}

TEST(ViolationOf, DropsARequiredProperty) {
  const bj::value v = violation_of(schema(kWeather));
  ASSERT_TRUE(v.is_object());
  EXPECT_FALSE(v.as_object().contains("city"));
  EXPECT_TRUE(v.as_object().contains("unit"));
}

TEST(ViolationOf, BreaksATypeWhenNothingIsRequired) {
  const bj::value v =
      violation_of(schema(R"({"type":"object","properties":{"n":{"type":"string"}}})"));
  EXPECT_TRUE(v.as_object().at("n").is_null());
  EXPECT_TRUE(violation_of(schema(R"({"type":"integer"})")).is_null());
}

TEST(Synthesize, CallsTheFirstToolWithSchemaArguments) {
  const chat::ChatResponse r = synthesize(tool_request(kWeather), Fault::kNone, "m1", 7);
  EXPECT_EQ(r.model, "m1");
  EXPECT_FALSE(r.content.has_value());
  EXPECT_EQ(r.finish_reason, chat::FinishReason::kToolCalls);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_TRUE(r.tool_calls[0].id.starts_with("call_"));
  const bj::value args = bj::parse(r.tool_calls[0].arguments);
  EXPECT_EQ(args.as_object().at("unit").as_string(), "celsius");
  EXPECT_GE(r.usage.input_tokens, 1);
  EXPECT_EQ(r.usage.input_tokens, 29 / 4);
  EXPECT_GE(r.usage.output_tokens, 1);
}

TEST(Synthesize, IsDeterministic) {
  const auto request = tool_request(kWeather);
  const auto a = synthesize(request, Fault::kNone, "m", 42);
  const auto b = synthesize(request, Fault::kNone, "m", 42);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.tool_calls[0].id, b.tool_calls[0].id);
  EXPECT_EQ(a.tool_calls[0].arguments, b.tool_calls[0].arguments);
  EXPECT_NE(a.id, synthesize(request, Fault::kNone, "m", 43).id);
}

TEST(Synthesize, HonoursANamedToolChoice) {
  auto request = tool_request(kWeather);
  request.tools.push_back({"book", "", schema(R"({"type":"object","properties":{}})")});
  request.tool_choice = {chat::ToolChoice::Kind::kNamed, "book"};
  const auto r = synthesize(request, Fault::kNone, "m", 1);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "book");
  EXPECT_EQ(r.tool_calls[0].arguments, "{}");
}

TEST(Synthesize, AnswersInTextWhenToolChoiceIsNone) {
  auto request = tool_request(kWeather);
  request.tool_choice.kind = chat::ToolChoice::Kind::kNone;
  const auto r = synthesize(request, Fault::kNone, "m", 1);
  EXPECT_TRUE(r.tool_calls.empty());
  ASSERT_TRUE(r.content.has_value());
  EXPECT_FALSE(r.content->empty());
  EXPECT_EQ(r.finish_reason, chat::FinishReason::kStop);
}

// `request` after the model called get_weather and the client ran it: an assistant turn with
// the call, then its result.
chat::ChatRequest after_tool_result(chat::ChatRequest request) {
  chat::Message assistant;
  assistant.role = chat::Role::kAssistant;
  assistant.tool_calls.push_back({"call_1", "get_weather", R"({"city":"Paris"})"});
  request.messages.push_back(assistant);
  chat::Message result;
  result.role = chat::Role::kTool;
  result.tool_call_id = "call_1";
  result.content.push_back({chat::ContentPart::Kind::kText, "18 C, sunny", ""});
  request.messages.push_back(result);
  return request;
}

TEST(Synthesize, EndsTheToolRoundTripWithTextAfterAToolResult) {
  const auto r = synthesize(after_tool_result(tool_request(kWeather)), Fault::kNone, "m", 1);
  EXPECT_TRUE(r.tool_calls.empty());
  ASSERT_TRUE(r.content.has_value());
  EXPECT_FALSE(r.content->empty());
  EXPECT_EQ(r.finish_reason, chat::FinishReason::kStop);
}

TEST(Synthesize, EndsTheToolRoundTripWhenUserTextOrSystemFollowsTheToolResult) {
  // Claude Code puts text blocks after tool_result blocks, and `role: "system"` entries.
  auto request = after_tool_result(tool_request(kWeather));
  chat::Message user;
  user.role = chat::Role::kUser;
  user.content.push_back(
      {chat::ContentPart::Kind::kText, "<system-reminder>x</system-reminder>", ""});
  request.messages.push_back(user);
  chat::Message system;
  system.role = chat::Role::kSystem;
  system.content.push_back({chat::ContentPart::Kind::kText, "# Environment", ""});
  request.messages.push_back(system);
  const auto r = synthesize(request, Fault::kNone, "m", 1);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.finish_reason, chat::FinishReason::kStop);
}

TEST(Synthesize, CallsAToolAgainWhenANewUserTurnFollowsTheAnswerToAToolResult) {
  auto request = after_tool_result(tool_request(kWeather));
  chat::Message assistant;
  assistant.role = chat::Role::kAssistant;
  assistant.content.push_back({chat::ContentPart::Kind::kText, "It is sunny.", ""});
  request.messages.push_back(assistant);
  chat::Message user;
  user.role = chat::Role::kUser;
  user.content.push_back({chat::ContentPart::Kind::kText, "And in Rome?", ""});
  request.messages.push_back(user);
  const auto r = synthesize(request, Fault::kNone, "m", 1);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
}

TEST(Synthesize, AForcedToolChoiceCallsAToolEvenAfterAToolResult) {
  for (const auto kind : {chat::ToolChoice::Kind::kRequired, chat::ToolChoice::Kind::kNamed}) {
    auto request = after_tool_result(tool_request(kWeather));
    request.tool_choice = {kind, kind == chat::ToolChoice::Kind::kNamed ? "get_weather" : ""};
    const auto r = synthesize(request, Fault::kNone, "m", 1);
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.finish_reason, chat::FinishReason::kToolCalls);
  }
}

TEST(Synthesize, WritesJsonContentForResponseFormats) {
  chat::ChatRequest request;
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonSchema;
  request.response_format.schema = schema(kWeather);
  const auto r = synthesize(request, Fault::kNone, "m", 1);
  ASSERT_TRUE(r.content.has_value());
  EXPECT_EQ(bj::parse(*r.content).as_object().at("unit").as_string(), "celsius");
  EXPECT_EQ(r.usage.input_tokens, 1);

  request.response_format.kind = chat::ResponseFormat::Kind::kJsonObject;
  EXPECT_EQ(synthesize(request, Fault::kNone, "m", 1).content, R"({"answer":"ok"})");
}

TEST(SynthesizeFault, NoToolCallAnswersInText) {
  const auto r = synthesize(tool_request(kWeather), Fault::kNoToolCall, "m", 1);
  EXPECT_TRUE(r.tool_calls.empty());
  ASSERT_TRUE(r.content.has_value());
  EXPECT_FALSE(r.content->empty());
  EXPECT_EQ(r.finish_reason, chat::FinishReason::kStop);
}

TEST(SynthesizeFault, UnknownToolNamesAnUndeclaredTool) {
  const auto r = synthesize(tool_request(kWeather), Fault::kUnknownTool, "m", 1);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "unknown_tool");
}

TEST(SynthesizeFault, InvalidJsonCutsTheArguments) {
  const auto r = synthesize(tool_request(kWeather), Fault::kInvalidJson, "m", 1);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  boost::system::error_code ec;
  bj::parse(r.tool_calls[0].arguments, ec);
  EXPECT_TRUE(ec.failed());
  EXPECT_TRUE(r.tool_calls[0].arguments.starts_with("{\""));
  EXPECT_EQ(r.finish_reason, chat::FinishReason::kToolCalls);
}

TEST(SynthesizeFault, SchemaDropsARequiredArgument) {
  const auto r = synthesize(tool_request(kWeather), Fault::kSchema, "m", 1);
  const bj::value args = bj::parse(r.tool_calls[0].arguments);
  EXPECT_FALSE(args.as_object().contains("city"));
}

TEST(SynthesizeFault, SchemaBreaksJsonContent) {
  chat::ChatRequest request;
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonSchema;
  request.response_format.schema = schema(kWeather);
  const auto r = synthesize(request, Fault::kSchema, "m", 1);
  EXPECT_FALSE(bj::parse(*r.content).as_object().contains("city"));
}

TEST(SynthesizeFault, EmptyHasNoContentAndNoCalls) {
  const auto r = synthesize(tool_request(kWeather), Fault::kEmpty, "m", 1);
  EXPECT_EQ(r.content, "");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.usage.output_tokens, 1);
}

TEST(SynthesizeFault, TruncatedEndsForLength) {
  chat::ChatRequest request;
  const auto full = synthesize(request, Fault::kNone, "m", 3);
  const auto cut = synthesize(request, Fault::kTruncated, "m", 3);
  EXPECT_EQ(cut.finish_reason, chat::FinishReason::kLength);
  ASSERT_TRUE(cut.content.has_value());
  EXPECT_LT(cut.content->size(), full.content->size());
  EXPECT_TRUE(full.content->starts_with(*cut.content));

  const auto call = synthesize(tool_request(kWeather), Fault::kTruncated, "m", 3);
  EXPECT_EQ(call.finish_reason, chat::FinishReason::kLength);
}

TEST(Fault, NamesRoundTrip) {
  for (const Fault f : {Fault::kNone, Fault::kNoToolCall, Fault::kUnknownTool, Fault::kInvalidJson,
                        Fault::kSchema, Fault::kEmpty, Fault::kTruncated}) {
    EXPECT_EQ(parse_fault(to_string(f)), f);
  }
  EXPECT_EQ(parse_fault("invalid_json"), Fault::kInvalidJson);
  EXPECT_FALSE(parse_fault("rate_limited").has_value());
}

TEST(StreamEvents, CutsTextAndArgumentsAtCharacterBoundaries) {
  chat::ChatResponse response;
  response.id = "r1";
  response.model = "m";
  // "abcédefghöij": é (bytes 3-4) straddles the first cut at byte 4.
  response.content =
      "abc\xc3\xa9"
      "defgh\xc3\xb6ij";
  response.tool_calls.push_back({"call_1", "f", R"({"a":"\u00e9","b":2})"});
  response.finish_reason = chat::FinishReason::kToolCalls;
  response.usage.output_tokens = 5;
  const auto events = stream_events(response, 4);

  using Kind = chat::StreamEvent::Kind;
  int text_deltas = 0, argument_deltas = 0;
  for (const auto& event : events) {
    if (event.kind == Kind::kTextDelta) {
      ++text_deltas;
      // No piece starts with a UTF-8 continuation byte.
      EXPECT_NE(static_cast<unsigned char>(event.text.front()) & 0xC0, 0x80) << event.text;
    }
    argument_deltas += event.kind == Kind::kToolCallDelta;
  }
  EXPECT_EQ(text_deltas, 4);
  EXPECT_EQ(events.at(1).text, "abc\xc3\xa9");
  EXPECT_EQ(argument_deltas, 4);
  EXPECT_EQ(events.front().kind, Kind::kStart);
  EXPECT_EQ(events.back().kind, Kind::kUsage);

  chat::StreamAssembler assembler;
  assembler.add(events);
  EXPECT_EQ(assembler.response().content, response.content);
  EXPECT_EQ(assembler.response().tool_calls.at(0).arguments, response.tool_calls[0].arguments);
  EXPECT_EQ(assembler.response().finish_reason, chat::FinishReason::kToolCalls);
  EXPECT_EQ(assembler.response().usage.output_tokens, 5);
}

}  // namespace
}  // namespace backstop::providers
