#include "dialects/openai/openai.h"

#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <random>

#include "core/ids.h"
#include "dialects/decode_json.h"
#include "dialects/openai/request_reader.h"
#include "dialects/openai/response_reader.h"
#include "dialects/openai/wire.h"
#include "dialects/stream_json.h"
#include "dialects/wire_text.h"
#include "json/json.h"

namespace backstop::dialects::openai {
namespace {

namespace bj = boost::json;
using chat::ChatRequest;
using chat::ChatResponse;
using chat::ContentPart;
using chat::FinishReason;
using chat::Message;
using chat::ResponseFormat;
using chat::Role;
using chat::ToolCall;
using chat::ToolChoice;
using core::ErrorCode;

// An upstream body that does not decode is the upstream's fault, not the client's.
std::unexpected<core::Error> bad_response(std::string message) {
  return core::fail(ErrorCode::kBadResponse, "not a chat completion: " + std::move(message));
}

constexpr std::string_view kIncludeUsage = R"("stream_options":{"include_usage":true},)";

// Content of a message: a string, or an array of text and image_url parts.
core::Result<void> decode_content(const bj::value& content, std::string_view where,
                                  std::vector<ContentPart>& out) {
  if (content.is_string()) {
    out.push_back({ContentPart::Kind::kText, std::string(view(content.get_string())), {}});
    return {};
  }
  if (!content.is_array()) {
    return invalid(code_quoted(where) + " must be a string or an array, got " +
                   std::string(json::kind_name(content)));
  }
  const auto& parts = content.get_array();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string path = json::index_path(where, i);
    if (!parts[i].is_object()) {
      return not_object(path, parts[i]);
    }
    const auto& part = parts[i].get_object();
    auto type = json::required_string(part, "type", path);
    if (!type) return std::unexpected(std::move(type.error()));
    if (*type == "text") {
      auto text = json::required_string(part, "text", path);
      if (!text) return std::unexpected(std::move(text.error()));
      out.push_back({ContentPart::Kind::kText, std::string(*text), {}});
    } else if (*type == "image_url") {
      auto image = json::optional_object(part, "image_url", path);
      if (!image) return std::unexpected(std::move(image.error()));
      if (*image == nullptr) return invalid(code_quoted(path + ".image_url") + " is required");
      auto url = json::required_string(**image, "url", path + ".image_url");
      if (!url) return std::unexpected(std::move(url.error()));
      out.push_back({ContentPart::Kind::kImage, {}, std::string(*url)});
    } else {
      return invalid(code_quoted(path + ".type") + " must be one of text, image_url; got " +
                     quoted(*type));
    }
  }
  return {};
}

core::Result<void> decode_tool_calls(const bj::array& calls, std::string_view where,
                                     std::vector<ToolCall>& out) {
  for (std::size_t i = 0; i < calls.size(); ++i) {
    std::string path = json::index_path(where, i);
    if (!calls[i].is_object()) {
      return not_object(path, calls[i]);
    }
    const auto& call = calls[i].get_object();
    auto id = json::required_string(call, "id", path);
    if (!id) return std::unexpected(std::move(id.error()));
    auto type = json::optional_string(call, "type", path);
    if (!type) return std::unexpected(std::move(type.error()));
    if (*type && **type != "function") {
      return invalid(code_quoted(path + ".type") + " must be \"function\", got " + quoted(**type));
    }
    auto function = json::optional_object(call, "function", path);
    if (!function) return std::unexpected(std::move(function.error()));
    if (*function == nullptr) return invalid(code_quoted(path + ".function") + " is required");
    std::string fpath = path + ".function";
    auto name = json::required_string(**function, "name", fpath);
    if (!name) return std::unexpected(std::move(name.error()));
    auto arguments = json::required_string(**function, "arguments", fpath);
    if (!arguments) return std::unexpected(std::move(arguments.error()));
    out.push_back({std::string(*id), std::string(*name), std::string(*arguments)});
  }
  return {};
}

core::Result<Role> decode_role(const bj::object& message, const std::string& path) {
  auto role = json::required_string(message, "role", path);
  if (!role) return std::unexpected(std::move(role.error()));
  if (*role == "system" || *role == "developer") return Role::kSystem;
  if (*role == "user") return Role::kUser;
  if (*role == "assistant") return Role::kAssistant;
  if (*role == "tool") return Role::kTool;
  return invalid(code_quoted(path + ".role") +
                 " must be one of system, developer, user, assistant, tool; got " + quoted(*role));
}

core::Result<Message> decode_message(const bj::value& value, std::size_t index) {
  std::string path = json::index_path("messages", index);
  if (!value.is_object()) {
    return not_object(path, value);
  }
  const auto& obj = value.get_object();
  Message message;
  auto role = decode_role(obj, path);
  if (!role) return std::unexpected(std::move(role.error()));
  message.role = *role;

  if (message.role == Role::kAssistant) {
    auto calls = json::optional_array(obj, "tool_calls", path);
    if (!calls) return std::unexpected(std::move(calls.error()));
    if (*calls) {
      auto ok = decode_tool_calls(**calls, path + ".tool_calls", message.tool_calls);
      if (!ok) return std::unexpected(std::move(ok.error()));
    }
    auto reasoning = json::optional_string(obj, "reasoning_content", path);
    if (!reasoning) return std::unexpected(std::move(reasoning.error()));
    if (*reasoning) message.reasoning = std::string(**reasoning);
  }

  auto content = obj.find("content");
  if (content == obj.end() || content->value().is_null()) {
    if (message.role != Role::kAssistant || message.tool_calls.empty()) {
      return invalid(code_quoted(path + ".content") + " is required");
    }
  } else {
    auto ok = decode_content(content->value(), path + ".content", message.content);
    if (!ok) return std::unexpected(std::move(ok.error()));
  }

  if (message.role == Role::kTool) {
    auto id = json::required_string(obj, "tool_call_id", path);
    if (!id) return std::unexpected(std::move(id.error()));
    message.tool_call_id = std::string(*id);
  }
  auto name = json::optional_string(obj, "name", path);
  if (!name) return std::unexpected(std::move(name.error()));
  if (*name) message.name = std::string(**name);
  return message;
}

core::Result<void> decode_messages(bj::object& body, ChatRequest& out) {
  auto messages = json::optional_array(body, "messages", "");
  if (!messages) return std::unexpected(std::move(messages.error()));
  if (*messages == nullptr) return invalid("`messages` is required");
  if ((*messages)->empty()) return invalid("`messages` must not be empty");
  for (std::size_t i = 0; i < (*messages)->size(); ++i) {
    auto message = decode_message((**messages)[i], i);
    if (!message) return std::unexpected(std::move(message.error()));
    out.messages.push_back(std::move(*message));
  }
  return {};
}

core::Result<void> decode_tools(bj::object& body, ChatRequest& out) {
  auto tools = json::optional_array(body, "tools", "");
  if (!tools) return std::unexpected(std::move(tools.error()));
  if (*tools == nullptr) return {};
  for (std::size_t i = 0; i < (*tools)->size(); ++i) {
    std::string path = json::index_path("tools", i);
    const auto& value = (**tools)[i];
    if (!value.is_object()) {
      return not_object(path, value);
    }
    const auto& tool = value.get_object();
    auto type = json::optional_string(tool, "type", path);
    if (!type) return std::unexpected(std::move(type.error()));
    if (*type && **type != "function") {
      return invalid(code_quoted(path + ".type") + " must be \"function\", got " + quoted(**type));
    }
    auto function = json::optional_object(tool, "function", path);
    if (!function) return std::unexpected(std::move(function.error()));
    if (*function == nullptr) return invalid(code_quoted(path + ".function") + " is required");
    std::string fpath = path + ".function";
    auto name = json::required_string(**function, "name", fpath);
    if (!name) return std::unexpected(std::move(name.error()));
    if (name->empty()) return invalid(code_quoted(fpath + ".name") + " must not be empty");
    auto description = json::optional_string(**function, "description", fpath);
    if (!description) return std::unexpected(std::move(description.error()));
    auto parameters = json::optional_object(**function, "parameters", fpath);
    if (!parameters) return std::unexpected(std::move(parameters.error()));
    out.tools.push_back({std::string(*name), *description ? std::string(**description) : "",
                         bj::value(bj::object(body.storage()))});
    if (*parameters) {
      // Moved out of the tree the decoder owns, not copied: the same arena holds both.
      bj::value& schema =
          body.at("tools").get_array()[i].get_object().at("function").get_object().at("parameters");
      chat::JsonArena::adopt(out.tools.back().parameters, std::move(schema));
    }
  }
  return {};
}

core::Result<void> decode_tool_choice(bj::object& body, ChatRequest& out) {
  auto it = body.find("tool_choice");
  if (it == body.end() || it->value().is_null()) return {};
  const auto& value = it->value();
  if (value.is_string()) return decode_tool_choice_mode(view(value.get_string()), out.tool_choice);
  if (!value.is_object()) {
    return invalid("`tool_choice` must be a string or an object, got " +
                   std::string(json::kind_name(value)));
  }
  const auto& obj = value.get_object();
  auto type = json::required_string(obj, "type", "tool_choice");
  if (!type) return std::unexpected(std::move(type.error()));
  if (*type != "function") {
    return invalid("`tool_choice.type` must be \"function\", got " + quoted(*type));
  }
  auto function = json::optional_object(obj, "function", "tool_choice");
  if (!function) return std::unexpected(std::move(function.error()));
  if (*function == nullptr) return invalid("`tool_choice.function` is required");
  auto name = json::required_string(**function, "name", "tool_choice.function");
  if (!name) return std::unexpected(std::move(name.error()));
  if (out.find_tool(*name) == nullptr) {
    return invalid("`tool_choice.function.name` is " + quoted(*name) +
                   ", which is not one of `tools`");
  }
  out.tool_choice = {ToolChoice::Kind::kNamed, std::string(*name)};
  return {};
}

core::Result<void> decode_response_format(bj::object& body, ChatRequest& out) {
  auto format = json::optional_object(body, "response_format", "");
  if (!format) return std::unexpected(std::move(format.error()));
  if (*format == nullptr) return {};
  auto type = json::required_string(**format, "type", "response_format");
  if (!type) return std::unexpected(std::move(type.error()));
  if (*type == "text") {
    out.response_format.kind = ResponseFormat::Kind::kText;
  } else if (*type == "json_object") {
    out.response_format.kind = ResponseFormat::Kind::kJsonObject;
  } else if (*type == "json_schema") {
    auto spec = json::optional_object(**format, "json_schema", "response_format");
    if (!spec) return std::unexpected(std::move(spec.error()));
    if (*spec == nullptr) return invalid("`response_format.json_schema` is required");
    auto name = json::required_string(**spec, "name", "response_format.json_schema");
    if (!name) return std::unexpected(std::move(name.error()));
    auto schema = json::optional_object(**spec, "schema", "response_format.json_schema");
    if (!schema) return std::unexpected(std::move(schema.error()));
    auto strict = json::optional_bool(**spec, "strict", "response_format.json_schema");
    if (!strict) return std::unexpected(std::move(strict.error()));
    out.response_format.kind = ResponseFormat::Kind::kJsonSchema;
    out.response_format.name = std::string(*name);
    out.response_format.strict = strict->value_or(false);
    if (*schema) {
      // Moved out of the tree the decoder owns, not copied: the same arena holds both.
      bj::value& owned =
          body.at("response_format").get_object().at("json_schema").get_object().at("schema");
      chat::JsonArena::adopt(out.response_format.schema, std::move(owned));
    }
  } else {
    return invalid("`response_format.type` must be one of text, json_object, json_schema; got " +
                   quoted(*type));
  }
  return {};
}

core::Result<void> decode_stop(bj::object& body, ChatRequest& out) {
  auto it = body.find("stop");
  if (it == body.end() || it->value().is_null()) return {};
  const auto& value = it->value();
  if (value.is_string()) {
    out.stop.emplace_back(view(value.get_string()));
    return {};
  }
  if (!value.is_array()) {
    return invalid("`stop` must be a string or an array of strings, got " +
                   std::string(json::kind_name(value)));
  }
  const auto& stops = value.get_array();
  for (std::size_t i = 0; i < stops.size(); ++i) {
    if (!stops[i].is_string()) {
      return invalid(code_quoted(json::index_path("stop", i)) + " must be a string, got " +
                     std::string(json::kind_name(stops[i])));
    }
    out.stop.emplace_back(view(stops[i].get_string()));
  }
  return {};
}

core::Result<void> decode_sampling(bj::object& body, ChatRequest& out) {
  for (std::string_view key : {"max_tokens", "max_completion_tokens"}) {
    auto tokens = json::optional_int(body, key, "");
    if (!tokens) return std::unexpected(std::move(tokens.error()));
    if (!*tokens) continue;
    if (**tokens < 1) {
      return invalid(code_quoted(key) + " must be at least 1, got " + std::to_string(**tokens));
    }
    // max_completion_tokens is the newer name; it wins when a client sends both.
    out.max_tokens = **tokens;
  }
  auto temperature = json::optional_number(body, "temperature", "");
  if (!temperature) return std::unexpected(std::move(temperature.error()));
  out.temperature = *temperature;
  auto top_p = json::optional_number(body, "top_p", "");
  if (!top_p) return std::unexpected(std::move(top_p.error()));
  out.top_p = *top_p;
  auto stream = json::optional_bool(body, "stream", "");
  if (!stream) return std::unexpected(std::move(stream.error()));
  out.stream = stream->value_or(false);
  auto options = json::optional_object(body, "stream_options", "");
  if (!options) return std::unexpected(std::move(options.error()));
  if (*options) {
    auto usage = json::optional_bool(**options, "include_usage", "stream_options");
    if (!usage) return std::unexpected(std::move(usage.error()));
    out.include_usage = usage->value_or(false);
  }
  auto parallel = json::optional_bool(body, "parallel_tool_calls", "");
  if (!parallel) return std::unexpected(std::move(parallel.error()));
  out.parallel_tool_calls = *parallel;
  auto user = json::optional_string(body, "user", "");
  if (!user) return std::unexpected(std::move(user.error()));
  // OpenAI's end-user id is what Anthropic calls metadata.user_id.
  if (*user) out.metadata["user_id"] = **user;
  return {};
}

// Text-only content becomes a string (what every OpenAI-compatible server accepts); content
// with images or files becomes an array of parts.
bj::value encode_content(const std::vector<ContentPart>& parts) {
  bool text_only = true;
  for (const auto& part : parts) text_only &= part.kind == ContentPart::Kind::kText;
  if (text_only) {
    std::string text;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) text += "\n\n";
      text += parts[i].text;
    }
    return bj::string(text);
  }
  bj::array out;
  for (const auto& part : parts) {
    switch (part.kind) {
      case ContentPart::Kind::kText:
        out.push_back(bj::object{{"type", "text"}, {"text", part.text}});
        break;
      case ContentPart::Kind::kImage:
        out.push_back(
            bj::object{{"type", "image_url"}, {"image_url", bj::object{{"url", part.image_url}}}});
        break;
      case ContentPart::Kind::kFile: {
        bj::object file{{"file_data", part.image_url}};
        if (!part.text.empty()) file["filename"] = part.text;
        out.push_back(bj::object{{"type", "file"}, {"file", std::move(file)}});
        break;
      }
    }
  }
  return out;
}

