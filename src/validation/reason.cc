#include <array>
#include <utility>

#include "validation/validator.h"

namespace backstop::validation {
namespace {

// In the enum's order, so to_string is an index.
constexpr std::array<std::pair<Reason, std::string_view>, 14> kReasonNames = {{
    {Reason::kNoToolCall, "no_tool_call"},
    {Reason::kToolMismatch, "tool_mismatch"},
    {Reason::kInvalidJson, "invalid_json"},
    {Reason::kSchema, "schema"},
    {Reason::kEmpty, "empty"},
    {Reason::kTruncated, "truncated"},
    {Reason::kRetry, "retry"},
    {Reason::kRateLimited, "rate_limited"},
    {Reason::kUpstreamError, "upstream_error"},
    {Reason::kTimeout, "timeout"},
    {Reason::kConnect, "connect"},
    {Reason::kBadResponse, "bad_response"},
    {Reason::kRejected, "rejected"},
    {Reason::kBrokenStream, "broken_stream"},
}};

constexpr bool in_enum_order() {
  for (std::size_t i = 0; i < kReasonNames.size(); ++i) {
    if (static_cast<std::size_t>(kReasonNames[i].first) != i) return false;
  }
  return true;
}
static_assert(in_enum_order(), "kReasonNames must follow the order of Reason");

}  // namespace

std::string_view to_string(Reason reason) {
  auto i = static_cast<std::size_t>(reason);
  return i < kReasonNames.size() ? kReasonNames[i].second : "unknown";
}

std::optional<Reason> parse_reason(std::string_view name) {
  for (const auto& [reason, text] : kReasonNames) {
    if (text == name) return reason;
  }
  return std::nullopt;
}

}  // namespace backstop::validation
