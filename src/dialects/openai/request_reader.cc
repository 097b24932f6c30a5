#include "dialects/openai/request_reader.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "dialects/openai/one_pass.h"
#include "dialects/openai/openai.h"
#include "json/json.h"

namespace backstop::dialects::openai::detail {
namespace {

using chat::ChatRequest;
using chat::ContentPart;
using chat::Message;
using chat::ResponseFormat;
using chat::Role;
using chat::ToolCall;
using chat::ToolChoice;

// What the value after a key (or an array element) is read as.
enum class Field {
  kSkip,  // not modelled: read past, whatever it is
  // Top level.
  kModel,
  kMessages,
  kTools,
  kToolChoice,
  kResponseFormat,
  kStop,
  kMaxTokens,
  kMaxCompletionTokens,
  kTemperature,
  kTopP,
  kStream,
  kStreamOptions,
  kParallelToolCalls,
  kUser,
  // messages[i] and its parts.
  kRole,
  kContent,
  kMessageToolCalls,
  kReasoningContent,
  kToolCallId,
  kName,
  kType,
  kText,
  kImageUrl,
  kUrl,
  kId,
  kFunction,
  kArguments,
  kDescription,
  kParameters,
  kJsonSchema,
  kSchema,
  kStrict,
  kIncludeUsage,
  // Array elements.
  kMessage,
  kPart,
  kMessageToolCall,
  kTool,
  kStopSequence,
  kDocument,  // the top-level value
};
// One bit per field in a frame's `seen` mask.
static_assert(static_cast<int>(Field::kDocument) < 64);

// The object or array being read.
enum class Frame {
  kTop,
  kMessages,
  kMessage,
  kParts,
  kPart,
  kImageUrl,
  kMessageToolCalls,
  kMessageToolCall,
  kCallFunction,
  kTools,
  kTool,
  kToolFunction,
  kToolChoice,
  kChoiceFunction,
  kResponseFormat,
  kJsonSchema,
  kStop,
  kStreamOptions,
  kSkip,
};

// The field a key names in the object being read.
Field field_of(Frame frame, std::string_view key) {
  switch (frame) {
    case Frame::kTop:
      if (key == "model") return Field::kModel;
      if (key == "messages") return Field::kMessages;
      if (key == "tools") return Field::kTools;
      if (key == "tool_choice") return Field::kToolChoice;
      if (key == "response_format") return Field::kResponseFormat;
      if (key == "stop") return Field::kStop;
      if (key == "max_tokens") return Field::kMaxTokens;
      if (key == "max_completion_tokens") return Field::kMaxCompletionTokens;
      if (key == "temperature") return Field::kTemperature;
      if (key == "top_p") return Field::kTopP;
      if (key == "stream") return Field::kStream;
      if (key == "stream_options") return Field::kStreamOptions;
      if (key == "parallel_tool_calls") return Field::kParallelToolCalls;
      if (key == "user") return Field::kUser;
      break;
    case Frame::kMessage:
      if (key == "role") return Field::kRole;
      if (key == "content") return Field::kContent;
      if (key == "tool_calls") return Field::kMessageToolCalls;
      if (key == "reasoning_content") return Field::kReasoningContent;
      if (key == "tool_call_id") return Field::kToolCallId;
      if (key == "name") return Field::kName;
      break;
    case Frame::kPart:
      if (key == "type") return Field::kType;
      if (key == "text") return Field::kText;
      if (key == "image_url") return Field::kImageUrl;
      break;
    case Frame::kImageUrl:
      if (key == "url") return Field::kUrl;
      break;
    case Frame::kMessageToolCall:
      if (key == "id") return Field::kId;
      if (key == "type") return Field::kType;
      if (key == "function") return Field::kFunction;
      break;
    case Frame::kCallFunction:
      if (key == "name") return Field::kName;
      if (key == "arguments") return Field::kArguments;
      break;
    case Frame::kTool:
      if (key == "type") return Field::kType;
      if (key == "function") return Field::kFunction;
      break;
    case Frame::kToolFunction:
      if (key == "name") return Field::kName;
      if (key == "description") return Field::kDescription;
      if (key == "parameters") return Field::kParameters;
      break;
    case Frame::kToolChoice:
      if (key == "type") return Field::kType;
      if (key == "function") return Field::kFunction;
      break;
    case Frame::kChoiceFunction:
      if (key == "name") return Field::kName;
      break;
    case Frame::kResponseFormat:
      if (key == "type") return Field::kType;
      if (key == "json_schema") return Field::kJsonSchema;
      break;
    case Frame::kJsonSchema:
      if (key == "name") return Field::kName;
      if (key == "schema") return Field::kSchema;
      if (key == "strict") return Field::kStrict;
      break;
    case Frame::kStreamOptions:
      if (key == "include_usage") return Field::kIncludeUsage;
      break;
    case Frame::kMessages:
    case Frame::kParts:
    case Frame::kMessageToolCalls:
    case Frame::kTools:
    case Frame::kStop:
    case Frame::kSkip:
      break;
  }
  return Field::kSkip;
}

// Fields whose null the tree reader takes as absent.
bool nullable(Field field) {
  switch (field) {
    case Field::kTools:
    case Field::kToolChoice:
    case Field::kResponseFormat:
    case Field::kStop:
    case Field::kMaxTokens:
    case Field::kMaxCompletionTokens:
    case Field::kTemperature:
    case Field::kTopP:
    case Field::kStream:
    case Field::kStreamOptions:
    case Field::kParallelToolCalls:
    case Field::kUser:
    case Field::kContent:
    case Field::kMessageToolCalls:
    case Field::kReasoningContent:
    case Field::kToolCallId:
    case Field::kDescription:
    case Field::kParameters:
    case Field::kJsonSchema:
    case Field::kSchema:
    case Field::kStrict:
    case Field::kIncludeUsage:
    case Field::kSkip:
      return true;
    default:
      return false;
  }
}

// The message, content part, tool call or tool being read, and what it has had so far.
struct MessageState {
  Message message;
  bool role = false;
  bool content = false;  // content given, not null
  bool tool_call_id = false;
};
struct PartState {
  std::string type;
  std::string text;
  std::string url;
  bool has_type = false;
  bool has_text = false;
  bool has_url = false;
};
struct CallState {
  ToolCall call;
  bool id = false;
  bool function = false;
  bool name = false;
  bool arguments = false;
};
struct ToolState {
  std::string name;
  std::string description;
  boost::json::value parameters;
  bool function = false;
  bool has_name = false;
  bool has_parameters = false;
};
struct FormatState {
  std::string type;
  std::string name;
  boost::json::value schema;
  bool present = false;
  bool has_type = false;
  bool json_schema = false;
  bool has_name = false;
  bool has_schema = false;
  bool strict = false;
};
struct ChoiceState {
  std::string name;
  bool object = false;
  bool has_type = false;
  bool function = false;
  bool has_name = false;
};

// Builds the request from the parser's events. Any event outside the plain shape stops the
// parse: the tree reader takes over then. Tool and
// response schemas are built as trees in the request's arena, as the tree reader does.
struct Reader : one_pass::Handler {
  // The tree reader's limits, for the schemas built as trees.
  static constexpr std::size_t max_object_size = boost::json::object::max_size();
  static constexpr std::size_t max_array_size = boost::json::array::max_size();
  static constexpr std::size_t max_key_size = boost::json::string::max_size();
  static constexpr std::size_t max_string_size = boost::json::string::max_size();

