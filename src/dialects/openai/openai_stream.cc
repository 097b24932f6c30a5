// Chat Completions streams: chunks from an upstream to neutral events, and back to a client.

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <random>

#include "chat/stream.h"
#include "core/ids.h"
#include "dialects/decode_json.h"
#include "dialects/openai/openai.h"
#include "dialects/openai/wire.h"
#include "dialects/stream_json.h"
#include "dialects/wire_text.h"
#include "json/json.h"

namespace backstop::dialects::openai {
namespace {

namespace bj = boost::json;
using chat::FinishReason;
using chat::StreamEvent;
using core::ErrorCode;
using Kind = chat::StreamEvent::Kind;

// More parallel tool calls than any API allows; a bigger index is a broken stream.
constexpr std::int64_t kMaxToolIndex = 1024;

std::unexpected<core::Error> bad_chunk(std::string message) {
  return core::fail(ErrorCode::kBadResponse, "not a chat completion chunk: " + std::move(message));
}

// An integer field as sent (an index, an error code), or 0.
std::int64_t raw_int_or_zero(const bj::object& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end()) return 0;
  if (it->value().is_int64()) return it->value().get_int64();
  if (it->value().is_uint64()) return static_cast<std::int64_t>(it->value().get_uint64());
  return 0;
}

// An {"error":...} payload in the middle of a stream (OpenAI, vLLM and SGLang send them).
core::Error stream_error(std::string_view data, const bj::value& error) {
  core::Error out{ErrorCode::kUpstream, "upstream stream error: " + upstream_error_message(data)};
  if (error.is_object()) {
    // vLLM puts the HTTP status the error would have had in `code`.
    auto code = raw_int_or_zero(error.get_object(), "code");
    if (code >= 400 && code < 600) out.upstream_status = static_cast<int>(code);
  }
  return out;
}

std::string generated_id(std::string_view prefix) {
  thread_local core::IdGenerator ids(std::random_device{}());
  return std::string(prefix) + ids.next();
}

// Adds the separator before a field unless it is the object's first.
void comma(std::string& out) {
  if (out.back() != '{') out.push_back(',');
}

}  // namespace

core::Result<void> StreamDecoder::feed(std::string_view data, std::vector<StreamEvent>& out) {
  const std::size_t had = out.size();
  const bool started = started_;
  const bool finished = finished_;
  const std::size_t tools_seen = tools_seen_.size();
  auto fed = decode_chunk(data, out);
  if (!fed && fed.error().code == ErrorCode::kBadResponse) {
    // A chunk that does not decode leaves no trace: the caller may skip it.
    out.resize(had);
    started_ = started;
    finished_ = finished;
    tools_seen_.resize(tools_seen);
  }
  return fed;
}

core::Result<void> StreamDecoder::decode_chunk(std::string_view data,
                                               std::vector<StreamEvent>& out) {
  while (!data.empty() && (data.front() == ' ' || data.back() == ' ')) {
    data = data.front() == ' ' ? data.substr(1) : data.substr(0, data.size() - 1);
  }
  if (data == "[DONE]") {
    done_ = true;
    return {};
  }
  auto parsed = json::parse(data);
  if (!parsed) return bad_chunk(parsed.error().message);
  if (!parsed->is_object())
    return bad_chunk("the payload is " + std::string(json::kind_name(*parsed)));
  const auto& chunk = parsed->get_object();
  if (auto error = chunk.find("error"); error != chunk.end() && !error->value().is_null()) {
    return std::unexpected(stream_error(data, error->value()));
  }
  if (auto object = chunk.find("object");
      object != chunk.end() &&
      (!object->value().is_string() || object->value().get_string() != "chat.completion.chunk")) {
    return bad_chunk("`object` is " + bj::serialize(object->value()));
  }
  if (!started_) {
    out.push_back(chat::start_event(std::string(string_or_empty(chunk, "id")),
                                    std::string(string_or_empty(chunk, "model"))));
    out.back().system_fingerprint = string_or_empty(chunk, "system_fingerprint");
    started_ = true;
  }

  auto choices = chunk.find("choices");
  // The usage chunk has "choices": [] (some servers send null or leave it out).
  if (choices != chunk.end() && !choices->value().is_null()) {
    if (!choices->value().is_array()) return bad_chunk("`choices` is not an array");
    for (const auto& value : choices->value().get_array()) {
      if (!value.is_object()) return bad_chunk("`choices[]` is not an object");
      const auto& choice = value.get_object();
      // backstop asks for one choice (n is 1); others would belong to another answer.
      if (raw_int_or_zero(choice, "index") != 0) continue;
      auto ok = decode_choice(choice, out);
      if (!ok) return ok;
    }
  }
  if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->value().is_object()) {
    out.push_back(chat::usage_event(wire::decode_usage(usage->value().get_object())));
  }
  return {};
}

