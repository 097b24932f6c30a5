#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "chat/stream.h"
#include "core/json_string.h"
#include "dialects/openai/openai.h"
#include "dialects/stream_json.h"
#include "json/json.h"

namespace backstop::dialects::openai {
namespace {

namespace bj = boost::json;
using chat::FinishReason;
using chat::StreamEvent;
using core::ErrorCode;
using Kind = StreamEvent::Kind;

// The data of each "data: ...\n\n" frame an encoder wrote (its frames are single-line).
std::vector<std::string> frames(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find("\n\n", pos);
    EXPECT_NE(end, std::string_view::npos) << "unterminated frame: " << text.substr(pos);
    if (end == std::string_view::npos) break;
    std::string_view frame = text.substr(pos, end - pos);
    EXPECT_TRUE(frame.starts_with("data: ")) << frame;
    out.emplace_back(frame.substr(6));
    pos = end + 2;
  }
  return out;
}

bj::object chunk(std::string_view data) { return json::parse_object(data).value(); }

const bj::object& delta_of(const bj::object& c) {
  return c.at("choices").as_array().at(0).as_object().at("delta").as_object();
}

std::vector<StreamEvent> decode_all(const std::vector<std::string>& payloads,
                                    StreamDecoder& decoder) {
  std::vector<StreamEvent> events;
  for (const auto& p : payloads) {
    auto ok = decoder.feed(p, events);
    EXPECT_TRUE(ok) << p << ": " << ok.error().message;
  }
  return events;
}

std::vector<Kind> kinds(const std::vector<StreamEvent>& events) {
  std::vector<Kind> out;
  for (const auto& e : events) out.push_back(e.kind);
  return out;
}

#define CHUNK(fields) \
  R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",)" fields "}"

TEST(StreamDecoderTest, DecodesATextStream) {
  StreamDecoder decoder;
  auto events = decode_all(
      {CHUNK(
           R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}])"),
       CHUNK(R"("choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}])"),
       CHUNK(R"("choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}])"),
       CHUNK(R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}])"),
       CHUNK(R"("choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,)"
             R"("prompt_tokens_details":{"cached_tokens":4}})"),
       "[DONE]"},
      decoder);
  EXPECT_EQ(kinds(events), (std::vector<Kind>{Kind::kStart, Kind::kTextDelta, Kind::kTextDelta,
                                              Kind::kFinish, Kind::kUsage}));
  EXPECT_EQ(events[0].id, "chatcmpl-1");
  EXPECT_EQ(events[0].model, "m");
  EXPECT_EQ(events[1].text, "Hel");
  EXPECT_EQ(events[3].finish_reason, FinishReason::kStop);
  EXPECT_EQ(events[4].usage.input_tokens, 6);
  EXPECT_EQ(events[4].usage.cached_input_tokens, 4);
  EXPECT_EQ(events[4].usage.output_tokens, 2);
  EXPECT_TRUE(decoder.done());
}

TEST(StreamDecoderTest, TheStartEventCarriesTheSystemFingerprint) {
  StreamDecoder decoder;
  auto events =
      decode_all({CHUNK(R"("system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":)"
                        R"({"role":"assistant","content":"Hi"},"finish_reason":null}])"),
                  CHUNK(R"("system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},)"
                        R"("finish_reason":"stop"}])"),
                  "[DONE]"},
                 decoder);
  ASSERT_EQ(kinds(events), (std::vector<Kind>{Kind::kStart, Kind::kTextDelta, Kind::kFinish}));
  EXPECT_EQ(events[0].system_fingerprint, "fp_44709d6fcb");
  EXPECT_EQ(events[1].system_fingerprint, "");
}

