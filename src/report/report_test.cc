#include "report/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "ledger/ledger_read.h"

namespace backstop::report {
namespace {

constexpr std::int64_t kDec1 = 1'796'112'000'000;  // 2026-12-01T08:00:00Z
constexpr std::int64_t kDay = 86'400'000;

constexpr const char* kYaml = R"yaml(
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:1/v1
    model: deepseek-v4-flash
    price: {input: 0.14, output: 0.28}
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:1
    model: claude-sonnet
    price: {input: 3.0, output: 15.0, cached_input: 0.3}
workloads:
  agentic:
    route: [v4, claude]
    bands: {move_above: 0.40, underused_below: 0.02}
  chat:
    route: [v4, claude]
)yaml";

std::shared_ptr<const config::Config> test_config() {
  auto loaded = config::parse(kYaml, "test.yaml");
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  return loaded.config;
}

// Rows that look like a router's: a primary that sometimes fails a check, a fallback that
// answers, now and then both failing, with random tokens and prices of their own.
std::vector<ledger::RequestRow> random_rows(std::size_t n) {
  std::mt19937_64 random(42);
  const auto between = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(random);
  };
  const char* reasons[] = {"invalid_json", "schema", "no_tool_call", "rate_limited"};
  std::vector<ledger::RequestRow> rows;
  for (std::size_t i = 0; i < n; ++i) {
    ledger::RequestRow row;
    row.request_id = "r" + std::to_string(i);
    row.unix_ms = kDec1 + between(0, 3 * kDay);
    row.duration_ms = between(20, 5000);
    row.workload = i % 3 == 0 ? "chat" : "agentic";
    const char* keys[] = {"team-a", "team-b", "ci", ""};
    row.key_name = keys[i % 4];
    const std::int64_t kind = between(0, 9);
    ledger::AttemptRow primary{"v4",
                               "deepseek-v4-flash",
                               "",
                               200,
                               between(10, 50'000),
                               between(0, 1000),
                               between(1, 4000),
                               between(0, 20'000),
                               between(5, 900)};
    if (kind < 7) {
      row.outcome = "primary";
      row.served_by = "v4";
      row.attempts = {primary};
    } else {
      primary.reason = reasons[between(0, 3)];
      ledger::AttemptRow fallback{"claude",
                                  "claude-sonnet",
                                  "",
                                  200,
                                  between(10, 50'000),
                                  between(0, 1000),
                                  between(1, 4000),
                                  between(0, 90'000),
                                  between(50, 3000)};
      if (kind == 9) fallback.reason = "truncated";
      row.outcome = kind == 9 ? "failed" : "fallback";
      row.served_by = kind == 9 ? "" : "claude";
      row.attempts = {primary, fallback};
    }
    rows.push_back(std::move(row));
  }
  rows.push_back(ledger::RequestRow{"refused", kDec1, 1, "", "", "rejected", "", {}});
  return rows;
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("backstop_report_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes rows through the ledger's own writer and reads them back as the CLI does.
  std::vector<ledger::RequestRow> round_trip(const std::vector<ledger::RequestRow>& rows,
                                             const ledger::ReadFilter& filter = {}) {
    const std::string path = (dir_ / "ledger.db").string();
    {
      auto store = ledger::make_sqlite_store(path, {3'600'000, {}});
      EXPECT_TRUE(store);
      for (const auto& row : rows) (*store)->record(row);
      EXPECT_TRUE((*store)->flush());
    }
    auto read = ledger::read_requests(path, filter);
    EXPECT_TRUE(read);
    return *read;
  }

  std::filesystem::path dir_;
};

const Summary& find(const Report& report, const std::string& workload) {
  for (const Summary& s : report.workloads) {
    if (s.workload == workload) return s;
  }
  static const Summary none;
  ADD_FAILURE() << "no workload " << workload;
  return none;
}

TEST_F(ReportTest, SpendAndCounterfactualAreExactToTheMicroDollar) {
  const auto written = random_rows(2000);
  const auto config = test_config();
  const Report report = build_report(round_trip(written), config.get());

  // Summed independently of the report's code, from the rows as written.
  std::map<std::string, std::int64_t> cost, fallback_only, primary_only;
  std::map<std::tuple<std::string, std::string>, std::int64_t> per_model_day;
  std::int64_t total_cost = 0;
  for (const auto& row : written) {
    const ledger::AttemptRow* standing = nullptr;
    for (const auto& a : row.attempts) {
      cost[row.workload] += a.cost_micro_usd;
      total_cost += a.cost_micro_usd;
      per_model_day[{ledger::utc_day(row.unix_ms), a.model}] += a.cost_micro_usd;
      if (a.reason.empty()) standing = &a;
    }
    if (standing == nullptr && !row.attempts.empty()) standing = &row.attempts.back();
    if (standing != nullptr) {
      // claude: $3 / $15 per M, cache reads $0.30; rounded half up per request.
      const std::int64_t millionths = standing->input_tokens * 3'000'000 +
                                      standing->cached_input_tokens * 300'000 +
                                      standing->output_tokens * 15'000'000;
      fallback_only[row.workload] += (millionths + 500'000) / 1'000'000;
      // v4: $0.14 / $0.28 per M, cache reads at the input price.
      const std::int64_t primary_millionths =
          (standing->input_tokens + standing->cached_input_tokens) * 140'000 +
          standing->output_tokens * 280'000;
      primary_only[row.workload] += (primary_millionths + 500'000) / 1'000'000;
    }
  }
  for (const std::string w : {"agentic", "chat"}) {
    const Summary& s = find(report, w);
    EXPECT_EQ(s.cost_micro_usd, cost[w]) << w;
    ASSERT_TRUE(s.fallback_only) << w;
    EXPECT_EQ(s.fallback_only->provider, "claude");
    EXPECT_EQ(s.fallback_only->cost_micro_usd, fallback_only[w]) << w;
    EXPECT_EQ(*s.saved_micro_usd, fallback_only[w] - cost[w]) << w;
    ASSERT_TRUE(s.primary_only) << w;
    EXPECT_EQ(s.primary_only->provider, "v4");
    EXPECT_EQ(s.primary_only->cost_micro_usd, primary_only[w]) << w;
  }
  EXPECT_EQ(report.total.cost_micro_usd, total_cost);
  ASSERT_TRUE(report.total.fallback_only);
  EXPECT_EQ(report.total.fallback_only->cost_micro_usd,
            fallback_only["agentic"] + fallback_only["chat"]);
  ASSERT_TRUE(report.total.primary_only);
  EXPECT_EQ(report.total.primary_only->cost_micro_usd,
            primary_only["agentic"] + primary_only["chat"]);
  std::map<std::tuple<std::string, std::string>, std::int64_t> reported;
  for (const auto& d : report.total.spend) reported[{d.day, d.model}] += d.cost_micro_usd;
  EXPECT_EQ(reported, per_model_day);
}

TEST_F(ReportTest, EachClientKeyHasItsOutcomesAndSpendExactly) {
  const auto written = random_rows(2000);
  const Report report = build_report(round_trip(written), test_config().get());
  // Summed independently, from the rows as written.
  std::map<std::string, KeySummary> expected;
  for (const auto& row : written) {
    KeySummary& k = expected[row.key_name];
    k.key = row.key_name;
    ++k.requests;
    (row.outcome == "primary"    ? k.primary
     : row.outcome == "fallback" ? k.fallback
     : row.outcome == "failed"   ? k.failed
                                 : k.rejected) += 1;
    for (const auto& a : row.attempts) k.cost_micro_usd += a.cost_micro_usd;
  }
  ASSERT_EQ(report.keys.size(), 4u);
  std::int64_t total = 0;
  for (const KeySummary& k : report.keys) {
    const KeySummary& e = expected[k.key];
    EXPECT_EQ(k.requests, e.requests) << k.key;
    EXPECT_EQ(k.primary, e.primary) << k.key;
    EXPECT_EQ(k.fallback, e.fallback) << k.key;
    EXPECT_EQ(k.failed, e.failed) << k.key;
    EXPECT_EQ(k.rejected, e.rejected) << k.key;
    EXPECT_EQ(k.cost_micro_usd, e.cost_micro_usd) << k.key;
    EXPECT_DOUBLE_EQ(k.fallback_rate, static_cast<double>(e.fallback + e.failed) /
                                          static_cast<double>(e.primary + e.fallback + e.failed));
    total += k.cost_micro_usd;
  }
  EXPECT_EQ(report.keys[0].key, "");  // ordered by name
  EXPECT_EQ(report.keys[1].key, "ci");
  EXPECT_EQ(total, report.total.cost_micro_usd);
  EXPECT_NE(render_table(report).find("== per client key"), std::string::npos);
}

TEST_F(ReportTest, TheKeyFilterReadsThatKeysRowsOnly) {
  const auto written = random_rows(400);
  ledger::ReadFilter filter;
  filter.key_name = "team-b";
  const Report report = build_report(round_trip(written, filter), test_config().get());
  std::int64_t requests = 0, cost = 0;
  for (const auto& row : written) {
    if (row.key_name != "team-b") continue;
    ++requests;
    cost += row.cost_micro_usd();
  }
  ASSERT_EQ(report.keys.size(), 1u);
  EXPECT_EQ(report.keys[0].key, "team-b");
  EXPECT_EQ(report.total.requests, requests);
  EXPECT_EQ(report.total.cost_micro_usd, cost);
}

TEST_F(ReportTest, FallbackRateBandAndReasonsFollowTheOutcomes) {
  std::vector<ledger::RequestRow> rows;
  const auto add = [&](std::string outcome, std::vector<std::string> reasons) {
    ledger::RequestRow row{"r", kDec1, 100, "agentic", "", std::move(outcome), "", {}};
    for (auto& reason : reasons) {
      row.attempts.push_back({"v4", "m", std::move(reason), 200, 1, 0, 1, 1, 1});
    }
    rows.push_back(std::move(row));
  };
  for (int i = 0; i < 6; ++i) add("primary", {""});
  add("fallback", {"schema", ""});
  add("fallback", {"invalid_json", ""});
  add("failed", {"schema", "truncated"});
  add("primary", {""});
  add("rejected", {"rejected"});
  const auto config = test_config();
  const Report report = build_report(rows, config.get());
  const Summary& s = find(report, "agentic");
  EXPECT_EQ(s.requests, 11);
  EXPECT_DOUBLE_EQ(s.fallback_rate, 3.0 / 10.0);  // rejected is no verdict on the primary
  EXPECT_EQ(s.band, "watch");  // 30 %: under this workload's move_above 0.40, above 25 %
  EXPECT_EQ(s.failures_by_reason,
            (std::map<std::string, std::int64_t>{
                {"invalid_json", 1}, {"rejected", 1}, {"schema", 2}, {"truncated", 1}}));
  // Without a config: the default bands, where 30 % is still not above move_above 0.30.
  const Report plain = build_report(rows, nullptr);
  EXPECT_EQ(find(plain, "agentic").bands.move_above, 0.30);
  EXPECT_FALSE(find(plain, "agentic").fallback_only);
  EXPECT_NE(find(plain, "agentic").unpriced.find("no config"), std::string::npos);
}

TEST_F(ReportTest, ShadowRowsAreCountedApartFromTheWorkloadsTraffic) {
  std::vector<ledger::RequestRow> rows;
  for (int i = 0; i < 4; ++i) {
    rows.push_back({"r",
                    kDec1,
                    100,
                    "agentic",
                    "",
                    "primary",
                    "v4",
                    {{"v4", "m", "", 200, 10, 0, 5, 100, 90}}});
  }
  const auto shadow = [&](std::string reason) {
    rows.push_back({"r",
                    kDec1,
                    300,
                    "agentic",
                    "",
                    "shadow",
                    "",
                    {{"v4-pro", "pro", std::move(reason), 200, 10, 0, 5, 700, 300}}});
  };
  shadow("");
  shadow("schema");
  shadow("");
  shadow("");
  const auto config = test_config();
  const Report report = build_report(round_trip(rows), config.get());
  const Summary& s = find(report, "agentic");
  EXPECT_EQ(s.requests, 4);
  EXPECT_EQ(s.primary, 4);
  EXPECT_EQ(s.cost_micro_usd, 400);  // the shadow's spend is its own
  EXPECT_TRUE(s.failures_by_reason.empty());
  EXPECT_EQ(s.latency.count("shadow"), 0u);
  ASSERT_EQ(s.shadow.count("v4-pro"), 1u);
  const ShadowFigures& f = s.shadow.at("v4-pro");
  EXPECT_EQ(f.calls, 4);
  EXPECT_EQ(f.failed, 1);
  EXPECT_DOUBLE_EQ(f.would_be_fallback_rate, 0.25);
  EXPECT_EQ(f.failures_by_reason, (std::map<std::string, std::int64_t>{{"schema", 1}}));
  EXPECT_EQ(f.cost_micro_usd, 2800);
  EXPECT_EQ(report.total.requests, 4);
  EXPECT_EQ(report.total.shadow.at("v4-pro").calls, 4);
  EXPECT_NE(render_table(report).find("shadow            v4-pro: 4 calls, would-be fallback rate "
                                      "25.0% (schema 1), $0.002800\n"),
            std::string::npos);
  EXPECT_NE(render_json(report).find("\"shadow\":[{\"provider\":\"v4-pro\",\"calls\":4,"
                                     "\"failed\":1,\"would_be_fallback_rate\":0.250000,"
                                     "\"failures_by_reason\":{\"schema\":1},"
                                     "\"cost_micro_usd\":2800}]"),
            std::string::npos);
}

TEST(Bands, EachBandHasItsAdvice) {
  const config::Bands bands;
  EXPECT_EQ(band_of(0.31, bands), "move");
  EXPECT_EQ(band_of(0.04, bands), "under-used");
  EXPECT_EQ(band_of(0.20, bands), "healthy");
  EXPECT_EQ(band_of(0.07, bands), "watch");
}

TEST_F(ReportTest, LatencyPercentilesAreNearestRankPerOutcome) {
  std::vector<ledger::RequestRow> rows;
  for (int ms = 1; ms <= 200; ++ms) {
    rows.push_back({"r", kDec1, ms, "chat", "", ms % 2 == 0 ? "primary" : "fallback", "", {}});
  }
  const Report report = build_report(rows, nullptr);
  const Summary& s = find(report, "chat");
  EXPECT_EQ(s.latency.at("primary").count, 100);
  EXPECT_EQ(s.latency.at("primary").p50_ms, 100);  // 2, 4, ..., 200: the 50th is 100
  EXPECT_EQ(s.latency.at("primary").p99_ms, 198);
  EXPECT_EQ(s.latency.at("fallback").p50_ms, 99);
  EXPECT_EQ(s.latency.at("fallback").p99_ms, 197);
}

TEST_F(ReportTest, AWorkloadMissingFromTheConfigIsReportedUnpriced) {
  std::vector<ledger::RequestRow> rows = {
      {"r", kDec1, 1, "gone", "", "primary", "v4", {{"v4", "m", "", 200, 10, 0, 10, 5, 1}}}};
  const auto config = test_config();
  const Report report = build_report(rows, config.get());
  EXPECT_FALSE(find(report, "gone").fallback_only);
  EXPECT_NE(find(report, "gone").unpriced.find("not in test.yaml"), std::string::npos);
  EXPECT_FALSE(report.total.fallback_only);
}

TEST(Usd, PrintsMicroDollarsExactly) {
  EXPECT_EQ(usd(12'345'678), "12.345678");
  EXPECT_EQ(usd(5), "0.000005");
  EXPECT_EQ(usd(-1'500'000), "-1.500000");
}

TEST_F(ReportTest, JsonCarriesTheDocumentedFields) {
  const auto config = test_config();
  const std::vector<ledger::RequestRow> rows = {
      {"r",
       kDec1,
       40,
       "chat",
       "",
       "primary",
       "v4",
       {{"v4", "deepseek-v4-flash", "", 200, 1'000'000, 0, 100'000, 168'000, 40}}}};
  const std::string json = render_json(build_report(rows, config.get(), "2026-12-01", ""));
  EXPECT_EQ(json,
            R"({"format_version":1,"since":"2026-12-01","until":null,"priced":true,"workloads":[)"
            R"({"workload":"chat","requests":1,"outcomes":{"primary":1,"fallback":0,"failed":0,)"
            R"("rejected":0},"fallback_rate":0.000000,"band":"under-used","advice":"below 5%: )"
            R"(the primary answers nearly everything; route more traffic through it","bands":)"
            R"({"underused_below":0.050000,"healthy_low":0.100000,"healthy_high":0.250000,)"
            R"("move_above":0.300000},"failures_by_reason":{},"spend":[{"day":"2026-12-01",)"
            R"("provider":"v4","model":"deepseek-v4-flash","attempts":1,"input_tokens":1000000,)"
            R"("cached_input_tokens":0,"output_tokens":100000,"cost_micro_usd":168000}],)"
            R"("cost_micro_usd":168000,"fallback_only":{"provider":"claude","cost_micro_usd":)"
            R"(4500000},"primary_only":{"provider":"v4","cost_micro_usd":168000},)"
            R"("saved_micro_usd":4332000,"unpriced":null,"latency_ms":{"primary":)"
            R"({"count":1,"p50":40,"p99":40}},"shadow":[],"stacks":[]}],"keys":[{"key":"",)"
            R"("requests":1,)"
            R"("outcomes":{"primary":1,"fallback":0,"failed":0,"rejected":0},)"
            R"("fallback_rate":0.000000,"cost_micro_usd":168000}],"total":{"workload":"*",)"
            R"("requests":1,"outcomes":{"primary":1,"fallback":0,"failed":0,"rejected":0},)"
            R"("fallback_rate":0.000000,"band":"under-used","advice":"below 5%: the primary )"
            R"(answers nearly everything; route more traffic through it","bands":)"
            R"({"underused_below":0.050000,"healthy_low":0.100000,"healthy_high":0.250000,)"
            R"("move_above":0.300000},"failures_by_reason":{},"spend":[{"day":"2026-12-01",)"
            R"("provider":"v4","model":"deepseek-v4-flash","attempts":1,"input_tokens":1000000,)"
            R"("cached_input_tokens":0,"output_tokens":100000,"cost_micro_usd":168000}],)"
            R"("cost_micro_usd":168000,"fallback_only":{"provider":"each workload's fallback",)"
            R"("cost_micro_usd":4500000},"primary_only":{"provider":"each workload's primary",)"
            R"("cost_micro_usd":168000},"saved_micro_usd":4332000,"unpriced":null,)"
            R"("latency_ms":{"primary":{"count":1,"p50":40,"p99":40}},"shadow":[],)"
            R"("stacks":[]}})"
            "\n");
}

}  // namespace
}  // namespace backstop::report
