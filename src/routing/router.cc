#include "routing/router.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>

#include "chat/stream.h"
#include "routing/hedge.h"

namespace backstop::routing {
namespace {

namespace net = boost::asio;
using validation::Reason;

constexpr double kMicrosPerUsd = 1'000'000.0;

ledger::AttemptRow attempt_row(const Attempt& a) {
  return {a.provider,
          a.model,
          a.pass ? "" : std::string(validation::to_string(a.reason)),
          a.status,
          a.usage.input_tokens,
          a.usage.cached_input_tokens,
          a.usage.output_tokens,
          a.cost_micro_usd,
          static_cast<std::int64_t>(a.latency_ms + 0.5),
          a.stack};
}

// The ledger's row of a routed request that ended at now_ms.
ledger::RequestRow ledger_row(const Workload& workload, std::string_view request_id,
                              std::string_view key_name, std::int64_t now_ms,
                              const RouteResult& result) {
  const auto duration_ms = static_cast<std::int64_t>(result.duration_ms + 0.5);
  ledger::RequestRow row{std::string(request_id),
                         now_ms - duration_ms,  // when it arrived
                         duration_ms,
                         workload.name,
                         std::string(key_name),
                         std::string(to_string(result.outcome)),
                         result.served_by ? result.served_by->provider->name() : "",
                         {}};
  row.attempts.reserve(result.attempts.size());
  for (const Attempt& a : result.attempts) row.attempts.push_back(attempt_row(a));
  return row;
}

}  // namespace

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kPrimary:
      return "primary";
    case Outcome::kFallback:
      return "fallback";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kRejected:
      return "rejected";
  }
  return "failed";
}

std::string_view to_string(Band band) {
  switch (band) {
    case Band::kUnderused:
      return "under-used";
    case Band::kHealthy:
      return "healthy";
    case Band::kWatch:
      return "watch";
    case Band::kMove:
      return "move";
  }
  return "watch";
}

Band band_of(double ratio, const config::Bands& bands) {
  if (ratio > bands.move_above) return Band::kMove;
  if (ratio < bands.underused_below) return Band::kUnderused;
  if (ratio >= bands.healthy_low && ratio <= bands.healthy_high) return Band::kHealthy;
  return Band::kWatch;
}

FallbackWindow::FallbackWindow(std::int64_t window_s)
    : bucket_ms_(std::max<std::int64_t>(1, window_s * 1000 / kBuckets)) {}

void FallbackWindow::record(std::int64_t unix_ms, bool fell_back) {
  std::int64_t epoch = unix_ms / bucket_ms_;
  Bucket& b = buckets_[epoch % kBuckets];
  std::int64_t seen = b.epoch.load(std::memory_order_acquire);
  if (seen != epoch && b.epoch.compare_exchange_strong(seen, epoch)) {
    // First writer of a new period resets the bucket; a concurrent increment may be lost,
    // which the ratio tolerates.
    b.requests.store(0, std::memory_order_relaxed);
    b.fallbacks.store(0, std::memory_order_relaxed);
  }
  b.requests.fetch_add(1, std::memory_order_relaxed);
  if (fell_back) b.fallbacks.fetch_add(1, std::memory_order_relaxed);
}

double FallbackWindow::ratio(std::int64_t unix_ms, std::int64_t since_ms) const {
  std::int64_t now_epoch = unix_ms / bucket_ms_;
  std::int64_t requests = 0;
  std::int64_t fallbacks = 0;
  for (const Bucket& b : buckets_) {
    std::int64_t epoch = b.epoch.load(std::memory_order_acquire);
    if (epoch < 0 || now_epoch - epoch >= kBuckets) continue;
    if (since_ms > 0 && epoch <= since_ms / bucket_ms_) continue;
    requests += b.requests.load(std::memory_order_relaxed);
    fallbacks += b.fallbacks.load(std::memory_order_relaxed);
  }
  return requests == 0 ? 0.0 : static_cast<double>(fallbacks) / static_cast<double>(requests);
}

std::int64_t FallbackWindow::requests(std::int64_t unix_ms, std::int64_t since_ms) const {
  std::int64_t now_epoch = unix_ms / bucket_ms_;
  std::int64_t requests = 0;
  for (const Bucket& b : buckets_) {
    std::int64_t epoch = b.epoch.load(std::memory_order_acquire);
    if (epoch < 0 || now_epoch - epoch >= kBuckets) continue;
    if (since_ms > 0 && epoch <= since_ms / bucket_ms_) continue;
    requests += b.requests.load(std::memory_order_relaxed);
  }
  return requests;
}

std::vector<BandWatch::Change> BandWatch::check(std::int64_t unix_ms) {
  const auto& workloads = router_.workloads();
  last_.resize(workloads.size());
  std::vector<Change> changes;
  for (std::size_t i = 0; i < workloads.size(); ++i) {
    const Workload& w = *workloads[i];
    std::int64_t requests = w.window->requests(unix_ms);
    if (requests < min_requests_) continue;
    double ratio = w.window->ratio(unix_ms);
    Band band = band_of(ratio, w.bands);
    if (last_[i] == band) continue;
    const std::optional<Band> from = last_[i];
    last_[i] = band;
    // The first verdict is worth a line only when it asks for action.
    if (!from && (band == Band::kHealthy || band == Band::kWatch)) continue;
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f%%", ratio * 100);
    std::string line = "workload " + w.name + ": fallback rate " + rate + " over the last " +
                       std::to_string(w.bands.window_s) + " s (" + std::to_string(requests) +
                       " requests) is in band " + std::string(to_string(band));
    switch (band) {
      case Band::kMove:
        line += ": the primary is wrong for this traffic";
        break;
      case Band::kUnderused:
        line += ": more traffic could move to the primary";
        break;
      case Band::kHealthy:
        line += ": the pattern pays for itself";
        break;
      case Band::kWatch:
        break;
    }
    changes.push_back({w.name, from, band, ratio, requests, w.bands.window_s, std::move(line)});
  }
  return changes;
}

std::int64_t retry_delay_ms(const config::Retries& retries, int retry, const core::Error& error,
                            std::mt19937_64& rng) {
  if (error.retry_after_ms >= 0)
    return std::min<std::int64_t>(error.retry_after_ms, retries.retry_after_cap_ms);
  std::int64_t ceiling = retries.base_backoff_ms;
  for (int i = 0; i < retry && ceiling < retries.max_backoff_ms; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, retries.max_backoff_ms);
  if (ceiling <= 0) return 0;
  // Full jitter (AWS architecture blog): spreads retries of many clients apart.
  return std::uniform_int_distribution<std::int64_t>(0, ceiling)(rng);
}

