#include "core/error.h"

#include <gtest/gtest.h>

namespace backstop::core {
namespace {

TEST(ErrorTest, EachCodeHasItsStatus) {
  EXPECT_EQ(http_status(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(http_status(ErrorCode::kNotFound), 404);
  EXPECT_EQ(http_status(ErrorCode::kMethodNotAllowed), 405);
  EXPECT_EQ(http_status(ErrorCode::kPayloadTooLarge), 413);
  EXPECT_EQ(http_status(ErrorCode::kAllTargetsFailed), 502);
  EXPECT_EQ(http_status(ErrorCode::kUnavailable), 503);
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