  Reader(std::string_view text, boost::json::storage_ptr storage)
      : text(text), mapper(text), storage(std::move(storage)) {}

  bool on_object_begin(boost::system::error_code& ec) {
    if (tree_depth > 0) {
      ++tree_depth;
      return true;
    }
    if (frames.empty()) return enter(Frame::kTop, ec);
    switch (take()) {
      case Field::kMessage:
        message = MessageState{};
        return enter(Frame::kMessage, ec);
      case Field::kPart:
        part = PartState{};
        return enter(Frame::kPart, ec);
      case Field::kImageUrl:
        return enter(Frame::kImageUrl, ec);
      case Field::kMessageToolCall:
        call = CallState{};
        return enter(Frame::kMessageToolCall, ec);
      case Field::kTool:
        tool = ToolState{};
        return enter(Frame::kTool, ec);
      case Field::kFunction: {
        const Frame frame = frames.top();
        if (frame == Frame::kMessageToolCall) {
          call.function = true;
          return enter(Frame::kCallFunction, ec);
        }
        if (frame == Frame::kTool) {
          tool.function = true;
          return enter(Frame::kToolFunction, ec);
        }
        choice.function = true;
        return enter(Frame::kChoiceFunction, ec);
      }
      case Field::kToolChoice:
        choice.object = true;
        return enter(Frame::kToolChoice, ec);
      case Field::kResponseFormat:
        format.present = true;
        return enter(Frame::kResponseFormat, ec);
      case Field::kJsonSchema:
        format.json_schema = true;
        return enter(Frame::kJsonSchema, ec);
      case Field::kStreamOptions:
        return enter(Frame::kStreamOptions, ec);
      case Field::kParameters:
      case Field::kSchema:
        // Built as a tree from here to the matching end.
        tree_field = frames.top() == Frame::kToolFunction ? Field::kParameters : Field::kSchema;
        tree_depth = 1;
        stack.reset(storage);
        return true;
      case Field::kSkip:
        return enter(Frame::kSkip, ec);
      default:
        return stop(ec);
    }
  }

