// Inference-stack labels: detected from an upstream's own endpoint, configured, exported as
// backstop_upstream_stack_info, and written on every attempt in the ledger.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <filesystem>
#include <mutex>

#include "config/config.h"
#include "dialects/builtin/builtin.h"
#include "http/client.h"
#include "http/server.h"
#include "ledger/ledger_read.h"
#include "server/build_provider.h"
#include "server/gateway.h"
#include "server/stack_watch.h"

namespace backstop {
namespace {

namespace net = boost::asio;

// Answers GET /version as vLLM does; anything else 404.
class VllmVersion final : public http::Service {
 public:
  net::awaitable<void> handle(http::Request request, http::Responder& responder) override {
    http::Response response;
    if (request.path() == "/version") {
      response.body = R"({"version": "0.8.1"})";
    } else {
      response.status = 404;
    }
    co_await responder.send(std::move(response));
  }
};

// An OpenAI upstream whose answers carry the system_fingerprint the test sets; streamed when
// asked. Every other path 404 (no stack endpoint answers).
class FingerprintedUpstream final : public http::Service {
 public:
  struct Fingerprint {
    std::mutex mutex;
    std::string value;
    [[nodiscard]] std::string get() {
      std::lock_guard lock(mutex);
      return value;
    }
    void set(std::string fp) {
      std::lock_guard lock(mutex);
      value = std::move(fp);
    }
  };
  explicit FingerprintedUpstream(Fingerprint& fingerprint) : fingerprint_(fingerprint) {}