core::Result<void> StreamDecoder::decode_choice(const bj::object& choice,
                                                std::vector<StreamEvent>& out) {
  if (auto it = choice.find("delta"); it != choice.end() && it->value().is_object()) {
    const auto& delta = it->value().get_object();
    // DeepSeek and older vLLM call it reasoning_content; newer vLLM calls it reasoning.
    for (std::string_view key : {"reasoning_content", "reasoning"}) {
      auto reasoning = string_or_empty(delta, key);
      if (!reasoning.empty()) {
        out.push_back(chat::reasoning_event(std::string(reasoning)));
        break;
      }
    }
    if (auto content = string_or_empty(delta, "content"); !content.empty()) {
      out.push_back(chat::text_event(std::string(content)));
    }
    if (auto calls = delta.find("tool_calls"); calls != delta.end() && !calls->value().is_null()) {
      if (!calls->value().is_array()) return bad_chunk("`delta.tool_calls` is not an array");
      const auto& array = calls->value().get_array();
      for (std::size_t i = 0; i < array.size(); ++i) {
        auto ok = decode_tool_call(array[i], static_cast<int>(i), out);
        if (!ok) return ok;
      }
    }
  }
  if (auto reason = choice.find("finish_reason");
      reason != choice.end() && reason->value().is_string()) {
    out.push_back(
        chat::finish_event(wire::decode_finish_reason(view(reason->value().get_string()))));
    finished_ = true;
  }
  return {};
}

core::Result<void> StreamDecoder::decode_tool_call(const bj::value& value, int position,
                                                   std::vector<StreamEvent>& out) {
  if (!value.is_object()) return bad_chunk("`delta.tool_calls[]` is not an object");
  const auto& call = value.get_object();
  std::int64_t index = position;  // a few servers leave out the index of a lone call
  if (auto it = call.find("index"); it != call.end()) {
    if (!it->value().is_int64() || it->value().get_int64() < 0 ||
        it->value().get_int64() >= kMaxToolIndex) {
      return bad_chunk("`delta.tool_calls[].index` is " + bj::serialize(it->value()));
    }
    index = it->value().get_int64();
  }
  const bj::object* function = nullptr;
  if (auto it = call.find("function"); it != call.end() && it->value().is_object()) {
    function = &it->value().get_object();
  }
  int stream_index = static_cast<int>(index);
  // Some servers repeat the id (or the name) on every fragment: only the first one starts it.
  if (std::find(tools_seen_.begin(), tools_seen_.end(), stream_index) == tools_seen_.end()) {
    tools_seen_.push_back(stream_index);
    std::string_view name = function ? string_or_empty(*function, "name") : std::string_view();
    out.push_back(chat::tool_start_event(stream_index, std::string(string_or_empty(call, "id")),
                                         std::string(name)));
  }
  if (function) {
    auto args = function->find("arguments");
    if (args != function->end() && !args->value().is_null()) {
      // Some compatible servers send the arguments as an object rather than JSON text.
      std::string text = args->value().is_string() ? std::string(view(args->value().get_string()))
                                                   : bj::serialize(args->value());
      if (!text.empty()) {
        out.push_back(chat::tool_delta_event(stream_index, std::move(text)));
      }
    }
  }
  return {};
}

