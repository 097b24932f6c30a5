#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "chat/chat.h"
#include "core/error.h"

// OpenAI Chat Completions, both directions.
namespace backstop::dialects::openai {

// A client's request body. kInvalidArgument with a message that says what is wrong and
// where ("`messages[2].role` must be one of system, developer, user, assistant, tool").
[[nodiscard]] core::Result<chat::ChatRequest> decode_request(std::string_view body);

// The body to send to an OpenAI-compatible upstream, with `model` as the model. A request
// that came in as OpenAI keeps every field it had (only `model`, and for streams
// `stream_options.include_usage`, change); one from another dialect is built from fields.
[[nodiscard]] std::string encode_request(const chat::ChatRequest& request,
                                         std::string_view model);

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

}  // namespace backstop::dialects::openai
