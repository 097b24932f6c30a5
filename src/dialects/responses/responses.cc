#include "dialects/responses/responses.h"

#include <boost/json/serialize.hpp>
#include <chrono>
#include <random>

#include "core/ids.h"
#include "dialects/decode_json.h"
#include "dialects/openai/openai.h"
#include "dialects/responses/wire.h"
#include "json/json.h"

namespace backstop::dialects::responses {
namespace {

namespace bj = boost::json;
using chat::ChatRequest;
using chat::ChatResponse;
using chat::ContentPart;
using chat::FinishReason;
using chat::Message;
using chat::ResponseFormat;
using chat::Role;
using chat::ToolChoice;

// What only the Responses API itself can do: the request goes only to a target of kind
// openai_responses (passed through as sent); the first such thing names it.
core::Result<void> needs_responses_target(std::string& dialect_only, const std::string& what) {
  if (dialect_only.empty()) {
    dialect_only = what +
                   " (needs a target of kind openai_responses: elsewhere backstop's "
                   "/v1/responses is stateless, bridges function tools only, and takes the "
                   "whole conversation in `input`)";
  }
  return {};
}

// One content part of an input message; a part only the Responses API can read is left out
// and noted in `dialect_only`.
core::Result<void> decode_part(const bj::value& value, const std::string& path, Message& out,
                               std::string& dialect_only) {
  if (!value.is_object()) return not_object(path, value);
  const auto& part = value.get_object();
  auto type = json::required_string(part, "type", path);
  if (!type) return std::unexpected(std::move(type.error()));
  if (*type == "input_text" || *type == "output_text" || *type == "text") {
    auto text = json::required_string(part, "text", path);
    if (!text) return std::unexpected(std::move(text.error()));
    out.content.push_back({ContentPart::Kind::kText, std::string(*text), {}});
  } else if (*type == "refusal") {
    auto text = json::required_string(part, "refusal", path);
    if (!text) return std::unexpected(std::move(text.error()));
    out.content.push_back({ContentPart::Kind::kText, std::string(*text), {}});
  } else if (*type == "input_image") {
    auto url = json::optional_string(part, "image_url", path);
    if (!url) return std::unexpected(std::move(url.error()));
    if (!*url) {
      return needs_responses_target(dialect_only,
                                    code_quoted(path) + " names an uploaded file (`file_id`)");
    }
    out.content.push_back({ContentPart::Kind::kImage, {}, std::string(**url)});
  } else if (*type == "input_file") {
    auto data = json::optional_string(part, "file_data", path);
    if (!data) return std::unexpected(std::move(data.error()));
    if (!*data) {
      return needs_responses_target(
          dialect_only,
          code_quoted(path) + " names an uploaded or remote file instead of `file_data`");
    }
    auto name = json::optional_string(part, "filename", path);
    if (!name) return std::unexpected(std::move(name.error()));
    out.content.push_back(
        {ContentPart::Kind::kFile, std::string(name->value_or("")), std::string(**data)});
  } else {
    return invalid(code_quoted(path + ".type") +
                   " must be one of input_text, input_image, input_file, output_text, refusal; "
                   "got " +
                   quoted(*type));
  }
  return {};
}

core::Result<Role> decode_role(const bj::object& item, const std::string& path) {
  auto role = json::required_string(item, "role", path);
  if (!role) return std::unexpected(std::move(role.error()));
  if (*role == "system" || *role == "developer") return Role::kSystem;
  if (*role == "user") return Role::kUser;
  if (*role == "assistant") return Role::kAssistant;
  return invalid(code_quoted(path + ".role") +
                 " must be one of system, developer, user, assistant; got " + quoted(*role));
}

// Reads `input` items into messages. Function calls join the assistant turn before them (Chat
// Completions and Messages carry calls on the assistant turn), and reasoning goes on the
// assistant turn that follows it.
class InputReader {
 public:
  explicit InputReader(ChatRequest& out) : out_(out) {}

  core::Result<void> item(const bj::value& value, std::size_t index) {
    const std::string path = json::index_path("input", index);
    if (!value.is_object()) return not_object(path, value);
    const auto& item = value.get_object();
    auto type = json::optional_string(item, "type", path);
    if (!type) return std::unexpected(std::move(type.error()));
    const std::string_view kind = type->value_or("message");
    if (kind == "message") return message(item, path);
    if (kind == "function_call") return function_call(item, path);
    if (kind == "function_call_output") return function_call_output(item, path);
    if (kind == "reasoning") return reasoning(item, path);
    if (kind == "item_reference") {
      return needs_responses_target(out_.dialect_only,
                                    code_quoted(path) + " refers to a stored item");
    }
    return needs_responses_target(out_.dialect_only,
                                  code_quoted(path) + " is a " + quoted(kind) + " item");
  }

