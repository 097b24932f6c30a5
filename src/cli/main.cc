// backstop: a validating fallback router for LLM APIs.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "cli/process.h"

int main(int argc, char** argv) {
  using namespace backstop;  // a binary's entry point, not a header
  CLI::App app{"backstop: a validating fallback router for LLM APIs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "backstop 0.1.0");

  std::string config_file;
  std::string listen;
  int threads = -1;
  auto* serve = app.add_subcommand("serve", "run the gateway");
  serve->add_option("--config", config_file, "config file (YAML)")->required();
  serve->add_option("--listen", listen, "HOST:PORT, overrides the config's listen");
  serve->add_option("--threads", threads, "worker threads (0: one per core)")
      ->check(CLI::Range(0, 256));

  std::string check_file;
  auto* check = app.add_subcommand("check-config", "validate a config file");
  check->add_option("file", check_file, "config file (YAML)")->required();

  cli::DemoOptions demo_options;
  auto* demo = app.add_subcommand("demo", "run the embedded demo: gateway, traffic, summary");
  demo->add_option("--requests", demo_options.requests, "requests to send")
      ->check(CLI::Range(1, 100000));
  demo->add_option("--concurrency", demo_options.concurrency, "requests in flight")
      ->check(CLI::Range(1, 1024));

  cli::MockCliOptions mock_options;
  auto* mock = app.add_subcommand("mock", "run a mock upstream speaking OpenAI and Anthropic");
  mock->add_option("--listen", mock_options.listen, "HOST:PORT (port 0: the OS picks; printed)");
  mock->add_option("--threads", mock_options.threads, "worker threads")->check(CLI::Range(1, 256));
  mock->add_option("--chunk-interval-ms", mock_options.chunk_interval_ms,
                   "wait between the frames of every stream (x-mock-chunk-interval-ms per request)")
      ->check(CLI::Range(0, 60'000));
  mock->add_option("--stream-chunks", mock_options.stream_chunks,
                   "filler text deltas at the head of every stream (x-mock-stream-chunks per "
                   "request)")
      ->check(CLI::Range(0, 100'000));

  cli::ReportOptions report_options;
  auto* report = app.add_subcommand("report", "per workload: fallback rate, band, spend, savings");
  report->add_option("--config", report_options.config_file, "config file: bands, prices");
  report->add_option("--ledger", report_options.ledger_file, "ledger file (else the config's)");
  report->add_option("--since", report_options.since, "first UTC day, 2026-12-01");
  report->add_option("--until", report_options.until, "last UTC day, 2026-12-01");
  report->add_option("--workload", report_options.workload, "only this workload");
  std::string report_key;
  auto* report_key_option =
      report->add_option("--key", report_key, "only this client key (its name; \"\": none)");
  report->add_option("--format", report_options.format, "table, json or html")
      ->check(CLI::IsMember({"table", "json", "html"}));
  report->add_option("--out", report_options.out_file, "write to this file, not stdout");

  cli::PlanOptions plan_options;
  auto* plan = app.add_subcommand("plan", "self-hosting versus API: cost per day, break-even");
  plan->add_option("--config", plan_options.config_file, "config file: the API prices")->required();
  plan->add_option("--ledger", plan_options.ledger_file, "ledger file (else the config's)");
  plan->add_option("--tokens-per-day", plan_options.tokens_per_day,
                   "traffic, instead of the ledger's")
      ->check(CLI::Range(0.0, 1e15));
  plan->add_option("--output-share", plan_options.output_share,
                   "output tokens / all tokens (else measured, or 0.2)")
      ->check(CLI::Range(0.0, 1.0));
  plan->add_option("--gpu-hour-usd", plan_options.gpu_hour_usd,
                   "all-in USD per GPU-hour (else the config's plan:)")
      ->check(CLI::Range(0.0, 1e6));
  plan->add_option("--gpus", plan_options.gpus, "GPUs per node (else plan:, or 1)")
      ->check(CLI::Range(1, 4096));
  plan->add_option("--tokens-per-second", plan_options.tokens_per_second,
                   "a node's sustained tokens/s at full load (else plan:)")
      ->check(CLI::Range(1e-6, 1e12));
  plan->add_option("--utilization", plan_options.utilization,
                   "share of that throughput in use (else plan:, or 0.6)")
      ->check(CLI::Range(0.01, 1.0));
  plan->add_option("--format", plan_options.format, "table or json")
      ->check(CLI::IsMember({"table", "json"}));

  cli::EvalRunOptions eval_run_options;
  cli::EvalReadOptions eval_read_options;
  auto* eval = app.add_subcommand("eval", "eval suites against a provider, runs compared");
  eval->require_subcommand(1);
  auto* eval_run = eval->add_subcommand("run", "run a suite against a provider and store the run");
  eval_run->add_option("--config", eval_run_options.config_file, "config file (YAML)")->required();
  eval_run->add_option("--suite", eval_run_options.suite_file, "suite (JSONL)")->required();
  eval_run->add_option("--provider", eval_run_options.provider, "a provider of the config")
      ->required();
  eval_run->add_option("--stack", eval_run_options.stack,
                       "inference-stack label (else the provider's stack:, else detected)");
  eval_run->add_option("--concurrency", eval_run_options.concurrency, "cases in flight")
      ->check(CLI::Range(1, 256));
  auto* eval_diff =
      eval->add_subcommand("diff", "what changed from run A to run B; exit 1 on drift");
  eval_diff->add_option("run_a", eval_read_options.run_a, "RUN_ID")->required();
  eval_diff->add_option("run_b", eval_read_options.run_b, "RUN_ID")->required();
  eval_diff->add_option("--format", eval_read_options.format, "table or html")
      ->check(CLI::IsMember({"table", "html"}));
  eval_diff->add_option("--out", eval_read_options.out_file, "write to this file, not stdout");
  auto* eval_list = eval->add_subcommand("list", "the stored runs, oldest first");
  for (auto* sub : {eval_diff, eval_list}) {
    sub->add_option("--config", eval_read_options.config_file, "config file: its ledger.path");
    sub->add_option("--ledger", eval_read_options.ledger_file, "the database (else the config's)");
  }

  CLI11_PARSE(app, argc, argv);

  cli::ignore_broken_pipes();
  const cli::FdLimit fds = cli::raise_fd_limit();
  if (fds.now < fds.hard) {
    std::fprintf(stderr, "backstop: could not raise the open-file limit from %llu to %llu\n",
                 static_cast<unsigned long long>(fds.now),
                 static_cast<unsigned long long>(fds.hard));
  } else if (*serve || *mock) {
    // Each client connection of a proxied stream holds two descriptors: the limit caps them.
    std::fprintf(stderr, "backstop: open-file limit %llu (was %llu)\n",
                 static_cast<unsigned long long>(fds.now),
                 static_cast<unsigned long long>(fds.before));
  }

  try {
    if (*serve) return cli::serve(config_file, listen, threads);
    if (*check) return cli::check_config(check_file);
    if (*demo) return cli::demo(demo_options);
    if (*report) {
      // Given empty, it asks for the requests without a key; not given, for every key.
      if (report_key_option->count() > 0) report_options.key = report_key;
      return cli::report(report_options);
    }
    if (*plan) return cli::plan(plan_options);
    if (*mock) return cli::mock(mock_options);
    if (*eval_run) return cli::eval_run(eval_run_options);
    if (*eval_diff) return cli::eval_diff(eval_read_options);
    if (*eval_list) return cli::eval_list(eval_read_options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "backstop: %s\n", e.what());
    return 1;
  }
  return 2;
}
