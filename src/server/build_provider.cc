// Providers built from their config entries.
#include "server/build_provider.h"

#include <utility>

#include "providers/http_provider.h"
#include "providers/simulated_provider.h"

namespace backstop::server {
namespace {

using core::ErrorCode;

// The upstream key from the provider's api_key_env; empty when none is configured.
core::Result<std::string> read_key(const config::Provider& p, const EnvReader& env) {
  if (p.api_key_env.empty()) return std::string();
  const char* value = env(p.api_key_env.c_str());
  if (value == nullptr || *value == '\0') {
    return core::fail(ErrorCode::kInvalidArgument, "provider \"" + p.name +
                                                       "\": environment variable " + p.api_key_env +
                                                       " (api_key_env) is not set");
  }
  return std::string(value);
}

// The fault rates a simulated provider runs with: its stack's, when simulation.stacks names it.
const config::Simulation& faults_of(const config::Provider& p) {
  for (const auto& [stack, rates] : p.stack_faults) {
    if (stack == p.stack) return rates;
  }
  return p.simulation;
}

}  // namespace

core::Result<std::unique_ptr<providers::Provider>> build_provider(
    const config::Provider& p, const dialects::Registry& dialects, const EnvReader& env) {
  if (p.kind == config::ProviderKind::kSimulated) {
    providers::SimulatedOptions o;
    o.name = p.name;
    o.model = p.model;
    o.latency_p50_ms = p.simulation.latency_p50_ms;
    o.latency_p99_ms = p.simulation.latency_p99_ms;
    o.seed = p.simulation.seed;
    const config::Simulation& sim = faults_of(p);
    o.rates.no_tool_call = sim.no_tool_call;
    o.rates.unknown_tool = sim.unknown_tool;
    o.rates.invalid_json = sim.invalid_json;
    o.rates.schema = sim.schema;
    o.rates.empty = sim.empty;
    o.rates.truncated = sim.truncated;
    o.rates.rate_limited = sim.rate_limited;
    o.rates.server_error = sim.server_error;
    o.rates.timeout = sim.timeout;
    for (const config::SimulationEpisode& e : p.simulation.episodes) {
      o.episodes.push_back({static_cast<std::uint64_t>(e.from_call),
                            static_cast<std::uint64_t>(e.to_call),
                            {e.no_tool_call, e.unknown_tool, e.invalid_json, e.schema, e.empty,
                             e.truncated, e.rate_limited, e.server_error, e.timeout}});
    }
    o.timeout_ms = p.timeout_ms;
    auto simulated = std::make_unique<providers::SimulatedProvider>(std::move(o));
    simulated->pin_stack(p.stack);
    return simulated;
  }
  auto key = read_key(p, env);
  if (!key) return std::unexpected(key.error());
  providers::HttpProviderOptions o;
  o.name = p.name;
  o.dialect = dialects.find_kind(p.dialect);
  if (o.dialect == nullptr) {
    std::string kinds;
    for (const std::string& name : dialects.upstream_kinds()) kinds += name + ", ";
    return core::fail(ErrorCode::kInvalidArgument, "provider \"" + p.name + "\": unknown kind \"" +
                                                       p.dialect + "\" (kinds: " + kinds +
                                                       "simulated)");
  }
  o.base_url = p.base_url;
  o.model = p.model;
  o.api_key = std::move(*key);
  o.ca_file = p.ca_file;
  o.connect_timeout_ms = p.connect_timeout_ms;
  o.first_token_timeout_ms = p.first_token_timeout_ms;
  o.idle_timeout_ms = p.idle_timeout_ms;
  o.timeout_ms = p.timeout_ms;
  o.default_max_tokens = p.max_tokens;
  o.api_version = p.anthropic_version;
  auto provider = providers::HttpProvider::create(std::move(o));
  if (!provider) return std::unexpected(provider.error());
  (*provider)->pin_stack(p.stack);
  return std::unique_ptr<providers::Provider>(std::move(*provider));
}

}  // namespace backstop::server
