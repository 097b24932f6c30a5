#include "dialects/openai/response_reader.h"

#include <boost/json/basic_parser_impl.hpp>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "dialects/openai/one_pass.h"
#include "dialects/openai/wire.h"
#include "dialects/wire_text.h"

namespace backstop::dialects::openai::detail {
namespace {

using chat::ChatResponse;
using chat::FinishReason;

// What the value after a key (or an array element) is read as.
enum class Field {
  kSkip,  // not needed: read past, whatever it is
  kId,
  kObject,
  kCreated,
  kModel,
  kSystemFingerprint,
  kChoices,
  kUsage,
  kMessage,
  kFinishReason,
  kContent,
  kReasoningContent,
  kReasoning,
  kToolCalls,
  kCallId,
  kFunction,
  kName,
  kArguments,
  kPromptTokens,
  kCompletionTokens,
  kCacheHitTokens,
  kPromptDetails,
  kCachedTokens,
  kFirstChoice,  // choices[0]
  kToolCall,     // an element of tool_calls
  kDocument,     // the top-level value
};
// One bit per field in a frame's mask of fields had.
static_assert(static_cast<int>(Field::kDocument) < 64);

// The object or array being read.
enum class Frame {
  kTop,
  kChoices,
  kChoice,
  kMessage,
  kToolCalls,
  kToolCall,
  kFunction,
  kUsage,
  kDetails,
  kSkip
};

// The field a key names in the object being read.
Field field_of(Frame frame, std::string_view key) {
  switch (frame) {
    case Frame::kTop:
      if (key == "id") return Field::kId;
      if (key == "object") return Field::kObject;
      if (key == "created") return Field::kCreated;
      if (key == "model") return Field::kModel;
      if (key == "system_fingerprint") return Field::kSystemFingerprint;
      if (key == "choices") return Field::kChoices;
      if (key == "usage") return Field::kUsage;
      break;
    case Frame::kChoice:
      if (key == "message") return Field::kMessage;
      if (key == "finish_reason") return Field::kFinishReason;
      break;
    case Frame::kMessage:
      if (key == "content") return Field::kContent;
      if (key == "reasoning_content") return Field::kReasoningContent;
      if (key == "reasoning") return Field::kReasoning;
      if (key == "tool_calls") return Field::kToolCalls;
      break;
    case Frame::kToolCall:
      if (key == "id") return Field::kCallId;
      if (key == "function") return Field::kFunction;
      break;
    case Frame::kFunction:
      if (key == "name") return Field::kName;
      if (key == "arguments") return Field::kArguments;
      break;
    case Frame::kUsage:
      if (key == "prompt_tokens") return Field::kPromptTokens;
      if (key == "completion_tokens") return Field::kCompletionTokens;
      if (key == "prompt_cache_hit_tokens") return Field::kCacheHitTokens;
      if (key == "prompt_tokens_details") return Field::kPromptDetails;
      break;
    case Frame::kDetails:
      if (key == "cached_tokens") return Field::kCachedTokens;
      break;
    case Frame::kChoices:
    case Frame::kToolCalls:
    case Frame::kSkip:
      break;
  }
  return Field::kSkip;
}

// Builds the answer from the parser's events. Any event outside the plain shape stops the
// parse: the tree reader takes over then.
struct Reader : one_pass::Handler {
  bool on_object_begin(boost::system::error_code& ec) {
    if (frames.empty()) return enter(Frame::kTop, ec);
    switch (take()) {
      case Field::kChoices:
      case Field::kContent:
      case Field::kToolCalls:
      case Field::kName:
      case Field::kArguments:
      case Field::kObject:
        return stop(ec);
      case Field::kUsage:
        return enter(Frame::kUsage, ec);
      case Field::kPromptDetails:
        return enter(Frame::kDetails, ec);
      case Field::kFirstChoice:
        choice_seen = true;
        return enter(Frame::kChoice, ec);
      case Field::kMessage:
        message_seen = true;
        return enter(Frame::kMessage, ec);
      case Field::kToolCall:
        out.tool_calls.emplace_back();
        return enter(Frame::kToolCall, ec);
      case Field::kFunction:
        function_seen = true;
        name_seen = false;
        return enter(Frame::kFunction, ec);
      default:
        return enter(Frame::kSkip, ec);
    }
  }