ledger::Price to_ledger_price(const config::Price& price) {
  return {price.input, price.output, price.cached_input.value_or(-1)};
}

validation::Spec to_spec(const config::Validate& v) {
  validation::Spec spec;
  switch (v.tool_call) {
    case config::ToolCallCheck::kOff:
      spec.tool_call = validation::Spec::ToolCall::kOff;
      break;
    case config::ToolCallCheck::kRequired:
      spec.tool_call = validation::Spec::ToolCall::kRequired;
      break;
    case config::ToolCallCheck::kOptional:
      spec.tool_call = validation::Spec::ToolCall::kOptional;
      break;
  }
  spec.tool_names_declared = v.tool_names_declared;
  spec.tool_names = v.tool_names;
  switch (v.arguments) {
    case config::ArgumentsCheck::kNone:
      spec.arguments = validation::Spec::Arguments::kNone;
      break;
    case config::ArgumentsCheck::kJson:
      spec.arguments = validation::Spec::Arguments::kJson;
      break;
    case config::ArgumentsCheck::kSchema:
      spec.arguments = validation::Spec::Arguments::kSchema;
      break;
  }
  switch (v.content) {
    case config::ContentCheck::kOff:
      spec.content = validation::Spec::Content::kOff;
      break;
    case config::ContentCheck::kNonEmpty:
      spec.content = validation::Spec::Content::kNonEmpty;
      break;
    case config::ContentCheck::kJson:
      spec.content = validation::Spec::Content::kJson;
      break;
    case config::ContentCheck::kSchema:
      spec.content = validation::Spec::Content::kSchema;
      break;
  }
  spec.allow_truncated = v.allow_truncated;
  return spec;
}

Reason reason_of(const core::Error& error) {
  switch (error.code) {
    case core::ErrorCode::kRateLimited:
      return Reason::kRateLimited;
    case core::ErrorCode::kTimeout:
      return Reason::kTimeout;
    case core::ErrorCode::kConnect:
      return Reason::kConnect;
    case core::ErrorCode::kBadResponse:
      return Reason::kBadResponse;
    case core::ErrorCode::kBrokenStream:
      return Reason::kBrokenStream;
    case core::ErrorCode::kRejected:
      return Reason::kRejected;
    default:
      return Reason::kUpstreamError;
  }
}

bool is_retryable(const core::Error& error) {
  switch (error.code) {
    case core::ErrorCode::kRateLimited:
    case core::ErrorCode::kConnect:
      return true;
    case core::ErrorCode::kUpstream:
      return error.upstream_status >= 500;
    default:
      return false;
  }
}

Router::Router(const config::Config& config,
               const std::vector<std::unique_ptr<providers::Provider>>& providers,
               telemetry::Registry& registry, ledger::SpendStore& spend, const core::Clock& clock,
               core::Logger* logger, telemetry::Hooks* hooks)
    : metrics_(telemetry::Metrics::declare(registry)),
      client_retries_total_(registry.declare(
          telemetry::FamilyDef{"backstop_client_retries_total",
                               "Requests that were a client sending the same conversation again.",
                               telemetry::MetricType::kCounter,
                               {"workload"},
                               {}})),
      hedges_total_(registry.declare(telemetry::FamilyDef{
          "backstop_hedges_total",
          "Hedged requests (a slow call raced by the next target) by which call won.",
          telemetry::MetricType::kCounter,
          {"workload", "winner"},
          {}})),
      shadow_verdicts_total_(registry.declare(telemetry::FamilyDef{
          "backstop_shadow_verdicts_total",
          "Shadow calls to a candidate provider by verdict: pass, fail (reason), or dropped "
          "(no place left).",
          telemetry::MetricType::kCounter,
          {"workload", "provider", "result", "reason"},
          {}})),
      shadow_fallback_ratio_(registry.declare(telemetry::FamilyDef{
          "backstop_shadow_fallback_ratio",
          "The share of a workload's shadow calls that would have fallen back, over the recent "
          "window that bands use.",
          telemetry::MetricType::kGauge,
          {"workload", "provider"},
          {}})),
      spend_(spend),
      clock_(clock) {
  // One secret per process: conversation hashes mean nothing outside it.
  const HashKey session_key = HashKey::random();
  for (const config::Provider& pc : config.providers) {
    if (pc.breaker)
      breakers_.push_back(std::make_unique<Breaker>(pc.name, *pc.breaker, clock, logger, hooks));
  }
  for (const auto& p : providers) {
    latencies_.push_back(std::make_unique<LatencyWindow>());
    const config::Provider* pc = config.find_provider(p->name());
    in_flight_.push_back(std::make_unique<InFlight>(pc ? pc->max_in_flight : 0));
  }
  auto breaker_of = [this](const std::string& name) -> Breaker* {
    for (const auto& b : breakers_) {
      if (b->provider() == name) return b.get();
    }
    return nullptr;
  };
  for (const config::Workload& wc : config.workloads) {
    auto w = std::make_unique<Workload>();
    w->name = wc.name;
    for (const std::string& name : wc.route) {
      for (std::size_t k = 0; k < providers.size(); ++k) {
        if (providers[k]->name() != name) continue;
        const config::Provider* pc = config.find_provider(name);
        w->route.push_back({providers[k].get(), pc ? to_ledger_price(pc->price) : ledger::Price{},
                            breaker_of(name), latencies_[k].get(), in_flight_[k].get()});
      }
    }
    w->hedge = wc.hedge;
    for (std::size_t k = 0; wc.shadow && k < providers.size(); ++k) {
      if (providers[k]->name() != wc.shadow->provider) continue;
      const config::Provider* pc = config.find_provider(wc.shadow->provider);
      w->shadow = std::make_unique<ShadowTraffic>(*wc.shadow, *providers[k],
                                                  pc ? to_ledger_price(pc->price) : ledger::Price{},
                                                  *in_flight_[k], wc.bands.window_s);
    }
    if (wc.validate.enabled) w->validator = validation::make_validator(to_spec(wc.validate));
    w->retries = wc.retries;
    w->deadline = std::chrono::milliseconds(wc.deadline_ms);
    w->bands = wc.bands;
    w->stream_mode = wc.stream_mode;
    w->window = std::make_unique<FallbackWindow>(wc.bands.window_s);
    // Bypassing needs somewhere to go: a one-target route only reports.
    if (wc.adapt && w->route.size() > 1) {
      w->adapt = std::make_unique<RouteAdapt>(wc.name, *wc.adapt, wc.bands.window_s, logger, hooks);
    }
    if (wc.sessions) w->sessions = std::make_unique<ClientRetries>(*wc.sessions, session_key);
    workloads_.push_back(std::move(w));
  }
  registry.gauge_source(metrics_.route_state, [this] {
    std::vector<std::pair<std::vector<std::string>, double>> samples;
    for (const auto& w : workloads_) {
      const RouteState now = w->adapt ? w->adapt->state() : RouteState::kNormal;
      for (RouteState s : {RouteState::kNormal, RouteState::kBypass}) {
        samples.push_back({{w->name, std::string(to_string(s))}, s == now ? 1.0 : 0.0});
      }
    }
    return samples;
  });
  registry.gauge_source(metrics_.breaker_state, [this] {
    std::vector<std::pair<std::vector<std::string>, double>> samples;
    for (const auto& b : breakers_) {
      const BreakerState now = b->state();
      for (BreakerState s : {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen}) {
        samples.push_back({{b->provider(), std::string(to_string(s))}, s == now ? 1.0 : 0.0});
      }
    }
    return samples;
  });
  registry.gauge_source(shadow_fallback_ratio_, [this] {
    std::vector<std::pair<std::vector<std::string>, double>> samples;
    std::int64_t now = clock_.unix_ms();
    for (const auto& w : workloads_) {
      if (!w->shadow) continue;
      samples.push_back({{w->name, w->shadow->provider().name()}, w->shadow->window().ratio(now)});
    }
    return samples;
  });
  registry.gauge_source(metrics_.fallback_ratio, [this] {
    std::vector<std::pair<std::vector<std::string>, double>> samples;
    std::int64_t now = clock_.unix_ms();
    for (const auto& w : workloads_) samples.push_back({{w->name}, w->window->ratio(now)});
    return samples;
  });
}

