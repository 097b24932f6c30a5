#include "routing/adaptive.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>

#include "routing/router.h"

namespace backstop::routing {
namespace {

std::string percent(double ratio) {
  char out[32];
  std::snprintf(out, sizeof out, "%.1f%%", ratio * 100);
  return out;
}

}  // namespace

std::string_view to_string(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

std::string_view to_string(RouteState state) {
  return state == RouteState::kBypass ? "bypass" : "normal";
}

bool is_transport_failure(const core::Error& error) {
  switch (error.code) {
    case core::ErrorCode::kConnect:
    case core::ErrorCode::kTimeout:
    case core::ErrorCode::kRateLimited:
      return true;
    case core::ErrorCode::kUpstream:
      return error.upstream_status >= 500;
    default:
      return false;
  }
}

Breaker::Breaker(std::string provider, const config::Breaker& config, const core::Clock& clock,
                 core::Logger* logger, telemetry::Hooks* hooks)
    : provider_(std::move(provider)),
      failures_(config.failures),
      cooldown_ns_(config.cooldown_ms * 1'000'000),
      clock_(clock),
      logger_(logger),
      hooks_(hooks) {}

Admission Breaker::admit() {
  int state = state_.load(std::memory_order_acquire);
  if (state == static_cast<int>(BreakerState::kClosed)) return Admission::kPass;
  if (state == static_cast<int>(BreakerState::kOpen)) {
    const std::int64_t now = clock_.now().time_since_epoch().count();
    if (now - opened_ns_.load(std::memory_order_acquire) < cooldown_ns_) return Admission::kSkip;
    if (state_.compare_exchange_strong(state, static_cast<int>(BreakerState::kHalfOpen))) {
      changed(BreakerState::kOpen, BreakerState::kHalfOpen);
    }
  }
  // Half-open: the first caller to claim the probe goes; the rest skip until it ends.
  bool idle = false;
  if (probing_.compare_exchange_strong(idle, true)) return Admission::kProbe;
  return Admission::kSkip;
}

void Breaker::record(Admission admission, bool transport_ok) {
  switch (admission) {
    case Admission::kSkip:
      return;
    case Admission::kProbe:
      if (transport_ok) {
        consecutive_.store(0, std::memory_order_relaxed);
        state_.store(static_cast<int>(BreakerState::kClosed), std::memory_order_release);
        probing_.store(false, std::memory_order_release);
        changed(BreakerState::kHalfOpen, BreakerState::kClosed);
      } else {
        opened_ns_.store(clock_.now().time_since_epoch().count(), std::memory_order_release);
        state_.store(static_cast<int>(BreakerState::kOpen), std::memory_order_release);
        probing_.store(false, std::memory_order_release);
        changed(BreakerState::kHalfOpen, BreakerState::kOpen);
      }
      return;
    case Admission::kPass:
      break;
  }
  if (transport_ok) {
    consecutive_.store(0, std::memory_order_relaxed);
    return;
  }
  if (consecutive_.fetch_add(1, std::memory_order_relaxed) + 1 < failures_) return;
  // Set before the state, so that no caller sees it open with an old opening time.
  opened_ns_.store(clock_.now().time_since_epoch().count(), std::memory_order_release);
  int closed = static_cast<int>(BreakerState::kClosed);
  if (state_.compare_exchange_strong(closed, static_cast<int>(BreakerState::kOpen))) {
    consecutive_.store(0, std::memory_order_relaxed);
    changed(BreakerState::kClosed, BreakerState::kOpen);
  }
}

void Breaker::release(Admission admission) {
  if (admission == Admission::kProbe) probing_.store(false, std::memory_order_release);
}

void Breaker::changed(BreakerState from, BreakerState to) const {
  if (hooks_ != nullptr && hooks_->wants("breaker")) {
    hooks_->emit("breaker",
                 boost::json::serialize(boost::json::object{{"event", "breaker"},
                                                            {"unix_ms", clock_.unix_ms()},
                                                            {"provider", provider_},
                                                            {"from", to_string(from)},
                                                            {"to", to_string(to)}}));
  }
  if (logger_ == nullptr) return;
  std::string line = "breaker of provider " + provider_ + ": " + std::string(to_string(from)) +
                     " -> " + std::string(to_string(to));
  switch (to) {
    case BreakerState::kOpen:
      line += from == BreakerState::kClosed
                  ? " after " + std::to_string(failures_) + " consecutive transport failures"
                  : ": the probe failed";
      line += "; skipped for " + std::to_string(cooldown_ns_ / 1'000'000) + " ms";
      break;
    case BreakerState::kHalfOpen:
      line += ": one probe at a time";
      break;
    case BreakerState::kClosed:
      line += ": the probe passed";
      break;
  }
  logger_->log(to == BreakerState::kClosed ? core::LogLevel::kInfo : core::LogLevel::kWarn, line);
}

RouteAdapt::RouteAdapt(std::string workload, const config::Adapt& config, std::int64_t window_s,
                       core::Logger* logger, telemetry::Hooks* hooks)
    : workload_(std::move(workload)),
      config_(config),
      window_s_(window_s),
      logger_(logger),
      hooks_(hooks),
      probes_(std::make_unique<FallbackWindow>(window_s)) {}

RouteAdapt::~RouteAdapt() = default;

Turn RouteAdapt::next() {
  if (!bypassed_.load(std::memory_order_acquire)) return Turn::kNormal;
  // Request n is a probe when the running share crosses a whole number: exactly `probe` of
  // them, evenly spread, with no draw to make tests flaky.
  const auto n = static_cast<double>(turns_.fetch_add(1, std::memory_order_relaxed));
  const bool probe = std::floor((n + 1) * config_.probe) > std::floor(n * config_.probe);
  return probe ? Turn::kProbe : Turn::kBypass;
}

void RouteAdapt::record_probe(std::int64_t unix_ms, bool fell_back) {
  probes_->record(unix_ms, fell_back);
}

void RouteAdapt::emit(std::int64_t unix_ms, RouteState state, double ratio,
                      std::int64_t requests) const {
  if (hooks_ == nullptr || !hooks_->wants("bypass")) return;
  hooks_->emit("bypass", boost::json::serialize(boost::json::object{{"event", "bypass"},
                                                                    {"unix_ms", unix_ms},
                                                                    {"workload", workload_},
                                                                    {"state", to_string(state)},
                                                                    {"fallback_rate", ratio},
                                                                    {"requests", requests}}));
}

void RouteAdapt::judge(const FallbackWindow& window, std::int64_t unix_ms) {
  std::int64_t last = judged_ms_.load(std::memory_order_relaxed);
  if (last >= 0 && unix_ms - last < 1000) return;
  if (!judged_ms_.compare_exchange_strong(last, unix_ms)) return;  // another worker judges
  const std::int64_t since = since_ms_.load(std::memory_order_relaxed);
  const bool bypassed = bypassed_.load(std::memory_order_acquire);
  const FallbackWindow& measured = bypassed ? *probes_ : window;
  const std::int64_t requests = measured.requests(unix_ms, since);
  if (requests < config_.min_requests) return;
  const double ratio = measured.ratio(unix_ms, since);
  if (!bypassed && ratio > config_.bypass_above) {
    since_ms_.store(unix_ms, std::memory_order_relaxed);
    turns_.store(0, std::memory_order_relaxed);
    bypassed_.store(true, std::memory_order_release);
    emit(unix_ms, RouteState::kBypass, ratio, requests);
    if (logger_ != nullptr) {
      logger_->log(core::LogLevel::kWarn,
                   "workload " + workload_ + ": bypass: fallback rate " + percent(ratio) +
                       " over the last " + std::to_string(window_s_) + " s (" +
                       std::to_string(requests) + " requests) is above " +
                       percent(config_.bypass_above) + "; requests go to the next target first, " +
                       percent(config_.probe) + " still probe the primary");
    }
  } else if (bypassed && ratio < config_.restore_below) {
    since_ms_.store(unix_ms, std::memory_order_relaxed);
    bypassed_.store(false, std::memory_order_release);
    emit(unix_ms, RouteState::kNormal, ratio, requests);
    if (logger_ != nullptr) {
      logger_->log(core::LogLevel::kInfo,
                   "workload " + workload_ + ": restore: the probes' fallback rate " +
                       percent(ratio) + " (" + std::to_string(requests) + " probes) is below " +
                       percent(config_.restore_below) + "; the primary is first again");
    }
  }
}

}  // namespace backstop::routing