bj::array encode_tool_calls(const std::vector<ToolCall>& calls) {
  bj::array out;
  for (const auto& call : calls) {
    out.push_back(
        bj::object{{"id", call.id},
                   {"type", "function"},
                   {"function", bj::object{{"name", call.name}, {"arguments", call.arguments}}}});
  }
  return out;
}

bj::object encode_message(const Message& message) {
  bj::object out;
  out["role"] = chat::to_string(message.role);
  if (message.content.empty() && message.role == Role::kAssistant && !message.tool_calls.empty()) {
    out["content"] = nullptr;
  } else {
    out["content"] = encode_content(message.content);
  }
  if (!message.name.empty()) out["name"] = message.name;
  if (message.role == Role::kAssistant) {
    if (!message.tool_calls.empty()) out["tool_calls"] = encode_tool_calls(message.tool_calls);
    if (!message.reasoning.empty()) out["reasoning_content"] = message.reasoning;
  }
  if (message.role == Role::kTool) out["tool_call_id"] = message.tool_call_id;
  return out;
}

bj::value encode_tool_choice(const ToolChoice& choice) {
  switch (choice.kind) {
    case ToolChoice::Kind::kAuto:
      return "auto";
    case ToolChoice::Kind::kNone:
      return "none";
    case ToolChoice::Kind::kRequired:
      return "required";
    case ToolChoice::Kind::kNamed:
      return bj::object{{"type", "function"}, {"function", bj::object{{"name", choice.name}}}};
    case ToolChoice::Kind::kUnset:
      break;
  }
  return nullptr;
}

