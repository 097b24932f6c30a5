#include "dialects/anthropic/anthropic.h"

#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/serialize.hpp>
#include <random>

#include "core/ids.h"
#include "dialects/anthropic/wire.h"
#include "dialects/decode_json.h"
#include "dialects/wire_text.h"
#include "json/json.h"

namespace backstop::dialects::anthropic {
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
  return core::fail(ErrorCode::kBadResponse, "not a message: " + std::move(message));
}

// {type: base64, media_type, data} → a data: URL; {type: url, url} → the URL.
core::Result<ContentPart> decode_image(const bj::object& block, const std::string& path) {
  auto source = json::optional_object(block, "source", path);
  if (!source) return std::unexpected(std::move(source.error()));
  if (*source == nullptr) return invalid(code_quoted(path + ".source") + " is required");
  std::string spath = path + ".source";
  auto type = json::required_string(**source, "type", spath);
  if (!type) return std::unexpected(std::move(type.error()));
  ContentPart part{ContentPart::Kind::kImage, {}, {}};
  if (*type == "base64") {
    auto media_type = json::required_string(**source, "media_type", spath);
    if (!media_type) return std::unexpected(std::move(media_type.error()));
    auto data = json::required_string(**source, "data", spath);
    if (!data) return std::unexpected(std::move(data.error()));
    part.image_url = "data:" + std::string(*media_type) + ";base64," + std::string(*data);
  } else if (*type == "url") {
    auto url = json::required_string(**source, "url", spath);
    if (!url) return std::unexpected(std::move(url.error()));
    part.image_url = std::string(*url);
  } else {
    return invalid(code_quoted(spath + ".type") + " must be one of base64, url; got " +
                   quoted(*type));
  }
  return part;
}

// Notes the first thing in a request that only an Anthropic target can carry.
void only_anthropic(ChatRequest& out, const std::string& path, std::string_view type) {
  if (out.dialect_only.empty())
    out.dialect_only = code_quoted(path) + " (" + std::string(type) + ")";
}

// The text blocks of a document's {type: content} source, as text parts.
core::Result<void> decode_document_content(const bj::value& content, const std::string& path,
                                           std::vector<ContentPart>& out) {
  if (content.is_string()) {
    out.push_back({ContentPart::Kind::kText, std::string(view(content.get_string())), {}});
    return {};
  }
  if (!content.is_array()) {
    return invalid(code_quoted(path) + " must be a string or an array, got " +
                   std::string(json::kind_name(content)));
  }
  const auto& blocks = content.get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    std::string bpath = json::index_path(path, i);
    if (!blocks[i].is_object()) return not_object(bpath, blocks[i]);
    // Only text is read; an image inside a document reaches an Anthropic target alone.
    if (string_or_empty(blocks[i].get_object(), "type") != "text") continue;
    auto text = json::required_string(blocks[i].get_object(), "text", bpath);
    if (!text) return std::unexpected(std::move(text.error()));
    out.push_back({ContentPart::Kind::kText, std::string(*text), {}});
  }
  return {};
}

// A document block: a PDF as base64 becomes a file part, plain text and content sources text
// parts; a document by URL or file id only an Anthropic target can fetch.
core::Result<void> decode_document(const bj::object& block, const std::string& path,
                                   ChatRequest& request, std::vector<ContentPart>& out) {
  auto source = json::optional_object(block, "source", path);
  if (!source) return std::unexpected(std::move(source.error()));
  if (*source == nullptr) return invalid(code_quoted(path + ".source") + " is required");
  std::string spath = path + ".source";
  auto type = json::required_string(**source, "type", spath);
  if (!type) return std::unexpected(std::move(type.error()));
  if (*type == "base64") {
    auto media_type = json::required_string(**source, "media_type", spath);
    if (!media_type) return std::unexpected(std::move(media_type.error()));
    auto data = json::required_string(**source, "data", spath);
    if (!data) return std::unexpected(std::move(data.error()));
    out.push_back({ContentPart::Kind::kFile, std::string(string_or_empty(block, "title")),
                   "data:" + std::string(*media_type) + ";base64," + std::string(*data)});
  } else if (*type == "text") {
    auto data = json::required_string(**source, "data", spath);
    if (!data) return std::unexpected(std::move(data.error()));
    out.push_back({ContentPart::Kind::kText, std::string(*data), {}});
  } else if (*type == "content") {
    auto content = source.value()->find("content");
    if (content == source.value()->end()) {
      return invalid(code_quoted(spath + ".content") + " is required");
    }
    return decode_document_content(content->value(), spath + ".content", out);
  } else {
    only_anthropic(request, path, "document " + std::string(*type));
  }
  return {};
}

