#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "chat/chat.h"

namespace backstop::providers {

// A defect deliberately put into a synthesized answer, named like validation's reasons.
enum class Fault {
  kNone,
  kNoToolCall,   // a text answer where a tool call was asked for
  kUnknownTool,  // the call names "unknown_tool"
  kInvalidJson,  // arguments (or JSON content) cut in the middle
  kSchema,       // valid JSON that violates the schema
  kEmpty,        // content "" and no tool calls
  kTruncated,    // finish_reason length, the answer cut
};

// "none", "no_tool_call", "unknown_tool", "invalid_json", "schema", "empty", "truncated".
[[nodiscard]] std::string_view to_string(Fault fault);
// The fault of that name; nullopt for any other name.
[[nodiscard]] std::optional<Fault> parse_fault(std::string_view name);

// SplitMix64's finalizer: a well-spread 64-bit hash of x (ids, deterministic draws).
[[nodiscard]] std::uint64_t mix64(std::uint64_t x);

// A JSON value that satisfies `schema` (types, required, enum, const, bounds, minItems,
// formats date/date-time/email/uri/uuid, anyOf/oneOf/allOf, local $ref). Patterns are not
// honoured. Null for a schema it cannot follow (a cycle of $refs, say).
[[nodiscard]] boost::json::value instance_of(const boost::json::value& schema);

// A JSON value that is well-formed but violates `schema`: a required property dropped, or
// a property or the whole value of the wrong type. The valid instance when `schema`
// constrains nothing.
[[nodiscard]] boost::json::value violation_of(const boost::json::value& schema);

// A model's answer to `request`, with `fault` in it. A correct answer is one tool call
// (to the tool_choice tool, or the first tool; arguments from its parameters schema) when
// the request offers tools, tool_choice is not none and the round trip is not over; else
// JSON content for a response_format; else a short text. A tool round trip is over when a
// tool result (a Role::kTool message) comes after the conversation's last assistant
// message: the last message is a tool result, or tool results are followed only by user
// text or system messages (as Claude Code sends them). Then the correct answer is the text
// that ends the round trip, so an agent loop against the mock finishes, unless tool_choice
// forces a call (required, or a named tool). Faults that do not apply to the answer's kind
// (say, unknown_tool for a text answer) leave it correct. `random` picks ids and wording:
// the same inputs give the same answer. `created` is left 0 for the caller to set.
[[nodiscard]] chat::ChatResponse synthesize(const chat::ChatRequest& request, Fault fault,
                                            std::string_view model, std::uint64_t random);

// The events that stream `response` as an upstream would send them: chat::to_events with
// the text, the reasoning and each call's arguments cut into up to `pieces` deltas (at UTF-8
// character boundaries), so that a client has to assemble them.
[[nodiscard]] std::vector<chat::StreamEvent> stream_events(const chat::ChatResponse& response,
                                                           std::size_t pieces = 4);

}  // namespace backstop::providers