const Workload* Router::find(std::string_view name) const {
  for (const auto& w : workloads_) {
    if (w->name == name) return w.get();
  }
  return nullptr;
}

void Router::count_rejected(telemetry::Shard& shard, std::string_view workload,
                            std::string_view request_id, std::string_view key_name) const {
  shard.add(metrics_.requests_total, {workload, to_string(Outcome::kRejected)});
  ledger::RequestRow row;
  row.request_id = request_id;
  row.key_name = key_name;
  row.unix_ms = clock_.unix_ms();
  row.workload = workload;
  row.outcome = to_string(Outcome::kRejected);
  spend_.record(std::move(row));
}

void Router::account(const Workload& workload, const Target& target, const chat::Usage& usage,
                     Attempt& attempt, RouteResult& result, telemetry::Shard& m) const {
  const providers::Provider& provider = *target.provider;
  const std::string& model = provider.model();
  attempt.usage = usage;
  attempt.cost_micro_usd = ledger::cost_micro_usd(usage, target.price);
  m.add(metrics_.spend_usd_total, {workload.name, provider.name(), model},
        static_cast<double>(attempt.cost_micro_usd) / kMicrosPerUsd);
  m.add(metrics_.tokens_total, {provider.name(), model, "input"},
        static_cast<double>(usage.input_tokens));
  m.add(metrics_.tokens_total, {provider.name(), model, "cached_input"},
        static_cast<double>(usage.cached_input_tokens));
  m.add(metrics_.tokens_total, {provider.name(), model, "output"},
        static_cast<double>(usage.output_tokens));
  result.usage.input_tokens += usage.input_tokens;
  result.usage.cached_input_tokens += usage.cached_input_tokens;
  result.usage.cache_creation_input_tokens += usage.cache_creation_input_tokens;
  result.usage.output_tokens += usage.output_tokens;
  result.cost_micro_usd += attempt.cost_micro_usd;
}

void Router::fail_attempt(const Workload& workload, const providers::Provider& provider,
                          Attempt attempt, bool validation_failure, RouteResult& result,
                          telemetry::Shard& m) const {
  m.add(metrics_.attempts_total, {workload.name, provider.name(), "fail"});
  if (validation_failure) {
    m.add(metrics_.validation_failures_total,
          {workload.name, provider.name(), validation::to_string(attempt.reason)});
  }
  result.attempts.push_back(std::move(attempt));
}

void Router::count_fallback(const Workload& workload, std::size_t from, std::size_t to,
                            Reason reason, RouteResult& result, telemetry::Shard& m) const {
  if (!result.fallback_reason) result.fallback_reason = reason;
  if (to < workload.route.size()) {
    m.add(metrics_.fallbacks_total,
          {workload.name, workload.route[from].provider->name(),
           workload.route[to].provider->name(), validation::to_string(reason)});
  }
}

void Router::conclude(const Workload& workload, Turn turn, core::Clock::TimePoint started,
                      std::string_view request_id, RouteResult& result, telemetry::Shard& m,
                      std::string_view key_name) const {
  result.duration_ms = core::elapsed_ms(started, clock_.now());
  std::string_view outcome = to_string(result.outcome);
  m.add(metrics_.requests_total, {workload.name, outcome});
  m.observe(metrics_.request_duration_seconds, {workload.name, outcome},
            result.duration_ms / 1000.0);
  const std::int64_t now_ms = clock_.unix_ms();
  // A rejected request says nothing of the primary: it stays out of the fallback rate.
  if (result.outcome != Outcome::kRejected) {
    workload.window->record(now_ms, result.outcome != Outcome::kPrimary);
    if (workload.adapt) {
      if (turn == Turn::kProbe)
        workload.adapt->record_probe(now_ms, result.outcome != Outcome::kPrimary);
      workload.adapt->judge(*workload.window, now_ms);
    }
  }
  spend_.record(ledger_row(workload, request_id, key_name, now_ms, result));
}

net::awaitable<void> Router::backoff(const Workload& workload, int retry, const core::Error& error,
                                     WorkerContext& worker) const {
  std::int64_t delay = retry_delay_ms(workload.retries, retry, error, worker.rng);
  if (delay <= 0) co_return;
  net::steady_timer timer(worker.loop);
  timer.expires_after(std::chrono::milliseconds(delay));
  core::Cancellation::Subscription gone;
  if (worker.cancel != nullptr) gone = worker.cancel->subscribe([&timer] { timer.cancel(); });
  co_await timer.async_wait(net::as_tuple(net::use_awaitable));
}