// A block of user content: text, image or document; any other kind is carried only to an
// Anthropic target. False when it was not one of the three.
core::Result<bool> decode_media_block(const bj::object& block, const std::string& path,
                                      std::string_view type, ChatRequest& request,
                                      std::vector<ContentPart>& out) {
  if (type == "image") {
    auto part = decode_image(block, path);
    if (!part) return std::unexpected(std::move(part.error()));
    out.push_back(std::move(*part));
  } else if (type == "text") {
    auto text = json::required_string(block, "text", path);
    if (!text) return std::unexpected(std::move(text.error()));
    out.push_back({ContentPart::Kind::kText, std::string(*text), {}});
  } else if (type == "document") {
    auto ok = decode_document(block, path, request, out);
    if (!ok) return std::unexpected(std::move(ok.error()));
  } else {
    return false;
  }
  return true;
}

core::Result<Message> decode_tool_result(const bj::object& block, const std::string& path,
                                         ChatRequest& request) {
  Message message;
  message.role = Role::kTool;
  auto id = json::required_string(block, "tool_use_id", path);
  if (!id) return std::unexpected(std::move(id.error()));
  message.tool_call_id = std::string(*id);
  auto is_error = json::optional_bool(block, "is_error", path);
  if (!is_error) return std::unexpected(std::move(is_error.error()));
  message.tool_error = is_error->value_or(false);
  auto content = block.find("content");
  if (content == block.end() || content->value().is_null()) return message;
  std::string cpath = path + ".content";
  if (content->value().is_string()) {
    message.content.push_back(
        {ContentPart::Kind::kText, std::string(view(content->value().get_string())), {}});
    return message;
  }
  if (!content->value().is_array()) {
    return invalid(code_quoted(cpath) + " must be a string or an array, got " +
                   std::string(json::kind_name(content->value())));
  }
  const auto& blocks = content->value().get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    std::string bpath = json::index_path(cpath, i);
    if (!blocks[i].is_object()) return not_object(bpath, blocks[i]);
    auto type = json::required_string(blocks[i].get_object(), "type", bpath);
    if (!type) return std::unexpected(std::move(type.error()));
    auto media = decode_media_block(blocks[i].get_object(), bpath, *type, request, message.content);
    if (!media) return std::unexpected(std::move(media.error()));
    if (!*media) only_anthropic(request, bpath, *type);
  }
  return message;
}

// Text blocks (with cache_control or citations, which only Anthropic reads) as the text
// parts of a system prompt: the top-level `system`, or a `role: "system"` message.
core::Result<void> decode_system_blocks(const bj::value& value, const std::string& path,
                                        Message& out) {
  if (value.is_string()) {
    out.content.push_back({ContentPart::Kind::kText, std::string(view(value.get_string())), {}});
    return {};
  }
  if (!value.is_array()) {
    return invalid(code_quoted(path) + " must be a string or an array of text blocks, got " +
                   std::string(json::kind_name(value)));
  }
  const auto& blocks = value.get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    std::string bpath = json::index_path(path, i);
    if (!blocks[i].is_object()) return not_object(bpath, blocks[i]);
    auto type = json::required_string(blocks[i].get_object(), "type", bpath);
    if (!type) return std::unexpected(std::move(type.error()));
    if (*type != "text") {
      return invalid(code_quoted(bpath + ".type") + " must be \"text\", got " + quoted(*type));
    }
    auto text = json::required_string(blocks[i].get_object(), "text", bpath);
    if (!text) return std::unexpected(std::move(text.error()));
    out.content.push_back({ContentPart::Kind::kText, std::string(*text), {}});
  }
  return {};
}

