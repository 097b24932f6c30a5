#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "chat/stream.h"
#include "dialects/anthropic/anthropic.h"
#include "json/json.h"

namespace backstop::dialects::anthropic {
namespace {

namespace bj = boost::json;
using chat::FinishReason;
using chat::StreamEvent;
using core::ErrorCode;
using Kind = StreamEvent::Kind;

struct Frame {
  std::string event;
  std::string data;
};

// The frames an encoder wrote: "event: NAME\ndata: JSON\n\n" each.
std::vector<Frame> frames(std::string_view text) {
  std::vector<Frame> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find("\n\n", pos);
    EXPECT_NE(end, std::string_view::npos) << "unterminated frame: " << text.substr(pos);
    if (end == std::string_view::npos) break;
    std::string_view frame = text.substr(pos, end - pos);
    auto newline = frame.find('\n');
    EXPECT_TRUE(frame.starts_with("event: ") && newline != std::string_view::npos &&
                frame.substr(newline + 1).starts_with("data: "))
        << frame;
    if (newline == std::string_view::npos) break;
    out.push_back(
        {std::string(frame.substr(7, newline - 7)), std::string(frame.substr(newline + 7))});
    pos = end + 2;
  }
  return out;
}

std::vector<std::string> names(const std::vector<Frame>& fs) {
  std::vector<std::string> out;
  for (const auto& f : fs) out.push_back(f.event);
  return out;
}

std::string data_of(const Frame& f) { return bj::serialize(json::parse(f.data).value()); }

std::vector<StreamEvent> decode_all(const std::vector<Frame>& fs, StreamDecoder& decoder) {
  std::vector<StreamEvent> events;
  for (const auto& f : fs) {
    auto ok = decoder.feed(f.event, f.data, events);
    EXPECT_TRUE(ok) << f.event << " " << f.data << ": " << ok.error().message;
  }
  return events;
}

std::vector<Kind> kinds(const std::vector<StreamEvent>& events) {
  std::vector<Kind> out;
  for (const auto& e : events) out.push_back(e.kind);
  return out;
}

const std::vector<Frame> kToolStream = {
    {"message_start",
     R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",)"
     R"("content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":)"
     R"({"input_tokens":20,"cache_creation_input_tokens":5,"cache_read_input_tokens":30,"output_tokens":1}}})"},
    {"ping", R"({"type": "ping"})"},
    {"content_block_start",
     R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})"},
    {"content_block_delta",
     R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm."}})"},
    {"content_block_delta",
     R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}})"},
    {"content_block_stop", R"({"type":"content_block_stop","index":0})"},
    {"content_block_start",
     R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})"},
    {"content_block_delta",
     R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking."}})"},
    {"content_block_stop", R"({"type":"content_block_stop","index":1})"},
    {"content_block_start",
     R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_a","name":"weather","input":{}}})"},
    {"content_block_delta",
     R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}})"},
    {"content_block_delta",
     R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Paris\"}"}})"},
    {"content_block_stop", R"({"type":"content_block_stop","index":2})"},
    {"content_block_start",
     R"({"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_b","name":"time","input":{}}})"},
    {"content_block_delta",
     R"({"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}})"},
    {"content_block_stop", R"({"type":"content_block_stop","index":3})"},
    {"message_delta",
     R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}})"},
    {"message_stop", R"({"type":"message_stop"})"},
};

TEST(StreamDecoderTest, DecodesThinkingTextAndToolUseBlocks) {
  StreamDecoder decoder;
  auto events = decode_all(kToolStream, decoder);
  EXPECT_EQ(
      kinds(events),
      (std::vector<Kind>{Kind::kStart, Kind::kUsage, Kind::kReasoningDelta, Kind::kReasoningDelta,
                         Kind::kTextDelta, Kind::kToolCallStart, Kind::kToolCallDelta,
                         Kind::kToolCallStart, Kind::kToolCallDelta, Kind::kFinish, Kind::kUsage}));
  EXPECT_EQ(events[0].id, "msg_1");
  EXPECT_EQ(events[0].model, "claude");
  // Cache writes are a part of input tokens; cache reads are not.
  EXPECT_EQ(events[1].usage.input_tokens, 25);
  EXPECT_EQ(events[1].usage.cache_creation_input_tokens, 5);
  EXPECT_EQ(events[1].usage.cached_input_tokens, 30);
  EXPECT_EQ(events[2].text, "Hmm.");
  // The signature_delta is a reasoning event with no text.
  EXPECT_EQ(events[3].text, "");
  EXPECT_EQ(events[3].signature, "sig");
  EXPECT_EQ(events[4].text, "Checking.");
  // Tool calls are numbered among tool blocks, not among all blocks.
  EXPECT_EQ(events[5].index, 0);
  EXPECT_EQ(events[5].tool_call.id, "toolu_a");
  EXPECT_EQ(events[5].tool_call.name, "weather");
  EXPECT_EQ(events[6].index, 0);
  EXPECT_EQ(events[6].text, "{\"city\": \"Paris\"}");
  EXPECT_EQ(events[7].index, 1);
  EXPECT_EQ(events[7].tool_call.id, "toolu_b");
  EXPECT_EQ(events[9].finish_reason, FinishReason::kToolCalls);
  // The final usage merges message_delta's output with message_start's input.
  EXPECT_EQ(events[10].usage.output_tokens, 42);
  EXPECT_EQ(events[10].usage.input_tokens, 25);
  EXPECT_EQ(events[10].usage.cached_input_tokens, 30);
  EXPECT_TRUE(decoder.done());
}