bool is_empty_schema(const bj::value& schema) {
  return schema.is_null() || (schema.is_object() && schema.get_object().empty());
}

bj::object encode_fields(const ChatRequest& request, std::string_view model) {
  bj::object body;
  body["model"] = model;
  bj::array messages;
  for (const auto& message : request.messages) messages.push_back(encode_message(message));
  body["messages"] = std::move(messages);
  if (!request.tools.empty()) {
    bj::array tools;
    for (const auto& tool : request.tools) {
      bj::object function{{"name", tool.name}};
      if (!tool.description.empty()) function["description"] = tool.description;
      function["parameters"] =
          is_empty_schema(tool.parameters)
              ? bj::value(bj::object{{"type", "object"}, {"properties", bj::object()}})
              : tool.parameters;
      tools.push_back(bj::object{{"type", "function"}, {"function", std::move(function)}});
    }
    body["tools"] = std::move(tools);
    if (request.tool_choice.kind != ToolChoice::Kind::kUnset) {
      body["tool_choice"] = encode_tool_choice(request.tool_choice);
    }
    if (request.parallel_tool_calls) body["parallel_tool_calls"] = *request.parallel_tool_calls;
  }
  switch (request.response_format.kind) {
    case ResponseFormat::Kind::kText:
      body["response_format"] = {{"type", "text"}};
      break;
    case ResponseFormat::Kind::kJsonObject:
      body["response_format"] = {{"type", "json_object"}};
      break;
    case ResponseFormat::Kind::kJsonSchema: {
      bj::object spec{{"name", request.response_format.name}};
      if (!request.response_format.schema.is_null()) {
        spec["schema"] = request.response_format.schema;
      }
      body["response_format"] = bj::object{{"type", "json_schema"}, {"json_schema", spec}};
      break;
    }
    case ResponseFormat::Kind::kUnset:
      break;
  }
  if (request.max_tokens) body["max_tokens"] = *request.max_tokens;
  if (!request.reasoning_effort.empty()) body["reasoning_effort"] = request.reasoning_effort;
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.top_p) body["top_p"] = *request.top_p;
  if (!request.stop.empty()) {
    bj::array stop;
    for (const auto& s : request.stop) stop.push_back(bj::string(s));
    body["stop"] = std::move(stop);
  }
  if (request.stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  if (auto user = request.metadata.find("user_id");
      user != request.metadata.end() && user->value().is_string()) {
    body["user"] = user->value();
  }
  return body;
}