// One client message; a user message with tool_result blocks becomes several messages
// (each tool_result a Role::kTool message, text around them user messages), in order. A
// `role: "system"` message (Claude Code sends them between turns) stays where it is.
core::Result<void> decode_message(const bj::value& value, std::size_t index, ChatRequest& request) {
  std::vector<Message>& out = request.messages;
  std::string path = json::index_path("messages", index);
  if (!value.is_object()) return not_object(path, value);
  const auto& obj = value.get_object();
  auto role_name = json::required_string(obj, "role", path);
  if (!role_name) return std::unexpected(std::move(role_name.error()));
  Role role;
  if (*role_name == "user") {
    role = Role::kUser;
  } else if (*role_name == "assistant") {
    role = Role::kAssistant;
  } else if (*role_name == "system") {
    role = Role::kSystem;
  } else {
    return invalid(code_quoted(path + ".role") + " must be one of user, assistant, system; got " +
                   quoted(*role_name));
  }
  auto content = obj.find("content");
  std::string cpath = path + ".content";
  if (content == obj.end() || content->value().is_null()) {
    return invalid(code_quoted(cpath) + " is required");
  }
  Message current;
  current.role = role;
  if (role == Role::kSystem) {
    auto ok = decode_system_blocks(content->value(), cpath, current);
    if (!ok) return std::unexpected(std::move(ok.error()));
    out.push_back(std::move(current));
    return {};
  }
  if (content->value().is_string()) {
    current.content.push_back(
        {ContentPart::Kind::kText, std::string(view(content->value().get_string())), {}});
    out.push_back(std::move(current));
    return {};
  }
  if (!content->value().is_array()) {
    return invalid(code_quoted(cpath) + " must be a string or an array, got " +
                   std::string(json::kind_name(content->value())));
  }
  bool pending = false;  // `current` holds something not yet emitted
  const auto& blocks = content->value().get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    std::string bpath = json::index_path(cpath, i);
    if (!blocks[i].is_object()) return not_object(bpath, blocks[i]);
    const auto& block = blocks[i].get_object();
    auto type = json::required_string(block, "type", bpath);
    if (!type) return std::unexpected(std::move(type.error()));
    if (*type == "tool_result" && role == Role::kUser) {
      if (pending) {
        out.push_back(std::move(current));
        current = Message();
        current.role = Role::kUser;
      }
      pending = false;
      auto result = decode_tool_result(block, bpath, request);
      if (!result) return std::unexpected(std::move(result.error()));
      out.push_back(std::move(*result));
    } else if (*type == "tool_use" && role == Role::kAssistant) {
      auto id = json::required_string(block, "id", bpath);
      if (!id) return std::unexpected(std::move(id.error()));
      auto name = json::required_string(block, "name", bpath);
      if (!name) return std::unexpected(std::move(name.error()));
      auto input = json::optional_object(block, "input", bpath);
      if (!input) return std::unexpected(std::move(input.error()));
      current.tool_calls.push_back({std::string(*id), std::string(*name),
                                    *input ? bj::serialize(**input) : std::string("{}")});
      pending = true;
    } else if (*type == "thinking" && role == Role::kAssistant) {
      auto thinking = json::required_string(block, "thinking", bpath);
      if (!thinking) return std::unexpected(std::move(thinking.error()));
      current.reasoning += *thinking;
      if (string_or_empty(block, "signature").empty()) request.unsigned_thinking = true;
      pending = true;
    } else if (*type == "redacted_thinking" && role == Role::kAssistant) {
      // Encrypted reasoning only the Anthropic API can read; the original body keeps it.
      pending = true;
    } else if (*type == "text" || role == Role::kUser) {
      // Images and documents are read from user turns only, as Anthropic takes them.
      auto media = decode_media_block(block, bpath, *type, request, current.content);
      if (!media) return std::unexpected(std::move(media.error()));
      if (!*media) only_anthropic(request, bpath, *type);
      pending = true;
    } else {
      // Server tool calls and their results, and whatever block Anthropic adds next: the
      // client's bytes carry them to an Anthropic target; no other dialect has them.
      only_anthropic(request, bpath, *type);
      pending = true;
    }
  }
  if (pending || blocks.empty()) out.push_back(std::move(current));
  return {};
}

core::Result<void> decode_messages(bj::object& body, ChatRequest& out) {
  auto messages = json::optional_array(body, "messages", "");
  if (!messages) return std::unexpected(std::move(messages.error()));
  if (*messages == nullptr) return invalid("`messages` is required");
  if ((*messages)->empty()) return invalid("`messages` must not be empty");
  for (std::size_t i = 0; i < (*messages)->size(); ++i) {
    auto ok = decode_message((**messages)[i], i, out);
    if (!ok) return std::unexpected(std::move(ok.error()));
  }
  return {};
}

core::Result<void> decode_system(bj::object& body, ChatRequest& out) {
  auto it = body.find("system");
  if (it == body.end() || it->value().is_null()) return {};
  Message system;
  system.role = Role::kSystem;
  auto ok = decode_system_blocks(it->value(), "system", system);
  if (!ok) return std::unexpected(std::move(ok.error()));
  out.messages.insert(out.messages.begin(), std::move(system));
  return {};
}

core::Result<void> decode_tools(bj::object& body, ChatRequest& out) {
  auto tools = json::optional_array(body, "tools", "");
  if (!tools) return std::unexpected(std::move(tools.error()));
  if (*tools == nullptr) return {};
  for (std::size_t i = 0; i < (*tools)->size(); ++i) {
    std::string path = json::index_path("tools", i);
    const auto& value = (**tools)[i];
    if (!value.is_object()) return not_object(path, value);
    const auto& tool = value.get_object();
    auto type = json::optional_string(tool, "type", path);
    if (!type) return std::unexpected(std::move(type.error()));
    if (*type && **type != "custom") {
      // Server tools (web search, code execution ...) run inside Anthropic's API and have
      // no equivalent on another target: the client's bytes carry them to Anthropic.
      only_anthropic(out, path, **type);
      continue;
    }
    auto name = json::required_string(tool, "name", path);
    if (!name) return std::unexpected(std::move(name.error()));
    if (name->empty()) return invalid(code_quoted(path + ".name") + " must not be empty");
    auto description = json::optional_string(tool, "description", path);
    if (!description) return std::unexpected(std::move(description.error()));
    auto schema = json::optional_object(tool, "input_schema", path);
    if (!schema) return std::unexpected(std::move(schema.error()));
    if (*schema == nullptr) return invalid(code_quoted(path + ".input_schema") + " is required");
    out.tools.push_back(
        {std::string(*name), *description ? std::string(**description) : "", bj::value()});
    // Moved out of the tree the decoder owns, not copied: the same arena holds both.
    bj::value& owned = body.at("tools").get_array()[i].get_object().at("input_schema");
    chat::JsonArena::adopt(out.tools.back().parameters, std::move(owned));
  }
  return {};
}