TEST(StreamDecoderTest, MapsStopReasonsLikeTheNonStreamedDecoder) {
  for (auto [reason, expected] : std::vector<std::pair<std::string, FinishReason>>{
           {"end_turn", FinishReason::kStop},
           {"stop_sequence", FinishReason::kStop},
           {"max_tokens", FinishReason::kLength},
           {"tool_use", FinishReason::kToolCalls},
           {"refusal", FinishReason::kContentFilter}}) {
    StreamDecoder decoder;
    std::vector<StreamEvent> events;
    ASSERT_TRUE(decoder.feed("message_delta",
                             R"({"type":"message_delta","delta":{"stop_reason":")" + reason +
                                 R"("},"usage":{"output_tokens":1}})",
                             events));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].finish_reason, expected) << reason;
  }
}

TEST(StreamDecoderTest, KeepsTheStopSequenceThatFired) {
  StreamDecoder decoder;
  std::vector<StreamEvent> events;
  ASSERT_TRUE(decoder.feed(
      "message_delta",
      R"({"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},)"
      R"("usage":{"output_tokens":1}})",
      events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, Kind::kFinish);
  EXPECT_EQ(events[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(events[0].stop_sequence, "END");
}

TEST(StreamEncoderTest, WritesTheSignatureAndTheStopSequence) {
  StreamEncoder encoder("claude");
  std::string out = encoder.encode(chat::reasoning_event("Hmm."));
  out += encoder.encode(chat::signature_event("sig123"));
  out += encoder.encode(chat::finish_event(FinishReason::kStop, "END"));
  out += encoder.finish();
  auto fs = frames(out);
  ASSERT_EQ(names(fs),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta",
                                      "message_stop"}));
  EXPECT_EQ(
      data_of(fs[3]),
      R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig123"}})");
  EXPECT_NE(fs[5].data.find(R"("stop_reason":"stop_sequence","stop_sequence":"END")"),
            std::string::npos)
      << fs[5].data;
}

TEST(StreamDecoderTest, OnlyMessageStopCompletesTheAnswer) {
  StreamDecoder decoder;
  std::vector<StreamEvent> events;
  ASSERT_TRUE(decoder.feed("message_delta",
                           R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},)"
                           R"("usage":{"output_tokens":3}})",
                           events));
  EXPECT_FALSE(decoder.complete());  // a stop_reason alone is not the end of the stream
  ASSERT_TRUE(decoder.feed("message_stop", R"({"type":"message_stop"})", events));
  EXPECT_TRUE(decoder.complete());
}

TEST(StreamDecoderTest, TakesTheEventNameFromTheTypeWhenThereIsNoEventLine) {
  StreamDecoder decoder;
  std::vector<StreamEvent> events;
  ASSERT_TRUE(decoder.feed("", R"({"type":"message_stop"})", events));
  EXPECT_TRUE(decoder.done());
}

TEST(StreamDecoderTest, AnOverloadedErrorKeepsStatus529) {
  StreamDecoder decoder;
  std::vector<StreamEvent> events;
  auto result = decoder.feed(
      "error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
      events);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kUpstream);
  EXPECT_EQ(result.error().message, "upstream stream error: Overloaded");
  EXPECT_EQ(result.error().upstream_status, 529);

  auto other = decoder.feed(
      "error", R"({"type":"error","error":{"type":"api_error","message":"Internal"}})", events);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().upstream_status, 0);
}

