#include "eval/expect.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "eval/suite.h"

namespace backstop::eval {
namespace {

using validation::Reason;

Expect expect_of(std::string_view expect_json) {
  const Suite suite = parse_suite(R"({"id": "a", "workload": "w", "request": {}, "expect": )" +
                                  std::string(expect_json) + "}");
  EXPECT_TRUE(suite.errors.empty()) << suite.errors.front().message;
  return suite.cases.empty() ? Expect{} : suite.cases.front().expect;
}

chat::ChatResponse call(std::string name, std::string arguments) {
  chat::ChatResponse r;
  r.tool_calls.push_back({"call_1", std::move(name), std::move(arguments)});
  r.finish_reason = chat::FinishReason::kToolCalls;
  return r;
}

chat::ChatResponse text(std::string content) {
  chat::ChatResponse r;
  r.content = std::move(content);
  return r;
}

validation::Verdict check(std::string_view expect_json, const chat::ChatResponse& response) {
  validation::SchemaCache schemas;
  return check_expect(expect_of(expect_json), response, schemas);
}

TEST(ExpectTest, TheExpectedToolWithEqualArgumentsPasses) {
  EXPECT_TRUE(check(R"({"tool": "get_weather", "arguments": {"city": "Paris", "days": 1}})",
                    call("get_weather", R"({"days": 1.0, "city": "Paris"})"))
                  .pass);
}

TEST(ExpectTest, AnAnswerWithoutACallFailsNoToolCall) {
  auto v = check(R"({"tool": "get_weather"})", text("sunny"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kNoToolCall);
}

TEST(ExpectTest, AnotherToolFailsToolMismatch) {
  auto v = check(R"({"tool": "get_weather"})", call("get_time", "{}"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kToolMismatch);
  EXPECT_NE(v.detail.find("\"get_time\""), std::string::npos);
}

TEST(ExpectTest, UnequalArgumentsFailSchemaNamingWhereTheyDiffer) {
  auto v = check(R"({"arguments": {"city": "Paris", "units": {"t": "c"}}})",
                 call("get_weather", R"({"city": "Paris", "units": {"t": "f"}})"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kSchema);
  EXPECT_NE(v.detail.find("\"/units/t\""), std::string::npos) << v.detail;
}

TEST(ExpectTest, ArgumentsThatAreNotJsonFailInvalidJson) {
  auto v = check(R"({"arguments": {"city": "Paris"}})", call("get_weather", R"({"city": "Pa)"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kInvalidJson);
}

TEST(ExpectTest, ArgumentsAreCheckedAgainstTheExpectedSchema) {
  const std::string_view schema = R"({"arguments_schema": {"type": "object", "required": ["city"],)"
                                  R"( "properties": {"city": {"enum": ["Paris", "Lyon"]}}}})";
  EXPECT_TRUE(check(schema, call("f", R"({"city": "Lyon"})")).pass);
  auto v = check(schema, call("f", R"({"city": "Rome"})"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kSchema);
}

TEST(ExpectTest, ContentIsSearchedForTheRegex) {
  EXPECT_TRUE(check(R"({"content_regex": "\\b1969\\b"})", text("It was in 1969.")).pass);
  auto v = check(R"({"content_regex": "\\b1969\\b"})", text("It was in 1970."));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kSchema);
  auto empty = check(R"({"content_regex": "x"})", text(""));
  EXPECT_EQ(empty.reason, Reason::kEmpty);
}

TEST(ExpectTest, ContentMustBeJsonMatchingTheContentSchema) {
  const std::string_view schema = R"({"content_schema": {"type": "object", "required": ["label"],)"
                                  R"( "properties": {"label": {"enum": ["spam", "ham"]}}}})";
  EXPECT_TRUE(check(schema, text(R"({"label": "spam"})")).pass);
  EXPECT_EQ(check(schema, text(R"({"label": "eggs"})")).reason, Reason::kSchema);
  EXPECT_EQ(check(schema, text("spam")).reason, Reason::kInvalidJson);
}

TEST(ExpectTest, NoExpectationsPassAnyAnswer) { EXPECT_TRUE(check("{}", text("")).pass); }

TEST(FirstDifferenceTest, NamesThePointerOfTheFirstDifference) {
  namespace bj = boost::json;
  EXPECT_EQ(first_difference(bj::parse("[1, {\"a/b\": 2}]"), bj::parse("[1, {\"a/b\": 3}]")),
            "/1/a~1b");
  EXPECT_EQ(first_difference(bj::parse("[1]"), bj::parse("[1, 2]")), "/1");
  EXPECT_EQ(first_difference(bj::parse("{\"a\": 1}"), bj::parse("{\"a\": 1, \"b\": 2}")), "/b");
  EXPECT_EQ(first_difference(bj::parse("1"), bj::parse("\"1\"")), "");
  EXPECT_EQ(
      first_difference(bj::parse("{\"a\": [true, null]}"), bj::parse("{\"a\": [true, null]}")),
      std::nullopt);
}

}  // namespace
}  // namespace backstop::eval
