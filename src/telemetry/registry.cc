#include "telemetry/registry.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>

namespace backstop::telemetry {
namespace {

// Counters are kept as integer micro-units so that spend in USD sums exactly.
constexpr double kUnitsPerOne = 1'000'000.0;
// The largest single add that fits the int64 micro-units.
constexpr double kMaxAdd = 9e12;

// One label set of one family in one shard. Allocated once, the first time the label set
// is seen; afterwards written without a lock.
struct Series {
  std::vector<std::string> labels;
  std::atomic<std::int64_t> units{0};                     // counters
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;  // histograms: per bucket, +Inf last
  std::atomic<double> sum{0};                             // histograms
};

// Appends the label values to `key` as length-prefixed fields, so distinct label sets
// can never join to the same key.
template <typename Range>
void append_key(std::string& key, const Range& values) {
  for (const auto& value : values) {
    const auto size = static_cast<std::uint32_t>(std::string_view(value).size());
    key.append(reinterpret_cast<const char*>(&size), sizeof size);
    key.append(std::string_view(value));
  }
}

struct Family {
  FamilyDef def;
  GaugeSource source;
};

// Shortest round-trip text of a double; Prometheus spellings for the non-finite values.
void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, ec == std::errc() ? end : buffer);
}

// Micro-units as an exact decimal: 3, 0.000123, 12.5.
void append_units(std::string& out, std::int64_t units) {
  const bool negative = units < 0;
  const std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(units) : static_cast<std::uint64_t>(units);
  const std::uint64_t whole = magnitude / 1'000'000;
  std::uint64_t fraction = magnitude % 1'000'000;
  char buffer[40];
  int length = std::snprintf(buffer, sizeof buffer, "%s%llu", negative ? "-" : "",
                             static_cast<unsigned long long>(whole));
  if (fraction != 0) {
    int digits = 6;
    while (fraction % 10 == 0) {
      fraction /= 10;
      --digits;
    }
    length += std::snprintf(buffer + length, sizeof buffer - length, ".%0*llu", digits,
                            static_cast<unsigned long long>(fraction));
  }
  out.append(buffer, length);
}

void append_escaped_label(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void append_escaped_help(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

// `{a="x",b="y"` without the closing brace, so histograms can add `le`; empty when there
// are no labels and no extra label follows.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += i == 0 ? '{' : ',';
    out += names[i];
    out += "=\"";
    append_escaped_label(out, values[i]);
    out += '"';
  }
}

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

class ShardImpl final : public Shard {
 public:
  using SeriesMap = std::unordered_map<std::string, std::unique_ptr<Series>>;

  explicit ShardImpl(const std::vector<Family>& families)
      : families_(families), series_(families.size()), last_(families.size(), nullptr) {}

  // Makes room for a family declared after the shard was made (start-up only).
  void add_family() {
    series_.emplace_back();
    last_.push_back(nullptr);
  }

  void add(FamilyId family, std::initializer_list<std::string_view> labels, double value) override {
    // Counters only go up; NaN or an out-of-range value would poison the sum.
    if (!(value >= 0 && value <= kMaxAdd)) return;
    Series* series = find_or_create(family, MetricType::kCounter, labels);
    if (series == nullptr) return;
    series->units.fetch_add(std::llround(value * kUnitsPerOne), std::memory_order_relaxed);
  }

  void observe(FamilyId family, std::initializer_list<std::string_view> labels,
               double value) override {
    if (std::isnan(value)) return;
    Series* series = find_or_create(family, MetricType::kHistogram, labels);
    if (series == nullptr) return;
    const std::vector<double>& bounds = families_[family].def.buckets;
    // The first bound >= value: a value equal to a bound belongs to that bucket (le).
    const auto index = std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
    series->buckets[index].fetch_add(1, std::memory_order_relaxed);
    series->sum.fetch_add(value, std::memory_order_relaxed);
  }

