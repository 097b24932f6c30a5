#pragma once

#include <string_view>

#include "chat/chat.h"

// Mappings shared by the Anthropic dialect's whole-message and stream code (internal).
namespace backstop::dialects::anthropic::wire {

// A message's stop_reason ("end_turn", "max_tokens", "tool_use", ...); kUnknown otherwise.
[[nodiscard]] chat::FinishReason decode_stop_reason(std::string_view reason);
// The stop_reason for a finish reason (kStop and kUnknown: "end_turn").
[[nodiscard]] std::string_view encode_stop_reason(chat::FinishReason reason);

}  // namespace backstop::dialects::anthropic::wire
