#include "dialects/anthropic/dialect.h"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include "dialects/adapters.h"
#include "dialects/anthropic/anthropic.h"

namespace backstop::dialects::anthropic {
namespace {

constexpr Endpoint kEndpoints[] = {{"/v1/messages", Endpoint::Kind::kChat},
                                   {"/v1/messages/count_tokens", Endpoint::Kind::kCountTokens}};

class Anthropic final : public Dialect {
 public:
  std::string_view name() const override { return kName; }
  std::span<const Endpoint> endpoints() const override { return kEndpoints; }
  core::Result<chat::ChatRequest> decode_request(std::string_view body) const override {
    return anthropic::decode_request(body);
  }
  core::Result<chat::ChatRequest> decode_count_tokens_request(
      std::string_view body) const override {
    return anthropic::decode_count_tokens_request(body);
  }
  std::string encode_response(const chat::ChatResponse& response, const chat::ChatRequest&,
                              std::string_view model) const override {
    return anthropic::encode_response(response, model);
  }
  std::unique_ptr<StreamWriter> stream_writer(const chat::ChatRequest&,
                                              std::string_view model) const override {
    return std::make_unique<EncoderWriter<StreamEncoder>>(std::string(model));
  }
  std::string encode_error(const core::Error& error,
                           const boost::json::object& extra) const override {
    return anthropic::encode_error(error, extra);
  }
  bool error_codes() const override { return false; }
  std::span<const std::string_view> forwarded_headers() const override { return kForwardedHeaders; }
  std::string_view marker_header() const override { return "anthropic-version"; }
  std::string encode_models(std::span<const std::string_view> names) const override {
    boost::json::array data;
    for (std::string_view n : names) {
      data.push_back({{"type", "model"},
                      {"id", n},
                      {"display_name", n},
                      {"created_at", "1970-01-01T00:00:00Z"}});
    }
    auto id = [&names](bool first) {
      if (names.empty()) return boost::json::value();
      return boost::json::value(first ? names.front() : names.back());
    };
    return boost::json::serialize(boost::json::object{{"data", std::move(data)},
                                                      {"has_more", false},
                                                      {"first_id", id(true)},
                                                      {"last_id", id(false)}});
  }
  std::string_view tool_schema_field() const override { return "input_schema"; }
  std::string_view response_schema_field() const override { return "output_config.format.schema"; }

  std::string_view upstream_path() const override { return "/v1/messages"; }
  std::string_view count_tokens_path() const override { return "/v1/messages/count_tokens"; }
  std::vector<std::pair<std::string, std::string>> upstream_headers(
      const UpstreamSettings& settings) const override {
    std::vector<std::pair<std::string, std::string>> out;
    if (!settings.api_key.empty()) out.emplace_back("x-api-key", settings.api_key);
    out.emplace_back("anthropic-version",
                     settings.version.empty() ? std::string("2023-06-01") : settings.version);
    return out;
  }
  std::string encode_request(const chat::ChatRequest& request, std::string_view model,
                             const UpstreamSettings& settings) const override {
    return anthropic::encode_request(request, model, settings.default_max_tokens);
  }
  core::Result<chat::ChatResponse> decode_response(std::string_view body) const override {
    return anthropic::decode_response(body);
  }
  std::unique_ptr<StreamReader> stream_reader() const override {
    return std::make_unique<DecoderReader<StreamDecoder>>();
  }
  std::string upstream_error_message(std::string_view body) const override {
    return anthropic::upstream_error_message(body);
  }
  std::optional<std::string> upstream_error_code(std::string_view body) const override {
    return anthropic::upstream_error_code(body);
  }
  std::string_view stream_end_name() const override { return "message_stop"; }
  std::string_view last_frame_marker() const override { return "event: message_stop"; }
  std::string_view response_id_prefix() const override { return "msg_"; }
  std::string_view tool_call_id_prefix() const override { return "toolu_"; }
  std::string_view keepalive_frame() const override {
    return "event: ping\ndata: {\"type\": \"ping\"}\n\n";
  }
};

}  // namespace

const Dialect& dialect() {
  static const Anthropic instance;
  return instance;
}

}  // namespace backstop::dialects::anthropic