  // Calls `visit(series)` for every series of `family`, under the shard's lock.
  template <typename Visit>
  void for_each(FamilyId family, Visit&& visit) const {
    std::lock_guard lock(mutex_);
    for (const auto& [key, series] : series_[family]) visit(*series);
  }

  // The series with these label values, or nullptr; under the shard's lock.
  template <typename Visit>
  void with_series(FamilyId family, const std::vector<std::string>& labels, Visit&& visit) const {
    std::string key;
    append_key(key, labels);
    std::lock_guard lock(mutex_);
    const auto it = series_[family].find(key);
    if (it != series_[family].end()) visit(*it->second);
  }

 private:
  Series* find_or_create(FamilyId family, MetricType type,
                         std::initializer_list<std::string_view> labels) {
    if (family < 0 || static_cast<std::size_t>(family) >= families_.size()) return nullptr;
    const FamilyDef& def = families_[family].def;
    if (def.type != type || labels.size() != def.labels.size()) return nullptr;
    // The same series as last time (one workload's traffic, mostly): no key to build.
    Series* last = last_[family];
    if (last != nullptr && std::equal(labels.begin(), labels.end(), last->labels.begin())) {
      return last;
    }
    key_.clear();
    append_key(key_, labels);
    SeriesMap& map = series_[family];
    // Only this shard's worker inserts, so finding without the lock is safe; render()
    // only reads, under the lock.
    if (const auto it = map.find(key_); it != map.end()) return last_[family] = it->second.get();
    auto series = std::make_unique<Series>();
    series->labels.assign(labels.begin(), labels.end());
    if (type == MetricType::kHistogram) {
      // Value-initialized: every bucket starts at zero.
      series->buckets = std::make_unique<std::atomic<std::uint64_t>[]>(def.buckets.size() + 1);
    }
    Series* raw = series.get();
    std::lock_guard lock(mutex_);
    map.emplace(key_, std::move(series));
    return last_[family] = raw;
  }

  const std::vector<Family>& families_;
  std::vector<SeriesMap> series_;  // by FamilyId
  std::vector<Series*> last_;      // by FamilyId: the series found last, or nullptr
  std::string key_;                // scratch: no allocation per call once it has grown
  mutable std::mutex mutex_;
};

struct HistogramTotals {
  std::vector<std::uint64_t> buckets;  // per bucket, not cumulative
  double sum = 0;
};

}  // namespace

struct Registry::Impl {
  std::vector<Family> families;
  std::vector<std::unique_ptr<ShardImpl>> shards;
};

Registry::Registry(int shards) : impl_(std::make_unique<Impl>()) {
  const int count = std::max(shards, 1);
  for (int i = 0; i < count; ++i)
    impl_->shards.push_back(std::make_unique<ShardImpl>(impl_->families));
}

Registry::~Registry() = default;

FamilyId Registry::declare(FamilyDef def) {
  impl_->families.push_back(Family{std::move(def), nullptr});
  const auto id = static_cast<FamilyId>(impl_->families.size() - 1);
  for (auto& shard : impl_->shards) shard->add_family();
  return id;
}

void Registry::gauge_source(FamilyId family, GaugeSource source) {
  if (family < 0 || static_cast<std::size_t>(family) >= impl_->families.size()) return;
  impl_->families[family].source = std::move(source);
}

Shard& Registry::shard(int worker) {
  // Out-of-range workers share a shard rather than crash.
  const int count = shard_count();
  return *impl_->shards[static_cast<std::size_t>(((worker % count) + count) % count)];
}

int Registry::shard_count() const { return static_cast<int>(impl_->shards.size()); }

