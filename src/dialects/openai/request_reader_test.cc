#include "dialects/openai/request_reader.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <string>
#include <vector>

#include "dialects/openai/openai.h"

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
  for (const std::string& body : bodies) {
    EXPECT_FALSE(read_plain_request(body).has_value()) << body;
    auto tree = decode_request_tree(body);
    auto decoded = decode_request(body);
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
