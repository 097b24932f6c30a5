#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "providers/provider.h"
#include "providers/synth.h"

namespace backstop::providers {

// How often each kind of failure happens, each a probability in [0, 1]; their sum should
// not exceed 1 (what is left is the rate of correct answers).
struct FaultRates {
  double no_tool_call = 0;
  double unknown_tool = 0;
  double invalid_json = 0;
  double schema = 0;
  double empty = 0;
  double truncated = 0;
  double rate_limited = 0;
  double server_error = 0;
  double timeout = 0;
};

// Fault rates that replace the provider's own for calls from_call up to to_call (0-based).
struct SimulatedEpisode {
  std::uint64_t from_call = 0;
  std::uint64_t to_call = 0;
  FaultRates rates;
};

struct SimulatedOptions {
  std::string name;
  std::string model;
  double latency_p50_ms = 0;  // median latency of an answer
  double latency_p99_ms = 0;  // its 99th percentile (lognormal); <= p50: always p50
  std::uint64_t seed = 0;
  FaultRates rates;
  std::vector<SimulatedEpisode> episodes;  // the first that holds a call gives its rates
  std::int64_t timeout_ms = 30'000;        // how long a timeout fault waits before failing
};

// What one call does, decided before it waits.
struct SimulatedDraw {
  enum class Outcome { kAnswer, kRateLimited, kServerError, kTimeout };
  Outcome outcome = Outcome::kAnswer;
  Fault fault = Fault::kNone;  // kAnswer: the defect in the answer
  double latency_ms = 0;
  std::uint64_t random = 0;  // for synthesize
};

// An in-process model for the demo, tests and planning: answers are synthesized, with
// latencies and faults drawn from the configured distribution. The n-th call (counted
// per provider) makes the same draw for the same seed, so runs are reproducible.
class SimulatedProvider final : public Provider {
 public:
  explicit SimulatedProvider(SimulatedOptions options);

  [[nodiscard]] const std::string& name() const override { return options_.name; }
  [[nodiscard]] const std::string& model() const override { return options_.model; }
  // Waits the drawn latency on context.loop, then answers or fails: kRateLimited (429),
  // kUpstream (500), or after timeout_ms kTimeout "no answer within N ms". A call whose
  // context.cancel is requested ends at once: kUpstream, "cancelled".
  boost::asio::awaitable<core::Result<chat::ChatResponse>> complete(
      const chat::ChatRequest& request, CallContext& context) override;
  // The same answer as complete() (the same draw for the n-th call, the same waits and
  // errors, all before the first event), as a stream: its text and arguments cut into a
  // few deltas, handed out a few events per batch.
  boost::asio::awaitable<core::Result<std::unique_ptr<EventStream>>> stream(
      const chat::ChatRequest& request, CallContext& context) override;

  // The draw of call number `call` (0-based); a pure function of the options.
  [[nodiscard]] SimulatedDraw draw(std::uint64_t call) const;

 private:
  SimulatedOptions options_;
  double sigma_ = 0;  // of the latency's lognormal
  std::atomic<std::uint64_t> calls_{0};
};

}  // namespace backstop::providers
