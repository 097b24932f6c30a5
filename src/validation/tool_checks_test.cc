#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "validation/validator.h"

namespace backstop::validation {
namespace {

namespace bj = boost::json;

constexpr std::string_view kWeatherSchema = R"({
  "type": "object",
  "properties": {
    "city": {"type": "string"},
    "unit": {"type": "string", "enum": ["c", "f"]},
    "days": {"type": "integer"}
  },
  "required": ["city"]
})";

// A request offering get_weather (with kWeatherSchema) and search.
chat::ChatRequest weather_request() {
  chat::ChatRequest request;
  request.model = "agentic";
  request.tools.push_back({"get_weather", "Weather by city", bj::parse(kWeatherSchema)});
  request.tools.push_back({"search", "Web search", bj::parse(R"({"type": "object"})")});
  return request;
}

chat::ChatResponse calls(std::vector<chat::ToolCall> tool_calls) {
  chat::ChatResponse response;
  response.tool_calls = std::move(tool_calls);
  response.finish_reason = chat::FinishReason::kToolCalls;
  return response;
}

chat::ChatResponse call(std::string name, std::string arguments) {
  return calls({{"call_1", std::move(name), std::move(arguments)}});
}

chat::ChatResponse text(std::string content) {
  chat::ChatResponse response;
  response.content = std::move(content);
  return response;
}

// The agentic workload of DESIGN's example config.
Spec agentic() {
  Spec spec;
  spec.tool_call = Spec::ToolCall::kRequired;
  spec.tool_names_declared = true;
  spec.arguments = Spec::Arguments::kSchema;
  return spec;
}

class ToolChecksTest : public ::testing::Test {
 protected:
  Verdict run(const Spec& spec, const chat::ChatRequest& request,
              const chat::ChatResponse& response) {
    return make_validator(spec)->check(request, response, schemas_);
  }

  SchemaCache schemas_;
};

#define EXPECT_FAILS(verdict, expected_reason, expected_detail)  \
  do {                                                           \
    Verdict v_ = (verdict);                                      \
    EXPECT_FALSE(v_.pass);                                       \
    EXPECT_EQ(to_string(v_.reason), to_string(expected_reason)); \
    EXPECT_EQ(v_.detail, expected_detail);                       \
  } while (false)

TEST_F(ToolChecksTest, GoodCallPasses) {
  Verdict v = run(agentic(), weather_request(), call("get_weather", R"({"city": "Paris"})"));
  EXPECT_TRUE(v.pass) << v.detail;
}

TEST_F(ToolChecksTest, RequiredCallMissingFailsNoToolCall) {
  EXPECT_FAILS(run(agentic(), weather_request(), text("It is sunny in Paris.")),
               Reason::kNoToolCall, "no tool call in the answer");
}

TEST_F(ToolChecksTest, RequiredCallMissingWithNoContentIsStillNoToolCall) {
  EXPECT_FAILS(run(agentic(), weather_request(), chat::ChatResponse{}), Reason::kNoToolCall,
               "no tool call in the answer");
}

TEST_F(ToolChecksTest, UndeclaredNameFailsToolMismatchListingTheOffer) {
  EXPECT_FAILS(run(agentic(), weather_request(), call("get_wether", R"({"city": "Paris"})")),
               Reason::kToolMismatch,
               R"(tool "get_wether" was not offered (offered: get_weather, search))");
}

TEST_F(ToolChecksTest, DeclaredModeWithNoToolsOffered) {
  chat::ChatRequest request;
  EXPECT_FAILS(run(agentic(), request, call("get_weather", "{}")), Reason::kToolMismatch,
               R"(tool "get_weather" was not offered (offered: none))");
}

TEST_F(ToolChecksTest, ExplicitListRejectsOtherNames) {
  Spec spec;
  spec.tool_call = Spec::ToolCall::kRequired;
  spec.tool_names = {"get_weather"};
  EXPECT_FAILS(run(spec, weather_request(), call("search", "{}")), Reason::kToolMismatch,
               R"(tool "search" is not allowed (allowed: get_weather))");
  EXPECT_TRUE(run(spec, weather_request(), call("get_weather", "{}")).pass);
}

TEST_F(ToolChecksTest, NamedToolChoiceMustBeTheToolCalled) {
  chat::ChatRequest request = weather_request();
  request.tool_choice = {chat::ToolChoice::Kind::kNamed, "get_weather"};
  EXPECT_FAILS(run(agentic(), request, call("search", "{}")), Reason::kToolMismatch,
               R"(tool "search" was called but tool_choice named "get_weather")");
}

