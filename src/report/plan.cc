#include "report/plan.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "core/json_string.h"
#include "report/report.h"

namespace backstop::report {
namespace {

constexpr double kMillion = 1'000'000.0;
constexpr std::int64_t kDayMs = 86'400'000;

std::int64_t day_number(std::int64_t unix_ms) {
  return unix_ms / kDayMs - (unix_ms % kDayMs < 0 ? 1 : 0);
}

double blended_per_million(const ApiPrice& price, double output_share) {
  return price.input * (1 - output_share) + price.output * output_share;
}

// Tokens/day at which `cost_per_day` (one node) buys as many tokens as the API at
// `usd_per_million` for the share `paid_share` of them; absent beyond the node's capacity.
std::optional<double> break_even(double cost_per_day, double usd_per_million, double paid_share,
                                 double capacity) {
  const double per_token = usd_per_million * paid_share / kMillion;
  if (per_token <= 0) return std::nullopt;
  const double tokens = cost_per_day / per_token;
  if (tokens > capacity) return std::nullopt;
  return tokens;
}

Comparison compare(const PlanResult& r, const ApiPrice& api, double one_node_per_day) {
  Comparison c;
  c.api = api.name;
  c.usd_per_million = blended_per_million(api, r.input.output_share);
  c.api_cost_per_day = r.input.tokens_per_day * c.usd_per_million / kMillion;
  c.break_even_tokens_per_day =
      break_even(one_node_per_day, c.usd_per_million, 1.0, r.capacity_tokens_per_day);
  return c;
}

std::string format(const char* format, auto... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

// "12.5M", "850.0k", "2.9B": tokens for people.
std::string tokens(double n) {
  if (n >= 1e9) return format("%.1fB", n / 1e9);
  if (n >= 1e6) return format("%.1fM", n / 1e6);
  if (n >= 1e3) return format("%.1fk", n / 1e3);
  return format("%.0f", n);
}

void append_number(std::string& out, double n) { out += format("%.6f", n); }

void append_optional(std::string& out, const std::optional<double>& n) {
  if (n) {
    append_number(out, *n);
  } else {
    out += "null";
  }
}

void append_comparison(std::string& out, const std::optional<Comparison>& c) {
  if (!c) {
    out += "null";
    return;
  }
  out += "{\"api\":";
  core::append_json_string(out, c->api);
  out += ",\"usd_per_million\":";
  append_number(out, c->usd_per_million);
  out += ",\"api_cost_per_day\":";
  append_number(out, c->api_cost_per_day);
  out += ",\"break_even_tokens_per_day\":";
  append_optional(out, c->break_even_tokens_per_day);
  out += '}';
}

std::string break_even_text(const std::optional<double>& n) {
  return n ? "break-even " + tokens(*n) + " tokens/day"
           : "no break-even: a node costs more per token than this API even at capacity";
}

}  // namespace

PlanResult plan(const PlanInput& input) {
  PlanResult r;
  r.input = input;
  const Hardware& h = input.hardware;
  r.capacity_tokens_per_day = h.tokens_per_second * h.utilization * 86'400;
  const double one_node_per_day = h.gpu_hour_usd * static_cast<double>(h.gpus) * 24;
  r.nodes = r.capacity_tokens_per_day > 0
                ? std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(
                                                input.tokens_per_day / r.capacity_tokens_per_day)))
                : 1;
  r.self_host_cost_per_day = one_node_per_day * static_cast<double>(r.nodes);
  r.self_host_usd_per_million =
      r.capacity_tokens_per_day > 0 ? one_node_per_day / r.capacity_tokens_per_day * kMillion : 0;
  if (input.managed) {
    r.managed = compare(r, *input.managed, one_node_per_day);
    r.blended_cost_per_day =
        r.self_host_cost_per_day + input.fallback_rate * r.managed->api_cost_per_day;
    r.blended_break_even_tokens_per_day =
        break_even(one_node_per_day, r.managed->usd_per_million, 1 - input.fallback_rate,
                   r.capacity_tokens_per_day);
  }
  if (input.primary_api) r.primary_api = compare(r, *input.primary_api, one_node_per_day);
  return r;
}

Traffic traffic_of(const std::vector<ledger::RequestRow>& rows) {
  Traffic t;
  if (rows.empty()) return t;
  double all = 0, output = 0;
  std::int64_t routed = 0, not_primary = 0;
  std::int64_t first = rows.front().unix_ms, last = rows.front().unix_ms;
  for (const ledger::RequestRow& row : rows) {
    first = std::min(first, row.unix_ms);
    last = std::max(last, row.unix_ms);
    if (const ledger::AttemptRow* a = standing_attempt(row)) {
      all += static_cast<double>(a->input_tokens + a->cached_input_tokens + a->output_tokens);
      output += static_cast<double>(a->output_tokens);
    }
    if (row.outcome == "rejected") continue;
    ++routed;
    if (row.outcome != "primary") ++not_primary;
  }
  t.days = day_number(last) - day_number(first) + 1;
  t.tokens_per_day = all / static_cast<double>(t.days);
  t.output_share = all > 0 ? output / all : 0;
  t.fallback_rate = routed > 0 ? static_cast<double>(not_primary) / static_cast<double>(routed) : 0;
  return t;
}

