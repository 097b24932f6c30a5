#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "config/config.h"
#include "core/log.h"
#include "http/client.h"
#include "ledger/ledger.h"
#include "ledger/ledger_read.h"
#include "report/report.h"
#include "routing/router.h"
#include "server/gateway.h"

namespace backstop::cli {
namespace {

namespace net = boost::asio;

constexpr const char* kWorkloads[] = {"agentic", "classify", "docs-qa"};

const char* kCities[] = {"Paris", "Lagos", "Osaka", "Lima", "Oslo", "Pune", "Quito", "Hanoi"};
const char* kQuestions[] = {"How do I rotate API keys?", "What is the rate limit per team?",
                            "How do I export usage as CSV?", "Where are audit logs kept?"};
const char* kTickets[] = {"I was charged twice this month", "The export button crashes",
                          "Please add SSO for our team", "How do I change my avatar?"};

// The workload of the i-th demo request: half agentic, a quarter each of the others.
int workload_of(int i) {
  int r = i % 4;
  return r < 2 ? 0 : r - 1;
}

std::string request_body(int i) {
  boost::json::object body;
  body["model"] = kWorkloads[workload_of(i)];
  boost::json::array messages;
  switch (workload_of(i)) {
    case 0: {
      messages.push_back({{"role", "user"},
                          {"content", std::string("What's the weather in ") + kCities[i % 8] +
                                          " right now, in celsius?"}});
      body["tools"] = boost::json::parse(R"([
        {"type":"function","function":{"name":"get_weather","description":"Current weather",
          "parameters":{"type":"object","properties":{
            "city":{"type":"string","minLength":1},
            "unit":{"type":"string","enum":["c","f"]}},
           "required":["city","unit"],"additionalProperties":false}}},
        {"type":"function","function":{"name":"search_docs","description":"Search the docs",
          "parameters":{"type":"object","properties":{
            "query":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":10}},
           "required":["query"]}}}])");
      break;
    }
    case 1: {
      messages.push_back({{"role", "system"}, {"content", "Classify the support ticket."}});
      messages.push_back({{"role", "user"}, {"content", kTickets[i % 4]}});
      body["response_format"] = boost::json::parse(R"({"type":"json_schema","json_schema":{
        "name":"ticket","schema":{"type":"object","properties":{
          "label":{"type":"string","enum":["billing","bug","feature","other"]},
          "confidence":{"type":"number","minimum":0,"maximum":1}},
         "required":["label","confidence"],"additionalProperties":false}}})");
      break;
    }
    default: {
      messages.push_back({{"role", "system"}, {"content", "Answer from the product docs."}});
      messages.push_back({{"role", "user"}, {"content", kQuestions[i % 4]}});
      break;
    }
  }
  body["messages"] = std::move(messages);
  return boost::json::serialize(body);
}

struct Sample {
  int workload = 0;
  int status = 0;
  std::string served_by;
  std::string fallback_reason;
  double latency_ms = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  bool transport_error = false;
};

struct Traffic {
  const http::Origin* origin;
  int total;
  int next = 0;
  int done = 0;
  std::vector<Sample> samples;
};

void progress(const Traffic& t) {
  const int width = 30;
  int filled = t.done * width / t.total;
  std::fprintf(stderr, "\r  [%.*s%*s] %d/%d requests", filled,
               "==============================", width - filled, "", t.done, t.total);
  if (t.done == t.total) std::fprintf(stderr, "\n");
}

