#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/cancellation.h"
#include "core/clock.h"
#include "core/error.h"
#include "http/message.h"

namespace boost::asio {
class io_context;
}

namespace backstop::http {

// Where a provider lives, from its base_url. The pool key is (tls, host, port).
struct Origin {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string base_path;  // "/v1" for "http://h:8000/v1"; "" for "https://api.anthropic.com"
  std::string ca_file;    // TLS: extra CA bundle; empty: the system store
};

// Parses "http(s)://host[:port][/path]". kInvalidArgument on anything else.
[[nodiscard]] core::Result<Origin> parse_origin(std::string_view url);

struct ClientRequest {
  std::string method = "POST";
  std::string target;  // full path, e.g. "/v1/chat/completions"
  std::vector<Header> headers;
  std::string body;
  std::chrono::milliseconds connect_timeout{5'000};  // TCP + TLS handshake
  // From the request's write to the response head and the first body byte; zero: none.
  std::chrono::milliseconds first_byte_timeout{0};
  // The longest silence once the body has begun (between body reads); zero: none.
  std::chrono::milliseconds idle_timeout{0};
  // The whole exchange, from the call to the body's end (a streamed body's too).
  std::chrono::milliseconds timeout{30'000};
  // Told of each failure of a pooled connection after which the request went out again on a
  // fresh one (a replay), so that the caller can count it.
  std::function<void(const core::Error&)> on_replay;
  // When requested, the exchange ends at once: its connection is closed. Null: none. Must
  // outlive the exchange (a streamed body's too).
  core::Cancellation* cancel = nullptr;
};

struct ClientResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;

  [[nodiscard]] std::string_view header(std::string_view name) const {
    return find_header(headers, name);
  }
};

// The body of a streamed response, read piece by piece.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // The next piece of body; an empty string at the clean end. Errors: kTimeout, kUpstream.
  virtual boost::asio::awaitable<core::Result<std::string>> next() = 0;
};

struct StreamedResponse {
  int status = 0;
  std::vector<Header> headers;
  std::unique_ptr<BodyStream> body;

  [[nodiscard]] std::string_view header(std::string_view name) const {
    return find_header(headers, name);
  }
};

struct ClientOptions {
  std::chrono::milliseconds pool_idle_timeout{30'000};  // below upstreams' keep-alive timeouts
  std::size_t max_idle_per_origin = 256;
  // Times how soon a pooled connection failed after the write (the replay window); null:
  // the steady clock.
  const core::Clock* clock = nullptr;
};

// A pooled connection that fails within this long of the request's write, before any byte of
// the response, had been closed by the upstream while it sat idle: the request is replayed on
// a fresh connection. Later than this the upstream may have begun processing it, and the
// failure is the caller's to handle.
inline constexpr std::chrono::milliseconds kReplayWindow{5};

// An HTTP/1.1 client for one worker's event loop: keep-alive connections pooled per
// origin, TLS with certificate verification (system store or the origin's ca_file) and
// SNI. A pooled connection that fails within kReplayWindow of the write, before any response
// byte, is replaced by a fresh one and the request replayed once (request.on_replay is told).
// Not thread-safe: one per worker.
class Client {
 public:
  Client(boost::asio::io_context& loop, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends a request and reads the whole response. Errors: kConnect (DNS, refused, TLS),
  // kTimeout (one of the request's timeouts passed; the message says which), kUpstream
  // (connection broke mid-response, or request.cancel was requested), kBadResponse (not
  // HTTP). A non-2xx status is not an error here.
  boost::asio::awaitable<core::Result<ClientResponse>> send(const Origin& origin,
                                                            ClientRequest request);

  // Sends a request and returns once the status and headers are in; the body is then
  // read from the stream. The connection returns to the pool when the body is read to
  // its end, and is closed when the stream is destroyed before that. The request's timeouts
  // apply as in send(): first_byte_timeout to the head and the body's first piece,
  // idle_timeout to each later next(), timeout to the whole exchange up to the body's end.
  // The stream must not outlive this Client.
  boost::asio::awaitable<core::Result<StreamedResponse>> open(const Origin& origin,
                                                              ClientRequest request);

  // Idle pooled connections now (for tests).
  [[nodiscard]] std::size_t idle_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace backstop::http
