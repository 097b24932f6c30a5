#include "chat/stream.h"

#include <gtest/gtest.h>

namespace backstop::chat {
namespace {

using Kind = StreamEvent::Kind;

StreamEvent start(std::string id, std::string model) {
  return start_event(std::move(id), std::move(model));
}
StreamEvent text(std::string t) { return text_event(std::move(t)); }
StreamEvent reasoning(std::string t) { return reasoning_event(std::move(t)); }
StreamEvent tool_start(int index, std::string id, std::string name) {
  return tool_start_event(index, std::move(id), std::move(name));
}
StreamEvent tool_delta(int index, std::string args) {
  return tool_delta_event(index, std::move(args));
}
StreamEvent finish(FinishReason reason) { return finish_event(reason); }

Usage tokens(std::int64_t input, std::int64_t cached, std::int64_t output) {
  Usage u;
  u.input_tokens = input;
  u.cached_input_tokens = cached;
  u.output_tokens = output;
  return u;
}

TEST(StreamAssemblerTest, ConcatenatesTextAndReasoning) {
  StreamAssembler assembler;
  assembler.add({start("chatcmpl-1", "deepseek"), reasoning("Think"), reasoning("ing."),
                 text("Hel"), text("lo"), finish(FinishReason::kStop)});
  const auto& r = assembler.response();
  EXPECT_EQ(r.id, "chatcmpl-1");
  EXPECT_EQ(r.model, "deepseek");
  EXPECT_EQ(r.reasoning, "Thinking.");
  EXPECT_EQ(r.content, "Hello");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_TRUE(assembler.finished());
}

TEST(StreamAssemblerTest, TakeHandsOverTheAnswer) {
  StreamAssembler assembler;
  assembler.add({start("chatcmpl-1", "deepseek"), text("Hello"), finish(FinishReason::kStop)});
  ChatResponse taken = assembler.take();
  EXPECT_EQ(taken.id, "chatcmpl-1");
  EXPECT_EQ(taken.content, "Hello");
}

TEST(StreamAssemblerTest, KeepsTheSignatureAndTheStopSequence) {
  StreamAssembler assembler;
  assembler.add({reasoning_event("a"), signature_event("sig123"), reasoning_event("b"),
                 finish_event(FinishReason::kStop, "END")});
  EXPECT_EQ(assembler.response().reasoning, "ab");
  EXPECT_EQ(assembler.response().reasoning_signature, "sig123");
  EXPECT_EQ(assembler.response().stop_sequence, "END");
}

TEST(ToEventsTest, CarriesTheSignatureAndTheStopSequence) {
  ChatResponse response;
  response.reasoning = "hmm";
  response.reasoning_signature = "sig123";
  response.stop_sequence = "END";
  auto events = to_events(response);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[1].text, "hmm");
  EXPECT_EQ(events[2].kind, Kind::kReasoningDelta);
  EXPECT_EQ(events[2].text, "");
  EXPECT_EQ(events[2].signature, "sig123");
  EXPECT_EQ(events[3].kind, Kind::kFinish);
  EXPECT_EQ(events[3].stop_sequence, "END");
}

TEST(StreamAssemblerTest, ContentStaysAbsentWithoutTextDeltas) {
  StreamAssembler assembler;
  assembler.add({start("id", "m"), tool_start(0, "call_1", "f"), tool_delta(0, "{}")});
  EXPECT_FALSE(assembler.response().content.has_value());
  EXPECT_FALSE(assembler.finished());
}

TEST(StreamAssemblerTest, KeysInterleavedToolCallsByStreamIndex) {
  StreamAssembler assembler;
  assembler.add({tool_start(0, "call_a", "weather"), tool_delta(0, "{\"city\":"),
                 tool_start(1, "call_b", "time"), tool_delta(1, "{\"tz\":\"UTC\"}"),
                 tool_delta(0, "\"Paris\"}"), finish(FinishReason::kToolCalls)});
  const auto& calls = assembler.response().tool_calls;
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].id, "call_a");
  EXPECT_EQ(calls[0].name, "weather");
  EXPECT_EQ(calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(calls[1].id, "call_b");
  EXPECT_EQ(calls[1].name, "time");
  EXPECT_EQ(calls[1].arguments, "{\"tz\":\"UTC\"}");
  EXPECT_EQ(assembler.response().finish_reason, FinishReason::kToolCalls);
}

