// Client keys through real HTTP: the whole gateway on port 0 against the mock upstream.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "config/config.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "ledger/ledger.h"
#include "mock/test_upstream.h"
#include "server/gateway.h"

namespace backstop {
namespace {

namespace net = boost::asio;

constexpr const char* kTeamKey = "sk-team-a-0123456789";
constexpr const char* kCiKey = "test";  // given in the config as its SHA-256
constexpr const char* kMetricsKey = "scrape-9876543210";

using Mock = mock::MockServer;
using mock::replace_all;

constexpr const char* kConfig = R"(
listen: 127.0.0.1:0
threads: 1
server: {drain_timeout_ms: 100}
log: {access_log: "LOG"}
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:MOCK/v1
    model: v4-flash
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:MOCK
    model: claude-sonnet
workloads:
  docs:
    route: [v4, claude]
    validate: {content: non_empty}
  agentic:
    route: [v4, claude]
  secret-project:
    route: [claude]
auth:
  keys:
    - {name: team-a, key_env: TEAM_A_KEY, workloads: [docs, agentic]}
    - {name: ci, key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, workloads: all}
  metrics_key_env: METRICS_KEY
)";

// Keeps every ledger row written.
class CapturingSink final : public ledger::Sink {
 public:
  explicit CapturingSink(std::vector<ledger::RequestRow>& rows) : rows_(rows) {}
  core::Result<void> write(const std::vector<ledger::RequestRow>& batch) override {
    rows_.insert(rows_.end(), batch.begin(), batch.end());
    return {};
  }
  std::vector<ledger::DaySpend> totals() override { return {}; }

 private:
  std::vector<ledger::RequestRow>& rows_;
};

server::EnvReader env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::shared_ptr<const config::Config> load(const std::string& yaml) {
  auto loaded = config::parse(yaml, "auth.yaml");
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  return loaded.config;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_path_ = ::testing::TempDir() + "backstop_auth_test_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".jsonl";
    std::remove(log_path_.c_str());
    std::string yaml = replace_all(kConfig, "MOCK", std::to_string(mock_.port()));
    yaml = replace_all(yaml, "LOG", log_path_);
    auto config = load(yaml);
    ASSERT_NE(config, nullptr);
    server::GatewayOptions options;
    options.logger = &logger_;
    options.env = env_of({{"TEAM_A_KEY", kTeamKey}, {"METRICS_KEY", kMetricsKey}});
    options.spend = std::make_unique<ledger::SpendStore>(std::make_unique<CapturingSink>(rows_),
                                                         ledger::LedgerOptions{3'600'000, {}});
    auto g = server::Gateway::create(config, std::move(options));
    ASSERT_TRUE(g.has_value()) << g.error().message;
    gateway_ = std::move(*g);
    ASSERT_TRUE(gateway_->start().has_value());
    origin_ = {false, "127.0.0.1", gateway_->port(), "", ""};
  }
  void TearDown() override { std::remove(log_path_.c_str()); }

  http::ClientResponse call(std::string method, std::string target, std::string body,
                            std::vector<http::Header> headers = {}) {
    http::ClientRequest request;
    request.method = std::move(method);
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

  http::ClientResponse openai(const std::string& path, const std::string& workload,
                              std::vector<http::Header> headers, bool stream = false) {
    std::string body =
        path == "/v1/responses"
            ? R"({"model":")" + workload + R"(","input":"hi")"
            : R"({"model":")" + workload + R"(","messages":[{"role":"user","content":"hi"}])";
    if (stream) body += R"(,"stream":true)";
    return call("POST", path, body + "}", std::move(headers));
  }

  http::ClientResponse anthropic(const std::string& workload, std::vector<http::Header> headers) {
    headers.push_back({"anthropic-version", "2023-06-01"});
    return call("POST", "/v1/messages",
                R"({"model":")" + workload +
                    R"(","max_tokens":64,"messages":[{"role":"user","content":"hi"}]})",
                std::move(headers));
  }

  static boost::json::value json(const http::ClientResponse& r) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  }

  // Stops the gateway (flushing the ledger and the access log) and returns the log's text.
  std::string stop_and_read_log() {
    gateway_->stop();
    gateway_->wait();
    std::ifstream file(log_path_);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }

  static std::vector<http::Header> bearer(const std::string& key) {
    return {{"authorization", "Bearer " + key}};
  }

  core::NullLogger logger_;
  Mock mock_;
  std::string log_path_;
  std::vector<ledger::RequestRow> rows_;  // read after stop(), which flushes the ledger
  std::unique_ptr<server::Gateway> gateway_;
  http::Origin origin_;
  net::io_context loop_;
  http::Client client_{loop_};
};