core::Result<void> decode_tool_choice(bj::object& body, ChatRequest& out) {
  auto choice = json::optional_object(body, "tool_choice", "");
  if (!choice) return std::unexpected(std::move(choice.error()));
  if (*choice == nullptr) return {};
  auto type = json::required_string(**choice, "type", "tool_choice");
  if (!type) return std::unexpected(std::move(type.error()));
  if (*type == "auto") {
    out.tool_choice.kind = ToolChoice::Kind::kAuto;
  } else if (*type == "any") {
    out.tool_choice.kind = ToolChoice::Kind::kRequired;
  } else if (*type == "none") {
    out.tool_choice.kind = ToolChoice::Kind::kNone;
  } else if (*type == "tool") {
    auto name = json::required_string(**choice, "name", "tool_choice");
    if (!name) return std::unexpected(std::move(name.error()));
    // A server tool's name is not among the custom tools; Anthropic checks it.
    if (out.find_tool(*name) == nullptr && out.dialect_only.empty()) {
      return invalid("`tool_choice.name` is " + quoted(*name) + ", which is not one of `tools`");
    }
    out.tool_choice = {ToolChoice::Kind::kNamed, std::string(*name)};
  } else {
    return invalid("`tool_choice.type` must be one of auto, any, tool, none; got " + quoted(*type));
  }
  auto disable = json::optional_bool(**choice, "disable_parallel_tool_use", "tool_choice");
  if (!disable) return std::unexpected(std::move(disable.error()));
  if (*disable) out.parallel_tool_calls = !**disable;
  return {};
}

core::Result<void> decode_max_tokens(bj::object& body, ChatRequest& out) {
  auto max_tokens = json::optional_int(body, "max_tokens", "");
  if (!max_tokens) return std::unexpected(std::move(max_tokens.error()));
  if (!*max_tokens) return invalid("`max_tokens` is required");
  if (**max_tokens < 1) {
    return invalid("`max_tokens` must be at least 1, got " + std::to_string(**max_tokens));
  }
  out.max_tokens = **max_tokens;
  return {};
}

// Structured output: `output_config.format` (or the beta's top-level `output_format`), a
// JSON schema the answer must follow, becomes the request's response format. `effort`, and
// `thinking` and `context_management` (checked only for their type), mean nothing to other
// dialects: the client's bytes carry them to Anthropic; they are dropped for other targets.
core::Result<void> decode_output_config(bj::object& body, ChatRequest& out) {
  for (std::string_view key : {"thinking", "context_management"}) {
    auto field = json::optional_object(body, key, "");
    if (!field) return std::unexpected(std::move(field.error()));
  }
  auto config = json::optional_object(body, "output_config", "");
  if (!config) return std::unexpected(std::move(config.error()));
  // The format's holder and the path to it: output_config.format, else output_format.
  bj::object* holder = nullptr;
  std::string path;
  if (*config != nullptr) {
    auto format = json::optional_object(**config, "format", "output_config");
    if (!format) return std::unexpected(std::move(format.error()));
    if (*format != nullptr) {
      holder = &body.at("output_config").get_object();
      path = "output_config.format";
    }
  }
  if (holder == nullptr) {
    auto beta = json::optional_object(body, "output_format", "");
    if (!beta) return std::unexpected(std::move(beta.error()));
    if (*beta == nullptr) return {};
    holder = &body;
    path = "output_format";
  }
  bj::object& format = holder->at(holder == &body ? "output_format" : "format").get_object();
  auto type = json::required_string(format, "type", path);
  if (!type) return std::unexpected(std::move(type.error()));
  if (*type != "json_schema") {
    return invalid(code_quoted(path + ".type") + " must be \"json_schema\", got " + quoted(*type));
  }
  auto schema = json::optional_object(format, "schema", path);
  if (!schema) return std::unexpected(std::move(schema.error()));
  if (*schema == nullptr) return invalid(code_quoted(path + ".schema") + " is required");
  out.response_format.kind = ResponseFormat::Kind::kJsonSchema;
  out.response_format.name = "output";
  out.response_format.strict = true;
  // Moved out of the tree the decoder owns, not copied: the same arena holds both.
  chat::JsonArena::adopt(out.response_format.schema, std::move(format.at("schema")));
  return {};
}

