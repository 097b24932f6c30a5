// Budgets through real HTTP: the whole gateway on port 0 against the mock upstream, on a
// manual clock (the merge interval and UTC midnight are crossed by advancing it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "mock/test_upstream.h"
#include "server/gateway.h"

namespace backstop {
namespace {

namespace net = boost::asio;

constexpr const char* kTeamKey = "sk-team-0123456789";
constexpr const char* kOpsKey = "sk-ops-0123456789";
// 2026-12-01T23:59:00Z: a minute before UTC midnight.
constexpr std::int64_t kBeforeMidnight = 1'796'169'540'000;

using Mock = mock::MockServer;
using mock::replace_all;

// Every price 1 USD per million tokens: each mock answer costs a few micro-dollars, so a
// budget of one micro-dollar is spent by the first request.
constexpr const char* kConfig = R"(
listen: 127.0.0.1:0
threads: 1
server: {drain_timeout_ms: 100}
log: {access_log: ""}
ledger: {path: "LEDGER", flush_ms: 100}
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:MOCK/v1
    model: v4-flash
    price: {input: 1, output: 1}
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:MOCK
    model: claude-sonnet
    price: {input: 1, output: 1}
workloads:
  capped:
    route: [v4, claude]
    budget: {daily_usd: 0.000001, on_exceeded: reject}
  cut:
    route: [v4, claude]
    budget: {daily_usd: 0.000001, on_exceeded: primary_only}
  open:
    route: [v4, claude]
auth:
  keys:
    - {name: team, key_env: TEAM_KEY, workloads: all, budget: {daily_usd: 0.000001}}
    - {name: ops, key_env: OPS_KEY, workloads: all}
hooks:
  - {url: "http://127.0.0.1:9/hooks", events: [budget]}
)";

class BudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("backstop_budget_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    start();
  }
  void TearDown() override {
    gateway_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start() {
    std::string yaml = replace_all(kConfig, "MOCK", std::to_string(mock_.port()));
    yaml = replace_all(yaml, "LEDGER", (dir_ / "ledger.db").string());
    auto loaded = config::parse(yaml, "budget.yaml");
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
    server::GatewayOptions options;
    options.logger = &logger_;
    options.clock = &clock_;
    options.env = [](const char* name) -> const char* {
      const std::string_view n = name;
      return n == "TEAM_KEY" ? kTeamKey : n == "OPS_KEY" ? kOpsKey : nullptr;
    };
    options.hook_post = [this](const std::string&, const std::string& body,
                               const std::vector<std::pair<std::string, std::string>>&) {
      std::lock_guard lock(hook_mutex_);
      hook_bodies_.push_back(body);
      return true;
    };
    auto g = server::Gateway::create(loaded.config, std::move(options));
    ASSERT_TRUE(g.has_value()) << g.error().message;
    gateway_ = std::move(*g);
    ASSERT_TRUE(gateway_->start().has_value());
    origin_ = {false, "127.0.0.1", gateway_->port(), "", ""};
  }

  http::ClientResponse call(std::string target, std::string body,
                            std::vector<http::Header> headers) {
    http::ClientRequest request;
    request.method = "POST";
    request.target = std::move(target);
    request.body = std::move(body);
    request.headers = std::move(headers);
    request.headers.push_back({"content-type", "application/json"});
    request.timeout = std::chrono::milliseconds(10'000);
    auto future = net::co_spawn(loop_, client_.send(origin_, std::move(request)), net::use_future);
    loop_.run();
    loop_.restart();
    auto response = future.get();
    EXPECT_TRUE(response.has_value()) << response.error().message;
    return response.value_or(http::ClientResponse{});
  }

  http::ClientResponse chat(const std::string& workload, const char* key,
                            const std::string& text = "hi") {
    return call("/v1/chat/completions",
                R"({"model":")" + workload + R"(","messages":[{"role":"user","content":")" + text +
                    R"("}]})",
                {{"authorization", std::string("Bearer ") + key}});
  }

  http::ClientResponse messages(const std::string& workload, const char* key) {
    return call("/v1/messages",
                R"({"model":")" + workload +
                    R"(","max_tokens":64,"messages":[{"role":"user","content":"hi"}]})",
                {{"x-api-key", key}, {"anthropic-version", "2023-06-01"}});
  }

  http::ClientResponse responses(const std::string& workload, const char* key) {
    return call("/v1/responses", R"({"model":")" + workload + R"(","input":"hi"})",
                {{"authorization", std::string("Bearer ") + key}});
  }

  // Past the merge interval, so that the next check sees what was spent.
  void next_second() {
    clock_.advance(std::chrono::milliseconds(access::Budgets::kMergeIntervalMs));
  }

  static boost::json::value json(const http::ClientResponse& r) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  }

  double rejections(const std::string& scope, const std::string& name) {
    return gateway_->registry().counter_value(gateway_->router().metrics().budget_rejections_total,
                                              {scope, name});
  }

  std::vector<std::string> hook_bodies() {
    gateway_->hooks().flush();
    std::lock_guard lock(hook_mutex_);
    return hook_bodies_;
  }

  core::NullLogger logger_;
  core::ManualClock clock_{kBeforeMidnight};
  Mock mock_;
  std::filesystem::path dir_;
  std::unique_ptr<server::Gateway> gateway_;
  http::Origin origin_;
  net::io_context loop_;
  http::Client client_{loop_};
  std::mutex hook_mutex_;
  std::vector<std::string> hook_bodies_;
};