  net::awaitable<void> handle(http::Request request, http::Responder& responder) override {
    if (request.path() != "/v1/chat/completions") {
      http::Response response;
      response.status = 404;
      co_await responder.send(std::move(response));
      co_return;
    }
    const std::string fp = "\"system_fingerprint\":\"" + fingerprint_.get() + "\"";
    const auto body = boost::json::parse(request.body).as_object();
    if (const auto* stream = body.if_contains("stream"); stream && stream->as_bool()) {
      if (!co_await responder.begin_stream(200, "text/event-stream", {})) co_return;
      const std::string head =
          "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\","
          "\"model\":\"m\"," +
          fp + ",\"choices\":[{\"index\":0,";
      co_await responder.write(head +
                               "\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n");
      co_await responder.write(head + "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
      co_await responder.write("data: [DONE]\n\n");
      co_await responder.end_stream();
      co_return;
    }
    http::Response response;
    response.body = "{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"m\"," + fp +
                    ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                    "\"content\":\"hi\"},\"finish_reason\":\"stop\"}],\"usage\":"
                    "{\"prompt_tokens\":3,\"completion_tokens\":1}}";
    co_await responder.send(std::move(response));
  }

 private:
  Fingerprint& fingerprint_;
};

std::shared_ptr<const config::Config> parse(const std::string& yaml) {
  auto loaded = config::parse(yaml, "test.yaml");
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  return loaded.config;
}

TEST(StackWatchTest, AnUnlabelledProviderIsAskedAndEveryKnownStackIsExported) {
  http::Server upstream(http::ServerLimits{}, 1, [](net::io_context&, int) {
    return std::unique_ptr<http::Service>(std::make_unique<VllmVersion>());
  });
  ASSERT_TRUE(upstream.listen("127.0.0.1", 0));
  upstream.start();
  const auto config = parse("providers:\n  asked: {kind: openai, base_url: \"http://127.0.0.1:" +
                            std::to_string(upstream.port()) +
                            "/v1\", model: m}\n"
                            "  told: {kind: simulated, model: m, stack: sglang-0.4.6}\n"
                            "workloads:\n  w: {route: [asked, told]}\n");
  std::vector<std::unique_ptr<providers::Provider>> providers;
  for (const auto& p : config->providers) {
    auto built = server::build_provider(p, dialects::builtin(),
                                        [](const char*) -> const char* { return nullptr; });
    ASSERT_TRUE(built) << built.error().message;
    providers.push_back(std::move(*built));
  }
  telemetry::Registry registry(1);
  server::StackWatch watch(*config, providers, registry);
  EXPECT_EQ(providers[0]->stack(), "");
  EXPECT_EQ(providers[1]->stack(), "sglang-0.4.6");
  watch.detect_once();
  EXPECT_EQ(providers[0]->stack(), "vllm-0.8.1");
  const std::string metrics = registry.render();
  EXPECT_NE(metrics.find(R"(backstop_upstream_stack_info{provider="asked",stack="vllm-0.8.1"} 1)"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(R"(backstop_upstream_stack_info{provider="told",stack="sglang-0.4.6"} 1)"),
            std::string::npos);
  upstream.stop(std::chrono::milliseconds(0));
  upstream.wait();
}

TEST(StackLedgerTest, EveryAttemptIsWrittenWithItsProvidersStack) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("backstop_stack_ledger_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = (dir / "ledger.db").string();
  const auto config =
      parse("listen: 127.0.0.1:0\nthreads: 1\nlog: {access_log: \"\"}\nledger: {path: " + db +
            "}\nproviders:\n"
            "  v4: {kind: simulated, model: m, stack: vllm-0.7.3, simulation: {latency_p50_ms: 0,"
            " latency_p99_ms: 0}}\n"
            "workloads:\n  w: {route: [v4]}\n");
  {
    server::GatewayOptions options;
    core::NullLogger logger;
    options.logger = &logger;
    auto gateway = server::Gateway::create(config, std::move(options));
    ASSERT_TRUE(gateway) << gateway.error().message;
    ASSERT_TRUE((*gateway)->start());
    net::io_context loop;
    http::Client client(loop);
    http::ClientRequest request;
    request.target = "/v1/chat/completions";
    request.body = R"({"model": "w", "messages": [{"role": "user", "content": "hi"}]})";
    request.headers.push_back({"content-type", "application/json"});
    // Named: the coroutine keeps a reference to the Origin, not a copy.
    const http::Origin origin{false, "127.0.0.1", (*gateway)->port(), "", ""};
    auto sent = net::co_spawn(loop, client.send(origin, std::move(request)), net::use_future);
    loop.run();
    auto response = sent.get();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    (*gateway)->stop();
  }
  auto rows = ledger::read_requests(db, {});
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 1u);
  ASSERT_EQ((*rows)[0].attempts.size(), 1u);
  EXPECT_EQ((*rows)[0].attempts[0].stack, "vllm-0.7.3");
  std::filesystem::remove_all(dir);
}

// A POST of `body` to the gateway's chat completions; its status.
int chat(std::uint16_t port, std::string body) {
  net::io_context loop;
  http::Client client(loop);
  http::ClientRequest request;
  request.target = "/v1/chat/completions";
  request.body = std::move(body);
  request.headers.push_back({"content-type", "application/json"});
  const http::Origin origin{false, "127.0.0.1", port, "", ""};
  auto sent = net::co_spawn(loop, client.send(origin, std::move(request)), net::use_future);
  loop.run();
  auto response = sent.get();
  return response ? response->status : 0;
}

TEST(StackLedgerTest, AChangedSystemFingerprintChangesTheRecordedStack) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("backstop_stack_fingerprint_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = (dir / "ledger.db").string();
  FingerprintedUpstream::Fingerprint fingerprint;
  http::Server upstream(http::ServerLimits{}, 1, [&fingerprint](net::io_context&, int) {
    return std::unique_ptr<http::Service>(std::make_unique<FingerprintedUpstream>(fingerprint));
  });
  ASSERT_TRUE(upstream.listen("127.0.0.1", 0));
  upstream.start();
  const auto config =
      parse("listen: 127.0.0.1:0\nthreads: 1\nlog: {access_log: \"\"}\nledger: {path: " + db +
            "}\nproviders:\n  v4: {kind: openai, base_url: \"http://127.0.0.1:" +
            std::to_string(upstream.port()) + "/v1\", model: m}\nworkloads:\n  w: {route: [v4]}\n");
  const std::string plain = R"({"model": "w", "messages": [{"role": "user", "content": "hi"}]})";
  const std::string streamed =
      R"({"model": "w", "stream": true, "messages": [{"role": "user", "content": "hi"}]})";
  std::string metrics;
  {
    server::GatewayOptions options;
    core::NullLogger logger;
    options.logger = &logger;
    options.detect_stacks = false;
    auto gateway = server::Gateway::create(config, std::move(options));
    ASSERT_TRUE(gateway) << gateway.error().message;
    ASSERT_TRUE((*gateway)->start());
    const std::uint16_t port = (*gateway)->port();
    fingerprint.set("fp_a");
    EXPECT_EQ(chat(port, plain), 200);
    EXPECT_EQ(chat(port, plain), 200);
    fingerprint.set("fp_b");
    EXPECT_EQ(chat(port, plain), 200);
    fingerprint.set("fp_c");
    EXPECT_EQ(chat(port, streamed), 200);
    metrics = (*gateway)->registry().render();
    (*gateway)->stop();
  }
  upstream.stop(std::chrono::milliseconds(0));
  upstream.wait();
  EXPECT_NE(metrics.find(R"(backstop_upstream_stack_info{provider="v4",stack="fp_c"} 1)"),
            std::string::npos)
      << metrics;
  auto rows = ledger::read_requests(db, {});
  ASSERT_TRUE(rows) << rows.error().message;
  std::vector<std::string> stacks;
  for (const auto& row : *rows) {
    ASSERT_EQ(row.attempts.size(), 1u);
    stacks.push_back(row.attempts[0].stack);
  }
  EXPECT_EQ(stacks, (std::vector<std::string>{"fp_a", "fp_a", "fp_b", "fp_c"}));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace backstop
