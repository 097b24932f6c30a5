#pragma once

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <expected>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "chat/chat.h"
#include "core/error.h"
#include "dialects/wire_text.h"
#include "json/json.h"

// What both dialects' decoders do alike with a parsed body: read strings out of it, word
// what is wrong with a client's request, find an upstream's error message, and read a
// client's request from a tree.
namespace backstop::dialects {

[[nodiscard]] inline std::string_view view(const boost::json::string& s) {
  return {s.data(), s.size()};
}

// The string at `key`, or empty when it is absent, null or not a string.
[[nodiscard]] inline std::string_view string_or_empty(const boost::json::object& obj,
                                                      std::string_view key) {
  auto it = obj.find(key);
  return it != obj.end() && it->value().is_string() ? view(it->value().get_string())
                                                    : std::string_view();
}

// A client's request that is not acceptable: kInvalidArgument with `message`.
[[nodiscard]] inline std::unexpected<core::Error> invalid(std::string message) {
  return core::fail(core::ErrorCode::kInvalidArgument, std::move(message));
}

// A client-sent string, quoted and escaped for an error message.
[[nodiscard]] inline std::string quoted(std::string_view s) {
  return boost::json::serialize(boost::json::value(boost::json::string_view(s)));
}

// A path in backquotes: "`messages[0].content`".
[[nodiscard]] inline std::string code_quoted(std::string_view path) {
  return "`" + std::string(path) + "`";
}

// "`path` must be an object, got <kind of value>".
[[nodiscard]] inline std::unexpected<core::Error> not_object(std::string_view path,
                                                             const boost::json::value& value) {
  return invalid(code_quoted(path) + " must be an object, got " +
                 std::string(json::kind_name(value)));
}

// The error object of an upstream's error body: `error` in {"error": {...}} (the shape both
// APIs use), or the body itself in vLLM's older {"object": "error", "message", ...}; nullptr
// for anything else.
[[nodiscard]] inline const boost::json::object* upstream_error_object(
    const boost::json::value& body) {
  if (!body.is_object()) return nullptr;
  const auto& obj = body.get_object();
  if (const auto* error = obj.if_contains("error"); error != nullptr && error->is_object()) {
    return &error->get_object();
  }
  if (string_or_empty(obj, "object") == "error") return &obj;
  return nullptr;
}

// The message in an upstream's error body ({"error": "..."}, an error object's `message`),
// or the body itself; cut and made valid UTF-8 (upstream_text).
[[nodiscard]] inline std::string upstream_error_text(std::string_view body) {
  auto parsed = json::parse(body);
  if (parsed && parsed->is_object()) {
    const auto& obj = parsed->get_object();
    if (const auto* error = obj.if_contains("error"); error != nullptr && error->is_string()) {
      return upstream_text(view(error->get_string()));
    }
    if (const auto* error = upstream_error_object(*parsed)) {
      if (auto message = string_or_empty(*error, "message"); !message.empty()) {
        return upstream_text(message);
      }
    }
  }
  return upstream_text(body);
}

// The first of `keys` that is a non-empty string in an upstream's error object (cut like
// upstream_text), "" when none is; nullopt when the body has no error object (a proxy's
// HTML page, say).
[[nodiscard]] inline std::optional<std::string> upstream_error_code_text(
    std::string_view body, std::initializer_list<std::string_view> keys) {
  auto parsed = json::parse(body);
  if (!parsed) return std::nullopt;
  const auto* error = upstream_error_object(*parsed);
  if (error == nullptr) return std::nullopt;
  for (std::string_view key : keys) {
    if (auto value = string_or_empty(*error, key); !value.empty()) return upstream_text(value);
  }
  return std::string();
}

// A `tool_choice` given as a string, as OpenAI's two APIs both take it: auto, none, required.
[[nodiscard]] inline core::Result<void> decode_tool_choice_mode(std::string_view choice,
                                                                chat::ToolChoice& out) {
  if (choice == "auto") {
    out.kind = chat::ToolChoice::Kind::kAuto;
  } else if (choice == "none") {
    out.kind = chat::ToolChoice::Kind::kNone;
  } else if (choice == "required") {
    out.kind = chat::ToolChoice::Kind::kRequired;
  } else {
    return invalid("`tool_choice` must be one of auto, none, required; got " + quoted(choice));
  }
  return {};
}

// One part of reading a request from its tree; it may move values out of the tree.
using DecodeStep = core::Result<void> (*)(boost::json::object& body, chat::ChatRequest& out);

// A client's body of dialect `origin` read from a tree: parsed into the request's arena,
// mapped for passthrough as bytes (the tree is kept when it cannot be), its `model` read,
// then each of `steps` in order; the first failing step's error is the answer.
[[nodiscard]] inline core::Result<chat::ChatRequest> decode_request_tree(
    std::string_view body, std::string_view origin, std::initializer_list<DecodeStep> steps) {
  chat::JsonArena arena(body.size());
  chat::OriginalBody::Mapper mapper(body);
  auto parsed = json::parse_object(
      body, arena.storage(),
      [&mapper](std::string_view key, std::string_view value) { mapper.member(key, value); });
  if (!parsed) return std::unexpected(std::move(parsed.error()));
  chat::ChatRequest request;
  request.arena = std::move(arena);
  request.origin = origin;
  request.original_body = mapper.finish();
  // A body that cannot pass through as bytes is kept as a tree, before schemas move out.
  if (request.original_body.text.empty()) {
    chat::JsonArena::adopt(request.original, boost::json::object(*parsed, parsed->storage()));
  }
  boost::json::object& fields = *parsed;
  auto model = json::required_string(fields, "model", "");
  if (!model) return std::unexpected(std::move(model.error()));
  request.model = std::string(*model);
  for (DecodeStep step : steps) {
    auto ok = step(fields, request);
    if (!ok) return std::unexpected(std::move(ok.error()));
  }
  request.original_body.stream = request.stream;
  return request;
}

}  // namespace backstop::dialects
