#pragma once

#include <boost/json/object.hpp>
#include <string_view>

#include "chat/chat.h"

// Mappings shared by the OpenAI dialect's whole-message and stream code (internal).
namespace backstop::dialects::openai::wire {

// A completion's finish_reason ("stop", "length", "tool_calls", ...); kUnknown otherwise.
[[nodiscard]] chat::FinishReason decode_finish_reason(std::string_view reason);
// A completion's usage object: cache hits (prompt_tokens_details.cached_tokens, or DeepSeek's
// prompt_cache_hit_tokens) are cached input, not input; counts clamped so sums cannot overflow.
[[nodiscard]] chat::Usage decode_usage(const boost::json::object& usage);

}  // namespace backstop::dialects::openai::wire