TEST(StreamDecoderTest, RejectsEventsThatAreNotWhatTheySay) {
  struct Bad {
    std::string event;
    std::string data;
    std::string message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"message_start", "{oops", "not a message stream event: not valid JSON"},
           {"message_start", R"({"type":"message_stop"})",
            "not a message stream event: event `message_start` has type \"message_stop\""},
           // The event name is raw bytes: it reaches the message as valid UTF-8.
           {"a\xff", R"({"type":"a"})",
            "not a message stream event: event `a\xEF\xBF\xBD` has type \"a\""},
           {"message_start", R"({"type":"message_start"})",
            "not a message stream event: `message_start.message` is missing"},
           {"content_block_start",
            R"({"type":"content_block_start","index":-1,"content_block":{}})",
            "not a message stream event: `index` is -1"},
           {"content_block_delta",
            R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}})",
            "not a message stream event: content_block_delta for block 0, which has not started"},
       }) {
    StreamDecoder decoder;
    std::vector<StreamEvent> events;
    auto result = decoder.feed(bad.event, bad.data, events);
    ASSERT_FALSE(result) << bad.data;
    EXPECT_EQ(result.error().code, ErrorCode::kBadResponse);
    EXPECT_TRUE(result.error().message.starts_with(bad.message)) << result.error().message;
  }
}

TEST(StreamEncoderTest, EncodesTextAsOneBlock) {
  StreamEncoder encoder("served");
  std::string out = encoder.encode(chat::start_event("chatcmpl-1", "deepseek"));
  EXPECT_EQ(out, "");
  out += encoder.encode(chat::text_event("Hel"));
  out += encoder.encode(chat::text_event("lo"));
  out += encoder.encode(chat::finish_event(FinishReason::kLength));
  chat::Usage usage;
  usage.input_tokens = 10;
  usage.cached_input_tokens = 4;
  usage.output_tokens = 2;
  out += encoder.encode(chat::usage_event(usage));
  out += encoder.finish();
  auto fs = frames(out);
  EXPECT_EQ(names(fs),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta",
                                      "message_stop"}));
  ASSERT_EQ(fs.size(), 7u);
  EXPECT_EQ(
      data_of(fs[0]),
      R"({"type":"message_start","message":{"id":"chatcmpl-1","type":"message","role":"assistant",)"
      R"("content":[],"model":"served","stop_reason":null,"stop_sequence":null,"usage":)"
      R"({"input_tokens":0,"output_tokens":0,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}})");
  EXPECT_EQ(
      data_of(fs[1]),
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  EXPECT_EQ(
      data_of(fs[2]),
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}})");
  EXPECT_EQ(data_of(fs[4]), R"({"type":"content_block_stop","index":0})");
  EXPECT_EQ(
      data_of(fs[5]),
      R"({"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},)"
      R"("usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":4,"cache_creation_input_tokens":0}})");
  EXPECT_EQ(data_of(fs[6]), R"({"type":"message_stop"})");
}

TEST(StreamEncoderTest, UsageBeforeContentGoesIntoMessageStart) {
  StreamEncoder encoder("m");
  chat::Usage usage;
  usage.input_tokens = 25;
  usage.cache_creation_input_tokens = 5;
  usage.cached_input_tokens = 30;
  std::string out = encoder.encode(chat::start_event("msg_1", "claude"));
  out += encoder.encode(chat::usage_event(usage));
  auto fs = frames(out);
  ASSERT_EQ(fs.size(), 1u);
  auto message = json::parse_object(fs[0].data).value().at("message").as_object();
  EXPECT_EQ(
      bj::serialize(message.at("usage")),
      R"({"input_tokens":20,"output_tokens":0,"cache_read_input_tokens":30,"cache_creation_input_tokens":5})");
  EXPECT_EQ(message.at("id"), "msg_1");
}

TEST(StreamEncoderTest, GivesEachToolCallItsOwnBlock) {
  StreamEncoder encoder("m");
  std::string out = encoder.encode(chat::start_event("id", "m"));
  out += encoder.encode(chat::reasoning_event("Hmm."));
  out += encoder.encode(chat::text_event("Checking."));
  out += encoder.encode(chat::tool_start_event(0, "call_a", "weather"));
  out += encoder.encode(chat::tool_delta_event(0, "{\"city\":"));
  out += encoder.encode(chat::tool_delta_event(0, "\"Paris\"}"));
  out += encoder.encode(chat::tool_start_event(1, "", "time"));
  out += encoder.encode(chat::finish_event(FinishReason::kToolCalls));
  out += encoder.finish();
  auto fs = frames(out);
  ASSERT_EQ(fs.size(), 15u) << out;
  EXPECT_EQ(
      data_of(fs[1]),
      R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})");
  EXPECT_EQ(
      data_of(fs[2]),
      R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm."}})");
  EXPECT_EQ(data_of(fs[3]), R"({"type":"content_block_stop","index":0})");
  EXPECT_EQ(
      data_of(fs[4]),
      R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})");
  EXPECT_EQ(data_of(fs[6]), R"({"type":"content_block_stop","index":1})");
  EXPECT_EQ(
      data_of(fs[7]),
      R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_a","name":"weather","input":{}}})");
  EXPECT_EQ(
      data_of(fs[8]),
      R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}})");
  EXPECT_EQ(data_of(fs[10]), R"({"type":"content_block_stop","index":2})");
  auto tool_b = json::parse_object(fs[11].data).value();
  EXPECT_EQ(tool_b.at("index"), 3);
  EXPECT_TRUE(tool_b.at("content_block").at("id").as_string().starts_with("toolu_"));
  EXPECT_EQ(data_of(fs[12]), R"({"type":"content_block_stop","index":3})");
  EXPECT_EQ(json::parse_object(fs[13].data).value().at("delta").at("stop_reason"), "tool_use");
}

