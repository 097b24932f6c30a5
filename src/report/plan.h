#pragma once
// `backstop plan`: self-hosting a workload's primary versus buying its tokens from an API.
// A projection from estimates (GPU $/hour, tokens/s), so it is in double dollars, not the
// ledger's exact micro-dollars.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "ledger/ledger.h"

namespace backstop::report {

// The self-hosted node: its GPUs' price and the throughput it sustains.
struct Hardware {
  double gpu_hour_usd = 0;       // all-in price of one GPU for one hour
  std::int64_t gpus = 1;         // GPUs in one node (the unit that serves the model)
  double tokens_per_second = 0;  // the node's sustained throughput at full load
  double utilization = 0.6;      // the share of that throughput the traffic keeps busy
};

// An API's price, in USD per million tokens.
struct ApiPrice {
  std::string name;
  double input = 0;
  double output = 0;
};

// What to compare for one workload.
struct PlanInput {
  std::string workload;
  double tokens_per_day = 0;
  double output_share = 0.2;   // output tokens / all tokens
  double fallback_rate = 0.2;  // the share still sent to the managed model
  bool measured = false;       // tokens and fallback rate come from the ledger
  Hardware hardware;
  std::optional<ApiPrice> managed;      // the workload's fallback (the managed model)
  std::optional<ApiPrice> primary_api;  // the primary's own hosted API
};

// Self-hosting against one API.
struct Comparison {
  std::string api;
  double usd_per_million = 0;  // blended at the input's output share
  double api_cost_per_day = 0;
  // Tokens/day at which one node costs what the API does; absent when the node's cost per
  // token stays above the API's even at its capacity (self-hosting never pays).
  std::optional<double> break_even_tokens_per_day;
};

struct PlanResult {
  PlanInput input;
  double capacity_tokens_per_day = 0;    // one node at the utilization
  std::int64_t nodes = 1;                // nodes the traffic needs
  double self_host_cost_per_day = 0;     // gpu_hour_usd x gpus x 24 x nodes
  double self_host_usd_per_million = 0;  // at capacity
  std::optional<Comparison> managed;
  // Self-hosted plus the fallback share bought from the managed model.
  std::optional<double> blended_cost_per_day;
  std::optional<double> blended_break_even_tokens_per_day;
  std::optional<Comparison> primary_api;
};

// The comparison for one workload. kInvalidArgument-free: inputs are checked by the caller.
[[nodiscard]] PlanResult plan(const PlanInput& input);

// A workload's traffic measured in the ledger's rows (already filtered to it).
struct Traffic {
  double tokens_per_day = 0;  // tokens of the attempt that stands for each request, per day
  double output_share = 0;
  double fallback_rate = 0;
  std::int64_t days = 0;  // UTC days from the first row's to the last row's, both included
};
[[nodiscard]] Traffic traffic_of(const std::vector<ledger::RequestRow>& rows);

// USD per million tokens from a config price (micro-dollars per million).
[[nodiscard]] ApiPrice api_price(const config::Provider& provider);

[[nodiscard]] std::string render_plan_table(const std::vector<PlanResult>& plans);
// The stable JSON document the README describes (format_version 1).
[[nodiscard]] std::string render_plan_json(const std::vector<PlanResult>& plans);

}  // namespace backstop::report