  bool on_object_end(std::size_t n, boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_object(n);
      if (--tree_depth == 0) end_tree();
      return true;
    }
    if (!end_object(frames.top())) return stop(ec);
    frames.pop();
    return true;
  }

  bool on_array_begin(boost::system::error_code& ec) {
    if (tree_depth > 0) {
      ++tree_depth;
      return true;
    }
    if (frames.empty()) return stop(ec);
    switch (take()) {
      case Field::kMessages:
        has_messages = true;
        return enter(Frame::kMessages, ec);
      case Field::kContent:
        message.content = true;
        return enter(Frame::kParts, ec);
      case Field::kMessageToolCalls:
        message.message.tool_calls.clear();
        return enter(Frame::kMessageToolCalls, ec);
      case Field::kTools:
        return enter(Frame::kTools, ec);
      case Field::kStop:
        return enter(Frame::kStop, ec);
      case Field::kSkip:
        return enter(Frame::kSkip, ec);
      default:
        return stop(ec);
    }
  }

  bool on_array_end(std::size_t n, boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_array(n);
      --tree_depth;
      return true;
    }
    // `messages` must not be empty.
    if (frames.top() == Frame::kMessages && n == 0) return stop(ec);
    frames.pop();
    return true;
  }

  bool on_key_part(std::string_view s, std::size_t, boost::system::error_code&) {
    if (tree_depth > 0) {
      stack.push_chars(s);
    } else {
      parts.append(s);
    }
    return true;
  }