TEST(StreamDecoderTest, DecodesParallelToolCallsAnnouncingEachOnce) {
  StreamDecoder decoder;
  auto events = decode_all(
      {CHUNK(
           R"("choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[)"
           R"({"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}}])"),
       CHUNK(
           R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}])"),
       // Some servers repeat the id on every fragment.
       CHUNK(
           R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"arguments":"\"Paris\"}"}}]}}])"),
       CHUNK(
           R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":"{}"}}]}}])"),
       CHUNK(R"("choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}])")},
      decoder);
  EXPECT_EQ(kinds(events),
            (std::vector<Kind>{Kind::kStart, Kind::kToolCallStart, Kind::kToolCallDelta,
                               Kind::kToolCallDelta, Kind::kToolCallStart, Kind::kToolCallDelta,
                               Kind::kFinish}));
  EXPECT_EQ(events[1].index, 0);
  EXPECT_EQ(events[1].tool_call.id, "call_a");
  EXPECT_EQ(events[1].tool_call.name, "weather");
  EXPECT_EQ(events[3].text, "\"Paris\"}");
  EXPECT_EQ(events[4].index, 1);
  EXPECT_EQ(events[4].tool_call.name, "time");
  EXPECT_EQ(events[5].text, "{}");
  EXPECT_EQ(events[6].finish_reason, FinishReason::kToolCalls);
  EXPECT_FALSE(decoder.done());
}

TEST(StreamDecoderTest, ReadsReasoningUnderEitherName) {
  StreamDecoder decoder;
  auto events = decode_all({CHUNK(R"("choices":[{"index":0,"delta":{"reasoning_content":"a"}}])"),
                            CHUNK(R"("choices":[{"index":0,"delta":{"reasoning":"b"}}])")},
                           decoder);
  ASSERT_EQ(kinds(events),
            (std::vector<Kind>{Kind::kStart, Kind::kReasoningDelta, Kind::kReasoningDelta}));
  EXPECT_EQ(events[1].text, "a");
  EXPECT_EQ(events[2].text, "b");
}

TEST(StreamDecoderTest, ReadsDeepSeekCacheHits) {
  StreamDecoder decoder;
  auto events =
      decode_all({CHUNK(R"("choices":[],"usage":{"prompt_tokens":100,"completion_tokens":5,)"
                        R"("prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":40})")},
                 decoder);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].usage.input_tokens, 40);
  EXPECT_EQ(events[1].usage.cached_input_tokens, 60);
}

TEST(StreamDecoderTest, AnErrorPayloadIsAnUpstreamError) {
  StreamDecoder decoder;
  std::vector<StreamEvent> events;
  auto result = decoder.feed(
      R"({"error":{"object":"error","message":"context too long","type":"BadRequestError","code":400}})",
      events);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kUpstream);
  EXPECT_EQ(result.error().message, "upstream stream error: context too long");
  EXPECT_EQ(result.error().upstream_status, 400);
}

TEST(StreamDecoderTest, RejectsWhatIsNotAChunk) {
  struct Bad {
    std::string data;
    std::string message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"{not json", "not a chat completion chunk: not valid JSON"},
           {"[1]", "not a chat completion chunk: the payload is an array"},
           {R"({"object":"chat.completion","choices":[]})",
            "not a chat completion chunk: `object` is \"chat.completion\""},
           {R"({"choices":{}})", "not a chat completion chunk: `choices` is not an array"},
           {R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":99999}]}}]})",
            "not a chat completion chunk: `delta.tool_calls[].index` is 99999"},
       }) {
    StreamDecoder decoder;
    std::vector<StreamEvent> events;
    auto result = decoder.feed(bad.data, events);
    ASSERT_FALSE(result) << bad.data;
    EXPECT_EQ(result.error().code, ErrorCode::kBadResponse) << bad.data;
    EXPECT_TRUE(result.error().message.starts_with(bad.message)) << result.error().message;
  }
}

TEST(StreamDecoderTest, AFinishReasonCompletesTheAnswerBeforeDone) {
  StreamDecoder decoder;
  decode_all({CHUNK(R"("choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}])")},
             decoder);
  EXPECT_FALSE(decoder.complete());
  decode_all({CHUNK(R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}])")}, decoder);
  EXPECT_TRUE(decoder.complete());
  EXPECT_FALSE(decoder.done());  // the usage chunk and [DONE] may still come
  decode_all({"[DONE]"}, decoder);
  EXPECT_TRUE(decoder.done());
}

