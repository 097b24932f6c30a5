#pragma once
// Statistics for comparing pass and fallback rates (eval diff, drift).

#include <cstdint>

namespace backstop::core {

// A two-sided confidence interval for a proportion.
struct Interval {
  double low = 0;
  double high = 1;
};

// The z of a two-sided 95 % interval.
inline constexpr double kZ95 = 1.959963984540054;

// The Wilson score interval of `passes` out of `n` (n = 0: [0, 1]).
[[nodiscard]] Interval wilson(std::int64_t passes, std::int64_t n, double z = kZ95);

// The exact (binomial) McNemar test on paired outcomes: `b` pairs went one way (pass to
// fail), `c` the other. The two-sided p-value, min(1, 2 P(X <= min(b, c))) for X ~ B(b + c,
// 1/2); 1 when there are no discordant pairs.
[[nodiscard]] double mcnemar_exact(std::int64_t b, std::int64_t c);

// The two-sided p-value of a pooled two-proportion z-test of k1/n1 against k2/n2; 1 when
// either sample is empty or the pooled rate is 0 or 1.
[[nodiscard]] double two_proportion_p(std::int64_t k1, std::int64_t n1, std::int64_t k2,
                                      std::int64_t n2);

}  // namespace backstop::core
