// `backstop eval run | diff | list`: suites against a provider, runs compared.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <random>

#include "cli/commands.h"
#include "config/config.h"
#include "core/clock.h"
#include "dialects/builtin/builtin.h"
#include "eval/diff.h"
#include "eval/run_store.h"
#include "eval/runner.h"
#include "eval/suite.h"
#include "routing/router.h"
#include "server/build_provider.h"

namespace backstop::cli {
namespace {

// The request decoders of the dialects a suite may be written in: every registered one.
eval::Decoders decoders() {
  eval::Decoders out;
  for (const dialects::Dialect* d : dialects::builtin().all()) {
    out.emplace(std::string(d->name()),
                [d](std::string_view body) { return d->decode_request(body); });
  }
  return out;
}

std::shared_ptr<const config::Config> load_config(const std::string& file) {
  config::LoadResult loaded = config::load_file(file, config_options());
  for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
  return loaded.config;
}

// Tells stderr how far the run is: a line rewritten in place on a terminal, else a line
// every tenth of the suite.
class ProgressLine {
 public:
  explicit ProgressLine(std::int64_t total)
      : tty_(::isatty(STDERR_FILENO) == 1), every_(std::max<std::int64_t>(1, total / 10)) {}
  void operator()(const eval::Progress& p) {
    if (!tty_ && p.done % every_ != 0 && p.done != p.total) return;
    std::fprintf(stderr, "%seval: %lld/%lld cases, %lld passed, %lld failed, %lld errors%s",
                 tty_ ? "\r" : "", static_cast<long long>(p.done), static_cast<long long>(p.total),
                 static_cast<long long>(p.passed), static_cast<long long>(p.failed),
                 static_cast<long long>(p.errors), tty_ && p.done != p.total ? "" : "\n");
  }

