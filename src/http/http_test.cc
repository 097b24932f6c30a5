#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "http/client.h"
#include "http/message.h"
#include "http/server.h"

namespace backstop::http {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kAwait = net::as_tuple(net::use_awaitable);

// ---------------------------------------------------------------- helpers

// Runs `task` on `loop` until it finishes and returns its value.
template <typename T>
T run(net::io_context& loop, net::awaitable<T> task) {
  std::optional<T> result;
  std::exception_ptr failure;
  net::co_spawn(loop, std::move(task), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) result.emplace(std::move(value));
    loop.stop();
  });
  loop.restart();
  loop.run();
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

// A latch a handler waits on (on its worker) and the test opens (from any thread).
class Gate {
 public:
  net::awaitable<void> wait(net::io_context& loop) {
    net::steady_timer timer(loop, std::chrono::hours(1));
    {
      std::lock_guard lock(mutex_);
      if (!open_) {
        timer_ = &timer;
        loop_ = &loop;
      }
      entered_.set_value();
      if (open_) co_return;
    }
    co_await timer.async_wait(kAwait);
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    if (timer_ != nullptr) net::post(*loop_, [timer = timer_] { timer->cancel(); });
  }
  void wait_entered() { entered_future_.wait(); }

 private:
  std::mutex mutex_;
  bool open_ = false;
  net::steady_timer* timer_ = nullptr;
  net::io_context* loop_ = nullptr;
  std::promise<void> entered_;
  std::future<void> entered_future_ = entered_.get_future();
};

struct ServiceState {
  std::atomic<int> requests{0};
  std::atomic<int> last_protocol_status{0};
  Gate gate;
  std::promise<int> flood_stopped;  // how many pieces /flood wrote before write() said false
  std::mutex mutex;
  std::vector<int> workers_created;
  std::vector<std::thread::id> destroyed_on;
  Server* server = nullptr;  // for /stop
};

// Echoes "METHOD path body"; /wait waits on the gate; /stream streams two pieces with the
// gate between them.
class EchoService final : public Service {
 public:
  EchoService(net::io_context& loop, ServiceState& state, int worker) : loop_(loop), state_(state) {
    std::lock_guard lock(state_.mutex);
    state_.workers_created.push_back(worker);
  }
  ~EchoService() override {
    std::lock_guard lock(state_.mutex);
    state_.destroyed_on.push_back(std::this_thread::get_id());
  }

  net::awaitable<void> handle(Request request, Responder& responder) override {
    ++state_.requests;
    if (request.path() == "/stream") {
      std::vector<Header> headers;
      headers.push_back(Header{std::string("x-kind"), std::string("stream")});
      const bool started =
          co_await responder.begin_stream(200, "text/event-stream", std::move(headers));
      if (!started) co_return;
      co_await responder.write("data: one\n\n");
      co_await state_.gate.wait(loop_);
      co_await responder.write("data: two\n\n");
      co_await responder.end_stream();
      co_return;
    }
    if (request.path() == "/flood") {
      const bool started = co_await responder.begin_stream(200, "text/plain", {});
      int written = 0;
      while (started && written < 100'000) {
        const bool ok = co_await responder.write(std::string(16 * 1024, 'f'));
        if (!ok) break;
        ++written;
      }
      state_.flood_stopped.set_value(written);
      co_return;
    }
    if (request.path() == "/stop") state_.server->stop(5s);  // returns at once on a worker
    if (request.path() == "/wait") co_await state_.gate.wait(loop_);
    Response response;
    response.content_type = "text/plain";
    response.headers.push_back({"x-test-echo", std::string(request.header("X-Test"))});
    response.body = request.method + " " + std::string(request.path()) + " " + request.body;
    co_await responder.send(std::move(response));
  }

  Response protocol_error(int status, std::string_view message, std::string_view target) override {
    state_.last_protocol_status = status;
    return Service::protocol_error(status, message, target);
  }

 private:
  net::io_context& loop_;
  ServiceState& state_;
};

struct TestServer {
  explicit TestServer(ServerLimits limits = {}, int threads = 1, ServerLog log = {})
      : server(
            limits, threads,
            [this](net::io_context& loop, int worker) {
              return std::make_unique<EchoService>(loop, state, worker);
            },
            log) {
    auto listened = server.listen("127.0.0.1", 0);
    EXPECT_TRUE(listened.has_value());
    state.server = &server;
    server.start();
  }
  ~TestServer() { server.stop(0ms); }

  [[nodiscard]] Origin origin() const { return Origin{false, "127.0.0.1", server.port(), "", ""}; }

  ServiceState state;
  Server server;
};

// A blocking loopback socket with a receive timeout, so that a broken test fails instead
// of hanging.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) : socket_(loop_) {
    boost::system::error_code ec;
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
    connected_ = !ec;
    timeval timeout{5, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  [[nodiscard]] bool connected() const { return connected_; }
  void send(std::string_view bytes) {
    boost::system::error_code ec;
    net::write(socket_, net::buffer(bytes), ec);
  }
  // Reads until the bytes read so far end with `marker` (or the server closes).
  std::string read_until(std::string_view marker) {
    std::string all;
    char byte;
    while (!all.ends_with(marker) && ::recv(socket_.native_handle(), &byte, 1, 0) == 1) {
      all += byte;
    }
    return all;
  }
  // Everything until the server closes; `closed` says whether it did (vs. the 5 s guard).
  std::string read_to_close(bool* closed = nullptr) {
    std::string all;
    std::array<char, 4096> chunk;
    for (;;) {
      const ssize_t n = ::recv(socket_.native_handle(), chunk.data(), chunk.size(), 0);
      if (n <= 0) {
        if (closed != nullptr) *closed = n == 0 || errno == ECONNRESET;
        return all;
      }
      all.append(chunk.data(), static_cast<std::size_t>(n));
    }
  }

 private:
  net::io_context loop_;
  tcp::socket socket_;
  bool connected_ = false;
};

