#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backstop::telemetry {

enum class MetricType { kCounter, kGauge, kHistogram };

// A metric family, declared once at start-up.
struct FamilyDef {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string> labels;  // label names, in order
  std::vector<double> buckets;      // histograms: upper bounds, ascending (+Inf implied)
};

using FamilyId = int;

// One worker's metrics. Only its own worker thread writes to it; it takes no lock except
// the first time it sees a label set. Label values are given in the family's label order;
// a call with the wrong number of values, or on a family of another type, does nothing.
class Shard {
 public:
  virtual ~Shard() = default;
  // Counters: adds value >= 0, kept exact to 1e-6 (micro-dollars); others are ignored.
  virtual void add(FamilyId family, std::initializer_list<std::string_view> labels,
                   double value = 1) = 0;
  // Histograms: counts value in the first bucket whose bound is >= value (NaN ignored).
  virtual void observe(FamilyId family, std::initializer_list<std::string_view> labels,
                       double value) = 0;
};

// Samples of a gauge computed when scraped: (label values, value) pairs.
using GaugeSource = std::function<std::vector<std::pair<std::vector<std::string>, double>>()>;

// The metric registry: families declared up front, one Shard per worker, merged when
// rendered.
class Registry {
 public:
  // `shards` shards (at least one), one per worker thread.
  explicit Registry(int shards);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Declares a family (start-up only; not thread-safe with the rest).
  FamilyId declare(FamilyDef def);
  // A gauge whose samples come from `source` at scrape time; for a counter, samples added to
  // what the shards hold (counts that a thread without a shard keeps).
  void gauge_source(FamilyId family, GaugeSource source);

  // Worker `worker`'s shard (taken modulo shard_count()); the reference stays valid.
  [[nodiscard]] Shard& shard(int worker);
  [[nodiscard]] int shard_count() const;

  // All families in Prometheus text exposition format 0.0.4, shards summed. Any thread.
  [[nodiscard]] std::string render() const;
  // The summed value of one counter sample (tests, demo summary); 0 when absent.
  [[nodiscard]] double counter_value(FamilyId family, const std::vector<std::string>& labels) const;
  // The summed count and sum of one histogram sample.
  [[nodiscard]] std::pair<std::uint64_t, double> histogram_count_sum(
      FamilyId family, const std::vector<std::string>& labels) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Buckets (seconds) from 1 ms to 2 minutes, for every duration histogram.
[[nodiscard]] std::vector<double> duration_buckets();

// DESIGN's metric table, declared in one place.
struct Metrics {
  FamilyId requests_total;               // workload, outcome
  FamilyId fallbacks_total;              // workload, from, to, reason
  FamilyId validation_failures_total;    // workload, provider, reason
  FamilyId attempts_total;               // workload, provider, result
  FamilyId spend_usd_total;              // workload, provider, model
  FamilyId tokens_total;                 // provider, model, type
  FamilyId request_duration_seconds;     // workload, outcome
  FamilyId upstream_duration_seconds;    // provider
  FamilyId fallback_ratio;               // workload (gauge; its source is set by the router)
  FamilyId stream_events_skipped_total;  // provider
  FamilyId ledger_queue_depth;           // no labels (gauge; its source is set by the server)
  FamilyId log_lines_dropped_total;      // sink (access_log, hooks): a bounded queue was full
  FamilyId hook_events_total;            // event, result (sent, failed, dropped)
  FamilyId route_state;                  // workload, state (gauge; source set by the router)
  FamilyId breaker_state;                // provider, state (gauge; source set by the router)
  FamilyId budget_rejections_total;      // scope (key, workload), name

  static Metrics declare(Registry& registry);
};

}  // namespace backstop::telemetry