// A count the upstream reports, clamped to 0..kMaxTokenCount so that sums cannot overflow.
std::int64_t int_or_zero(const bj::object& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? 0 : clamped_count(it->value()).value_or(0);
}

core::Result<void> decode_response_tool_calls(const bj::array& calls, ChatResponse& out) {
  for (std::size_t i = 0; i < calls.size(); ++i) {
    std::string path = json::index_path("choices[0].message.tool_calls", i);
    if (!calls[i].is_object()) return bad_response(code_quoted(path) + " is not an object");
    const auto& call = calls[i].get_object();
    ToolCall parsed;
    if (auto id = call.find("id"); id != call.end() && id->value().is_string()) {
      parsed.id = std::string(view(id->value().get_string()));
    }
    auto function = call.find("function");
    if (function == call.end() || !function->value().is_object()) {
      return bad_response(code_quoted(path + ".function") + " is missing");
    }
    const auto& fn = function->value().get_object();
    auto name = fn.find("name");
    if (name == fn.end() || !name->value().is_string()) {
      return bad_response(code_quoted(path + ".function.name") + " is missing");
    }
    parsed.name = std::string(view(name->value().get_string()));
    if (auto args = fn.find("arguments"); args != fn.end()) {
      // Some compatible servers send the arguments as an object rather than JSON text.
      parsed.arguments = args->value().is_string() ? std::string(view(args->value().get_string()))
                                                   : bj::serialize(args->value());
    }
    out.tool_calls.push_back(std::move(parsed));
  }
  return {};
}