TEST_F(ToolChecksTest, NamesAreNotCheckedUnlessConfigured) {
  Spec spec;
  spec.tool_call = Spec::ToolCall::kRequired;
  EXPECT_TRUE(run(spec, weather_request(), call("anything", "not json")).pass);
}

TEST_F(ToolChecksTest, EveryNameIsCheckedBeforeAnyArguments) {
  auto response = calls({{"call_1", "get_weather", "{bad"}, {"call_2", "lookup", "{}"}});
  EXPECT_FAILS(run(agentic(), weather_request(), response), Reason::kToolMismatch,
               R"(tool "lookup" was not offered (offered: get_weather, search))");
}

TEST_F(ToolChecksTest, AbsurdlyLongNamesAreCut) {
  Verdict v = run(agentic(), weather_request(), call(std::string(500, 'x'), "{}"));
  EXPECT_EQ(v.reason, Reason::kToolMismatch);
  EXPECT_EQ(v.detail.find(std::string(65, 'x')), std::string::npos);
  EXPECT_NE(v.detail.find(std::string(64, 'x') + "...\""), std::string::npos);
}

TEST_F(ToolChecksTest, ArgumentsThatDoNotParseFailInvalidJsonAtTheByte) {
  EXPECT_FAILS(run(agentic(), weather_request(), call("get_weather", R"({"city": "Paris",})")),
               Reason::kInvalidJson, "arguments of get_weather are not valid JSON at byte 17");
}

