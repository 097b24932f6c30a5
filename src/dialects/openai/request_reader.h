#pragma once

#include <optional>
#include <string_view>

#include "chat/chat.h"
#include "core/error.h"

// The OpenAI dialect's one-pass reader of requests (internal).
namespace backstop::dialects::openai::detail {

// The request in `body`, read in one pass: only tool and response schemas become trees. For
// a body of the plain shape (every modelled field of the type it must have, no repeated
// field, top-level keys without escapes); nullopt for anything else, errors included, which
// decode_request then reads from a tree so that its messages stay the same.
[[nodiscard]] std::optional<chat::ChatRequest> read_plain_request(std::string_view body);
// decode_request reading `body` from a tree: any body, with its errors.
[[nodiscard]] core::Result<chat::ChatRequest> decode_request_tree(std::string_view body);

}  // namespace backstop::dialects::openai::detail