std::string generated_id() {
  thread_local core::IdGenerator ids(std::random_device{}());
  return "chatcmpl-" + ids.next();
}

std::string_view error_type(int status) {
  switch (status) {
    case 400:
    case 404:
    case 405:
    case 408:
    case 413:
    case 431:
      return "invalid_request_error";
    case 422:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    default:
      return "server_error";
  }
}

}  // namespace

namespace wire {

FinishReason decode_finish_reason(std::string_view reason) {
  if (reason == "stop") return FinishReason::kStop;
  if (reason == "length") return FinishReason::kLength;
  if (reason == "tool_calls" || reason == "function_call") return FinishReason::kToolCalls;
  if (reason == "content_filter") return FinishReason::kContentFilter;
  return FinishReason::kUnknown;
}

chat::Usage decode_usage(const bj::object& usage) {
  std::int64_t cached = 0;
  if (auto details = usage.find("prompt_tokens_details");
      details != usage.end() && details->value().is_object()) {
    cached = int_or_zero(details->value().get_object(), "cached_tokens");
  }
  return usage_of(int_or_zero(usage, "prompt_tokens"), cached,
                  int_or_zero(usage, "prompt_cache_hit_tokens"),
                  int_or_zero(usage, "completion_tokens"));
}

chat::Usage usage_of(std::int64_t prompt, std::int64_t cached_tokens, std::int64_t cache_hit_tokens,
                     std::int64_t completion) {
  // DeepSeek's API reports cache hits at the top level instead.
  const std::int64_t cached =
      std::clamp<std::int64_t>(cached_tokens != 0 ? cached_tokens : cache_hit_tokens, 0, prompt);
  chat::Usage out;
  out.input_tokens = prompt - cached;
  out.cached_input_tokens = cached;
  out.output_tokens = completion;
  return out;
}

}  // namespace wire

