#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "telemetry/hooks.h"

namespace backstop::routing {

class FallbackWindow;

// A provider breaker's state (the `state` label of backstop_breaker_state).
enum class BreakerState { kClosed, kOpen, kHalfOpen };
[[nodiscard]] std::string_view to_string(BreakerState state);  // closed | open | half_open

// What a breaker lets through: a call (kPass), the one probe of a half-open breaker
// (kProbe), or nothing (kSkip).
enum class Admission { kSkip, kPass, kProbe };

// Whether an error is a transport failure that counts against a breaker: connect, timeout,
// 5xx, 429.
[[nodiscard]] bool is_transport_failure(const core::Error& error);

// One provider's circuit breaker, shared by every worker: lock-free (atomics only).
// Opens after `failures` consecutive transport failures; once `cooldown_ms` has passed it is
// half-open and lets one probe through at a time; a probe without a transport failure
// closes it, a failing probe opens it again. Logs one line on each change of state.
class Breaker {
 public:
  // Each change of state is logged to `logger` and sent to `hooks` as a `breaker` event (either
  // may be null).
  Breaker(std::string provider, const config::Breaker& config, const core::Clock& clock,
          core::Logger* logger, telemetry::Hooks* hooks = nullptr);

  // Whether a call may go to the provider now.
  [[nodiscard]] Admission admit();
  // The end of a call admit() let through; transport_ok: no transport failure.
  void record(Admission admission, bool transport_ok);
  // The end of a call that proved nothing either way (cut by the request's deadline or its
  // client leaving): the state stays, and a probe's turn passes to the next caller.
  void release(Admission admission);
  [[nodiscard]] BreakerState state() const {
    return static_cast<BreakerState>(state_.load(std::memory_order_acquire));
  }
  [[nodiscard]] const std::string& provider() const { return provider_; }

 private:
  void changed(BreakerState from, BreakerState to) const;

  std::string provider_;
  int failures_;
  std::int64_t cooldown_ns_;
  const core::Clock& clock_;
  core::Logger* logger_;
  telemetry::Hooks* hooks_;
  std::atomic<int> state_{static_cast<int>(BreakerState::kClosed)};
  std::atomic<int> consecutive_{0};
  std::atomic<std::int64_t> opened_ns_{0};  // monotonic time it last opened
  std::atomic<bool> probing_{false};        // half-open: the probe is in flight
};

// A workload's route state (the `state` label of backstop_route_state).
enum class RouteState { kNormal, kBypass };
[[nodiscard]] std::string_view to_string(RouteState state);  // normal | bypass

// How one request walks its route.
enum class Turn {
  kNormal,    // the route in order
  kBypass,    // the next target first, the primary after it
  kProbe,     // the primary first while bypassed, to keep measuring it
  kEscalate,  // a session escalated by its client retries: the primary is skipped
};

// Bands that act (a workload's `adapt`): bypasses the primary when the workload's fallback
// rate crosses bypass_above, restores it when its probes' rate falls below restore_below.
// Shared by every worker: lock-free; judged at most once a second, by whichever worker
// finishes a request first, so every worker sees the same state within a second.
class RouteAdapt {
 public:
  // A bypass and a restore are logged to `logger` and sent to `hooks` as a `bypass` event
  // (either may be null).
  RouteAdapt(std::string workload, const config::Adapt& config, std::int64_t window_s,
             core::Logger* logger, telemetry::Hooks* hooks = nullptr);
  ~RouteAdapt();

  // The turn of the next request: while bypassed, an exact `probe` share are probes.
  [[nodiscard]] Turn next();
  // Records a finished probe at unix_ms; fell_back: the primary did not serve it.
  void record_probe(std::int64_t unix_ms, bool fell_back);
  // Judges the state at unix_ms (at most once a second): normal -> bypass on `window` (the
  // workload's fallback window) since the last restore, bypass -> normal on the probes since
  // the bypass, each on at least min_requests requests. Logs one line on each change.
  void judge(const FallbackWindow& window, std::int64_t unix_ms);
  [[nodiscard]] RouteState state() const {
    return bypassed_.load(std::memory_order_acquire) ? RouteState::kBypass : RouteState::kNormal;
  }

 private:
  // The `bypass` hook event for a change to `state`.
  void emit(std::int64_t unix_ms, RouteState state, double ratio, std::int64_t requests) const;

  std::string workload_;
  config::Adapt config_;
  std::int64_t window_s_;
  core::Logger* logger_;
  telemetry::Hooks* hooks_;
  std::unique_ptr<FallbackWindow> probes_;
  std::atomic<bool> bypassed_{false};
  std::atomic<std::int64_t> since_ms_{0};    // when the current state began
  std::atomic<std::int64_t> judged_ms_{-1};  // the last judgement; -1: none yet
  std::atomic<std::uint64_t> turns_{0};      // bypassed requests, for the probe share
};

}  // namespace backstop::routing
