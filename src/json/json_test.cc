#include "json/json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace backstop::json {
namespace {

TEST(JsonParseTest, ReportsTheByteOfASyntaxError) {
  auto r = parse(R"({"a": 1,})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("at byte"), std::string::npos) << r.error().message;
}

TEST(JsonParseTest, RejectsTrailingData) {
  auto r = parse(R"({"a": 1} x)");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("extra data"), std::string::npos);
}

// Infinity has no JSON form: a number too large for a double would be written back as
// `Infinity`, so it is rejected where it is read.
TEST(JsonParseTest, RejectsNumbersOutOfRange) {
  for (std::string_view text : {R"({"top_p": 1e999})", R"([-1e999])", "1e400"}) {
    auto r = parse(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, core::ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("number out of range"), std::string::npos)
        << r.error().message;
  }
  auto r = parse(R"({"a": 1e999})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "not valid JSON at byte 11: number out of range");
  auto ok = parse(R"({"a": 1.5e308, "b": -2, "c": 18446744073709551615, "d": [true, null]})");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->at("a").as_double(), 1.5e308);
  EXPECT_EQ(ok->at("c").as_uint64(), 18446744073709551615u);
}

TEST(JsonParseTest, ObjectRequired) {
  auto r = parse_object("[1,2]");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "body must be a JSON object, got an array");
}

TEST(JsonFieldTest, WrongTypeNamesThePath) {
  auto obj = parse_object(R"({"role": 3})").value();
  auto r = required_string(obj, "role", "messages[1]");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "`messages[1].role` must be a string, got a number");
  auto missing = required_string(obj, "content", "messages[1]");
  EXPECT_EQ(missing.error().message, "`messages[1].content` is required");
}

// Top-level members are shown where they stand in the text: nested members are not, and
// a key or string value with escapes, or a value that is not a string, has a null view.
TEST(JsonParseTest, VisitorSeesTopLevelMembersInTheText) {
  const std::string text =
      R"( {"model" : "agentic", "n": 2, "o": {"inner": "x"}, "e\u0073c": "v", "s": "a\nb",)"
      R"( "last": [1, "y"]})";
  std::vector<std::string> seen;
  auto r = parse_object(text, {}, [&](std::string_view key, std::string_view value) {
    const auto in_text = [&](std::string_view s) {
      return s.data() >= text.data() && s.data() + s.size() <= text.data() + text.size();
    };
    std::string row = key.data() == nullptr ? "<escaped>" : std::string(key);
    row += value.data() == nullptr ? "=<none>" : "=" + std::string(value);
    if ((key.data() != nullptr && !in_text(key)) || (value.data() != nullptr && !in_text(value))) {
      row += " (not in the text)";
    }
    seen.push_back(row);
  });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(seen, (std::vector<std::string>{"model=agentic", "n=<none>", "o=<none>", "<escaped>=v",
                                            "s=<none>", "last=<none>"}));
  EXPECT_EQ(r->at("s"), "a\nb");
}

}  // namespace
}  // namespace backstop::json