core::Result<ChatRequest> decode_request(std::string_view body) {
  if (auto plain = detail::read_plain_request(body)) return std::move(*plain);
  return detail::decode_request_tree(body);
}

core::Result<ChatRequest> detail::decode_request_tree(std::string_view body) {
  return dialects::decode_request_tree(body, kName,
                                       {decode_messages, decode_tools, decode_tool_choice,
                                        decode_response_format, decode_stop, decode_sampling});
}

std::string encode_request(const ChatRequest& request, std::string_view model) {
  // A request built in code has no original; it is encoded from its fields.
  if (request.origin != kName || !request.has_original()) {
    return json::serialize(encode_fields(request, model));
  }
  // The client's own bytes with the model replaced, unless `stream` was changed since.
  const chat::OriginalBody& sent = request.original_body;
  if (!sent.text.empty() && sent.stream == request.stream) {
    if (!request.stream || request.include_usage) return sent.with_model(model);
    // Usage arrives only in the final chunk, and only when asked for: backstop needs it.
    if (!sent.has_stream_options) return sent.with_model(model, kIncludeUsage);
  }
  bj::object body = request.original_tree();
  body["model"] = model;
  if (request.stream) {
    // Usage arrives only in the final chunk, and only when asked for: backstop needs it.
    auto& options = body["stream_options"];
    if (!options.is_object()) options = bj::object();
    options.get_object()["include_usage"] = true;
  }
  return json::serialize(body);
}