  bool on_object_end(std::size_t, boost::system::error_code& ec) {
    const Frame frame = frames.top();
    // Fields the tree reader reports missing.
    if (frame == Frame::kTop && !choice_seen) return stop(ec);
    if (frame == Frame::kChoice && !message_seen) return stop(ec);
    if (frame == Frame::kToolCall && !function_seen) return stop(ec);
    if (frame == Frame::kFunction && !name_seen) return stop(ec);
    frames.pop();
    return true;
  }

  bool on_array_begin(boost::system::error_code& ec) {
    if (frames.empty()) return stop(ec);
    switch (take()) {
      case Field::kChoices:
        return enter(Frame::kChoices, ec);
      case Field::kToolCalls:
        return enter(Frame::kToolCalls, ec);
      case Field::kContent:
      case Field::kName:
      case Field::kArguments:
      case Field::kObject:
      case Field::kMessage:
      case Field::kFunction:
      case Field::kFirstChoice:
      case Field::kToolCall:
        return stop(ec);
      default:
        return enter(Frame::kSkip, ec);
    }
  }

  bool on_array_end(std::size_t, boost::system::error_code&) {
    frames.pop();
    return true;
  }

  bool on_key_part(std::string_view s, std::size_t, boost::system::error_code&) {
    parts.append(s);
    return true;
  }

  bool on_key(std::string_view s, std::size_t, boost::system::error_code& ec) {
    const Frame frame = frames.top();
    if (frame == Frame::kSkip) {
      parts.clear();
      return true;
    }
    pending = field_of(frame, parts.whole(s));
    parts.clear();
    // A repeated field: which one counts is the tree reader's business.
    return pending == Field::kSkip || frames.first(static_cast<int>(pending)) || stop(ec);
  }

  bool on_string_part(std::string_view s, std::size_t, boost::system::error_code&) {
    if (!frames.empty() && frames.top() != Frame::kSkip) parts.append(s);
    return true;
  }

  bool on_string(std::string_view s, std::size_t, boost::system::error_code& ec) {
    const Field field = take();
    const std::string_view text = parts.whole(s);
    bool ok = true;
    switch (field) {
      case Field::kId:
        out.id.assign(text);
        break;
      case Field::kObject:
        ok = text == "chat.completion";
        break;
      case Field::kModel:
        out.model.assign(text);
        break;
      case Field::kSystemFingerprint:
        out.system_fingerprint.assign(text);
        break;
      case Field::kFinishReason:
        out.finish_reason = wire::decode_finish_reason(text);
        break;
      case Field::kContent:
        out.content.emplace(text);
        break;
      case Field::kReasoningContent:
        reasoning_content.emplace(text);
        break;
      case Field::kReasoning:
        reasoning.emplace(text);
        break;
      case Field::kCallId:
        out.tool_calls.back().id.assign(text);
        break;
      case Field::kName:
        name_seen = true;
        out.tool_calls.back().name.assign(text);
        break;
      case Field::kArguments:
        out.tool_calls.back().arguments.assign(text);
        break;
      default:
        ok = scalar(field);
        break;
    }
    parts.clear();
    return ok || stop(ec);
  }