TEST(StreamDecoderTest, AChunkThatDoesNotDecodeLeavesNoTrace) {
  StreamDecoder decoder;
  std::vector<StreamEvent> events;
  // The first chunk would start the answer and a tool call before failing on its finish.
  auto result =
      decoder.feed(CHUNK(R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a",)"
                         R"("function":{"name":"f"}},{"index":-1}]},"finish_reason":"stop"}])"),
                   events);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kBadResponse);
  EXPECT_TRUE(events.empty());
  EXPECT_FALSE(decoder.complete());
  // The next good chunk starts the answer and announces the call as if the first never came.
  auto events2 =
      decode_all({CHUNK(R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a",)"
                        R"("function":{"name":"f","arguments":"{}"}}]}}])")},
                 decoder);
  EXPECT_EQ(kinds(events2),
            (std::vector<Kind>{Kind::kStart, Kind::kToolCallStart, Kind::kToolCallDelta}));
}

TEST(StreamEncoderTest, EncodesTextWithTheRoleOnTheFirstChunk) {
  StreamEncoder encoder("served", true);
  std::string out = encoder.encode(chat::start_event("chatcmpl-up", "upstream-model"));
  EXPECT_EQ(out, "");
  out += encoder.encode(chat::text_event("Hel"));
  out += encoder.encode(chat::text_event("lo"));
  out += encoder.encode(chat::finish_event(FinishReason::kStop));
  chat::Usage usage;
  usage.input_tokens = 6;
  usage.cached_input_tokens = 4;
  usage.output_tokens = 2;
  out += encoder.encode(chat::usage_event(usage));
  out += encoder.finish();
  auto data = frames(out);
  ASSERT_EQ(data.size(), 5u) << out;
  auto first = chunk(data[0]);
  EXPECT_EQ(first.at("id"), "chatcmpl-up");
  EXPECT_EQ(first.at("object"), "chat.completion.chunk");
  EXPECT_EQ(first.at("model"), "served");
  EXPECT_EQ(
      bj::serialize(first.at("choices")),
      R"([{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}])");
  EXPECT_EQ(bj::serialize(delta_of(chunk(data[1]))), R"({"content":"lo"})");
  auto last = chunk(data[2]);
  EXPECT_EQ(bj::serialize(last.at("choices")),
            R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}])");
  auto usage_chunk = chunk(data[3]);
  EXPECT_EQ(bj::serialize(usage_chunk.at("choices")), "[]");
  EXPECT_EQ(
      bj::serialize(usage_chunk.at("usage")),
      R"({"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}})");
  EXPECT_EQ(data[4], "[DONE]");
  // Every chunk carries the same id and created.
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(chunk(data[i]).at("id"), first.at("id"));
    EXPECT_EQ(chunk(data[i]).at("created"), first.at("created"));
  }
}

TEST(StreamEncoderTest, EncodesToolCallsAsTheSdkAssemblesThem) {
  StreamEncoder encoder("", false);
  std::string out = encoder.encode(chat::start_event("", "m"));
  out += encoder.encode(chat::tool_start_event(0, "call_a", "weather"));
  out += encoder.encode(chat::tool_delta_event(0, R"({"city":"Paris"})"));
  out += encoder.encode(chat::tool_start_event(1, "", "time"));
  out += encoder.encode(chat::finish_event(FinishReason::kToolCalls));
  out += encoder.finish();
  auto data = frames(out);
  ASSERT_EQ(data.size(), 5u) << out;
  EXPECT_EQ(
      bj::serialize(delta_of(chunk(data[0]))),
      R"({"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]})");
  EXPECT_EQ(bj::serialize(delta_of(chunk(data[1]))),
            R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]})");
  auto third = chunk(data[2]);
  const auto& second = delta_of(third).at("tool_calls").as_array().at(0).as_object();
  EXPECT_EQ(second.at("index"), 1);
  EXPECT_TRUE(second.at("id").as_string().starts_with("call_"));  // generated: none was sent
  EXPECT_EQ(chunk(data[3]).at("choices").as_array()[0].as_object().at("finish_reason"),
            "tool_calls");
  EXPECT_EQ(chunk(data[0]).at("model"), "m");
  EXPECT_TRUE(chunk(data[0]).at("id").as_string().starts_with("chatcmpl-"));
  EXPECT_EQ(data[4], "[DONE]");  // no usage chunk: the client did not ask
}

