#include "dialects/responses/dialect.h"

#include "dialects/adapters.h"
#include "dialects/openai/openai.h"
#include "dialects/responses/responses.h"

namespace backstop::dialects::responses {
namespace {

constexpr Endpoint kEndpoints[] = {{"/v1/responses", Endpoint::Kind::kChat}};

class Responses final : public Dialect {
 public:
  std::string_view name() const override { return kName; }
  std::span<const Endpoint> endpoints() const override { return kEndpoints; }
  core::Result<chat::ChatRequest> decode_request(std::string_view body) const override {
    return responses::decode_request(body);
  }
  std::string encode_response(const chat::ChatResponse& response, const chat::ChatRequest& request,
                              std::string_view model) const override {
    return responses::encode_response(response, echo_of(request, model));
  }
  std::unique_ptr<StreamWriter> stream_writer(const chat::ChatRequest& request,
                                              std::string_view model) const override {
    return std::make_unique<EncoderWriter<StreamEncoder>>(echo_of(request, model));
  }
  std::string encode_error(const core::Error& error,
                           const boost::json::object& extra) const override {
    return responses::encode_error(error, extra);
  }
  std::string_view response_schema_field() const override { return "text.format.schema"; }

  std::string_view kind() const override { return "openai_responses"; }
  std::string_view upstream_path() const override { return "/responses"; }
  std::vector<std::pair<std::string, std::string>> upstream_headers(
      const UpstreamSettings& settings) const override {
    if (settings.api_key.empty()) return {};
    return {{"authorization", "Bearer " + settings.api_key}};
  }
  std::string encode_request(const chat::ChatRequest& request, std::string_view model,
                             const UpstreamSettings&) const override {
    return encode_upstream_request(request, model);
  }
  core::Result<chat::ChatResponse> decode_response(std::string_view body) const override {
    return decode_upstream_response(body);
  }
  std::unique_ptr<StreamReader> stream_reader() const override {
    return std::make_unique<DecoderReader<UpstreamStreamDecoder>>();
  }
  std::string upstream_error_message(std::string_view body) const override {
    return openai::upstream_error_message(body);
  }
  std::optional<std::string> upstream_error_code(std::string_view body) const override {
    return openai::upstream_error_code(body);
  }
  std::string_view stream_end_name() const override { return "response.completed"; }
  std::string_view last_frame_marker() const override { return "event: response.completed"; }
  std::string_view response_id_prefix() const override { return "resp_"; }
  std::string_view tool_call_id_prefix() const override { return "call_"; }
};

}  // namespace

const Dialect& dialect() {
  static const Responses instance;
  return instance;
}

}  // namespace backstop::dialects::responses
