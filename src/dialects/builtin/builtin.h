#pragma once

#include "dialects/registry.h"

namespace backstop::dialects {

// The dialects backstop is built with: openai (the default shape), anthropic, responses.
// The one place that names them all; a new dialect is added here.
[[nodiscard]] const Registry& builtin();

}  // namespace backstop::dialects
