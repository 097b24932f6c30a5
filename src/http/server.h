#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "http/message.h"

namespace boost::asio {
class io_context;
}

namespace backstop::http {

// Writes the answer to one request: either one whole Response, or a stream
// (status and headers first, then body pieces as they come, chunked).
class Responder {
 public:
  virtual ~Responder() = default;
  // Sends a whole response. Call once, and not after begin_stream.
  virtual boost::asio::awaitable<void> send(Response response) = 0;
  // Starts a chunked response. False when the client is gone.
  virtual boost::asio::awaitable<bool> begin_stream(int status, std::string content_type,
                                                    std::vector<Header> headers) = 0;
  // Writes one piece and flushes it. False when the client is gone.
  virtual boost::asio::awaitable<bool> write(std::string_view data) = 0;
  // Ends the chunked response.
  virtual boost::asio::awaitable<void> end_stream() = 0;
  // Calls `on_gone` once, on the worker's thread, when the client closes or resets its
  // connection while the request is handled, so that work for it can stop at once. Call
  // again with an empty function before what `on_gone` refers to goes away. The default
  // never calls it.
  virtual void watch_client(std::function<void()> on_gone) { static_cast<void>(on_gone); }
};

// The application behind a server. One instance per worker thread, called only on
// that worker's thread, so it may keep per-thread state without locks.
class Service {
 public:
  virtual ~Service() = default;
  virtual boost::asio::awaitable<void> handle(Request request, Responder& responder) = 0;
  // The response for a request the server refused before handle() (413 body too large,
  // 431 headers too large, 408 too slow, 400 malformed HTTP). `target` is the request
  // target when it was read, else empty. The default is a small JSON error body.
  [[nodiscard]] virtual Response protocol_error(int status, std::string_view message,
                                                std::string_view target);
};

struct ServerLimits {
  std::size_t max_body_bytes = 16 * 1024 * 1024;    // larger: 413
  std::size_t max_header_bytes = 16 * 1024;         // larger: 431
  std::chrono::milliseconds read_timeout{30'000};   // to read one whole request: 408, close
  std::chrono::milliseconds idle_timeout{75'000};   // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{60'000};  // per write
  std::size_t max_connections = 10'000;             // per server; more get a 503 at accept
  // The open-file limit that max_connections is capped below (connection_cap); 0: the
  // process's RLIMIT_NOFILE soft limit at construction.
  std::uint64_t fd_limit = 0;
};

// The most client connections a server with `threads` workers may hold under an open-file
// limit of `fd_limit`: half of what is left after 128 descriptors (listeners, the ledger,
// log files, CA bundles) and 4 per worker (event loop, timers), so that every client
// connection can also hold an upstream connection. At least 1.
[[nodiscard]] std::size_t connection_cap(std::uint64_t fd_limit, int threads);

// Where a server reports what it refuses (connections over the cap, failed accepts) and
// the cap it applied. Both optional: no logger, no lines; no clock, the system clock.
struct ServerLog {
  core::Logger* logger = nullptr;
  const core::Clock* clock = nullptr;
};

// An HTTP/1.1 server: `threads` workers, each with its own event loop and its own
// SO_REUSEPORT acceptor on the same port, each calling its own Service.
class Server {
 public:
  // Called once per worker, on start, with that worker's event loop and index.
  using ServiceFactory =
      std::function<std::unique_ptr<Service>(boost::asio::io_context& loop, int worker)>;

  // max_connections is capped by connection_cap(fd_limit, threads), with a log line.
  Server(ServerLimits limits, int threads, ServiceFactory factory, ServerLog log = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (port 0: the OS picks). kConnect error when it cannot bind, or when
  // another socket already listens on the port, even one with SO_REUSEPORT (only this
  // server's own workers share the port).
  [[nodiscard]] core::Result<void> listen(const std::string& host, std::uint16_t port);
  // The bound port (after listen).
  [[nodiscard]] std::uint16_t port() const;
  // Starts the workers on their own threads and returns.
  void start();
  // From now on every response carries Connection: close; the listener keeps accepting.
  // Safe to call from any thread.
  void begin_drain();
  // Stops accepting, lets in-flight requests finish for up to `drain`, then closes every
  // connection and joins the workers. Safe to call from any thread, once.
  void stop(std::chrono::milliseconds drain);
  // Blocks until stop() has completed.
  void wait();
  // Connections open now, across workers.
  [[nodiscard]] std::size_t open_connections() const;
  // Requests being handled now, across workers.
  [[nodiscard]] std::size_t in_flight() const;
  // The connection limit in force: the configured one, capped (see connection_cap).
  [[nodiscard]] std::size_t max_connections() const;
  // Connections refused with a 503 at the limit, since start.
  [[nodiscard]] std::uint64_t refused_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace backstop::http
