#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <string_view>

#include "chat/chat.h"

// Mappings shared by the OpenAI dialect's whole-message and stream code (internal).
namespace backstop::dialects::openai::wire {

// A completion's finish_reason ("stop", "length", "tool_calls", ...); kUnknown otherwise.
[[nodiscard]] chat::FinishReason decode_finish_reason(std::string_view reason);
// A completion's usage object: cache hits (prompt_tokens_details.cached_tokens, or DeepSeek's
// prompt_cache_hit_tokens) are cached input, not input; counts clamped so sums cannot overflow.
[[nodiscard]] chat::Usage decode_usage(const boost::json::object& usage);
// The same from the counts read out of it (0 where absent): prompt_tokens,
// prompt_tokens_details.cached_tokens, prompt_cache_hit_tokens, completion_tokens.
[[nodiscard]] chat::Usage usage_of(std::int64_t prompt, std::int64_t cached_tokens,
                                   std::int64_t cache_hit_tokens, std::int64_t completion);

}  // namespace backstop::dialects::openai::wire
