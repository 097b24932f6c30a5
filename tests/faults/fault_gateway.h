#pragma once

// The whole gateway in-process on port 0, its primary and its fallback two fault servers.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "fault_server.h"
#include "http/client.h"
#include "server/gateway.h"

namespace backstop::faults {

// Providers `primary` (OpenAI dialect, model primary-model, price 0.14/0.28) at the first
// fault server and `fallback` (Anthropic dialect, model fallback-model, price 3/15) at the
// second; each test file appends its own `providers:` keys and `workloads:` (see start()).
class FaultGatewayTest : public ::testing::Test {
 protected:
  // Starts the gateway. `provider_keys` is indented YAML added to both providers (timeouts);
  // `workloads` is the whole `workloads:` block.
  void start(std::string_view provider_keys, std::string_view workloads);
  void TearDown() override;

  // A request through the gateway; the answer whole (streams included). 10 s at most.
  http::ClientResponse post(std::string target, std::string body,
                            std::vector<http::Header> headers = {});
  // An OpenAI chat request to `workload` with one user message; `extra` is added to the
  // body's top level (",\"stream\":true"). The request carries x-request-id `request_id`.
  http::ClientResponse chat(std::string_view workload, std::string_view request_id,
                            std::string_view extra = "");
  // The same on the Anthropic endpoint.
  http::ClientResponse messages(std::string_view workload, std::string_view request_id,
                                std::string_view extra = "");

  [[nodiscard]] std::string metrics_text();
  [[nodiscard]] double counter(telemetry::FamilyId family, std::vector<std::string> labels);
  [[nodiscard]] const telemetry::Metrics& metrics() const;
  [[nodiscard]] static boost::json::value json(const http::ClientResponse& response);

  FaultServer primary_;
  FaultServer fallback_;
  core::NullLogger logger_;
  std::unique_ptr<server::Gateway> gateway_;
  boost::asio::io_context loop_;
  http::Client client_{loop_};
};

// What a client assembled from an OpenAI stream.
struct OpenAIStream {
  std::string content;
  std::vector<std::string> models;  // of every chunk, in order
  bool done = false;                // data: [DONE] arrived
  bool error = false;               // an error event arrived
  std::int64_t prompt_tokens = -1;  // from the usage chunk, when there was one
  std::int64_t completion_tokens = -1;
};
[[nodiscard]] OpenAIStream read_openai_stream(std::string_view body);

}  // namespace backstop::faults
