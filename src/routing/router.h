#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat.h"
#include "config/config.h"
#include "core/cancellation.h"
#include "core/clock.h"
#include "core/log.h"
#include "ledger/ledger.h"
#include "providers/provider.h"
#include "routing/adaptive.h"
#include "routing/hedge.h"
#include "routing/sessions.h"
#include "routing/shadow.h"
#include "telemetry/registry.h"
#include "validation/validator.h"

namespace boost::asio {
class io_context;
}

namespace backstop::routing {

struct Walk;

// How a routed request ended (the `outcome` label).
enum class Outcome { kPrimary, kFallback, kFailed, kRejected };
[[nodiscard]] std::string_view to_string(Outcome outcome);

// The fallback-rate band of a workload.
enum class Band { kUnderused, kHealthy, kWatch, kMove };
[[nodiscard]] std::string_view to_string(Band band);  // under-used | healthy | watch | move
[[nodiscard]] Band band_of(double fallback_ratio, const config::Bands& bands);

// The fallback ratio over a recent window: 60 time buckets of window_s/60 seconds each,
// written by every worker with relaxed atomics (no lock on the request path).
class FallbackWindow {
 public:
  explicit FallbackWindow(std::int64_t window_s);
  // Records one routed request at `unix_ms`; fell_back: the primary did not serve it.
  void record(std::int64_t unix_ms, bool fell_back);
  // Fallbacks / requests over the window ending at unix_ms; 0 when there were none. With
  // since_ms, only the time buckets that began after it count.
  [[nodiscard]] double ratio(std::int64_t unix_ms, std::int64_t since_ms = 0) const;
  // Requests in the window (after since_ms, as for ratio).
  [[nodiscard]] std::int64_t requests(std::int64_t unix_ms, std::int64_t since_ms = 0) const;

 private:
  static constexpr int kBuckets = 60;
  struct Bucket {
    std::atomic<std::int64_t> epoch{-1};
    std::atomic<std::int64_t> requests{0};
    std::atomic<std::int64_t> fallbacks{0};
  };
  std::int64_t bucket_ms_;
  Bucket buckets_[kBuckets];
};

// One target of a route: a provider and what it costs.
struct Target {
  providers::Provider* provider = nullptr;
  ledger::Price price;
  Breaker* breaker = nullptr;        // the provider's, shared by every route; null: none
  LatencyWindow* latency = nullptr;  // the provider's recent call latencies
  InFlight* in_flight = nullptr;     // the provider's calls under way (max_in_flight)
};

// A workload: its route, checks (null: none), retry policy and bands.
struct Workload {
  std::string name;
  std::vector<Target> route;
  std::unique_ptr<validation::Validator> validator;
  config::Retries retries;
  std::chrono::milliseconds deadline{120'000};  // the whole request, every attempt included
  config::Bands bands;
  config::StreamMode stream_mode = config::StreamMode::kAuto;
  std::unique_ptr<FallbackWindow> window;
  std::unique_ptr<RouteAdapt> adapt;        // null: bands only report
  std::unique_ptr<ClientRetries> sessions;  // null: client retries are not tracked
  std::optional<config::Hedge> hedge;       // absent: no hedging
  std::unique_ptr<ShadowTraffic> shadow;    // null: no shadow traffic
};

// One try of one target.
struct Attempt {
  std::string provider;
  std::string model;
  bool pass = false;
  validation::Reason reason = validation::Reason::kUpstreamError;  // when !pass
  int status = 0;      // upstream HTTP status; 0 when none (simulated, connect errors)
  std::string detail;  // why it failed; no prompt or completion text
  double latency_ms = 0;
  chat::Usage usage;
  std::int64_t cost_micro_usd = 0;
  std::string stack = {};  // the provider's inference-stack label when the attempt began
};

// What routing a request produced.
struct RouteResult {
  Outcome outcome = Outcome::kFailed;
  std::optional<chat::ChatResponse> response;  // set unless kFailed
  const Target* served_by = nullptr;
  std::vector<Attempt> attempts;
  std::optional<validation::Reason> fallback_reason;  // the primary's final failure
  double duration_ms = 0;
  chat::Usage usage;                // summed over attempts
  std::int64_t cost_micro_usd = 0;  // summed over attempts
  // kRejected: the upstream's refusal of the request itself, for the client as it was said.
  std::optional<core::Error> rejection;
  bool stream_started = false;  // streams: the client has seen the start of an answer
  bool client_gone = false;     // streams: the client went away mid-stream
  bool bypassed = false;        // the workload bypassed its primary for this request
  bool client_retry = false;    // the client sent this conversation again (reason retry)
  bool escalated = false;       // its session went straight to the fallback
};

// Where a streamed answer goes (the server's dialect encoder and HTTP response). The
// router calls begin() once it knows which target serves, then send() for each batch,
// then finish() or, when the upstream broke after begin(), abort().
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // Starts the client's stream; `result` tells who serves and after which attempts.
  // False: the client is gone.
  virtual boost::asio::awaitable<bool> begin(const RouteResult& result) = 0;
  // False: the client is gone.
  virtual boost::asio::awaitable<bool> send(const std::vector<chat::StreamEvent>& events) = 0;
  virtual boost::asio::awaitable<void> finish() = 0;
  // Ends a started stream with an explicit error, never a clean end.
  virtual boost::asio::awaitable<void> abort(const core::Error& error) = 0;
};

// What routing may use of the worker it runs on.
struct WorkerContext {
  boost::asio::io_context& loop;
  providers::Connections& connections;
  telemetry::Shard& metrics;
  validation::SchemaCache& schemas;
  std::mt19937_64& rng;  // backoff jitter
  // The request's cancellation (its client went away): the call in flight ends at once and
  // nothing more is tried. Null: none.
  core::Cancellation* cancel = nullptr;
  std::string_view key_name = {};  // the client key's name for the ledger row; empty: no auth
  bool primary_only = false;       // a spent budget cut the route to its first target
  ClientSignals client = {};       // what the client's headers say of a retry
};

// The attempt loop. Immutable after construction, shared by all workers.
class Router {
 public:
  // `providers` must outlive the router; every name in every route must be in it. Breaker
  // and bypass changes are logged to `logger` and sent to `hooks` (null: not).
  Router(const config::Config& config,
         const std::vector<std::unique_ptr<providers::Provider>>& providers,
         telemetry::Registry& registry, ledger::SpendStore& spend, const core::Clock& clock,
         core::Logger* logger = nullptr, telemetry::Hooks* hooks = nullptr);

