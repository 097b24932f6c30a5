#pragma once

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backstop::chat {

enum class Role { kSystem, kUser, kAssistant, kTool };

// One piece of a message's content. Text, an image given as a URL (http(s) or a data: URL
// "data:image/png;base64,..."), or a file such as a PDF given as a data: URL.
struct ContentPart {
  enum class Kind { kText, kImage, kFile };
  Kind kind = Kind::kText;
  std::string text;       // kText; kFile: the file's name (may be empty)
  std::string image_url;  // kImage; kFile: its data: URL
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

// The answer's format: OpenAI's response_format, Anthropic's output_config.format.
struct ResponseFormat {
  enum class Kind { kUnset, kText, kJsonObject, kJsonSchema };
  Kind kind = Kind::kUnset;
  std::string name;
  boost::json::value schema;  // kJsonSchema: the schema object
  // kJsonSchema: decoding is constrained to the schema (OpenAI's strict; Anthropic's
  // output_config.format always is), so the schema follows the strict subset.
  bool strict = false;
};

// The memory a decoded request's JSON values (`original`, tool parameters, schemas) are
// allocated from: one arena per request, freed at once with the last request that uses it.
// Copies share it, and a moved-from or assigned-over holder keeps what it had, because JSON
// values allocated from the old arena may still be in the request. Empty: the default heap.
class JsonArena {
 public:
  JsonArena() = default;
  // An arena sized for the JSON decoded from a body of `body_bytes`.
  explicit JsonArena(std::size_t body_bytes);
  JsonArena(const JsonArena&) = default;
  JsonArena(JsonArena&& other) : JsonArena(static_cast<const JsonArena&>(other)) {}
  JsonArena& operator=(const JsonArena& other);
  JsonArena& operator=(JsonArena&& other) { return *this = static_cast<const JsonArena&>(other); }
  ~JsonArena() = default;

  // Where to allocate JSON values that live as long as the request.
  [[nodiscard]] boost::json::storage_ptr storage() const;

  // Replaces `to` with `from`, memory resource included (assigning would copy `from` into
  // the resource `to` already has).
  template <typename Json>
  static void adopt(Json& to, Json&& from) {
    std::destroy_at(&to);
    std::construct_at(&to, std::move(from));
  }

 private:
  std::shared_ptr<boost::json::monotonic_resource> resource_;
  std::vector<std::shared_ptr<boost::json::monotonic_resource>> kept_;  // replaced arenas
};

// The client's body as it came, mapped so that a target of the same dialect is sent the same
// bytes with only the top-level `model` value changed (and, for an OpenAI stream, the usage
// option added). Empty `text`: not mapped (a request built in code, or a body whose top-level
// keys could not be told apart safely); encoders serialize `original` then.
struct OriginalBody {
  std::string text;
  std::size_t model_begin = 0;  // the `model` value's bytes are [model_begin, model_end)
  std::size_t model_end = 0;
  std::size_t first_member = 0;  // just after the opening brace
  bool stream = false;           // the body's own top-level `stream`, as decoded
  bool has_stream_options = false;

  // Maps a body from its top-level members, as json::parse_object shows them: give the
  // parse `[&](auto key, auto value) { mapper.member(key, value); }`, then `finish`.
  class Mapper {
   public:
    explicit Mapper(std::string_view body) : body_(body) {}
    // One top-level member, viewing the body (json::MemberVisitor).
    void member(std::string_view key, std::string_view value);
    // The body mapped, once it parsed as an object (the decoder sets `stream`). Empty when
    // "model" is not a plain string found exactly once, or "stream" or "stream_options"
    // occur twice, or a top-level key has escapes.
    [[nodiscard]] OriginalBody finish() const;

   private:
    std::string_view body_;
    std::string_view model_;
    int models_ = 0;
    int streams_ = 0;
    int stream_options_ = 0;
    bool plain_keys_ = true;
  };
  // The body with `model` (plain text, escaped here) as its model value, and `member` (a
  // JSON member followed by a comma, or empty) inserted as the first member.
  [[nodiscard]] std::string with_model(std::string_view model, std::string_view member = {}) const;
};

// A chat request in provider-neutral form. The body as the client sent it is kept, so that
// a target of the same dialect gets every field it did not model (seed, vendor extras)
// untouched: as bytes in `original_body`, or, for a body that cannot be mapped, as the tree
// `original`.
struct ChatRequest {
  // First, so that it is destroyed last: `original`, tool parameters and schemas of a decoded
  // request are allocated from it.
  JsonArena arena;
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
  // How hard a reasoning model should think ("low", "medium", "high", ...), as the Responses
  // API's reasoning.effort; sent to OpenAI targets as reasoning_effort. Empty: not asked.
  std::string reasoning_effort;
  bool stream = false;
  bool include_usage = false;    // stream_options.include_usage
  boost::json::object metadata;  // Anthropic's metadata (user_id)
  // The name of the dialect the client spoke (dialects::Dialect::name(), a string with
  // static storage); empty for a request built in code.
  std::string_view origin;
  // What the client sent that only a target of its own dialect can carry (an Anthropic
  // server tool, a content block backstop does not model), named by its path and type
  // ("`tools[2]` (web_search_20250305)"); empty when everything translates. Targets of
  // another dialect are skipped for such a request.
  std::string dialect_only;
  // Headers of the client's that a target of its own dialect is sent as they came
  // (Anthropic: anthropic-version, anthropic-beta); never sent to another dialect.
  std::vector<std::pair<std::string, std::string>> dialect_headers;
  // An assistant turn carries thinking without a signature: reasoning another model wrote
  // (DeepSeek's, shown to an Anthropic client as thinking), which Anthropic would refuse.
  bool unsigned_thinking = false;
  // The client's body as a tree, when `original_body` could not map it; else empty.
  boost::json::object original;
  // The client's body as bytes (encoders check `stream` against it; other changes to the
  // request's fields do not reach a same-dialect target).
  OriginalBody original_body;

  // The tool offered under this name, or nullptr.
  [[nodiscard]] const Tool* find_tool(std::string_view name) const;
  // Whether the client's body is kept (false for a request built in code).
  [[nodiscard]] bool has_original() const {
    return !original.empty() || !original_body.text.empty();
  }
  // The client's body as a tree (`original`, or the bytes parsed again), with `stream` as
  // this request says now; empty when none is kept.
  [[nodiscard]] boost::json::object original_tree() const;
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
  // The signature of the thinking (Anthropic's; the last thinking block's when several),
  // which an Anthropic client must send back with it. Empty: none.
  std::string reasoning_signature;
  std::vector<ToolCall> tool_calls;
  FinishReason finish_reason = FinishReason::kStop;
  // The stop sequence that ended the answer (finish_reason kStop); nullopt: none did.
  std::optional<std::string> stop_sequence;
  Usage usage;
  // OpenAI's system_fingerprint: the upstream's backend configuration; empty when not sent.
  std::string system_fingerprint;
};

// An incremental piece of a streamed answer, in provider-neutral form.
struct StreamEvent {
  enum class Kind {
    kStart,           // id, model
    kTextDelta,       // text
    kReasoningDelta,  // text, or (text empty) signature: the thinking block's signature
    kToolCallStart,   // index, tool_call.id, tool_call.name
    kToolCallDelta,   // index, text (an arguments fragment)
    kFinish,          // finish_reason, stop_sequence
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
  std::string signature;                     // kReasoningDelta: the thinking's signature
  std::optional<std::string> stop_sequence;  // kFinish: the stop sequence that fired
  std::string system_fingerprint;            // kStart: as ChatResponse's; empty: not sent
};

// A rough count of the input tokens a request would take, for token counting when no target
// can count: about four bytes of text (tool schemas included) a token, a few tokens of framing
// a message and a tool, 85 an image or file. Not any model's tokenizer; at least 1.
[[nodiscard]] std::int64_t estimate_input_tokens(const ChatRequest& request);

// Names used on the wire and in logs.
[[nodiscard]] std::string_view to_string(Role role);
[[nodiscard]] std::string_view to_string(FinishReason reason);  // OpenAI's names

}  // namespace backstop::chat
