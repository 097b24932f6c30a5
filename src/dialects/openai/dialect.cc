#include "dialects/openai/dialect.h"

#include "dialects/adapters.h"
#include "dialects/openai/openai.h"

namespace backstop::dialects::openai {
namespace {

constexpr Endpoint kEndpoints[] = {{"/v1/chat/completions", Endpoint::Kind::kChat}};

class Reader final : public StreamReader {
 public:
  core::Result<void> feed(std::string_view, std::string_view data,
                          std::vector<chat::StreamEvent>& out) override {
    return decoder_.feed(data, out);
  }
  bool done() const override { return decoder_.done(); }
  bool complete() const override { return decoder_.complete(); }

 private:
  StreamDecoder decoder_;
};

class OpenAI final : public Dialect {
 public:
  std::string_view name() const override { return kName; }
  std::span<const Endpoint> endpoints() const override { return kEndpoints; }
  core::Result<chat::ChatRequest> decode_request(std::string_view body) const override {
    return openai::decode_request(body);
  }
  std::string encode_response(const chat::ChatResponse& response, const chat::ChatRequest&,
                              std::string_view model) const override {
    return openai::encode_response(response, model);
  }
  std::unique_ptr<StreamWriter> stream_writer(const chat::ChatRequest& request,
                                              std::string_view model) const override {
    return std::make_unique<EncoderWriter<StreamEncoder>>(std::string(model),
                                                          request.include_usage);
  }
  std::string encode_error(const core::Error& error,
                           const boost::json::object& extra) const override {
    return openai::encode_error(error, extra);
  }
  std::string_view response_schema_field() const override {
    return "response_format.json_schema.schema";
  }

  std::string_view upstream_path() const override { return "/chat/completions"; }
  std::vector<std::pair<std::string, std::string>> upstream_headers(
      const UpstreamSettings& settings) const override {
    if (settings.api_key.empty()) return {};
    return {{"authorization", "Bearer " + settings.api_key}};
  }
  std::string encode_request(const chat::ChatRequest& request, std::string_view model,
                             const UpstreamSettings&) const override {
    return openai::encode_request(request, model);
  }
  core::Result<chat::ChatResponse> decode_response(std::string_view body) const override {
    return openai::decode_response(body);
  }
  std::unique_ptr<StreamReader> stream_reader() const override {
    return std::make_unique<Reader>();
  }
  std::string upstream_error_message(std::string_view body) const override {
    return openai::upstream_error_message(body);
  }
  std::optional<std::string> upstream_error_code(std::string_view body) const override {
    return openai::upstream_error_code(body);
  }
  std::string_view stream_end_name() const override { return "finish_reason"; }
  std::string_view last_frame_marker() const override { return "data: [DONE]"; }
  std::string_view response_id_prefix() const override { return "chatcmpl-"; }
  std::string_view tool_call_id_prefix() const override { return "call_"; }
};

}  // namespace

const Dialect& dialect() {
  static const OpenAI instance;
  return instance;
}

}  // namespace backstop::dialects::openai
