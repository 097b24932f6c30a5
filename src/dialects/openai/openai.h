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

// OpenAI Chat Completions, both directions.
namespace backstop::dialects::openai {

// The dialect's name: ChatRequest::origin of its clients' requests, and its registry key.
inline constexpr std::string_view kName = "openai";

// A client's request body. kInvalidArgument with a message that says what is wrong and
// where ("`messages[2].role` must be one of system, developer, user, assistant, tool").
[[nodiscard]] core::Result<chat::ChatRequest> decode_request(std::string_view body);

// The body to send to an OpenAI-compatible upstream, with `model` as the model. A request
// that came in as OpenAI keeps every field it had (only `model`, and for streams
// `stream_options.include_usage`, change); one from another dialect is built from fields.
[[nodiscard]] std::string encode_request(const chat::ChatRequest& request, std::string_view model);

// An upstream's 2xx body. kBadResponse when it is not a Chat Completion.
[[nodiscard]] core::Result<chat::ChatResponse> decode_response(std::string_view body);

// The body returned to a client; `model` is the name reported (the served model).
[[nodiscard]] std::string encode_response(const chat::ChatResponse& response,
                                          std::string_view model);

// {"error":{"message","type","code",...extra}} for an error. `extra` fields (such as
// "attempts" and "request_id") are added to the error object.
[[nodiscard]] std::string encode_error(const core::Error& error,
                                       const boost::json::object& extra = {});

// The `error.message` of an upstream's error body, cut to at most 300 bytes; the raw body
// (cut likewise) when it is not in OpenAI's shape.
[[nodiscard]] std::string upstream_error_message(std::string_view body);

// The `error.code` of an upstream's error body ("content_policy_violation"), else its
// `error.type`, else ""; nullopt when the body is not an API error (a proxy's page).
[[nodiscard]] std::optional<std::string> upstream_error_code(std::string_view body);

}  // namespace backstop::dialects::openai

namespace backstop::dialects::openai {

// Turns an upstream's Chat Completions stream (the `data:` payload of each SSE event) into
// neutral events. Not thread-safe; one per stream.
class StreamDecoder {
 public:
  // Decodes one chunk's JSON (or "[DONE]") and appends its events. kBadResponse when the
  // payload is not a chunk, and then neither `out` nor the decoder has changed, so that the
  // caller may skip the chunk; an in-stream {"error":...} payload is kUpstream.
  [[nodiscard]] core::Result<void> feed(std::string_view data, std::vector<chat::StreamEvent>& out);
  // True after "[DONE]".
  [[nodiscard]] bool done() const { return done_; }
  // True once the answer is whole: after a chunk with a finish_reason (the usage chunk and
  // [DONE] may follow; some servers send neither), or after [DONE].
  [[nodiscard]] bool complete() const { return finished_ || done_; }

 private:
  core::Result<void> decode_chunk(std::string_view data, std::vector<chat::StreamEvent>& out);
  core::Result<void> decode_choice(const boost::json::object& choice,
                                   std::vector<chat::StreamEvent>& out);
  core::Result<void> decode_tool_call(const boost::json::value& call, int position,
                                      std::vector<chat::StreamEvent>& out);

  bool started_ = false;
  bool done_ = false;
  bool finished_ = false;
  std::vector<int> tools_seen_;  // tool call indexes already announced with kToolCallStart
};

// Turns neutral events into Chat Completions chunks as SSE frames ("data: {...}\n\n") for a
// client. Every chunk carries the same id, created and model.
class StreamEncoder {
 public:
  // include_usage: the client asked for stream_options.include_usage (a final chunk with
  // empty choices and usage).
  StreamEncoder(std::string model, bool include_usage);
  // The frames for one event (possibly none).
  [[nodiscard]] std::string encode(const chat::StreamEvent& event);
  // The end of a clean stream: the usage chunk when asked for, then "data: [DONE]\n\n".
  [[nodiscard]] std::string finish();
  // An explicit error frame for a stream that broke after bytes were sent
  // (data: {"error":{...}}); no [DONE] follows it.
  [[nodiscard]] std::string error(const core::Error& error);

 private:
  // Starts a chunk's frame, up to and including the delta's opening brace (and the role,
  // on the first chunk); `extra` is the room the caller's fields need.
  void open_chunk(std::string& out, std::size_t extra);
  // Ends a chunk opened by open_chunk; `finish_reason` is JSON text ("null" or a string).
  static void close_chunk(std::string& out, std::string_view finish_reason);
  // The fixed head of every chunk: {"id":..,"object":..,"created":..,"model":..,
  const std::string& prefix();

  std::string model_;
  std::string id_;
  std::int64_t created_ = 0;
  bool include_usage_ = false;
  bool role_sent_ = false;
  bool finish_sent_ = false;
  std::string prefix_;
  chat::Usage usage_;
};

}  // namespace backstop::dialects::openai