net::awaitable<void> client_loop(http::Client& client, Traffic& t, const core::Clock& clock) {
  while (t.next < t.total) {
    int i = t.next++;
    http::ClientRequest request;
    request.target = "/v1/chat/completions";
    request.headers = {{"content-type", "application/json"}};
    request.body = request_body(i);
    request.timeout = std::chrono::milliseconds(20'000);
    auto started = clock.now();
    auto response = co_await client.send(*t.origin, std::move(request));
    Sample s;
    s.workload = workload_of(i);
    s.latency_ms = core::elapsed_ms(started, clock.now());
    if (!response) {
      s.transport_error = true;
    } else {
      s.status = response->status;
      s.served_by = std::string(response->header("x-backstop-served-by"));
      s.fallback_reason = std::string(response->header("x-backstop-fallback-reason"));
      if (response->status == 200) {
        boost::system::error_code ec;
        auto body = boost::json::parse(response->body, ec);
        if (!ec && body.is_object()) {
          if (const auto* usage = body.as_object().if_contains("usage");
              usage && usage->is_object()) {
            const auto& u = usage->as_object();
            if (const auto* p = u.if_contains("prompt_tokens"); p && p->is_int64())
              s.input_tokens = p->as_int64();
            if (const auto* c = u.if_contains("completion_tokens"); c && c->is_int64())
              s.output_tokens = c->as_int64();
          }
        }
      } else if (response->status == 502) {
        // Every target failed: the reasons are in the attempts.
        boost::system::error_code ec;
        auto body = boost::json::parse(response->body, ec);
        if (!ec) {
          if (const auto* attempts = body.find_pointer("/error/attempts", ec);
              attempts && attempts->is_array() && !attempts->as_array().empty()) {
            const auto& first = attempts->as_array().front();
            if (const auto* reason = first.find_pointer("/reason", ec);
                reason && reason->is_string()) {
              s.fallback_reason = std::string(reason->as_string());
            }
          }
        }
      }
    }
    t.samples.push_back(std::move(s));
    ++t.done;
    if (t.done % std::max(1, t.total / 20) == 0 || t.done == t.total) progress(t);
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::string dollars(std::int64_t micro) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.4f", static_cast<double>(micro) / 1e6);
  return buf;
}

// The demo's config with its ledger at `ledger_path`, as text (it is also written out, for
// `backstop report` and `backstop plan` to read after the run).
std::string demo_config_with_ledger(const std::string& ledger_path) {
  std::string yaml(config::demo_yaml());
  const std::string_view memory = R"(ledger: {path: ""}      # spend kept in memory)";
  if (auto at = yaml.find(memory); at != std::string::npos) {
    yaml.replace(at, memory.size(),
                 "ledger: {path: \"" + ledger_path + "\"}   # the demo's run, for report and plan");
  }
  return yaml;
}

// The run's HTML report, written beside its ledger in `dir`; its path, or empty when the
// ledger could not be read.
std::string write_html_report(const config::Config& cfg, const std::string& dir) {
  auto rows = ledger::read_requests(dir + "/ledger.db", {});
  if (!rows) {
    std::fprintf(stderr, "backstop demo: %s\n", rows.error().message.c_str());
    return {};
  }
  const std::string path = dir + "/report.html";
  std::ofstream(path) << report::render_html(report::build_report(*rows, &cfg), *rows);
  return path;
}

}  // namespace

int demo(const DemoOptions& options) {
  // The run's ledger and config in a folder of their own, so that report and plan can read
  // them afterwards.
  char dir_template[] = "/tmp/backstop-demo-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  std::string config_file;
  std::string yaml(config::demo_yaml());
  if (dir != nullptr) {
    yaml = demo_config_with_ledger(std::string(dir) + "/ledger.db");
    config_file = std::string(dir) + "/demo.yaml";
    std::ofstream(config_file) << yaml;
  }
  config::LoadResult loaded =
      config::parse(yaml, config_file.empty() ? "<demo>" : config_file, config_options());
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  const config::Config& cfg = *loaded.config;
  core::StderrLogger logger(core::LogLevel::kWarn);
  server::GatewayOptions gopts;
  gopts.logger = &logger;
  auto gateway = server::Gateway::create(loaded.config, std::move(gopts));
  if (!gateway) {
    std::fprintf(stderr, "backstop demo: %s\n", gateway.error().message.c_str());
    return 1;
  }
  if (auto started = (*gateway)->start(); !started) {
    std::fprintf(stderr, "backstop demo: %s\n", started.error().message.c_str());
    return 1;
  }
  std::printf(
      "backstop demo: gateway on 127.0.0.1:%u (%d workers), simulated primary v4-flash "
      "and fallback claude\nsending %d requests, %d in flight, across agentic, classify and "
      "docs-qa\n",
      static_cast<unsigned>((*gateway)->port()), (*gateway)->threads(), options.requests,
      options.concurrency);
  std::fflush(stdout);

  http::Origin origin{false, "127.0.0.1", (*gateway)->port(), "", ""};
  core::SystemClock clock;
  Traffic traffic{&origin, options.requests, 0, 0, {}};
  traffic.samples.reserve(static_cast<std::size_t>(options.requests));
  auto started = clock.now();
  {
    net::io_context loop(1);
    http::Client client(loop);
    for (int c = 0; c < options.concurrency; ++c) {
      net::co_spawn(loop, client_loop(client, traffic, clock), net::detached);
    }
    loop.run();
  }
  double wall_s = core::elapsed_ms(started, clock.now()) / 1000;

  // Spend per workload from the ledger; what the served tokens would cost on the
  // fallback (the route's last target) alone.
  std::map<std::string, std::int64_t> spend;
  for (const auto& row : (*gateway)->spend().totals()) spend[row.workload] += row.cost_micro_usd;
  (*gateway)->stop();
  (*gateway)->wait();

  std::printf("\n%-9s %8s %9s %-10s %-42s %8s %8s %10s %13s\n", "workload", "requests", "fallback",
              "band", "top failure reasons", "p50 ms", "p99 ms", "spend", "fallback-only");
  int transport_errors = 0;
  std::int64_t spend_all = 0;
  std::int64_t fallback_only_all = 0;
  for (int w = 0; w < 3; ++w) {
    const config::Workload* wc = cfg.find_workload(kWorkloads[w]);
    const config::Provider* last = cfg.find_provider(wc->route.back());
    const ledger::Price fallback_price = routing::to_ledger_price(last->price);
    std::vector<double> latencies;
    std::map<std::string, int> reasons;
    int requests = 0;
    int not_primary = 0;
    int failed = 0;
    std::int64_t fallback_only = 0;
    for (const Sample& s : traffic.samples) {
      if (s.workload != w) continue;
      ++requests;
      if (s.transport_error) {
        ++transport_errors;
        continue;
      }
      latencies.push_back(s.latency_ms);
      if (s.served_by != wc->route.front()) ++not_primary;
      if (s.status != 200) ++failed;
      if (!s.fallback_reason.empty()) ++reasons[s.fallback_reason];
      chat::Usage usage;
      usage.input_tokens = s.input_tokens;
      usage.output_tokens = s.output_tokens;
      fallback_only += ledger::cost_micro_usd(usage, fallback_price);
    }
    std::vector<std::pair<int, std::string>> top;
    for (const auto& [reason, n] : reasons) top.push_back({-n, reason});
    std::sort(top.begin(), top.end());
    std::string top_text;
    for (std::size_t k = 0; k < top.size() && k < 3; ++k) {
      if (!top_text.empty()) top_text += ", ";
      top_text += top[k].second + " " + std::to_string(-top[k].first);
    }
    if (top_text.empty()) top_text = "-";
    double ratio = requests ? static_cast<double>(not_primary) / requests : 0;
    char rate[16];
    std::snprintf(rate, sizeof rate, "%.1f%%", ratio * 100);
    std::printf("%-9s %8d %9s %-10s %-42s %8.1f %8.1f %10s %13s\n", kWorkloads[w], requests, rate,
                std::string(routing::to_string(routing::band_of(ratio, wc->bands))).c_str(),
                top_text.c_str(), percentile(latencies, 0.5), percentile(latencies, 0.99),
                dollars(spend[kWorkloads[w]]).c_str(), dollars(fallback_only).c_str());
    if (failed > 0)
      std::printf("          (%d of them failed on every target: HTTP 502)\n", failed);
    spend_all += spend[kWorkloads[w]];
    fallback_only_all += fallback_only;
  }
  double saved = fallback_only_all > 0
                     ? 100.0 * static_cast<double>(fallback_only_all - spend_all) /
                           static_cast<double>(fallback_only_all)
                     : 0;
  std::printf(
      "\nall: %d requests in %.1f s; spend %s, the same served traffic on the fallback alone "
      "%s (%.0f%% saved)\n",
      options.requests, wall_s, dollars(spend_all).c_str(), dollars(fallback_only_all).c_str(),
      saved);
  std::printf(
      "bands: fallback rate under %.0f%% under-used (move more traffic to the primary), "
      "%.0f-%.0f%% healthy, above %.0f%% move (the primary is wrong for this traffic)\n",
      cfg.workloads.front().bands.underused_below * 100,
      cfg.workloads.front().bands.healthy_low * 100, cfg.workloads.front().bands.healthy_high * 100,
      cfg.workloads.front().bands.move_above * 100);
  if (transport_errors > 0) {
    std::fprintf(stderr, "backstop demo: %d requests got no HTTP answer\n", transport_errors);
    return 1;
  }
  if (!config_file.empty()) {
    (*gateway)->stop();  // every ledger row written
    (*gateway)->wait();
    std::printf(
        "\nthis run's ledger is %s/ledger.db; read it with\n"
        "  backstop report --config %s\n"
        "  backstop plan --config %s --gpu-hour-usd 2 --tokens-per-second 1000\n",
        dir, config_file.c_str(), config_file.c_str());
    const std::string page = write_html_report(cfg, std::string(dir));
    if (!page.empty()) std::printf("the HTML report (plots): %s\n", page.c_str());
  }
  return 0;
}

}  // namespace backstop::cli
