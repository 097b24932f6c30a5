#include "dialects/openai/response_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dialects/openai/openai.h"

namespace backstop::dialects::openai::detail {
namespace {

// Every field of an answer, as one line a failed comparison can show.
std::string describe(const chat::ChatResponse& r) {
  std::string out =
      "id=" + r.id + " model=" + r.model + " created=" + std::to_string(r.created) +
      " content=" + (r.content ? "\"" + *r.content + "\"" : "null") + " reasoning=" + r.reasoning +
      " finish=" + std::string(chat::to_string(r.finish_reason)) +
      " usage=" + std::to_string(r.usage.input_tokens) + "/" +
      std::to_string(r.usage.cached_input_tokens) + "/" + std::to_string(r.usage.output_tokens);
  for (const auto& call : r.tool_calls) {
    out += " call(" + call.id + "," + call.name + "," + call.arguments + ")";
  }
  return out;
}

// Shapes upstreams send: the one-pass reader takes them, and reads what the tree reader reads.
TEST(ReadPlainResponseTest, ReadsWhatTheTreeReaderReads) {
  const std::vector<std::string> bodies = {
      // vLLM with the fields it adds.
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1767225600,"model":"m",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,)"
      R"("tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather",)"
      R"("arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":)"
      R"({"arguments":"{}","name":"other"}}],"reasoning_content":null},"logprobs":null,)"
      R"("finish_reason":"tool_calls","stop_reason":null}],"usage":{"prompt_tokens":231,)"
      R"("total_tokens":262,"completion_tokens":31,"prompt_tokens_details":null},)"
      R"("system_fingerprint":"fp","kv_transfer_params":{"a":[1,{"b":[]}]}})",
      // DeepSeek: reasoning, cache hits at the top of usage, escapes in the text.
      R"({"id":"x","object":"chat.completion","model":"deepseek-v4","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"caf\u00e9 \"q\"\n","reasoning_content":)"
      R"("think \\ hard"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,)"
      R"("completion_tokens":5,"prompt_cache_hit_tokens":40,"prompt_cache_miss_tokens":60}})",
      // Newer vLLM's `reasoning`, cached_tokens, a second choice, no object, no usage.
      R"( {"choices":[{"message":{"content":"a","reasoning":"r"},"finish_reason":"length"},)"
      R"({"message":7}],"model":5,"id":["not","a","string"],"created":1.5} )",
      R"({"choices":[{"message":{"content":"b"},"finish_reason":null}],"usage":{)"
      R"("prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":4},)"
      R"("prompt_cache_hit_tokens":9}})",
      // Escaped keys, counts clamped, reasoning that is not a string.
      R"({"ch\u006fices":[{"message":{"content":"c","reasoning_content":3,"reasoning":"s"},)"
      R"("finish_reason":"content_filter"}],"usage":{"prompt_tokens":-3,)"
      R"("completion_tokens":99999999999999999999}})",
  };
  for (const std::string& body : bodies) {
    auto plain = read_plain_response(body);
    auto tree = decode_response_tree(body);
    ASSERT_TRUE(plain.has_value()) << body;
    ASSERT_TRUE(tree.has_value()) << tree.error().message;
    EXPECT_EQ(describe(*plain), describe(*tree)) << body;
  }
}

// Everything else is left to the tree reader, whose errors name what is wrong; and what the
// tree reader takes after all it reads the same through decode_response.
TEST(ReadPlainResponseTest, LeavesEverythingElseToTheTreeReader) {
  const std::vector<std::string> bodies = {
      R"({"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"f",)"
      R"("arguments":{"city":"Paris"}}}]}}]})",
      R"({"choices":[{"message":{"content":[{"type":"text","text":"a"}]}}]})",
      R"({"choices":[{"message":{"content":"a","content":"b"}}]})",
      R"({"choices":[{"message":{"content":"a"}}],"choices":[]})",
      R"({"choices":[{"finish_reason":"stop"}]})",
      R"({"choices":[]})",
      R"({"choices":[7]})",
      R"({"choices":{}})",
      R"({"object":"chat.completion.chunk","choices":[{"message":{"content":"a"}}]})",
      R"({"object":null,"choices":[{"message":{"content":"a"}}]})",
      R"({"choices":[{"message":{"tool_calls":[{"id":"c"}]}}]})",
      R"({"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]})",
      R"({"choices":[{"message":{"tool_calls":[3]}}]})",
      R"({"choices":[{"message":{"tool_calls":{}}}]})",
      R"({"choices":[{"message":{"content":"a"}}],"created":1e999})",
      R"({"choices":[{"message":{"content":"a"}}]} x)",
      R"([{"choices":[]}])",
      R"("text")",
      R"({"choices":[{"message":{"content":"a"})",
      R"({"error":{"message":"overloaded"}})",
  };
  for (const std::string& body : bodies) {
    EXPECT_FALSE(read_plain_response(body).has_value()) << body;
    auto tree = decode_response_tree(body);
    auto decoded = decode_response(body);
    ASSERT_EQ(decoded.has_value(), tree.has_value()) << body;
    if (tree) {
      EXPECT_EQ(describe(*decoded), describe(*tree)) << body;
    } else {
      EXPECT_EQ(decoded.error().message, tree.error().message) << body;
    }
  }
}

}  // namespace
}  // namespace backstop::dialects::openai::detail
