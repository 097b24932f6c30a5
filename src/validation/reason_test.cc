#include <gtest/gtest.h>

#include "validation/validator.h"

namespace backstop::validation {
namespace {

TEST(ReasonTest, NamesAreDesignsList) {
  EXPECT_EQ(to_string(Reason::kNoToolCall), "no_tool_call");
  EXPECT_EQ(to_string(Reason::kToolMismatch), "tool_mismatch");
  EXPECT_EQ(to_string(Reason::kInvalidJson), "invalid_json");
  EXPECT_EQ(to_string(Reason::kSchema), "schema");
  EXPECT_EQ(to_string(Reason::kEmpty), "empty");
  EXPECT_EQ(to_string(Reason::kTruncated), "truncated");
  EXPECT_EQ(to_string(Reason::kRetry), "retry");
  EXPECT_EQ(to_string(Reason::kRateLimited), "rate_limited");
  EXPECT_EQ(to_string(Reason::kUpstreamError), "upstream_error");
  EXPECT_EQ(to_string(Reason::kTimeout), "timeout");
  EXPECT_EQ(to_string(Reason::kConnect), "connect");
  EXPECT_EQ(to_string(Reason::kBadResponse), "bad_response");
  EXPECT_EQ(to_string(Reason::kRejected), "rejected");
  EXPECT_EQ(to_string(Reason::kBrokenStream), "broken_stream");
}

TEST(ReasonTest, ParseRoundTripsEveryReason) {
  for (int i = 0; i <= static_cast<int>(Reason::kBrokenStream); ++i) {
    auto reason = static_cast<Reason>(i);
    EXPECT_EQ(parse_reason(to_string(reason)), reason) << to_string(reason);
  }
}

TEST(ReasonTest, ParseRejectsUnknownNames) {
  EXPECT_EQ(parse_reason("schema_error"), std::nullopt);
  EXPECT_EQ(parse_reason(""), std::nullopt);
  EXPECT_EQ(parse_reason("Schema"), std::nullopt);
}

TEST(VerdictTest, OkPassesAndFailCarriesReasonAndDetail) {
  EXPECT_TRUE(Verdict::ok().pass);
  Verdict v = Verdict::fail(Reason::kEmpty, "empty content");
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kEmpty);
  EXPECT_EQ(v.detail, "empty content");
}

}  // namespace
}  // namespace backstop::validation
