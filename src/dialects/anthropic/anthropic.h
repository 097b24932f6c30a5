#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat.h"
#include "core/error.h"

// Anthropic Messages, both directions.
namespace backstop::dialects::anthropic {

// The dialect's name: ChatRequest::origin of its clients' requests, and its registry key.
inline constexpr std::string_view kName = "anthropic";

// A client's request body (POST /v1/messages). kInvalidArgument with a message naming the
// path of what is wrong.
[[nodiscard]] core::Result<chat::ChatRequest> decode_request(std::string_view body);

// A count_tokens body (POST /v1/messages/count_tokens): a request without max_tokens.
[[nodiscard]] core::Result<chat::ChatRequest> decode_count_tokens_request(std::string_view body);

// The client headers a request from an Anthropic client carries to Anthropic targets.
inline constexpr std::string_view kForwardedHeaders[] = {"anthropic-version", "anthropic-beta"};

// The body to send to the Messages API with `model` as the model. A request from an
// OpenAI client is translated: system messages to `system`, tool calls to `tool_use`
// blocks, consecutive tool messages to one user turn of `tool_result` blocks, tools to
// {name, description, input_schema}, tool_choice, stop to stop_sequences, and max_tokens
// (`default_max_tokens` when the client sent none).
[[nodiscard]] std::string encode_request(const chat::ChatRequest& request, std::string_view model,
                                         std::int64_t default_max_tokens);

// An upstream's 2xx body. kBadResponse when it is not a Message.
[[nodiscard]] core::Result<chat::ChatResponse> decode_response(std::string_view body);

// The body returned to an Anthropic client.
[[nodiscard]] std::string encode_response(const chat::ChatResponse& response,
                                          std::string_view model);

// {"type":"error","error":{"type","message",...extra}}.
[[nodiscard]] std::string encode_error(const core::Error& error,
                                       const boost::json::object& extra = {});

// The `error.message` of an upstream's error body, cut to at most 300 bytes.
[[nodiscard]] std::string upstream_error_message(std::string_view body);

// The `error.type` of an upstream's error body ("invalid_request_error"), else ""; nullopt
// when the body is not an API error (a proxy's page).
[[nodiscard]] std::optional<std::string> upstream_error_code(std::string_view body);

}  // namespace backstop::dialects::anthropic

namespace backstop::dialects::anthropic {

// The kinds of content block the stream codecs keep apart (kOther: redacted thinking,
// server tool blocks and whatever comes next, which carry nothing backstop models).
enum class BlockKind { kNone, kText, kToolUse, kThinking, kOther };

// Turns a Messages stream (each SSE event's name and data) into neutral events.
class StreamDecoder {
 public:
  // kBadResponse when the data is not the event it says; an `error` event is kUpstream
  // (overloaded_error keeps upstream_status 529).
  [[nodiscard]] core::Result<void> feed(std::string_view event, std::string_view data,
                                        std::vector<chat::StreamEvent>& out);
  // True after message_stop.
  [[nodiscard]] bool done() const { return done_; }
  // True once the answer is whole: after message_stop, the Messages stream's only end.
  [[nodiscard]] bool complete() const { return done_; }

 private:
  core::Result<void> block_start(const boost::json::object& data,
                                 std::vector<chat::StreamEvent>& out);
  core::Result<void> block_delta(const boost::json::object& data,
                                 std::vector<chat::StreamEvent>& out);

  std::vector<BlockKind> block_kind_;  // per content block index
  std::vector<int> tool_index_;        // per content block index: its tool call index
  int tools_ = 0;
  chat::Usage usage_;
  bool done_ = false;
};

// Turns neutral events into Messages stream events (message_start, content_block_start,
// content_block_delta with text_delta / input_json_delta / thinking_delta / signature_delta,
// content_block_stop, message_delta, message_stop) as SSE frames for a client.
class StreamEncoder {
 public:
  explicit StreamEncoder(std::string model);
  [[nodiscard]] std::string encode(const chat::StreamEvent& event);
  // Closes open blocks, then message_delta (stop_reason, usage) and message_stop.
  [[nodiscard]] std::string finish();
  // event: error, data: {"type":"error","error":{...}}.
  [[nodiscard]] std::string error(const core::Error& error);

 private:
  // message_start, unless it went out already.
  void start(std::string& out);
  // content_block_stop for the open block, if any.
  void close_block(std::string& out);
  // Closes the open block and starts the next one; `block` is its content_block JSON text.
  void open_block(std::string& out, BlockKind kind, std::string_view block);
  // A new tool_use block for tool call `index`.
  void open_tool_block(std::string& out, int index, std::string_view id, std::string_view name);

  std::string model_;
  std::string id_;
  bool started_ = false;
  int open_block_ = -1;  // index of the open content block, -1 when none
  BlockKind open_kind_ = BlockKind::kNone;
  int next_block_ = 0;
  std::vector<int> tool_block_;  // tool call index -> its content block index (-1: none)
  chat::FinishReason finish_reason_ = chat::FinishReason::kStop;
  std::optional<std::string> stop_sequence_;  // the kFinish event's
  chat::Usage usage_;
};

}  // namespace backstop::dialects::anthropic
