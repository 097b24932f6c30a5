// `backstop report` and `backstop plan`: the ledger read back, for people and for scripts.
#include "report/report.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <tuple>

#include "cli/commands.h"
#include "config/config.h"
#include "ledger/ledger_read.h"
#include "report/plan.h"
#include "report/stack_split.h"

namespace backstop::cli {
namespace {

// The config at `file`, or null after printing its errors.
std::shared_ptr<const config::Config> load(const std::string& file) {
  config::LoadResult loaded = config::load_file(file, config_options());
  for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
  return loaded.config;
}

// True for a real calendar day written "2026-12-01".
bool is_day(const std::string& text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  const std::chrono::year_month_day day{std::chrono::year(std::stoi(text.substr(0, 4))),
                                        std::chrono::month(std::stoul(text.substr(5, 2))),
                                        std::chrono::day(std::stoul(text.substr(8, 2)))};
  return day.ok();
}

// Reads the ledger, saying how far it got on stderr only once it has taken over a second.
core::Result<std::vector<ledger::RequestRow>> read_ledger(const std::string& path,
                                                          const ledger::ReadFilter& filter) {
  const auto start = std::chrono::steady_clock::now();
  bool told = false;
  auto rows = ledger::read_requests(path, filter, [&](std::int64_t count) {
    if (std::chrono::steady_clock::now() - start < std::chrono::seconds(1)) return;
    std::fprintf(stderr, "\rbackstop: reading %s: %lld requests", path.c_str(),
                 static_cast<long long>(count));
    told = true;
  });
  if (told) std::fprintf(stderr, "\n");
  return rows;
}

// The node: each flag given, else the config's plan: block, else the default; nullopt after
// saying which input is missing.
std::optional<report::Hardware> hardware_of(const PlanOptions& options, const config::Plan& plan) {
  const auto pick = [](double flag, const std::optional<double>& configured, double fallback) {
    return flag >= 0 ? flag : configured.value_or(fallback);
  };
  report::Hardware h;
  h.gpu_hour_usd = pick(options.gpu_hour_usd, plan.gpu_hour_usd, -1);
  h.gpus = options.gpus >= 0 ? options.gpus : plan.gpus.value_or(1);
  h.tokens_per_second = pick(options.tokens_per_second, plan.tokens_per_second, -1);
  h.utilization = pick(options.utilization, plan.utilization, 0.6);
  for (const auto& [value, flag, key] :
       {std::tuple{h.gpu_hour_usd, "--gpu-hour-usd", "gpu_hour_usd"},
        std::tuple{h.tokens_per_second, "--tokens-per-second", "tokens_per_second"}}) {
    if (value < 0) {
      std::fprintf(stderr, "backstop plan: pass %s, or set plan.%s in the config\n", flag, key);
      return std::nullopt;
    }
  }
  return h;
}

}  // namespace

bool write_out(const std::string& text, const std::string& file, const char* command) {
  if (file.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return true;
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr, "%s: cannot write %s\n", command, file.c_str());
    return false;
  }
  return true;
}

int report(const ReportOptions& options) {
  std::shared_ptr<const config::Config> config;
  if (!options.config_file.empty()) {
    config = load(options.config_file);
    if (!config) return 1;
  }
  std::string path = options.ledger_file;
  if (path.empty() && config) path = config->ledger.path;
  if (path.empty()) {
    std::fprintf(stderr,
                 "backstop report: no ledger to read: pass --ledger FILE, or a --config whose "
                 "ledger.path is set\n");
    return 1;
  }
  for (const std::string* day : {&options.since, &options.until}) {
    if (!day->empty() && !is_day(*day)) {
      std::fprintf(stderr, "backstop report: \"%s\" is not a day: write it 2026-12-01\n",
                   day->c_str());
      return 1;
    }
  }
  ledger::ReadFilter filter{options.since, options.until, std::nullopt, std::nullopt};
  if (!options.workload.empty()) filter.workload = options.workload;
  filter.key_name = options.key;
  auto rows = read_ledger(path, filter);
  if (!rows) {
    std::fprintf(stderr, "backstop report: %s\n", rows.error().message.c_str());
    return 1;
  }
  const report::Report built =
      report::build_report(*rows, config.get(), options.since, options.until);
  std::string out = options.format == "json"   ? report::render_json(built)
                    : options.format == "html" ? report::render_html(built, *rows)
                                               : report::render_table(built);
  if (options.format == "table") {
    std::vector<report::StackSplit> splits;
    for (const report::Summary& s : built.workloads) {
      if (!s.by_stack.segments.empty()) splits.push_back(s.by_stack);
    }
    const std::string split = report::render_stack_split(splits);
    if (!split.empty()) out += "\n" + split;
  }
  return write_out(out, options.out_file, "backstop report") ? 0 : 1;
}

int plan(const PlanOptions& options) {
  if (options.config_file.empty()) {
    std::fprintf(stderr, "backstop plan: the API prices come from a config: pass --config FILE\n");
    return 1;
  }
  const auto config = load(options.config_file);
  if (!config) return 1;
  const auto hardware = hardware_of(options, config->plan);
  if (!hardware) return 1;
  const std::string path = !options.ledger_file.empty() ? options.ledger_file : config->ledger.path;
  std::map<std::string, std::vector<ledger::RequestRow>> by_workload;
  if (!path.empty()) {
    auto rows = read_ledger(path, {});
    // The config's own ledger may not exist yet; traffic then comes from --tokens-per-day.
    const bool optional = options.ledger_file.empty() && options.tokens_per_day >= 0;
    if (!rows && !(optional && rows.error().code == core::ErrorCode::kNotFound)) {
      std::fprintf(stderr, "backstop plan: %s\n", rows.error().message.c_str());
      return 1;
    }
    if (rows) {
      for (auto& row : *rows) by_workload[row.workload].push_back(std::move(row));
    }
  }
  if (by_workload.empty() && options.tokens_per_day < 0) {
    std::fprintf(stderr,
                 "backstop plan: no traffic to plan for: pass --tokens-per-day N or a ledger "
                 "with rows (--ledger FILE)\n");
    return 1;
  }
  std::vector<report::PlanResult> plans;
  for (const config::Workload& w : config->workloads) {
    if (w.route.empty()) continue;
    report::PlanInput in;
    in.workload = w.name;
    in.hardware = *hardware;
    if (auto it = by_workload.find(w.name); it != by_workload.end()) {
      const report::Traffic traffic = report::traffic_of(it->second);
      in.tokens_per_day = traffic.tokens_per_day;
      in.output_share = traffic.output_share;
      in.fallback_rate = traffic.fallback_rate;
      in.measured = true;
    } else if (options.tokens_per_day < 0) {
      continue;  // no traffic of its own in the ledger
    }
    if (options.tokens_per_day >= 0) in.tokens_per_day = options.tokens_per_day;
    if (options.output_share >= 0) in.output_share = options.output_share;
    const config::Provider* primary = config->find_provider(w.route.front());
    const config::Provider* managed = config->find_provider(w.route.back());
    if (managed != nullptr && w.route.size() > 1) in.managed = report::api_price(*managed);
    if (primary != nullptr && (primary->price.input > 0 || primary->price.output > 0)) {
      in.primary_api = report::api_price(*primary);
    }
    plans.push_back(report::plan(in));
  }
  const std::string out =
      options.format == "json" ? report::render_plan_json(plans) : report::render_plan_table(plans);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace backstop::cli