core::Result<void> decode_parameters(bj::object& body, ChatRequest& out) {
  auto stops = json::optional_array(body, "stop_sequences", "");
  if (!stops) return std::unexpected(std::move(stops.error()));
  if (*stops) {
    for (std::size_t i = 0; i < (*stops)->size(); ++i) {
      const auto& stop = (**stops)[i];
      if (!stop.is_string()) {
        return invalid(code_quoted(json::index_path("stop_sequences", i)) +
                       " must be a string, got " + std::string(json::kind_name(stop)));
      }
      out.stop.emplace_back(view(stop.get_string()));
    }
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
  // Anthropic streams always end with usage (message_delta).
  out.include_usage = out.stream;
  auto metadata = json::optional_object(body, "metadata", "");
  if (!metadata) return std::unexpected(std::move(metadata.error()));
  if (*metadata) out.metadata = **metadata;
  return {};
}

// Splits "data:image/png;base64,AAAA" into its media type and data; false for other URLs.
bool split_data_url(std::string_view url, std::string_view& media_type, std::string_view& data) {
  constexpr std::string_view kPrefix = "data:";
  constexpr std::string_view kBase64 = ";base64,";
  if (!url.starts_with(kPrefix)) return false;
  auto marker = url.find(kBase64);
  if (marker == std::string_view::npos) return false;
  media_type = url.substr(kPrefix.size(), marker - kPrefix.size());
  data = url.substr(marker + kBase64.size());
  return true;
}

bj::object encode_image(const std::string& url) {
  std::string_view media_type, data;
  if (split_data_url(url, media_type, data)) {
    return {{"type", "image"},
            {"source", bj::object{{"type", "base64"}, {"media_type", media_type}, {"data", data}}}};
  }
  return {{"type", "image"}, {"source", bj::object{{"type", "url"}, {"url", url}}}};
}

// A file (a data: URL) as a document block.
bj::object encode_document(const ContentPart& part) {
  std::string_view media_type, data;
  if (!split_data_url(part.image_url, media_type, data)) {
    media_type = "application/pdf";
    data = part.image_url;
  }
  bj::object block{
      {"type", "document"},
      {"source", bj::object{{"type", "base64"}, {"media_type", media_type}, {"data", data}}}};
  if (!part.text.empty()) block["title"] = part.text;
  return block;
}

// Anthropic rejects empty text blocks, so empty text parts are dropped.
void encode_parts(const std::vector<ContentPart>& parts, bj::array& out) {
  for (const auto& part : parts) {
    switch (part.kind) {
      case ContentPart::Kind::kImage:
        out.push_back(encode_image(part.image_url));
        break;
      case ContentPart::Kind::kFile:
        out.push_back(encode_document(part));
        break;
      case ContentPart::Kind::kText:
        if (!part.text.empty()) out.push_back(bj::object{{"type", "text"}, {"text", part.text}});
        break;
    }
  }
}

// Arguments that are not a JSON object cannot be a tool_use input; {} keeps the turn valid.
bj::value parsed_arguments(const std::string& arguments) {
  auto parsed = json::parse(arguments);
  if (parsed && parsed->is_object()) return std::move(*parsed);
  return bj::object();
}

struct Turn {
  std::string_view role;
  bj::array blocks;
};

// Adds blocks to the conversation; Anthropic needs alternating turns, so blocks of the same
// role as the last turn (tool results and the user text after them) join that turn.
void append_turn(std::vector<Turn>& turns, std::string_view role, bj::array blocks) {
  if (blocks.empty()) return;
  if (!turns.empty() && turns.back().role == role) {
    for (auto& block : blocks) turns.back().blocks.push_back(std::move(block));
    return;
  }
  turns.push_back({role, std::move(blocks)});
}

bj::array encode_messages(const ChatRequest& request) {
  std::vector<Turn> turns;
  for (const auto& message : request.messages) {
    bj::array blocks;
    switch (message.role) {
      case Role::kSystem:
        continue;
      case Role::kUser:
        encode_parts(message.content, blocks);
        append_turn(turns, "user", std::move(blocks));
        break;
      case Role::kAssistant:
        encode_parts(message.content, blocks);
        for (const auto& call : message.tool_calls) {
          blocks.push_back(bj::object{{"type", "tool_use"},
                                      {"id", call.id},
                                      {"name", call.name},
                                      {"input", parsed_arguments(call.arguments)}});
        }
        append_turn(turns, "assistant", std::move(blocks));
        break;
      case Role::kTool: {
        bj::object result{{"type", "tool_result"}, {"tool_use_id", message.tool_call_id}};
        std::string text = message.text();
        if (!text.empty()) result["content"] = text;
        if (message.tool_error) result["is_error"] = true;
        blocks.push_back(std::move(result));
        append_turn(turns, "user", std::move(blocks));
        break;
      }
    }
  }
  bj::array out;
  for (auto& turn : turns) {
    bj::object message{{"role", turn.role}};
    // A lone text block is sent as a plain string, the form most requests use.
    const auto& first = turn.blocks.front().get_object();
    if (turn.blocks.size() == 1 && first.at("type").as_string() == "text") {
      message["content"] = first.at("text");
    } else {
      message["content"] = std::move(turn.blocks);
    }
    out.push_back(std::move(message));
  }
  return out;
}

// Whether the format goes to Anthropic as output_config.format.
bool constrained(const ResponseFormat& format) {
  return format.kind == ResponseFormat::Kind::kJsonSchema && format.strict &&
         format.schema.is_object();
}

// System messages, and for a response_format the instruction Anthropic has no field for. A
// strict JSON schema goes to output_config.format instead: Anthropic constrains decoding to
// the same subset of JSON Schema (additionalProperties false) as OpenAI's strict mode, and
// refuses schemas outside it, so a schema that was not strict is only asked for in words.
std::string encode_system(const ChatRequest& request) {
  std::string system;
  auto add = [&system](std::string_view text) {
    if (text.empty()) return;
    if (!system.empty()) system += "\n\n";
    system += text;
  };
  for (const auto& message : request.messages) {
    if (message.role == Role::kSystem) add(message.text());
  }
  switch (request.response_format.kind) {
    case ResponseFormat::Kind::kJsonObject:
      add("Respond with a single JSON object and nothing else.");
      break;
    case ResponseFormat::Kind::kJsonSchema:
      if (constrained(request.response_format)) break;
      if (request.response_format.schema.is_null()) {
        add("Respond with a single JSON object and nothing else.");
        break;
      }
      add("Respond with a single JSON object and nothing else. It must conform to this JSON "
          "Schema: " +
          bj::serialize(request.response_format.schema));
      break;
    case ResponseFormat::Kind::kUnset:
    case ResponseFormat::Kind::kText:
      break;
  }
  return system;
}

bool is_empty_schema(const bj::value& schema) {
  return schema.is_null() || (schema.is_object() && schema.get_object().empty());
}

void encode_tools(const ChatRequest& request, bj::object& body) {
  if (request.tools.empty()) return;
  bj::array tools;
  for (const auto& tool : request.tools) {
    bj::object out{{"name", tool.name}};
    if (!tool.description.empty()) out["description"] = tool.description;
    out["input_schema"] =
        is_empty_schema(tool.parameters)
            ? bj::value(bj::object{{"type", "object"}, {"properties", bj::object()}})
            : tool.parameters;
    tools.push_back(std::move(out));
  }
  body["tools"] = std::move(tools);

  bj::object choice;
  switch (request.tool_choice.kind) {
    case ToolChoice::Kind::kAuto:
      choice["type"] = "auto";
      break;
    case ToolChoice::Kind::kNone:
      choice["type"] = "none";
      break;
    case ToolChoice::Kind::kRequired:
      choice["type"] = "any";
      break;
    case ToolChoice::Kind::kNamed:
      choice["type"] = "tool";
      choice["name"] = request.tool_choice.name;
      break;
    case ToolChoice::Kind::kUnset:
      break;
  }
  bool serial = request.parallel_tool_calls && !*request.parallel_tool_calls;
  // disable_parallel_tool_use lives on the tool_choice, and `none` does not take it.
  if (serial && request.tool_choice.kind != ToolChoice::Kind::kNone) {
    if (choice.empty()) choice["type"] = "auto";
    choice["disable_parallel_tool_use"] = true;
  }
  if (!choice.empty()) body["tool_choice"] = std::move(choice);
}

bj::object encode_fields(const ChatRequest& request, std::string_view model,
                         std::int64_t default_max_tokens) {
  bj::object body{{"model", model},
                  {"max_tokens", request.max_tokens.value_or(default_max_tokens)}};
  std::string system = encode_system(request);
  if (!system.empty()) body["system"] = system;
  body["messages"] = encode_messages(request);
  encode_tools(request, body);
  if (!request.stop.empty()) {
    bj::array stops;
    for (const auto& stop : request.stop) stops.push_back(bj::string(stop));
    body["stop_sequences"] = std::move(stops);
  }
  // OpenAI's temperature goes to 2; Anthropic's stops at 1.
  if (request.temperature) body["temperature"] = std::min(*request.temperature, 1.0);
  if (request.top_p) body["top_p"] = *request.top_p;
  if (request.stream) body["stream"] = true;
  if (constrained(request.response_format)) {
    body["output_config"] =
        bj::object{{"format", bj::object{{"type", "json_schema"},
                                         {"schema", request.response_format.schema}}}};
  }
  // Anthropic's metadata takes only user_id; anything else is rejected.
  if (auto user = request.metadata.find("user_id");
      user != request.metadata.end() && user->value().is_string()) {
    body["metadata"] = bj::object{{"user_id", user->value()}};
  }
  return body;
}

// A count the upstream reports, clamped to 0..kMaxTokenCount so that sums cannot overflow.
std::int64_t int_or_zero(const bj::object& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? 0 : clamped_count(it->value()).value_or(0);
}

core::Result<void> decode_blocks(const bj::array& blocks, ChatResponse& out) {
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    std::string path = json::index_path("content", i);
    if (!blocks[i].is_object()) return bad_response(code_quoted(path) + " is not an object");
    const auto& block = blocks[i].get_object();
    auto type = block.find("type");
    if (type == block.end() || !type->value().is_string()) {
      return bad_response(code_quoted(path + ".type") + " is missing");
    }
    auto kind = view(type->value().get_string());
    auto string_field = [&block](std::string_view key) -> std::string {
      auto it = block.find(key);
      return it != block.end() && it->value().is_string()
                 ? std::string(view(it->value().get_string()))
                 : std::string();
    };
    if (kind == "text") {
      out.content = out.content.value_or("") + string_field("text");
    } else if (kind == "thinking") {
      out.reasoning += string_field("thinking");
      if (auto signature = string_field("signature"); !signature.empty()) {
        out.reasoning_signature = std::move(signature);
      }
    } else if (kind == "tool_use") {
      ToolCall call{string_field("id"), string_field("name"), "{}"};
      if (call.name.empty()) return bad_response(code_quoted(path + ".name") + " is missing");
      if (auto input = block.find("input"); input != block.end()) {
        call.arguments = bj::serialize(input->value());
      }
      out.tool_calls.push_back(std::move(call));
    }
    // Other blocks (redacted_thinking, server tool results) carry nothing backstop models.
  }
  return {};
}