  // Reasoning with no assistant turn after it has nothing to go on: dropped.
  void finish() {}

 private:
  core::Result<void> message(const bj::object& item, const std::string& path) {
    auto role = decode_role(item, path);
    if (!role) return std::unexpected(std::move(role.error()));
    Message message;
    message.role = *role;
    auto content = item.find("content");
    if (content == item.end() || content->value().is_null()) {
      return invalid(code_quoted(path + ".content") + " is required");
    }
    if (content->value().is_string()) {
      message.content.push_back(
          {ContentPart::Kind::kText, std::string(view(content->value().get_string())), {}});
    } else if (content->value().is_array()) {
      const auto& parts = content->value().get_array();
      for (std::size_t i = 0; i < parts.size(); ++i) {
        auto ok = decode_part(parts[i], json::index_path(path + ".content", i), message,
                              out_.dialect_only);
        if (!ok) return std::unexpected(std::move(ok.error()));
      }
    } else {
      return invalid(code_quoted(path + ".content") + " must be a string or an array, got " +
                     std::string(json::kind_name(content->value())));
    }
    if (message.role == Role::kAssistant) {
      message.reasoning = std::move(reasoning_);
      reasoning_.clear();
    }
    out_.messages.push_back(std::move(message));
    return {};
  }

  core::Result<void> function_call(const bj::object& item, const std::string& path) {
    auto call_id = json::required_string(item, "call_id", path);
    if (!call_id) return std::unexpected(std::move(call_id.error()));
    auto name = json::required_string(item, "name", path);
    if (!name) return std::unexpected(std::move(name.error()));
    auto arguments = json::required_string(item, "arguments", path);
    if (!arguments) return std::unexpected(std::move(arguments.error()));
    // A call after the assistant's text, or after another call, is part of the same turn.
    if (out_.messages.empty() || out_.messages.back().role != Role::kAssistant ||
        !reasoning_.empty()) {
      Message turn;
      turn.role = Role::kAssistant;
      turn.reasoning = std::move(reasoning_);
      reasoning_.clear();
      out_.messages.push_back(std::move(turn));
    }
    out_.messages.back().tool_calls.push_back(
        {std::string(*call_id), std::string(*name), std::string(*arguments)});
    return {};
  }

  core::Result<void> function_call_output(const bj::object& item, const std::string& path) {
    auto call_id = json::required_string(item, "call_id", path);
    if (!call_id) return std::unexpected(std::move(call_id.error()));
    Message message;
    message.role = Role::kTool;
    message.tool_call_id = std::string(*call_id);
    auto output = item.find("output");
    if (output == item.end()) return invalid(code_quoted(path + ".output") + " is required");
    if (output->value().is_string()) {
      message.content.push_back(
          {ContentPart::Kind::kText, std::string(view(output->value().get_string())), {}});
    } else if (output->value().is_array()) {
      const auto& parts = output->value().get_array();
      for (std::size_t i = 0; i < parts.size(); ++i) {
        auto ok = decode_part(parts[i], json::index_path(path + ".output", i), message,
                              out_.dialect_only);
        if (!ok) return std::unexpected(std::move(ok.error()));
      }
    } else {
      return invalid(code_quoted(path + ".output") + " must be a string or an array, got " +
                     std::string(json::kind_name(output->value())));
    }
    out_.messages.push_back(std::move(message));
    return {};
  }

  // The readable part of a reasoning item (its summary, else its content); encrypted content
  // only the Responses API can read, and is dropped.
  core::Result<void> reasoning(const bj::object& item, const std::string& path) {
    for (std::string_view key : {"summary", "content"}) {
      auto parts = json::optional_array(item, key, path);
      if (!parts) return std::unexpected(std::move(parts.error()));
      if (*parts == nullptr) continue;
      for (std::size_t i = 0; i < (*parts)->size(); ++i) {
        const auto& part = (**parts)[i];
        if (!part.is_object())
          return not_object(json::index_path(path + "." + std::string(key), i), part);
        std::string_view text = string_or_empty(part.get_object(), "text");
        if (text.empty()) continue;
        if (!reasoning_.empty()) reasoning_ += "\n\n";
        reasoning_ += text;
      }
      if (!reasoning_.empty()) break;
    }
    return {};
  }