  [[nodiscard]] const Workload* find(std::string_view name) const;
  [[nodiscard]] const std::vector<std::unique_ptr<Workload>>& workloads() const {
    return workloads_;
  }
  [[nodiscard]] const telemetry::Metrics& metrics() const { return metrics_; }
  [[nodiscard]] telemetry::FamilyId client_retries_total() const { return client_retries_total_; }
  [[nodiscard]] telemetry::FamilyId hedges_total() const { return hedges_total_; }
  [[nodiscard]] telemetry::FamilyId shadow_verdicts_total() const { return shadow_verdicts_total_; }

  // Tries the workload's route in order (the next target first while the workload bypasses
  // its primary; a target whose breaker is open is skipped unless it is the last one that
  // carries the request): same-target retries on 429, 5xx and connect errors
  // (exponential backoff with full jitter, Retry-After honoured up to a cap); any other
  // failure, a timeout and validation failures included, moves to the next target at once,
  // except a rejection (kRejected), which ends the route: outcome kRejected.
  // Each call has what is left of the workload's deadline for its answer to begin (and no
  // first-token limit on the last target); once the deadline has passed or the client has
  // gone, nothing more is tried.
  // A replay of the request on a fresh connection is an attempt of its own (reason connect).
  // Records every metric, and the request with every attempt in the ledger.
  boost::asio::awaitable<RouteResult> route(const Workload& workload,
                                            const chat::ChatRequest& request, WorkerContext& worker,
                                            std::string_view request_id) const;

  // The streaming attempt loop. A buffered workload (stream_mode buffer, or auto with checks)
  // holds each target's stream until it ends, checks the assembled answer, then replays it to
  // the sink or falls back before the client saw a byte; any other streams straight through,
  // unchecked, and falls back only on failures before the first event. When nothing was sent and
  // every target failed, the result is kFailed with stream_started false: the caller answers 502.
  boost::asio::awaitable<RouteResult> route_stream(const Workload& workload,
                                                   const chat::ChatRequest& request,
                                                   WorkerContext& worker,
                                                   std::string_view request_id,
                                                   StreamSink& sink) const;