core::Result<ChatResponse> decode_response(std::string_view body) {
  if (auto plain = detail::read_plain_response(body)) return std::move(*plain);
  return detail::decode_response_tree(body);
}

core::Result<ChatResponse> detail::decode_response_tree(std::string_view body) {
  // The tree lives only while the answer is read out of it: a stack arena serves most.
  unsigned char arena[8192];
  bj::monotonic_resource resource(arena, sizeof arena);
  auto parsed = json::parse_object(body, &resource);
  if (!parsed) return bad_response(parsed.error().message);
  const auto& obj = *parsed;
  if (auto object = obj.find("object");
      object != obj.end() &&
      (!object->value().is_string() || object->value().get_string() != "chat.completion")) {
    return bad_response("`object` is " + bj::serialize(object->value()));
  }
  auto choices = obj.find("choices");
  if (choices == obj.end() || !choices->value().is_array() ||
      choices->value().get_array().empty() || !choices->value().get_array()[0].is_object()) {
    return bad_response("`choices` is missing or empty");
  }
  const auto& choice = choices->value().get_array()[0].get_object();
  auto message_it = choice.find("message");
  if (message_it == choice.end() || !message_it->value().is_object()) {
    return bad_response("`choices[0].message` is missing");
  }
  const auto& message = message_it->value().get_object();

  ChatResponse response;
  if (auto id = obj.find("id"); id != obj.end() && id->value().is_string()) {
    response.id = std::string(view(id->value().get_string()));
  }
  if (auto model = obj.find("model"); model != obj.end() && model->value().is_string()) {
    response.model = std::string(view(model->value().get_string()));
  }
  response.created = int_or_zero(obj, "created");
  response.system_fingerprint = std::string(string_or_empty(obj, "system_fingerprint"));
  if (auto content = message.find("content"); content != message.end()) {
    if (content->value().is_string()) {
      response.content = std::string(view(content->value().get_string()));
    } else if (!content->value().is_null()) {
      return bad_response("`choices[0].message.content` is " +
                          std::string(json::kind_name(content->value())));
    }
  }
  // DeepSeek and older vLLM call it reasoning_content; newer vLLM calls it reasoning.
  for (std::string_view key : {"reasoning_content", "reasoning"}) {
    auto reasoning = message.find(key);
    if (reasoning != message.end() && reasoning->value().is_string()) {
      response.reasoning = std::string(view(reasoning->value().get_string()));
      break;
    }
  }
  if (auto calls = message.find("tool_calls");
      calls != message.end() && !calls->value().is_null()) {
    if (!calls->value().is_array()) {
      return bad_response("`choices[0].message.tool_calls` is not an array");
    }
    auto ok = decode_response_tool_calls(calls->value().get_array(), response);
    if (!ok) return std::unexpected(std::move(ok.error()));
  }
  auto finish = choice.find("finish_reason");
  response.finish_reason = finish == choice.end() || !finish->value().is_string()
                               ? FinishReason::kUnknown
                               : wire::decode_finish_reason(view(finish->value().get_string()));
  if (auto usage = obj.find("usage"); usage != obj.end() && usage->value().is_object()) {
    response.usage = wire::decode_usage(usage->value().get_object());
  }
  return response;
}