TEST_F(ToolChecksTest, CutOffArgumentsFailAtTheirEnd) {
  EXPECT_FAILS(run(agentic(), weather_request(), call("get_weather", R"({"city": "Pa)")),
               Reason::kInvalidJson, "arguments of get_weather are not valid JSON at byte 12");
}

TEST_F(ToolChecksTest, TrailingGarbageFailsAtItsFirstByte) {
  EXPECT_FAILS(run(agentic(), weather_request(), call("get_weather", R"({"city": "a"} x)")),
               Reason::kInvalidJson, "arguments of get_weather are not valid JSON at byte 14");
  EXPECT_TRUE(run(agentic(), weather_request(), call("get_weather", "{\"city\": \"a\"} \n")).pass);
}

TEST_F(ToolChecksTest, EmptyArgumentsAreNotJson) {
  EXPECT_FAILS(run(agentic(), weather_request(), call("search", "")), Reason::kInvalidJson,
               "arguments of search are not valid JSON at byte 0");
}

TEST_F(ToolChecksTest, ArgumentsMustBeAnObject) {
  EXPECT_FAILS(run(agentic(), weather_request(), call("get_weather", R"(["Paris"])")),
               Reason::kInvalidJson,
               "arguments of get_weather are not a JSON object (got an array)");
}

TEST_F(ToolChecksTest, JsonModeDoesNotApplyTheSchema) {
  Spec spec = agentic();
  spec.arguments = Spec::Arguments::kJson;
  EXPECT_TRUE(run(spec, weather_request(), call("get_weather", R"({"unit": 5})")).pass);
  EXPECT_EQ(run(spec, weather_request(), call("get_weather", "{")).reason, Reason::kInvalidJson);
}

TEST_F(ToolChecksTest, ArgumentsOutsideTheEnumFailSchema) {
  EXPECT_FAILS(run(agentic(), weather_request(),
                   call("get_weather", R"({"city": "Paris", "unit": "kelvin"})")),
               Reason::kSchema, "arguments of get_weather: /unit must be one of [c, f]");
}

TEST_F(ToolChecksTest, ArgumentsOfTheWrongTypeFailSchema) {
  EXPECT_FAILS(
      run(agentic(), weather_request(), call("get_weather", R"({"city": "Paris", "days": 2.5})")),
      Reason::kSchema, "arguments of get_weather: /days must be integer");
}

TEST_F(ToolChecksTest, MissingRequiredArgumentFailsSchema) {
  EXPECT_FAILS(run(agentic(), weather_request(), call("get_weather", R"({"unit": "c"})")),
               Reason::kSchema, "arguments of get_weather: missing required property city");
}

TEST_F(ToolChecksTest, SecondCallsArgumentsAreCheckedToo) {
  auto response = calls({{"call_1", "search", "{}"}, {"call_2", "get_weather", "{}"}});
  EXPECT_FAILS(run(agentic(), weather_request(), response), Reason::kSchema,
               "arguments of get_weather: missing required property city");
}

TEST_F(ToolChecksTest, SchemaModeWithoutNameCheckStillNeedsAnOfferedTool) {
  Spec spec;
  spec.arguments = Spec::Arguments::kSchema;
  EXPECT_FAILS(run(spec, weather_request(), call("lookup", "{}")), Reason::kToolMismatch,
               R"(tool "lookup" was not offered (offered: get_weather, search))");
}

TEST_F(ToolChecksTest, ToolWithoutParametersOnlyNeedsAnObject) {
  chat::ChatRequest request;
  request.tools.push_back({"now", "", bj::value()});
  EXPECT_TRUE(run(agentic(), request, call("now", R"({"anything": 1})")).pass);
}

TEST_F(ToolChecksTest, InvalidToolSchemaFailsSchemaNamingTheTool) {
  chat::ChatRequest request;
  request.tools.push_back({"get_weather", "", bj::parse(R"({"type": 12})")});
  Verdict v = run(agentic(), request, call("get_weather", R"({"city": "Paris"})"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kSchema);
  EXPECT_TRUE(v.detail.starts_with("schema of get_weather is invalid: ")) << v.detail;
  EXPECT_GT(v.detail.size(), std::string_view("schema of get_weather is invalid: ").size());
}

TEST_F(ToolChecksTest, SameToolSchemaAcrossRequestsCompilesOnce) {
  auto validator = make_validator(agentic());
  chat::ChatRequest first = weather_request();
  chat::ChatRequest second = weather_request();
  // Failing arguments go to the compiled schema (a pass of a plain schema needs none).
  EXPECT_FALSE(validator->check(first, call("get_weather", R"({"city": 1})"), schemas_).pass);
  EXPECT_FALSE(validator->check(second, call("get_weather", R"({"city": 2})"), schemas_).pass);
  EXPECT_EQ(schemas_.size(), 1u);
  second.tools[1].parameters = bj::parse(R"({"type": "object", "minProperties": 1})");
  EXPECT_FALSE(validator->check(second, call("search", "{}"), schemas_).pass);
  EXPECT_EQ(schemas_.size(), 2u);
}

TEST_F(ToolChecksTest, PlainToolSchemaPassesWithoutCompiling) {
  auto validator = make_validator(agentic());
  EXPECT_TRUE(
      validator->check(weather_request(), call("get_weather", R"({"city": "a"})"), schemas_).pass);
  EXPECT_EQ(schemas_.size(), 0u);
}

TEST_F(ToolChecksTest, TruncatedAnswerFailsFirst) {
  auto response = call("get_wether", "{");
  response.finish_reason = chat::FinishReason::kLength;
  EXPECT_FAILS(run(agentic(), weather_request(), response), Reason::kTruncated,
               "finish_reason length");
}

TEST_F(ToolChecksTest, AllowTruncatedLetsTheOtherChecksDecide) {
  Spec spec = agentic();
  spec.allow_truncated = true;
  auto good = call("get_weather", R"({"city": "Paris"})");
  good.finish_reason = chat::FinishReason::kLength;
  EXPECT_TRUE(run(spec, weather_request(), good).pass);
  auto bad = call("get_weather", R"({"city": "Pa)");
  bad.finish_reason = chat::FinishReason::kLength;
  EXPECT_EQ(run(spec, weather_request(), bad).reason, Reason::kInvalidJson);
}

TEST_F(ToolChecksTest, OptionalCallChecksTheCallWhenThereIsOne) {
  Spec spec = agentic();
  spec.tool_call = Spec::ToolCall::kOptional;
  EXPECT_TRUE(run(spec, weather_request(), text("No tool needed.")).pass);
  EXPECT_EQ(run(spec, weather_request(), call("get_weather", "{}")).reason, Reason::kSchema);
}

TEST_F(ToolChecksTest, OptionalCallWithNothingAtAllFailsEmpty) {
  Spec spec = agentic();
  spec.tool_call = Spec::ToolCall::kOptional;
  EXPECT_FAILS(run(spec, weather_request(), chat::ChatResponse{}), Reason::kEmpty, "empty content");
  EXPECT_FAILS(run(spec, weather_request(), text(" \n")), Reason::kEmpty, "empty content");
}

TEST_F(ToolChecksTest, UnrequestedCallsAreStillCheckedWhenConfigured) {
  Spec spec;
  spec.tool_names_declared = true;
  spec.content = Spec::Content::kNonEmpty;
  EXPECT_EQ(run(spec, weather_request(), call("get_wether", "{}")).reason, Reason::kToolMismatch);
  // With calls, the content check does not apply.
  EXPECT_TRUE(run(spec, weather_request(), call("search", "{}")).pass);
}

}  // namespace
}  // namespace backstop::validation