namespace {

Attempt begin_attempt(const providers::Provider& provider, double latency_ms) {
  Attempt a;
  a.provider = provider.name();
  a.model = provider.model();
  a.stack = provider.stack();
  a.latency_ms = latency_ms;
  return a;
}

Attempt& with_error(Attempt& a, const core::Error& error) {
  a.reason = reason_of(error);
  a.status = error.upstream_status;
  a.detail = error.message;
  return a;
}

// The replays of the call just made (the request sent again on a fresh connection after a
// pooled one failed), each an attempt that failed with reason connect.
std::vector<Attempt> take_replays(const providers::Provider& provider,
                                  providers::CallContext& call) {
  std::vector<Attempt> out;
  for (core::Error& error : call.replays) {
    Attempt a = begin_attempt(provider, 0);
    a.reason = Reason::kConnect;
    a.detail = "replayed on a fresh connection: " + std::move(error.message);
    out.push_back(std::move(a));
  }
  call.replays.clear();
  return out;
}

}  // namespace

// The route's walk against its deadline and its client: what the next call may take.
struct Walk {
  const core::Clock& clock;
  core::Clock::TimePoint deadline;
  const core::Cancellation* cancel;
  std::size_t last_target;  // the last target that carries the request

  // True once nothing more may be tried: the deadline passed or the client went away.
  [[nodiscard]] bool over() const {
    return (cancel != nullptr && cancel->requested()) || clock.now() >= deadline;
  }
  [[nodiscard]] bool client_gone() const { return cancel != nullptr && cancel->requested(); }
  // Sets the call's budget and first-token limit for route[t].
  void prepare(providers::CallContext& call, std::size_t t) const {
    call.budget = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.now());
    call.first_token_limit = t != last_target;
  }
};

namespace {

Walk walk_of(const Workload& workload, const std::vector<std::size_t>& order,
             const chat::ChatRequest& request, const core::Clock& clock,
             const core::Cancellation* cancel) {
  std::size_t last = 0;
  for (std::size_t t : order) {
    if (workload.route[t].provider->carries(request)) last = t;
  }
  return Walk{clock, clock.now() + workload.deadline, cancel, last};
}

// Whether a target after the primary carries the request.
bool later_carries(const Workload& workload, const chat::ChatRequest& request) {
  return std::any_of(workload.route.begin() + 1, workload.route.end(),
                     [&request](const Target& t) { return t.provider->carries(request); });
}

// The order the route is walked in on this turn: the next target first when bypassing, the
// primary left out when escalated, the first target alone when a spent budget cut the route.
std::vector<std::size_t> order_of(const Workload& workload, Turn turn, bool primary_only) {
  std::vector<std::size_t> order(primary_only ? 1 : workload.route.size());
  for (std::size_t t = 0; t < order.size(); ++t) order[t] = t;
  if (turn == Turn::kBypass && order.size() > 1) std::swap(order[0], order[1]);
  if (turn == Turn::kEscalate && order.size() > 1) order.erase(order.begin());
  return order;
}

// The ledger's mark of a primary skipped for a client retry: an attempt that cost nothing
// and took no time, with reason retry, so that the ledger and the report show it.
Attempt skipped_for_retry(const providers::Provider& primary) {
  Attempt a;
  a.provider = primary.name();
  a.model = primary.model();
  a.reason = Reason::kRetry;
  a.detail = "skipped: the session's client retries escalated it to the fallback";
  return a;
}

// The order index of the target a hedge of order[i] would start: the next one that carries
// the request; npos when the workload does not hedge or there is none.
std::size_t partner_of(const Workload& workload, const std::vector<std::size_t>& order,
                       std::size_t i, const chat::ChatRequest& request) {
  if (!workload.hedge) return std::string::npos;
  for (std::size_t j = i + 1; j < order.size(); ++j) {
    if (workload.route[order[j]].provider->carries(request)) return j;
  }
  return std::string::npos;
}

// Asks route[t]'s breaker for a call. kSkip on the last target that carries the request
// still calls it (unbooked): better an attempt than failing with none.
Admission admit(const Target& target) {
  return target.breaker == nullptr ? Admission::kPass : target.breaker->admit();
}

// The target after order[i]; npos at the end.
std::size_t next_of(const std::vector<std::size_t>& order, std::size_t i) {
  return i + 1 < order.size() ? order[i + 1] : std::string::npos;
}

// Tells route[t]'s breaker how an admitted call ended. A failure once the deadline passed or
// the client left is not held against the provider: the walk cut it.
void book(const Target& target, Admission admission, bool transport_ok, const Walk& walk,
          bool refused = false) {
  if (target.breaker == nullptr) return;
  // A call refused here (max_in_flight) or cut by the walk says nothing of the provider.
  if (refused || (!transport_ok && walk.over())) {
    target.breaker->release(admission);
    return;
  }
  target.breaker->record(admission, transport_ok);
}

}  // namespace

Turn Router::open_turn(const Workload& workload, const chat::ChatRequest& request,
                       WorkerContext& worker, RouteResult& result) const {
  if (workload.sessions) {
    const SessionVerdict session =
        workload.sessions->observe(request, worker.client, clock_.unix_ms());
    result.client_retry = session.retry;
    if (session.retry) worker.metrics.add(client_retries_total_, {workload.name});
    // A route cut to its primary by a spent budget has no fallback to escalate to.
    if (session.escalated && !worker.primary_only && later_carries(workload, request)) {
      result.escalated = true;
      result.attempts.push_back(skipped_for_retry(*workload.route[0].provider));
      result.fallback_reason = Reason::kRetry;
      const std::size_t to = workload.route.size() > 1 ? 1 : std::string::npos;
      count_fallback(workload, 0, to, Reason::kRetry, result, worker.metrics);
      return Turn::kEscalate;
    }
  }
  Turn turn = workload.adapt ? workload.adapt->next() : Turn::kNormal;
  // A bypass needs a next target that carries the request, and a route cut to its primary
  // has none.
  if (turn == Turn::kBypass &&
      (worker.primary_only || !workload.route[1].provider->carries(request))) {
    turn = Turn::kNormal;
  }
  result.bypassed = turn == Turn::kBypass;
  return turn;
}

