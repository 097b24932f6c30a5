// `backstop report` and `backstop plan` as a user runs them: the binary on a ledger written by
// the ledger's own writer.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "backstop_test_paths.h"
#include "ledger/ledger.h"

namespace backstop {
namespace {

constexpr std::int64_t kDec1 = 1'796'112'000'000;  // 2026-12-01T08:00:00Z

struct Ran {
  int status = -1;
  std::string output;  // stdout and stderr
};

Ran run(const std::string& args) {
  const std::string command = std::string(BACKSTOP_BINARY_DIR) + "/backstop " + args + " 2>&1";
  Ran r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, n);
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class ReportCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("backstop_report_cli_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::ofstream(config_path()) << "providers:\n"
                                    "  v4: {kind: openai, base_url: http://127.0.0.1:1/v1, model: "
                                    "deepseek-v4-flash, price: {input: 0.14, output: 0.28}}\n"
                                    "  claude: {kind: anthropic, base_url: http://127.0.0.1:1, "
                                    "model: sonnet, price: {input: 3.0, output: 15.0}}\n"
                                    "workloads:\n"
                                    "  agentic: {route: [v4, claude]}\n"
                                    "ledger: {path: " +
                                        ledger_path() + "}\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string ledger_path() const { return (dir_ / "ledger.db").string(); }
  std::string config_path() const { return (dir_ / "backstop.yaml").string(); }

  void write_rows() {
    auto store = ledger::make_sqlite_store(ledger_path(), {3'600'000, {}});
    ASSERT_TRUE(store);
    (*store)->record({"a",
                      kDec1,
                      40,
                      "agentic",
                      "",
                      "primary",
                      "v4",
                      {{"v4", "deepseek-v4-flash", "", 200, 1'000'000, 0, 100'000, 168'000, 40}}});
    (*store)->record({"b",
                      kDec1,
                      900,
                      "agentic",
                      "",
                      "fallback",
                      "claude",
                      {{"v4", "deepseek-v4-flash", "schema", 200, 1000, 0, 100, 168, 40},
                       {"claude", "sonnet", "", 200, 1000, 0, 100, 4500, 800}}});
    ASSERT_TRUE((*store)->flush());
  }

  std::filesystem::path dir_;
};

TEST_F(ReportCliTest, ReportPrintsTheLedgersSpendAndSavingsAsJson) {
  write_rows();
  const Ran r = run("report --config " + config_path() + " --format json");
  ASSERT_EQ(r.status, 0) << r.output;
  // 168000 + 168 + 4500 spent; on claude alone 4500000 + 4500.
  EXPECT_NE(
      r.output.find(R"("cost_micro_usd":172668,"fallback_only":{"provider":"claude",)"
                    R"("cost_micro_usd":4504500},"primary_only":{"provider":"v4","cost_micro_usd":)"
                    R"(168168},"saved_micro_usd":4331832)"),
      std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(R"("fallback_rate":0.500000,"band":"move")"), std::string::npos);
}

TEST_F(ReportCliTest, ReportTableWithoutConfigSaysItCannotPrice) {
  write_rows();
  const Ran r = run("report --ledger " + ledger_path() + " --since 2026-12-01");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("spend             $0.172668"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not priced: no config given"), std::string::npos) << r.output;
}

TEST_F(ReportCliTest, AMissingLedgerIsAnErrorNamingTheFile) {
  const Ran r = run("report --ledger " + ledger_path());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find(ledger_path() + "\": no such file"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(ledger_path()));
}

TEST_F(ReportCliTest, AnOldLedgerIsAnErrorNamingTheFile) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(ledger_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE spend (day TEXT)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const Ran r = run("report --ledger " + ledger_path());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("earlier backstop"), std::string::npos) << r.output;
}

TEST_F(ReportCliTest, ABadDayIsRefused) {
  write_rows();
  const Ran r = run("report --ledger " + ledger_path() + " --since 2026-13-01");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("not a day"), std::string::npos) << r.output;
}

TEST_F(ReportCliTest, PlanPrintsTheBreakEvenFromFlags) {
  const Ran r = run("plan --config " + config_path() +
                    " --tokens-per-day 10000000 --gpu-hour-usd 2 --tokens-per-second 600 "
                    "--format json");
  ASSERT_EQ(r.status, 0) << r.output;
  // $48/day against $5.40/M: 8.888889M tokens/day.
  EXPECT_NE(r.output.find(R"("api":"claude","usd_per_million":5.400000,"api_cost_per_day":)"
                          R"(54.000000,"break_even_tokens_per_day":8888888.888889)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(R"("measured":false)"), std::string::npos);
}

TEST_F(ReportCliTest, PlanMeasuresTrafficInTheLedger) {
  write_rows();
  const Ran r = run("plan --config " + config_path() + " --gpu-hour-usd 2 --tokens-per-second 600");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("fallback rate 50.0% (measured in the ledger)"), std::string::npos)
      << r.output;
}

TEST_F(ReportCliTest, ReportHtmlIsWrittenToTheOutFile) {
  write_rows();
  const std::string page = (dir_ / "report.html").string();
  const Ran r = run("report --config " + config_path() + " --format html --out " + page);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "");  // nothing on stdout
  std::ifstream file(page);
  const std::string html((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u) << html.substr(0, 200);
  EXPECT_NE(html.find("<svg "), std::string::npos);
}

TEST_F(ReportCliTest, ReportKeyKeepsThatClientKeysRequests) {
  write_rows();
  {
    auto store = ledger::make_sqlite_store(ledger_path(), {3'600'000, {}});
    ASSERT_TRUE(store);
    (*store)->record({"c",
                      kDec1,
                      50,
                      "agentic",
                      "team-a",
                      "primary",
                      "v4",
                      {{"v4", "deepseek-v4-flash", "", 200, 10, 0, 10, 3, 50}}});
    ASSERT_TRUE((*store)->flush());
  }
  const Ran r = run("report --ledger " + ledger_path() + " --key team-a --format json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(R"("keys":[{"key":"team-a","requests":1,)"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(R"("total":{"workload":"*","requests":1,)"), std::string::npos)
      << r.output;
  const Ran table = run("report --ledger " + ledger_path());
  EXPECT_NE(table.output.find("== per client key"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("team-a"), std::string::npos) << table.output;
}

TEST_F(ReportCliTest, PlanTakesTheNodeFromTheConfigsPlanBlockAndFlagsOverrideIt) {
  std::ofstream(config_path(), std::ios::app) << "plan: {gpu_hour_usd: 2, gpus: 1, "
                                                 "tokens_per_second: 600, utilization: 0.6}\n";
  const Ran r = run("plan --config " + config_path() + " --tokens-per-day 10000000 --format json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(R"("break_even_tokens_per_day":8888888.888889)"), std::string::npos)
      << r.output;
  // Twice the GPU price: twice the break-even.
  const Ran dearer = run("plan --config " + config_path() +
                         " --tokens-per-day 10000000 --gpu-hour-usd 4 --format json");
  ASSERT_EQ(dearer.status, 0) << dearer.output;
  EXPECT_NE(dearer.output.find(R"("break_even_tokens_per_day":17777777.777778)"), std::string::npos)
      << dearer.output;
}

TEST_F(ReportCliTest, PlanWithoutANodeSaysWhichInputIsMissing) {
  const Ran r = run("plan --config " + config_path() + " --tokens-per-day 1000 --gpu-hour-usd 2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("pass --tokens-per-second, or set plan.tokens_per_second in the config"),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace backstop
