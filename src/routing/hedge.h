#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "chat/chat.h"
#include "core/cancellation.h"
#include "core/clock.h"
#include "providers/provider.h"
#include "routing/in_flight.h"
#include "validation/validator.h"

namespace backstop::routing {

// The recent call latencies of one provider, for a hedge `after: p95`: a log-scale histogram
// per minute, the current minute and the one before counted. Lock-free, shared by workers.
class LatencyWindow {
 public:
  // Records one call of `ms` milliseconds that ended at unix_ms.
  void record(std::int64_t unix_ms, double ms);
  // The 95th percentile (the upper bound of its bucket, ms) of the calls in the current and
  // previous minute; none with fewer than `min_calls` calls.
  [[nodiscard]] std::optional<double> p95(std::int64_t unix_ms, std::int64_t min_calls = 20) const;

  // The upper bound (ms) of bucket i: 1 ms * 2^(i/4).
  [[nodiscard]] static double bound_ms(int i);

 private:
  static constexpr int kBins = 72;  // up to 2^18 ms, about 4 minutes
  static constexpr std::int64_t kMinuteMs = 60'000;
  struct Generation {
    std::atomic<std::int64_t> minute{-1};
    std::array<std::atomic<std::int64_t>, kBins> counts{};
  };
  std::array<Generation, 2> generations_;
};

// How long the first call of a hedged pair may take before the next target starts:
// after_ms, or with `after: p95` the provider's recent p95 (none until it has enough calls).
[[nodiscard]] std::optional<std::chrono::milliseconds> hedge_delay(bool p95, std::int64_t after_ms,
                                                                   const LatencyWindow* window,
                                                                   std::int64_t unix_ms);

struct HedgeLeg;

// provider.complete(), unless `in_flight` (null: no bound) has no place left: then kRateLimited
// at once (upstream_status 0), without calling.
boost::asio::awaitable<core::Result<chat::ChatResponse>> bounded_complete(
    providers::Provider& provider, InFlight* in_flight, const chat::ChatRequest& request,
    providers::CallContext& call);
// provider.stream() (bounded as bounded_complete), its events kept in leg.held and the answer
// assembled from them: read to its end, or with LegKind::kFirstEvents only up to its first
// events, the stream and its place then kept in the leg for the caller to read on.
boost::asio::awaitable<core::Result<chat::ChatResponse>> bounded_stream(
    providers::Provider& provider, InFlight* in_flight, const chat::ChatRequest& request,
    HedgeLeg& leg);
// The error of a call refused because its provider's max_in_flight calls are under way.
[[nodiscard]] core::Error saturated(const providers::Provider& provider, std::int64_t max);
// Whether an error is backstop's own refusal (saturated), not the provider's answer.
[[nodiscard]] bool is_local_refusal(const core::Error& error);

// What one call of a hedge is: a whole answer, a stream read to its end (held for the checks),
// or a stream passed on as it comes, raced only up to its first events.
enum class LegKind { kComplete, kStream, kFirstEvents };

// One call of a hedged pair: its own cancellation (the other call won, or the request's
// client left) and, once it ended, its answer and that answer's verdict.
struct HedgeLeg {
  HedgeLeg(boost::asio::io_context& loop, providers::Connections& connections,
           const core::Clock& clock, std::string_view request_id, core::Cancellation* parent);
  HedgeLeg(const HedgeLeg&) = delete;
  HedgeLeg& operator=(const HedgeLeg&) = delete;

  core::Cancellation cancel;
  core::Cancellation::Subscription follow;  // the request's cancellation reaches this call
  providers::CallContext call;
  bool started = false;
  core::Clock::TimePoint started_at{};
  bool ended = false;
  bool lost = false;  // cancelled because the other call's answer passed first
  double latency_ms = 0;
  std::optional<core::Result<chat::ChatResponse>> answer;
  std::optional<validation::Verdict> verdict;  // of an answer that arrived
  LegKind kind = LegKind::kComplete;
  std::vector<chat::StreamEvent> held;  // a stream's events, for the client's replay
  std::int64_t skipped_events = 0;      // a stream's undecodable events
  // kFirstEvents: the stream after its first events (none when it already ended), and the
  // provider's place, held until the stream is closed.
  std::unique_ptr<providers::EventStream> upstream;
  InFlight::Slot slot;
};

// The two calls of a hedge, and how to start and judge them.
struct HedgePair {
  providers::Provider* first = nullptr;
  providers::Provider* second = nullptr;
  InFlight* first_in_flight = nullptr;  // the providers' max_in_flight; null: none
  InFlight* second_in_flight = nullptr;
  HedgeLeg* first_leg = nullptr;
  HedgeLeg* second_leg = nullptr;
  std::chrono::milliseconds after{0};
  // Called when the first call is slower than `after`: whether the second may start (its
  // breaker, the request's deadline); it prepares the second leg's call.
  std::function<bool()> may_start_second;
  // The checks of an answer that arrived.
  std::function<validation::Verdict(const chat::ChatResponse&)> check;
};

// Which call of a hedge served: the first, the second (the hedge), or neither.
enum class HedgeWinner { kNone, kFirst, kHedge };

// Calls pair.first; if it has not ended after pair.after and may_start_second() agrees, also
// pair.second. (A kFirstEvents leg ends with its first events.) The first answer that passes the
// checks wins and the other call is cancelled at once; returns once both calls have ended, so the
// legs may be booked.
boost::asio::awaitable<HedgeWinner> race(boost::asio::io_context& loop,
                                         const chat::ChatRequest& request, HedgePair pair,
                                         const core::Clock& clock);

}  // namespace backstop::routing
