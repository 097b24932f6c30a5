#include "eval/runner.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>

#include "eval/expect.h"
#include "http/client.h"
#include "providers/connections.h"
#include "routing/router.h"

namespace backstop::eval {
namespace {

namespace net = boost::asio;

// Whether a failed call is worth another try: the transport's fault, not the request's.
bool transient(const core::Error& error) {
  switch (error.code) {
    case core::ErrorCode::kRateLimited:
    case core::ErrorCode::kConnect:
    case core::ErrorCode::kTimeout:
    case core::ErrorCode::kBrokenStream:
    case core::ErrorCode::kBadResponse:
      return true;
    case core::ErrorCode::kUpstream:
      return error.upstream_status == 0 || error.upstream_status >= 500;
    default:
      return false;
  }
}

// What the cases share while a run goes on: one loop, one client, one schema cache.
struct Run {
  const std::vector<PreparedCase>& cases;
  providers::Provider& provider;
  const ledger::Price& price;
  const core::Clock& clock;
  const RunOptions& options;
  net::io_context& loop;
  providers::Connections& http;
  validation::SchemaCache schemas{};
  std::vector<CaseRecord> out{};
  std::size_t next = 0;
  Progress progress{};
};

void judge(Run& run, const PreparedCase& c, const chat::ChatResponse& answer, CaseRecord& record) {
  validation::Verdict verdict;
  if (c.checks) verdict = c.checks->check(c.request, answer, run.schemas);
  if (verdict.pass) verdict = check_expect(c.source->expect, answer, run.schemas);
  record.verdict = verdict.pass ? "pass" : "fail";
  if (!verdict.pass) {
    record.reason = std::string(validation::to_string(verdict.reason));
    record.detail = verdict.detail;
  }
  record.input_tokens = answer.usage.input_tokens;
  record.cached_input_tokens = answer.usage.cached_input_tokens;
  record.output_tokens = answer.usage.output_tokens;
  record.cost_micro_usd = ledger::cost_micro_usd(answer.usage, run.price);
}

net::awaitable<void> run_one(Run& run, std::size_t index) {
  const PreparedCase& c = run.cases[index];
  CaseRecord& record = run.out[index];
  record.case_id = c.source->id;
  record.workload = c.source->workload;
  const auto started = run.clock.now();
  core::Error last;
  for (int attempt = 0; attempt < std::max(1, run.options.max_attempts); ++attempt) {
    if (attempt > 0 && run.options.backoff_ms > 0) {
      net::steady_timer timer(run.loop,
                              std::chrono::milliseconds(run.options.backoff_ms << (attempt - 1)));
      co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    }
    ++record.attempts;
    providers::CallContext call{run.loop, run.http, run.clock, c.source->id};
    auto answer = co_await run.provider.complete(c.request, call);
    if (answer) {
      judge(run, c, *answer, record);
      break;
    }
    last = answer.error();
    record.verdict = "error";
    record.reason = std::string(validation::to_string(routing::reason_of(last)));
    record.detail = last.message;
    if (!transient(last)) break;
  }
  record.latency_ms = std::llround(core::elapsed_ms(started, run.clock.now()));
}

void count(Progress& progress, const CaseRecord& record) {
  ++progress.done;
  if (record.verdict == "pass") {
    ++progress.passed;
  } else if (record.verdict == "fail") {
    ++progress.failed;
  } else {
    ++progress.errors;
  }
}

// One of `concurrency` lanes: takes the next case until none is left.
net::awaitable<void> lane(Run& run) {
  while (run.next < run.cases.size()) {
    const std::size_t index = run.next++;
    co_await run_one(run, index);
    count(run.progress, run.out[index]);
    if (run.options.progress) run.options.progress(run.progress);
  }
}

net::awaitable<void> ask_stack(providers::Provider& provider, providers::CallContext& call,
                               std::string& out) {
  out = co_await provider.detect_stack(call);
}

}  // namespace

Prepared prepare_cases(const Suite& suite, const config::Config& config, const Decoders& decoders) {
  Prepared out;
  std::map<std::string, std::shared_ptr<const validation::Validator>, std::less<>> checks;
  for (const config::Workload& w : config.workloads) {
    checks[w.name] = w.validate.enabled
                         ? std::shared_ptr<const validation::Validator>(
                               validation::make_validator(routing::to_spec(w.validate)))
                         : nullptr;
  }
  for (const Case& c : suite.cases) {
    auto workload = checks.find(c.workload);
    if (workload == checks.end()) {
      out.errors.push_back({c.line, "workload \"" + c.workload + "\" is not in the config"});
      continue;
    }
    auto decoder = decoders.find(c.dialect);
    if (decoder == decoders.end()) {
      out.errors.push_back({c.line, "dialect \"" + c.dialect + "\" cannot be decoded here"});
      continue;
    }
    auto request = decoder->second(c.request);
    if (!request) {
      out.errors.push_back({c.line, "request: " + request.error().message});
      continue;
    }
    request->model = c.workload;
    out.cases.push_back(PreparedCase{&c, std::move(*request), workload->second});
  }
  return out;
}

std::string detect_stack(providers::Provider& provider, const core::Clock& clock,
                         std::chrono::milliseconds timeout) {
  net::io_context loop;
  providers::Connections http(loop);
  providers::CallContext call{loop, http, clock, "stack-probe", timeout};
  std::string label;
  net::co_spawn(loop, ask_stack(provider, call, label), net::detached);
  loop.run();
  return label;
}

std::vector<CaseRecord> run_cases(const std::vector<PreparedCase>& cases,
                                  providers::Provider& provider, const ledger::Price& price,
                                  const core::Clock& clock, const RunOptions& options) {
  net::io_context loop;
  providers::Connections http(loop);
  Run run{cases, provider, price, clock, options, loop, http};
  run.out.resize(cases.size());
  run.progress.total = static_cast<std::int64_t>(cases.size());
  const int lanes = std::clamp<int>(options.concurrency, 1,
                                    static_cast<int>(std::max<std::size_t>(1, cases.size())));
  for (int i = 0; i < lanes; ++i) net::co_spawn(loop, lane(run), net::detached);
  loop.run();
  return std::move(run.out);
}

}  // namespace backstop::eval
