#include "fault_gateway.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "config/config.h"

namespace backstop::faults {
namespace {

namespace net = boost::asio;

std::string provider_block(std::string_view name, std::string_view kind, std::string_view base_url,
                           std::string_view model, std::string_view price, std::string_view keys) {
  return "  " + std::string(name) + ":\n    kind: " + std::string(kind) +
         "\n    base_url: " + std::string(base_url) + "\n    model: " + std::string(model) +
         "\n    price: " + std::string(price) + "\n" + std::string(keys);
}

}  // namespace

void FaultGatewayTest::start(std::string_view provider_keys, std::string_view workloads) {
  std::string yaml =
      "listen: 127.0.0.1:0\nthreads: 1\nserver: {drain_timeout_ms: 100}\nlog: {access_log: \"\"}\n"
      "providers:\n" +
      provider_block("primary", "openai",
                     "http://127.0.0.1:" + std::to_string(primary_.port()) + "/v1", "primary-model",
                     "{input: 0.14, output: 0.28}", provider_keys) +
      provider_block("fallback", "anthropic",
                     "http://127.0.0.1:" + std::to_string(fallback_.port()), "fallback-model",
                     "{input: 3.0, output: 15.0}", provider_keys) +
      std::string(workloads);
  auto loaded = config::parse(yaml, "faults.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string() << "\n" << yaml;
  server::GatewayOptions options;
  options.logger = &logger_;
  options.detect_stacks = false;  // the fault servers script every request they get
  auto created = server::Gateway::create(loaded.config, std::move(options));
  ASSERT_TRUE(created.has_value()) << created.error().message;
  gateway_ = std::move(*created);
  ASSERT_TRUE(gateway_->start().has_value());
}

void FaultGatewayTest::TearDown() {
  if (gateway_) {
    gateway_->stop();
    gateway_->wait();
  }
}

http::ClientResponse FaultGatewayTest::post(std::string target, std::string body,
                                            std::vector<http::Header> headers) {
  http::ClientRequest request;
  request.method = body.empty() ? "GET" : "POST";
  request.target = std::move(target);
  request.body = std::move(body);
  request.headers = std::move(headers);
  request.headers.push_back({"content-type", "application/json"});
  request.timeout = std::chrono::milliseconds(10'000);
  http::Origin origin{false, "127.0.0.1", gateway_->port(), "", ""};
  auto future = net::co_spawn(loop_, client_.send(origin, std::move(request)), net::use_future);
  loop_.run();
  loop_.restart();
  auto response = future.get();
  EXPECT_TRUE(response.has_value()) << response.error().message;
  return response.value_or(http::ClientResponse{});
}

http::ClientResponse FaultGatewayTest::chat(std::string_view workload, std::string_view request_id,
                                            std::string_view extra) {
  return post("/v1/chat/completions",
              R"({"model":")" + std::string(workload) +
                  R"(","messages":[{"role":"user","content":"hello"}])" + std::string(extra) + "}",
              {{"x-request-id", std::string(request_id)}});
}

http::ClientResponse FaultGatewayTest::messages(std::string_view workload,
                                                std::string_view request_id,
                                                std::string_view extra) {
  return post("/v1/messages",
              R"({"model":")" + std::string(workload) +
                  R"(","max_tokens":64,"messages":[{"role":"user","content":"hello"}])" +
                  std::string(extra) + "}",
              {{"x-request-id", std::string(request_id)}, {"anthropic-version", "2023-06-01"}});
}

std::string FaultGatewayTest::metrics_text() { return post("/metrics", "").body; }

double FaultGatewayTest::counter(telemetry::FamilyId family, std::vector<std::string> labels) {
  return gateway_->registry().counter_value(family, labels);
}

const telemetry::Metrics& FaultGatewayTest::metrics() const { return gateway_->router().metrics(); }

boost::json::value FaultGatewayTest::json(const http::ClientResponse& response) {
  boost::system::error_code ec;
  auto v = boost::json::parse(response.body, ec);
  EXPECT_FALSE(ec) << response.body;
  return v;
}

OpenAIStream read_openai_stream(std::string_view body) {
  OpenAIStream s;
  for (const std::string& data : sse_data(body)) {
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    boost::system::error_code ec;
    auto v = boost::json::parse(data, ec);
    if (ec || !v.is_object()) continue;
    const auto& o = v.get_object();
    if (o.contains("error")) {
      s.error = true;
      continue;
    }
    if (const auto* model = o.if_contains("model"); model && model->is_string()) {
      s.models.emplace_back(model->get_string());
    }
    if (const auto* usage = o.if_contains("usage"); usage && usage->is_object()) {
      s.prompt_tokens = usage->at("prompt_tokens").to_number<std::int64_t>();
      s.completion_tokens = usage->at("completion_tokens").to_number<std::int64_t>();
    }
    if (const auto* choices = o.if_contains("choices"); choices && choices->is_array()) {
      for (const auto& choice : choices->get_array()) {
        const auto* delta = choice.as_object().if_contains("delta");
        if (delta == nullptr || !delta->is_object()) continue;
        if (const auto* c = delta->get_object().if_contains("content"); c && c->is_string()) {
          s.content += c->get_string();
        }
      }
    }
  }
  return s;
}

}  // namespace backstop::faults
