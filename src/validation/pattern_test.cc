#include "validation/pattern.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace backstop::validation {
namespace {

TEST(PatternTableTest, SearchFindsAMatchAnywhere) {
  PatternTable table;
  ASSERT_TRUE(table.add("[0-9]{3}").has_value());
  EXPECT_TRUE(table.search("[0-9]{3}", "ab123cd"));
  EXPECT_FALSE(table.search("[0-9]{3}", "ab12cd"));
  EXPECT_EQ(table.size(), 1u);
}

TEST(PatternTableTest, AddingTheSamePatternTwiceKeepsOne) {
  PatternTable table;
  ASSERT_TRUE(table.add("^a$").has_value());
  ASSERT_TRUE(table.add("^a$").has_value());
  EXPECT_EQ(table.size(), 1u);
}

TEST(PatternTableTest, LookbehindAndBackreferencesDoNotCompile) {
  PatternTable table;
  auto lookbehind = table.add("(?<!a)b");
  ASSERT_FALSE(lookbehind.has_value());
  EXPECT_EQ(lookbehind.error(),
            "pattern \"(?<!a)b\" does not compile: invalid perl operator: (?< (patterns run on "
            "RE2: no lookaround, no backreferences)");
  auto backreference = table.add("(a)\\1");
  ASSERT_FALSE(backreference.has_value());
  EXPECT_EQ(backreference.error(),
            "pattern \"(a)\\1\" does not compile: invalid escape sequence: \\1 (patterns run on "
            "RE2: no lookaround, no backreferences)");
  EXPECT_EQ(table.size(), 0u);
}

TEST(PatternTableTest, EcmaUnicodeEscapesAreCodePoints) {
  PatternTable table;
  ASSERT_TRUE(table.add("^\\u00e9+$").has_value());
  EXPECT_TRUE(table.search("^\\u00e9+$", "\xC3\xA9\xC3\xA9"));
  EXPECT_FALSE(table.search("^\\u00e9+$", "e"));
  // A surrogate pair is one code point (U+1F600).
  ASSERT_TRUE(table.add("^\\uD83D\\uDE00$").has_value());
  EXPECT_TRUE(table.search("^\\uD83D\\uDE00$", "\xF0\x9F\x98\x80"));
  // An escaped backslash before "u" is a backslash and a "u".
  ASSERT_TRUE(table.add("^\\\\u0041$").has_value());
  EXPECT_TRUE(table.search("^\\\\u0041$", "\\u0041"));
}

TEST(PatternTableTest, EcmaNamedGroupsCompile) {
  PatternTable table;
  ASSERT_TRUE(table.add("^(?<year>[0-9]{4})-[0-9]{2}$").has_value());
  EXPECT_TRUE(table.search("^(?<year>[0-9]{4})-[0-9]{2}$", "2024-05"));
  // Inside a class the same characters are literal.
  ASSERT_TRUE(table.add("^[(?<]+$").has_value());
  EXPECT_TRUE(table.search("^[(?<]+$", "(?<"));
}

TEST(PatternTableTest, APatternTooLargeForItsMemoryDoesNotCompile) {
  PatternTable table;
  auto huge = table.add("(\\pL{1,1000}){1,1000}");
  ASSERT_FALSE(huge.has_value());
  EXPECT_NE(huge.error().find("does not compile"), std::string::npos) << huge.error();
}

TEST(PatternTableTest, SearchOutsideTheTableCompilesOrThrows) {
  const PatternTable table;
  EXPECT_TRUE(table.search("b+", "abbc"));
  EXPECT_THROW((void)table.search("(?=b)", "b"), std::runtime_error);
}

TEST(ActivePatternsTest, ScopeSelectsTheTableAndRestoresThePrevious) {
  PatternTable outer;
  ASSERT_TRUE(outer.add("x").has_value());
  const ActivePatterns outer_scope(outer);
  EXPECT_TRUE(ActivePatterns::search("x", "axb"));
  {
    PatternTable inner;
    const ActivePatterns inner_scope(inner);
    EXPECT_FALSE(ActivePatterns::search("y", "axb"));
  }
  EXPECT_TRUE(ActivePatterns::search("x", "x"));
}

TEST(FormatTest, DatesTimesAndDateTimesAsValijsonChecksThem) {
  int month = 0;
  int day = 0;
  EXPECT_EQ(check_format("date", "2024-07-18", month, day), "");
  EXPECT_EQ(month, 7);
  EXPECT_EQ(day, 18);
  EXPECT_EQ(check_format("date", "2024-13-01", month, day), "String should be a valid date");
  EXPECT_EQ(check_format("time", "16:52:45+02:00", month, day), "");
  EXPECT_EQ(check_format("time", "16:52", month, day), "String should be a valid time");
  EXPECT_EQ(check_format("date-time", "2022-07-18T16:52:45.5Z", month, day), "");
  EXPECT_EQ(check_format("date-time", "2022-07-18 16:52:45Z", month, day),
            "String should be a valid date-time");
  EXPECT_EQ(check_format("email", "anything", month, day), "");
  EXPECT_EQ(check_format("date", std::string(1 << 20, '1') + "-01-02", month, day), "");
}

}  // namespace
}  // namespace backstop::validation
