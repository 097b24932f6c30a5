#include "providers/simulated_provider.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cmath>
#include <numbers>
#include <utility>
#include <vector>

namespace backstop::providers {
namespace {

namespace net = boost::asio;

// z of the 99th percentile of the standard normal.
constexpr double kZ99 = 2.326;

// A uniform double in (0, 1) from 53 random bits; never 0, so its log is finite.
double uniform(std::uint64_t bits) { return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53; }

// Waits `ms`, or less when `cancel` is requested (then true).
net::awaitable<bool> wait_ms(net::io_context& loop, double ms, core::Cancellation* cancel) {
  if (cancel != nullptr && cancel->requested()) co_return true;
  if (ms <= 0) co_return false;
  net::steady_timer timer(loop, std::chrono::microseconds(std::llround(ms * 1000)));
  core::Cancellation::Subscription stop;
  if (cancel != nullptr) stop = cancel->subscribe([&timer] { timer.cancel(); });
  // A cancelled wait (shutdown) simply ends the wait.
  co_await timer.async_wait(net::as_tuple(net::use_awaitable));
  co_return cancel != nullptr && cancel->requested();
}

core::Error cancelled(const std::string& name) {
  return core::Error{core::ErrorCode::kUpstream,
                     "the call to " + name + " was cancelled: its caller went away"};
}

// Events handed out per next(), so that a simulated stream comes in several batches.
constexpr std::size_t kBatch = 2;

// A stream over events known in advance.
class ReplayStream final : public EventStream {
 public:
  explicit ReplayStream(std::vector<chat::StreamEvent> events) : events_(std::move(events)) {}

  net::awaitable<core::Result<std::vector<chat::StreamEvent>>> next() override {
    const std::size_t end = std::min(events_.size(), next_ + kBatch);
    std::vector<chat::StreamEvent> batch(std::make_move_iterator(events_.begin() + next_),
                                         std::make_move_iterator(events_.begin() + end));
    next_ = end;
    co_return batch;
  }

 private:
  std::vector<chat::StreamEvent> events_;
  std::size_t next_ = 0;
};

std::unique_ptr<EventStream> replay(const chat::ChatResponse& response) {
  return std::make_unique<ReplayStream>(stream_events(response));
}

}  // namespace

SimulatedProvider::SimulatedProvider(SimulatedOptions options) : options_(std::move(options)) {
  if (options_.latency_p50_ms > 0 && options_.latency_p99_ms > options_.latency_p50_ms) {
    sigma_ = std::log(options_.latency_p99_ms / options_.latency_p50_ms) / kZ99;
  }
}

SimulatedDraw SimulatedProvider::draw(std::uint64_t call) const {
  const std::uint64_t base = mix64(options_.seed ^ mix64(call));
  SimulatedDraw out;
  out.random = mix64(base + 3);

  const double u = uniform(mix64(base));
  const FaultRates* rates = &options_.rates;
  for (const SimulatedEpisode& e : options_.episodes) {
    if (call >= e.from_call && call < e.to_call) {
      rates = &e.rates;
      break;
    }
  }
  const FaultRates& r = *rates;
  using Outcome = SimulatedDraw::Outcome;
  struct Slice {
    double rate;
    Outcome outcome;
    Fault fault;
  };
  // Cumulative slices of [0, 1) in a fixed order, so a seed always maps to the same outcomes.
  const Slice slices[] = {
      {r.no_tool_call, Outcome::kAnswer, Fault::kNoToolCall},
      {r.unknown_tool, Outcome::kAnswer, Fault::kUnknownTool},
      {r.invalid_json, Outcome::kAnswer, Fault::kInvalidJson},
      {r.schema, Outcome::kAnswer, Fault::kSchema},
      {r.empty, Outcome::kAnswer, Fault::kEmpty},
      {r.truncated, Outcome::kAnswer, Fault::kTruncated},
      {r.rate_limited, Outcome::kRateLimited, Fault::kNone},
      {r.server_error, Outcome::kServerError, Fault::kNone},
      {r.timeout, Outcome::kTimeout, Fault::kNone},
  };
  double threshold = 0;
  for (const Slice& slice : slices) {
    threshold += slice.rate;
    if (u < threshold) {
      out.outcome = slice.outcome;
      out.fault = slice.fault;
      break;
    }
  }

  if (options_.latency_p50_ms > 0) {
    // Box-Muller: a standard normal z, then the lognormal p50 * e^(sigma z).
    const double u1 = uniform(mix64(base + 1));
    const double u2 = uniform(mix64(base + 2));
    const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
    // Capped, so that one extreme draw does not stall a demo.
    const double cap = 10 * std::max(options_.latency_p50_ms, options_.latency_p99_ms);
    out.latency_ms = std::min(cap, options_.latency_p50_ms * std::exp(sigma_ * z));
  }
  return out;
}

net::awaitable<core::Result<chat::ChatResponse>> SimulatedProvider::complete(
    const chat::ChatRequest& request, CallContext& context) {
  const SimulatedDraw d = draw(calls_.fetch_add(1, std::memory_order_relaxed));
  if (d.outcome == SimulatedDraw::Outcome::kTimeout) {
    // As a silent upstream: cut at the provider's timeout, or earlier at the caller's budget.
    const std::int64_t waited = std::min<std::int64_t>(
        options_.timeout_ms, std::max<std::int64_t>(0, context.budget.count()));
    if (co_await wait_ms(context.loop, static_cast<double>(waited), context.cancel)) {
      co_return std::unexpected(cancelled(options_.name));
    }
    co_return core::fail(core::ErrorCode::kTimeout,
                         "no answer within " + std::to_string(waited) + " ms");
  }
  if (co_await wait_ms(context.loop, d.latency_ms, context.cancel)) {
    co_return std::unexpected(cancelled(options_.name));
  }
  switch (d.outcome) {
    case SimulatedDraw::Outcome::kRateLimited:
      co_return std::unexpected(
          core::Error{core::ErrorCode::kRateLimited, "HTTP 429: simulated rate limit", 429});
    case SimulatedDraw::Outcome::kServerError:
      co_return std::unexpected(
          core::Error{core::ErrorCode::kUpstream, "HTTP 500: simulated server error", 500});
    case SimulatedDraw::Outcome::kAnswer:
    case SimulatedDraw::Outcome::kTimeout:
      break;
  }
  chat::ChatResponse response = synthesize(request, d.fault, options_.model, d.random);
  response.created = context.clock.unix_ms() / 1000;
  co_return response;
}

net::awaitable<core::Result<std::unique_ptr<EventStream>>> SimulatedProvider::stream(
    const chat::ChatRequest& request, CallContext& context) {
  auto answer = co_await complete(request, context);
  if (!answer) co_return std::unexpected(std::move(answer.error()));
  co_return replay(*answer);
}

}  // namespace backstop::providers