void Router::observe_latency(const Target& target, double latency_ms, telemetry::Shard& m) const {
  m.observe(metrics_.upstream_duration_seconds, {target.provider->name()}, latency_ms / 1000.0);
  if (target.latency != nullptr) target.latency->record(clock_.unix_ms(), latency_ms);
}

bool Router::book_leg(const Workload& workload, const chat::ChatRequest& request, std::size_t t,
                      HedgeLeg& leg, Admission admission, bool wins, const Walk& walk,
                      WorkerContext& worker, RouteResult& result, Reason& reason) const {
  telemetry::Shard& m = worker.metrics;
  const Target& target = workload.route[t];
  providers::Provider& provider = *target.provider;
  // A call cancelled because the other one won proves nothing about its provider.
  const bool refused = !*leg.answer && is_local_refusal(leg.answer->error());
  if ((leg.lost && !*leg.answer) || refused) {
    if (target.breaker != nullptr) target.breaker->release(admission);
  } else {
    book(target, admission, *leg.answer || !is_transport_failure(leg.answer->error()), walk);
  }
  Attempt attempt = begin_attempt(provider, leg.latency_ms);
  observe_latency(target, leg.latency_ms, m);
  if (leg.skipped_events > 0) {
    m.add(metrics_.stream_events_skipped_total, {provider.name()},
          static_cast<double>(leg.skipped_events));
  }
  for (Attempt& replay : take_replays(provider, leg.call)) {
    fail_attempt(workload, provider, std::move(replay), false, result, m);
  }
  if (!*leg.answer) {
    with_error(attempt, leg.answer->error());
    if (leg.lost) {
      attempt.reason = Reason::kTimeout;
      attempt.detail = "cancelled: the other call of the hedge passed first";
    }
    reason = attempt.reason;
    fail_attempt(workload, provider, std::move(attempt), false, result, m);
    return false;
  }
  // The answer arrived: its tokens were paid for, whichever call won.
  attempt.status = 200;
  account(workload, target, (*leg.answer)->usage, attempt, result, m);
  if (!leg.verdict) {
    leg.verdict = workload.validator
                      ? workload.validator->check(request, **leg.answer, worker.schemas)
                      : validation::Verdict::ok();
  }
  if (!leg.verdict->pass) {
    attempt.reason = reason = leg.verdict->reason;
    attempt.detail = leg.verdict->detail;
    fail_attempt(workload, provider, std::move(attempt), true, result, m);
    return false;
  }
  attempt.pass = true;
  m.add(metrics_.attempts_total, {workload.name, provider.name(), "pass"});
  result.attempts.push_back(std::move(attempt));
  if (!wins) return false;
  result.response = std::move(**leg.answer);
  result.served_by = &target;
  result.outcome = t == 0 ? Outcome::kPrimary : Outcome::kFallback;
  return true;
}

net::awaitable<Router::HedgeEnd> Router::hedged(const Workload& workload,
                                                const chat::ChatRequest& request,
                                                const std::vector<std::size_t>& order,
                                                std::size_t i, std::size_t j,
                                                std::chrono::milliseconds after, const Walk& walk,
                                                WorkerContext& worker, std::string_view request_id,
                                                RouteResult& result, LegKind kind) const {
  HedgeEnd end;
  const std::size_t t = order[i];
  const std::size_t h = order[j];
  const Admission first_admission = admit(workload.route[t]);
  if (first_admission == Admission::kSkip && t != walk.last_target) co_return end;
  end.tried = true;
  Admission second_admission = Admission::kSkip;
  // On the heap: a stream that began outlives this call, and reads through its leg's context.
  auto first = std::make_unique<HedgeLeg>(worker.loop, worker.connections, clock_, request_id,
                                          worker.cancel);
  auto second = std::make_unique<HedgeLeg>(worker.loop, worker.connections, clock_, request_id,
                                           worker.cancel);
  first->kind = second->kind = kind;
  walk.prepare(first->call, t);
  HedgePair pair;
  pair.first = workload.route[t].provider;
  pair.second = workload.route[h].provider;
  pair.first_in_flight = workload.route[t].in_flight;
  pair.second_in_flight = workload.route[h].in_flight;
  pair.first_leg = first.get();
  pair.second_leg = second.get();
  pair.after = after;
  pair.may_start_second = [&] {
    if (walk.over()) return false;
    second_admission = admit(workload.route[h]);
    if (second_admission == Admission::kSkip && h != walk.last_target) return false;
    walk.prepare(second->call, h);
    return true;
  };
  // A stream passed on as it comes is not checked: the first to begin wins.
  pair.check = [&](const chat::ChatResponse& answer) {
    return workload.validator && kind != LegKind::kFirstEvents
               ? workload.validator->check(request, answer, worker.schemas)
               : validation::Verdict::ok();
  };
  const HedgeWinner winner = co_await race(worker.loop, request, std::move(pair), clock_);
  end.second_started = second->started;
  if (first->answer && !*first->answer) end.first_error = first->answer->error();
  const bool pass_through = kind == LegKind::kFirstEvents && winner != HedgeWinner::kNone;
  if (pass_through) {
    const bool hedge_won = winner == HedgeWinner::kHedge;
    end.opened_at = hedge_won ? j : i;
    end.opened_admission = hedge_won ? second_admission : first_admission;
    if (!hedge_won) {
      if (second->started) {
        book_leg(workload, request, h, *second, second_admission, false, walk, worker, result,
                 end.second_reason);
      }
    } else {
      book_leg(workload, request, t, *first, first_admission, false, walk, worker, result,
               end.first_reason);
    }
    end.opened = hedge_won ? std::move(second) : std::move(first);
  } else {
    if (winner == HedgeWinner::kFirst) end.held = std::move(first->held);
    end.served = book_leg(workload, request, t, *first, first_admission,
                          winner == HedgeWinner::kFirst, walk, worker, result, end.first_reason);
    if (second->started) {
      end.served =
          book_leg(workload, request, h, *second, second_admission, winner == HedgeWinner::kHedge,
                   walk, worker, result, end.second_reason) ||
          end.served;
      if (winner == HedgeWinner::kHedge) end.held = std::move(second->held);
    }
  }
  // The hedge served: the request fell back from the slow first target.
  if (winner == HedgeWinner::kHedge) {
    count_fallback(workload, t, h, end.first_reason, result, worker.metrics);
  }
  if (end.second_started && winner != HedgeWinner::kNone) {
    worker.metrics.add(hedges_total_,
                       {workload.name, winner == HedgeWinner::kFirst ? "first" : "hedge"});
  }
  co_return end;
}