  // Whether some target of the workload can be sent the request (Provider::carries).
  [[nodiscard]] static bool carried(const Workload& workload, const chat::ChatRequest& request);

  // Counts a request refused before routing (bad input, unknown workload) and records its
  // ledger row.
  void count_rejected(telemetry::Shard& shard, std::string_view workload,
                      std::string_view request_id, std::string_view key_name = {}) const;

 private:
  // Books the usage of an answer that arrived: tokens, spend, the result's totals.
  void account(const Workload& workload, const Target& target, const chat::Usage& usage,
               Attempt& attempt, RouteResult& result, telemetry::Shard& shard) const;
  // Books a failed attempt; the first failure of a target becomes the fallback reason.
  void fail_attempt(const Workload& workload, const providers::Provider& provider, Attempt attempt,
                    bool validation_failure, RouteResult& result, telemetry::Shard& shard) const;
  // The request-level metrics and the ledger row, once the route is done.
  void conclude(const Workload& workload, Turn turn, core::Clock::TimePoint started,
                std::string_view request_id, RouteResult& result, telemetry::Shard& shard,
                std::string_view key_name) const;
  // Waits the backoff before retry number `retry` (0-based) after `error`.
  boost::asio::awaitable<void> backoff(const Workload& workload, int retry,
                                       const core::Error& error, WorkerContext& worker) const;
  // Counts the move from route[from] to route[to] (to: npos when there is no next target).
  void count_fallback(const Workload& workload, std::size_t from, std::size_t to,
                      validation::Reason reason, RouteResult& result,
                      telemetry::Shard& shard) const;

  // The turn of this request: the workload's bypass state, and its session's escalation
  // (a client retry is counted here).
  [[nodiscard]] Turn open_turn(const Workload& workload, const chat::ChatRequest& request,
                               WorkerContext& worker, RouteResult& result) const;

  // What a hedged pair of calls left for the route.
  struct HedgeEnd {
    bool tried = false;           // the first call was made (its breaker let it through)
    bool second_started = false;  // the hedge started
    bool served = false;
    validation::Reason first_reason = validation::Reason::kUpstreamError;
    validation::Reason second_reason = validation::Reason::kUpstreamError;
    std::vector<chat::StreamEvent> held;     // streams: the served call's events, to replay
    std::optional<core::Error> first_error;  // the first call's error, when it failed so
    // LegKind::kFirstEvents: the call whose stream began first, unbooked, its stream to be
    // read on; `opened_at` is its target's order index.
    std::unique_ptr<HedgeLeg> opened;
    std::size_t opened_at = 0;
    Admission opened_admission = Admission::kPass;
  };
  // Calls route[order[i]] and, once it is slower than `after`, route[order[j]] in parallel;
  // books both calls, but for a stream that began (kFirstEvents), handed back in `opened`.
  boost::asio::awaitable<HedgeEnd> hedged(const Workload& workload,
                                          const chat::ChatRequest& request,
                                          const std::vector<std::size_t>& order, std::size_t i,
                                          std::size_t j, std::chrono::milliseconds after,
                                          const Walk& walk, WorkerContext& worker,
                                          std::string_view request_id, RouteResult& result,
                                          LegKind kind = LegKind::kComplete) const;
  // What the walk does after a hedged pair that did not serve: stop, go on to the next
  // target, or retry the first call (a quick retryable failure before any hedge started).
  enum class AfterHedge { kStop, kNext, kRetryFirst };
  // Backs off before a retry of the first call, or books the pair's fallbacks and moves `i`
  // past the hedge's target when it started.
  boost::asio::awaitable<AfterHedge> after_hedge(const Workload& workload,
                                                 const std::vector<std::size_t>& order,
                                                 std::size_t& i, std::size_t j, const HedgeEnd& end,
                                                 const Walk& walk, WorkerContext& worker,
                                                 RouteResult& result) const;
  // Books one call of a hedge as an attempt of route[t]; true when it served (`wins`).
  bool book_leg(const Workload& workload, const chat::ChatRequest& request, std::size_t t,
                HedgeLeg& leg, Admission admission, bool wins, const Walk& walk,
                WorkerContext& worker, RouteResult& result, validation::Reason& reason) const;
  // What a shadow call may use of the worker it was started on (which outlives it).
  struct ShadowWorker {
    boost::asio::io_context* loop;
    providers::Connections* connections;
    telemetry::Shard* metrics;
    validation::SchemaCache* schemas;
  };
  // Sends a sampled copy of the request to the workload's shadow provider, off the request's
  // path (the request never waits for it); a copy with no place left is dropped and counted.
  void start_shadow(const Workload& workload, const chat::ChatRequest& request,
                    WorkerContext& worker, std::string_view request_id) const;
  // The shadow call: checked, priced, counted, and booked as a ledger row of outcome shadow.
  boost::asio::awaitable<void> run_shadow(const Workload* workload,
                                          std::shared_ptr<const chat::ChatRequest> request,
                                          ShadowWorker worker, std::string request_id,
                                          std::string key_name, ShadowTraffic::Places places) const;
  // The upstream duration metric and the provider's latency window.
  void observe_latency(const Target& target, double latency_ms, telemetry::Shard& m) const;

