#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "chat/chat.h"
#include "eval/suite.h"
#include "validation/validator.h"

namespace backstop::eval {

// Checks an answer against a case's expectations, in a fixed order: a tool call (the
// expected tool, or any when only arguments are expected), its arguments (JSON, equal,
// matching the schema), the content (matching the regex; JSON matching the schema). The
// first failure decides, with a reason of the closed list: no_tool_call, tool_mismatch,
// invalid_json, schema (arguments or content not as expected), empty (no content to match).
[[nodiscard]] validation::Verdict check_expect(const Expect& expect,
                                               const chat::ChatResponse& response,
                                               validation::SchemaCache& schemas);

// Where two JSON values first differ, as a JSON pointer ("" when the roots differ); nullopt
// when they are equal. Numbers compare by value (1 equals 1.0).
[[nodiscard]] std::optional<std::string> first_difference(const boost::json::value& a,
                                                          const boost::json::value& b);

}  // namespace backstop::eval
