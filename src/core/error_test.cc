#include "core/error.h"

#include <gtest/gtest.h>

namespace backstop::core {
namespace {

TEST(ErrorTest, EachCodeHasItsStatus) {
  EXPECT_EQ(http_status(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(http_status(ErrorCode::kNotFound), 404);
  EXPECT_EQ(http_status(ErrorCode::kMethodNotAllowed), 405);
  EXPECT_EQ(http_status(ErrorCode::kPayloadTooLarge), 413);
  EXPECT_EQ(http_status(ErrorCode::kUnauthorized), 401);
  EXPECT_EQ(http_status(ErrorCode::kForbidden), 403);
  EXPECT_EQ(http_status(ErrorCode::kAllTargetsFailed), 502);
  EXPECT_EQ(http_status(ErrorCode::kUnavailable), 503);
}

TEST(ErrorTest, ARejectionReachesTheClientWithTheUpstreamsStatus) {
  Error rejected{ErrorCode::kRejected, "flagged", 422};
  EXPECT_EQ(client_status(rejected), 422);
  EXPECT_EQ(to_string(rejected.code), "rejected");
  // Only a 4xx is the upstream's to give; anything else falls back to the code's status.
  EXPECT_EQ(client_status(Error{ErrorCode::kRejected, "odd", 500}), 400);
  EXPECT_EQ(client_status(Error{ErrorCode::kUpstream, "down", 503}), 502);
  EXPECT_EQ(client_status(Error{ErrorCode::kBrokenStream, "cut"}), 502);
  EXPECT_EQ(to_string(ErrorCode::kBrokenStream), "broken_stream");
}

TEST(ErrorTest, FailBuildsAnUnexpected) {
  Result<int> r = fail(ErrorCode::kTimeout, "slow");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(r.error().message, "slow");
  EXPECT_EQ(to_string(r.error().code), "timeout");
}

}  // namespace
}  // namespace backstop::core
