#include "chat/stream.h"

#include <algorithm>

namespace backstop::chat {
namespace {

// Later usage reports (OpenAI's final chunk, Anthropic's message_delta) refine earlier ones
// field by field; a zero means "not reported here", not "none".
void merge_usage(Usage& into, const Usage& from) {
  if (from.input_tokens != 0) into.input_tokens = from.input_tokens;
  if (from.cached_input_tokens != 0) into.cached_input_tokens = from.cached_input_tokens;
  if (from.cache_creation_input_tokens != 0) {
    into.cache_creation_input_tokens = from.cache_creation_input_tokens;
  }
  if (from.output_tokens != 0) into.output_tokens = from.output_tokens;
}

}  // namespace

void StreamAssembler::add(const StreamEvent& event) {
  // The tool call a stream index names, created on first sight (a delta may come first).
  auto tool_call = [this](int index) -> ToolCall& {
    auto it = std::find(tool_index_.begin(), tool_index_.end(), index);
    if (it != tool_index_.end()) return response_.tool_calls[it - tool_index_.begin()];
    tool_index_.push_back(index);
    return response_.tool_calls.emplace_back();
  };
  switch (event.kind) {
    case StreamEvent::Kind::kStart:
      if (!event.id.empty()) response_.id = event.id;
      if (!event.model.empty()) response_.model = event.model;
      break;
    case StreamEvent::Kind::kTextDelta:
      if (!response_.content) response_.content.emplace();
      response_.content->append(event.text);
      break;
    case StreamEvent::Kind::kReasoningDelta:
      response_.reasoning.append(event.text);
      if (!event.signature.empty()) response_.reasoning_signature = event.signature;
      break;
    case StreamEvent::Kind::kToolCallStart: {
      ToolCall& call = tool_call(event.index);
      if (!event.tool_call.id.empty()) call.id = event.tool_call.id;
      if (!event.tool_call.name.empty()) call.name = event.tool_call.name;
      break;
    }
    case StreamEvent::Kind::kToolCallDelta:
      tool_call(event.index).arguments.append(event.text);
      break;
    case StreamEvent::Kind::kFinish:
      response_.finish_reason = event.finish_reason;
      response_.stop_sequence = event.stop_sequence;
      finished_ = true;
      break;
    case StreamEvent::Kind::kUsage:
      merge_usage(response_.usage, event.usage);
      break;
  }
}

StreamEvent start_event(std::string id, std::string model) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kStart;
  e.id = std::move(id);
  e.model = std::move(model);
  return e;
}

StreamEvent text_event(std::string text) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kTextDelta;
  e.text = std::move(text);
  return e;
}

StreamEvent reasoning_event(std::string text) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kReasoningDelta;
  e.text = std::move(text);
  return e;
}

StreamEvent signature_event(std::string signature) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kReasoningDelta;
  e.signature = std::move(signature);
  return e;
}

StreamEvent tool_start_event(int index, std::string id, std::string name) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kToolCallStart;
  e.index = index;
  e.tool_call.id = std::move(id);
  e.tool_call.name = std::move(name);
  return e;
}

StreamEvent tool_delta_event(int index, std::string arguments) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kToolCallDelta;
  e.index = index;
  e.text = std::move(arguments);
  return e;
}

StreamEvent finish_event(FinishReason reason, std::optional<std::string> stop_sequence) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kFinish;
  e.finish_reason = reason;
  e.stop_sequence = std::move(stop_sequence);
  return e;
}

StreamEvent usage_event(const Usage& usage) {
  StreamEvent e;
  e.kind = StreamEvent::Kind::kUsage;
  e.usage = usage;
  return e;
}

std::vector<StreamEvent> to_events(const ChatResponse& response) {
  std::vector<StreamEvent> events;
  events.reserve(6 + 2 * response.tool_calls.size());
  events.push_back(start_event(response.id, response.model));
  if (!response.reasoning.empty()) events.push_back(reasoning_event(response.reasoning));
  if (!response.reasoning_signature.empty()) {
    events.push_back(signature_event(response.reasoning_signature));
  }
  if (response.content && !response.content->empty()) {
    events.push_back(text_event(*response.content));
  }
  for (std::size_t i = 0; i < response.tool_calls.size(); ++i) {
    const ToolCall& call = response.tool_calls[i];
    int index = static_cast<int>(i);
    events.push_back(tool_start_event(index, call.id, call.name));
    // An empty arguments fragment would stream nothing.
    if (!call.arguments.empty()) events.push_back(tool_delta_event(index, call.arguments));
  }
  events.push_back(finish_event(response.finish_reason, response.stop_sequence));
  events.push_back(usage_event(response.usage));
  return events;
}

}  // namespace backstop::chat