TEST_F(AuthTest, NoKeyIs401InTheOpenAIAndResponsesShapes) {
  for (const char* path : {"/v1/chat/completions", "/v1/responses"}) {
    auto r = openai(path, "docs", {});
    ASSERT_EQ(r.status, 401) << path << " " << r.body;
    EXPECT_EQ(r.header("www-authenticate"), "Bearer");
    auto body = json(r);
    EXPECT_EQ(body.at_pointer("/error/type"), "authentication_error") << path;
    EXPECT_EQ(body.at_pointer("/error/code"), "invalid_api_key") << path;
  }
  EXPECT_EQ(call("GET", "/v1/models", "").status, 401);
}

TEST_F(AuthTest, AnUnknownKeyIs401AuthenticationErrorInAnthropicShape) {
  for (auto headers :
       {std::vector<http::Header>{{"x-api-key", "sk-wrong"}}, std::vector<http::Header>{}}) {
    auto r = anthropic("docs", headers);
    ASSERT_EQ(r.status, 401) << r.body;
    auto body = json(r);
    EXPECT_EQ(body.at("type"), "error");
    EXPECT_EQ(body.at_pointer("/error/type"), "authentication_error");
  }
  EXPECT_EQ(openai("/v1/chat/completions", "docs", bearer("sk-wrong")).status, 401);
}

TEST_F(AuthTest, BearerAndXApiKeyBothServe) {
  auto by_bearer = openai("/v1/chat/completions", "docs", bearer(kTeamKey));
  ASSERT_EQ(by_bearer.status, 200) << by_bearer.body;
  EXPECT_EQ(json(by_bearer).at("object"), "chat.completion");
  auto by_x_api_key = anthropic("docs", {{"x-api-key", kTeamKey}});
  ASSERT_EQ(by_x_api_key.status, 200) << by_x_api_key.body;
  EXPECT_EQ(json(by_x_api_key).at("type"), "message");
  // A key given as its SHA-256 in the config.
  EXPECT_EQ(openai("/v1/responses", "secret-project", bearer(kCiKey)).status, 200);
}

TEST_F(AuthTest, AWorkloadTheKeyMayNotUseIs403InEachDialect) {
  auto r = openai("/v1/chat/completions", "secret-project", bearer(kTeamKey));
  ASSERT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(json(r).at_pointer("/error/type"), "permission_error");
  EXPECT_EQ(json(r).at_pointer("/error/message"),
            "key \"team-a\" may not use workload \"secret-project\"");
  auto a = anthropic("secret-project", {{"x-api-key", kTeamKey}});
  ASSERT_EQ(a.status, 403) << a.body;
  EXPECT_EQ(json(a).at("type"), "error");
  EXPECT_EQ(json(a).at_pointer("/error/type"), "permission_error");
  // Token counting asks the same of the key.
  const std::string count_body =
      R"({"model":"secret-project","messages":[{"role":"user","content":"hi"}]})";
  auto count = call("POST", "/v1/messages/count_tokens", count_body, {{"x-api-key", kTeamKey}});
  ASSERT_EQ(count.status, 403) << count.body;
  EXPECT_EQ(json(count).at_pointer("/error/type"), "permission_error");
  EXPECT_EQ(call("POST", "/v1/messages/count_tokens", count_body).status, 401);
  // Nothing reached an upstream.
  EXPECT_EQ(gateway_->registry().counter_value(gateway_->router().metrics().attempts_total,
                                               {"secret-project", "claude", "pass"}),
            0);
}

