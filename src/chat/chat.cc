#include "chat/chat.h"

#include <algorithm>
#include <cstring>

namespace backstop::chat {
namespace {

constexpr std::size_t kNotFound = static_cast<std::size_t>(-1);

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::size_t skip_space(std::string_view text, std::size_t at) {
  while (at < text.size() && is_space(text[at])) ++at;
  return at;
}

// The index just past the string whose opening quote is at `at`.
std::size_t skip_string(std::string_view text, std::size_t at) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  const char* p = begin + at + 1;
  for (;;) {
    const auto* quote = static_cast<const char*>(std::memchr(p, '"', end - p));
    if (quote == nullptr) return text.size();
    // A quote preceded by an odd number of backslashes is escaped.
    const char* back = quote;
    while (back > p && back[-1] == '\\') --back;
    if ((quote - back) % 2 == 0) return quote - begin + 1;
    p = quote + 1;
  }
}

// The index just past the value that starts at `at` (valid JSON is assumed: it parsed).
std::size_t skip_value(std::string_view text, std::size_t at) {
  if (at >= text.size()) return text.size();
  const char first = text[at];
  if (first == '"') return skip_string(text, at);
  if (first != '{' && first != '[') {
    while (at < text.size() && text[at] != ',' && text[at] != '}' && text[at] != ']' &&
           !is_space(text[at])) {
      ++at;
    }
    return at;
  }
  int depth = 0;
  while (at < text.size()) {
    const char c = text[at];
    if (c == '"') {
      at = skip_string(text, at);
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if ((c == '}' || c == ']') && --depth == 0) return at + 1;
    ++at;
  }
  return text.size();
}

void append_json_string(std::string& out, std::string_view text) {
  constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      out += "\\u00";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

// A parse tree and the copies of its schemas take about four times the body; past the first
// block the arena grows by itself, so a huge body does not reserve four times its size.
JsonArena::JsonArena(std::size_t body_bytes)
    : resource_(std::make_shared<boost::json::monotonic_resource>(
          std::min<std::size_t>(4 * body_bytes + 1024, 64 * 1024))) {}

JsonArena& JsonArena::operator=(const JsonArena& other) {
  if (this == &other) return *this;
  if (resource_ && resource_ != other.resource_) kept_.push_back(std::move(resource_));
  resource_ = other.resource_;
  kept_.insert(kept_.end(), other.kept_.begin(), other.kept_.end());
  return *this;
}

boost::json::storage_ptr JsonArena::storage() const {
  // Not counted: the request's own shared_ptr keeps the arena alive, and an uncounted
  // monotonic storage lets Boost.JSON skip destroying values one by one.
  if (!resource_) return {};
  return boost::json::storage_ptr(resource_.get());
}

OriginalBody OriginalBody::map(std::string_view body, bool stream) {
  OriginalBody out;
  std::size_t at = skip_space(body, 0);
  if (at >= body.size() || body[at] != '{') return {};
  out.first_member = at + 1;
  out.model_begin = kNotFound;
  bool seen_stream = false;
  at = skip_space(body, at + 1);
  while (at < body.size() && body[at] == '"') {
    const std::size_t key_end = skip_string(body, at);
    const std::string_view key = body.substr(at + 1, key_end - at - 2);
    // An escaped key could spell "model": such a body is not mapped.
    if (key.find('\\') != std::string_view::npos) return {};
    at = skip_space(body, key_end);
    if (at >= body.size() || body[at] != ':') return {};
    const std::size_t value_begin = skip_space(body, at + 1);
    const std::size_t value_end = skip_value(body, value_begin);
    if (key == "model") {
      if (out.model_begin != kNotFound) return {};
      out.model_begin = value_begin;
      out.model_end = value_end;
    } else if (key == "stream") {
      if (seen_stream) return {};
      seen_stream = true;
    } else if (key == "stream_options") {
      if (out.has_stream_options) return {};
      out.has_stream_options = true;
    }
    at = skip_space(body, value_end);
    if (at < body.size() && body[at] == ',') at = skip_space(body, at + 1);
  }
  if (out.model_begin == kNotFound || at >= body.size() || body[at] != '}') return {};
  out.text.assign(body);
  out.stream = stream;
  return out;
}

std::string OriginalBody::with_model(std::string_view model, std::string_view member) const {
  std::string out;
  out.reserve(text.size() + model.size() + member.size() + 8);
  const std::string_view all = text;
  out.append(all.substr(0, first_member));
  out.append(member);
  out.append(all.substr(first_member, model_begin - first_member));
  append_json_string(out, model);
  out.append(all.substr(model_end));
  return out;
}

std::string Message::text() const {
  std::string out;
  for (const auto& part : content) {
    if (part.kind == ContentPart::Kind::kText) out += part.text;
  }
  return out;
}

const Tool* ChatRequest::find_tool(std::string_view name) const {
  for (const auto& tool : tools) {
    if (tool.name == name) return &tool;
  }
  return nullptr;
}

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kSystem:
      return "system";
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
    case Role::kTool:
      return "tool";
  }
  return "user";
}

std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kToolCalls:
      return "tool_calls";
    case FinishReason::kContentFilter:
      return "content_filter";
    case FinishReason::kUnknown:
      return "stop";
  }
  return "stop";
}

std::string_view to_string(Dialect dialect) {
  return dialect == Dialect::kOpenAI ? "openai" : "anthropic";
}

}  // namespace backstop::chat