std::string generated_id() {
  thread_local core::IdGenerator ids(std::random_device{}());
  return "msg_" + ids.next();
}

std::string_view error_type(int status) {
  switch (status) {
    case 400:
    case 405:
    case 408:
    case 422:
    case 431:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return "api_error";
  }
}

// Removes the thinking blocks that have no signature from the assistant turns: Anthropic
// refuses them, and they hold another model's reasoning, which Claude cannot continue anyway.
void drop_unsigned_thinking(bj::object& body) {
  auto* messages = body.if_contains("messages");
  if (messages == nullptr || !messages->is_array()) return;
  for (auto& message : messages->get_array()) {
    auto* content = message.is_object() ? message.get_object().if_contains("content") : nullptr;
    if (content == nullptr || !content->is_array()) continue;
    auto& blocks = content->get_array();
    auto unsigned_thinking = [](const bj::value& block) {
      return block.is_object() && string_or_empty(block.get_object(), "type") == "thinking" &&
             string_or_empty(block.get_object(), "signature").empty();
    };
    blocks.erase(std::remove_if(blocks.begin(), blocks.end(), unsigned_thinking), blocks.end());
    // A turn of nothing but such thinking keeps a word, so that turns still alternate.
    if (blocks.empty()) blocks.push_back(bj::object{{"type", "text"}, {"text", "(reasoning)"}});
  }
}

}  // namespace

