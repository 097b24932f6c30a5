#pragma once

#include "dialects/dialect.h"
#include "dialects/openai/openai.h"

namespace backstop::dialects::openai {

// OpenAI Chat Completions, both sides: POST /v1/chat/completions for clients;
// base_url + /chat/completions with a bearer key upstream (OpenAI, vLLM, SGLang, ...).
[[nodiscard]] const Dialect& dialect();

}  // namespace backstop::dialects::openai