  bool on_key(std::string_view s, std::size_t, boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_key(s);
      return true;
    }
    const Frame frame = frames.top();
    if (frames.depth() == 1) {
      // A key the parser did not read straight from the text could spell "model".
      if (!parts.empty()) return stop(ec);
      flush_member();
      top_key = json::view_in_text(text, s);
      if (top_key.data() == nullptr) return stop(ec);
      has_top_key = true;
    }
    pending = frame == Frame::kSkip ? Field::kSkip : field_of(frame, parts.whole(s));
    parts.clear();
    // A repeated field: which one counts is the tree reader's business.
    return pending == Field::kSkip || frames.first(static_cast<int>(pending)) || stop(ec);
  }

  bool on_string_part(std::string_view s, std::size_t, boost::system::error_code&) {
    if (tree_depth > 0) {
      stack.push_chars(s);
    } else if (!frames.empty() && frames.top() != Frame::kSkip) {
      parts.append(s);
    }
    return true;
  }

  bool on_string(std::string_view s, std::size_t, boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_string(s);
      return true;
    }
    if (frames.depth() == 1 && has_top_key) {
      mapper.member(top_key, parts.empty() ? json::view_in_text(text, s) : std::string_view());
      has_top_key = false;
    }
    const Field field = take();
    const bool ok = string(field, parts.whole(s));
    parts.clear();
    return ok || stop(ec);
  }

  bool on_int64(std::int64_t i, std::string_view, boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_int64(i);
      return true;
    }
    const Field field = take();
    switch (field) {
      case Field::kMaxTokens:
      case Field::kMaxCompletionTokens:
        if (i < 1) return stop(ec);
        (field == Field::kMaxTokens ? max_tokens : max_completion_tokens) = i;
        return true;
      default:
        return number(field, static_cast<double>(i)) || stop(ec);
    }
  }

  bool on_uint64(std::uint64_t u, std::string_view, boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_uint64(u);
      return true;
    }
    return number(take(), static_cast<double>(u)) || stop(ec);
  }

  bool on_double(double d, std::string_view, boost::system::error_code& ec) {
    // Out of a double's range: the tree reader rejects the body.
    if (!std::isfinite(d)) return stop(ec);
    if (tree_depth > 0) {
      stack.push_double(d);
      return true;
    }
    return number(take(), d) || stop(ec);
  }

  bool on_bool(bool b, boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_bool(b);
      return true;
    }
    switch (take()) {
      case Field::kStream:
        stream = b;
        return true;
      case Field::kParallelToolCalls:
        parallel_tool_calls = b;
        return true;
      case Field::kIncludeUsage:
        include_usage = b;
        return true;
      case Field::kStrict:
        format.strict = b;
        return true;
      case Field::kSkip:
        return true;
      default:
        return stop(ec);
    }
  }

  bool on_null(boost::system::error_code& ec) {
    if (tree_depth > 0) {
      stack.push_null();
      return true;
    }
    return nullable(take()) || stop(ec);
  }

  // The field the next value belongs to, consumed. Inside arrays it is the element's role.
  Field take() {
    if (frames.empty()) return Field::kDocument;
    switch (frames.top()) {
      case Frame::kMessages:
        return Field::kMessage;
      case Frame::kParts:
        return Field::kPart;
      case Frame::kMessageToolCalls:
        return Field::kMessageToolCall;
      case Frame::kTools:
        return Field::kTool;
      case Frame::kStop:
        return Field::kStopSequence;
      case Frame::kSkip:
        return Field::kSkip;
      default: {
        const Field field = pending;
        pending = Field::kSkip;
        return field;
      }
    }
  }

  // A string for `field`; false when the field cannot be one (or not this one).
  bool string(Field field, std::string_view s) {
    const Frame frame = frames.empty() ? Frame::kTop : frames.top();
    switch (field) {
      case Field::kSkip:
        return true;
      case Field::kModel:
        request.model.assign(s);
        has_model = true;
        return true;
      case Field::kToolChoice:
        if (s == "auto") {
          request.tool_choice.kind = ToolChoice::Kind::kAuto;
        } else if (s == "none") {
          request.tool_choice.kind = ToolChoice::Kind::kNone;
        } else if (s == "required") {
          request.tool_choice.kind = ToolChoice::Kind::kRequired;
        } else {
          return false;
        }
        return true;
      case Field::kStop:
      case Field::kStopSequence:
        request.stop.emplace_back(s);
        return true;
      case Field::kUser:
        // OpenAI's end-user id is what Anthropic calls metadata.user_id.
        request.metadata["user_id"] = s;
        return true;
      case Field::kRole:
        message.role = true;
        if (s == "system" || s == "developer") {
          message.message.role = Role::kSystem;
        } else if (s == "user") {
          message.message.role = Role::kUser;
        } else if (s == "assistant") {
          message.message.role = Role::kAssistant;
        } else if (s == "tool") {
          message.message.role = Role::kTool;
        } else {
          return false;
        }
        return true;
      case Field::kContent:
        message.content = true;
        message.message.content.push_back({ContentPart::Kind::kText, std::string(s), {}});
        return true;
      case Field::kReasoningContent:
        message.message.reasoning.assign(s);
        return true;
      case Field::kToolCallId:
        message.tool_call_id = true;
        message.message.tool_call_id.assign(s);
        return true;
      case Field::kName:
        switch (frame) {
          case Frame::kMessage:
            message.message.name.assign(s);
            return true;
          case Frame::kCallFunction:
            call.name = true;
            call.call.name.assign(s);
            return true;
          case Frame::kToolFunction:
            tool.has_name = true;
            tool.name.assign(s);
            return true;
          case Frame::kChoiceFunction:
            choice.has_name = true;
            choice.name.assign(s);
            return true;
          default:
            format.has_name = true;
            format.name.assign(s);
            return true;
        }
      case Field::kType:
        switch (frame) {
          case Frame::kPart:
            part.has_type = true;
            part.type.assign(s);
            return true;
          case Frame::kToolChoice:
            choice.has_type = true;
            return s == "function";
          case Frame::kMessageToolCall:
          case Frame::kTool:
            return s == "function";
          default:
            format.has_type = true;
            format.type.assign(s);
            return true;
        }
      case Field::kText:
        part.has_text = true;
        part.text.assign(s);
        return true;
      case Field::kUrl:
        part.has_url = true;
        part.url.assign(s);
        return true;
      case Field::kId:
        call.id = true;
        call.call.id.assign(s);
        return true;
      case Field::kArguments:
        call.arguments = true;
        call.call.arguments.assign(s);
        return true;
      case Field::kDescription:
        tool.description.assign(s);
        return true;
      default:
        return false;
    }
  }

  // A number for `field` (integers arrive as on_int64 first); false when it cannot be one.
  bool number(Field field, double d) {
    switch (field) {
      case Field::kTemperature:
        request.temperature = d;
        return true;
      case Field::kTopP:
        request.top_p = d;
        return true;
      case Field::kSkip:
        return true;
      default:
        return false;
    }
  }

  // What must hold when an object ends, and what it adds to the request.
  bool end_object(Frame frame) {
    switch (frame) {
      case Frame::kTop:
        flush_member();
        return has_model && has_messages && end_request();
      case Frame::kMessage:
        return end_message();
      case Frame::kPart:
        if (part.has_type && part.type == "text" && part.has_text) {
          message.message.content.push_back({ContentPart::Kind::kText, part.text, {}});
          return true;
        }
        if (part.has_type && part.type == "image_url" && part.has_url) {
          message.message.content.push_back({ContentPart::Kind::kImage, {}, part.url});
          return true;
        }
        return false;
      case Frame::kMessageToolCall:
        if (!call.id || !call.function) return false;
        message.message.tool_calls.push_back(std::move(call.call));
        return true;
      case Frame::kCallFunction:
        return call.name && call.arguments;
      case Frame::kTool:
        if (!tool.function) return false;
        request.tools.push_back({std::move(tool.name), std::move(tool.description),
                                 tool.has_parameters
                                     ? std::move(tool.parameters)
                                     : boost::json::value(boost::json::object(storage))});
        return true;
      case Frame::kToolFunction:
        return tool.has_name && !tool.name.empty();
      case Frame::kToolChoice:
        return choice.has_type && choice.function;
      case Frame::kChoiceFunction:
        return choice.has_name;
      default:
        return true;
    }
  }

  bool end_message() {
    Message& m = message.message;
    if (!message.role) return false;
    if (m.role != Role::kAssistant) {
      // Read only from assistant turns.
      m.tool_calls.clear();
      m.reasoning.clear();
    }
    if (!message.content && (m.role != Role::kAssistant || m.tool_calls.empty())) return false;
    if (m.role == Role::kTool) {
      if (!message.tool_call_id) return false;
    } else {
      m.tool_call_id.clear();
    }
    request.messages.push_back(std::move(m));
    return true;
  }

  bool end_request() {
    if (choice.object) {
      if (request.find_tool(choice.name) == nullptr) return false;
      request.tool_choice = {ToolChoice::Kind::kNamed, choice.name};
    }
    if (format.present) {
      if (!format.has_type) return false;
      ResponseFormat& out = request.response_format;
      if (format.type == "text") {
        out.kind = ResponseFormat::Kind::kText;
      } else if (format.type == "json_object") {
        out.kind = ResponseFormat::Kind::kJsonObject;
      } else if (format.type == "json_schema" && format.json_schema && format.has_name) {
        out.kind = ResponseFormat::Kind::kJsonSchema;
        out.name = std::move(format.name);
        out.strict = format.strict;
        if (format.has_schema) chat::JsonArena::adopt(out.schema, std::move(format.schema));
      } else {
        return false;
      }
    }
    // max_completion_tokens is the newer name; it wins when a client sends both.
    if (max_completion_tokens) {
      request.max_tokens = max_completion_tokens;
    } else if (max_tokens) {
      request.max_tokens = max_tokens;
    }
    request.parallel_tool_calls = parallel_tool_calls;
    request.stream = stream;
    request.include_usage = include_usage;
    return true;
  }

  void end_tree() {
    if (tree_field == Field::kParameters) {
      tool.has_parameters = true;
      chat::JsonArena::adopt(tool.parameters, stack.release());
    } else {
      format.has_schema = true;
      chat::JsonArena::adopt(format.schema, stack.release());
    }
  }

  // Shows the mapper the pending top-level member whose value was not a string.
  void flush_member() {
    if (has_top_key) mapper.member(top_key, {});
    has_top_key = false;
  }

  bool enter(Frame frame, boost::system::error_code& ec) { return frames.push(frame) || stop(ec); }

  std::string_view text;
  chat::OriginalBody::Mapper mapper;
  boost::json::storage_ptr storage;
  ChatRequest request;

  one_pass::Frames<Frame> frames;
  Field pending = Field::kSkip;
  one_pass::Parts parts;
  std::string_view top_key;
  bool has_top_key = false;

  // A schema being built as a tree: its depth, and whose it is. The stack's own working
  // memory starts in `scratch`.
  alignas(boost::json::value) unsigned char scratch[1024];
  boost::json::value_stack stack{boost::json::storage_ptr(), scratch, sizeof scratch};
  std::size_t tree_depth = 0;
  Field tree_field = Field::kSkip;

  MessageState message;
  PartState part;
  CallState call;
  ToolState tool;
  ChoiceState choice;
  FormatState format;
  bool has_model = false;
  bool has_messages = false;
  std::optional<std::int64_t> max_tokens;
  std::optional<std::int64_t> max_completion_tokens;
  std::optional<bool> parallel_tool_calls;
  bool stream = false;
  bool include_usage = false;
};

}  // namespace

std::optional<ChatRequest> read_plain_request(std::string_view body) {
  chat::JsonArena arena(body.size());
  boost::json::basic_parser<Reader> parser({}, body, arena.storage());
  Reader& reader = parser.handler();
  if (!one_pass::parse_whole(parser, body)) return std::nullopt;
  ChatRequest out = std::move(reader.request);
  out.original_body = reader.mapper.finish();
  // A body that cannot pass through as bytes is kept as a tree: the tree reader does that.
  if (out.original_body.text.empty()) return std::nullopt;
  out.arena = std::move(arena);
  out.origin = openai::kName;
  out.original_body.stream = out.stream;
  return out;
}

}  // namespace backstop::dialects::openai::detail
