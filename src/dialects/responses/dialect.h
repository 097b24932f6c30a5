#pragma once

#include "dialects/dialect.h"
#include "dialects/responses/responses.h"

namespace backstop::dialects::responses {

// OpenAI's Responses API: POST /v1/responses for clients (stateless unless the target
// speaks it too); base_url + /responses with a bearer key upstream (`kind: openai_responses`).
[[nodiscard]] const Dialect& dialect();

}  // namespace backstop::dialects::responses
