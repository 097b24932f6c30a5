#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/chat.h"
#include "core/error.h"

namespace backstop::dialects {

// Writes one answer as a client's event stream, frame by frame.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // The frames for one event (possibly none).
  [[nodiscard]] virtual std::string encode(const chat::StreamEvent& event) = 0;
  // The end of a clean stream.
  [[nodiscard]] virtual std::string finish() = 0;
  // An explicit error frame for a stream that broke after bytes were sent.
  [[nodiscard]] virtual std::string error(const core::Error& error) = 0;
};

// Reads an upstream's event stream, one server-sent event at a time.
class StreamReader {
 public:
  virtual ~StreamReader() = default;
  // Decodes one event (its name, which may be empty, and its data) and appends what it
  // carries. kBadResponse when it is not an event of the dialect, and then neither `out` nor
  // the reader has changed, so that the caller may skip it; an in-stream error is kUpstream.
  [[nodiscard]] virtual core::Result<void> feed(std::string_view event, std::string_view data,
                                                std::vector<chat::StreamEvent>& out) = 0;
  // True after the last event the dialect sends.
  [[nodiscard]] virtual bool done() const = 0;
  // True once the answer is whole by the dialect's own end.
  [[nodiscard]] virtual bool complete() const = 0;
};

// One client endpoint a dialect serves.
struct Endpoint {
  enum class Kind { kChat, kCountTokens };
  std::string_view path;
  Kind kind = Kind::kChat;
};

// How a provider of the dialect is reached, from its config.
struct UpstreamSettings {
  std::string api_key;  // empty: no auth header
  std::string version;  // the API version header's value, where the dialect has one
  std::int64_t default_max_tokens = 4096;  // where the dialect requires max_tokens
};

// One wire format: what its clients send and are answered (the client side), and, when
// models are served in it, what its upstreams are sent and answer (the upstream side).
// Implementations live in one folder each under dialects/ and are registered by name at
// the composition root (dialects::Registry). Stateless and shared by every worker.
class Dialect {
 public:
  virtual ~Dialect() = default;

  // Its name: what ChatRequest::origin holds for its clients' requests.
  [[nodiscard]] virtual std::string_view name() const = 0;
  // A provider's `kind` in the config for an upstream of this dialect (its name by default).
  [[nodiscard]] virtual std::string_view kind() const { return name(); }

  // --- client side ---
  // The endpoints it answers; paths under a chat endpoint's path are answered (errors,
  // 404s) in its shape too.
  [[nodiscard]] virtual std::span<const Endpoint> endpoints() const = 0;
  [[nodiscard]] virtual core::Result<chat::ChatRequest> decode_request(
      std::string_view body) const = 0;
  // A token-counting request (Endpoint::Kind::kCountTokens).
  [[nodiscard]] virtual core::Result<chat::ChatRequest> decode_count_tokens_request(
      std::string_view body) const;
  // A whole answer to `request`, reporting `model`.
  [[nodiscard]] virtual std::string encode_response(const chat::ChatResponse& response,
                                                    const chat::ChatRequest& request,
                                                    std::string_view model) const = 0;
  [[nodiscard]] virtual std::unique_ptr<StreamWriter> stream_writer(
      const chat::ChatRequest& request, std::string_view model) const = 0;
  // An error body; `extra`'s members join the error object.
  [[nodiscard]] virtual std::string encode_error(const core::Error& error,
                                                 const boost::json::object& extra) const = 0;
  // Whether its error objects carry a machine-readable `code` besides their type (callers
  // add one of their own to `extra` only then).
  [[nodiscard]] virtual bool error_codes() const { return true; }
  // Request headers of its clients that go on to an upstream of the same dialect.
  [[nodiscard]] virtual std::span<const std::string_view> forwarded_headers() const { return {}; }
  // A request header only its clients send (GET /v1/models answers them in its list shape).
  [[nodiscard]] virtual std::string_view marker_header() const { return {}; }
  // GET /v1/models: the workloads as its list of models.
  [[nodiscard]] virtual std::string encode_models(std::span<const std::string_view> names) const;
  // Where its clients put a tool's JSON Schema and the answer's, as they would name them.
  [[nodiscard]] virtual std::string_view tool_schema_field() const { return "parameters"; }
  [[nodiscard]] virtual std::string_view response_schema_field() const = 0;

  // --- upstream side (absent when upstream_path() is empty) ---
  // The path a call goes to, appended to the provider's base path; empty: no upstream side.
  [[nodiscard]] virtual std::string_view upstream_path() const { return {}; }
  // The token-counting path under the base path; empty: the dialect counts no tokens.
  [[nodiscard]] virtual std::string_view count_tokens_path() const { return {}; }
  // The headers every call carries (authentication, API version).
  [[nodiscard]] virtual std::vector<std::pair<std::string, std::string>> upstream_headers(
      const UpstreamSettings& settings) const;
  [[nodiscard]] virtual std::string encode_request(const chat::ChatRequest& request,
                                                   std::string_view model,
                                                   const UpstreamSettings& settings) const;
  [[nodiscard]] virtual core::Result<chat::ChatResponse> decode_response(
      std::string_view body) const;
  [[nodiscard]] virtual std::unique_ptr<StreamReader> stream_reader() const;
  // The message and the API's error code in an upstream's error body (nullopt: not the
  // API's error shape).
  [[nodiscard]] virtual std::string upstream_error_message(std::string_view body) const;
  [[nodiscard]] virtual std::optional<std::string> upstream_error_code(std::string_view body) const;
  // What marks a streamed answer whole ("finish_reason"), for the error of a cut stream.
  [[nodiscard]] virtual std::string_view stream_end_name() const { return "its end"; }
  // The start of the frame that ends its streams ("data: [DONE]").
  [[nodiscard]] virtual std::string_view last_frame_marker() const { return {}; }
  // A frame its upstreams send to keep a stream alive, after the first frame; empty: none.
  [[nodiscard]] virtual std::string_view keepalive_frame() const { return {}; }
  // How its upstreams' ids begin: an answer's ("chatcmpl-") and a tool call's ("call_").
  [[nodiscard]] virtual std::string_view response_id_prefix() const { return {}; }
  [[nodiscard]] virtual std::string_view tool_call_id_prefix() const { return {}; }
};

}  // namespace backstop::dialects
