#include "routing/hedge.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>

#include "chat/stream.h"

namespace backstop::routing {

double LatencyWindow::bound_ms(int i) { return std::exp2(static_cast<double>(i) / 4.0); }

void LatencyWindow::record(std::int64_t unix_ms, double ms) {
  const std::int64_t minute = unix_ms / kMinuteMs;
  Generation& g = generations_[static_cast<std::size_t>(minute % 2)];
  std::int64_t seen = g.minute.load(std::memory_order_acquire);
  if (seen != minute && g.minute.compare_exchange_strong(seen, minute)) {
    // First writer of a new minute resets it; a concurrent count may be lost, which a
    // percentile tolerates.
    for (auto& c : g.counts) c.store(0, std::memory_order_relaxed);
  }
  int bin = ms <= 1 ? 0 : static_cast<int>(std::ceil(std::log2(ms) * 4));
  if (bin >= kBins) bin = kBins - 1;
  g.counts[static_cast<std::size_t>(bin)].fetch_add(1, std::memory_order_relaxed);
}

std::optional<double> LatencyWindow::p95(std::int64_t unix_ms, std::int64_t min_calls) const {
  const std::int64_t minute = unix_ms / kMinuteMs;
  std::array<std::int64_t, kBins> counts{};
  std::int64_t total = 0;
  for (const Generation& g : generations_) {
    const std::int64_t m = g.minute.load(std::memory_order_acquire);
    if (m < 0 || minute - m > 1) continue;
    for (int i = 0; i < kBins; ++i) {
      const std::int64_t c = g.counts[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
      counts[static_cast<std::size_t>(i)] += c;
      total += c;
    }
  }
  if (total < min_calls || total == 0) return std::nullopt;
  const std::int64_t rank = (total * 95 + 99) / 100;  // the ceil(0.95 n)-th call
  std::int64_t seen = 0;
  for (int i = 0; i < kBins; ++i) {
    seen += counts[static_cast<std::size_t>(i)];
    if (seen >= rank) return bound_ms(i);
  }
  return bound_ms(kBins - 1);
}

namespace {

namespace net = boost::asio;

// Makes one call of a hedge and wakes the race when it ends.
net::awaitable<void> run_leg(providers::Provider* provider, InFlight* in_flight,
                             const chat::ChatRequest* request, HedgeLeg* leg,
                             net::steady_timer* wake, const core::Clock* clock) {
  const auto t0 = clock->now();
  leg->started_at = t0;
  if (leg->kind != LegKind::kComplete) {
    leg->answer = co_await bounded_stream(*provider, in_flight, *request, *leg);
  } else {
    leg->answer = co_await bounded_complete(*provider, in_flight, *request, leg->call);
  }
  leg->latency_ms = core::elapsed_ms(t0, clock->now());
  leg->ended = true;
  wake->cancel();
}

void start(net::io_context& loop, providers::Provider* provider, InFlight* in_flight,
           const chat::ChatRequest& request, HedgeLeg* leg, net::steady_timer& wake,
           const core::Clock& clock) {
  leg->started = true;
  net::co_spawn(loop, run_leg(provider, in_flight, &request, leg, &wake, &clock), net::detached);
}

// Whether a leg that ended brought an answer that passes (its verdict is set then).
bool passed(HedgeLeg& leg, const HedgePair& pair) {
  if (!leg.ended || !leg.answer || !*leg.answer) return false;
  if (!leg.verdict) leg.verdict = pair.check(**leg.answer);
  return leg.verdict->pass;
}

bool running(const HedgeLeg& leg) { return leg.started && !leg.ended; }

}  // namespace

net::awaitable<core::Result<chat::ChatResponse>> bounded_complete(providers::Provider& provider,
                                                                  InFlight* in_flight,
                                                                  const chat::ChatRequest& request,
                                                                  providers::CallContext& call) {
  InFlight::Slot slot;
  if (in_flight != nullptr) {
    slot = in_flight->try_acquire();
    if (!slot) co_return std::unexpected(saturated(provider, in_flight->max()));
  }
  co_return co_await provider.complete(request, call);
}

net::awaitable<core::Result<chat::ChatResponse>> bounded_stream(providers::Provider& provider,
                                                                InFlight* in_flight,
                                                                const chat::ChatRequest& request,
                                                                HedgeLeg& leg) {
  InFlight::Slot slot;
  if (in_flight != nullptr) {
    slot = in_flight->try_acquire();
    if (!slot) co_return std::unexpected(saturated(provider, in_flight->max()));
  }
  auto opened = co_await provider.stream(request, leg.call);
  if (!opened) co_return std::unexpected(std::move(opened.error()));
  std::unique_ptr<providers::EventStream> upstream = std::move(*opened);
  chat::StreamAssembler assembled;
  const bool first_only = leg.kind == LegKind::kFirstEvents;
  while (true) {
    auto batch = co_await upstream->next();
    if (!batch) {
      leg.skipped_events = upstream->skipped_events();
      co_return std::unexpected(std::move(batch.error()));
    }
    if (batch->empty()) break;
    assembled.add(*batch);
    leg.held.insert(leg.held.end(), std::make_move_iterator(batch->begin()),
                    std::make_move_iterator(batch->end()));
    if (first_only) {
      leg.upstream = std::move(upstream);
      leg.slot = std::move(slot);
      co_return assembled.take();
    }
  }
  leg.skipped_events = upstream->skipped_events();
  co_return assembled.take();
}

core::Error saturated(const providers::Provider& provider, std::int64_t max) {
  return core::Error{core::ErrorCode::kRateLimited,
                     "provider " + provider.name() + " has its max_in_flight (" +
                         std::to_string(max) + ") calls under way",
                     0};
}

bool is_local_refusal(const core::Error& error) {
  return error.code == core::ErrorCode::kRateLimited && error.upstream_status == 0;
}

HedgeLeg::HedgeLeg(net::io_context& loop, providers::Connections& connections,
                   const core::Clock& clock, std::string_view request_id,
                   core::Cancellation* parent)
    : call{loop, connections, clock, request_id} {
  call.cancel = &cancel;
  if (parent != nullptr) follow = parent->subscribe([this] { cancel.request(); });
}

net::awaitable<HedgeWinner> race(net::io_context& loop, const chat::ChatRequest& request,
                                 HedgePair pair, const core::Clock& clock) {
  HedgeLeg& first = *pair.first_leg;
  HedgeLeg& second = *pair.second_leg;
  net::steady_timer wake(loop);
  start(loop, pair.first, pair.first_in_flight, request, &first, wake, clock);
  // The call may have ended already: co_spawn can run it inline up to its first wait.
  if (!first.ended) {
    wake.expires_after(pair.after);
    co_await wake.async_wait(net::as_tuple(net::use_awaitable));
  }
  if (!first.ended && pair.may_start_second()) {
    start(loop, pair.second, pair.second_in_flight, request, &second, wake, clock);
  }
  HedgeWinner winner = HedgeWinner::kNone;
  while (running(first) || running(second)) {
    if (winner == HedgeWinner::kNone) {
      if (passed(first, pair)) winner = HedgeWinner::kFirst;
      if (winner == HedgeWinner::kNone && passed(second, pair)) winner = HedgeWinner::kHedge;
      HedgeLeg& loser = winner == HedgeWinner::kFirst ? second : first;
      if (winner != HedgeWinner::kNone && running(loser)) {
        loser.lost = true;
        loser.cancel.request();
      }
      if (!running(first) && !running(second)) break;
    }
    wake.expires_at(net::steady_timer::time_point::max());
    co_await wake.async_wait(net::as_tuple(net::use_awaitable));
  }
  if (winner == HedgeWinner::kNone && passed(first, pair)) winner = HedgeWinner::kFirst;
  if (winner == HedgeWinner::kNone && passed(second, pair)) winner = HedgeWinner::kHedge;
  co_return winner;
}

std::optional<std::chrono::milliseconds> hedge_delay(bool p95, std::int64_t after_ms,
                                                     const LatencyWindow* window,
                                                     std::int64_t unix_ms) {
  if (!p95) return std::chrono::milliseconds(after_ms);
  if (window == nullptr) return std::nullopt;
  const std::optional<double> ms = window->p95(unix_ms);
  if (!ms) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(*ms)));
}

}  // namespace backstop::routing