ApiPrice api_price(const config::Provider& provider) {
  return ApiPrice{provider.name, static_cast<double>(provider.price.input) / kMillion,
                  static_cast<double>(provider.price.output) / kMillion};
}

std::string render_plan_table(const std::vector<PlanResult>& plans) {
  std::string out;
  for (const PlanResult& r : plans) {
    const PlanInput& in = r.input;
    const Hardware& h = in.hardware;
    out += "== " + in.workload + "\n";
    out += format("traffic          %s tokens/day, %.0f%% output, fallback rate %.1f%% (%s)\n",
                  tokens(in.tokens_per_day).c_str(), in.output_share * 100, in.fallback_rate * 100,
                  in.measured ? "measured in the ledger" : "assumed");
    out +=
        format("self-hosted      %" PRId64 " node(s) x %" PRId64
               " GPU x $%.2f/h x 24 h = $%.2f/day; a node serves %s tokens/day (%.0f tokens/s at "
               "%.0f%%), $%.3f/M at capacity\n",
               r.nodes, h.gpus, h.gpu_hour_usd, r.self_host_cost_per_day,
               tokens(r.capacity_tokens_per_day).c_str(), h.tokens_per_second, h.utilization * 100,
               r.self_host_usd_per_million);
    for (const auto* c : {&r.managed, &r.primary_api}) {
      if (!*c) continue;
      out +=
          format("via %-12s $%.3f/M x %s = $%.2f/day; %s\n", (*c)->api.c_str(),
                 (*c)->usd_per_million, tokens(in.tokens_per_day).c_str(), (*c)->api_cost_per_day,
                 break_even_text((*c)->break_even_tokens_per_day).c_str());
    }
    if (r.blended_cost_per_day) {
      out += format("blended          $%.2f + %.1f%% x $%.2f = $%.2f/day; %s\n",
                    r.self_host_cost_per_day, in.fallback_rate * 100, r.managed->api_cost_per_day,
                    *r.blended_cost_per_day,
                    break_even_text(r.blended_break_even_tokens_per_day).c_str());
    }
    // The cheapest way to serve this traffic among those priced.
    std::vector<std::pair<std::string, double>> options = {
        {"self-hosted", r.self_host_cost_per_day}};
    if (r.blended_cost_per_day) {
      options.emplace_back("self-hosted with the fallback", *r.blended_cost_per_day);
      options.emplace_back(r.managed->api + " alone", r.managed->api_cost_per_day);
    }
    if (r.primary_api && r.managed) {
      options.emplace_back(
          r.primary_api->api + "'s API with the fallback",
          r.primary_api->api_cost_per_day + in.fallback_rate * r.managed->api_cost_per_day);
    } else if (r.primary_api) {
      options.emplace_back(r.primary_api->api + "'s API", r.primary_api->api_cost_per_day);
    }
    if (r.blended_cost_per_day) options.erase(options.begin());  // the fallback share is real
    const auto cheapest =
        std::min_element(options.begin(), options.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    out += format("cheapest         %s, $%.2f/day\n", cheapest->first.c_str(), cheapest->second);
    out += "\n";
  }
  return out;
}

std::string render_plan_json(const std::vector<PlanResult>& plans) {
  std::string out = "{\"format_version\":1,\"workloads\":[";
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const PlanResult& r = plans[i];
    const Hardware& h = r.input.hardware;
    if (i > 0) out += ',';
    out += "{\"workload\":";
    core::append_json_string(out, r.input.workload);
    out += ",\"tokens_per_day\":";
    append_number(out, r.input.tokens_per_day);
    out += ",\"output_share\":";
    append_number(out, r.input.output_share);
    out += ",\"fallback_rate\":";
    append_number(out, r.input.fallback_rate);
    out += ",\"measured\":";
    out += r.input.measured ? "true" : "false";
    out += ",\"hardware\":{\"gpu_hour_usd\":";
    append_number(out, h.gpu_hour_usd);
    out += ",\"gpus\":" + std::to_string(h.gpus) + ",\"tokens_per_second\":";
    append_number(out, h.tokens_per_second);
    out += ",\"utilization\":";
    append_number(out, h.utilization);
    out += "},\"capacity_tokens_per_day\":";
    append_number(out, r.capacity_tokens_per_day);
    out += ",\"nodes\":" + std::to_string(r.nodes) + ",\"self_host_cost_per_day\":";
    append_number(out, r.self_host_cost_per_day);
    out += ",\"self_host_usd_per_million\":";
    append_number(out, r.self_host_usd_per_million);
    out += ",\"managed\":";
    append_comparison(out, r.managed);
    out += ",\"blended_cost_per_day\":";
    append_optional(out, r.blended_cost_per_day);
    out += ",\"blended_break_even_tokens_per_day\":";
    append_optional(out, r.blended_break_even_tokens_per_day);
    out += ",\"primary_api\":";
    append_comparison(out, r.primary_api);
    out += '}';
  }
  out += "]}\n";
  return out;
}

}  // namespace backstop::report