  std::vector<std::unique_ptr<Breaker>> breakers_;
  std::vector<std::unique_ptr<LatencyWindow>> latencies_;  // one per provider, in its order
  std::vector<std::unique_ptr<InFlight>> in_flight_;       // one per provider, in its order
  std::vector<std::unique_ptr<Workload>> workloads_;
  telemetry::Metrics metrics_;
  telemetry::FamilyId client_retries_total_;   // workload
  telemetry::FamilyId hedges_total_;           // workload, winner (first, hedge)
  telemetry::FamilyId shadow_verdicts_total_;  // workload, provider, result, reason
  telemetry::FamilyId shadow_fallback_ratio_;  // workload, provider (gauge)
  ledger::SpendStore& spend_;
  const core::Clock& clock_;
};

// Watches each workload's fallback ratio and reports when its band changes, so that an
// operator hears "agentic moved to band move" without reading dashboards. Not thread-safe:
// one caller, on a timer.
class BandWatch {
 public:
  // Bands are judged only on windows with at least `min_requests` requests.
  explicit BandWatch(const Router& router, std::int64_t min_requests = 20)
      : router_(router), min_requests_(min_requests) {}
  // A workload whose band changed since the last call.
  struct Change {
    std::string workload;
    std::optional<Band> from;  // absent: the workload's first verdict
    Band to = Band::kHealthy;
    double fallback_rate = 0;
    std::int64_t requests = 0;  // in the window
    std::int64_t window_s = 0;
    std::string line;  // what the log says, with one line of advice
  };
  // Each workload whose band changed since the last call, at unix_ms. A first verdict counts
  // only when it asks for action (move or under-used).
  [[nodiscard]] std::vector<Change> check(std::int64_t unix_ms);

 private:
  const Router& router_;
  std::int64_t min_requests_;
  std::vector<std::optional<Band>> last_;
};

// How long to wait before same-target retry number `retry` (0-based) after `error`: the
// upstream's Retry-After up to retry_after_cap_ms when it sent one, else a uniform draw from
// [0, min(base_backoff_ms * 2^retry, max_backoff_ms)] (full jitter).
[[nodiscard]] std::int64_t retry_delay_ms(const config::Retries& retries, int retry,
                                          const core::Error& error, std::mt19937_64& rng);
// The ledger's price for a provider's configured price.
[[nodiscard]] ledger::Price to_ledger_price(const config::Price& price);
// The validation spec of a workload's `validate:` block.
[[nodiscard]] validation::Spec to_spec(const config::Validate& validate);
// The reason for a provider error.
[[nodiscard]] validation::Reason reason_of(const core::Error& error);
// Whether a provider error is worth a same-target retry (429, 5xx, connect; never a timeout:
// a target that timed out is left for the next one).
[[nodiscard]] bool is_retryable(const core::Error& error);

}  // namespace backstop::routing
