#include "providers/stack_probe.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "dialects/openai/dialect.h"
#include "mock/test_upstream.h"
#include "providers/connections.h"
#include "providers/http_provider.h"

namespace backstop::providers {
namespace {

namespace net = boost::asio;
using mock::TestUpstream;

TEST(StackLabelTest, EachStacksOwnAnswerNamesItAndItsVersion) {
  EXPECT_EQ(stack_label_of("/version", R"({"version": "0.7.3"})"), "vllm-0.7.3");
  EXPECT_EQ(stack_label_of("/get_server_info", R"({"version": "0.4.6", "tp_size": 8})"),
            "sglang-0.4.6");
  EXPECT_EQ(stack_label_of("/info", R"({"model_id": "m", "version": "3.0.1"})"), "tgi-3.0.1");
  EXPECT_EQ(stack_label_of("/props", R"({"build_info": "b4567-1a2b3c"})"),
            "llama.cpp-b4567-1a2b3c");
  EXPECT_EQ(stack_label_of("/props", R"({"default_generation_settings": {}})"), "llama.cpp");
}

TEST(StackLabelTest, AnswersOfAnotherShapeNameNothing) {
  EXPECT_EQ(stack_label_of("/version", "not json"), "");
  EXPECT_EQ(stack_label_of("/version", R"({"v": "1"})"), "");
  EXPECT_EQ(stack_label_of("/info", R"({"version": "1"})"), "");  // not TGI: no model_id
  EXPECT_EQ(stack_label_of("/healthz", R"({"version": "1"})"), "");
}

TEST(StackLabelTest, LabelsKeepOnlySafeCharactersAndAtMost64) {
  EXPECT_EQ(clean_stack_label("vllm 0.7.3\n\"x\""), "vllm0.7.3x");
  EXPECT_EQ(clean_stack_label(std::string(100, 'a')).size(), 64u);
}

// Answers one path with a body, anything else 404.
class OnePath final : public http::Service {
 public:
  OnePath(std::string path, std::string body) : path_(std::move(path)), body_(std::move(body)) {}
  net::awaitable<void> handle(http::Request request, http::Responder& responder) override {
    http::Response response;
    if (request.method != "GET" || request.path() != path_) {
      response.status = 404;
      response.body = R"({"detail": "Not Found"})";
    } else {
      response.body = body_;
    }
    co_await responder.send(std::move(response));
  }

 private:
  std::string path_, body_;
};

std::string detect(const std::string& base_url) {
  HttpProviderOptions o;
  o.name = "v4";
  o.dialect = &dialects::openai::dialect();
  o.base_url = base_url;
  o.model = "m";
  auto provider = HttpProvider::create(o);
  EXPECT_TRUE(provider);
  net::io_context loop;
  Connections client(loop);
  core::SystemClock clock;
  CallContext context{loop, client, clock, "probe", std::chrono::milliseconds(2'000)};
  auto label = net::co_spawn(loop, (*provider)->detect_stack(context), net::use_future);
  loop.run();
  return label.get();
}

TEST(ProbeStackTest, AVllmUpstreamIsFoundAtTheRootWhateverTheBasePath) {
  const TestUpstream upstream([](net::io_context&, int) {
    return std::make_unique<OnePath>("/version", R"({"version": "0.7.3"})");
  });
  EXPECT_EQ(detect(upstream.url("/v1")), "vllm-0.7.3");
}

TEST(ProbeStackTest, SglangIsAskedBeforeTheOthers) {
  const TestUpstream upstream([](net::io_context&, int) {
    return std::make_unique<OnePath>("/get_server_info", R"({"version": "0.4.6"})");
  });
  EXPECT_EQ(detect(upstream.url("/v1")), "sglang-0.4.6");
}

TEST(ProbeStackTest, AnUpstreamThatSaysNothingOrIsNotThereIsUnknown) {
  {
    const TestUpstream upstream(
        [](net::io_context&, int) { return std::make_unique<OnePath>("/other", "{}"); });
    EXPECT_EQ(detect(upstream.url("/v1")), "");
  }
  std::uint16_t closed = 0;
  {
    const TestUpstream gone(
        [](net::io_context&, int) { return std::make_unique<OnePath>("/other", "{}"); });
    closed = gone.port();
  }
  EXPECT_EQ(detect("http://127.0.0.1:" + std::to_string(closed) + "/v1"), "");
}

}  // namespace
}  // namespace backstop::providers
