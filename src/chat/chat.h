#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace backstop::chat {

// The wire formats backstop speaks, in and out.
enum class Dialect { kOpenAI, kAnthropic };

enum class Role { kSystem, kUser, kAssistant, kTool };

// One piece of a message's content. Text, or an image given as a URL
// (http(s) or a data: URL "data:image/png;base64,...").
struct ContentPart {
  enum class Kind { kText, kImage };
  Kind kind = Kind::kText;
  std::string text;       // kText
  std::string image_url;  // kImage
};

// A tool call made by the assistant. `arguments` is JSON text, as OpenAI sends it.
struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;
};

// One turn of the conversation. System prompts are messages with Role::kSystem,
// in the order the client sent them.
struct Message {
  Role role = Role::kUser;
  std::vector<ContentPart> content;  // empty: content was null or absent
  std::vector<ToolCall> tool_calls;  // kAssistant only
  std::string tool_call_id;          // kTool only: which call this answers
  bool tool_error = false;           // kTool: Anthropic's tool_result is_error
  std::string name;                  // optional participant name
  std::string reasoning;             // reasoning_content / thinking carried on a turn

  // All text parts, concatenated.
  [[nodiscard]] std::string text() const;
};

// A function the model may call. `parameters` is its JSON Schema (an object).
struct Tool {
  std::string name;
  std::string description;
  boost::json::value parameters;
};

struct ToolChoice {
  enum class Kind { kUnset, kAuto, kNone, kRequired, kNamed };
  Kind kind = Kind::kUnset;
  std::string name;  // kNamed
};

// OpenAI's response_format (Anthropic has none; it is expressed in the prompt there).
struct ResponseFormat {
  enum class Kind { kUnset, kText, kJsonObject, kJsonSchema };
  Kind kind = Kind::kUnset;
  std::string name;
  boost::json::value schema;  // kJsonSchema: the schema object
};

// A chat request in provider-neutral form. `original` keeps the body as the client sent
// it, so that a target of the same dialect gets every field it did not model (seed,
// vendor extras) untouched.
struct ChatRequest {
  std::string model;  // the workload name the client asked for
  std::vector<Message> messages;
  std::vector<Tool> tools;
  ToolChoice tool_choice;
  ResponseFormat response_format;
  std::optional<std::int64_t> max_tokens;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::vector<std::string> stop;
  std::optional<bool> parallel_tool_calls;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  boost::json::object metadata;   // Anthropic's metadata (user_id)
  Dialect origin = Dialect::kOpenAI;
  boost::json::object original;

  // The tool offered under this name, or nullptr.
  [[nodiscard]] const Tool* find_tool(std::string_view name) const;
};

enum class FinishReason { kStop, kLength, kToolCalls, kContentFilter, kUnknown };

// Token counts of one call. input_tokens excludes cache reads (they are
// cached_input_tokens); cache_creation_input_tokens is a part of input_tokens.
struct Usage {
  std::int64_t input_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t cache_creation_input_tokens = 0;
  std::int64_t output_tokens = 0;
};

// One answer in provider-neutral form.
struct ChatResponse {
  std::string id;
  std::string model;  // the model that answered, as the upstream named it
  std::int64_t created = 0;
  std::optional<std::string> content;  // nullopt: the answer had no content (tool calls only)
  std::string reasoning;               // reasoning_content / thinking
  std::vector<ToolCall> tool_calls;
  FinishReason finish_reason = FinishReason::kStop;
  Usage usage;
};

// An incremental piece of a streamed answer, in provider-neutral form.
struct StreamEvent {
  enum class Kind {
    kStart,           // id, model
    kTextDelta,       // text
    kReasoningDelta,  // text
    kToolCallStart,   // index, tool_call.id, tool_call.name
    kToolCallDelta,   // index, text (an arguments fragment)
    kFinish,          // finish_reason
    kUsage,           // usage
  };
  Kind kind = Kind::kTextDelta;
  std::string text;
  int index = 0;
  ToolCall tool_call;
  FinishReason finish_reason = FinishReason::kStop;
  Usage usage;
  std::string id;
  std::string model;
};

// Names used on the wire and in logs.
[[nodiscard]] std::string_view to_string(Role role);
[[nodiscard]] std::string_view to_string(FinishReason reason);  // OpenAI's names
[[nodiscard]] std::string_view to_string(Dialect dialect);      // "openai" | "anthropic"

}  // namespace backstop::chat
