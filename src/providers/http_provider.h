#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "core/error.h"
#include "dialects/dialect.h"
#include "http/client.h"
#include "http/message.h"
#include "providers/provider.h"

namespace backstop::providers {

struct HttpProviderOptions {
  std::string name;
  const dialects::Dialect* dialect = nullptr;  // one with an upstream side; not owned
  std::string base_url;  // what the vendor's SDK takes: OpenAI ".../v1"; Anthropic the host
  std::string model;
  std::string api_key;                           // the key itself; empty: no auth header
  std::string ca_file;                           // extra CA bundle for TLS; empty: the system store
  std::int64_t connect_timeout_ms = 5'000;       // TCP + TLS handshake
  std::int64_t first_token_timeout_ms = 10'000;  // head + first body byte, when the call asks
  std::int64_t idle_timeout_ms = 30'000;         // longest silence once the body has begun
  std::int64_t timeout_ms = 600'000;             // the whole call, a streamed body included
  std::int64_t default_max_tokens = 4096;        // where the dialect requires max_tokens
  std::string api_version;                       // the dialect's version header; empty: its default
};

// A model behind an HTTP API in one dialect (a dialects::Dialect with an upstream side):
// encodes the request in that dialect, sends it with the key, and maps the answer to a
// ChatResponse or an Error (see Provider). Immutable; shared by all workers.
class HttpProvider final : public Provider {
 public:
  // kInvalidArgument when base_url is not "http(s)://host[:port][/path]", or the dialect has
  // no upstream side.
  [[nodiscard]] static core::Result<std::unique_ptr<HttpProvider>> create(
      HttpProviderOptions options);

  [[nodiscard]] const std::string& name() const override { return options_.name; }
  [[nodiscard]] const std::string& model() const override { return options_.model; }
  boost::asio::awaitable<core::Result<chat::ChatResponse>> complete(
      const chat::ChatRequest& request, CallContext& context) override;
  // Sends the request with stream: true (OpenAI: and stream_options.include_usage) and
  // accept: text/event-stream. Errors before the first event are those of complete(). The
  // stream is complete by the dialect's own end (StreamReader::complete(): OpenAI's
  // finish_reason, [DONE] may or may not follow; Anthropic's message_stop). An event that does not
  // decode is skipped and counted (skipped_events()). The stream's errors: kBrokenStream when the
  // body ends before the answer is complete (or with nothing that decoded) or breaks; kUpstream
  // when it carries an error event; kTimeout when the first byte of the body is later than
  // first_token_timeout_ms (when the context asks for it) or the context's budget, the stream
  // is silent for idle_timeout_ms, or the whole exchange, from the call of stream() to the
  // stream's end, takes longer than timeout_ms. A 2xx answer that is not an event stream is
  // decoded as a whole answer and streamed from it.
  boost::asio::awaitable<core::Result<std::unique_ptr<EventStream>>> stream(
      const chat::ChatRequest& request, CallContext& context) override;
  // Requests with what only one dialect carries go only to a provider of that dialect.
  [[nodiscard]] bool carries(const chat::ChatRequest& request) const override;
  [[nodiscard]] bool counts_tokens() const override {
    return !options_.dialect->count_tokens_path().empty();
  }
  // POST base + the dialect's count_tokens_path() with the request (model replaced).
  boost::asio::awaitable<core::Result<RelayedAnswer>> count_tokens(const chat::ChatRequest& request,
                                                                   CallContext& context) override;

  // Probes the upstream's host for the stack's own endpoints (probe_stack), each within the
  // context's budget (at most 2 s).
  boost::asio::awaitable<std::string> detect_stack(CallContext& context) override;

  // The path requests go to: base path + the dialect's upstream_path().
  [[nodiscard]] const std::string& target() const { return target_; }

  // `message` with the key replaced, and the upstream's address (host:port, or the host
  // alone) replaced by "provider NAME": what a provider says may reach a client.
  [[nodiscard]] std::string redact(std::string message) const;
  // `error` with its message redacted.
  [[nodiscard]] core::Error redact(core::Error error) const;

 private:
  HttpProvider(HttpProviderOptions options, http::Origin origin);
  [[nodiscard]] dialects::UpstreamSettings settings() const;

  // The request to send: the encoded body, the headers, the limits.
  [[nodiscard]] http::ClientRequest call_for(const chat::ChatRequest& request, CallContext& context,
                                             bool stream) const;
  // Sets the call's timeouts (the wait for the answer to begin cut to the context's budget),
  // cancellation and replay count.
  void limit(http::ClientRequest& call, CallContext& context) const;
  // The headers for a call with this request: the provider's own, the client's dialect
  // headers when it speaks the same dialect (replacing the provider's of the same name),
  // the request id.
  [[nodiscard]] std::vector<http::Header> headers_for(const chat::ChatRequest& request,
                                                      const CallContext& context) const;
  // The error for a non-2xx answer.
  [[nodiscard]] core::Error status_error(const http::ClientResponse& response) const;
  // The answer of a 2xx body, or kBadResponse.
  [[nodiscard]] core::Result<chat::ChatResponse> decode(int status, std::string_view body) const;

  HttpProviderOptions options_;
  http::Origin origin_;
  std::string target_;
  std::vector<http::Header> headers_;  // sent on every request
};

// The error for a non-2xx answer from an upstream of `dialect` (the key not yet redacted):
// 429 kRateLimited; a 400, 403 or 422 that says content policy, or a 400 or 422 about the
// request itself, kRejected with the upstream's message and code; anything else kUpstream,
// the target's fault (5xx; 401, 403 and other 4xx; context length, max_tokens, an
// unsupported feature or an unknown model in a 400; an answer that is not an API error).
[[nodiscard]] core::Error status_error(const http::ClientResponse& response,
                                       const dialects::Dialect& dialect);

// Milliseconds to wait from a 429's `retry-after-ms` or `Retry-After` (delta seconds);
// -1 when neither is present or parses (an HTTP date, say).
[[nodiscard]] int retry_after_ms(const http::ClientResponse& response);

}  // namespace backstop::providers