TEST(StreamEncoderTest, ToolCallsEndingWithStopAreToolUse) {
  StreamEncoder encoder("m");
  std::string out = encoder.encode(chat::start_event("id", "m"));
  out += encoder.encode(chat::tool_start_event(0, "call_a", "weather"));
  out += encoder.encode(chat::tool_delta_event(0, "{}"));
  out += encoder.encode(chat::finish_event(FinishReason::kStop));
  out += encoder.finish();
  auto fs = frames(out);
  ASSERT_GE(fs.size(), 2u) << out;
  EXPECT_EQ(json::parse_object(fs[fs.size() - 2].data).value().at("delta").at("stop_reason"),
            "tool_use");
}

TEST(StreamEncoderTest, FinishAloneIsAValidEmptyMessage) {
  StreamEncoder encoder("m");
  EXPECT_EQ(names(frames(encoder.finish())),
            (std::vector<std::string>{"message_start", "message_delta", "message_stop"}));
}

TEST(StreamEncoderTest, ErrorIsAnErrorEvent) {
  StreamEncoder encoder("m");
  EXPECT_EQ(encoder.error({ErrorCode::kUnavailable, "draining"}),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
            "\"message\":\"draining\"}}\n\n");
}

TEST(StreamEncoderTest, AnUpstreamOverloadIsAnOverloadedError) {
  StreamEncoder encoder("m");
  core::Error error{ErrorCode::kUpstream, "Overloaded"};
  error.upstream_status = 529;
  EXPECT_EQ(encoder.error(error),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
            "\"message\":\"Overloaded\"}}\n\n");
}

// events -> encoder -> decoder -> assembler gives back the answer the events came from.
chat::ChatResponse round_trip(const chat::ChatResponse& response) {
  StreamEncoder encoder("");
  std::string wire;
  for (const auto& e : chat::to_events(response)) wire += encoder.encode(e);
  wire += encoder.finish();
  StreamDecoder decoder;
  chat::StreamAssembler assembler;
  assembler.add(decode_all(frames(wire), decoder));
  EXPECT_TRUE(decoder.done());
  EXPECT_TRUE(assembler.finished());
  return assembler.response();
}

TEST(StreamRoundTripTest, Text) {
  chat::ChatResponse response;
  response.id = "msg_7";
  response.model = "claude";
  response.content = "Hello,\n\"world\"";
  response.reasoning = "thinking";
  response.usage.input_tokens = 25;
  response.usage.cache_creation_input_tokens = 5;
  response.usage.cached_input_tokens = 3;
  response.usage.output_tokens = 8;
  auto back = round_trip(response);
  EXPECT_EQ(back.id, response.id);
  EXPECT_EQ(back.model, response.model);
  EXPECT_EQ(back.content, response.content);
  EXPECT_EQ(back.reasoning, response.reasoning);
  EXPECT_EQ(back.finish_reason, FinishReason::kStop);
  EXPECT_EQ(back.usage.input_tokens, 25);
  EXPECT_EQ(back.usage.cache_creation_input_tokens, 5);
  EXPECT_EQ(back.usage.cached_input_tokens, 3);
  EXPECT_EQ(back.usage.output_tokens, 8);
}

TEST(StreamRoundTripTest, ParallelToolCalls) {
  chat::ChatResponse response;
  response.id = "msg_8";
  response.model = "m";
  response.tool_calls = {{"toolu_1", "weather", R"({"city":"Paris"})"},
                         {"toolu_2", "time", R"({"tz":"UTC"})"}};
  response.finish_reason = FinishReason::kToolCalls;
  auto back = round_trip(response);
  EXPECT_FALSE(back.content.has_value());
  ASSERT_EQ(back.tool_calls.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.tool_calls[i].id, response.tool_calls[i].id);
    EXPECT_EQ(back.tool_calls[i].name, response.tool_calls[i].name);
    EXPECT_EQ(back.tool_calls[i].arguments, response.tool_calls[i].arguments);
  }
  EXPECT_EQ(back.finish_reason, FinishReason::kToolCalls);
}

}  // namespace
}  // namespace backstop::dialects::anthropic
