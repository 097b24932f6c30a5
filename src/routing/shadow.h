#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "config/config.h"
#include "ledger/ledger.h"
#include "providers/provider.h"
#include "routing/in_flight.h"

namespace backstop::routing {

class FallbackWindow;

// A workload's shadow traffic (its `shadow:` block): an exact `sample` share of its requests
// is also sent to a candidate provider, off the request's path. Shared by every worker.
class ShadowTraffic {
 public:
  // At most this many shadow calls of one workload at once; beyond, a sampled copy is dropped.
  static constexpr std::int64_t kMaxInFlight = 64;

  ShadowTraffic(const config::Shadow& config, providers::Provider& provider, ledger::Price price,
                InFlight& provider_in_flight, std::int64_t window_s);
  ~ShadowTraffic();

  // Whether the next request is sampled: request n is when the running share crosses a whole
  // number, so exactly `sample` of them are, evenly spread.
  [[nodiscard]] bool sampled();
  // Places for one shadow call: the workload's and the provider's (max_in_flight). Both empty
  // when either is full: the copy is dropped.
  struct Places {
    InFlight::Slot workload;
    InFlight::Slot provider;
    [[nodiscard]] explicit operator bool() const {
      return static_cast<bool>(workload) && static_cast<bool>(provider);
    }
  };
  [[nodiscard]] Places try_start();

  [[nodiscard]] providers::Provider& provider() const { return provider_; }
  [[nodiscard]] const ledger::Price& price() const { return price_; }
  // The shadow's would-be fallback rate: its answers that failed the checks (or did not come).
  [[nodiscard]] FallbackWindow& window() const { return *window_; }

 private:
  double sample_;
  providers::Provider& provider_;
  ledger::Price price_;
  InFlight& provider_in_flight_;
  InFlight in_flight_{kMaxInFlight};
  std::unique_ptr<FallbackWindow> window_;
  std::atomic<std::uint64_t> requests_{0};
};

}  // namespace backstop::routing
