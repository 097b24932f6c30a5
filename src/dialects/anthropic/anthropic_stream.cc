// Messages streams: events from an upstream to neutral events, and back to a client.

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <random>

#include "chat/stream.h"
#include "core/ids.h"
#include "dialects/anthropic/anthropic.h"
#include "dialects/anthropic/wire.h"
#include "dialects/decode_json.h"
#include "dialects/stream_json.h"
#include "dialects/wire_text.h"
#include "json/json.h"

namespace backstop::dialects::anthropic {
namespace {

namespace bj = boost::json;
using chat::FinishReason;
using chat::StreamEvent;
using core::ErrorCode;
using Kind = chat::StreamEvent::Kind;

// Far more content blocks than one message has; a bigger index is a broken stream.
constexpr std::int64_t kMaxBlocks = 4096;

std::unexpected<core::Error> bad_event(std::string message) {
  return core::fail(ErrorCode::kBadResponse, "not a message stream event: " + std::move(message));
}

const bj::object* object_at(const bj::object& obj, std::string_view key) {
  auto it = obj.find(key);
  return it != obj.end() && it->value().is_object() ? &it->value().get_object() : nullptr;
}

// The count at `key` when the event reports it (absent and null mean "not reported here"),
// clamped to 0..kMaxTokenCount so that sums cannot overflow.
std::optional<std::int64_t> count_at(const bj::object& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  return clamped_count(it->value());
}

// Anthropic's usage into the neutral one, where cache writes are a part of input tokens and
// cache reads are not (the same reading as a non-streamed message's usage).
void read_usage(const bj::object& wire, chat::Usage& usage) {
  if (auto creation = count_at(wire, "cache_creation_input_tokens")) {
    usage.cache_creation_input_tokens = *creation;
  }
  if (auto input = count_at(wire, "input_tokens")) {
    usage.input_tokens = *input + usage.cache_creation_input_tokens;
  }
  if (auto cached = count_at(wire, "cache_read_input_tokens")) {
    usage.cached_input_tokens = *cached;
  }
  if (auto output = count_at(wire, "output_tokens")) usage.output_tokens = *output;
}

core::Result<std::size_t> block_index(const bj::object& data) {
  auto it = data.find("index");
  const auto* index = it == data.end() ? nullptr : it->value().if_int64();
  if (!index || *index < 0 || *index >= kMaxBlocks) {
    return bad_event("`index` is " + (it == data.end() ? "missing" : bj::serialize(it->value())));
  }
  return static_cast<std::size_t>(*index);
}

std::string generated_id(std::string_view prefix) {
  thread_local core::IdGenerator ids(std::random_device{}());
  return std::string(prefix) + ids.next();
}

// "event: NAME\ndata: " — the data's JSON follows, then end_frame().
void begin_frame(std::string& out, std::string_view name, std::size_t extra) {
  out.reserve(out.size() + name.size() + extra + 96);
  out.append("event: ").append(name).append("\ndata: ");
}

void end_frame(std::string& out) { out.append("\n\n"); }

// The wire usage fields of a neutral usage (input_tokens there excludes cache writes).
void append_usage(std::string& out, const chat::Usage& usage) {
  out.append("{\"input_tokens\":");
  append_int(out,
             std::max<std::int64_t>(0, usage.input_tokens - usage.cache_creation_input_tokens));
  out.append(",\"output_tokens\":");
  append_int(out, usage.output_tokens);
  out.append(",\"cache_read_input_tokens\":");
  append_int(out, usage.cached_input_tokens);
  out.append(",\"cache_creation_input_tokens\":");
  append_int(out, usage.cache_creation_input_tokens);
  out.push_back('}');
}

}  // namespace

core::Result<void> StreamDecoder::feed(std::string_view event, std::string_view data,
                                       std::vector<StreamEvent>& out) {
  if (event == "ping") return {};
  auto parsed = json::parse(data);
  if (!parsed) return bad_event(parsed.error().message);
  if (!parsed->is_object()) {
    return bad_event("the data is " + std::string(json::kind_name(*parsed)));
  }
  const auto& obj = parsed->get_object();
  std::string_view type = string_or_empty(obj, "type");
  // Every event repeats its name as `type`; a proxy that drops the `event:` line leaves it.
  if (event.empty()) {
    event = type;
  } else if (!type.empty() && type != event) {
    // The name is raw SSE bytes, not JSON: made valid text before it goes into a message.
    return bad_event("event `" + upstream_text(event) + "` has type " +
                     bj::serialize(bj::string_view(type)));
  }

  if (event == "message_start") {
    const bj::object* message = object_at(obj, "message");
    if (message == nullptr) return bad_event("`message_start.message` is missing");
    out.push_back(chat::start_event(std::string(string_or_empty(*message, "id")),
                                    std::string(string_or_empty(*message, "model"))));
    if (const bj::object* usage = object_at(*message, "usage")) {
      read_usage(*usage, usage_);
      out.push_back(chat::usage_event(usage_));
    }
  } else if (event == "content_block_start") {
    return block_start(obj, out);
  } else if (event == "content_block_delta") {
    return block_delta(obj, out);
  } else if (event == "message_delta") {
    if (const bj::object* delta = object_at(obj, "delta")) {
      if (auto reason = string_or_empty(*delta, "stop_reason"); !reason.empty()) {
        std::optional<std::string> sequence;
        if (auto it = delta->find("stop_sequence");
            reason == "stop_sequence" && it != delta->end() && it->value().is_string()) {
          sequence = std::string(view(it->value().get_string()));
        }
        out.push_back(chat::finish_event(wire::decode_stop_reason(reason), std::move(sequence)));
      }
    }
    // output_tokens is the running total; the input counts came with message_start.
    if (const bj::object* usage = object_at(obj, "usage")) {
      read_usage(*usage, usage_);
      out.push_back(chat::usage_event(usage_));
    }
  } else if (event == "message_stop") {
    done_ = true;
  } else if (event == "error") {
    core::Error error{ErrorCode::kUpstream,
                      "upstream stream error: " + upstream_error_message(data)};
    const bj::object* inner = object_at(obj, "error");
    // overloaded_error is what a non-streamed call would have answered with a 529.
    if (inner != nullptr && string_or_empty(*inner, "type") == "overloaded_error") {
      error.upstream_status = 529;
    }
    return std::unexpected(std::move(error));
  }
  // content_block_stop closes nothing backstop tracks; unknown events may be added to the
  // API at any time and are skipped, as the API's versioning policy asks.
  return {};
}

core::Result<void> StreamDecoder::block_start(const bj::object& data,
                                              std::vector<StreamEvent>& out) {
  auto index = block_index(data);
  if (!index) return std::unexpected(std::move(index.error()));
  const bj::object* block = object_at(data, "content_block");
  if (block == nullptr) return bad_event("`content_block` is missing");
  if (*index >= block_kind_.size()) {
    block_kind_.resize(*index + 1, BlockKind::kNone);
    tool_index_.resize(*index + 1, -1);
  }
  std::string_view type = string_or_empty(*block, "type");
  if (type == "text") {
    block_kind_[*index] = BlockKind::kText;
    if (auto text = string_or_empty(*block, "text"); !text.empty()) {
      out.push_back(chat::text_event(std::string(text)));
    }
  } else if (type == "thinking") {
    block_kind_[*index] = BlockKind::kThinking;
    if (auto thinking = string_or_empty(*block, "thinking"); !thinking.empty()) {
      out.push_back(chat::reasoning_event(std::string(thinking)));
    }
    if (auto signature = string_or_empty(*block, "signature"); !signature.empty()) {
      out.push_back(chat::signature_event(std::string(signature)));
    }
  } else if (type == "tool_use") {
    block_kind_[*index] = BlockKind::kToolUse;
    int tool = tools_++;
    tool_index_[*index] = tool;
    out.push_back(chat::tool_start_event(tool, std::string(string_or_empty(*block, "id")),
                                         std::string(string_or_empty(*block, "name"))));
    // The input normally streams as input_json_delta after an empty {}; a proxy that puts
    // the whole input here has sent the arguments already.
    if (const bj::object* input = object_at(*block, "input"); input && !input->empty()) {
      out.push_back(chat::tool_delta_event(tool, bj::serialize(*input)));
    }
  } else {
    block_kind_[*index] = BlockKind::kOther;
  }
  return {};
}

core::Result<void> StreamDecoder::block_delta(const bj::object& data,
                                              std::vector<StreamEvent>& out) {
  auto index = block_index(data);
  if (!index) return std::unexpected(std::move(index.error()));
  if (*index >= block_kind_.size() || block_kind_[*index] == BlockKind::kNone) {
    return bad_event("content_block_delta for block " + std::to_string(*index) +
                     ", which has not started");
  }
  const bj::object* delta = object_at(data, "delta");
  if (delta == nullptr) return bad_event("`delta` is missing");
  std::string_view type = string_or_empty(*delta, "type");
  BlockKind kind = block_kind_[*index];
  if (type == "text_delta" && kind == BlockKind::kText) {
    if (auto text = string_or_empty(*delta, "text"); !text.empty()) {
      out.push_back(chat::text_event(std::string(text)));
    }
  } else if (type == "input_json_delta" && kind == BlockKind::kToolUse) {
    if (auto json = string_or_empty(*delta, "partial_json"); !json.empty()) {
      out.push_back(chat::tool_delta_event(tool_index_[*index], std::string(json)));
    }
  } else if (type == "thinking_delta" && kind == BlockKind::kThinking) {
    if (auto thinking = string_or_empty(*delta, "thinking"); !thinking.empty()) {
      out.push_back(chat::reasoning_event(std::string(thinking)));
    }
  } else if (type == "signature_delta" && kind == BlockKind::kThinking) {
    if (auto signature = string_or_empty(*delta, "signature"); !signature.empty()) {
      out.push_back(chat::signature_event(std::string(signature)));
    }
  }
  // citations_delta and deltas of kOther blocks carry nothing modelled.
  return {};
}

StreamEncoder::StreamEncoder(std::string model) : model_(std::move(model)) {}

void StreamEncoder::start(std::string& out) {
  if (started_) return;
  started_ = true;
  if (id_.empty()) id_ = generated_id("msg_");
  begin_frame(out, "message_start", id_.size() + model_.size() + 128);
  out.append("{\"type\":\"message_start\",\"message\":{\"id\":");
  core::append_json_string(out, id_);
  out.append(",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":");
  core::append_json_string(out, model_);
  out.append(",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
  append_usage(out, usage_);
  out.append("}}");
  end_frame(out);
}

void StreamEncoder::close_block(std::string& out) {
  if (open_block_ < 0) return;
  begin_frame(out, "content_block_stop", 0);
  out.append("{\"type\":\"content_block_stop\",\"index\":");
  append_int(out, open_block_);
  out.push_back('}');
  end_frame(out);
  open_block_ = -1;
  open_kind_ = BlockKind::kNone;
}

void StreamEncoder::open_block(std::string& out, BlockKind kind, std::string_view block) {
  close_block(out);
  open_block_ = next_block_++;
  open_kind_ = kind;
  begin_frame(out, "content_block_start", block.size());
  out.append("{\"type\":\"content_block_start\",\"index\":");
  append_int(out, open_block_);
  out.append(",\"content_block\":").append(block).push_back('}');
  end_frame(out);
}

void StreamEncoder::open_tool_block(std::string& out, int index, std::string_view id,
                                    std::string_view name) {
  std::string block = "{\"type\":\"tool_use\",\"id\":";
  // The SDKs key tool results by this id; an upstream that sent none gets one.
  core::append_json_string(block, id.empty() ? std::string_view(generated_id("toolu_")) : id);
  block.append(",\"name\":");
  core::append_json_string(block, name);
  block.append(",\"input\":{}}");
  open_block(out, BlockKind::kToolUse, block);
  if (index >= 0 && static_cast<std::size_t>(index) >= tool_block_.size()) {
    tool_block_.resize(index + 1, -1);
  }
  if (index >= 0) tool_block_[index] = open_block_;
}

std::string StreamEncoder::encode(const StreamEvent& event) {
  std::string out;
  switch (event.kind) {
    case Kind::kStart:
      // The upstream's id names the message, as it names a non-streamed one.
      if (!started_) {
        if (!event.id.empty()) id_ = event.id;
        if (model_.empty()) model_ = event.model;
      }
      break;
    case Kind::kUsage:
      if (event.usage.input_tokens != 0) usage_.input_tokens = event.usage.input_tokens;
      if (event.usage.cached_input_tokens != 0) {
        usage_.cached_input_tokens = event.usage.cached_input_tokens;
      }
      if (event.usage.cache_creation_input_tokens != 0) {
        usage_.cache_creation_input_tokens = event.usage.cache_creation_input_tokens;
      }
      if (event.usage.output_tokens != 0) usage_.output_tokens = event.usage.output_tokens;
      // Usage known before any content (an Anthropic upstream) goes into message_start;
      // later usage goes into message_delta.
      start(out);
      break;
    case Kind::kTextDelta:
      if (event.text.empty()) break;
      start(out);
      if (open_kind_ != BlockKind::kText) {
        open_block(out, BlockKind::kText, R"({"type":"text","text":""})");
      }
      begin_frame(out, "content_block_delta", event.text.size());
      out.append("{\"type\":\"content_block_delta\",\"index\":");
      append_int(out, open_block_);
      out.append(",\"delta\":{\"type\":\"text_delta\",\"text\":");
      core::append_json_string(out, event.text);
      out.append("}}");
      end_frame(out);
      break;
    case Kind::kReasoningDelta:
      if (event.text.empty() && event.signature.empty()) break;
      start(out);
      if (open_kind_ != BlockKind::kThinking) {
        open_block(out, BlockKind::kThinking,
                   R"({"type":"thinking","thinking":"","signature":""})");
      }
      if (event.text.empty()) {
        // The signature closes the thinking: Anthropic sends it just before content_block_stop.
        begin_frame(out, "content_block_delta", event.signature.size());
        out.append("{\"type\":\"content_block_delta\",\"index\":");
        append_int(out, open_block_);
        out.append(",\"delta\":{\"type\":\"signature_delta\",\"signature\":");
        core::append_json_string(out, event.signature);
        out.append("}}");
        end_frame(out);
        break;
      }
      begin_frame(out, "content_block_delta", event.text.size());
      out.append("{\"type\":\"content_block_delta\",\"index\":");
      append_int(out, open_block_);
      out.append(",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":");
      core::append_json_string(out, event.text);
      out.append("}}");
      end_frame(out);
      break;
    case Kind::kToolCallStart:
      start(out);
      open_tool_block(out, event.index, event.tool_call.id, event.tool_call.name);
      break;
    case Kind::kToolCallDelta: {
      if (event.text.empty()) break;
      start(out);
      bool known = event.index >= 0 && static_cast<std::size_t>(event.index) < tool_block_.size() &&
                   tool_block_[event.index] >= 0;
      if (!known) open_tool_block(out, event.index, {}, {});
      // Upstreams stream one call after another, so this is the open block; a fragment of an
      // earlier call still names its own block, which the SDKs append to all the same.
      int block = event.index >= 0 ? tool_block_[event.index] : open_block_;
      begin_frame(out, "content_block_delta", event.text.size());
      out.append("{\"type\":\"content_block_delta\",\"index\":");
      append_int(out, block);
      out.append(",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":");
      core::append_json_string(out, event.text);
      out.append("}}");
      end_frame(out);
      break;
    }
    case Kind::kFinish:
      finish_reason_ = event.finish_reason;
      stop_sequence_ = event.stop_sequence;
      break;
  }
  return out;
}

std::string StreamEncoder::finish() {
  std::string out;
  start(out);
  close_block(out);
  begin_frame(out, "message_delta", 160);
  out.append("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
  // Some OpenAI-compatible servers end a tool call with "stop"; Anthropic clients (Claude
  // Code) look for tool_use to run the tools.
  FinishReason reason = finish_reason_;
  if (reason == FinishReason::kStop && !tool_block_.empty()) reason = FinishReason::kToolCalls;
  if (reason == FinishReason::kStop && stop_sequence_) {
    core::append_json_string(out, "stop_sequence");
    out.append(",\"stop_sequence\":");
    core::append_json_string(out, *stop_sequence_);
  } else {
    core::append_json_string(out, wire::encode_stop_reason(reason));
    out.append(",\"stop_sequence\":null");
  }
  out.append("},\"usage\":");
  append_usage(out, usage_);
  out.push_back('}');
  end_frame(out);
  out.append("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  return out;
}

std::string StreamEncoder::error(const core::Error& error) {
  // An upstream's overload reaches the client as one too: the SDKs know the type.
  boost::json::object type;
  if (error.upstream_status == 529) type["type"] = "overloaded_error";
  return "event: error\ndata: " + encode_error(error, type) + "\n\n";
}

}  // namespace backstop::dialects::anthropic
