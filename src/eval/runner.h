#pragma once
// Running a suite's cases against one provider.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "eval/run_store.h"
#include "eval/suite.h"
#include "ledger/ledger.h"
#include "providers/provider.h"
#include "validation/validator.h"

namespace backstop::eval {

// Decodes a request body written in one dialect (registered by dialect name at the
// composition root).
using RequestDecoder = std::function<core::Result<chat::ChatRequest>(std::string_view body)>;
using Decoders = std::map<std::string, RequestDecoder, std::less<>>;

// A case ready to run: its request decoded, its workload's checks resolved.
struct PreparedCase {
  const Case* source = nullptr;  // in the suite, which outlives it
  chat::ChatRequest request;
  std::shared_ptr<const validation::Validator> checks;  // the workload's; null: none
};

// The cases that can run; every other case is an error on its line (its workload is not in
// the config, its dialect has no decoder, its request does not decode).
struct Prepared {
  std::vector<PreparedCase> cases;
  std::vector<SuiteError> errors;
};
[[nodiscard]] Prepared prepare_cases(const Suite& suite, const config::Config& config,
                                     const Decoders& decoders);

// How far a run has got.
struct Progress {
  std::int64_t done = 0;
  std::int64_t total = 0;
  std::int64_t passed = 0;
  std::int64_t failed = 0;  // failed a check or an expectation
  std::int64_t errors = 0;  // no answer (after retries)
};

struct RunOptions {
  int concurrency = 4;                            // cases in flight
  int max_attempts = 3;                           // calls per case: transport errors are retried
  std::int64_t backoff_ms = 250;                  // before retry n: backoff_ms * 2^n
  std::function<void(const Progress&)> progress;  // after each case, on the running thread
};

// What the provider says of its inference stack (Provider::detect_stack), asked within
// `timeout` on an event loop of its own; empty when it does not say.
[[nodiscard]] std::string detect_stack(providers::Provider& provider, const core::Clock& clock,
                                       std::chrono::milliseconds timeout);

// Runs every case against `provider` (at most `concurrency` at a time, on one thread with its
// own event loop) and returns their outcomes in suite order: the provider's answer checked
// with the workload's checks, then the case's expectations. Transport errors (connect,
// timeout, 429, 5xx, a broken or undecodable answer) are retried up to max_attempts calls;
// a case still without an answer is verdict error with the reason of its last failure.
[[nodiscard]] std::vector<CaseRecord> run_cases(const std::vector<PreparedCase>& cases,
                                                providers::Provider& provider,
                                                const ledger::Price& price,
                                                const core::Clock& clock,
                                                const RunOptions& options);

}  // namespace backstop::eval
