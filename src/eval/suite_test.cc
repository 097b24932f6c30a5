#include "eval/suite.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <string>

namespace backstop::eval {
namespace {

constexpr std::string_view kGood =
    R"({"id": "weather-paris", "workload": "agentic", "request": {"messages": []},)"
    R"( "expect": {"tool": "get_weather", "arguments": {"city": "Paris"},)"
    R"( "arguments_schema": {"type": "object"}, "content_regex": "^ok",)"
    R"( "content_schema": {"type": "object"}}})";

TEST(SuiteTest, ReadsEveryFieldOfACaseAndDefaultsTheDialectToOpenai) {
  const Suite suite = parse_suite(kGood);
  ASSERT_TRUE(suite.errors.empty()) << suite.errors.front().message;
  ASSERT_EQ(suite.cases.size(), 1u);
  const Case& c = suite.cases.front();
  EXPECT_EQ(c.id, "weather-paris");
  EXPECT_EQ(c.workload, "agentic");
  EXPECT_EQ(c.dialect, "openai");
  EXPECT_EQ(c.request, R"({"messages":[],"model":"agentic"})");
  EXPECT_EQ(c.line, 1);
  EXPECT_EQ(c.expect.tool, "get_weather");
  EXPECT_EQ(*c.expect.arguments, boost::json::parse(R"({"city":"Paris"})"));
  EXPECT_TRUE(c.expect.arguments_schema.has_value());
  EXPECT_EQ(c.expect.content_regex, "^ok");
  EXPECT_NE(c.expect.content_pattern, nullptr);
  EXPECT_TRUE(c.expect.content_schema.has_value());
  EXPECT_TRUE(c.expect.wants_tool_call());
}

TEST(SuiteTest, ABadLineIsReportedWithItsNumberAndTheOtherLinesAreStillRead) {
  const std::string text =
      std::string(kGood) + "\n\nnot json\n" +
      R"({"id": "b", "workload": "qa", "dialect": "anthropic", "request": {}})" + "\n";
  const Suite suite = parse_suite(text);
  ASSERT_EQ(suite.errors.size(), 1u);
  EXPECT_EQ(suite.errors[0].line, 3);
  EXPECT_EQ(suite.errors[0].to_string("s.jsonl").rfind("s.jsonl:3: ", 0), 0u);
  ASSERT_EQ(suite.cases.size(), 2u);
  EXPECT_EQ(suite.cases[1].id, "b");
  EXPECT_EQ(suite.cases[1].dialect, "anthropic");
  EXPECT_EQ(suite.cases[1].line, 4);
  EXPECT_FALSE(suite.cases[1].expect.wants_tool_call());
}

// The message a one-line suite's error carries; empty when it read.
std::string error_of(std::string_view line) {
  const Suite suite = parse_suite(line);
  return suite.errors.empty() ? std::string() : suite.errors.front().message;
}

TEST(SuiteTest, EachKindOfBadCaseSaysWhatIsWrong) {
  EXPECT_NE(error_of(R"({"workload": "w", "request": {}})").find("`id` is required"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": "", "workload": "w", "request": {}})").find("must not be empty"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": "a", "workload": "w", "request": []})").find("request: must be"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"id": "a", "workload": "w", "request": {}, "x": 1})").find("unknown key \"x\""),
      std::string::npos);
  EXPECT_NE(error_of(R"({"id": "a", "workload": "w", "dialect": "gemini", "request": {}})")
                .find("\"gemini\" is not one of"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": "a", "workload": "w", "request": {}, "expect": {"tools": "x"}})")
                .find("expect: unknown key \"tools\""),
            std::string::npos);
  EXPECT_NE(
      error_of(
          R"j({"id": "a", "workload": "w", "request": {}, "expect": {"content_regex": "(?=x)"}})j")
          .find("does not compile (RE2)"),
      std::string::npos);
  EXPECT_NE(error_of(R"({"id": "a", "workload": "w", "request": {},)"
                     R"( "expect": {"arguments_schema": {"type": 3}}})")
                .find("expect.arguments_schema: "),
            std::string::npos);
  EXPECT_NE(error_of(R"({"id": "a", "workload": "w", "request": {}, "expect": {"arguments": 1}})")
                .find("expect.arguments: must be an object"),
            std::string::npos);
}

TEST(SuiteTest, ASecondCaseWithTheSameIdIsAnErrorOnItsLine) {
  const Suite suite = parse_suite(R"({"id": "a", "workload": "w", "request": {}})"
                                  "\n"
                                  R"({"id": "a", "workload": "v", "request": {}})");
  ASSERT_EQ(suite.cases.size(), 1u);
  ASSERT_EQ(suite.errors.size(), 1u);
  EXPECT_EQ(suite.errors[0].line, 2);
  EXPECT_NE(suite.errors[0].message.find("already a case"), std::string::npos);
}

TEST(SuiteTest, TheHashIsTheSha256OfTheText) {
  EXPECT_EQ(parse_suite("").hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_NE(parse_suite(kGood).hash, parse_suite(std::string(kGood) + "\n").hash);
}

TEST(SuiteTest, AMissingFileIsNotFound) {
  auto suite = load_suite("/nonexistent/suite.jsonl");
  ASSERT_FALSE(suite);
  EXPECT_EQ(suite.error().code, core::ErrorCode::kNotFound);
}

}  // namespace
}  // namespace backstop::eval
