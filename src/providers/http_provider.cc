#include "providers/http_provider.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>
#include <utility>

#include "dialects/anthropic/anthropic.h"
#include "dialects/openai/openai.h"

namespace backstop::providers {
namespace {

namespace net = boost::asio;
namespace openai = dialects::openai;
namespace anthropic = dialects::anthropic;

constexpr std::string_view kRedacted = "[redacted]";
constexpr double kMaxRetryAfterMs = 24.0 * 3600 * 1000;

// A non-negative decimal number ("0", "1.5"), surrounding spaces allowed.
std::optional<double> parse_decimal(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0 ||
      !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

int retry_after_ms(const http::ClientResponse& response) {
  std::optional<double> ms = parse_decimal(response.header("retry-after-ms"));
  if (!ms) {
    // Delta seconds; an HTTP date does not parse and counts as absent.
    if (const auto seconds = parse_decimal(response.header("retry-after"))) ms = *seconds * 1000;
  }
  if (!ms) return -1;
  return static_cast<int>(std::llround(std::min(*ms, kMaxRetryAfterMs)));
}

core::Result<std::unique_ptr<HttpProvider>> HttpProvider::create(HttpProviderOptions options) {
  auto origin = http::parse_origin(options.base_url);
  if (!origin) {
    return core::fail(core::ErrorCode::kInvalidArgument,
                      "provider " + options.name + ": " + origin.error().message);
  }
  origin->ca_file = options.ca_file;
  return std::unique_ptr<HttpProvider>(new HttpProvider(std::move(options), std::move(*origin)));
}

HttpProvider::HttpProvider(HttpProviderOptions options, http::Origin origin)
    : options_(std::move(options)), origin_(std::move(origin)) {
  headers_ = {{"content-type", "application/json"},
              {"accept", "application/json"},
              {"user-agent", "backstop/0.1"}};
  if (options_.dialect == chat::Dialect::kOpenAI) {
    target_ = origin_.base_path + "/chat/completions";
    if (!options_.api_key.empty()) {
      headers_.push_back({"authorization", "Bearer " + options_.api_key});
    }
  } else {
    target_ = origin_.base_path + "/v1/messages";
    if (!options_.api_key.empty()) headers_.push_back({"x-api-key", options_.api_key});
    headers_.push_back({"anthropic-version", options_.anthropic_version});
  }
}

std::string HttpProvider::redact(std::string message) const {
  const std::string& key = options_.api_key;
  if (key.empty()) return message;
  for (std::size_t at = message.find(key); at != std::string::npos;
       at = message.find(key, at + kRedacted.size())) {
    message.replace(at, key.size(), kRedacted);
  }
  return message;
}

core::Error HttpProvider::status_error(const http::ClientResponse& response) const {
  const std::string detail = options_.dialect == chat::Dialect::kOpenAI
                                 ? openai::upstream_error_message(response.body)
                                 : anthropic::upstream_error_message(response.body);
  core::Error error;
  error.code = response.status == 429 ? core::ErrorCode::kRateLimited : core::ErrorCode::kUpstream;
  error.message = redact("HTTP " + std::to_string(response.status) + ": " + detail);
  error.upstream_status = response.status;
  error.retry_after_ms = retry_after_ms(response);
  return error;
}

net::awaitable<core::Result<chat::ChatResponse>> HttpProvider::complete(
    const chat::ChatRequest& request, CallContext& context) {
  const bool is_openai = options_.dialect == chat::Dialect::kOpenAI;
  http::ClientRequest call;
  call.method = "POST";
  call.target = target_;
  call.headers = headers_;
  if (!context.request_id.empty()) {
    call.headers.push_back({"x-request-id", std::string(context.request_id)});
  }
  call.body = is_openai
                  ? openai::encode_request(request, options_.model)
                  : anthropic::encode_request(request, options_.model, options_.default_max_tokens);
  call.timeout = std::chrono::milliseconds(options_.timeout_ms);
  call.connect_timeout = std::chrono::milliseconds(options_.connect_timeout_ms);

  auto sent = co_await context.http.send(origin_, std::move(call));
  if (!sent) {
    core::Error error = std::move(sent.error());
    error.message = redact(std::move(error.message));
    co_return std::unexpected(std::move(error));
  }
  const http::ClientResponse& response = *sent;
  if (response.status < 200 || response.status > 299) {
    co_return std::unexpected(status_error(response));
  }
  auto decoded = is_openai ? openai::decode_response(response.body)
                           : anthropic::decode_response(response.body);
  if (!decoded) {
    core::Error error{core::ErrorCode::kBadResponse,
                      redact("HTTP " + std::to_string(response.status) +
                             " body does not decode: " + decoded.error().message),
                      response.status};
    co_return std::unexpected(std::move(error));
  }
  co_return std::move(*decoded);
}

}  // namespace backstop::providers