net::awaitable<Router::AfterHedge> Router::after_hedge(
    const Workload& workload, const std::vector<std::size_t>& order, std::size_t& i, std::size_t j,
    const HedgeEnd& end, const Walk& walk, WorkerContext& worker, RouteResult& result) const {
  if (walk.over()) co_return AfterHedge::kStop;
  if (!end.tried) co_return AfterHedge::kNext;
  // A quick failure before any hedge started is retried as without hedging.
  if (!end.second_started && end.first_error && is_retryable(*end.first_error) &&
      workload.retries.max > 0) {
    co_await backoff(workload, 0, *end.first_error, worker);
    co_return walk.over() ? AfterHedge::kStop : AfterHedge::kRetryFirst;
  }
  // Both calls failed (or the second never started): the route goes on after them.
  count_fallback(workload, order[i], end.second_started ? order[j] : next_of(order, i),
                 end.first_reason, result, worker.metrics);
  if (end.second_started) {
    count_fallback(workload, order[j], next_of(order, j), end.second_reason, result,
                   worker.metrics);
    i = j;
  }
  co_return AfterHedge::kNext;
}

void Router::start_shadow(const Workload& workload, const chat::ChatRequest& request,
                          WorkerContext& worker, std::string_view request_id) const {
  if (!workload.shadow || !workload.shadow->sampled()) return;
  if (!workload.shadow->provider().carries(request)) return;
  ShadowTraffic::Places places = workload.shadow->try_start();
  if (!places) {
    worker.metrics.add(shadow_verdicts_total_,
                       {workload.name, workload.shadow->provider().name(), "dropped", ""});
    return;
  }
  // The copy shares the request's JSON arena, so it outlives the request.
  auto copy = std::make_shared<chat::ChatRequest>(request);
  copy->stream = false;
  net::co_spawn(
      worker.loop,
      run_shadow(&workload, std::move(copy),
                 ShadowWorker{&worker.loop, &worker.connections, &worker.metrics, &worker.schemas},
                 std::string(request_id), std::string(worker.key_name), std::move(places)),
      net::detached);
}

net::awaitable<void> Router::run_shadow(const Workload* workload,
                                        std::shared_ptr<const chat::ChatRequest> request,
                                        ShadowWorker worker, std::string request_id,
                                        std::string key_name, ShadowTraffic::Places places) const {
  const ShadowTraffic& shadow = *workload->shadow;
  providers::Provider& provider = shadow.provider();
  const auto t0 = clock_.now();
  const std::int64_t started_ms = clock_.unix_ms();
  providers::CallContext call{*worker.loop, *worker.connections, clock_, request_id};
  call.budget = workload->deadline;
  call.first_token_limit = false;
  core::Result<chat::ChatResponse> answer = co_await provider.complete(*request, call);
  places = {};
  Attempt attempt = begin_attempt(provider, core::elapsed_ms(t0, clock_.now()));
  telemetry::Shard& m = *worker.metrics;
  if (!answer) {
    with_error(attempt, answer.error());
  } else {
    attempt.status = 200;
    attempt.usage = answer->usage;
    attempt.cost_micro_usd = ledger::cost_micro_usd(answer->usage, shadow.price());
    m.add(metrics_.spend_usd_total, {workload->name, provider.name(), provider.model()},
          static_cast<double>(attempt.cost_micro_usd) / kMicrosPerUsd);
    validation::Verdict verdict =
        workload->validator ? workload->validator->check(*request, *answer, *worker.schemas)
                            : validation::Verdict::ok();
    attempt.pass = verdict.pass;
    attempt.reason = verdict.reason;
  }
  m.add(shadow_verdicts_total_, {workload->name, provider.name(), attempt.pass ? "pass" : "fail",
                                 attempt.pass ? "" : validation::to_string(attempt.reason)});
  const std::int64_t now_ms = clock_.unix_ms();
  shadow.window().record(now_ms, !attempt.pass);
  ledger::RequestRow row{std::move(request_id),
                         started_ms,
                         static_cast<std::int64_t>(attempt.latency_ms + 0.5),
                         workload->name,
                         std::move(key_name),
                         "shadow",
                         "",
                         {attempt_row(attempt)}};
  spend_.record(std::move(row));
}

bool Router::carried(const Workload& workload, const chat::ChatRequest& request) {
  return std::any_of(workload.route.begin(), workload.route.end(),
                     [&request](const Target& t) { return t.provider->carries(request); });
}