std::string Registry::render() const {
  std::string out;
  for (std::size_t id = 0; id < impl_->families.size(); ++id) {
    const Family& family = impl_->families[id];
    const FamilyDef& def = family.def;
    out += "# HELP ";
    out += def.name;
    out += ' ';
    append_escaped_help(out, def.help);
    out += "\n# TYPE ";
    out += def.name;
    out += ' ';
    out += type_name(def.type);
    out += '\n';
    const auto fid = static_cast<FamilyId>(id);

    switch (def.type) {
      case MetricType::kCounter: {
        std::map<std::vector<std::string>, std::int64_t> totals;
        for (const auto& shard : impl_->shards) {
          shard->for_each(fid, [&](const Series& series) {
            totals[series.labels] += series.units.load(std::memory_order_relaxed);
          });
        }
        // Counts kept outside the shards (a thread of the server's own), added in.
        if (family.source) {
          for (const auto& [labels, value] : family.source()) {
            if (labels.size() == def.labels.size()) {
              totals[labels] += std::llround(value * kUnitsPerOne);
            }
          }
        }
        for (const auto& [labels, units] : totals) {
          out += def.name;
          append_labels(out, def.labels, labels);
          out += labels.empty() ? " " : "} ";
          append_units(out, units);
          out += '\n';
        }
        break;
      }
      case MetricType::kGauge: {
        if (!family.source) break;
        auto samples = family.source();
        std::sort(samples.begin(), samples.end());
        for (const auto& [labels, value] : samples) {
          if (labels.size() != def.labels.size()) continue;
          out += def.name;
          append_labels(out, def.labels, labels);
          out += labels.empty() ? " " : "} ";
          append_number(out, value);
          out += '\n';
        }
        break;
      }
      case MetricType::kHistogram: {
        std::map<std::vector<std::string>, HistogramTotals> totals;
        const std::size_t count = def.buckets.size() + 1;
        for (const auto& shard : impl_->shards) {
          shard->for_each(fid, [&](const Series& series) {
            HistogramTotals& total = totals[series.labels];
            total.buckets.resize(count);
            for (std::size_t i = 0; i < count; ++i) {
              total.buckets[i] += series.buckets[i].load(std::memory_order_relaxed);
            }
            total.sum += series.sum.load(std::memory_order_relaxed);
          });
        }
        for (const auto& [labels, total] : totals) {
          std::uint64_t cumulative = 0;
          for (std::size_t i = 0; i < count; ++i) {
            cumulative += total.buckets[i];
            out += def.name;
            out += "_bucket";
            append_labels(out, def.labels, labels);
            out += labels.empty() ? "{le=\"" : ",le=\"";
            if (i + 1 < count) {
              append_number(out, def.buckets[i]);
            } else {
              out += "+Inf";
            }
            out += "\"} ";
            out += std::to_string(cumulative);
            out += '\n';
          }
          // _count is the +Inf bucket, so the two always agree even mid-update.
          out += def.name;
          out += "_sum";
          append_labels(out, def.labels, labels);
          out += labels.empty() ? " " : "} ";
          append_number(out, total.sum);
          out += '\n';
          out += def.name;
          out += "_count";
          append_labels(out, def.labels, labels);
          out += labels.empty() ? " " : "} ";
          out += std::to_string(cumulative);
          out += '\n';
        }
        break;
      }
    }
  }
  return out;
}

double Registry::counter_value(FamilyId family, const std::vector<std::string>& labels) const {
  if (family < 0 || static_cast<std::size_t>(family) >= impl_->families.size()) return 0;
  std::int64_t units = 0;
  for (const auto& shard : impl_->shards) {
    shard->with_series(family, labels, [&](const Series& series) {
      units += series.units.load(std::memory_order_relaxed);
    });
  }
  return static_cast<double>(units) / kUnitsPerOne;
}

