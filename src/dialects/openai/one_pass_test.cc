// The one-pass readers of OpenAI requests and answers, against the tree readers they stand
// in for.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <string>
#include <vector>

#include "dialects/openai/openai.h"
#include "dialects/openai/request_reader.h"
#include "dialects/openai/response_reader.h"

namespace backstop::dialects::openai::detail {
namespace {

std::string describe(const chat::ChatRequest& r) {
  std::string out = "model=" + r.model;
  for (const auto& m : r.messages) {
    out += " | role=" + std::to_string(static_cast<int>(m.role)) + " name=" + m.name +
           " call_id=" + m.tool_call_id + " reasoning=" + m.reasoning;
    for (const auto& part : m.content) {
      out += " part(" + std::to_string(static_cast<int>(part.kind)) + "," + part.text + "," +
             part.image_url + ")";
    }
    for (const auto& call : m.tool_calls) {
      out += " call(" + call.id + "," + call.name + "," + call.arguments + ")";
    }
  }
  for (const auto& tool : r.tools) {
    out += " | tool(" + tool.name + "," + tool.description + "," +
           boost::json::serialize(tool.parameters) + ")";
  }
  out += " | choice=" + std::to_string(static_cast<int>(r.tool_choice.kind)) + r.tool_choice.name;
  out += " format=" + std::to_string(static_cast<int>(r.response_format.kind)) +
         r.response_format.name + boost::json::serialize(r.response_format.schema);
  out += " max=" + (r.max_tokens ? std::to_string(*r.max_tokens) : "-");
  out += " t=" + (r.temperature ? std::to_string(*r.temperature) : "-");
  out += " p=" + (r.top_p ? std::to_string(*r.top_p) : "-");
  for (const auto& stop : r.stop) out += " stop=" + stop;
  out += " parallel=" + (r.parallel_tool_calls ? std::to_string(*r.parallel_tool_calls) : "-");
  out += " stream=" + std::to_string(r.stream) + std::to_string(r.include_usage);
  out += " metadata=" + boost::json::serialize(r.metadata);
  const chat::OriginalBody& b = r.original_body;
  out += " body=" + std::to_string(b.text.size()) + "," + std::to_string(b.model_begin) + "," +
         std::to_string(b.model_end) + "," + std::to_string(b.first_member) + "," +
         std::to_string(b.stream) + std::to_string(b.has_stream_options);
  out += " tree=" + boost::json::serialize(r.original);
  return out;
}

// Every field of an answer, as one line a failed comparison can show.
std::string describe(const chat::ChatResponse& r) {
  std::string out = "id=" + r.id + " model=" + r.model + " created=" + std::to_string(r.created) +
                    " content=" + (r.content ? "\"" + *r.content + "\"" : "null") +
                    " reasoning=" + r.reasoning +
                    " finish=" + std::string(chat::to_string(r.finish_reason)) +
                    " usage=" + std::to_string(r.usage.input_tokens) + "/" +
                    std::to_string(r.usage.cached_input_tokens) + "/" +
                    std::to_string(r.usage.output_tokens) + " fingerprint=" + r.system_fingerprint;
  for (const auto& call : r.tool_calls) {
    out += " call(" + call.id + "," + call.name + "," + call.arguments + ")";
  }
  return out;
}

// Each body is not taken by the one-pass reader `plain`; and what the tree reader `tree` makes
// of it, `decode` (which tries `plain` first) makes too: the same value, or the same error.
template <typename Plain, typename Tree, typename Decode>
void expect_left_to_tree(const std::vector<std::string>& bodies, Plain plain, Tree tree,
                         Decode decode) {
  for (const std::string& body : bodies) {
    EXPECT_FALSE(plain(body).has_value()) << body;
    auto from_tree = tree(body);
    auto decoded = decode(body);
    ASSERT_EQ(decoded.has_value(), from_tree.has_value()) << body;
    if (from_tree) {
      EXPECT_EQ(describe(*decoded), describe(*from_tree)) << body;
    } else {
      EXPECT_EQ(decoded.error().message, from_tree.error().message) << body;
    }
  }
}

// Requests clients send: the one-pass reader takes them, and reads what the tree reader reads.
TEST(ReadPlainRequestTest, ReadsWhatTheTreeReaderReads) {
  const std::vector<std::string> bodies = {
      // The benchmark's agentic request.
      R"({"model":"agentic","messages":[{"role":"system","content":"Use the tools."},)"
      R"({"role":"user","content":"Weather in Paris?"}],"tools":[{"type":"function",)"
      R"("function":{"name":"get_weather","description":"Weather of a city.","parameters":)"
      R"({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer",)"
      R"("minimum":1,"maximum":7},"ratio":{"type":"number","maximum":0.5e1}},)"
      R"("required":["city"],"additionalProperties":false}}}],"tool_choice":"auto",)"
      R"("temperature":0.2,"max_tokens":512})",
      // Every modelled field, unknown ones at every level, escapes and spacing.
      " {\"seed\": 3, \"model\" : \"m\", \"messages\": [\n"
      R"({"role":"developer","content":[{"type":"text","text":"be \"brief\"","cache":{"x":[1]}}]},)"
      R"({"role":"user","name":"ann","content":[{"type":"image_url","image_url":{"url":)"
      R"("data:image/png;base64,AA==","detail":"low"}},{"type":"text","text":"and?"}],)"
      R"("tool_calls":[{"id":"u","function":{"name":"f","arguments":"{}"}}]},)"
      R"({"role":"assistant","content":null,"reasoning_content":"hm","tool_calls":[{"id":"c1",)"
      R"("type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},)"
      R"({"role":"tool","tool_call_id":"c1","content":"42"},)"
      R"({"role":"assistant","content":"","tool_calls":null}],)"
      R"("tools":[{"function":{"name":"f","description":null,"parameters":null,"strict":true}},)"
      R"({"type":"function","function":{"name":"g","parameters":{"type":"object","properties":)"
      R"({"n":{"enum":[null,true,-1,18446744073709551615,"\u00e9"]}}}}}],)"
      R"("tool_choice":{"type":"function","function":{"name":"g"}},)"
      R"("response_format":{"type":"json_schema","json_schema":{"name":"s","strict":true,)"
      R"("schema":{"type":"object"}}},"stop":["END","\n\n"],"max_tokens":9,)"
      R"("max_completion_tokens":20,"temperature":1,"top_p":1e0,"stream":true,)"
      R"("stream_options":{"include_usage":true},"parallel_tool_calls":false,"user":"u-1",)"
      R"("logit_bias":{"50256":-100},"n":1} )",
      // Nulls where the tree reader takes them as absent; a string stop; json_object.
      R"({"model":"m","messages":[{"role":"user","content":"hi","tool_call_id":null}],)"
      R"("tools":null,"tool_choice":null,"stop":"x","max_tokens":null,"temperature":null,)"
      R"("top_p":null,"stream":null,"stream_options":null,"parallel_tool_calls":null,)"
      R"("user":null,"response_format":{"type":"json_object"}})",
      R"({"model":"m","messages":[{"role":"user","content":[]}],"stream":false,)"
      R"("stream_options":{"include_usage":null},"response_format":{"type":"text",)"
      R"("json_schema":{"name":"unused"}}})",
  };
  for (const std::string& body : bodies) {
    auto plain = read_plain_request(body);
    auto tree = decode_request_tree(body);
    ASSERT_TRUE(plain.has_value()) << body;
    ASSERT_TRUE(tree.has_value()) << tree.error().message;
    EXPECT_EQ(describe(*plain), describe(*tree)) << body;
    EXPECT_EQ(encode_request(*plain, "up"), encode_request(*tree, "up")) << body;
  }
}

