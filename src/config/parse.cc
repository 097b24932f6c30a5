// YAML -> Config. One walk over the document collects every error it finds; each
// error names the line (from yaml-cpp's Mark) and the YAML path.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace backstop::config {
namespace {

constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr int kMaxPriceDecimals = 6;         // micro-dollars
constexpr std::size_t kMaxPriceDigits = 12;  // keeps value * 10^6 inside int64
constexpr std::size_t kMaxSuggestDistance = 2;

using Keys = std::span<const std::string_view>;

template <typename E>
using Choices = std::span<const std::pair<std::string_view, E>>;

// yaml-cpp lines are 0-based, and -1 for nodes that were not parsed from text.
int line_of(const YAML::Node& node) { return node.Mark().line + 1; }

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string child_path(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

std::string index_path(std::string_view path, std::size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

// What a node holds, for "got ..." in messages.
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

std::string join(Keys keys) {
  std::string out;
  for (std::string_view k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

std::string format_number(double value) {
  std::array<char, 32> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  return ec == std::errc() ? std::string(buf.data(), end) : std::string("?");
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The candidate nearest to `word` within kMaxSuggestDistance edits, if any.
template <typename Range>
std::optional<std::string> closest(std::string_view word, const Range& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = kMaxSuggestDistance + 1;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best;
}

// A provider key that looks like someone put the secret itself in the file.
bool looks_like_secret(std::string_view key) {
  std::string k(key);
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
  for (std::string_view part : {"api_key", "apikey", "api-key", "secret", "password", "bearer",
                                "authorization", "credential"}) {
    if (k.find(part) != std::string::npos) return true;
  }
  return k == "key" || k == "token" || k == "auth" || k == "access_token";
}

bool is_env_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool is_http_url(std::string_view s) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (s.starts_with(scheme)) {
      std::string_view rest = s.substr(scheme.size());
      return !rest.empty() && rest.front() != '/' && rest.find_first_of(" \t") == rest.npos;
    }
  }
  return false;
}

// Exact decimal text -> integer millionths ("0.14" -> 140000). Returns the error message
// on failure. Reading the text, not a double, keeps 0.14 from becoming 0.13999...
std::optional<std::string> parse_micros(std::string_view text, std::int64_t& out) {
  std::string_view s = text;
  if (s.starts_with('-')) return "must not be negative, got " + quote(text);
  if (s.starts_with('+')) s.remove_prefix(1);
  std::size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view fraction = dot == s.npos ? std::string_view() : s.substr(dot + 1);
  auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if ((whole.empty() && fraction.empty()) || !digits(whole) || !digits(fraction)) {
    return "must be a decimal number, got " + quote(text);
  }
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  if (fraction.size() > kMaxPriceDecimals) {
    return "has more than 6 decimal places, got " + quote(text);
  }
  while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
  if (whole.size() > kMaxPriceDigits) return "is too large, got " + quote(text);
  std::int64_t value = 0;
  for (char c : whole) value = value * 10 + (c - '0');
  for (int i = 0; i < kMaxPriceDecimals; ++i) {
    value = value * 10 + (i < static_cast<int>(fraction.size()) ? fraction[i] - '0' : 0);
  }
  out = value;
  return std::nullopt;
}

// One entry of a YAML map: the value, its path, and the lines to blame.
struct Field {
  std::string key;
  YAML::Node value;
  std::string path;
  int line = 0;      // the value's line; the key's line when the value is empty
  int key_line = 0;  // for "missing required key" inside this value
};

// The entries of one map, after duplicate and unknown keys were dropped.
struct Entries {
  std::vector<Field> fields;

  [[nodiscard]] const Field* find(std::string_view key) const {
    for (const Field& f : fields) {
      if (f.key == key) return &f;
    }
    return nullptr;
  }
};

constexpr std::array<std::string_view, 10> kTopKeys{"listen", "threads",   "server",    "ledger",
                                                    "log",    "providers", "workloads", "hooks",
                                                    "auth",   "plan"};
constexpr std::array<std::string_view, 4> kPlanKeys{"gpu_hour_usd", "gpus", "tokens_per_second",
                                                    "utilization"};
constexpr std::array<std::string_view, 2> kAuthKeys{"keys", "metrics_key_env"};
constexpr std::array<std::string_view, 5> kClientKeyKeys{"name", "key_env", "key_sha256",
                                                         "workloads", "budget"};
constexpr std::array<std::string_view, 1> kKeyBudgetKeys{"daily_usd"};
constexpr std::array<std::string_view, 2> kWorkloadBudgetKeys{"daily_usd", "on_exceeded"};
constexpr std::size_t kSha256HexDigits = 64;
constexpr std::array<std::string_view, 3> kHookKeys{"url", "events", "secret_env"};
constexpr std::array<std::string_view, 7> kServerKeys{
    "max_body_bytes",  "max_header_bytes", "read_timeout_ms", "idle_timeout_ms",
    "max_connections", "drain_timeout_ms", "drain_delay_ms"};
constexpr std::array<std::string_view, 2> kLedgerKeys{"path", "flush_ms"};
constexpr std::int64_t kMaxFlushMs = 3'600'000;  // an hour: a longer one is a typo
constexpr std::array<std::string_view, 1> kLogKeys{"access_log"};
constexpr std::array<std::string_view, 15> kProviderKeys{"kind",
                                                         "base_url",
                                                         "model",
                                                         "api_key_env",
                                                         "ca_file",
                                                         "connect_timeout_ms",
                                                         "first_token_timeout_ms",
                                                         "idle_timeout_ms",
                                                         "timeout_ms",
                                                         "max_tokens",
                                                         "anthropic_version",
                                                         "price",
                                                         "simulation",
                                                         "breaker",
                                                         "stack"};
constexpr std::array<std::string_view, 3> kPriceKeys{"input", "output", "cached_input"};
constexpr std::array<std::string_view, 5> kSimulationKeys{"latency_p50_ms", "latency_p99_ms",
                                                          "seed", "faults", "stacks"};
constexpr std::array<std::string_view, 9> kFaultKeys{"no_tool_call", "unknown_tool", "invalid_json",
                                                     "schema",       "empty",        "truncated",
                                                     "rate_limited", "server_error", "timeout"};
constexpr std::array<std::string_view, 8> kWorkloadKeys{
    "route", "validate", "retries", "deadline_ms", "bands", "stream_mode", "adapt", "budget"};
constexpr std::array<std::string_view, 2> kBreakerKeys{"failures", "cooldown_ms"};
constexpr std::array<std::string_view, 4> kAdaptKeys{"bypass_above", "restore_below",
                                                     "min_requests", "probe"};
constexpr std::array<std::string_view, 5> kValidateKeys{"tool_call", "tool_names", "arguments",
                                                        "content", "allow_truncated"};
constexpr std::array<std::string_view, 4> kRetriesKeys{"max", "base_backoff_ms", "max_backoff_ms",
                                                       "retry_after_cap_ms"};
constexpr std::array<std::string_view, 5> kBandsKeys{"move_above", "underused_below", "healthy_low",
                                                     "healthy_high", "window_s"};

constexpr std::string_view kSimulatedKind = "simulated";
constexpr std::array<std::pair<std::string_view, StreamMode>, 3> kStreamModes{{
    {"auto", StreamMode::kAuto},
    {"buffer", StreamMode::kBuffer},
    {"pass", StreamMode::kPass},
}};
constexpr std::array<std::pair<std::string_view, BudgetAction>, 2> kBudgetActions{{
    {"reject", BudgetAction::kReject},
    {"primary_only", BudgetAction::kPrimaryOnly},
}};
constexpr std::array<std::pair<std::string_view, ToolCallCheck>, 2> kToolCallChecks{{
    {"required", ToolCallCheck::kRequired},
    {"optional", ToolCallCheck::kOptional},
}};
constexpr std::array<std::pair<std::string_view, ArgumentsCheck>, 3> kArgumentsChecks{{
    {"none", ArgumentsCheck::kNone},
    {"json", ArgumentsCheck::kJson},
    {"schema", ArgumentsCheck::kSchema},
}};
constexpr std::array<std::pair<std::string_view, ContentCheck>, 3> kContentChecks{{
    {"non_empty", ContentCheck::kNonEmpty},
    {"json", ContentCheck::kJson},
    {"schema", ContentCheck::kSchema},
}};

template <typename T, typename U>
void assign(T& out, const std::optional<U>& value) {
  if (value) out = static_cast<T>(*value);
}

class Parser {
 public:
  Parser(std::string_view file, const ParseOptions& options) : file_(file), options_(options) {}

  LoadResult run(std::string_view yaml) {
    LoadResult result;
    YAML::Node root;
    try {
      root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
      error(std::max(1, e.mark.line + 1), "", "invalid YAML: " + e.msg);
      result.errors = std::move(errors_);
      return result;
    }
    auto config = std::make_shared<Config>();
    config->file = file_;
    try {
      top(Field{"", root, "", std::max(1, line_of(root)), 1}, *config);
      check_routes();
      check_key_workloads(*config);
    } catch (const std::exception& e) {
      // Every node access above checks the type first; this is a last line of defence.
      error(1, "", std::string("internal error while reading the config: ") + e.what());
    }
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    result.errors = std::move(errors_);
    if (result.errors.empty()) result.config = std::move(config);
    return result;
  }

 private:
  // A route entry, checked once every provider name is known (providers may come later).
  struct RouteRef {
    std::string provider;
    std::string path;
    int line = 0;
  };

  // A workload named by a client key, checked once every workload is known.
  struct WorkloadRef {
    std::string workload;
    std::string path;
    int line = 0;
  };

  void error(int line, std::string path, std::string message) {
    errors_.push_back(ConfigError{file_, line, std::move(path), std::move(message)});
  }

  void type_error(const Field& f, std::string_view expected) {
    error(f.line, f.path, "must be " + std::string(expected) + ", got " + describe(f.value));
  }

  // Walks a map in file order, calling on_field for each entry and returning them all.
  // Reports non-string keys, duplicates and (unless `allowed` is empty, meaning names
  // chosen by the user) keys outside `allowed`. An empty value (`validate:`) is an empty map.
  template <typename OnField>
  Entries entries(const Field& map, Keys allowed, OnField&& on_field) {
    Entries out;
    if (map.value.IsNull()) return out;
    if (!map.value.IsMap()) {
      type_error(map, "a map");
      return out;
    }
    std::vector<std::pair<std::string, int>> seen;  // every key so far, known or not
    for (auto it = map.value.begin(); it != map.value.end(); ++it) {
      // Copies: yaml-cpp's iterator yields a temporary pair, references into it dangle.
      YAML::Node key = it->first;
      YAML::Node value = it->second;
      int key_line = line_of(key);
      if (!key.IsScalar()) {
        error(key_line, map.path, "keys must be strings, got " + describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      std::string path = child_path(map.path, name);
      auto first =
          std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == name; });
      if (first != seen.end()) {
        error(key_line, path,
              "duplicate key " + quote(name) + " (first at line " + std::to_string(first->second) +
                  ")");
        continue;
      }
      seen.emplace_back(name, key_line);
      Field field{name, value, path, value.IsNull() ? key_line : line_of(value), key_line};
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        unknown_key(field, allowed);
        continue;
      }
      on_field(field);
      out.fields.push_back(std::move(field));
    }
    return out;
  }

  void unknown_key(const Field& f, Keys allowed) {
    std::string message = "unknown key " + quote(f.key);
    // Only a provider block can hold a key (it is the block where api_key_env is allowed).
    bool in_provider = std::find(allowed.begin(), allowed.end(), "api_key_env") != allowed.end();
    if (in_provider && looks_like_secret(f.key)) {
      message += " (keys are read from the environment: use api_key_env)";
    } else if (auto suggestion = closest(f.key, allowed)) {
      message += " (did you mean " + quote(*suggestion) + "?)";
    }
    message += "; allowed keys: " + join(allowed);
    error(f.key_line, f.path, std::move(message));
  }

  void require(const Entries& e, std::string_view key, const Field& map) {
    if (!e.find(key)) error(map.key_line, map.path, "missing required key " + quote(key));
  }

  std::optional<std::string> text(const Field& f) {
    if (!f.value.IsScalar()) {
      type_error(f, "a string");
      return std::nullopt;
    }
    return f.value.Scalar();
  }

  std::optional<std::int64_t> integer(const Field& f, std::int64_t min,
                                      std::int64_t max = kMaxInt) {
    if (!f.value.IsScalar()) {
      type_error(f, "an integer");
      return std::nullopt;
    }
    std::string_view s = f.value.Scalar();
    if (s.starts_with('+')) s.remove_prefix(1);
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || end != s.data() + s.size() || ec == std::errc::invalid_argument) {
      type_error(f, "an integer");
      return std::nullopt;
    }
    if (ec == std::errc::result_out_of_range || value < min || value > max) {
      std::string range = max == kMaxInt
                              ? "at least " + std::to_string(min)
                              : "between " + std::to_string(min) + " and " + std::to_string(max);
      error(f.line, f.path, "must be " + range + ", got " + f.value.Scalar());
      return std::nullopt;
    }
    return value;
  }

  std::optional<double> number(const Field& f, double min, double max) {
    if (!f.value.IsScalar()) {
      type_error(f, "a number");
      return std::nullopt;
    }
    std::string_view s = f.value.Scalar();
    if (s.starts_with('+')) s.remove_prefix(1);
    double value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || end != s.data() + s.size() || ec != std::errc() || !std::isfinite(value)) {
      type_error(f, "a number");
      return std::nullopt;
    }
    if (value < min || value > max) {
      std::string range = max == std::numeric_limits<double>::max()
                              ? "at least " + format_number(min)
                              : "between " + format_number(min) + " and " + format_number(max);
      error(f.line, f.path, "must be " + range + ", got " + f.value.Scalar());
      return std::nullopt;
    }
    return value;
  }

  std::optional<double> ratio(const Field& f) { return number(f, 0.0, 1.0); }

  std::optional<bool> boolean(const Field& f) {
    if (f.value.IsScalar()) {
      const std::string& s = f.value.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
    }
    type_error(f, "true or false");
    return std::nullopt;
  }

  template <typename E>
  std::optional<E> choice(const Field& f, Choices<E> choices) {
    if (f.value.IsScalar()) {
      for (const auto& [name, value] : choices) {
        if (f.value.Scalar() == name) return value;
      }
    }
    std::string names;
    for (const auto& [name, value] : choices)
      names += (names.empty() ? "" : ", ") + std::string(name);
    type_error(f, "one of " + names);
    return std::nullopt;
  }

  std::optional<std::int64_t> price(const Field& f) {
    if (!f.value.IsScalar()) {
      type_error(f, "a number");
      return std::nullopt;
    }
    std::int64_t micros = 0;
    if (auto message = parse_micros(f.value.Scalar(), micros)) {
      error(f.line, f.path, std::move(*message));
      return std::nullopt;
    }
    return micros;
  }

  void top(const Field& root, Config& config) {
    if (!root.value.IsMap()) {
      error(root.line, "",
            "the config must be a map with providers and workloads, got " + describe(root.value));
      return;
    }
    Entries e = entries(root, kTopKeys, [&](const Field& f) {
      if (f.key == "listen") {
        if (auto s = text(f)) {
          if (split_listen(*s)) {
            config.server.listen = *s;
          } else {
            error(f.line, f.path, "must be HOST:PORT, got " + quote(*s));
          }
        }
      } else if (f.key == "threads") {
        assign(config.server.threads, integer(f, 0, 1024));
      } else if (f.key == "server") {
        server(f, config.server);
      } else if (f.key == "ledger") {
        entries(f, kLedgerKeys, [&](const Field& g) {
          if (g.key == "path") assign(config.ledger.path, text(g));
          if (g.key == "flush_ms") assign(config.ledger.flush_ms, integer(g, 1, kMaxFlushMs));
        });
      } else if (f.key == "log") {
        entries(f, kLogKeys, [&](const Field& g) { assign(config.log.access_log, text(g)); });
      } else if (f.key == "providers") {
        providers(f, config.providers);
      } else if (f.key == "workloads") {
        workloads(f, config.workloads);
      } else if (f.key == "hooks") {
        hooks(f, config.hooks);
      } else if (f.key == "auth") {
        auth(f, config.auth);
      } else if (f.key == "plan") {
        plan(f, config.plan);
      }
    });
    require(e, "providers", root);
    require(e, "workloads", root);
  }

  void plan(const Field& map, Plan& p) {
    entries(map, kPlanKeys, [&](const Field& f) {
      if (f.key == "gpu_hour_usd") p.gpu_hour_usd = number(f, 0, 1e6);
      if (f.key == "gpus") p.gpus = integer(f, 1, 4096);
      if (f.key == "tokens_per_second") p.tokens_per_second = number(f, 1e-6, 1e12);
      if (f.key == "utilization") p.utilization = number(f, 0.01, 1);
    });
  }

  void hooks(const Field& f, std::vector<Hook>& out) {
    if (!f.value.IsSequence()) {
      type_error(f, "a list of hooks");
      return;
    }
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node item = f.value[i];
      Field entry{"", item, index_path(f.path, i), line_of(item), line_of(item)};
      Hook hook;
      hook.line = entry.line;
      Entries e = entries(entry, kHookKeys, [&](const Field& g) {
        if (g.key == "url") {
          if (auto url = text(g)) {
            if (!url->starts_with("http://") && !url->starts_with("https://")) {
              error(g.line, g.path, "must be an http:// or https:// URL, got " + quote(*url));
            }
            hook.url = *url;
          }
        } else if (g.key == "secret_env") {
          assign(hook.secret_env, text(g));
        } else if (g.key == "events") {
          hook_events(g, hook.events);
        }
      });
      require(e, "url", entry);
      require(e, "events", entry);
      out.push_back(std::move(hook));
    }
  }

