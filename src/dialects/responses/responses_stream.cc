#include <boost/json/serialize.hpp>

#include "core/error.h"
#include "dialects/responses/responses.h"
#include "dialects/responses/wire.h"

namespace backstop::dialects::responses {
namespace {

namespace bj = boost::json;
using chat::StreamEvent;

}  // namespace

StreamEncoder::Item StreamEncoder::new_item(Item::Kind kind, std::string_view prefix) {
  Item item;
  item.kind = kind;
  item.id = wire::new_id(prefix);
  return item;
}

StreamEncoder::StreamEncoder(Echo echo)
    : echo_(std::move(echo)), id_(wire::new_id("resp_")), created_at_(wire::now_seconds()) {}

void StreamEncoder::frame(std::string& out, std::string_view type, bj::object data) {
  data["type"] = type;
  data["sequence_number"] = sequence_++;
  out += "event: ";
  out += type;
  out += "\ndata: ";
  out += bj::serialize(data);
  out += "\n\n";
}

bj::object StreamEncoder::snapshot(std::string_view status) const {
  bj::object response = wire::response_json(id_, created_at_, status, echo_);
  bj::array& output = response["output"].get_array();
  for (const Item& item : items_) {
    const std::string_view item_status = item.done ? "completed" : "in_progress";
    switch (item.kind) {
      case Item::Kind::kReasoning:
        output.push_back(wire::reasoning_item(item.id, item.text));
        break;
      case Item::Kind::kMessage:
        output.push_back(
            wire::message_item(item.id, item_status, bj::array{wire::text_part(item.text)}));
        break;
      case Item::Kind::kFunctionCall:
        output.push_back(
            wire::function_call_item(item.id, item_status, item.call_id, item.name, item.text));
        break;
    }
  }
  return response;
}

void StreamEncoder::start(std::string& out) {
  if (started_) return;
  started_ = true;
  frame(out, "response.created", {{"response", snapshot("in_progress")}});
  frame(out, "response.in_progress", {{"response", snapshot("in_progress")}});
}

StreamEncoder::Item* StreamEncoder::last_open(Item::Kind kind) {
  if (items_.empty() || items_.back().done || items_.back().kind != kind) return nullptr;
  return &items_.back();
}

StreamEncoder::Item& StreamEncoder::open(std::string& out, Item item) {
  // Reasoning and text are written one item at a time: the one before ends here. Function
  // calls stay open, since an upstream may interleave the arguments of parallel calls.
  if (!items_.empty() && items_.back().kind != Item::Kind::kFunctionCall) {
    close(out, items_.size() - 1);
  }
  items_.push_back(std::move(item));
  const std::size_t index = items_.size() - 1;
  const Item& added = items_.back();
  const auto output_index = static_cast<std::int64_t>(index);
  switch (added.kind) {
    case Item::Kind::kReasoning:
      frame(out, "response.output_item.added",
            {{"output_index", output_index},
             {"item", {{"id", added.id}, {"type", "reasoning"}, {"summary", bj::array()}}}});
      frame(out, "response.reasoning_summary_part.added",
            {{"item_id", added.id},
             {"output_index", output_index},
             {"summary_index", 0},
             {"part", {{"type", "summary_text"}, {"text", ""}}}});
      break;
    case Item::Kind::kMessage:
      frame(out, "response.output_item.added",
            {{"output_index", output_index},
             {"item", wire::message_item(added.id, "in_progress", bj::array())}});
      frame(out, "response.content_part.added",
            {{"item_id", added.id},
             {"output_index", output_index},
             {"content_index", 0},
             {"part", wire::text_part("")}});
      break;
    case Item::Kind::kFunctionCall:
      frame(out, "response.output_item.added",
            {{"output_index", output_index},
             {"item",
              wire::function_call_item(added.id, "in_progress", added.call_id, added.name, "")}});
      break;
  }
  return items_.back();
}

void StreamEncoder::close(std::string& out, std::size_t index) {
  Item& item = items_[index];
  if (item.done) return;
  item.done = true;
  const auto output_index = static_cast<std::int64_t>(index);
  switch (item.kind) {
    case Item::Kind::kReasoning:
      frame(out, "response.reasoning_summary_text.done",
            {{"item_id", item.id},
             {"output_index", output_index},
             {"summary_index", 0},
             {"text", item.text}});
      frame(out, "response.reasoning_summary_part.done",
            {{"item_id", item.id},
             {"output_index", output_index},
             {"summary_index", 0},
             {"part", {{"type", "summary_text"}, {"text", item.text}}}});
      frame(out, "response.output_item.done",
            {{"output_index", output_index}, {"item", wire::reasoning_item(item.id, item.text)}});
      break;
    case Item::Kind::kMessage:
      frame(out, "response.output_text.done",
            {{"item_id", item.id},
             {"output_index", output_index},
             {"content_index", 0},
             {"text", item.text},
             {"logprobs", bj::array()}});
      frame(out, "response.content_part.done",
            {{"item_id", item.id},
             {"output_index", output_index},
             {"content_index", 0},
             {"part", wire::text_part(item.text)}});
      frame(out, "response.output_item.done",
            {{"output_index", output_index},
             {"item",
              wire::message_item(item.id, "completed", bj::array{wire::text_part(item.text)})}});
      break;
    case Item::Kind::kFunctionCall:
      frame(out, "response.function_call_arguments.done",
            {{"item_id", item.id},
             {"output_index", output_index},
             {"name", item.name},
             {"arguments", item.text}});
      frame(out, "response.output_item.done",
            {{"output_index", output_index},
             {"item",
              wire::function_call_item(item.id, "completed", item.call_id, item.name, item.text)}});
      break;
  }
}

std::string StreamEncoder::encode(const StreamEvent& event) {
  std::string out;
  start(out);
  switch (event.kind) {
    case StreamEvent::Kind::kStart:
      break;
    case StreamEvent::Kind::kReasoningDelta: {
      if (event.text.empty()) break;  // a signature: only Anthropic can read it back
      Item* item = last_open(Item::Kind::kReasoning);
      if (item == nullptr) item = &open(out, new_item(Item::Kind::kReasoning, "rs_"));
      item->text += event.text;
      frame(out, "response.reasoning_summary_text.delta",
            {{"item_id", item->id},
             {"output_index", static_cast<std::int64_t>(items_.size() - 1)},
             {"summary_index", 0},
             {"delta", event.text}});
      break;
    }
    case StreamEvent::Kind::kTextDelta: {
      Item* item = last_open(Item::Kind::kMessage);
      if (item == nullptr) item = &open(out, new_item(Item::Kind::kMessage, "msg_"));
      item->text += event.text;
      frame(out, "response.output_text.delta",
            {{"item_id", item->id},
             {"output_index", static_cast<std::int64_t>(items_.size() - 1)},
             {"content_index", 0},
             {"delta", event.text},
             {"logprobs", bj::array()}});
      break;
    }
    case StreamEvent::Kind::kToolCallStart: {
      Item call = new_item(Item::Kind::kFunctionCall, "fc_");
      call.call_id = event.tool_call.id;
      call.name = event.tool_call.name;
      call.tool_index = event.index;
      open(out, std::move(call));
      break;
    }
    case StreamEvent::Kind::kToolCallDelta: {
      for (std::size_t i = items_.size(); i-- > 0;) {
        Item& item = items_[i];
        if (item.kind != Item::Kind::kFunctionCall || item.tool_index != event.index) continue;
        item.text += event.text;
        frame(out, "response.function_call_arguments.delta",
              {{"item_id", item.id},
               {"output_index", static_cast<std::int64_t>(i)},
               {"delta", event.text}});
        break;
      }
      break;
    }
    case StreamEvent::Kind::kFinish:
      finish_reason_ = event.finish_reason;
      break;
    case StreamEvent::Kind::kUsage:
      if (event.usage.input_tokens != 0) usage_.input_tokens = event.usage.input_tokens;
      if (event.usage.cached_input_tokens != 0) {
        usage_.cached_input_tokens = event.usage.cached_input_tokens;
      }
      if (event.usage.output_tokens != 0) usage_.output_tokens = event.usage.output_tokens;
      break;
  }
  return out;
}

std::string StreamEncoder::finish() {
  std::string out;
  start(out);
  for (std::size_t i = 0; i < items_.size(); ++i) close(out, i);
  bj::object response = snapshot("completed");
  wire::set_status(response, finish_reason_);
  response["usage"] = wire::usage_json(usage_);
  const bool cut = wire::incomplete_reason(finish_reason_).has_value();
  frame(out, cut ? "response.incomplete" : "response.completed",
        {{"response", std::move(response)}});
  return out;
}

std::string StreamEncoder::error(const core::Error& error) {
  std::string out;
  start(out);
  bj::object response = snapshot("failed");
  response["error"] = {{"code", core::to_string(error.code)}, {"message", error.message}};
  response["usage"] = wire::usage_json(usage_);
  frame(out, "response.failed", {{"response", std::move(response)}});
  return out;
}

}  // namespace backstop::dialects::responses
