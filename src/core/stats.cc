#include "core/stats.h"

#include <algorithm>
#include <cmath>

namespace backstop::core {

Interval wilson(std::int64_t passes, std::int64_t n, double z) {
  if (n <= 0) return {};
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(passes) / nn;
  const double z2 = z * z;
  const double denominator = 1 + z2 / nn;
  const double center = (p + z2 / (2 * nn)) / denominator;
  const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denominator;
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

double mcnemar_exact(std::int64_t b, std::int64_t c) {
  const std::int64_t n = b + c;
  if (n <= 0) return 1;
  const std::int64_t k = std::min(b, c);
  // Summed in log space: C(n, i) / 2^n underflows nothing for the n of a suite.
  const double log_half_n = static_cast<double>(n) * std::log(0.5);
  double tail = 0;
  for (std::int64_t i = 0; i <= k; ++i) {
    const double log_choose = std::lgamma(static_cast<double>(n) + 1) -
                              std::lgamma(static_cast<double>(i) + 1) -
                              std::lgamma(static_cast<double>(n - i) + 1);
    tail += std::exp(log_choose + log_half_n);
  }
  return std::min(1.0, 2 * tail);
}

double two_proportion_p(std::int64_t k1, std::int64_t n1, std::int64_t k2, std::int64_t n2) {
  if (n1 <= 0 || n2 <= 0) return 1;
  const double a = static_cast<double>(n1);
  const double b = static_cast<double>(n2);
  const double pooled = static_cast<double>(k1 + k2) / (a + b);
  if (pooled <= 0 || pooled >= 1) return 1;
  const double se = std::sqrt(pooled * (1 - pooled) * (1 / a + 1 / b));
  const double z = (static_cast<double>(k2) / b - static_cast<double>(k1) / a) / se;
  return std::erfc(std::fabs(z) / std::sqrt(2.0));
}

}  // namespace backstop::core