// Keeps every line logged, from any thread.
class RecordingLogger final : public core::Logger {
 public:
  void log(core::LogLevel, std::string_view line) override {
    std::lock_guard lock(mutex_);
    lines_.emplace_back(line);
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

std::string exchange_raw(std::uint16_t port, std::string_view bytes, bool* closed = nullptr) {
  RawConnection connection(port);
  connection.send(bytes);
  return connection.read_to_close(closed);
}

ClientRequest get(std::string target) {
  ClientRequest request;
  request.method = "GET";
  request.target = std::move(target);
  return request;
}

// ---------------------------------------------------------------- messages and origins

TEST(MessageTest, FindsHeadersIgnoringCaseAndStripsQuery) {
  Request request;
  request.target = "/v1/chat/completions?x=1";
  request.headers = {{"Content-Type", "application/json"}, {"X-A", "1"}};
  EXPECT_EQ(request.header("content-type"), "application/json");
  EXPECT_EQ(request.header("x-a"), "1");
  EXPECT_EQ(request.header("missing"), "");
  EXPECT_EQ(request.path(), "/v1/chat/completions");
  request.target = "/plain";
  EXPECT_EQ(request.path(), "/plain");
}

TEST(OriginTest, ParsesSchemesPortsAndPaths) {
  auto plain = parse_origin("http://127.0.0.1:8000/v1/");
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->host, "127.0.0.1");
  EXPECT_EQ(plain->port, 8000);
  EXPECT_EQ(plain->base_path, "/v1");

  auto secure = parse_origin("https://api.anthropic.com");
  ASSERT_TRUE(secure.has_value());
  EXPECT_TRUE(secure->tls);
  EXPECT_EQ(secure->port, 443);
  EXPECT_EQ(secure->base_path, "");

  auto bare = parse_origin("http://localhost/");
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->port, 80);
  EXPECT_EQ(bare->base_path, "");

  auto ipv6 = parse_origin("http://[::1]:9000/x");
  ASSERT_TRUE(ipv6.has_value());
  EXPECT_EQ(ipv6->host, "::1");
  EXPECT_EQ(ipv6->port, 9000);
}

TEST(OriginTest, RejectsAnythingElse) {
  for (std::string_view url : {"ftp://host", "host:80", "http://", "http://:80", "http://h:0",
                               "http://h:70000", "http://h:x", "http://u@h", "http://h/?q=1"}) {
    auto origin = parse_origin(url);
    ASSERT_FALSE(origin.has_value()) << url;
    EXPECT_EQ(origin.error().code, core::ErrorCode::kInvalidArgument) << url;
    EXPECT_NE(origin.error().message.find("invalid base URL"), std::string::npos);
  }
}

// ---------------------------------------------------------------- server and client

TEST(HttpTest, EchoesMethodPathBodyAndHeaders) {
  TestServer server;
  net::io_context loop;
  Client client(loop);
  ClientRequest request;
  request.target = "/echo?q=1";
  request.body = "hello";
  request.headers.push_back({"X-Test", "abc"});
  auto response = run(loop, client.send(server.origin(), request));
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "POST /echo hello");
  EXPECT_EQ(response->header("content-type"), "text/plain");
  EXPECT_EQ(response->header("x-test-echo"), "abc");
}

TEST(HttpTest, KeepAliveReusesOnePooledConnection) {
  TestServer server;
  net::io_context loop;
  Client client(loop);
  auto first = run(loop, client.send(server.origin(), get("/a")));
  auto second = run(loop, client.send(server.origin(), get("/b")));
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->body, "GET /a ");
  EXPECT_EQ(second->body, "GET /b ");
  EXPECT_EQ(client.idle_connections(), 1u);
  EXPECT_EQ(server.server.open_connections(), 1u);
  EXPECT_EQ(server.state.requests.load(), 2);
}

