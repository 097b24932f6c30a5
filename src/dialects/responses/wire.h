#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "chat/chat.h"
#include "dialects/responses/responses.h"

// The pieces of a `response` object that the whole-response and stream encoders both write
// (internal to the Responses dialect).
namespace backstop::dialects::responses::wire {

// {"input_tokens" (cache reads included), "input_tokens_details", "output_tokens", ...}.
[[nodiscard]] boost::json::object usage_json(const chat::Usage& usage);
// A `response` object with no output and no usage yet.
[[nodiscard]] boost::json::object response_json(std::string_view id, std::int64_t created_at,
                                                std::string_view status, const Echo& echo);
// The `incomplete_details.reason` for an answer cut short; nullopt when it was not.
[[nodiscard]] std::optional<std::string_view> incomplete_reason(chat::FinishReason reason);
// Sets `status` (completed or incomplete) and `incomplete_details` for the answer's end.
void set_status(boost::json::object& response, chat::FinishReason reason);

[[nodiscard]] boost::json::object reasoning_item(std::string_view id, std::string_view text);
[[nodiscard]] boost::json::object text_part(std::string_view text);
[[nodiscard]] boost::json::object message_item(std::string_view id, std::string_view status,
                                               boost::json::array content);
[[nodiscard]] boost::json::object function_call_item(std::string_view id, std::string_view status,
                                                     std::string_view call_id,
                                                     std::string_view name,
                                                     std::string_view arguments);

[[nodiscard]] std::int64_t now_seconds();
// A fresh id with `prefix` ("resp_", "msg_", "fc_", "rs_").
[[nodiscard]] std::string new_id(std::string_view prefix);

}  // namespace backstop::dialects::responses::wire
