#pragma once

#include <optional>
#include <string_view>

#include "chat/chat.h"
#include "core/error.h"

// The OpenAI dialect's one-pass reader of whole answers (internal).
namespace backstop::dialects::openai::detail {

// The answer in `body`, read in one pass without building a tree, when it has the shape
// upstreams send (choices[0].message with string or null content, tool calls whose arguments
// are JSON text, no repeated field); nullopt for anything else, errors included, which
// decode_response then reads from a tree so that its messages stay the same.
[[nodiscard]] std::optional<chat::ChatResponse> read_plain_response(std::string_view body);
// decode_response reading `body` from a tree: any body, with its errors.
[[nodiscard]] core::Result<chat::ChatResponse> decode_response_tree(std::string_view body);

}  // namespace backstop::dialects::openai::detail