TEST_F(BudgetTest, ASpentWorkloadBudgetIs429BudgetExceededInEachDialect) {
  ASSERT_EQ(chat("capped", kOpsKey).status, 200);
  next_second();

  auto openai = chat("capped", kOpsKey);
  ASSERT_EQ(openai.status, 429) << openai.body;
  EXPECT_EQ(json(openai).at_pointer("/error/type"), "budget_exceeded");
  EXPECT_EQ(json(openai).at_pointer("/error/code"), "budget_exceeded");
  // The SDKs are told not to retry before midnight (59 s away on the test's clock).
  EXPECT_EQ(openai.header("x-should-retry"), "false");
  EXPECT_EQ(openai.header("retry-after"), "59");
  const std::string message(json(openai).at_pointer("/error/message").as_string());
  EXPECT_EQ(message.rfind("workload \"capped\" has spent its budget for 2026-12-01 (0.00", 0), 0u)
      << message;
  EXPECT_NE(message.find(" of 0.000001 USD); it resets at 00:00 UTC"), std::string::npos)
      << message;

  auto anthropic = messages("capped", kOpsKey);
  ASSERT_EQ(anthropic.status, 429) << anthropic.body;
  EXPECT_EQ(json(anthropic).at("type"), "error");
  EXPECT_EQ(json(anthropic).at_pointer("/error/type"), "budget_exceeded");

  auto responses_api = responses("capped", kOpsKey);
  ASSERT_EQ(responses_api.status, 429) << responses_api.body;
  EXPECT_EQ(json(responses_api).at_pointer("/error/code"), "budget_exceeded");

  // A stream asked for is refused before its first byte, as a plain error.
  auto stream =
      call("/v1/chat/completions",
           R"({"model":"capped","stream":true,"messages":[{"role":"user","content":"hi"}]})",
           {{"authorization", std::string("Bearer ") + kOpsKey}});
  ASSERT_EQ(stream.status, 429) << stream.body;
  EXPECT_EQ(json(stream).at_pointer("/error/code"), "budget_exceeded");

  EXPECT_EQ(rejections("workload", "capped"), 4);
  // Other workloads still serve.
  EXPECT_EQ(chat("open", kOpsKey).status, 200);
}

TEST_F(BudgetTest, TheFirstSpendOfABudgetIsOneBudgetHookEvent) {
  ASSERT_EQ(chat("capped", kOpsKey).status, 200);
  next_second();
  EXPECT_EQ(chat("capped", kOpsKey).status, 429);
  next_second();
  EXPECT_EQ(chat("capped", kOpsKey).status, 429);
  const std::vector<std::string> bodies = hook_bodies();
  ASSERT_EQ(bodies.size(), 1u);
  auto body = boost::json::parse(bodies[0]);
  EXPECT_EQ(body.at("event"), "budget");
  EXPECT_EQ(body.at("scope"), "workload");
  EXPECT_EQ(body.at("name"), "capped");
  EXPECT_EQ(body.at("day"), "2026-12-01");
  EXPECT_EQ(body.at("limit_micro_usd"), 1);
  EXPECT_GE(body.at("spent_micro_usd").as_int64(), 1);
  EXPECT_EQ(body.at("on_exceeded"), "reject");
}

TEST_F(BudgetTest, PrimaryOnlyCutsTheRouteToItsFirstTarget) {
  const std::string primary_fails = "[mock:server_error@v4-flash]";
  auto before = chat("cut", kOpsKey, primary_fails);
  ASSERT_EQ(before.status, 200) << before.body;
  EXPECT_EQ(before.header("x-backstop-served-by"), "claude");
  next_second();
  auto after = chat("cut", kOpsKey, primary_fails);
  EXPECT_EQ(after.status, 502) << after.body;
  EXPECT_EQ(after.header("x-backstop-attempts"), "1");
  EXPECT_EQ(chat("cut", kOpsKey).header("x-backstop-served-by"), "v4");
  EXPECT_EQ(rejections("workload", "cut"), 0);
}

TEST_F(BudgetTest, AKeysBudgetHoldsThatKeyOnly) {
  ASSERT_EQ(chat("open", kTeamKey).status, 200);
  next_second();
  auto r = chat("open", kTeamKey);
  ASSERT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(json(r).at_pointer("/error/message").as_string().find("key \"team\" has spent"), 0u);
  EXPECT_EQ(chat("open", kOpsKey).status, 200);
  EXPECT_EQ(rejections("key", "team"), 1);
}

TEST_F(BudgetTest, UtcMidnightResetsTheBudget) {
  ASSERT_EQ(chat("capped", kOpsKey).status, 200);
  next_second();
  ASSERT_EQ(chat("capped", kOpsKey).status, 429);
  clock_.advance(std::chrono::minutes(1));  // 2026-12-02T00:00:01Z
  EXPECT_EQ(chat("capped", kOpsKey).status, 200);
}

TEST_F(BudgetTest, ARestartKeepsTheDaysSpendFromTheLedger) {
  ASSERT_EQ(chat("capped", kOpsKey).status, 200);
  gateway_->stop();
  gateway_->wait();
  gateway_.reset();
  start();
  auto r = chat("capped", kOpsKey);
  EXPECT_EQ(r.status, 429) << r.body;
}

}  // namespace
}  // namespace backstop