std::string encode_response(const ChatResponse& response, std::string_view model) {
  std::int64_t created = response.created;
  if (created == 0) {
    // Upstreams such as Anthropic send no timestamp; clients expect one.
    created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  }
  const std::int64_t prompt = response.usage.input_tokens + response.usage.cached_input_tokens;
  // Written straight out: the shape is fixed, and a value tree would cost an allocation per
  // field for nothing.
  std::string out;
  std::size_t room = 320 + response.id.size() + model.size() + response.model.size() +
                     response.reasoning.size() + (response.content ? response.content->size() : 0);
  for (const auto& call : response.tool_calls) {
    room += 64 + call.id.size() + call.name.size() + 2 * call.arguments.size();
  }
  out.reserve(room);
  out += R"({"id":)";
  if (response.id.empty()) {
    core::append_json_string(out, generated_id());
  } else {
    core::append_json_string(out, response.id);
  }
  out += R"(,"object":"chat.completion","created":)";
  append_int(out, created);
  out += R"(,"model":)";
  core::append_json_string(out, model.empty() ? std::string_view(response.model) : model);
  out += R"(,"choices":[{"index":0,"message":{"role":"assistant","content":)";
  if (response.content) {
    core::append_json_string(out, *response.content);
  } else {
    out += "null";
  }
  if (!response.tool_calls.empty()) {
    out += R"(,"tool_calls":[)";
    for (std::size_t i = 0; i < response.tool_calls.size(); ++i) {
      const ToolCall& call = response.tool_calls[i];
      if (i > 0) out += ',';
      out += R"({"id":)";
      core::append_json_string(out, call.id);
      out += R"(,"type":"function","function":{"name":)";
      core::append_json_string(out, call.name);
      out += R"(,"arguments":)";
      core::append_json_string(out, call.arguments);
      out += "}}";
    }
    out += ']';
  }
  if (!response.reasoning.empty()) {
    out += R"(,"reasoning_content":)";
    core::append_json_string(out, response.reasoning);
  }
  out += R"(},"logprobs":null,"finish_reason":")";
  out += chat::to_string(response.finish_reason);
  out += R"("}],"usage":{"prompt_tokens":)";
  append_int(out, prompt);
  out += R"(,"completion_tokens":)";
  append_int(out, response.usage.output_tokens);
  out += R"(,"total_tokens":)";
  append_int(out, prompt + response.usage.output_tokens);
  out += R"(,"prompt_tokens_details":{"cached_tokens":)";
  append_int(out, response.usage.cached_input_tokens);
  out += "}}}";
  return out;
}

std::string encode_error(const core::Error& error, const bj::object& extra) {
  // A rejection carries the upstream's own code, as the upstream said it.
  bj::object inner{{"message", error.message},
                   {"type", error_type(core::client_status(error))},
                   {"param", nullptr},
                   {"code", error.upstream_code.empty() ? core::to_string(error.code)
                                                        : std::string_view(error.upstream_code)}};
  for (const auto& field : extra) inner[field.key()] = field.value();
  return bj::serialize(bj::object{{"error", std::move(inner)}});
}

std::string upstream_error_message(std::string_view body) { return upstream_error_text(body); }

std::optional<std::string> upstream_error_code(std::string_view body) {
  return upstream_error_code_text(body, {"code", "type"});
}

}  // namespace backstop::dialects::openai