 private:
  bool tty_;
  std::int64_t every_;
};

// Pass counts per workload, then the failed cases, on stdout.
void print_summary(const eval::StoredRun& run) {
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> per_workload;
  for (const eval::CaseRecord& c : run.cases) {
    auto& [passed, total] = per_workload[c.workload];
    ++total;
    passed += c.verdict == "pass" ? 1 : 0;
  }
  std::printf("provider %s (%s), stack %s\n", run.run.provider.c_str(), run.run.model.c_str(),
              run.run.stack.c_str());
  for (const auto& [name, counts] : per_workload) {
    std::printf("  %-16s %lld/%lld passed\n", name.c_str(), static_cast<long long>(counts.first),
                static_cast<long long>(counts.second));
  }
  for (const eval::CaseRecord& c : run.cases) {
    if (c.verdict == "pass") continue;
    std::printf("  %s %s (%s): %s: %s\n", c.verdict.c_str(), c.case_id.c_str(), c.workload.c_str(),
                c.reason.c_str(), c.detail.c_str());
  }
}

// The database of the runs: --ledger, else the config's ledger.path; empty after an error.
std::string database_of(const EvalReadOptions& options, const char* command) {
  if (!options.ledger_file.empty()) return options.ledger_file;
  if (options.config_file.empty()) {
    std::fprintf(stderr,
                 "backstop eval %s: pass --config FILE (its ledger.path) or --ledger FILE\n",
                 command);
    return {};
  }
  auto config = load_config(options.config_file);
  if (!config) return {};
  if (config->ledger.path.empty()) {
    std::fprintf(stderr, "backstop eval %s: %s has no ledger.path: runs live in that database\n",
                 command, options.config_file.c_str());
  }
  return config->ledger.path;
}

}  // namespace

int eval_run(const EvalRunOptions& options) {
  auto config = load_config(options.config_file);
  if (!config) return 1;
  if (config->ledger.path.empty()) {
    std::fprintf(stderr, "backstop eval run: set ledger.path in %s: runs are stored there\n",
                 options.config_file.c_str());
    return 1;
  }
  const config::Provider* found = config->find_provider(options.provider);
  if (found == nullptr) {
    std::fprintf(stderr, "backstop eval run: no provider \"%s\" in %s\n", options.provider.c_str(),
                 options.config_file.c_str());
    return 1;
  }
  // --stack stands for the provider's stack: a simulated provider takes that stack's faults.
  config::Provider provider_config = *found;
  if (!options.stack.empty()) provider_config.stack = options.stack;
  const config::Provider* pc = &provider_config;
  auto suite = eval::load_suite(options.suite_file);
  if (!suite) {
    std::fprintf(stderr, "backstop eval run: %s\n", suite.error().message.c_str());
    return 1;
  }
  eval::Prepared prepared = eval::prepare_cases(*suite, *config, decoders());
  for (const auto* errors : {&suite->errors, &prepared.errors}) {
    for (const eval::SuiteError& e : *errors) {
      std::fprintf(stderr, "%s\n", e.to_string(options.suite_file).c_str());
    }
  }
  if (prepared.cases.empty()) {
    std::fprintf(stderr, "backstop eval run: no case of %s can run\n", options.suite_file.c_str());
    return 1;
  }
  auto provider = server::build_provider(*pc, dialects::builtin(),
                                         [](const char* n) { return std::getenv(n); });
  if (!provider) {
    std::fprintf(stderr, "backstop eval run: %s\n", provider.error().message.c_str());
    return 1;
  }
  const core::SystemClock clock;
  std::string stack = pc->stack;
  if (stack.empty()) {
    stack = eval::detect_stack(**provider, clock, std::chrono::milliseconds(2'000));
    (*provider)->set_stack(stack);
  }
  eval::RunOptions run_options;
  run_options.concurrency = options.concurrency;
  run_options.progress = ProgressLine(static_cast<std::int64_t>(prepared.cases.size()));
  eval::StoredRun run;
  run.cases = eval::run_cases(prepared.cases, **provider, routing::to_ledger_price(pc->price),
                              clock, run_options);
  run.run.unix_ms = clock.unix_ms();
  run.run.id = eval::make_run_id(run.run.unix_ms, std::random_device{}());
  run.run.suite = options.suite_file;
  run.run.suite_hash = suite->hash;
  run.run.provider = pc->name;
  run.run.model = pc->model;
  // The answers' system_fingerprint, when they carried one, joined the detected label.
  if (pc->stack.empty() && !(*provider)->stack().empty()) stack = (*provider)->stack();
  run.run.stack = stack.empty() ? "unknown" : stack;
  run.run.cases = static_cast<std::int64_t>(run.cases.size());
  for (const auto& c : run.cases) run.run.passed += c.verdict == "pass" ? 1 : 0;
  if (auto saved = eval::save_run(config->ledger.path, run); !saved) {
    std::fprintf(stderr, "backstop eval run: %s\n", saved.error().message.c_str());
    return 1;
  }
  print_summary(run);
  std::printf("run %s\n", run.run.id.c_str());
  return 0;
}

int eval_list(const EvalReadOptions& options) {
  const std::string path = database_of(options, "list");
  if (path.empty()) return 1;
  auto runs = eval::list_runs(path);
  if (!runs) {
    std::fprintf(stderr, "backstop eval list: %s\n", runs.error().message.c_str());
    return 1;
  }
  const std::string out = eval::render_runs(*runs);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int eval_diff(const EvalReadOptions& options) {
  const std::string path = database_of(options, "diff");
  if (path.empty()) return 1;
  auto a = eval::load_run(path, options.run_a);
  auto b = a ? eval::load_run(path, options.run_b) : a;
  if (!a || !b) {
    std::fprintf(stderr, "backstop eval diff: %s\n", (!a ? a : b).error().message.c_str());
    return 1;
  }
  const eval::RunDiff diff = eval::diff_runs(*a, *b);
  const std::string out =
      options.format == "html" ? eval::render_diff_html(diff) : eval::render_diff(diff);
  if (!write_out(out, options.out_file, "backstop eval diff")) return 1;
  return diff.regression() ? 1 : 0;
}

}  // namespace backstop::cli