// Everything else is left to the tree reader, whose errors name what is wrong; and what the
// tree reader takes after all it reads the same through decode_request.
TEST(ReadPlainRequestTest, LeavesEverythingElseToTheTreeReader) {
  const std::string user = R"("messages":[{"role":"user","content":"hi"}])";
  const std::vector<std::string> bodies = {
      R"({"mod\u0065l":"m",)" + user + "}",
      R"({"model":"m","model":"n",)" + user + "}",
      R"({"model":"m\u00e9",)" + user + R"(,"model":"n"})",
      R"({"model":5,)" + user + "}",
      R"({"model":"m"})",
      R"({"model":"m","messages":[]})",
      R"({"model":"m","messages":{}})",
      R"({"model":"m","messages":[{"content":"hi"}]})",
      R"({"model":"m","messages":[{"role":"bot","content":"hi"}]})",
      R"({"model":"m","messages":[{"role":"user","content":{"text":"hi"}}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"audio"}]}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":"x"}]}]})",
      R"({"model":"m","messages":[{"role":"user"}]})",
      R"({"model":"m","messages":[{"role":"assistant","content":null}]})",
      R"({"model":"m","messages":[{"role":"tool","content":"x"}]})",
      R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c",)"
      R"("function":{"name":"f","arguments":{"a":1}}}]}]})",
      R"({"model":"m","messages":[{"role":"assistant","content":"x","tool_calls":[{"id":"c"}]}]})",
      R"({"model":"m",)" + user + R"(,"tools":[{"type":"function","function":{"name":""}}]})",
      R"({"model":"m",)" + user + R"(,"tools":[{"type":"custom","function":{"name":"f"}}]})",
      R"({"model":"m",)" + user + R"(,"tools":[{"type":"function"}]})",
      R"({"model":"m",)" + user + R"(,"tools":[{"function":{"name":"f","parameters":"{}"}}]})",
      R"({"model":"m",)" + user +
          R"(,"tools":[{"function":{"name":"f","parameters":{"maximum":1e999}}}]})",
      R"({"model":"m",)" + user + R"(,"tool_choice":{"type":"function","function":{"name":"g"}}})",
      R"({"model":"m",)" + user + R"(,"tool_choice":"any"})",
      R"({"model":"m",)" + user + R"(,"response_format":{"type":"json_schema"}})",
      R"({"model":"m",)" + user + R"(,"response_format":{"json_schema":{"name":"s"}}})",
      R"({"model":"m",)" + user + R"(,"max_tokens":0})",
      R"({"model":"m",)" + user + R"(,"max_tokens":1.5})",
      R"({"model":"m",)" + user + R"(,"max_tokens":8.0})",
      R"({"model":"m",)" + user + R"(,"temperature":"hot"})",
      R"({"model":"m",)" + user + R"(,"stream":"yes"})",
      R"({"model":"m",)" + user + R"(,"stream":true,"stream":true})",
      R"({"model":"m",)" + user + R"(,"stop":["a",1]})",
      R"({"model":"m",)" + user + R"(,"user":7})",
      R"({"model":"m",)" + user + "} x",
      R"([{"model":"m"}])",
      R"({"model":"m",)" + user,
  };
  expect_left_to_tree(bodies, read_plain_request, decode_request_tree, decode_request);
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
  expect_left_to_tree(bodies, read_plain_response, decode_response_tree, decode_response);
}

}  // namespace
}  // namespace backstop::dialects::openai::detail