  void hook_events(const Field& f, std::vector<std::string>& out) {
    if (!f.value.IsSequence() || f.value.size() == 0) {
      type_error(f, "a list of events");
      return;
    }
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node item = f.value[i];
      Field entry{"", item, index_path(f.path, i), line_of(item), line_of(item)};
      auto name = text(entry);
      if (!name) continue;
      if (std::find(std::begin(kHookEvents), std::end(kHookEvents), *name) ==
          std::end(kHookEvents)) {
        error(entry.line, entry.path,
              "must be one of fallback, all_failed, band, bypass, breaker, budget, drift; got " +
                  quote(*name));
        continue;
      }
      out.push_back(*name);
    }
  }

  void server(const Field& map, Server& s) {
    entries(map, kServerKeys, [&](const Field& f) {
      std::optional<std::int64_t> v = integer(f, f.key == "drain_delay_ms" ? 0 : 1);
      if (f.key == "max_body_bytes") assign(s.max_body_bytes, v);
      if (f.key == "max_header_bytes") assign(s.max_header_bytes, v);
      if (f.key == "read_timeout_ms") assign(s.read_timeout_ms, v);
      if (f.key == "idle_timeout_ms") assign(s.idle_timeout_ms, v);
      if (f.key == "max_connections") assign(s.max_connections, v);
      if (f.key == "drain_timeout_ms") assign(s.drain_timeout_ms, v);
      if (f.key == "drain_delay_ms") assign(s.drain_delay_ms, v);
    });
  }

  void providers(const Field& map, std::vector<Provider>& out) {
    Entries e = entries(map, {}, [&](const Field& f) {
      provider_names_.push_back(f.key);
      Provider p;
      p.name = f.key;
      p.line = f.key_line;
      if (f.key.empty()) error(f.key_line, f.path, "provider names must not be empty");
      provider(f, p);
      out.push_back(std::move(p));
    });
    if (e.fields.empty() && (map.value.IsNull() || map.value.IsMap())) {
      error(map.line, map.path, "must define at least one provider");
    }
  }

  void provider(const Field& map, Provider& p) {
    if (!map.value.IsMap()) {
      type_error(map, "a map");
      return;
    }
    std::optional<ProviderKind> kind;
    std::vector<std::string> timeouts_read;  // the timeout keys whose values were valid
    const auto timeout = [&](const Field& f, std::int64_t& out) {
      std::optional<std::int64_t> v = integer(f, 1);
      if (v) timeouts_read.push_back(f.key);
      assign(out, v);
    };
    Entries e = entries(map, kProviderKeys, [&](const Field& f) {
      if (f.key == "kind") {
        kind = provider_kind(f, p);
      } else if (f.key == "base_url") {
        if (auto s = text(f)) {
          if (is_http_url(*s)) {
            p.base_url = *s;
          } else {
            error(f.line, f.path, "must be an http:// or https:// URL, got " + quote(*s));
          }
        }
      } else if (f.key == "model") {
        if (auto s = text(f)) {
          if (s->empty()) error(f.line, f.path, "must not be empty");
          p.model = *s;
        }
      } else if (f.key == "api_key_env") {
        if (auto s = text(f)) {
          if (is_env_name(*s)) {
            p.api_key_env = *s;
          } else {
            // Not echoed: a value that is not a variable name is often the key itself.
            error(f.line, f.path,
                  "must be the name of an environment variable ([A-Z_][A-Z0-9_]*); the value "
                  "is not shown, in case it is the key itself");
          }
        }
      } else if (f.key == "ca_file") {
        assign(p.ca_file, text(f));
      } else if (f.key == "connect_timeout_ms") {
        timeout(f, p.connect_timeout_ms);
      } else if (f.key == "first_token_timeout_ms") {
        timeout(f, p.first_token_timeout_ms);
      } else if (f.key == "idle_timeout_ms") {
        timeout(f, p.idle_timeout_ms);
      } else if (f.key == "timeout_ms") {
        timeout(f, p.timeout_ms);
      } else if (f.key == "max_tokens") {
        assign(p.max_tokens, integer(f, 1));
      } else if (f.key == "anthropic_version") {
        if (auto s = text(f)) {
          if (s->empty()) error(f.line, f.path, "must not be empty");
          p.anthropic_version = *s;
        }
      } else if (f.key == "price") {
        price_block(f, p.price);
      } else if (f.key == "simulation") {
        simulation(f, p.simulation, p.stack_faults);
      } else if (f.key == "breaker") {
        breaker(f, p.breaker.emplace());
      } else if (f.key == "stack") {
        stack_label(f, p.stack);
      }
    });
    require(e, "kind", map);
    require(e, "model", map);
    timeouts(e, p, timeouts_read);
    if (kind && *kind != ProviderKind::kSimulated) {
      require(e, "base_url", map);
      if (const Field* sim = e.find("simulation")) {
        error(sim->key_line, sim->path, "is only allowed for kind simulated");
      }
    }
  }

  // `kind`: "simulated", or the name of a dialect with an upstream side (ParseOptions).
  std::optional<ProviderKind> provider_kind(const Field& f, Provider& p) {
    std::optional<std::string> name = text(f);
    if (!name) return std::nullopt;
    if (*name == kSimulatedKind) {
      p.kind = ProviderKind::kSimulated;
      return p.kind;
    }
    const auto& kinds = options_.kinds;
    const bool known = kinds.empty() ? !name->empty()
                                     : std::find(kinds.begin(), kinds.end(), *name) != kinds.end();
    if (!known) {
      std::string names;
      for (const std::string& k : kinds) names += k + ", ";
      type_error(f, "one of " + names + std::string(kSimulatedKind));
      return std::nullopt;
    }
    p.kind = ProviderKind::kHttp;
    p.dialect = std::move(*name);
    return p.kind;
  }

  // A part of the call cannot be allowed longer than the whole call. Only a part given is
  // blamed: a default longer than a short timeout_ms is simply cut to it when used. Values
  // that did not parse (`read` lacks them) were reported already.
  void timeouts(const Entries& e, const Provider& p, const std::vector<std::string>& read) {
    const auto was_read = [&read](std::string_view key) {
      return std::find(read.begin(), read.end(), key) != read.end();
    };
    if (e.find("timeout_ms") != nullptr && !was_read("timeout_ms")) return;
    const std::pair<std::string_view, std::int64_t> parts[] = {
        {"connect_timeout_ms", p.connect_timeout_ms},
        {"first_token_timeout_ms", p.first_token_timeout_ms},
        {"idle_timeout_ms", p.idle_timeout_ms}};
    for (const auto& [key, value] : parts) {
      const Field* part = e.find(key);
      if (part == nullptr || !was_read(key) || value <= p.timeout_ms) continue;
      error(part->line, part->path,
            std::string(key) + " (" + std::to_string(value) + ") must not exceed timeout_ms (" +
                std::to_string(p.timeout_ms) + ")");
    }
  }

  // An inference-stack label: it becomes a metric label and a ledger value.
  static bool is_stack_label(std::string_view s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '+' ||
             c == '-';
    });
  }
  static constexpr const char* kStackLabelRule =
      "must be 1-64 letters, digits, '.', '_', '+' or '-' (vllm-0.7.3), got ";

  void stack_label(const Field& f, std::string& out) {
    auto s = text(f);
    if (!s) return;
    if (!is_stack_label(*s)) {
      error(f.line, f.path, kStackLabelRule + quote(*s));
      return;
    }
    out = *s;
  }

  void price_block(const Field& map, Price& price) {
    Entries e = entries(map, kPriceKeys, [&](const Field& f) {
      std::optional<std::int64_t> v = this->price(f);
      if (f.key == "input") assign(price.input, v);
      if (f.key == "output") assign(price.output, v);
      if (f.key == "cached_input" && v) price.cached_input = *v;
    });
    if (map.value.IsNull() || map.value.IsMap()) {
      require(e, "input", map);
      require(e, "output", map);
    }
  }

  void simulation(const Field& map, Simulation& sim,
                  std::vector<std::pair<std::string, Simulation>>& stacks) {
    constexpr double kNoMax = std::numeric_limits<double>::max();
    std::optional<double> p50;
    std::optional<double> p99;
    Entries e = entries(map, kSimulationKeys, [&](const Field& f) {
      if (f.key == "latency_p50_ms") {
        p50 = number(f, 0.0, kNoMax);
        assign(sim.latency_p50_ms, p50);
      } else if (f.key == "latency_p99_ms") {
        p99 = number(f, 0.0, kNoMax);
        assign(sim.latency_p99_ms, p99);
      } else if (f.key == "seed") {
        assign(sim.seed, integer(f, 0));
      } else if (f.key == "faults") {
        faults(f, sim);
      } else if (f.key == "stacks") {
        stack_faults(f, stacks);
      }
    });
    // Compare only values that parsed, and a default only against a given value.
    bool p50_ok = p50 || !e.find("latency_p50_ms");
    bool p99_ok = p99 || !e.find("latency_p99_ms");
    if (p50_ok && p99_ok && sim.latency_p99_ms < sim.latency_p50_ms) {
      const Field* at = e.find("latency_p99_ms");
      if (!at) at = e.find("latency_p50_ms");
      error(at->line, at->path,
            "latency_p99_ms (" + format_number(sim.latency_p99_ms) +
                ") must be at least latency_p50_ms (" + format_number(sim.latency_p50_ms) + ")");
    }
  }

  // simulation.stacks: a map of stack label to that stack's fault rates.
  void stack_faults(const Field& map, std::vector<std::pair<std::string, Simulation>>& out) {
    entries(map, {}, [&](const Field& f) {
      if (!is_stack_label(f.key)) {
        error(f.key_line, f.path, std::string("a stack label ") + kStackLabelRule + quote(f.key));
        return;
      }
      Simulation rates;
      faults(f, rates);
      out.emplace_back(f.key, rates);
    });
  }

  void faults(const Field& map, Simulation& sim) {
    double* targets[] = {&sim.no_tool_call, &sim.unknown_tool, &sim.invalid_json,
                         &sim.schema,       &sim.empty,        &sim.truncated,
                         &sim.rate_limited, &sim.server_error, &sim.timeout};
    static_assert(std::size(targets) == kFaultKeys.size());
    bool all_ok = true;
    entries(map, kFaultKeys, [&](const Field& f) {
      std::optional<double> v = ratio(f);
      all_ok = all_ok && v.has_value();
      auto at = std::find(kFaultKeys.begin(), kFaultKeys.end(), f.key);
      assign(*targets[at - kFaultKeys.begin()], v);
    });
    double sum = 0;
    for (const double* t : targets) sum += *t;
    // A little slack, so that rates written in decimals are not failed by rounding.
    if (all_ok && sum > 1.0 + 1e-9) {
      error(map.line, map.path, "the fault rates sum to " + format_number(sum) + ", more than 1");
    }
  }

  void workloads(const Field& map, std::vector<Workload>& out) {
    Entries e = entries(map, {}, [&](const Field& f) {
      Workload w;
      w.name = f.key;
      w.line = f.key_line;
      if (f.key.empty()) error(f.key_line, f.path, "workload names must not be empty");
      workload(f, w);
      out.push_back(std::move(w));
    });
    if (e.fields.empty() && (map.value.IsNull() || map.value.IsMap())) {
      error(map.line, map.path, "must define at least one workload");
    }
  }

  void workload(const Field& map, Workload& w) {
    if (!map.value.IsMap()) {
      type_error(map, "a map");
      return;
    }
    Entries e = entries(map, kWorkloadKeys, [&](const Field& f) {
      if (f.key == "route") route(f, w.route);
      if (f.key == "validate") validate(f, w.validate);
      if (f.key == "retries") retries(f, w.retries);
      if (f.key == "deadline_ms") assign(w.deadline_ms, integer(f, 1));
      if (f.key == "bands") bands(f, w.bands);
      if (f.key == "adapt") adapt(f, w.adapt.emplace());
      if (f.key == "budget") budget(f, kWorkloadBudgetKeys, w.budget.emplace());
      if (f.key == "stream_mode")
        assign(w.stream_mode, choice(f, Choices<StreamMode>(kStreamModes)));
    });
    require(e, "route", map);
  }

  void route(const Field& f, std::vector<std::string>& out) {
    if (!f.value.IsSequence()) {
      type_error(f, "a list of provider names");
      return;
    }
    if (f.value.size() == 0) {
      error(f.line, f.path, "must name at least one provider");
      return;
    }
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node item = f.value[i];
      Field entry{"", item, index_path(f.path, i), line_of(item), line_of(item)};
      if (item.IsNull()) entry.line = entry.key_line = f.line;
      auto name = text(entry);
      if (!name) continue;
      auto first = std::find(out.begin(), out.end(), *name);
      if (first != out.end()) {
        error(entry.line, entry.path,
              "provider " + quote(*name) + " is listed twice (first at " +
                  index_path(f.path, first - out.begin()) + ")");
        continue;
      }
      out.push_back(*name);
      route_refs_.push_back(RouteRef{*name, entry.path, entry.line});
    }
  }

  void validate(const Field& map, Validate& v) {
    v.enabled = true;
    entries(map, kValidateKeys, [&](const Field& f) {
      if (f.key == "tool_call") {
        assign(v.tool_call, choice(f, Choices<ToolCallCheck>(kToolCallChecks)));
      } else if (f.key == "tool_names") {
        tool_names(f, v);
      } else if (f.key == "arguments") {
        assign(v.arguments, choice(f, Choices<ArgumentsCheck>(kArgumentsChecks)));
      } else if (f.key == "content") {
        assign(v.content, choice(f, Choices<ContentCheck>(kContentChecks)));
      } else if (f.key == "allow_truncated") {
        assign(v.allow_truncated, boolean(f));
      }
    });
  }

  void tool_names(const Field& f, Validate& v) {
    if (f.value.IsScalar() && f.value.Scalar() == "declared") {
      v.tool_names_declared = true;
      return;
    }
    if (!f.value.IsSequence() || f.value.size() == 0) {
      type_error(f, "\"declared\" or a non-empty list of tool names");
      return;
    }
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node item = f.value[i];
      Field entry{"", item, index_path(f.path, i), line_of(item), line_of(item)};
      if (item.IsNull()) entry.line = entry.key_line = f.line;
      if (auto name = text(entry)) {
        if (name->empty()) {
          error(entry.line, entry.path, "must not be empty");
        } else {
          v.tool_names.push_back(*name);
        }
      }
    }
  }

  void retries(const Field& map, Retries& r) {
    bool ok = true;
    Entries e = entries(map, kRetriesKeys, [&](const Field& f) {
      if (f.key == "max") {
        std::optional<std::int64_t> v = integer(f, 0, 10);
        assign(r.max, v);
      } else {
        std::optional<std::int64_t> v = integer(f, f.key == "retry_after_cap_ms" ? 0 : 1);
        ok = ok && v.has_value();
        if (f.key == "base_backoff_ms") assign(r.base_backoff_ms, v);
        if (f.key == "max_backoff_ms") assign(r.max_backoff_ms, v);
        if (f.key == "retry_after_cap_ms") assign(r.retry_after_cap_ms, v);
      }
    });
    if (ok && r.max_backoff_ms < r.base_backoff_ms) {
      const Field* at = e.find("max_backoff_ms");
      if (!at) at = e.find("base_backoff_ms");
      error(at->line, at->path,
            "max_backoff_ms (" + std::to_string(r.max_backoff_ms) +
                ") must be at least base_backoff_ms (" + std::to_string(r.base_backoff_ms) + ")");
    }
  }

  void bands(const Field& map, Bands& b) {
    bool ok = true;
    Entries e = entries(map, kBandsKeys, [&](const Field& f) {
      if (f.key == "window_s") {
        assign(b.window_s, integer(f, 1));
        return;
      }
      std::optional<double> v = ratio(f);
      ok = ok && v.has_value();
      if (f.key == "move_above") assign(b.move_above, v);
      if (f.key == "underused_below") assign(b.underused_below, v);
      if (f.key == "healthy_low") assign(b.healthy_low, v);
      if (f.key == "healthy_high") assign(b.healthy_high, v);
    });
    if (!ok) return;
    auto blame = [&](std::string_view preferred, std::string_view other) {
      const Field* at = e.find(preferred);
      return at ? at : e.find(other);
    };
    if (b.underused_below >= b.move_above) {
      const Field* at = blame("underused_below", "move_above");
      error(at->line, at->path,
            "underused_below (" + format_number(b.underused_below) +
                ") must be less than move_above (" + format_number(b.move_above) + ")");
    }
    if (b.healthy_low > b.healthy_high) {
      const Field* at = blame("healthy_low", "healthy_high");
      error(at->line, at->path,
            "healthy_low (" + format_number(b.healthy_low) + ") must not exceed healthy_high (" +
                format_number(b.healthy_high) + ")");
    }
  }

  void breaker(const Field& map, Breaker& b) {
    entries(map, kBreakerKeys, [&](const Field& f) {
      if (f.key == "failures") assign(b.failures, integer(f, 1, 1000));
      if (f.key == "cooldown_ms") assign(b.cooldown_ms, integer(f, 1));
    });
  }

  void adapt(const Field& map, Adapt& a) {
    bool ok = true;
    Entries e = entries(map, kAdaptKeys, [&](const Field& f) {
      if (f.key == "min_requests") {
        assign(a.min_requests, integer(f, 1));
        return;
      }
      std::optional<double> v = ratio(f);
      ok = ok && v.has_value();
      if (f.key == "bypass_above") assign(a.bypass_above, v);
      if (f.key == "restore_below") assign(a.restore_below, v);
      if (f.key == "probe") assign(a.probe, v);
    });
    if (!ok) return;
    // Without a gap the primary would flap between bypass and restore.
    if (a.restore_below >= a.bypass_above) {
      const Field* at = e.find("restore_below");
      if (!at) at = e.find("bypass_above");
      if (!at) at = &map;
      error(at->line, at->path,
            "restore_below (" + format_number(a.restore_below) +
                ") must be less than bypass_above (" + format_number(a.bypass_above) + ")");
    }
    // Without probes a bypassed primary is never measured again, so never restored.
    if (a.probe <= 0) {
      const Field* at = e.find("probe");
      error(at->line, at->path,
            "must be more than 0: probes are how a bypassed primary is restored");
    }
  }

  // A `budget:` block; `allowed` says whether on_exceeded may be chosen (workloads only).
  void budget(const Field& map, Keys allowed, Budget& b) {
    Entries e = entries(map, allowed, [&](const Field& f) {
      if (f.key == "daily_usd") assign(b.daily_micro_usd, price(f));
      if (f.key == "on_exceeded")
        assign(b.on_exceeded, choice(f, Choices<BudgetAction>(kBudgetActions)));
    });
    if (map.value.IsNull() || map.value.IsMap()) require(e, "daily_usd", map);
  }

  // A variable name; the value is never echoed: what is not a name is often the secret.
  std::optional<std::string> env_name(const Field& f) {
    auto s = text(f);
    if (!s) return std::nullopt;
    if (!is_env_name(*s)) {
      error(f.line, f.path,
            "must be the name of an environment variable ([A-Z_][A-Z0-9_]*); the value is not "
            "shown, in case it is the key itself");
      return std::nullopt;
    }
    return s;
  }

  void auth(const Field& map, Auth& a) {
    a.enabled = true;
    Entries e = entries(map, kAuthKeys, [&](const Field& f) {
      if (f.key == "keys") client_keys(f, a.keys);
      if (f.key == "metrics_key_env") assign(a.metrics_key_env, env_name(f));
    });
    if (map.value.IsNull() || map.value.IsMap()) require(e, "keys", map);
  }

  void client_keys(const Field& f, std::vector<ClientKey>& out) {
    if (!f.value.IsSequence() || f.value.size() == 0) {
      type_error(f, "a non-empty list of keys");
      return;
    }
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node item = f.value[i];
      Field entry{"", item, index_path(f.path, i), line_of(item), line_of(item)};
      if (item.IsNull()) entry.line = entry.key_line = f.line;
      if (!item.IsMap()) {
        type_error(entry, "a map");
        continue;
      }
      ClientKey key;
      key.line = entry.line;
      Entries e = entries(entry, kClientKeyKeys, [&](const Field& g) {
        if (g.key == "name") {
          if (auto s = text(g)) {
            if (s->empty()) error(g.line, g.path, "must not be empty");
            key.name = *s;
          }
        } else if (g.key == "key_env") {
          assign(key.key_env, env_name(g));
        } else if (g.key == "key_sha256") {
          key_digest(g, key.key_sha256);
        } else if (g.key == "workloads") {
          key_workloads(g, key);
        } else if (g.key == "budget") {
          budget(g, kKeyBudgetKeys, key.budget.emplace());
        }
      });
      require(e, "name", entry);
      require(e, "workloads", entry);
      const Field* from_env = e.find("key_env");
      const Field* digest = e.find("key_sha256");
      if (from_env == nullptr && digest == nullptr) {
        error(entry.line, entry.path, "needs one of key_env or key_sha256");
      } else if (from_env != nullptr && digest != nullptr) {
        error(digest->key_line, digest->path, "key_env and key_sha256 exclude each other");
      }
      if (!key.name.empty()) {
        auto first = std::find_if(out.begin(), out.end(),
                                  [&](const ClientKey& k) { return k.name == key.name; });
        if (first != out.end()) {
          error(entry.line, entry.path,
                "key name " + quote(key.name) + " is used twice (first at line " +
                    std::to_string(first->line) + ")");
        }
      }
      out.push_back(std::move(key));
    }
  }

  void key_digest(const Field& f, std::string& out) {
    auto s = text(f);
    if (!s) return;
    bool hex = s->size() == kSha256HexDigits &&
               std::all_of(s->begin(), s->end(), [](unsigned char c) { return std::isxdigit(c); });
    if (!hex) {
      error(f.line, f.path,
            "must be a SHA-256 digest, 64 hex digits (echo -n KEY | sha256sum); the value is not "
            "shown, in case it is the key itself");
      return;
    }
    out = *s;
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }

  void key_workloads(const Field& f, ClientKey& key) {
    if (f.value.IsScalar() && f.value.Scalar() == "all") {
      key.all_workloads = true;
      return;
    }
    if (!f.value.IsSequence() || f.value.size() == 0) {
      type_error(f, "\"all\" or a non-empty list of workload names");
      return;
    }
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node item = f.value[i];
      Field entry{"", item, index_path(f.path, i), line_of(item), line_of(item)};
      if (item.IsNull()) entry.line = entry.key_line = f.line;
      if (auto name = text(entry)) {
        key.workloads.push_back(*name);
        key_workload_refs_.push_back(WorkloadRef{*name, entry.path, entry.line});
      }
    }
  }

  // Each workload a key names must exist (workloads may be defined after auth:).
  void check_key_workloads(const Config& config) {
    std::vector<std::string> names;
    for (const Workload& w : config.workloads) names.push_back(w.name);
    for (const WorkloadRef& ref : key_workload_refs_) {
      if (std::find(names.begin(), names.end(), ref.workload) != names.end()) continue;
      std::string message = "unknown workload " + quote(ref.workload);
      if (auto suggestion = closest(ref.workload, names)) {
        message += " (did you mean " + quote(*suggestion) + "?)";
      }
      error(ref.line, ref.path, std::move(message));
    }
  }

  void check_routes() {
    for (const RouteRef& ref : route_refs_) {
      if (std::find(provider_names_.begin(), provider_names_.end(), ref.provider) !=
          provider_names_.end()) {
        continue;
      }
      std::string message = "unknown provider " + quote(ref.provider);
      if (auto suggestion = closest(ref.provider, provider_names_)) {
        message += " (did you mean " + quote(*suggestion) + "?)";
      }
      error(ref.line, ref.path, std::move(message));
    }
  }

  std::string file_;
  const ParseOptions& options_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> provider_names_;  // every defined name, valid or not
  std::vector<RouteRef> route_refs_;
  std::vector<WorkloadRef> key_workload_refs_;
};

}  // namespace

LoadResult parse(std::string_view yaml, std::string_view file, const ParseOptions& options) {
  return Parser(file, options).run(yaml);
}

}  // namespace backstop::config
