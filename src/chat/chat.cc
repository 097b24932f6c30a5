#include "chat/chat.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cstring>

#include "core/json_string.h"
#include "json/json.h"

namespace backstop::chat {
namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::size_t skip_space(std::string_view text, std::size_t at) {
  while (at < text.size() && is_space(text[at])) ++at;
  return at;
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

void OriginalBody::Mapper::member(std::string_view key, std::string_view value) {
  // An escaped key could spell "model".
  if (key.data() == nullptr) plain_keys_ = false;
  if (key == "model") {
    ++models_;
    model_ = value;
  } else if (key == "stream") {
    ++streams_;
  } else if (key == "stream_options") {
    ++stream_options_;
  }
}

OriginalBody OriginalBody::Mapper::finish() const {
  if (!plain_keys_ || models_ != 1 || model_.data() == nullptr || streams_ > 1 ||
      stream_options_ > 1) {
    return {};
  }
  const std::size_t open = skip_space(body_, 0);
  if (open >= body_.size() || body_[open] != '{') return {};
  OriginalBody out;
  out.text.assign(body_);
  out.first_member = open + 1;
  // The value's quotes included.
  out.model_begin = static_cast<std::size_t>(model_.data() - body_.data()) - 1;
  out.model_end = out.model_begin + model_.size() + 2;
  out.has_stream_options = stream_options_ == 1;
  return out;
}

std::string OriginalBody::with_model(std::string_view model, std::string_view member) const {
  std::string out;
  out.reserve(text.size() + model.size() + member.size() + 8);
  const std::string_view all = text;
  out.append(all.substr(0, first_member));
  out.append(member);
  out.append(all.substr(first_member, model_begin - first_member));
  core::append_json_string(out, model);
  out.append(all.substr(model_end));
  return out;
}

boost::json::object ChatRequest::original_tree() const {
  boost::json::object tree;
  if (!original.empty()) {
    tree = original;
  } else if (!original_body.text.empty()) {
    // The bytes parsed when the request was decoded: they parse again.
    auto parsed = json::parse_object(original_body.text);
    if (parsed) tree = std::move(*parsed);
  }
  if (tree.empty()) return tree;
  if (stream) {
    tree["stream"] = true;
  } else if (auto* sent = tree.if_contains("stream")) {
    *sent = false;
  }
  return tree;
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

std::int64_t estimate_input_tokens(const ChatRequest& request) {
  constexpr std::int64_t kBytesPerToken = 4;
  constexpr std::int64_t kFraming = 4;   // a message's or a tool's own tokens
  constexpr std::int64_t kPerPart = 85;  // an image or a file: unknown here, a low guess
  std::int64_t bytes = 0;
  std::int64_t tokens = 0;
  for (const Message& message : request.messages) {
    tokens += kFraming;
    for (const ContentPart& part : message.content) {
      if (part.kind == ContentPart::Kind::kText) {
        bytes += static_cast<std::int64_t>(part.text.size());
      } else {
        tokens += kPerPart;
      }
    }
    for (const ToolCall& call : message.tool_calls) {
      bytes += static_cast<std::int64_t>(call.name.size() + call.arguments.size());
    }
    bytes += static_cast<std::int64_t>(message.reasoning.size());
  }
  for (const Tool& tool : request.tools) {
    tokens += kFraming;
    bytes += static_cast<std::int64_t>(tool.name.size() + tool.description.size() +
                                       boost::json::serialize(tool.parameters).size());
  }
  return std::max<std::int64_t>(1, tokens + (bytes + kBytesPerToken - 1) / kBytesPerToken);
}

}  // namespace backstop::chat
