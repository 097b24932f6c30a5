#include "routing/shadow.h"

#include <cmath>

#include "routing/router.h"

namespace backstop::routing {

ShadowTraffic::ShadowTraffic(const config::Shadow& config, providers::Provider& provider,
                             ledger::Price price, InFlight& provider_in_flight,
                             std::int64_t window_s)
    : sample_(config.sample),
      provider_(provider),
      price_(price),
      provider_in_flight_(provider_in_flight),
      window_(std::make_unique<FallbackWindow>(window_s)) {}

ShadowTraffic::~ShadowTraffic() = default;

bool ShadowTraffic::sampled() {
  const auto n = static_cast<double>(requests_.fetch_add(1, std::memory_order_relaxed));
  return std::floor((n + 1) * sample_) > std::floor(n * sample_);
}

ShadowTraffic::Places ShadowTraffic::try_start() {
  Places places;
  places.workload = in_flight_.try_acquire();
  if (!places.workload) return {};
  places.provider = provider_in_flight_.try_acquire();
  if (!places.provider) return {};
  return places;
}

}  // namespace backstop::routing