TEST_F(AuthTest, ModelsListsOnlyTheKeysWorkloads) {
  auto team = json(call("GET", "/v1/models", "", bearer(kTeamKey)));
  ASSERT_EQ(team.at("data").as_array().size(), 2u);
  EXPECT_EQ(team.at_pointer("/data/0/id"), "docs");
  EXPECT_EQ(team.at_pointer("/data/1/id"), "agentic");
  auto anthropic_list = json(call("GET", "/v1/models", "",
                                  {{"x-api-key", kTeamKey}, {"anthropic-version", "2023-06-01"}}));
  ASSERT_EQ(anthropic_list.at("data").as_array().size(), 2u);
  EXPECT_EQ(anthropic_list.at("first_id"), "docs");
  EXPECT_EQ(anthropic_list.at("last_id"), "agentic");
  auto ci = json(call("GET", "/v1/models", "", bearer(kCiKey)));
  EXPECT_EQ(ci.at("data").as_array().size(), 3u);
  // An unknown model's message lists only what the key may use.
  auto unknown = openai("/v1/chat/completions", "nope", bearer(kTeamKey));
  ASSERT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body.find("secret-project"), std::string::npos) << unknown.body;
}

TEST_F(AuthTest, MetricsNeedTheirOwnBearerWhileProbesStayOpen) {
  EXPECT_EQ(call("GET", "/metrics", "").status, 401);
  EXPECT_EQ(call("GET", "/metrics", "", bearer(kTeamKey)).status, 401);
  EXPECT_EQ(call("GET", "/metrics", "", {{"x-api-key", kMetricsKey}}).status, 401);
  auto scrape = call("GET", "/metrics", "", bearer(kMetricsKey));
  ASSERT_EQ(scrape.status, 200);
  EXPECT_NE(scrape.body.find("backstop_"), std::string::npos);
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(call("GET", "/readyz", "").status, 200);
}

TEST_F(AuthTest, TheKeysNameIsInTheAccessLogAndTheLedgerAndItsValueNowhere) {
  ASSERT_EQ(openai("/v1/chat/completions", "docs", bearer(kTeamKey)).status, 200);
  ASSERT_EQ(openai("/v1/chat/completions", "docs", bearer(kTeamKey), true).status, 200);
  ASSERT_EQ(openai("/v1/chat/completions", "secret-project", bearer(kTeamKey)).status, 403);
  ASSERT_EQ(openai("/v1/chat/completions", "docs", bearer("sk-wrong-key")).status, 401);
  std::string log = stop_and_read_log();

  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << log;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(boost::json::parse(lines[i]).at("key"), "team-a") << lines[i];
  }
  auto refused = boost::json::parse(lines[3]);
  EXPECT_EQ(refused.at("status"), 401);
  EXPECT_EQ(refused.as_object().if_contains("key"), nullptr);
  for (const char* secret : {kTeamKey, kMetricsKey, "sk-wrong-key"}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret;
  }

  // The two routed requests and the 403; the 401 is no request of any workload.
  ASSERT_EQ(rows_.size(), 3u);
  for (const ledger::RequestRow& row : rows_) EXPECT_EQ(row.key_name, "team-a");
  EXPECT_EQ(rows_[2].workload, "secret-project");
  EXPECT_EQ(rows_[2].outcome, "rejected");
}

TEST(AuthStartTest, AnUnsetKeyVariableStopsTheStartNamingItAndNoValue) {
  Mock mock;
  auto config =
      load(replace_all(replace_all(kConfig, "MOCK", std::to_string(mock.port())), "LOG", ""));
  ASSERT_NE(config, nullptr);
  core::NullLogger logger;
  server::GatewayOptions options;
  options.logger = &logger;
  options.env = env_of({{"METRICS_KEY", kMetricsKey}});
  auto gateway = server::Gateway::create(config, std::move(options));
  ASSERT_FALSE(gateway.has_value());
  EXPECT_EQ(gateway.error().message,
            "client key \"team-a\" (key_env): environment variable TEAM_A_KEY is not set");
}

}  // namespace
}  // namespace backstop
