#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "chat/chat.h"
#include "core/error.h"

// Anthropic Messages, both directions.
namespace backstop::dialects::anthropic {

// A client's request body (POST /v1/messages). kInvalidArgument with a message naming the
// path of what is wrong.
[[nodiscard]] core::Result<chat::ChatRequest> decode_request(std::string_view body);

// The body to send to the Messages API with `model` as the model. A request from an
// OpenAI client is translated: system messages to `system`, tool calls to `tool_use`
// blocks, consecutive tool messages to one user turn of `tool_result` blocks, tools to
// {name, description, input_schema}, tool_choice, stop to stop_sequences, and max_tokens
// (`default_max_tokens` when the client sent none).
[[nodiscard]] std::string encode_request(const chat::ChatRequest& request,
                                         std::string_view model,
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

}  // namespace backstop::dialects::anthropic