TEST(StreamAssemblerTest, ADeltaBeforeItsStartStillCounts) {
  StreamAssembler assembler;
  assembler.add({tool_delta(3, "{\"a\""), tool_start(3, "call_x", "f"), tool_delta(3, ":1}")});
  ASSERT_EQ(assembler.response().tool_calls.size(), 1u);
  EXPECT_EQ(assembler.response().tool_calls[0].id, "call_x");
  EXPECT_EQ(assembler.response().tool_calls[0].arguments, "{\"a\":1}");
}

TEST(StreamAssemblerTest, LaterUsageOverwritesOnlyReportedFields) {
  StreamAssembler assembler;
  assembler.add(usage_event(tokens(10, 4, 1)));
  assembler.add(usage_event(tokens(0, 0, 25)));
  const auto& u = assembler.response().usage;
  EXPECT_EQ(u.input_tokens, 10);
  EXPECT_EQ(u.cached_input_tokens, 4);
  EXPECT_EQ(u.output_tokens, 25);
}

TEST(ToEventsTest, StreamsAWholeAnswerInOrder) {
  ChatResponse response;
  response.id = "msg_1";
  response.model = "claude";
  response.reasoning = "hmm";
  response.content = "Let me check.";
  response.tool_calls = {{"toolu_1", "weather", "{\"city\":\"Paris\"}"}, {"toolu_2", "noop", ""}};
  response.finish_reason = FinishReason::kToolCalls;
  response.usage = tokens(7, 0, 9);
  auto events = to_events(response);
  std::vector<Kind> kinds;
  for (const auto& e : events) kinds.push_back(e.kind);
  EXPECT_EQ(kinds, (std::vector<Kind>{Kind::kStart, Kind::kReasoningDelta, Kind::kTextDelta,
                                      Kind::kToolCallStart, Kind::kToolCallDelta,
                                      Kind::kToolCallStart, Kind::kFinish, Kind::kUsage}));
  EXPECT_EQ(events[0].id, "msg_1");
  EXPECT_EQ(events[3].tool_call.name, "weather");
  EXPECT_EQ(events[5].index, 1);
  EXPECT_EQ(events[5].tool_call.id, "toolu_2");
}

TEST(ToEventsTest, AssemblesBackToTheSameAnswer) {
  ChatResponse response;
  response.id = "chatcmpl-9";
  response.model = "m";
  response.content = "Hi";
  response.tool_calls = {{"call_1", "a", "{\"x\":1}"}, {"call_2", "b", "{}"}};
  response.finish_reason = FinishReason::kLength;
  response.usage = tokens(3, 2, 5);
  StreamAssembler assembler;
  assembler.add(to_events(response));
  const auto& r = assembler.response();
  EXPECT_EQ(r.id, response.id);
  EXPECT_EQ(r.model, response.model);
  EXPECT_EQ(r.content, response.content);
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[1].id, "call_2");
  EXPECT_EQ(r.tool_calls[1].arguments, "{}");
  EXPECT_EQ(r.finish_reason, FinishReason::kLength);
  EXPECT_EQ(r.usage.cached_input_tokens, 2);
  EXPECT_EQ(r.usage.output_tokens, 5);
  EXPECT_TRUE(assembler.finished());
}

TEST(ToEventsTest, NoTextEventForAnAnswerWithoutContent) {
  ChatResponse response;
  response.tool_calls = {{"call_1", "a", "{}"}};
  for (const auto& e : to_events(response)) EXPECT_NE(e.kind, Kind::kTextDelta);
}

}  // namespace
}  // namespace backstop::chat
