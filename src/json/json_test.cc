#include "json/json.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>
#include <vector>

#include "json/fast_reader.h"

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

// json::parse reads most text with its own fast reader; every value must come out as
// Boost.JSON's parser makes it, kinds of numbers included.
TEST(JsonParseTest, GivesTheTreeBoostGives) {
  const std::vector<std::string> texts = {
      R"({"a": "plain", "b": "", "c": {}, "d": [], "e": [[], {}], "f": true, "g": false,)"
      R"( "h": null})",
      R"({"esc": "line\nnext\ttab \"q\" \\ \/ \b\f\r", "u": "\u00e9\u20ac\ud83d\ude00",)"
      R"( "utf8": "cafÃ© â¬ ð", "k\u0065y": 1})",
      R"([0, 1, -1, 42, 123456789012345678, -123456789012345678, 0.2, -0.5, 1.5e3, 2E-3,)"
      R"( 1e22, 1e-22, 3.14159, 100.000, 0.000123])",
      R"([1234567890123456789, 18446744073709551615, 99999999999999999999, -0, -0.0,)"
      R"( 1.2345678901234567, 1e23, 1e-300, 5e-324])",
      std::string(" \n\t{\"long\": \"") + std::string(5000, 'x') + "\\n" + std::string(3000, 'y') +
          "\"} \r\n",
      R"({"dup": 1, "dup": 2})",
  };
  for (const auto& text : texts) {
    auto ours = parse(text);
    ASSERT_TRUE(ours) << text << ": " << ours.error().message;
    EXPECT_EQ(boost::json::serialize(*ours), boost::json::serialize(boost::json::parse(text)))
        << text;
  }
}

// What the fast reader leaves to Boost.JSON is still read, or reported, as Boost does.
TEST(JsonParseTest, RejectsWhatBoostRejects) {
  for (std::string_view text :
       {"{\"a\": \"\x01\"}", "\"\xc3\x28\"", "\"\xed\xa0\x80\"", R"("\ud800")", R"("\udc00x")",
        R"("\x")", R"({"a" 1})", R"([1,])", "[01]", "[1.]", "[.5]", "[1e]", "tru", "[", "\"abc",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"}) {
    EXPECT_FALSE(parse(text)) << text;
    EXPECT_THROW(boost::json::parse(text), std::exception) << text;
  }
}

// json::serialize writes the very bytes boost::json::serialize writes (goldens and
// same-dialect bodies depend on it), escapes anywhere in long and short strings included.
TEST(JsonSerializeTest, WritesWhatBoostWrites) {
  boost::json::object o;
  o["plain"] = "no escapes at all in this string";
  o["esc"] = "quote \" backslash \\ slash / controls \b\f\n\r\t \x01\x1f del \x7f";
  o["utf8"] = "caf\xc3\xa9 \xe2\x82\xac";
  o["short"] = "\n";
  o["empty"] = "";
  o["k\"ey\n"] = boost::json::array{1,
                                    -5,
                                    0.1,
                                    1e300,
                                    18446744073709551615u,
                                    true,
                                    nullptr,
                                    boost::json::object{},
                                    boost::json::array{}};
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += std::string(i % 17, 'x') + (i % 3 ? "\n" : "\"");
  o["long"] = long_text;
  EXPECT_EQ(json::serialize(o), boost::json::serialize(o));
  const boost::json::value v = o;
  EXPECT_EQ(json::serialize(v), boost::json::serialize(v));
  EXPECT_EQ(json::serialize(boost::json::value("x")), "\"x\"");
}

// A handler that counts what it is given, for the reader on its own.
struct CountingHandler {
  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) { return true; }
  bool on_object_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_key(std::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(std::string_view s, std::size_t, boost::system::error_code&) {
    strings.emplace_back(s);
    return true;
  }
  bool on_int64(std::int64_t, std::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, std::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  std::vector<std::string> strings;
};

bool read_fast(std::string_view text, CountingHandler& handler) {
  return detail::FastReader<CountingHandler>(handler, text).read();
}

// The fast path is taken for agent-shaped text (escaped strings, short numbers), and left for
// numbers Boost would convert differently, which basic_parser then reads.
TEST(JsonFastReaderTest, ReadsCommonTextAndGivesUpOnInexactNumbers) {
  CountingHandler handler;
  EXPECT_TRUE(
      read_fast(R"({"content": "a\nb\u00e9", "n": [1, -2, 0.5, 3e2], "ok": true})", handler));
  EXPECT_EQ(handler.strings, (std::vector<std::string>{"a\nb\xc3\xa9"}));
  for (std::string_view text : {"-0", "1234567890123456789", "1.2345678901234567", "1e23"}) {
    CountingHandler unsure;
    EXPECT_FALSE(read_fast(text, unsure)) << text;
    EXPECT_TRUE(parse(text)) << text;
  }
}

// When the fast reader gives up after some members, the visitor still sees each member once.
TEST(JsonParseTest, VisitorSeesEachMemberOnceWhenTheTextIsReadTwice) {
  std::vector<std::string> seen;
  auto r = parse_object(R"({"model": "m", "x": -0})", {},
                        [&](std::string_view key, std::string_view) { seen.emplace_back(key); });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(seen, (std::vector<std::string>{"model", "x"}));
}

}  // namespace
}  // namespace backstop::json