TEST(StreamEncoderTest, FinishCompletesAStreamThatNeverFinished) {
  StreamEncoder encoder("m", false);
  auto data = frames(encoder.finish());
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(bj::serialize(chunk(data[0]).at("choices")),
            R"([{"index":0,"delta":{"role":"assistant"},"logprobs":null,"finish_reason":"stop"}])");
  EXPECT_EQ(data[1], "[DONE]");
}

TEST(StreamEncoderTest, EscapesText) {
  StreamEncoder encoder("m", false);
  std::string text = "quote \" backslash \\ newline \n tab \t bell \x07 é";
  auto data = frames(encoder.encode(chat::text_event(text)));
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(delta_of(chunk(data[0])).at("content").as_string(), text);
}

TEST(StreamEncoderTest, ErrorIsOneFrameWithoutDone) {
  StreamEncoder encoder("m", true);
  std::string out = encoder.error({ErrorCode::kTimeout, "upstream timed out"});
  EXPECT_EQ(out,
            "data: {\"error\":{\"message\":\"upstream timed "
            "out\",\"type\":\"server_error\",\"param\":null,"
            "\"code\":\"timeout\"}}\n\n");
}

// events -> encoder -> decoder -> assembler gives back the answer the events came from.
chat::ChatResponse round_trip(const chat::ChatResponse& response) {
  StreamEncoder encoder("", true);
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
  response.id = "chatcmpl-7";
  response.model = "deepseek";
  response.content = "Hello, \"world\"";
  response.reasoning = "thinking";
  response.usage.input_tokens = 5;
  response.usage.cached_input_tokens = 3;
  response.usage.output_tokens = 8;
  auto back = round_trip(response);
  EXPECT_EQ(back.id, response.id);
  EXPECT_EQ(back.model, response.model);
  EXPECT_EQ(back.content, response.content);
  EXPECT_EQ(back.reasoning, response.reasoning);
  EXPECT_EQ(back.finish_reason, FinishReason::kStop);
  EXPECT_EQ(back.usage.input_tokens, 5);
  EXPECT_EQ(back.usage.cached_input_tokens, 3);
  EXPECT_EQ(back.usage.output_tokens, 8);
}

TEST(StreamRoundTripTest, ParallelToolCalls) {
  chat::ChatResponse response;
  response.id = "chatcmpl-8";
  response.model = "m";
  response.tool_calls = {{"call_1", "weather", R"({"city":"Paris"})"},
                         {"call_2", "time", R"({"tz":"UTC"})"}};
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

// The shared string writer of the stream encoders: whatever the bytes, the result is JSON,
// valid UTF-8 kept as it is and anything else written as U+FFFD.
TEST(AppendQuotedTest, ReplacesInvalidUtf8) {
  std::string out;
  core::append_json_string(out,
                           "\xC3\xA9\xF0\x9F\x98\x80 \"q\"\n\x01 \xff\xC0\xAF\xED\xA0\x80\xE2\x82");
  EXPECT_EQ(out,
            "\"\xC3\xA9\xF0\x9F\x98\x80 \\\"q\\\"\\n\\u0001 "
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
            "\xEF\xBF\xBD\"");
  EXPECT_TRUE(json::parse(out));
}

}  // namespace
}  // namespace backstop::dialects::openai
