#include "http/sse.h"

#include <gtest/gtest.h>

namespace backstop::http {

void PrintTo(const SseEvent& e, std::ostream* out) {
  *out << "{event: \"" << e.event << "\", data: \"" << e.data << "\"}";
}

namespace {

std::vector<SseEvent> parse_all(std::string_view bytes) {
  SseParser parser;
  std::vector<SseEvent> out;
  parser.feed(bytes, out);
  return out;
}

TEST(SseParserTest, ParsesNamedAndUnnamedEvents) {
  auto events = parse_all("event: message_start\ndata: {\"a\":1}\n\ndata: [DONE]\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], (SseEvent{"message_start", "{\"a\":1}"}));
  EXPECT_EQ(events[1], (SseEvent{"", "[DONE]"}));
}

TEST(SseParserTest, JoinsDataLinesWithNewlines) {
  auto events = parse_all("data: one\ndata: two\ndata:\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "one\ntwo\n");
}

TEST(SseParserTest, StripsOnlyOneLeadingSpace) {
  auto events = parse_all("data:no-space\n\ndata:  two-spaces\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, "no-space");
  EXPECT_EQ(events[1].data, " two-spaces");
}

TEST(SseParserTest, DataWithoutColonIsEmptyData) {
  auto events = parse_all("data\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "");
}

TEST(SseParserTest, IgnoresCommentsIdRetryAndUnknownFields) {
  auto events = parse_all(": keep-alive\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], (SseEvent{"", "x"}));
}

TEST(SseParserTest, DoesNotDispatchAnEventWithoutData) {
  // The event name of a data-less block does not leak into the next event.
  auto events = parse_all("event: ping\n\n: comment\n\ndata: y\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], (SseEvent{"", "y"}));
}

TEST(SseParserTest, AcceptsCrLfAndCrLineEnds) {
  auto events = parse_all("event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], (SseEvent{"a", "1"}));
  EXPECT_EQ(events[1], (SseEvent{"b", "2"}));
}

TEST(SseParserTest, HoldsAnIncompleteEventUntilItsBlankLine) {
  SseParser parser;
  std::vector<SseEvent> out;
  parser.feed("data: partial", out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(parser.pending(), 13u);
  parser.feed("\n", out);
  EXPECT_TRUE(out.empty());
  parser.feed("\n", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "partial");
  EXPECT_EQ(parser.pending(), 0u);
}

TEST(SseParserTest, SameEventsWhateverTheSplitPoints) {
  const std::string stream =
      ": comment\r\nevent: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n"
      "data: first\ndata: second\n\nevent: x\rdata\r\rdata:  spaced\n\ndata: [DONE]\n\n";
  const std::vector<SseEvent> expected = {{"message_start", "{\"type\":\"message_start\"}"},
                                          {"", "first\nsecond"},
                                          {"x", ""},
                                          {"", " spaced"},
                                          {"", "[DONE]"}};
  ASSERT_EQ(parse_all(stream), expected);
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    for (std::size_t j = i; j <= stream.size(); j += 7) {
      SseParser parser;
      std::vector<SseEvent> out;
      parser.feed(std::string_view(stream).substr(0, i), out);
      parser.feed(std::string_view(stream).substr(i, j - i), out);
      parser.feed(std::string_view(stream).substr(j), out);
      ASSERT_EQ(out, expected) << "split at " << i << " and " << j;
    }
  }
  // One byte at a time.
  SseParser parser;
  std::vector<SseEvent> out;
  for (char c : stream) parser.feed(std::string_view(&c, 1), out);
  EXPECT_EQ(out, expected);
}

TEST(SseFrameTest, FormatsNamedAndUnnamedFrames) {
  EXPECT_EQ(sse_frame("ping", "{\"type\":\"ping\"}"), "event: ping\ndata: {\"type\":\"ping\"}\n\n");
  EXPECT_EQ(sse_frame("", "[DONE]"), "data: [DONE]\n\n");
}

TEST(SseFrameTest, SplitsMultiLineDataIntoDataLines) {
  EXPECT_EQ(sse_frame("", "a\nb\r\nc"), "data: a\ndata: b\ndata: c\n\n");
  auto events = parse_all(sse_frame("e", "a\nb\n"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], (SseEvent{"e", "a\nb\n"}));
}

}  // namespace
}  // namespace backstop::http
