#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
  std::chrono::milliseconds timeout{30'000};         // whole exchange, connect included
  std::chrono::milliseconds connect_timeout{5'000};  // TCP + TLS handshake
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
};

// An HTTP/1.1 client for one worker's event loop: keep-alive connections pooled per
// origin, TLS with certificate verification (system store or the origin's ca_file) and
// SNI. A pooled connection that fails before any response byte is replaced by a fresh one
// and the request replayed once. Not thread-safe: one per worker.
class Client {
 public:
  Client(boost::asio::io_context& loop, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends a request and reads the whole response. Errors: kConnect (DNS, refused, TLS),
  // kTimeout (request.timeout passed), kUpstream (connection broke mid-response),
  // kBadResponse (not HTTP). A non-2xx status is not an error here.
  boost::asio::awaitable<core::Result<ClientResponse>> send(const Origin& origin,
                                                            ClientRequest request);

  // Sends a request and returns once the status and headers are in; the body is then
  // read from the stream. The connection returns to the pool when the body is read to
  // its end, and is closed when the stream is destroyed before that. request.timeout
  // covers the exchange up to the headers, then each next() anew (an inactivity limit, so
  // long streams live while the upstream keeps sending). The stream must not outlive
  // this Client.
  boost::asio::awaitable<core::Result<StreamedResponse>> open(const Origin& origin,
                                                              ClientRequest request);

  // Idle pooled connections now (for tests).
  [[nodiscard]] std::size_t idle_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace backstop::http