namespace wire {

FinishReason decode_stop_reason(std::string_view reason) {
  if (reason == "end_turn" || reason == "stop_sequence" || reason == "pause_turn") {
    return FinishReason::kStop;
  }
  if (reason == "max_tokens") return FinishReason::kLength;
  if (reason == "tool_use") return FinishReason::kToolCalls;
  if (reason == "refusal") return FinishReason::kContentFilter;
  return FinishReason::kUnknown;
}

std::string_view encode_stop_reason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "max_tokens";
    case FinishReason::kToolCalls:
      return "tool_use";
    case FinishReason::kContentFilter:
      return "refusal";
    case FinishReason::kStop:
    case FinishReason::kUnknown:
      break;
  }
  return "end_turn";
}

}  // namespace wire

core::Result<ChatRequest> decode_request(std::string_view body) {
  // The system prompt is inserted before the messages, so it is decoded after them.
  return decode_request_tree(body, kName,
                             {decode_max_tokens, decode_parameters, decode_output_config,
                              decode_messages, decode_system, decode_tools, decode_tool_choice});
}

core::Result<ChatRequest> decode_count_tokens_request(std::string_view body) {
  return decode_request_tree(body, kName,
                             {decode_parameters, decode_output_config, decode_messages,
                              decode_system, decode_tools, decode_tool_choice});
}

std::string encode_request(const ChatRequest& request, std::string_view model,
                           std::int64_t default_max_tokens) {
  // A request built in code has no original; it is encoded from its fields.
  if (request.origin != kName || !request.has_original()) {
    return json::serialize(encode_fields(request, model, default_max_tokens));
  }
  // The client's own bytes with the model replaced, unless `stream` was changed since or
  // thinking without a signature has to go.
  const chat::OriginalBody& sent = request.original_body;
  if (!sent.text.empty() && sent.stream == request.stream && !request.unsigned_thinking) {
    return sent.with_model(model);
  }
  bj::object body = request.original_tree();
  body["model"] = model;
  if (request.unsigned_thinking) drop_unsigned_thinking(body);
  return json::serialize(body);
}

