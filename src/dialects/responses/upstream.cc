// The Responses API as a target (`kind: openai_responses`): requests sent to it, and its
// answers and event streams read back.
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include "chat/stream.h"
#include "dialects/decode_json.h"
#include "dialects/responses/responses.h"
#include "json/json.h"

namespace backstop::dialects::responses {
namespace {

namespace bj = boost::json;
using chat::ChatRequest;
using chat::ChatResponse;
using chat::ContentPart;
using chat::FinishReason;
using chat::Message;
using chat::Role;

std::unexpected<core::Error> bad_response(std::string message) {
  return std::unexpected(core::Error{core::ErrorCode::kBadResponse, std::move(message)});
}

bj::array content_parts(const Message& message, bool output) {
  bj::array parts;
  for (const ContentPart& part : message.content) {
    switch (part.kind) {
      case ContentPart::Kind::kText:
        parts.push_back({{"type", output ? "output_text" : "input_text"}, {"text", part.text}});
        break;
      case ContentPart::Kind::kImage:
        parts.push_back({{"type", "input_image"}, {"image_url", part.image_url}});
        break;
      case ContentPart::Kind::kFile:
        parts.push_back(
            {{"type", "input_file"}, {"filename", part.text}, {"file_data", part.image_url}});
        break;
    }
  }
  return parts;
}

// The conversation as `instructions` (the system turns) and `input` items.
void encode_input(const ChatRequest& request, bj::object& out) {
  std::string instructions;
  bj::array input;
  for (const Message& message : request.messages) {
    switch (message.role) {
      case Role::kSystem:
        if (!instructions.empty()) instructions += "\n\n";
        instructions += message.text();
        break;
      case Role::kUser:
        input.push_back(
            {{"type", "message"}, {"role", "user"}, {"content", content_parts(message, false)}});
        break;
      case Role::kAssistant:
        if (!message.content.empty()) {
          input.push_back({{"type", "message"},
                           {"role", "assistant"},
                           {"content", content_parts(message, true)}});
        }
        for (const chat::ToolCall& call : message.tool_calls) {
          input.push_back({{"type", "function_call"},
                           {"call_id", call.id},
                           {"name", call.name},
                           {"arguments", call.arguments}});
        }
        break;
      case Role::kTool:
        input.push_back({{"type", "function_call_output"},
                         {"call_id", message.tool_call_id},
                         {"output", message.text()}});
        break;
    }
  }
  if (!instructions.empty()) out["instructions"] = instructions;
  out["input"] = std::move(input);
}

void encode_tools(const ChatRequest& request, bj::object& out) {
  if (request.tools.empty()) return;
  bj::array tools;
  for (const chat::Tool& tool : request.tools) {
    bj::object t{{"type", "function"}, {"name", tool.name}};
    if (!tool.description.empty()) t["description"] = tool.description;
    if (!tool.parameters.is_null()) t["parameters"] = tool.parameters;
    tools.push_back(std::move(t));
  }
  out["tools"] = std::move(tools);
  switch (request.tool_choice.kind) {
    case chat::ToolChoice::Kind::kUnset:
      break;
    case chat::ToolChoice::Kind::kAuto:
      out["tool_choice"] = "auto";
      break;
    case chat::ToolChoice::Kind::kNone:
      out["tool_choice"] = "none";
      break;
    case chat::ToolChoice::Kind::kRequired:
      out["tool_choice"] = "required";
      break;
    case chat::ToolChoice::Kind::kNamed:
      out["tool_choice"] = {{"type", "function"}, {"name", request.tool_choice.name}};
      break;
  }
}

void encode_format(const ChatRequest& request, bj::object& out) {
  const chat::ResponseFormat& format = request.response_format;
  switch (format.kind) {
    case chat::ResponseFormat::Kind::kUnset:
      return;
    case chat::ResponseFormat::Kind::kText:
      out["text"] = {{"format", {{"type", "text"}}}};
      return;
    case chat::ResponseFormat::Kind::kJsonObject:
      out["text"] = {{"format", {{"type", "json_object"}}}};
      return;
    case chat::ResponseFormat::Kind::kJsonSchema:
      out["text"] = {{"format",
                      {{"type", "json_schema"},
                       {"name", format.name.empty() ? std::string("answer") : format.name},
                       {"schema", format.schema},
                       {"strict", format.strict}}}};
      return;
  }
}

bj::object encode_fields(const ChatRequest& request, std::string_view model) {
  bj::object out{{"model", model}};
  encode_input(request, out);
  encode_tools(request, out);
  encode_format(request, out);
  if (request.max_tokens) out["max_output_tokens"] = *request.max_tokens;
  if (request.temperature) out["temperature"] = *request.temperature;
  if (request.top_p) out["top_p"] = *request.top_p;
  if (request.parallel_tool_calls) out["parallel_tool_calls"] = *request.parallel_tool_calls;
  if (!request.reasoning_effort.empty()) {
    out["reasoning"] = {{"effort", request.reasoning_effort}};
  }
  out["store"] = false;
  if (request.stream) out["stream"] = true;
  return out;
}

// Token counts: the API's input_tokens include cache reads; backstop's exclude them.
chat::Usage read_usage(const bj::object& usage) {
  chat::Usage out;
  const auto count = [](const bj::object& o, std::string_view key) -> std::int64_t {
    const bj::value* v = o.if_contains(key);
    return v != nullptr && v->is_int64() ? std::max<std::int64_t>(0, v->get_int64()) : 0;
  };
  const std::int64_t input = count(usage, "input_tokens");
  if (const bj::value* details = usage.if_contains("input_tokens_details");
      details != nullptr && details->is_object()) {
    out.cached_input_tokens = std::min(input, count(details->get_object(), "cached_tokens"));
  }
  out.input_tokens = input - out.cached_input_tokens;
  out.output_tokens = count(usage, "output_tokens");
  return out;
}

// What ended the answer, from `status` and `incomplete_details`.
FinishReason finish_of(const bj::object& response, bool called) {
  if (string_or_empty(response, "status") == "incomplete") {
    const bj::value* details = response.if_contains("incomplete_details");
    if (details != nullptr && details->is_object() &&
        string_or_empty(details->get_object(), "reason") == "content_filter") {
      return FinishReason::kContentFilter;
    }
    return FinishReason::kLength;
  }
  return called ? FinishReason::kToolCalls : FinishReason::kStop;
}

// The text of an item's parts of the given types, concatenated.
std::string joined_text(const bj::object& item, std::string_view key,
                        std::initializer_list<std::string_view> types) {
  std::string out;
  const bj::value* parts = item.if_contains(key);
  if (parts == nullptr || !parts->is_array()) return out;
  for (const bj::value& part : parts->get_array()) {
    if (!part.is_object()) continue;
    const bj::object& p = part.get_object();
    const std::string_view type = string_or_empty(p, "type");
    if (std::find(types.begin(), types.end(), type) == types.end()) continue;
    out += string_or_empty(p, type == "refusal" ? "refusal" : "text");
  }
  return out;
}

// The message of a failed response or an error event.
std::string error_message(const bj::object& holder) {
  const bj::value* error = holder.if_contains("error");
  if (error != nullptr && error->is_object()) {
    if (auto m = string_or_empty(error->get_object(), "message"); !m.empty()) return std::string(m);
  }
  if (auto m = string_or_empty(holder, "message"); !m.empty()) return std::string(m);
  return "the response failed";
}

}  // namespace

std::string encode_upstream_request(const ChatRequest& request, std::string_view model) {
  // A request built in code or from another dialect is encoded from its fields.
  if (request.origin != kName || !request.has_original()) {
    return json::serialize(encode_fields(request, model));
  }
  // The client's own bytes (stored state, built-in tools and all) with the model replaced,
  // unless `stream` was changed since.
  const chat::OriginalBody& sent = request.original_body;
  if (!sent.text.empty() && sent.stream == request.stream) return sent.with_model(model);
  bj::object body = request.original_tree();
  body["model"] = model;
  return json::serialize(body);
}

core::Result<ChatResponse> decode_upstream_response(std::string_view body) {
  auto parsed = json::parse_object(body);
  if (!parsed) return bad_response(parsed.error().message);
  const bj::object& response = *parsed;
  if (string_or_empty(response, "object") != "response") {
    return bad_response("`object` is not \"response\"");
  }
  if (string_or_empty(response, "status") == "failed") {
    return std::unexpected(core::Error{core::ErrorCode::kUpstream, error_message(response)});
  }
  const bj::value* output = response.if_contains("output");
  if (output == nullptr || !output->is_array()) return bad_response("`output` is missing");
  ChatResponse out;
  out.id = std::string(string_or_empty(response, "id"));
  out.model = std::string(string_or_empty(response, "model"));
  if (const bj::value* created = response.if_contains("created_at");
      created && created->is_int64()) {
    out.created = created->get_int64();
  }
  for (const bj::value& value : output->get_array()) {
    if (!value.is_object()) continue;
    const bj::object& item = value.get_object();
    const std::string_view type = string_or_empty(item, "type");
    if (type == "message") {
      out.content =
          out.content.value_or("") + joined_text(item, "content", {"output_text", "refusal"});
    } else if (type == "function_call") {
      out.tool_calls.push_back({std::string(string_or_empty(item, "call_id")),
                                std::string(string_or_empty(item, "name")),
                                std::string(string_or_empty(item, "arguments"))});
    } else if (type == "reasoning") {
      out.reasoning += joined_text(item, "summary", {"summary_text"});
    }
  }
  if (const bj::value* usage = response.if_contains("usage"); usage && usage->is_object()) {
    out.usage = read_usage(usage->get_object());
  }
  out.finish_reason = finish_of(response, !out.tool_calls.empty());
  return out;
}

core::Result<void> UpstreamStreamDecoder::feed(std::string_view, std::string_view data,
                                               std::vector<chat::StreamEvent>& out) {
  auto parsed = json::parse_object(data);
  if (!parsed) return bad_response("event is not a JSON object: " + parsed.error().message);
  const bj::object& event = *parsed;
  const std::string_view type = string_or_empty(event, "type");
  const auto index_of = [&event]() -> std::int64_t {
    const bj::value* i = event.if_contains("output_index");
    return i != nullptr && i->is_int64() ? i->get_int64() : -1;
  };
  if (type == "error") {
    return std::unexpected(core::Error{core::ErrorCode::kUpstream, error_message(event)});
  }
  const bj::value* response = event.if_contains("response");
  if (type == "response.created" && response != nullptr && response->is_object()) {
    const bj::object& r = response->get_object();
    out.push_back(chat::start_event(std::string(string_or_empty(r, "id")),
                                    std::string(string_or_empty(r, "model"))));
  } else if (type == "response.output_text.delta" || type == "response.refusal.delta") {
    out.push_back(chat::text_event(std::string(string_or_empty(event, "delta"))));
  } else if (type == "response.reasoning_summary_text.delta" ||
             type == "response.reasoning_text.delta") {
    out.push_back(chat::reasoning_event(std::string(string_or_empty(event, "delta"))));
  } else if (type == "response.output_item.added") {
    const bj::value* item = event.if_contains("item");
    if (item == nullptr || !item->is_object()) return bad_response("`item` is missing");
    const bj::object& i = item->get_object();
    if (string_or_empty(i, "type") == "function_call") {
      const int tool = static_cast<int>(tools_.size());
      tools_.push_back(index_of());
      out.push_back(chat::tool_start_event(tool, std::string(string_or_empty(i, "call_id")),
                                           std::string(string_or_empty(i, "name"))));
    }
  } else if (type == "response.function_call_arguments.delta") {
    const auto it = std::find(tools_.begin(), tools_.end(), index_of());
    if (it == tools_.end()) return bad_response("arguments for an unannounced function call");
    out.push_back(chat::tool_delta_event(static_cast<int>(it - tools_.begin()),
                                         std::string(string_or_empty(event, "delta"))));
  } else if (type == "response.completed" || type == "response.incomplete") {
    if (response == nullptr || !response->is_object()) return bad_response("`response` is missing");
    const bj::object& r = response->get_object();
    if (const bj::value* usage = r.if_contains("usage"); usage && usage->is_object()) {
      out.push_back(chat::usage_event(read_usage(usage->get_object())));
    }
    out.push_back(chat::finish_event(finish_of(r, !tools_.empty())));
    done_ = true;
  } else if (type == "response.failed") {
    const bj::object empty;
    return std::unexpected(core::Error{
        core::ErrorCode::kUpstream,
        error_message(response != nullptr && response->is_object() ? response->get_object()
                                                                   : empty)});
  }
  return {};
}

}  // namespace backstop::dialects::responses
