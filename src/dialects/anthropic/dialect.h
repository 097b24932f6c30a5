#pragma once

#include "dialects/anthropic/anthropic.h"
#include "dialects/dialect.h"

namespace backstop::dialects::anthropic {

// Anthropic Messages, both sides: POST /v1/messages and /v1/messages/count_tokens for
// clients; base_url + /v1/messages with x-api-key and anthropic-version upstream.
[[nodiscard]] const Dialect& dialect();

}  // namespace backstop::dialects::anthropic