net::awaitable<RouteResult> Router::route(const Workload& workload,
                                          const chat::ChatRequest& request, WorkerContext& worker,
                                          std::string_view request_id) const {
  RouteResult result;
  telemetry::Shard& m = worker.metrics;
  const auto started = clock_.now();
  providers::CallContext call{worker.loop, worker.connections, clock_, request_id};
  call.cancel = worker.cancel;
  const Turn turn = open_turn(workload, request, worker, result);
  start_shadow(workload, request, worker, request_id);
  const std::vector<std::size_t> order = order_of(workload, turn, worker.primary_only);
  const Walk walk = walk_of(workload, order, request, clock_, worker.cancel);

  for (std::size_t i = 0; i < order.size() && !walk.over(); ++i) {
    const std::size_t t = order[i];
    const Target& target = workload.route[t];
    providers::Provider& provider = *target.provider;
    // What only the client's dialect carries goes past targets of another, untried.
    if (!provider.carries(request)) continue;
    Reason final_reason = Reason::kUpstreamError;
    bool served = false;
    bool tried = false;
    int first_retry = 0;  // 1 when a hedged first call already made try 0

    if (const std::size_t j = partner_of(workload, order, i, request); j != std::string::npos) {
      const std::optional<std::chrono::milliseconds> after = hedge_delay(
          workload.hedge->p95, workload.hedge->after_ms, target.latency, clock_.unix_ms());
      if (after) {
        const HedgeEnd end = co_await hedged(workload, request, order, i, j, *after, walk, worker,
                                             request_id, result);
        if (end.served) break;
        const AfterHedge next =
            co_await after_hedge(workload, order, i, j, end, walk, worker, result);
        if (next == AfterHedge::kStop) break;
        if (next == AfterHedge::kNext) continue;
        first_retry = 1;
        tried = true;
        final_reason = end.first_reason;
      }
    }

    for (int retry = first_retry;; ++retry) {
      const Admission admission = admit(target);
      // An open breaker skips the target: no attempt, no latency.
      if (admission == Admission::kSkip && t != walk.last_target) break;
      tried = true;
      const auto t0 = clock_.now();
      walk.prepare(call, t);
      core::Result<chat::ChatResponse> answer =
          co_await bounded_complete(provider, target.in_flight, request, call);
      book(target, admission, answer || !is_transport_failure(answer.error()), walk,
           !answer && is_local_refusal(answer.error()));
      Attempt attempt = begin_attempt(provider, core::elapsed_ms(t0, clock_.now()));
      observe_latency(target, attempt.latency_ms, m);
      for (Attempt& replay : take_replays(provider, call)) {
        fail_attempt(workload, provider, std::move(replay), false, result, m);
      }

      if (!answer) {
        final_reason = reason_of(answer.error());
        fail_attempt(workload, provider, std::move(with_error(attempt, answer.error())), false,
                     result, m);
        if (answer.error().code == core::ErrorCode::kRejected) {
          result.rejection = answer.error();  // the request's own fault: no target is tried
          break;
        }
        if (is_retryable(answer.error()) && retry < workload.retries.max && !walk.over()) {
          co_await backoff(workload, retry, answer.error(), worker);
          if (!walk.over()) continue;
        }
        break;
      }

      // The answer arrived: its tokens were paid for whatever the checks say.
      attempt.status = 200;
      account(workload, target, answer->usage, attempt, result, m);
      validation::Verdict verdict =
          workload.validator ? workload.validator->check(request, *answer, worker.schemas)
                             : validation::Verdict::ok();
      if (verdict.pass) {
        attempt.pass = true;
        m.add(metrics_.attempts_total, {workload.name, provider.name(), "pass"});
        result.attempts.push_back(std::move(attempt));
        result.response = std::move(*answer);
        result.served_by = &target;
        result.outcome = t == 0 ? Outcome::kPrimary : Outcome::kFallback;
        served = true;
        break;
      }
      attempt.reason = verdict.reason;
      attempt.detail = std::move(verdict.detail);
      final_reason = verdict.reason;
      fail_attempt(workload, provider, std::move(attempt), true, result, m);
      break;  // a wrong answer is not retried on the same target
    }
    if (served || result.rejection || walk.over()) break;
    if (tried) count_fallback(workload, t, next_of(order, i), final_reason, result, m);
  }

  if (result.rejection) {
    result.outcome = Outcome::kRejected;
  } else if (!result.served_by) {
    result.outcome = Outcome::kFailed;
  }
  conclude(workload, turn, started, request_id, result, m, worker.key_name);
  co_return result;
}