StreamEncoder::StreamEncoder(std::string model, bool include_usage)
    : model_(std::move(model)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      include_usage_(include_usage) {}

const std::string& StreamEncoder::prefix() {
  if (prefix_.empty()) {
    if (id_.empty()) id_ = generated_id("chatcmpl-");
    prefix_.append("{\"id\":");
    core::append_json_string(prefix_, id_);
    prefix_.append(",\"object\":\"chat.completion.chunk\",\"created\":");
    append_int(prefix_, created_);
    prefix_.append(",\"model\":");
    core::append_json_string(prefix_, model_);
    prefix_.push_back(',');
  }
  return prefix_;
}

void StreamEncoder::open_chunk(std::string& out, std::size_t extra) {
  const std::string& head = prefix();
  out.reserve(out.size() + head.size() + extra + 128);
  out.append("data: ").append(head).append("\"choices\":[{\"index\":0,\"delta\":{");
  if (!role_sent_) {
    out.append("\"role\":\"assistant\"");
    role_sent_ = true;
  }
}

void StreamEncoder::close_chunk(std::string& out, std::string_view finish_reason) {
  out.append("},\"logprobs\":null,\"finish_reason\":").append(finish_reason).append("}]}\n\n");
}

std::string StreamEncoder::encode(const StreamEvent& event) {
  std::string out;
  switch (event.kind) {
    case Kind::kStart:
      // The upstream's id and model name the chunks, as they name a non-streamed answer,
      // unless a chunk already went out.
      if (prefix_.empty()) {
        if (!event.id.empty()) id_ = event.id;
        if (model_.empty()) model_ = event.model;
      }
      break;
    case Kind::kTextDelta:
      if (event.text.empty()) break;
      open_chunk(out, event.text.size());
      comma(out);
      out.append("\"content\":");
      core::append_json_string(out, event.text);
      close_chunk(out, "null");
      break;
    case Kind::kReasoningDelta:
      if (event.text.empty()) break;
      open_chunk(out, event.text.size());
      comma(out);
      out.append("\"reasoning_content\":");
      core::append_json_string(out, event.text);
      close_chunk(out, "null");
      break;
    case Kind::kToolCallStart: {
      // The SDKs require every call to have an id; an upstream that sent none gets one.
      std::string id = event.tool_call.id.empty() ? generated_id("call_") : event.tool_call.id;
      open_chunk(out, id.size() + event.tool_call.name.size());
      comma(out);
      out.append("\"tool_calls\":[{\"index\":");
      append_int(out, event.index);
      out.append(",\"id\":");
      core::append_json_string(out, id);
      out.append(",\"type\":\"function\",\"function\":{\"name\":");
      core::append_json_string(out, event.tool_call.name);
      out.append(",\"arguments\":\"\"}}]");
      close_chunk(out, "null");
      break;
    }
    case Kind::kToolCallDelta:
      if (event.text.empty()) break;
      open_chunk(out, event.text.size());
      comma(out);
      out.append("\"tool_calls\":[{\"index\":");
      append_int(out, event.index);
      out.append(",\"function\":{\"arguments\":");
      core::append_json_string(out, event.text);
      out.append("}}]");
      close_chunk(out, "null");
      break;
    case Kind::kFinish: {
      if (finish_sent_) break;
      finish_sent_ = true;
      std::string reason;
      core::append_json_string(reason, chat::to_string(event.finish_reason));
      open_chunk(out, 0);
      close_chunk(out, reason);
      break;
    }
    case Kind::kUsage:
      // Sent once, at the end, when the client asked for it.
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
  // The SDKs reject a stream whose choice never got a finish_reason.
  if (!finish_sent_) out = encode(chat::finish_event(FinishReason::kStop));
  if (include_usage_) {
    std::int64_t prompt = usage_.input_tokens + usage_.cached_input_tokens;
    out.append("data: ").append(prefix()).append("\"choices\":[],\"usage\":{\"prompt_tokens\":");
    append_int(out, prompt);
    out.append(",\"completion_tokens\":");
    append_int(out, usage_.output_tokens);
    out.append(",\"total_tokens\":");
    append_int(out, prompt + usage_.output_tokens);
    out.append(",\"prompt_tokens_details\":{\"cached_tokens\":");
    append_int(out, usage_.cached_input_tokens);
    out.append("}}}\n\n");
  }
  out.append("data: [DONE]\n\n");
  return out;
}

std::string StreamEncoder::error(const core::Error& error) {
  return "data: " + encode_error(error) + "\n\n";
}

}  // namespace backstop::dialects::openai
