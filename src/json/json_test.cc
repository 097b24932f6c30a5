#include "json/json.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace backstop::json