  bool on_int64(std::int64_t i, std::string_view, boost::system::error_code& ec) {
    return count(clamped_count(boost::json::value(i)), ec);
  }
  bool on_uint64(std::uint64_t u, std::string_view, boost::system::error_code& ec) {
    return count(clamped_count(boost::json::value(u)), ec);
  }
  bool on_double(double d, std::string_view, boost::system::error_code& ec) {
    // Out of a double's range: the tree reader rejects the body.
    if (!std::isfinite(d)) return stop(ec);
    return count(std::nullopt, ec);
  }
  bool on_bool(bool, boost::system::error_code& ec) { return scalar(take()) || stop(ec); }
  bool on_null(boost::system::error_code& ec) {
    const Field field = take();
    // null content and tool_calls mean none; null finish_reason is unknown (the default).
    if (field == Field::kContent || field == Field::kToolCalls) return true;
    return scalar(field) || stop(ec);
  }
  // The field the next value belongs to, consumed. Inside arrays it is the element's role.
  Field take() {
    if (frames.empty()) return Field::kDocument;
    const Frame frame = frames.top();
    if (frame == Frame::kChoices) {
      return frames.next_element() == 0 ? Field::kFirstChoice : Field::kSkip;
    }
    if (frame == Frame::kToolCalls) {
      function_seen = false;
      return Field::kToolCall;
    }
    if (frame == Frame::kSkip) return Field::kSkip;
    const Field field = pending;
    pending = Field::kSkip;
    return field;
  }

  // Whether a non-string scalar (a number other than a count, a bool, null) can stand for
  // `field`: fields the tree reader ignores then take it; those it rejects do not.
  static bool scalar(Field field) {
    switch (field) {
      case Field::kObject:
      case Field::kChoices:
      case Field::kMessage:
      case Field::kContent:
      case Field::kToolCalls:
      case Field::kFunction:
      case Field::kName:
      case Field::kArguments:
      case Field::kFirstChoice:
      case Field::kToolCall:
      case Field::kDocument:
        return false;
      default:
        return true;
    }
  }

  // A number for the field being read: token counts and `created` keep integers (a double
  // counts as zero, as in the tree reader).
  bool count(std::optional<std::int64_t> n, boost::system::error_code& ec) {
    const Field field = take();
    const std::int64_t value = n.value_or(0);
    switch (field) {
      case Field::kCreated:
        out.created = value;
        return true;
      case Field::kPromptTokens:
        prompt_tokens = value;
        return true;
      case Field::kCompletionTokens:
        completion_tokens = value;
        return true;
      case Field::kCacheHitTokens:
        cache_hit_tokens = value;
        return true;
      case Field::kCachedTokens:
        cached_tokens = value;
        return true;
      default:
        return scalar(field) || stop(ec);
    }
  }

  bool enter(Frame frame, boost::system::error_code& ec) { return frames.push(frame) || stop(ec); }

  ChatResponse out;
  one_pass::Frames<Frame> frames;
  Field pending = Field::kSkip;
  one_pass::Parts parts;
  bool choice_seen = false;
  bool message_seen = false;
  bool function_seen = false;
  bool name_seen = false;
  std::optional<std::string> reasoning_content;
  std::optional<std::string> reasoning;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cache_hit_tokens = 0;
  std::int64_t cached_tokens = 0;
};

}  // namespace

std::optional<ChatResponse> read_plain_response(std::string_view body) {
  boost::json::basic_parser<Reader> parser({});
  Reader& reader = parser.handler();
  reader.out.finish_reason = FinishReason::kUnknown;
  if (!one_pass::parse_whole(parser, body)) return std::nullopt;
  ChatResponse out = std::move(reader.out);
  // DeepSeek and older vLLM call it reasoning_content; newer vLLM calls it reasoning.
  if (reader.reasoning_content) {
    out.reasoning = std::move(*reader.reasoning_content);
  } else if (reader.reasoning) {
    out.reasoning = std::move(*reader.reasoning);
  }
  out.usage = wire::usage_of(reader.prompt_tokens, reader.cached_tokens, reader.cache_hit_tokens,
                             reader.completion_tokens);
  return out;
}

}  // namespace backstop::dialects::openai::detail
