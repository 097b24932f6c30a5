#include "core/ids.h"

#include <gtest/gtest.h>

#include <set>

namespace backstop::core {
namespace {

TEST(IdGeneratorTest, IdsAreHexAndUnique) {
  IdGenerator gen(42);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = gen.next();
    ASSERT_EQ(id.size(), 32u);
    ASSERT_TRUE(is_valid_request_id(id));
    ASSERT_TRUE(seen.insert(id).second);
  }
}

TEST(RequestIdTest, RejectsUnsafeIds) {
  EXPECT_TRUE(is_valid_request_id("req-123_a.b:c"));
  EXPECT_FALSE(is_valid_request_id(""));
  EXPECT_FALSE(is_valid_request_id("a b"));
  EXPECT_FALSE(is_valid_request_id("x\r\ny"));
  EXPECT_FALSE(is_valid_request_id(std::string(129, 'a')));
}

}  // namespace
}  // namespace backstop::core
