#include "core/stats.h"

#include <gtest/gtest.h>

namespace backstop::core {
namespace {

TEST(WilsonTest, EightOfTenIsFrom0490To0943) {
  // By hand: center (0.8 + 0.19208) / 1.38416 = 0.71673, half 1.96 sqrt(0.025604) / 1.38416.
  const Interval i = wilson(8, 10);
  EXPECT_NEAR(i.low, 0.49016, 1e-4);
  EXPECT_NEAR(i.high, 0.94331, 1e-4);
}

TEST(WilsonTest, AllOrNothingStaysInsideZeroAndOne) {
  EXPECT_DOUBLE_EQ(wilson(0, 10).low, 0);
  EXPECT_NEAR(wilson(0, 10).high, 0.27753, 1e-4);
  EXPECT_DOUBLE_EQ(wilson(10, 10).high, 1);
  EXPECT_DOUBLE_EQ(wilson(0, 0).low, 0);
  EXPECT_DOUBLE_EQ(wilson(0, 0).high, 1);
}

TEST(McNemarTest, ExactPValuesMatchTheBinomialByHand) {
  EXPECT_DOUBLE_EQ(mcnemar_exact(6, 0), 2.0 / 64);                      // 0.03125
  EXPECT_DOUBLE_EQ(mcnemar_exact(0, 6), 2.0 / 64);                      // symmetric
  EXPECT_DOUBLE_EQ(mcnemar_exact(5, 0), 2.0 / 32);                      // 0.0625: not significant
  EXPECT_NEAR(mcnemar_exact(8, 2), 2.0 * (1 + 10 + 45) / 1024, 1e-12);  // 0.109375
  EXPECT_NEAR(mcnemar_exact(10, 1), 2.0 * (1 + 11) / 2048, 1e-12);      // 0.01171875
  EXPECT_DOUBLE_EQ(mcnemar_exact(3, 3), 1);                             // capped at 1
  EXPECT_DOUBLE_EQ(mcnemar_exact(0, 0), 1);
}

TEST(TwoProportionTest, PValuesOfThePooledZTest) {
  // 10/100 against 25/100: pooled 0.175, se sqrt(0.175 * 0.825 * 0.02) = 0.053735,
  // z = 2.7915, p = erfc(2.7915 / sqrt 2) = 0.005247.
  EXPECT_NEAR(two_proportion_p(10, 100, 25, 100), 0.005247, 1e-5);
  EXPECT_NEAR(two_proportion_p(10, 100, 12, 100), 0.65128, 1e-4);
  EXPECT_DOUBLE_EQ(two_proportion_p(0, 10, 0, 10), 1);
  EXPECT_DOUBLE_EQ(two_proportion_p(1, 0, 0, 10), 1);
}

}  // namespace
}  // namespace backstop::core