TEST(HttpTest, HonoursConnectionCloseAndHttp10) {
  TestServer server;
  bool closed = false;
  std::string reply = exchange_raw(
      server.server.port(), "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &closed);
  EXPECT_TRUE(closed);
  EXPECT_NE(reply.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(reply.find("\r\n\r\nGET /x "), std::string::npos);

  reply = exchange_raw(server.server.port(), "GET /y HTTP/1.0\r\n\r\n", &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST(HttpTest, ContentLengthOverTheLimitIsRefusedBeforeTheBody) {
  ServerLimits limits;
  limits.max_body_bytes = 1000;
  TestServer server(limits);
  bool closed = false;
  const std::string reply = exchange_raw(
      server.server.port(), "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n", &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 413 Payload Too Large\r\n")) << reply;
  EXPECT_NE(reply.find(R"({"error":{"message":"the request body is larger than 1000 bytes",)"
                       R"("type":"invalid_request_error","code":"request_too_large"}})"),
            std::string::npos)
      << reply;
  EXPECT_NE(reply.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(closed);
  EXPECT_EQ(server.state.last_protocol_status.load(), 413);
  EXPECT_EQ(server.state.requests.load(), 0);
}

TEST(HttpTest, ChunkedBodyOverTheLimitIsRefused) {
  ServerLimits limits;
  limits.max_body_bytes = 1000;
  TestServer server(limits);
  bool closed = false;
  const std::string reply =
      exchange_raw(server.server.port(),
                   "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n" +
                       std::string(1500, 'x') + "\r\n0\r\n\r\n",
                   &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 413 ")) << reply;
  EXPECT_TRUE(closed);
  EXPECT_EQ(server.state.requests.load(), 0);
}

TEST(HttpTest, ClientSeesThe413EvenWhileSendingTheBody) {
  ServerLimits limits;
  limits.max_body_bytes = 1000;
  TestServer server(limits);
  net::io_context loop;
  Client client(loop);
  ClientRequest request;
  request.target = "/x";
  request.body = std::string(200'000, 'x');
  auto response = run(loop, client.send(server.origin(), request));
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(client.idle_connections(), 0u);  // Connection: close
}

TEST(HttpTest, HeadersOverTheLimitGet431) {
  ServerLimits limits;
  limits.max_header_bytes = 1024;
  TestServer server(limits);
  bool closed = false;
  const std::string reply = exchange_raw(
      server.server.port(),
      "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(2000, 'h') + "\r\n\r\n", &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 431 ")) << reply;
  EXPECT_NE(reply.find(R"("code":"headers_too_large")"), std::string::npos);
  EXPECT_TRUE(closed);
  EXPECT_EQ(server.state.last_protocol_status.load(), 431);
}

TEST(HttpTest, MalformedRequestGets400) {
  TestServer server;
  bool closed = false;
  const std::string reply = exchange_raw(server.server.port(), "NOT HTTP AT ALL\r\n\r\n", &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 Bad Request\r\n")) << reply;
  EXPECT_NE(reply.find(R"("message":"malformed HTTP request")"), std::string::npos);
  EXPECT_TRUE(closed);
}

// A request whose framing the server refuses, followed on the same connection by a request
// that would run if the server took the first one's body as the next request (smuggling).
struct Framing {
  std::string head;  // headers after the request line, each ending in CRLF
  int status;
};

void expect_refused_and_not_smuggled(const Framing& framing) {
  TestServer server;
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
  bool closed = false;
  const std::string reply =
      exchange_raw(server.server.port(),
                   "POST /x HTTP/1.1\r\nHost: a\r\n" + framing.head + "\r\n" + smuggled, &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 " + std::to_string(framing.status) + " ")) << reply;
  EXPECT_NE(reply.find("Connection: close\r\n"), std::string::npos) << reply;
  EXPECT_EQ(reply.find("/smuggled"), std::string::npos) << reply;
  EXPECT_EQ(reply.find("HTTP/1.1", 1), std::string::npos) << "a second response: " << reply;
  EXPECT_TRUE(closed);
  EXPECT_EQ(server.state.requests.load(), 0);
  EXPECT_EQ(server.state.last_protocol_status.load(), framing.status);
}

TEST(HttpTest, TransferEncodingOtherThanAFinalChunkedIsRefusedAndItsBodyNeverRuns) {
  for (std::string coding : {"xchunked", "identity", "gzip", "chunked, identity", "chunked;x=1",
                             "chunked, chunked", ",", "chunkedx"}) {
    SCOPED_TRACE(coding);
    expect_refused_and_not_smuggled({"Transfer-Encoding: " + coding + "\r\n", 400});
  }
  // Split over two fields: the list is their concatenation.
  expect_refused_and_not_smuggled(
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", 400});
}

TEST(HttpTest, TransferEncodingWithContentLengthIsRefused) {
  expect_refused_and_not_smuggled({"Transfer-Encoding: gzip\r\nContent-Length: 0\r\n", 400});
  expect_refused_and_not_smuggled({"Content-Length: 0\r\nTransfer-Encoding: gzip\r\n", 400});
  expect_refused_and_not_smuggled({"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", 400});
  expect_refused_and_not_smuggled({"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", 400});
}

TEST(HttpTest, CodingsOtherThanChunkedBeforeChunkedGet501) {
  expect_refused_and_not_smuggled({"Transfer-Encoding: gzip, chunked\r\n", 501});
}

TEST(HttpTest, TransferEncodingInHttp10IsRefused) {
  TestServer server;
  bool closed = false;
  const std::string reply = exchange_raw(
      server.server.port(),
      "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 ")) << reply;
  EXPECT_TRUE(closed);
  EXPECT_EQ(server.state.requests.load(), 0);
}

TEST(HttpTest, ObsoleteLineFoldingIsRefused) {
  expect_refused_and_not_smuggled({"X-A: one\r\n two\r\n", 400});
  expect_refused_and_not_smuggled({"X-A:\r\n\ttwo\r\n", 400});
  // A fold that would hide `chunked` from a proxy that does not unfold.
  expect_refused_and_not_smuggled({"Transfer-Encoding: x\r\n chunked\r\n", 400});
  // The last field before the blank line.
  expect_refused_and_not_smuggled({"X-B: b\r\nX-A: one\r\n two\r\n", 400});
}

TEST(HttpTest, BareCarriageReturnInTheHeaderIsRefused) {
  expect_refused_and_not_smuggled({"X-A: a\rb\r\n", 400});
  expect_refused_and_not_smuggled({"X-A: a\r\r\n", 400});
  TestServer server;
  bool closed = false;
  const std::string reply =
      exchange_raw(server.server.port(), "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 ")) << reply;
  EXPECT_TRUE(closed);
  EXPECT_EQ(server.state.requests.load(), 0);
}

TEST(HttpTest, ChunkedBodyIsReadAndTheNextRequestFollows) {
  TestServer server;
  RawConnection connection(server.server.port());
  connection.send(
      "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nX-A: a\tb\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  bool closed = false;
  const std::string reply = connection.read_to_close(&closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n")) << reply;
  EXPECT_NE(reply.find("POST /x abc"), std::string::npos) << reply;
  EXPECT_NE(reply.find("GET /next "), std::string::npos) << reply;
  EXPECT_EQ(server.state.requests.load(), 2);
}

TEST(HttpTest, SlowClientIsCutOffWithin408) {
  ServerLimits limits;
  limits.read_timeout = 100ms;
  TestServer server(limits);
  RawConnection connection(server.server.port());
  const auto started = std::chrono::steady_clock::now();
  connection.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  bool closed = false;
  const std::string reply = connection.read_to_close(&closed);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 408 Request Timeout\r\n")) << reply;
  EXPECT_EQ(server.state.requests.load(), 0);
}

TEST(HttpTest, IdleKeepAliveConnectionIsClosed) {
  ServerLimits limits;
  limits.idle_timeout = 100ms;
  TestServer server(limits);
  bool closed = false;
  const std::string reply =
      exchange_raw(server.server.port(), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(reply.find("Connection: close"), std::string::npos);
}

TEST(HttpTest, ConnectionsBeyondTheLimitGet503) {
  ServerLimits limits;
  limits.max_connections = 1;
  TestServer server(limits);
  RawConnection holder(server.server.port());
  ASSERT_TRUE(holder.connected());
  bool closed = false;
  const std::string reply =
      exchange_raw(server.server.port(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n")) << reply;
  EXPECT_NE(reply.find(R"("code":"overloaded")"), std::string::npos);
  EXPECT_TRUE(closed);
}

TEST(HttpTest, ConnectionCapLeavesHalfOfTheFreeDescriptorsForUpstreams) {
  EXPECT_EQ(connection_cap(1024, 2), (1024u - 128 - 8) / 2);
  EXPECT_EQ(connection_cap(1'048'576, 4), (1'048'576u - 128 - 16) / 2);
  EXPECT_EQ(connection_cap(100, 1), 1u);
}

TEST(HttpTest, MaxConnectionsIsCappedBelowTheOpenFileLimitWithALogLine) {
  RecordingLogger logger;
  ServerLimits limits;
  limits.max_connections = 10'000;
  limits.fd_limit = 1000;
  TestServer capped(limits, 1, {&logger, nullptr});
  EXPECT_EQ(capped.server.max_connections(), connection_cap(1000, 1));
  ASSERT_EQ(logger.lines().size(), 1u);
  EXPECT_NE(logger.lines()[0].find("max_connections 10000 capped to " +
                                   std::to_string(connection_cap(1000, 1)) +
                                   ": the open-file limit is 1000"),
            std::string::npos)
      << logger.lines()[0];

  RecordingLogger quiet;
  limits.fd_limit = 1'000'000;
  TestServer roomy(limits, 1, {&quiet, nullptr});
  EXPECT_EQ(roomy.server.max_connections(), 10'000u);
  EXPECT_TRUE(quiet.lines().empty());
}

TEST(HttpTest, RefusalsOverTheLimitAreLoggedAtMostOncePerInterval) {
  RecordingLogger logger;
  core::ManualClock clock;
  ServerLimits limits;
  limits.max_connections = 1;
  TestServer server(limits, 1, {&logger, &clock});
  RawConnection holder(server.server.port());
  ASSERT_TRUE(holder.connected());
  for (int i = 0; i < 3; ++i) {
    const std::string reply = exchange_raw(server.server.port(), "GET / HTTP/1.1\r\n\r\n");
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 503 ")) << reply;
  }
  EXPECT_EQ(server.server.refused_connections(), 3u);
  ASSERT_EQ(logger.lines().size(), 1u);
  EXPECT_NE(logger.lines()[0].find("refused 1 connection(s) with 503 at max_connections (1)"),
            std::string::npos)
      << logger.lines()[0];

  clock.advance(10s);
  exchange_raw(server.server.port(), "GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(logger.lines().size(), 2u);
  EXPECT_NE(logger.lines()[1].find("refused 3 connection(s)"), std::string::npos)
      << logger.lines()[1];
}

// A listening socket with SO_REUSEPORT on a port the OS picks: another backstop.
struct PortHolder {
  PortHolder() : acceptor(loop) {
    acceptor.open(tcp::v4());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.set_option(net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
    acceptor.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor.listen();
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  net::io_context loop;
  tcp::acceptor acceptor;
};

TEST(HttpTest, ListenFailsWhenAnotherSocketHoldsThePortEvenWithReusePort) {
  PortHolder holder;
  Server server({}, 2, [](net::io_context&, int) -> std::unique_ptr<Service> { return nullptr; });
  auto listened = server.listen("127.0.0.1", holder.port());
  ASSERT_FALSE(listened.has_value());
  EXPECT_EQ(listened.error().code, core::ErrorCode::kConnect);
  EXPECT_EQ(listened.error().message,
            "cannot listen on 127.0.0.1:" + std::to_string(holder.port()) +
                ": the port is already in use");
}

TEST(HttpTest, ThePortOfAStoppedServerCanBeListenedOnAgain) {
  std::uint16_t port = 0;
  {
    TestServer first;
    port = first.server.port();
    // The server closes first, so its side of the connection is left in TIME_WAIT.
    exchange_raw(port, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  }
  Server second({}, 2, [](net::io_context&, int) -> std::unique_ptr<Service> { return nullptr; });
  auto listened = second.listen("127.0.0.1", port);
  EXPECT_TRUE(listened.has_value()) << listened.error().message;
}

TEST(HttpTest, BeginDrainKeepsAcceptingAndClosesEachConnectionAfterItsResponse) {
  TestServer server;
  server.server.begin_drain();
  for (int i = 0; i < 2; ++i) {
    bool closed = false;
    const std::string reply =
        exchange_raw(server.server.port(), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", &closed);
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n")) << reply;
    EXPECT_NE(reply.find("Connection: close\r\n"), std::string::npos) << reply;
    EXPECT_TRUE(closed);
  }
  EXPECT_EQ(server.state.requests.load(), 2);
}

TEST(HttpTest, GracefulStopFinishesInFlightRequestAndRefusesNewConnections) {
  TestServer server;
  std::optional<core::Result<ClientResponse>> result;
  std::thread requester([&] {
    net::io_context loop;
    Client client(loop);
    result = run(loop, client.send(server.origin(), get("/wait")));
  });
  server.state.gate.wait_entered();
  EXPECT_EQ(server.server.in_flight(), 1u);
  std::thread stopper([&] { server.server.stop(10s); });

  // Once the acceptor is closed, new connections are refused.
  bool refused = false;
  for (int attempt = 0; attempt < 1000 && !refused; ++attempt) {
    RawConnection probe(server.server.port());
    if (!probe.connected()) {
      refused = true;
    } else {
      probe.read_to_close();  // accepted just before the close: closed as idle
    }
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(server.server.in_flight(), 1u);

  server.state.gate.open();
  requester.join();
  stopper.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->has_value()) << (*result).error().message;
  EXPECT_EQ((*result)->status, 200);
  EXPECT_EQ((*result)->header("connection"), "close");
  EXPECT_EQ(server.server.in_flight(), 0u);
  EXPECT_EQ(server.server.open_connections(), 0u);
}

TEST(HttpTest, StopFromAHandlerLetsThatRequestFinish) {
  TestServer server;
  net::io_context loop;
  Client client(loop);
  auto response = run(loop, client.send(server.origin(), get("/stop")));
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->status, 200);
  server.server.wait();
  EXPECT_EQ(server.server.open_connections(), 0u);
}

TEST(HttpTest, StopClosesIdleConnectionsAtOnce) {
  TestServer server;
  RawConnection idle(server.server.port());
  ASSERT_TRUE(idle.connected());
  idle.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string reply = idle.read_until("\r\n\r\nGET /x ");
  const auto started = std::chrono::steady_clock::now();
  std::thread stopper([&] { server.server.stop(10s); });
  bool closed = false;
  reply += idle.read_to_close(&closed);
  stopper.join();
  EXPECT_TRUE(closed);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(HttpTest, StreamsChunkedPiecesFlushedOneByOne) {
  TestServer server;
  net::io_context loop;
  Client client(loop);
  struct Outcome {
    int status = 0;
    std::string content_type, first, second, end;
  };
  auto read_stream = [](Client* client, Origin origin, Gate* gate) -> net::awaitable<Outcome> {
    Outcome outcome;
    auto response = co_await client->open(origin, get("/stream"));
    if (!response) co_return outcome;
    outcome.status = response->status;
    outcome.content_type = std::string(response->header("content-type"));
    auto first = co_await response->body->next();
    outcome.first = first.value_or("error");
    gate->open();  // the second piece is written only now: the first was flushed alone
    auto second = co_await response->body->next();
    outcome.second = second.value_or("error");
    auto end = co_await response->body->next();
    outcome.end = end.value_or("error");
    co_return outcome;
  };
  Outcome outcome = run(loop, read_stream(&client, server.origin(), &server.state.gate));
  EXPECT_EQ(outcome.status, 200);
  EXPECT_EQ(outcome.content_type, "text/event-stream");
  EXPECT_EQ(outcome.first, "data: one\n\n");
  EXPECT_EQ(outcome.second, "data: two\n\n");
  EXPECT_EQ(outcome.end, "");
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST(HttpTest, StreamWireFormatIsChunked) {
  TestServer server;
  server.state.gate.open();
  const std::string reply = exchange_raw(
      server.server.port(), "GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n")) << reply;
  EXPECT_NE(reply.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_NE(reply.find("x-kind: stream\r\n"), std::string::npos);
  EXPECT_TRUE(reply.ends_with("\r\n\r\nb\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"))
      << reply;
}

TEST(HttpTest, StreamDroppedEarlyIsNotPooled) {
  TestServer server;
  net::io_context loop;
  Client client(loop);
  auto read_one = [](Client* client, Origin origin) -> net::awaitable<std::string> {
    auto response = co_await client->open(origin, get("/stream"));
    if (!response) co_return "error";
    auto first = co_await response->body->next();
    co_return first.value_or("error");
  };
  EXPECT_EQ(run(loop, read_one(&client, server.origin())), "data: one\n\n");
  EXPECT_EQ(client.idle_connections(), 0u);
  server.state.gate.open();
}

TEST(HttpTest, StreamWriteReportsAGoneClient) {
  TestServer server;
  {
    RawConnection connection(server.server.port());
    connection.send("GET /flood HTTP/1.1\r\nHost: a\r\n\r\n");
    connection.read_until("\r\n\r\n");
  }  // the client hangs up mid-stream
  const int written = server.state.flood_stopped.get_future().get();
  EXPECT_LT(written, 100'000);
}

TEST(HttpTest, AnswersExpectContinueBeforeTheBody) {
  TestServer server;
  RawConnection connection(server.server.port());
  connection.send(
      "POST /c HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  EXPECT_EQ(connection.read_until("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  connection.send("body");
  EXPECT_NE(connection.read_until("POST /c body").find("HTTP/1.1 200 OK"), std::string::npos);
}

TEST(HttpTest, EachWorkerHasItsOwnServiceDestroyedOnItsThread) {
  std::vector<std::thread::id> destroyed_on;
  std::vector<int> created;
  {
    TestServer server(ServerLimits{}, 2);
    net::io_context loop;
    for (int i = 0; i < 4; ++i) {
      Client client(loop);  // a fresh connection each time, spread by SO_REUSEPORT
      auto response = run(loop, client.send(server.origin(), get("/w")));
      ASSERT_TRUE(response.has_value()) << response.error().message;
      EXPECT_EQ(response->body, "GET /w ");
    }
    server.server.stop(1s);
    std::lock_guard lock(server.state.mutex);
    destroyed_on = server.state.destroyed_on;
    created = server.state.workers_created;
  }
  std::sort(created.begin(), created.end());
  EXPECT_EQ(created, (std::vector<int>{0, 1}));
  ASSERT_EQ(destroyed_on.size(), 2u);
  EXPECT_NE(destroyed_on[0], std::this_thread::get_id());
  EXPECT_NE(destroyed_on[1], std::this_thread::get_id());
  EXPECT_NE(destroyed_on[0], destroyed_on[1]);
}

TEST(HttpTest, ListenOnAnAddressNotOfThisHostIsConnectError) {
  Server server(ServerLimits{}, 1,
                [](net::io_context&, int) -> std::unique_ptr<Service> { return nullptr; });
  auto listened = server.listen("192.0.2.1", 0);  // TEST-NET-1: never a local address
  ASSERT_FALSE(listened.has_value());
  EXPECT_EQ(listened.error().code, core::ErrorCode::kConnect);
  EXPECT_NE(listened.error().message.find("cannot listen on 192.0.2.1:0"), std::string::npos);
}

// ---------------------------------------------------------------- client failures

TEST(ClientTest, RefusedConnectionIsConnectError) {
  net::io_context loop;
  std::uint16_t port = 0;
  {
    tcp::acceptor acceptor(loop, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  Client client(loop);
  auto response = run(loop, client.send(Origin{false, "127.0.0.1", port, "", ""}, get("/")));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kConnect);
  EXPECT_NE(response.error().message.find("cannot connect to 127.0.0.1:"), std::string::npos);
}

TEST(ClientTest, ResolvesLocalhost) {
  TestServer server;
  net::io_context loop;
  Client client(loop);
  auto response =
      run(loop, client.send(Origin{false, "localhost", server.server.port(), "", ""}, get("/l")));
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->body, "GET /l ");
}

TEST(ClientTest, RejectsHeaderInjection) {
  net::io_context loop;
  Client client(loop);
  ClientRequest request = get("/");
  request.headers.push_back({"X-A", "1\r\nX-Injected: 2"});
  auto response = run(loop, client.send(Origin{false, "127.0.0.1", 1, "", ""}, request));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kInvalidArgument);
}

// Accepts connections and reads from them without ever answering.
net::awaitable<void> silent_server(tcp::acceptor* acceptor) {
  std::vector<tcp::socket> held;
  for (;;) {
    auto [ec, socket] = co_await acceptor->async_accept(kAwait);
    if (ec) co_return;
    held.push_back(std::move(socket));
  }
}

TEST(ClientTest, UpstreamThatNeverAnswersTimesOut) {
  net::io_context loop;
  tcp::acceptor acceptor(loop, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  net::co_spawn(loop, silent_server(&acceptor), net::detached);
  Client client(loop);
  ClientRequest request = get("/");
  request.timeout = 100ms;
  auto response = run(
      loop,
      client.send(Origin{false, "127.0.0.1", acceptor.local_endpoint().port(), "", ""}, request));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kTimeout);
  EXPECT_NE(response.error().message.find("did not answer within 100 ms"), std::string::npos);
}

// Reads one request head, then calls `cancel` and holds the connection until the client
// closes it, which sets `closed`.
net::awaitable<void> cancelling_server(tcp::acceptor* acceptor, core::Cancellation* cancel,
                                       bool* closed) {
  auto [ec, socket] = co_await acceptor->async_accept(kAwait);
  if (ec) co_return;
  std::string buffer;
  auto [rec, n] =
      co_await net::async_read_until(socket, net::dynamic_buffer(buffer), "\r\n\r\n", kAwait);
  if (rec) co_return;
  cancel->request();
  std::array<char, 64> sink;
  for (;;) {
    auto [read_ec, read] = co_await socket.async_read_some(net::buffer(sink), kAwait);
    if (read_ec) break;
  }
  *closed = true;
}

TEST(ClientTest, CancellationClosesTheUpstreamConnectionAtOnce) {
  net::io_context loop;
  tcp::acceptor acceptor(loop, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  core::Cancellation cancel;
  bool closed = false;
  net::co_spawn(loop, cancelling_server(&acceptor, &cancel, &closed), net::detached);
  Client client(loop);
  ClientRequest request = get("/");
  request.timeout = 10s;  // far beyond the test: only the cancellation can end the call
  request.cancel = &cancel;
  const auto started = std::chrono::steady_clock::now();
  auto response = run(
      loop,
      client.send(Origin{false, "127.0.0.1", acceptor.local_endpoint().port(), "", ""}, request));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kUpstream);
  EXPECT_NE(response.error().message.find("was cancelled"), std::string::npos)
      << response.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  loop.restart();
  loop.run();  // the server sees the close and ends
  EXPECT_TRUE(closed);
}

// ---------------------------------------------------------------- client timeouts

// How an upstream paces its one chunked answer.
struct Pace {
  int chunks = 0;                   // body pieces "c0", "c1", ...
  std::chrono::milliseconds gap{};  // before each piece
  bool end = true;                  // then the last chunk; else silence until the client leaves
};

net::awaitable<void> paced_server(tcp::acceptor* acceptor, Pace pace) {
  auto [ec, socket] = co_await acceptor->async_accept(kAwait);
  if (ec) co_return;
  std::string buffer;
  auto [rec, n] =
      co_await net::async_read_until(socket, net::dynamic_buffer(buffer), "\r\n\r\n", kAwait);
  if (rec) co_return;
  std::string_view head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto [hec, hn] = co_await net::async_write(socket, net::buffer(head), kAwait);
  if (hec) co_return;
  net::steady_timer timer(socket.get_executor());
  for (int i = 0; i < pace.chunks; ++i) {
    timer.expires_after(pace.gap);
    co_await timer.async_wait(kAwait);
    const std::string chunk = "2\r\nc" + std::to_string(i % 10) + "\r\n";
    auto [wec, wn] = co_await net::async_write(socket, net::buffer(chunk), kAwait);
    if (wec) co_return;
  }
  if (pace.end) {
    co_await net::async_write(socket, net::buffer(std::string_view("0\r\n\r\n")), kAwait);
  }
  std::array<char, 64> sink;
  for (;;) {
    auto [read_ec, read] = co_await socket.async_read_some(net::buffer(sink), kAwait);
    if (read_ec) co_return;
  }
}

struct PacedUpstream {
  PacedUpstream(net::io_context& loop, Pace pace)
      : acceptor(loop, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    net::co_spawn(loop, paced_server(&acceptor, pace), net::detached);
  }
  [[nodiscard]] Origin origin() const {
    return Origin{false, "127.0.0.1", acceptor.local_endpoint().port(), "", ""};
  }
  tcp::acceptor acceptor;
};

// The body read through open(), or the first error as "error: MESSAGE".
net::awaitable<std::string> read_stream(Client* client, Origin origin, ClientRequest request) {
  auto response = co_await client->open(origin, std::move(request));
  if (!response) co_return "error: " + response.error().message;
  std::string body;
  for (;;) {
    auto piece = co_await response->body->next();
    if (!piece) co_return body + " error: " + piece.error().message;
    if (piece->empty()) co_return body;
    body += *piece;
  }
}

TEST(ClientTimeouts, NoFirstByteWithinTheFirstByteTimeoutIsTimeout) {
  net::io_context loop;
  tcp::acceptor acceptor(loop, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  net::co_spawn(loop, silent_server(&acceptor), net::detached);
  Client client(loop);
  ClientRequest request = get("/");
  request.first_byte_timeout = 50ms;
  request.idle_timeout = 10s;
  request.timeout = 10s;
  auto response = run(
      loop,
      client.send(Origin{false, "127.0.0.1", acceptor.local_endpoint().port(), "", ""}, request));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kTimeout);
  EXPECT_NE(response.error().message.find("sent no first byte of its answer within 50 ms"),
            std::string::npos)
      << response.error().message;
}

TEST(ClientTimeouts, TheFirstByteTimeoutCoversTheFirstPieceOfAStreamedBody) {
  net::io_context loop;
  PacedUpstream upstream(loop, Pace{1, 10s, true});  // the head at once, the body much later
  Client client(loop);
  ClientRequest request = get("/");
  request.first_byte_timeout = 50ms;
  request.idle_timeout = 10s;
  request.timeout = 10s;
  EXPECT_EQ(run(loop, read_stream(&client, upstream.origin(), request)),
            " error: 127.0.0.1:" + std::to_string(upstream.origin().port) +
                " sent no first byte of its answer within 50 ms");
}

TEST(ClientTimeouts, AStreamThatGoesSilentIsCutAtTheIdleTimeout) {
  net::io_context loop;
  PacedUpstream upstream(loop, Pace{2, 1ms, false});
  Client client(loop);
  ClientRequest request = get("/");
  request.first_byte_timeout = 10s;
  request.idle_timeout = 50ms;
  request.timeout = 10s;
  const std::string got = run(loop, read_stream(&client, upstream.origin(), request));
  EXPECT_TRUE(got.starts_with("c0c1 error: ")) << got;
  EXPECT_TRUE(got.ends_with("went silent for 50 ms in mid-answer")) << got;
}

TEST(ClientTimeouts, AStreamThatKeepsFlowingOutlivesTheIdleAndFirstByteTimeouts) {
  net::io_context loop;
  // 10 pieces 20 ms apart: 200 ms in all, longer than either limit, no gap near them.
  PacedUpstream upstream(loop, Pace{10, 20ms, true});
  Client client(loop);
  ClientRequest request = get("/");
  request.first_byte_timeout = 150ms;
  request.idle_timeout = 150ms;
  request.timeout = 10s;
  EXPECT_EQ(run(loop, read_stream(&client, upstream.origin(), request)), "c0c1c2c3c4c5c6c7c8c9");
}

// Answers one request with a chunked head, then `writes` as they are, `gap` apart.
net::awaitable<void> split_chunk_server(tcp::acceptor* acceptor, std::vector<std::string> writes,
                                        std::chrono::milliseconds gap) {
  auto [ec, socket] = co_await acceptor->async_accept(kAwait);
  if (ec) co_return;
  std::string buffer;
  auto [rec, n] =
      co_await net::async_read_until(socket, net::dynamic_buffer(buffer), "\r\n\r\n", kAwait);
  if (rec) co_return;
  std::string_view head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  co_await net::async_write(socket, net::buffer(head), kAwait);
  net::steady_timer timer(socket.get_executor());
  for (const std::string& write : writes) {
    timer.expires_after(gap);
    co_await timer.async_wait(kAwait);
    auto [wec, wn] = co_await net::async_write(socket, net::buffer(write), kAwait);
    if (wec) co_return;
  }
  std::array<char, 64> sink;
  co_await socket.async_read_some(net::buffer(sink), kAwait);
}

TEST(ClientTest, AStreamedBodyWhoseChunkFramingArrivesInPiecesIsReadWhole) {
  // The client waits for each write with what it could not parse yet set aside: a chunk's
  // closing CRLF, a size line cut before its LF, a CR alone.
  net::io_context loop;
  tcp::acceptor acceptor(loop, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  net::co_spawn(loop,
                split_chunk_server(&acceptor,
                                   {"2\r", "\nc0", "\r", "\n3\r\nabc\r\n", "1", "0\r\n0123456789",
                                    "abcdef\r\n", "0\r\n\r\n"},
                                   5ms),
                net::detached);
  Client client(loop);
  ClientRequest request = get("/");
  request.timeout = 10s;
  const Origin origin{false, "127.0.0.1", acceptor.local_endpoint().port(), "", ""};
  EXPECT_EQ(run(loop, read_stream(&client, origin, request)), "c0abc0123456789abcdef");
}

TEST(ClientTimeouts, TheWholeTimeoutEndsABodyThatKeepsFlowing) {
  net::io_context loop;
  PacedUpstream upstream(loop, Pace{1000, 10ms, true});
  Client client(loop);
  ClientRequest request = get("/");
  request.first_byte_timeout = 10s;
  request.idle_timeout = 10s;
  request.timeout = 100ms;
  auto response = run(loop, client.send(upstream.origin(), request));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kTimeout);
  EXPECT_NE(response.error().message.find("did not finish its answer within 100 ms"),
            std::string::npos)
      << response.error().message;
}

// How a scripted upstream treats each connection after its first response.
enum class AfterFirst {
  kCloseAtOnce,            // closes the idle connection right after responding
  kCloseOnNextRequest,     // reads the next request, then closes without a byte
  kPartialOnNextRequest,   // reads the next request, sends half a status line, closes
  kCloseLateOnNextRequest  // reads the next request, lets the clock pass the replay window, closes
};

struct Script {
  AfterFirst after_first;
  core::ManualClock* clock = nullptr;
  int connections = 0;
};

net::awaitable<void> scripted_connection(tcp::socket socket, Script* script) {
  std::string buffer;
  auto [ec, n] =
      co_await net::async_read_until(socket, net::dynamic_buffer(buffer), "\r\n\r\n", kAwait);
  if (ec) co_return;
  buffer.erase(0, n);
  std::string_view ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  co_await net::async_write(socket, net::buffer(ok), kAwait);
  if (script->after_first == AfterFirst::kCloseAtOnce) co_return;
  auto [ec2, n2] =
      co_await net::async_read_until(socket, net::dynamic_buffer(buffer), "\r\n\r\n", kAwait);
  if (ec2) co_return;
  if (script->after_first == AfterFirst::kPartialOnNextRequest) {
    co_await net::async_write(socket, net::buffer(std::string_view("HTTP/1.1 20")), kAwait);
  }
  if (script->after_first == AfterFirst::kCloseLateOnNextRequest) {
    script->clock->advance(kReplayWindow + 1ms);
  }
}

net::awaitable<void> scripted_server(tcp::acceptor* acceptor, Script* script) {
  for (;;) {
    auto [ec, socket] = co_await acceptor->async_accept(kAwait);
    if (ec) co_return;
    ++script->connections;
    net::co_spawn(acceptor->get_executor(), scripted_connection(std::move(socket), script),
                  net::detached);
  }
}

struct ScriptedUpstream {
  explicit ScriptedUpstream(net::io_context& loop, AfterFirst after_first,
                            core::ManualClock* clock = nullptr)
      : acceptor(loop, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        script{after_first, clock} {
    net::co_spawn(loop, scripted_server(&acceptor, &script), net::detached);
  }
  [[nodiscard]] Origin origin() const {
    return Origin{false, "127.0.0.1", acceptor.local_endpoint().port(), "", ""};
  }
  tcp::acceptor acceptor;
  Script script;
};

TEST(ClientTest, IdleConnectionClosedByUpstreamIsNotReused) {
  net::io_context loop;
  ScriptedUpstream upstream(loop, AfterFirst::kCloseAtOnce);
  Client client(loop);
  auto first = run(loop, client.send(upstream.origin(), get("/1")));
  ASSERT_TRUE(first.has_value()) << first.error().message;
  auto second = run(loop, client.send(upstream.origin(), get("/2")));
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(second->body, "ok");
  EXPECT_EQ(upstream.script.connections, 2);
}

TEST(ClientTest, StalePooledConnectionIsReplayedOnAFreshOneAndTheReplayIsTold) {
  net::io_context loop;
  core::ManualClock clock;  // still: the pooled connection fails within the replay window
  ScriptedUpstream upstream(loop, AfterFirst::kCloseOnNextRequest, &clock);
  Client client(loop, ClientOptions{.clock = &clock});
  auto first = run(loop, client.send(upstream.origin(), get("/1")));
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(client.idle_connections(), 1u);
  std::vector<core::Error> replays;
  ClientRequest request = get("/2");
  request.on_replay = [&replays](const core::Error& e) { replays.push_back(e); };
  auto second = run(loop, client.send(upstream.origin(), request));
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "ok");
  EXPECT_EQ(upstream.script.connections, 2);
  ASSERT_EQ(replays.size(), 1u);
  EXPECT_EQ(replays[0].code, core::ErrorCode::kUpstream);
  EXPECT_NE(replays[0].message.find("closed the connection before answering"), std::string::npos)
      << replays[0].message;
}

TEST(ClientTest, APooledConnectionThatFailsAfterTheReplayWindowIsNotReplayed) {
  net::io_context loop;
  core::ManualClock clock;
  ScriptedUpstream upstream(loop, AfterFirst::kCloseLateOnNextRequest, &clock);
  Client client(loop, ClientOptions{.clock = &clock});
  auto first = run(loop, client.send(upstream.origin(), get("/1")));
  ASSERT_TRUE(first.has_value()) << first.error().message;
  int replays = 0;
  ClientRequest request = get("/2");
  request.on_replay = [&replays](const core::Error&) { ++replays; };
  auto second = run(loop, client.send(upstream.origin(), request));
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, core::ErrorCode::kUpstream);
  EXPECT_NE(second.error().message.find("closed the connection before answering"),
            std::string::npos)
      << second.error().message;
  EXPECT_EQ(upstream.script.connections, 1);
  EXPECT_EQ(replays, 0);
}

TEST(ClientTest, OpenReadsAContentLengthBodyAndPoolsTheConnection) {
  net::io_context loop;
  ScriptedUpstream upstream(loop, AfterFirst::kCloseOnNextRequest);
  Client client(loop);
  auto read_all = [](Client* client, Origin origin) -> net::awaitable<std::string> {
    auto response = co_await client->open(origin, get("/s"));
    if (!response) co_return "error: " + response.error().message;
    std::string body;
    for (;;) {
      auto piece = co_await response->body->next();
      if (!piece) co_return "error: " + piece.error().message;
      if (piece->empty()) co_return body;
      body += *piece;
    }
  };
  EXPECT_EQ(run(loop, read_all(&client, upstream.origin())), "ok");
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST(ClientTest, NoReplayAfterAResponseByte) {
  net::io_context loop;
  ScriptedUpstream upstream(loop, AfterFirst::kPartialOnNextRequest);
  Client client(loop);
  auto first = run(loop, client.send(upstream.origin(), get("/1")));
  ASSERT_TRUE(first.has_value()) << first.error().message;
  auto second = run(loop, client.send(upstream.origin(), get("/2")));
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, core::ErrorCode::kUpstream);
  EXPECT_NE(second.error().message.find("mid-response"), std::string::npos);
  EXPECT_EQ(upstream.script.connections, 1);
}

// ---------------------------------------------------------------- TLS

struct TestCertificate {
  std::string certificate_pem;
  std::string key_pem;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A self-signed certificate for localhost and 127.0.0.1.
TestCertificate make_certificate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x509 = X509_new();
  X509_set_version(x509, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x509), 1);
  X509_gmtime_adj(X509_getm_notBefore(x509), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x509), 24 * 3600);
  X509_set_pubkey(x509, key);
  X509_NAME* name = X509_get_subject_name(x509);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x509, name);
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, x509, x509, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
    X509_add_ext(x509, extension, -1);
    X509_EXTENSION_free(extension);
  }
  X509_sign(x509, key, EVP_sha256());

  TestCertificate out;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x509);
  out.certificate_pem = bio_text(bio);
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = bio_text(bio);
  BIO_free(bio);
  X509_free(x509);
  EVP_PKEY_free(key);
  return out;
}

net::awaitable<void> tls_connection(tcp::socket socket, ssl::context* context) {
  ssl::stream<tcp::socket> stream(std::move(socket), *context);
  auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, kAwait);
  if (hec) co_return;
  std::string buffer;
  for (;;) {
    auto [ec, n] =
        co_await net::async_read_until(stream, net::dynamic_buffer(buffer), "\r\n\r\n", kAwait);
    if (ec) co_return;
    buffer.erase(0, n);
    std::string_view ok = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";
    auto [wec, wn] = co_await net::async_write(stream, net::buffer(ok), kAwait);
    if (wec) co_return;
  }
}

net::awaitable<void> tls_server(tcp::acceptor* acceptor, ssl::context* context) {
  for (;;) {
    auto [ec, socket] = co_await acceptor->async_accept(kAwait);
    if (ec) co_return;
    net::co_spawn(acceptor->get_executor(), tls_connection(std::move(socket), context),
                  net::detached);
  }
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certificate_ = make_certificate();
    ca_file_ =
        ::testing::TempDir() + "backstop_http_test_ca_" + std::to_string(::getpid()) + ".pem";
    std::ofstream(ca_file_) << certificate_.certificate_pem;
    context_.use_certificate_chain(net::buffer(certificate_.certificate_pem));
    context_.use_private_key(net::buffer(certificate_.key_pem), ssl::context::pem);
    net::co_spawn(loop_, tls_server(&acceptor_, &context_), net::detached);
  }
  void TearDown() override { std::remove(ca_file_.c_str()); }

  Origin origin(std::string host, std::string ca_file) const {
    return Origin{true, std::move(host), acceptor_.local_endpoint().port(), "", std::move(ca_file)};
  }

  TestCertificate certificate_;
  std::string ca_file_;
  net::io_context loop_;
  ssl::context context_{ssl::context::tls_server};
  tcp::acceptor acceptor_{loop_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
};

TEST_F(TlsTest, TrustsTheGivenCaFileAndPoolsTheConnection) {
  Client client(loop_);
  auto first = run(loop_, client.send(origin("localhost", ca_file_), get("/")));
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->body, "secure");
  auto second = run(loop_, client.send(origin("localhost", ca_file_), get("/")));
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST_F(TlsTest, VerifiesAnIpAddressAgainstTheCertificate) {
  Client client(loop_);
  auto response = run(loop_, client.send(origin("127.0.0.1", ca_file_), get("/")));
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->body, "secure");
}

TEST_F(TlsTest, UntrustedCertificateIsConnectError) {
  Client client(loop_);
  auto response = run(loop_, client.send(origin("localhost", ""), get("/")));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kConnect);
  EXPECT_NE(response.error().message.find("was not trusted"), std::string::npos)
      << response.error().message;
}

TEST_F(TlsTest, MissingCaFileIsConnectError) {
  Client client(loop_);
  auto response = run(loop_, client.send(origin("localhost", "/nonexistent/ca.pem"), get("/")));
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, core::ErrorCode::kConnect);
  EXPECT_NE(response.error().message.find("cannot load the CA certificates"), std::string::npos);
}

}  // namespace
}  // namespace backstop::http