  ChatRequest& out_;
  std::string reasoning_;  // waiting for the assistant turn it belongs to
};

core::Result<void> decode_input(bj::object& body, ChatRequest& out) {
  auto instructions = json::optional_string(body, "instructions", "");
  if (!instructions) return std::unexpected(std::move(instructions.error()));
  if (*instructions && !(*instructions)->empty()) {
    Message system;
    system.role = Role::kSystem;
    system.content.push_back({ContentPart::Kind::kText, std::string(**instructions), {}});
    out.messages.push_back(std::move(system));
  }
  auto input = body.find("input");
  if (input == body.end() || input->value().is_null()) return invalid("`input` is required");
  if (input->value().is_string()) {
    Message user;
    user.role = Role::kUser;
    user.content.push_back(
        {ContentPart::Kind::kText, std::string(view(input->value().get_string())), {}});
    out.messages.push_back(std::move(user));
    return {};
  }
  if (!input->value().is_array()) {
    return invalid("`input` must be a string or an array, got " +
                   std::string(json::kind_name(input->value())));
  }
  const auto& items = input->value().get_array();
  if (items.empty()) return invalid("`input` must not be empty");
  InputReader reader(out);
  for (std::size_t i = 0; i < items.size(); ++i) {
    auto ok = reader.item(items[i], i);
    if (!ok) return std::unexpected(std::move(ok.error()));
  }
  reader.finish();
  return {};
}

core::Result<void> decode_tools(bj::object& body, ChatRequest& out) {
  auto tools = json::optional_array(body, "tools", "");
  if (!tools) return std::unexpected(std::move(tools.error()));
  if (*tools == nullptr) return {};
  for (std::size_t i = 0; i < (*tools)->size(); ++i) {
    const std::string path = json::index_path("tools", i);
    const auto& value = (**tools)[i];
    if (!value.is_object()) return not_object(path, value);
    const auto& tool = value.get_object();
    auto type = json::required_string(tool, "type", path);
    if (!type) return std::unexpected(std::move(type.error()));
    // Codex CLI offers these on every request: web search (the model answers without it) and a
    // namespace of sub-agent tools; both are left out rather than refused.
    if (*type == "web_search" || *type == "web_search_preview" || *type == "namespace") continue;
    if (*type != "function") {
      (void)needs_responses_target(out.dialect_only,
                                   code_quoted(path) + " is the built-in tool " + quoted(*type));
      continue;
    }
    auto name = json::required_string(tool, "name", path);
    if (!name) return std::unexpected(std::move(name.error()));
    if (name->empty()) return invalid(code_quoted(path + ".name") + " must not be empty");
    auto description = json::optional_string(tool, "description", path);
    if (!description) return std::unexpected(std::move(description.error()));
    auto parameters = json::optional_object(tool, "parameters", path);
    if (!parameters) return std::unexpected(std::move(parameters.error()));
    out.tools.push_back({std::string(*name), std::string(description->value_or("")),
                         bj::value(bj::object(body.storage()))});
    if (*parameters) {
      // Moved out of the tree the decoder owns, not copied: the same arena holds both.
      bj::value& schema = body.at("tools").get_array()[i].get_object().at("parameters");
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
    return needs_responses_target(out.dialect_only,
                                  "`tool_choice` names the built-in tool " + quoted(*type));
  }
  auto name = json::required_string(obj, "name", "tool_choice");
  if (!name) return std::unexpected(std::move(name.error()));
  if (out.find_tool(*name) == nullptr) {
    return invalid("`tool_choice.name` is " + quoted(*name) + ", which is not one of `tools`");
  }
  out.tool_choice = {ToolChoice::Kind::kNamed, std::string(*name)};
  return {};
}

core::Result<void> decode_text(bj::object& body, ChatRequest& out) {
  auto text = json::optional_object(body, "text", "");
  if (!text) return std::unexpected(std::move(text.error()));
  if (*text == nullptr) return {};
  auto format = json::optional_object(**text, "format", "text");
  if (!format) return std::unexpected(std::move(format.error()));
  if (*format == nullptr) return {};
  auto type = json::required_string(**format, "type", "text.format");
  if (!type) return std::unexpected(std::move(type.error()));
  if (*type == "text") {
    out.response_format.kind = ResponseFormat::Kind::kText;
  } else if (*type == "json_object") {
    out.response_format.kind = ResponseFormat::Kind::kJsonObject;
  } else if (*type == "json_schema") {
    auto name = json::required_string(**format, "name", "text.format");
    if (!name) return std::unexpected(std::move(name.error()));
    auto schema = json::optional_object(**format, "schema", "text.format");
    if (!schema) return std::unexpected(std::move(schema.error()));
    if (*schema == nullptr) return invalid("`text.format.schema` is required");
    auto strict = json::optional_bool(**format, "strict", "text.format");
    if (!strict) return std::unexpected(std::move(strict.error()));
    out.response_format.kind = ResponseFormat::Kind::kJsonSchema;
    out.response_format.name = std::string(*name);
    out.response_format.strict = strict->value_or(false);
    bj::value& owned = body.at("text").get_object().at("format").get_object().at("schema");
    chat::JsonArena::adopt(out.response_format.schema, std::move(owned));
  } else {
    return invalid("`text.format.type` must be one of text, json_object, json_schema; got " +
                   quoted(*type));
  }
  return {};
}

core::Result<void> decode_parameters(bj::object& body, ChatRequest& out) {
  auto tokens = json::optional_int(body, "max_output_tokens", "");
  if (!tokens) return std::unexpected(std::move(tokens.error()));
  if (*tokens) {
    if (**tokens < 1) {
      return invalid("`max_output_tokens` must be at least 1, got " + std::to_string(**tokens));
    }
    out.max_tokens = **tokens;
  }
  auto temperature = json::optional_number(body, "temperature", "");
  if (!temperature) return std::unexpected(std::move(temperature.error()));
  out.temperature = *temperature;
  auto top_p = json::optional_number(body, "top_p", "");
  if (!top_p) return std::unexpected(std::move(top_p.error()));
  out.top_p = *top_p;
  auto parallel = json::optional_bool(body, "parallel_tool_calls", "");
  if (!parallel) return std::unexpected(std::move(parallel.error()));
  out.parallel_tool_calls = *parallel;
  auto stream = json::optional_bool(body, "stream", "");
  if (!stream) return std::unexpected(std::move(stream.error()));
  out.stream = stream->value_or(false);
  // The usage comes with response.completed; the upstream is asked for it either way.
  out.include_usage = out.stream;
  auto store = json::optional_bool(body, "store", "");
  if (!store) return std::unexpected(std::move(store.error()));
  auto reasoning = json::optional_object(body, "reasoning", "");
  if (!reasoning) return std::unexpected(std::move(reasoning.error()));
  if (*reasoning) {
    auto effort = json::optional_string(**reasoning, "effort", "reasoning");
    if (!effort) return std::unexpected(std::move(effort.error()));
    if (*effort) out.reasoning_effort = std::string(**effort);
  }
  for (std::string_view key : {"user", "safety_identifier"}) {
    auto user = json::optional_string(body, key, "");
    if (!user) return std::unexpected(std::move(user.error()));
    if (*user) out.metadata["user_id"] = **user;
  }
  // What needs state the gateway does not keep.
  if (auto previous = json::optional_string(body, "previous_response_id", ""); !previous) {
    return std::unexpected(std::move(previous.error()));
  } else if (*previous) {
    (void)needs_responses_target(out.dialect_only,
                                 "`previous_response_id` refers to a stored response");
  }
  if (auto conversation = body.find("conversation");
      conversation != body.end() && !conversation->value().is_null()) {
    (void)needs_responses_target(out.dialect_only,
                                 "`conversation` refers to a stored conversation");
  }
  if (auto background = json::optional_bool(body, "background", ""); !background) {
    return std::unexpected(std::move(background.error()));
  } else if (background->value_or(false)) {
    (void)needs_responses_target(out.dialect_only, "`background: true` needs a stored response");
  }
  if (auto prompt = body.find("prompt"); prompt != body.end() && !prompt->value().is_null()) {
    (void)needs_responses_target(out.dialect_only, "`prompt` refers to a stored prompt template");
  }
  return {};
}

std::string generated_id(std::string_view prefix) {
  thread_local core::IdGenerator ids(std::random_device{}());
  return std::string(prefix) + ids.next();
}

}  // namespace

core::Result<ChatRequest> decode_request(std::string_view body) {
  // Tools first: tool_choice names one of them. The body is kept for a Responses target.
  return decode_request_tree(
      body, kName,
      {decode_input, decode_tools, decode_tool_choice, decode_text, decode_parameters});
}

Echo echo_of(const ChatRequest& request, std::string_view model) {
  return {std::string(model), request.max_tokens, request.temperature, request.top_p,
          request.parallel_tool_calls.value_or(true)};
}

namespace wire {

bj::object usage_json(const chat::Usage& usage) {
  const std::int64_t input = usage.input_tokens + usage.cached_input_tokens;
  return {{"input_tokens", input},
          {"input_tokens_details", {{"cached_tokens", usage.cached_input_tokens}}},
          {"output_tokens", usage.output_tokens},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", input + usage.output_tokens}};
}

bj::object response_json(std::string_view id, std::int64_t created_at, std::string_view status,
                         const Echo& echo) {
  bj::object out{{"id", id},
                 {"object", "response"},
                 {"created_at", created_at},
                 {"status", status},
                 {"error", nullptr},
                 {"incomplete_details", nullptr},
                 {"instructions", nullptr},
                 {"model", echo.model},
                 {"output", bj::array()},
                 {"parallel_tool_calls", echo.parallel_tool_calls},
                 {"previous_response_id", nullptr},
                 {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
                 {"store", false},
                 {"text", {{"format", {{"type", "text"}}}}},
                 {"tool_choice", "auto"},
                 {"tools", bj::array()},
                 {"truncation", "disabled"},
                 {"usage", nullptr},
                 {"user", nullptr},
                 {"metadata", bj::object()}};
  out["max_output_tokens"] =
      echo.max_output_tokens ? bj::value(*echo.max_output_tokens) : bj::value(nullptr);
  out["temperature"] = echo.temperature ? bj::value(*echo.temperature) : bj::value(nullptr);
  out["top_p"] = echo.top_p ? bj::value(*echo.top_p) : bj::value(nullptr);
  return out;
}

// Status "incomplete" and its details for an answer that was cut; nullopt when it was not.
std::optional<std::string_view> incomplete_reason(FinishReason reason) {
  if (reason == FinishReason::kLength) return "max_output_tokens";
  if (reason == FinishReason::kContentFilter) return "content_filter";
  return std::nullopt;
}

void set_status(bj::object& response, FinishReason reason) {
  if (auto cut = incomplete_reason(reason)) {
    response["status"] = "incomplete";
    response["incomplete_details"] = {{"reason", *cut}};
  } else {
    response["status"] = "completed";
  }
}

bj::object reasoning_item(std::string_view id, std::string_view text) {
  return {{"id", id},
          {"type", "reasoning"},
          {"summary", bj::array{bj::object{{"type", "summary_text"}, {"text", text}}}}};
}

bj::object text_part(std::string_view text) {
  return {{"type", "output_text"}, {"text", text}, {"annotations", bj::array()}};
}

bj::object message_item(std::string_view id, std::string_view status, bj::array content) {
  return {{"id", id},
          {"type", "message"},
          {"status", status},
          {"role", "assistant"},
          {"content", std::move(content)}};
}

bj::object function_call_item(std::string_view id, std::string_view status,
                              std::string_view call_id, std::string_view name,
                              std::string_view arguments) {
  return {{"id", id},     {"type", "function_call"}, {"status", status}, {"call_id", call_id},
          {"name", name}, {"arguments", arguments}};
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string new_id(std::string_view prefix) { return generated_id(prefix); }

}  // namespace wire

std::string encode_response(const ChatResponse& response, const Echo& echo) {
  const std::int64_t created = response.created != 0 ? response.created : wire::now_seconds();
  bj::object out = wire::response_json(wire::new_id("resp_"), created, "completed", echo);
  wire::set_status(out, response.finish_reason);
  bj::array& output = out["output"].get_array();
  if (!response.reasoning.empty()) {
    output.push_back(wire::reasoning_item(wire::new_id("rs_"), response.reasoning));
  }
  if (response.content && (!response.content->empty() || response.tool_calls.empty())) {
    output.push_back(wire::message_item(wire::new_id("msg_"), "completed",
                                        bj::array{wire::text_part(*response.content)}));
  }
  for (const auto& call : response.tool_calls) {
    output.push_back(wire::function_call_item(wire::new_id("fc_"), "completed", call.id, call.name,
                                              call.arguments));
  }
  out["usage"] = wire::usage_json(response.usage);
  return json::serialize(out);
}

std::string encode_error(const core::Error& error, const bj::object& extra) {
  return openai::encode_error(error, extra);
}

}  // namespace backstop::dialects::responses