core::Result<ChatResponse> decode_response(std::string_view body) {
  // The tree lives only while the answer is read out of it: a stack arena serves most.
  unsigned char arena[8192];
  bj::monotonic_resource resource(arena, sizeof arena);
  auto parsed = json::parse_object(body, &resource);
  if (!parsed) return bad_response(parsed.error().message);
  const auto& obj = *parsed;
  if (auto type = obj.find("type");
      type != obj.end() &&
      (!type->value().is_string() || type->value().get_string() != "message")) {
    return bad_response("`type` is " + bj::serialize(type->value()));
  }
  auto content = obj.find("content");
  if (content == obj.end() || !content->value().is_array()) {
    return bad_response("`content` is missing");
  }
  ChatResponse response;
  if (auto id = obj.find("id"); id != obj.end() && id->value().is_string()) {
    response.id = std::string(view(id->value().get_string()));
  }
  if (auto model = obj.find("model"); model != obj.end() && model->value().is_string()) {
    response.model = std::string(view(model->value().get_string()));
  }
  auto ok = decode_blocks(content->value().get_array(), response);
  if (!ok) return std::unexpected(std::move(ok.error()));
  auto stop = obj.find("stop_reason");
  response.finish_reason = stop == obj.end() || !stop->value().is_string()
                               ? FinishReason::kUnknown
                               : wire::decode_stop_reason(view(stop->value().get_string()));
  if (auto sequence = obj.find("stop_sequence"); response.finish_reason == FinishReason::kStop &&
                                                 sequence != obj.end() &&
                                                 sequence->value().is_string()) {
    response.stop_sequence = std::string(view(sequence->value().get_string()));
  }
  if (auto usage = obj.find("usage"); usage != obj.end() && usage->value().is_object()) {
    const auto& u = usage->value().get_object();
    std::int64_t creation = int_or_zero(u, "cache_creation_input_tokens");
    response.usage.input_tokens = int_or_zero(u, "input_tokens") + creation;
    response.usage.cached_input_tokens = int_or_zero(u, "cache_read_input_tokens");
    response.usage.cache_creation_input_tokens = creation;
    response.usage.output_tokens = int_or_zero(u, "output_tokens");
  }
  return response;
}

std::string encode_response(const ChatResponse& response, std::string_view model) {
  bj::array content;
  if (!response.reasoning.empty()) {
    content.push_back(bj::object{{"type", "thinking"},
                                 {"thinking", response.reasoning},
                                 {"signature", response.reasoning_signature}});
  }
  if (response.content && !response.content->empty()) {
    content.push_back(bj::object{{"type", "text"}, {"text", *response.content}});
  }
  for (const auto& call : response.tool_calls) {
    content.push_back(bj::object{{"type", "tool_use"},
                                 {"id", call.id},
                                 {"name", call.name},
                                 {"input", parsed_arguments(call.arguments)}});
  }
  const auto& usage = response.usage;
  // A stop sequence ends a plain answer only; tool calls end with tool_use.
  bool stopped_by_sequence = response.stop_sequence && response.tool_calls.empty() &&
                             response.finish_reason == FinishReason::kStop;
  bj::value stop_sequence = nullptr;
  if (stopped_by_sequence) stop_sequence = bj::string(*response.stop_sequence);
  bj::object body{
      {"id", response.id.empty() ? generated_id() : response.id},
      {"type", "message"},
      {"role", "assistant"},
      {"model", model.empty() ? std::string_view(response.model) : model},
      {"content", std::move(content)},
      // An answer that calls tools ends with tool_use for Anthropic clients, whatever the
      // upstream reported (some OpenAI-compatible servers say "stop"), as the stream does.
      {"stop_reason",
       stopped_by_sequence ? std::string_view("stop_sequence")
       : !response.tool_calls.empty() && response.finish_reason == FinishReason::kStop
           ? std::string_view("tool_use")
           : wire::encode_stop_reason(response.finish_reason)},
      {"stop_sequence", std::move(stop_sequence)},
      {"usage",
       bj::object{{"input_tokens", std::max<std::int64_t>(
                                       0, usage.input_tokens - usage.cache_creation_input_tokens)},
                  {"output_tokens", usage.output_tokens},
                  {"cache_read_input_tokens", usage.cached_input_tokens},
                  {"cache_creation_input_tokens", usage.cache_creation_input_tokens}}}};
  return json::serialize(body);
}

std::string encode_error(const core::Error& error, const bj::object& extra) {
  bj::object inner{{"type", error_type(core::client_status(error))}, {"message", error.message}};
  for (const auto& field : extra) inner[field.key()] = field.value();
  return bj::serialize(bj::object{{"type", "error"}, {"error", std::move(inner)}});
}

std::string upstream_error_message(std::string_view body) { return upstream_error_text(body); }

std::optional<std::string> upstream_error_code(std::string_view body) {
  return upstream_error_code_text(body, {"type"});
}

}  // namespace backstop::dialects::anthropic