net::awaitable<RouteResult> Router::route_stream(const Workload& workload,
                                                 const chat::ChatRequest& request,
                                                 WorkerContext& worker, std::string_view request_id,
                                                 StreamSink& sink) const {
  RouteResult result;
  telemetry::Shard& m = worker.metrics;
  const auto started = clock_.now();
  providers::CallContext call{worker.loop, worker.connections, clock_, request_id};
  call.cancel = worker.cancel;
  const Turn turn = open_turn(workload, request, worker, result);
  start_shadow(workload, request, worker, request_id);
  const std::vector<std::size_t> order = order_of(workload, turn, worker.primary_only);
  const Walk walk = walk_of(workload, order, request, clock_, worker.cancel);
  // Held until the end: always in buffer mode, for the checks in auto mode, never in pass.
  const bool buffered =
      workload.stream_mode == config::StreamMode::kBuffer ||
      (workload.stream_mode == config::StreamMode::kAuto && workload.validator != nullptr);
  const bool checked = buffered && workload.validator != nullptr;
  bool finish_pending = false;  // the stream's clean end is written after the books close

  for (std::size_t i = 0;
       i < order.size() && !result.stream_started && !result.rejection && !walk.over(); ++i) {
    // What only the client's dialect carries goes past targets of another, untried.
    if (!workload.route[order[i]].provider->carries(request)) continue;
    Reason final_reason = Reason::kUpstreamError;
    bool tried = false;
    int first_retry = 0;  // 1 when a hedged first call already made try 0
    // A stream that began in a hedge, read on below as any other, with its breaker's admission.
    std::unique_ptr<HedgeLeg> begun;
    Admission begun_admission = Admission::kPass;

    // A stream is hedged until its first byte: a held one until a call has passed, one
    // passed on as it comes until a call's first events.
    const std::size_t j = partner_of(workload, order, i, request);
    const std::optional<std::chrono::milliseconds> after =
        j == std::string::npos ? std::nullopt
                               : hedge_delay(workload.hedge->p95, workload.hedge->after_ms,
                                             workload.route[order[i]].latency, clock_.unix_ms());
    if (after) {
      HedgeEnd end =
          co_await hedged(workload, request, order, i, j, *after, walk, worker, request_id, result,
                          buffered ? LegKind::kStream : LegKind::kFirstEvents);
      if (end.served) {
        result.stream_started = true;
        if (!co_await sink.begin(result) || !co_await sink.send(end.held)) {
          result.client_gone = true;
        } else {
          finish_pending = true;
        }
        break;
      }
      if (end.opened) {
        // The target whose stream began first serves; the walk reads on at its place.
        i = end.opened_at;
        begun = std::move(end.opened);
        begun_admission = end.opened_admission;
        tried = true;
      } else {
        const AfterHedge next =
            co_await after_hedge(workload, order, i, j, end, walk, worker, result);
        if (next == AfterHedge::kStop) break;
        if (next == AfterHedge::kNext) continue;
        first_retry = 1;
        tried = true;
        final_reason = end.first_reason;
      }
    }
    const std::size_t t = order[i];
    const Target& target = workload.route[t];
    providers::Provider& provider = *target.provider;

    HedgeLeg* resume = begun.get();  // read on first, once
    for (int retry = first_retry;; ++retry) {
      HedgeLeg* leg = std::exchange(resume, nullptr);
      const Admission admission = leg != nullptr ? begun_admission : admit(target);
      // An open breaker skips the target: no attempt, no latency.
      if (admission == Admission::kSkip && t != walk.last_target && leg == nullptr) break;
      tried = true;
      const auto t0 = leg != nullptr ? leg->started_at : clock_.now();
      // The provider's place is held until its stream is closed.
      InFlight::Slot slot;
      core::Result<std::unique_ptr<providers::EventStream>> opened =
          std::unexpected(saturated(provider, target.in_flight->max()));
      std::vector<chat::StreamEvent> pending;  // events read before the loop below
      if (leg != nullptr) {
        // Null when the stream already ended with its first events.
        opened = std::move(leg->upstream);
        slot = std::move(leg->slot);
        pending = std::move(leg->held);
      } else {
        walk.prepare(call, t);
        slot = target.in_flight->try_acquire();
        // Not a conditional expression: GCC miscompiles co_await inside one.
        if (slot) opened = co_await provider.stream(request, call);
      }
      if (!opened) {
        book(target, admission, !is_transport_failure(opened.error()), walk,
             is_local_refusal(opened.error()));
      }
      for (Attempt& replay : take_replays(provider, leg != nullptr ? leg->call : call)) {
        fail_attempt(workload, provider, std::move(replay), false, result, m);
      }
      if (!opened) {
        Attempt attempt = begin_attempt(provider, core::elapsed_ms(t0, clock_.now()));
        observe_latency(target, attempt.latency_ms, m);
        final_reason = reason_of(opened.error());
        fail_attempt(workload, provider, std::move(with_error(attempt, opened.error())), false,
                     result, m);
        if (opened.error().code == core::ErrorCode::kRejected) {
          result.rejection = opened.error();  // the request's own fault: no target is tried
          break;
        }
        if (is_retryable(opened.error()) && retry < workload.retries.max && !walk.over()) {
          co_await backoff(workload, retry, opened.error(), worker);
          if (!walk.over()) continue;
        }
        break;
      }
      std::unique_ptr<providers::EventStream> upstream = std::move(*opened);
      chat::StreamAssembler assembled;
      std::vector<chat::StreamEvent> held;
      std::optional<core::Error> broke;
      bool sent_any = false;

      // Reads the upstream to its end: held back when checks must decide first, else
      // passed on as it comes.
      while (true) {
        core::Result<std::vector<chat::StreamEvent>> batch = std::move(pending);
        pending.clear();
        if (batch->empty() && upstream != nullptr) batch = co_await upstream->next();
        if (!batch) {
          broke = std::move(batch.error());
          break;
        }
        if (batch->empty()) break;
        assembled.add(*batch);
        if (buffered) {
          held.insert(held.end(), std::make_move_iterator(batch->begin()),
                      std::make_move_iterator(batch->end()));
          continue;
        }
        if (!sent_any) {
          RouteResult so_far = result;
          so_far.served_by = &target;
          so_far.outcome = t == 0 ? Outcome::kPrimary : Outcome::kFallback;
          so_far.attempts.push_back(begin_attempt(provider, 0));
          so_far.attempts.back().pass = true;
          sent_any = true;
          result.stream_started = true;
          if (!co_await sink.begin(so_far)) {
            result.client_gone = true;
            break;
          }
        }
        if (!co_await sink.send(*batch)) {
          result.client_gone = true;
          break;
        }
      }
      const std::int64_t skipped = upstream != nullptr ? upstream->skipped_events() : 0;
      if (skipped > 0) {
        m.add(metrics_.stream_events_skipped_total, {provider.name()},
              static_cast<double>(skipped));
      }
      upstream.reset();  // closes the upstream connection if it was not read to its end
      slot.release();
      book(target, admission, !broke || sent_any || !is_transport_failure(*broke), walk);
      if (walk.client_gone()) {
        result.client_gone = true;
        // The upstream was cut because the client left: what it had is the client's answer.
        if (sent_any) broke.reset();
      }

      Attempt attempt = begin_attempt(provider, core::elapsed_ms(t0, clock_.now()));
      observe_latency(target, attempt.latency_ms, m);
      attempt.status = 200;
      account(workload, target, assembled.response().usage, attempt, result, m);

      if (broke && !sent_any) {
        // Nothing reached the client: this is an ordinary failure of this target.
        final_reason = reason_of(*broke);
        with_error(attempt, *broke);
        attempt.status = broke->upstream_status;
        fail_attempt(workload, provider, std::move(attempt), false, result, m);
        if (is_retryable(*broke) && retry < workload.retries.max && !walk.over()) {
          co_await backoff(workload, retry, *broke, worker);
          if (!walk.over()) continue;
        }
        break;
      }
      if (broke) {
        // The client has part of an answer: end it with an explicit error, never a clean end.
        with_error(attempt, *broke);
        fail_attempt(workload, provider, std::move(attempt), false, result, m);
        result.outcome = Outcome::kFailed;
        conclude(workload, turn, started, request_id, result, m, worker.key_name);
        co_await sink.abort(*broke);
        co_return result;
      }
      if (sent_any) {
        attempt.pass = true;
        m.add(metrics_.attempts_total, {workload.name, provider.name(), "pass"});
        result.attempts.push_back(std::move(attempt));
        result.served_by = &target;
        result.outcome = t == 0 ? Outcome::kPrimary : Outcome::kFallback;
        result.response = assembled.take();
        finish_pending = !result.client_gone;
        break;
      }

      validation::Verdict verdict =
          checked ? workload.validator->check(request, assembled.response(), worker.schemas)
                  : validation::Verdict::ok();
      if (!verdict.pass) {
        attempt.reason = verdict.reason;
        attempt.detail = std::move(verdict.detail);
        final_reason = verdict.reason;
        fail_attempt(workload, provider, std::move(attempt), true, result, m);
        break;  // a wrong answer is not retried on the same target
      }
      attempt.pass = true;
      m.add(metrics_.attempts_total, {workload.name, provider.name(), "pass"});
      result.attempts.push_back(std::move(attempt));
      result.served_by = &target;
      result.outcome = t == 0 ? Outcome::kPrimary : Outcome::kFallback;
      result.response = assembled.take();
      result.stream_started = true;
      // Replay at once: the client measures time to first byte from here.
      if (!co_await sink.begin(result) || !co_await sink.send(held)) {
        result.client_gone = true;
      } else {
        finish_pending = true;
      }
      break;
    }
    if (tried && !result.stream_started && !result.rejection && !walk.over()) {
      count_fallback(workload, t, next_of(order, i), final_reason, result, m);
    }
  }

  if (result.rejection) {
    result.outcome = Outcome::kRejected;
  } else if (!result.served_by) {
    result.outcome = Outcome::kFailed;
  }
  // Booked before the last bytes go out, so that a client that has read the whole stream
  // finds it in /metrics.
  conclude(workload, turn, started, request_id, result, m, worker.key_name);
  if (finish_pending) co_await sink.finish();
  co_return result;
}

}  // namespace backstop::routing