std::pair<std::uint64_t, double> Registry::histogram_count_sum(
    FamilyId family, const std::vector<std::string>& labels) const {
  if (family < 0 || static_cast<std::size_t>(family) >= impl_->families.size()) return {0, 0};
  const FamilyDef& def = impl_->families[family].def;
  if (def.type != MetricType::kHistogram) return {0, 0};
  std::uint64_t count = 0;
  double sum = 0;
  for (const auto& shard : impl_->shards) {
    shard->with_series(family, labels, [&](const Series& series) {
      for (std::size_t i = 0; i < def.buckets.size() + 1; ++i) {
        count += series.buckets[i].load(std::memory_order_relaxed);
      }
      sum += series.sum.load(std::memory_order_relaxed);
    });
  }
  return {count, sum};
}

std::vector<double> duration_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

Metrics Metrics::declare(Registry& registry) {
  const auto counter = [&](std::string name, std::string help, std::vector<std::string> labels) {
    return registry.declare(
        FamilyDef{std::move(name), std::move(help), MetricType::kCounter, std::move(labels), {}});
  };
  const auto histogram = [&](std::string name, std::string help, std::vector<std::string> labels) {
    return registry.declare(FamilyDef{std::move(name), std::move(help), MetricType::kHistogram,
                                      std::move(labels), duration_buckets()});
  };
  Metrics m{};
  m.requests_total = counter("backstop_requests_total", "Requests by workload and outcome.",
                             {"workload", "outcome"});
  m.fallbacks_total =
      counter("backstop_fallbacks_total", "Fallbacks from one target to the next, by reason.",
              {"workload", "from", "to", "reason"});
  m.validation_failures_total =
      counter("backstop_validation_failures_total", "Responses that failed a workload's checks.",
              {"workload", "provider", "reason"});
  m.attempts_total = counter("backstop_attempts_total", "Upstream attempts by result.",
                             {"workload", "provider", "result"});
  m.spend_usd_total = counter("backstop_spend_usd_total", "Spend in US dollars.",
                              {"workload", "provider", "model"});
  m.tokens_total =
      counter("backstop_tokens_total", "Tokens by type.", {"provider", "model", "type"});
  m.request_duration_seconds =
      histogram("backstop_request_duration_seconds",
                "End-to-end request duration, the fallback hop included.", {"workload", "outcome"});
  m.upstream_duration_seconds = histogram("backstop_upstream_duration_seconds",
                                          "Duration of one upstream call.", {"provider"});
  m.fallback_ratio = registry.declare(FamilyDef{"backstop_fallback_ratio",
                                                "Share of requests that fell back, over the "
                                                "recent window that bands use.",
                                                MetricType::kGauge,
                                                {"workload"},
                                                {}});
  m.stream_events_skipped_total =
      counter("backstop_stream_events_skipped_total", "Undecodable upstream stream events skipped.",
              {"provider"});
  m.ledger_queue_depth = registry.declare(FamilyDef{"backstop_ledger_queue_depth",
                                                    "Rows waiting for the ledger writer.",
                                                    MetricType::kGauge,
                                                    {},
                                                    {}});
  m.log_lines_dropped_total =
      counter("backstop_log_lines_dropped_total",
              "Log lines dropped because a bounded queue was full.", {"sink"});
  m.hook_events_total = counter("backstop_hook_events_total",
                                "Hook events by how they ended: sent, failed after retries, "
                                "or dropped on a full queue.",
                                {"event", "result"});
  m.route_state = registry.declare(FamilyDef{"backstop_route_state",
                                             "1 for a workload's current route state: normal, or "
                                             "bypass (its primary bypassed).",
                                             MetricType::kGauge,
                                             {"workload", "state"},
                                             {}});
  m.breaker_state = registry.declare(FamilyDef{"backstop_breaker_state",
                                               "1 for a provider breaker's current state: "
                                               "closed, open or half_open.",
                                               MetricType::kGauge,
                                               {"provider", "state"},
                                               {}});
  m.budget_rejections_total =
      counter("backstop_budget_rejections_total",
              "Requests refused (429 budget_exceeded) because a client key's or a workload's "
              "budget for the UTC day was spent.",
              {"scope", "name"});
  return m;
}

}  // namespace backstop::telemetry
