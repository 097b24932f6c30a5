#include "http/client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cerrno>
#include <charconv>
#include <optional>

#include "http/wire.h"

namespace backstop::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr auto kAwait = net::as_tuple(net::use_awaitable);
constexpr std::uint64_t kMaxResponseBody = 64ull * 1024 * 1024;
constexpr std::uint32_t kMaxResponseHeader = 64 * 1024;
constexpr std::size_t kReadBufferLimit = kMaxResponseHeader + 16 * 1024;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

// Parses a response straight into status, headers and a body string that the reader
// drains (streaming) or takes whole.
class ResponseParser final : public bhttp::basic_parser<false> {
 public:
  ResponseParser() { headers.reserve(16); }

  int status = 0;
  std::vector<Header> headers;
  std::string body;

 private:
  void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int,
                       error_code& ec) override {
    ec = bhttp::error::bad_version;  // unreachable for a response parser
  }
  void on_response_impl(int code, beast::string_view, int, error_code&) override { status = code; }
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     error_code&) override {
    headers.push_back(Header{std::string(name.data(), name.size()), std::string(value)});
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) body.reserve(static_cast<std::size_t>(std::min(*length, kMaxResponseBody)));
  }
  std::size_t on_body_impl(beast::string_view piece, error_code&) override {
    body.append(piece.data(), piece.size());
    return piece.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view piece, error_code&) override {
    body.append(piece.data(), piece.size());
    return piece.size();
  }
  void on_finish_impl(error_code&) override {}
};

constexpr Clock::time_point kNever = Clock::time_point::max();

// The deadline of one connection's current exchange, kept lazily: setting it only stores the
// time, and the timer is moved only when the new deadline is nearer than its pending wait
// (one timer operation per timeout period instead of a timerfd_settime per read and write).
// Past the deadline the socket is closed, as beast::tcp_stream would, so that the pending
// operation fails. Shared with the timer's handler, which may run after the connection
// is gone.
struct Watch {
  explicit Watch(const net::any_io_executor& executor) : timer(executor) {}

  net::steady_timer timer;
  Clock::time_point deadline = kNever;  // kNever: nothing is awaited now
  Clock::time_point wake = kNever;      // when the pending wait fires; kNever: none
  std::uint64_t generation = 0;
  tcp::socket* socket = nullptr;  // null once the connection is gone
  bool expired = false;
  bool cancelled = false;  // the caller's cancellation closed the socket
};

void wake_at(const std::shared_ptr<Watch>& w, Clock::time_point at) {
  w->wake = at;
  w->timer.expires_at(at);
  w->timer.async_wait([w, generation = ++w->generation](error_code ec) {
    // A nearer wake or stop_watching makes this wait stale, even when it fired.
    if (ec || generation != w->generation) return;
    w->wake = kNever;
    if (w->deadline == kNever) return;
    if (Clock::now() < w->deadline) {
      wake_at(w, w->deadline);
      return;
    }
    w->expired = true;
    error_code ignored;
    if (w->socket != nullptr) w->socket->close(ignored);
  });
}

void stop_watching(Watch& w) {
  w.deadline = kNever;
  w.wake = kNever;
  ++w.generation;
  w.timer.cancel();
}

// One upstream connection: plain or TLS, with its read buffer and a reused request head.
struct Connection {
  explicit Connection(const net::any_io_executor& executor)
      : watch(std::make_shared<Watch>(executor)) {}
  ~Connection() {
    watch->socket = nullptr;
    stop_watching(*watch);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  std::optional<tcp::socket> plain;
  std::optional<beast::ssl_stream<tcp::socket>> secure;
  beast::flat_buffer buffer{kReadBufferLimit};
  std::string head;
  Clock::time_point idle_since;
  std::shared_ptr<Watch> watch;
  core::Cancellation::Subscription on_cancel;

  tcp::socket& socket() { return secure ? secure->next_layer() : *plain; }

  // From now on, a request of `cancel` closes the socket, so that the pending operation fails
  // at once. Null: nothing to follow.
  void follow(core::Cancellation* cancel) {
    on_cancel.reset();
    watch->cancelled = false;
    if (cancel == nullptr) return;
    on_cancel = cancel->subscribe([w = watch] {
      w->cancelled = true;
      error_code ignored;
      if (w->socket != nullptr) w->socket->close(ignored);
    });
  }
  [[nodiscard]] bool cancelled() const { return watch->cancelled; }

  // Operations from now on fail once `deadline` has passed.
  void expect_by(Clock::time_point deadline) {
    watch->expired = false;
    watch->deadline = deadline;
    if (watch->wake > deadline) wake_at(watch, deadline);
  }
  [[nodiscard]] bool timed_out() const { return watch->expired; }
};

// Idle connections of one origin; most recently used at the back.
struct Pool {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string ca_file;
  std::vector<std::unique_ptr<Connection>> idle;

  [[nodiscard]] bool serves(const Origin& origin) const {
    return tls == origin.tls && port == origin.port && host == origin.host &&
           ca_file == origin.ca_file;
  }
};

std::string where(const Origin& origin) { return origin.host + ":" + std::to_string(origin.port); }

bool is_ip_literal(const std::string& host) {
  error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// Whether `text` holds a byte of `set`. One pass: find_first_of would scan the set per byte.
bool has_any(std::string_view text, std::string_view set) {
  return std::any_of(text.begin(), text.end(), [set](char c) {
    return std::any_of(set.begin(), set.end(), [c](char s) { return s == c; });
  });
}

bool has_line_break(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// The headers the client frames itself; a caller's copies are dropped.
bool is_framing_header(std::string_view name) {
  return equals_ignoring_case(name, "host") || equals_ignoring_case(name, "content-length") ||
         equals_ignoring_case(name, "transfer-encoding") ||
         equals_ignoring_case(name, "connection");
}

core::Result<void> check_request(const ClientRequest& request) {
  if (request.method.empty() || has_any(request.method, " \r\n")) {
    return core::fail(core::ErrorCode::kInvalidArgument, "invalid HTTP method");
  }
  if (has_any(request.target, std::string_view(" \r\n\0", 4))) {
    return core::fail(core::ErrorCode::kInvalidArgument, "invalid request target");
  }
  for (const Header& header : request.headers) {
    if (header.name.empty() || has_any(header.name, " :\t") || has_line_break(header.name) ||
        has_line_break(header.value)) {
      return core::fail(core::ErrorCode::kInvalidArgument,
                        "invalid request header \"" + header.name + "\"");
    }
  }
  return {};
}

void write_head(std::string& head, const Origin& origin, const ClientRequest& request) {
  head.clear();
  head += request.method;
  head += ' ';
  head += request.target.empty() ? std::string_view("/") : std::string_view(request.target);
  head += " HTTP/1.1\r\nHost: ";
  const bool ipv6 = origin.host.find(':') != std::string::npos;
  if (ipv6) head += '[';
  head += origin.host;
  if (ipv6) head += ']';
  if (origin.port != (origin.tls ? 443 : 80)) {
    head += ':';
    head += std::to_string(origin.port);
  }
  head += "\r\n";
  for (const Header& header : request.headers) {
    if (is_framing_header(header.name)) continue;
    head += header.name;
    head += ": ";
    head += header.value;
    head += "\r\n";
  }
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    std::array<char, 24> digits;
    auto [end, ec] =
        std::to_chars(digits.data(), digits.data() + digits.size(), request.body.size());
    head += "Content-Length: ";
    head.append(digits.data(), end);
    head += "\r\n";
  }
  head += "\r\n";
}

// A fresh parser for the next response, with the client's limits.
void reset_parser(std::optional<ResponseParser>& parser, const ClientRequest& request) {
  parser.emplace();
  parser->body_limit(kMaxResponseBody);
  parser->header_limit(kMaxResponseHeader);
  if (request.method == "HEAD") parser->skip(true);
}

// The helpers below are awaited at once by their caller, so their reference parameters
// outlive them.
net::awaitable<error_code> write_request(Connection& c, std::string_view body) {
  const std::array<net::const_buffer, 2> buffers{net::buffer(c.head), net::buffer(body)};
  if (!c.secure) co_return co_await wire::write(*c.plain, buffers);
  auto [ec, n] = co_await net::async_write(*c.secure, buffers, kAwait);
  co_return ec;
}

template <typename Done>
net::awaitable<error_code> read_until(Connection& c, ResponseParser& parser, Done done) {
  return c.secure ? wire::read(*c.secure, c.buffer, parser, done)
                  : wire::read(*c.plain, c.buffer, parser, done);
}

net::awaitable<error_code> write_and_read_header(Connection& c, std::string_view body,
                                                 ResponseParser& parser) {
  if (const error_code ec = co_await write_request(c, body)) co_return ec;
  co_await wire::let_others_run();
  co_return co_await read_until(c, parser, wire::header_done);
}

// Body bytes to hand out, or the end of the message.
constexpr auto body_piece = [](const ResponseParser& parser) {
  return !parser.body.empty() || parser.is_done();
};

// How long a pooled connection may have been idle and still be taken unchecked.
constexpr auto kTrustedIdle = std::chrono::seconds(1);

// Whether an idle pooled connection still looks usable: not closed by the peer, and (for
// plain HTTP) with no unexpected bytes waiting. TLS may legitimately have a session ticket.
bool still_open(Connection& c) {
  char byte;
  const ssize_t n = ::recv(c.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;
  if (n > 0) return c.secure.has_value();
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

bool is_parse_error(error_code ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

// Which of the request's timeouts bounds a wait, for the message when it passes.
enum class Limit { kWhole, kFirstByte, kIdle };

// When a wait must end, and why.
struct Due {
  Clock::time_point at = kNever;
  Limit limit = Limit::kWhole;
  std::chrono::milliseconds length{0};
};

// The timeouts of one exchange, fixed when it starts.
struct Limits {
  explicit Limits(const ClientRequest& request)
      : whole{Clock::now() + request.timeout, Limit::kWhole, request.timeout},
        first_byte(request.first_byte_timeout),
        idle(request.idle_timeout) {}

  // The nearer of the whole exchange's end and `length` from now (zero length: the former).
  [[nodiscard]] Due within(std::chrono::milliseconds length, Limit limit) const {
    if (length.count() <= 0) return whole;
    const Clock::time_point at = Clock::now() + length;
    return at < whole.at ? Due{at, limit, length} : whole;
  }

  Due whole;
  std::chrono::milliseconds first_byte;
  std::chrono::milliseconds idle;
};

core::Error cancelled_error(const Origin& origin) {
  return core::Error{core::ErrorCode::kUpstream,
                     "the call to " + where(origin) + " was cancelled: its caller went away"};
}

// The error for a failed exchange after the connection was made.
core::Error exchange_error(error_code ec, const Origin& origin, const Due& due,
                           bool got_response_bytes, bool cancelled) {
  if (cancelled) return cancelled_error(origin);
  // The watch closes the socket at the deadline; whatever error that gave, it is a timeout.
  if (Clock::now() >= due.at) {
    const std::string ms = std::to_string(due.length.count()) + " ms";
    switch (due.limit) {
      case Limit::kFirstByte:
        return core::Error{core::ErrorCode::kTimeout,
                           where(origin) + " sent no first byte of its answer within " + ms};
      case Limit::kIdle:
        return core::Error{core::ErrorCode::kTimeout,
                           where(origin) + " went silent for " + ms + " in mid-answer"};
      case Limit::kWhole:
        break;
    }
    return core::Error{core::ErrorCode::kTimeout,
                       where(origin) +
                           (got_response_bytes ? " did not finish its answer within "
                                               : " did not answer within ") +
                           ms};
  }
  if (ec == bhttp::error::body_limit) {
    return core::Error{core::ErrorCode::kBadResponse,
                       where(origin) + " sent a response body larger than 64 MiB"};
  }
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
    return core::Error{core::ErrorCode::kBadResponse,
                       where(origin) + " sent response headers larger than 64 KiB"};
  }
  if (is_parse_error(ec)) {
    return core::Error{core::ErrorCode::kBadResponse,
                       where(origin) + " sent an invalid HTTP response: " + ec.message()};
  }
  return core::Error{core::ErrorCode::kUpstream,
                     where(origin) +
                         (got_response_bytes ? " closed the connection mid-response: "
                                             : " closed the connection before answering: ") +
                         ec.message()};
}

// The client's state and logic; Client::Impl is this, under a name the streams can reach.
struct Pools {
  Pools(net::io_context& loop, ClientOptions options) : loop(loop), options(options) {}

  // The TLS context for a CA bundle (empty: the system store), created on first use.
  core::Result<ssl::context*> tls_context(const std::string& ca_file);
  // A pooled connection to the origin that still looks open, or null.
  std::unique_ptr<Connection> take_idle(const Origin& origin);
  // Puts a connection whose last response ended cleanly back in its origin's pool.
  void give_back(const Origin& origin, std::unique_ptr<Connection> connection);
  // Resolves, connects and (for https) handshakes before `deadline`, or until `cancel`.
  net::awaitable<core::Result<std::unique_ptr<Connection>>> connect(
      Origin origin, Clock::time_point deadline, std::chrono::milliseconds timeout,
      core::Cancellation* cancel);
  // Writes the request and reads the response header into `parser`, replaying once on a
  // fresh connection when a pooled one turns out to be stale. `first` is set to when the
  // first byte of the body is due.
  net::awaitable<core::Result<std::unique_ptr<Connection>>> start(
      const Origin& origin, const ClientRequest& request, std::optional<ResponseParser>& parser,
      const Limits& limits, Due& first);
  // The time the replay window is measured in.
  [[nodiscard]] Clock::time_point replay_now() const {
    return options.clock != nullptr ? options.clock->now() : Clock::now();
  }

  net::io_context& loop;
  ClientOptions options;
  std::vector<Pool> pools;
  std::vector<std::pair<std::string, std::unique_ptr<ssl::context>>> tls_contexts;
};

core::Result<ssl::context*> Pools::tls_context(const std::string& ca_file) {
  for (auto& [file, context] : tls_contexts) {
    if (file == ca_file) return context.get();
  }
  try {
    auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
    context->set_verify_mode(ssl::verify_peer);
    error_code ec;
    if (ca_file.empty()) {
      context->set_default_verify_paths(ec);
    } else {
      context->load_verify_file(ca_file, ec);
    }
    if (ec) {
      return core::fail(core::ErrorCode::kConnect,
                        "cannot load the CA certificates " +
                            (ca_file.empty() ? std::string("of the system store") : ca_file) +
                            ": " + ec.message());
    }
    tls_contexts.emplace_back(ca_file, std::move(context));
    return tls_contexts.back().second.get();
  } catch (const std::exception& e) {
    return core::fail(core::ErrorCode::kConnect, std::string("cannot set up TLS: ") + e.what());
  }
}

std::unique_ptr<Connection> Pools::take_idle(const Origin& origin) {
  for (Pool& pool : pools) {
    if (!pool.serves(origin)) continue;
    const auto now = Clock::now();
    while (!pool.idle.empty()) {
      std::unique_ptr<Connection> c = std::move(pool.idle.back());
      pool.idle.pop_back();
      if (now - c->idle_since >= options.pool_idle_timeout) {
        pool.idle.clear();  // the rest are older still
        break;
      }
      // A connection used within the last second is taken without asking the kernel (one
      // syscall per request): upstreams close idle connections after seconds, and one
      // closed meanwhile is replayed on a fresh connection (start()).
      if (now - c->idle_since < kTrustedIdle || still_open(*c)) return c;
    }
    return nullptr;
  }
  return nullptr;
}

void Pools::give_back(const Origin& origin, std::unique_ptr<Connection> connection) {
  // Bytes beyond the response mean the framing went wrong: never reuse that.
  if (connection->buffer.size() != 0 || options.max_idle_per_origin == 0) return;
  // An idle connection awaits nothing; a pending wait would keep the loop from ending.
  stop_watching(*connection->watch);
  connection->follow(nullptr);
  Pool* pool = nullptr;
  for (Pool& candidate : pools) {
    if (candidate.serves(origin)) pool = &candidate;
  }
  if (pool == nullptr) {
    pool = &pools.emplace_back(Pool{origin.tls, origin.host, origin.port, origin.ca_file, {}});
  }
  const auto now = Clock::now();
  auto first_fresh = std::find_if(pool->idle.begin(), pool->idle.end(), [&](const auto& c) {
    return now - c->idle_since < options.pool_idle_timeout;
  });
  pool->idle.erase(pool->idle.begin(), first_fresh);
  if (pool->idle.size() >= options.max_idle_per_origin) pool->idle.erase(pool->idle.begin());
  connection->idle_since = now;
  pool->idle.push_back(std::move(connection));
}

net::awaitable<core::Result<std::unique_ptr<Connection>>> Pools::connect(
    Origin origin, Clock::time_point deadline, std::chrono::milliseconds timeout,
    core::Cancellation* cancel) {
  auto c = std::make_unique<Connection>(loop.get_executor());
  ssl::context* context = nullptr;
  if (origin.tls) {
    auto found = tls_context(origin.ca_file);
    if (!found) co_return std::unexpected(found.error());
    context = *found;
    c->secure.emplace(loop.get_executor(), *context);
  } else {
    c->plain.emplace(loop.get_executor());
  }
  tcp::socket& socket = c->socket();
  c->watch->socket = &socket;
  c->follow(cancel);
  const auto timed_out = [&] {
    return core::fail(core::ErrorCode::kTimeout, "connecting to " + where(origin) +
                                                     " timed out after " +
                                                     std::to_string(timeout.count()) + " ms");
  };

  error_code ec;
  const net::ip::address address = net::ip::make_address(origin.host, ec);
  c->expect_by(deadline);
  if (!ec) {
    auto [cec] = co_await socket.async_connect(tcp::endpoint(address, origin.port), kAwait);
    ec = cec;
  } else {
    // getaddrinfo cannot be interrupted, so the deadline is checked when it returns.
    tcp::resolver resolver(loop);
    auto [rec, endpoints] =
        co_await resolver.async_resolve(origin.host, std::to_string(origin.port), kAwait);
    if (rec) {
      co_return core::fail(core::ErrorCode::kConnect,
                           "cannot resolve " + origin.host + ": " + rec.message());
    }
    if (c->cancelled()) co_return std::unexpected(cancelled_error(origin));
    if (Clock::now() >= deadline) co_return timed_out();
    auto [cec, endpoint] = co_await net::async_connect(socket, endpoints, kAwait);
    ec = cec;
  }
  if (c->cancelled()) co_return std::unexpected(cancelled_error(origin));
  if (c->timed_out()) co_return timed_out();
  if (ec) {
    co_return core::fail(core::ErrorCode::kConnect,
                         "cannot connect to " + where(origin) + ": " + ec.message());
  }
  socket.set_option(tcp::no_delay(true), ec);
  // Plain writes are tried at once and only wait on the loop when the kernel is full.
  if (!c->secure) socket.non_blocking(true, ec);

  if (c->secure) {
    SSL* ssl_handle = c->secure->native_handle();
    // SNI carries host names only, never IP literals (RFC 6066).
    if (!is_ip_literal(origin.host)) SSL_set_tlsext_host_name(ssl_handle, origin.host.c_str());
    c->secure->set_verify_callback(ssl::host_name_verification(origin.host));
    auto [hec] = co_await c->secure->async_handshake(ssl::stream_base::client, kAwait);
    if (c->cancelled()) co_return std::unexpected(cancelled_error(origin));
    if (c->timed_out()) co_return timed_out();
    if (hec) {
      const long verify = SSL_get_verify_result(ssl_handle);
      const bool untrusted =
          verify != X509_V_OK || (hec.category() == net::error::get_ssl_category() &&
                                  ERR_GET_REASON(hec.value()) == SSL_R_CERTIFICATE_VERIFY_FAILED);
      if (untrusted) {
        co_return core::fail(core::ErrorCode::kConnect,
                             "the TLS certificate of " + where(origin) + " was not trusted (" +
                                 (verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                                      : "it does not match the host name") +
                                 ")");
      }
      co_return core::fail(core::ErrorCode::kConnect,
                           "TLS handshake with " + where(origin) + " failed: " + hec.message());
    }
  }
  co_return c;
}

net::awaitable<core::Result<std::unique_ptr<Connection>>> Pools::start(
    const Origin& origin, const ClientRequest& request, std::optional<ResponseParser>& parser,
    const Limits& limits, Due& first) {
  // Replay at most once, and only on a fresh connection.
  for (int attempt = 0;; ++attempt) {
    if (request.cancel != nullptr && request.cancel->requested()) {
      co_return std::unexpected(cancelled_error(origin));
    }
    std::unique_ptr<Connection> c = attempt == 0 ? take_idle(origin) : nullptr;
    const bool reused = c != nullptr;
    if (reused) {
      c->follow(request.cancel);
    } else {
      const Due connect_due = limits.within(request.connect_timeout, Limit::kWhole);
      auto connected = co_await connect(origin, connect_due.at, connect_due.length, request.cancel);
      if (!connected) co_return std::unexpected(std::move(connected.error()));
      c = std::move(*connected);
    }
    write_head(c->head, origin, request);
    reset_parser(parser, request);
    first = limits.within(limits.first_byte, Limit::kFirstByte);
    c->expect_by(first.at);
    const Clock::time_point written = replay_now();
    error_code ec = co_await write_and_read_header(*c, request.body, *parser);
    // Interim responses (100 Continue, 103 Early Hints) precede the real one.
    while (!ec && parser->status >= 100 && parser->status < 200 && parser->status != 101) {
      reset_parser(parser, request);
      ec = co_await read_until(*c, *parser, wire::header_done);
    }
    if (!ec) co_return c;
    core::Error error = exchange_error(ec, origin, first, parser->got_some(), c->cancelled());
    // A pooled connection the upstream closed while it sat idle fails at once: nothing of the
    // response arrived, so the request was not processed and can go out again. One that
    // failed later may have been processed (and billed), and is not replayed.
    if (reused && !parser->got_some() && !c->timed_out() && !c->cancelled() &&
        replay_now() - written <= kReplayWindow && Clock::now() < first.at) {
      if (request.on_replay) request.on_replay(error);
      continue;
    }
    co_return std::unexpected(std::move(error));
  }
}

// The most bytes await_bytes() sets aside when the parser cannot use them yet: a chunk's
// closing CRLF, or a chunk-size line cut by the sender's write.
constexpr std::size_t kHeldBytes = 64;

// Waits, without a read buffer, until a plain connection has bytes (or is closed) for a parser
// that needs them: a stream that trickles spends most of its life here, and each of thousands
// of such streams would otherwise hold a read buffer and try one read in vain per piece. What
// the buffer held that the parser could not take yet (a chunk's closing CRLF) is set aside
// meanwhile. TLS may hold decrypted bytes the socket does not show: read at once there.
net::awaitable<error_code> await_bytes(Connection& c, ResponseParser& parser) {
  if (c.secure) co_return error_code{};
  if (c.buffer.size() != 0) {
    error_code ec;
    c.buffer.consume(parser.put(c.buffer.data(), ec));
    // Progress, or an error: the caller's read goes on from there.
    if (ec != bhttp::error::need_more || !parser.body.empty()) co_return error_code{};
    if (c.buffer.size() > kHeldBytes) co_return error_code{};
  }
  std::array<char, kHeldBytes> held;
  const std::size_t kept = net::buffer_copy(net::buffer(held), c.buffer.data());
  c.buffer.clear();
  c.buffer.shrink_to_fit();  // freed until the bytes are there
  auto [ec] = co_await c.plain->async_wait(tcp::socket::wait_read, kAwait);
  c.buffer.commit(net::buffer_copy(c.buffer.prepare(kept), net::buffer(held.data(), kept)));
  co_return ec;
}

// A streamed body on a connection of the client's pool: its first piece is due by the
// request's first-byte deadline, each later one within the idle timeout, all of it within the
// whole exchange's timeout.
class PooledBodyStream final : public BodyStream {
 public:
  PooledBodyStream(Pools& client, const Origin& origin, const ClientRequest& request)
      : limits_(request), client_(client), origin_(origin) {}

  net::awaitable<core::Result<std::string>> next() override {
    if (connection_ == nullptr) {
      if (ended_) co_return std::string();
      co_return core::fail(core::ErrorCode::kUpstream, "the response stream already failed");
    }
    for (;;) {
      if (!parser_->body.empty()) {
        begun_ = true;
        co_return std::exchange(parser_->body, std::string());
      }
      if (parser_->is_done()) {
        ended_ = true;
        if (parser_->keep_alive()) client_.give_back(origin_, std::move(connection_));
        connection_.reset();
        co_return std::string();
      }
      const Due due = begun_ ? limits_.within(limits_.idle, Limit::kIdle) : first_;
      connection_->expect_by(due.at);
      error_code ec = co_await await_bytes(*connection_, *parser_);
      if (!ec) ec = co_await read_until(*connection_, *parser_, body_piece);
      if (ec) {
        const bool cancelled = connection_->cancelled();
        connection_.reset();  // half-read: never pooled
        co_return std::unexpected(exchange_error(ec, origin_, due, true, cancelled));
      }
    }
  }

  std::optional<ResponseParser> parser_;
  std::unique_ptr<Connection> connection_;
  Limits limits_;
  Due first_;

 private:
  Pools& client_;
  Origin origin_;
  bool begun_ = false;
  bool ended_ = false;
};

}  // namespace

struct Client::Impl : Pools {
  using Pools::Pools;
};

Client::Client(net::io_context& loop, ClientOptions options)
    : impl_(std::make_unique<Impl>(loop, options)) {}

Client::~Client() = default;

net::awaitable<core::Result<ClientResponse>> Client::send(const Origin& origin,
                                                          ClientRequest request) {
  if (auto valid = check_request(request); !valid) co_return std::unexpected(valid.error());
  const Limits limits(request);
  Due first;
  std::optional<ResponseParser> parser;
  auto started = co_await impl_->start(origin, request, parser, limits, first);
  if (!started) co_return std::unexpected(std::move(started.error()));
  std::unique_ptr<Connection> c = std::move(*started);
  // The first piece of the body is due with the head; each later one within the idle timeout.
  bool begun = !parser->body.empty();
  while (!parser->is_done()) {
    const std::size_t seen = parser->body.size();
    const Due due = begun ? limits.within(limits.idle, Limit::kIdle) : first;
    c->expect_by(due.at);
    const error_code ec = co_await read_until(*c, *parser, [seen](const ResponseParser& p) {
      return p.is_done() || p.body.size() > seen;
    });
    if (ec) co_return std::unexpected(exchange_error(ec, origin, due, true, c->cancelled()));
    begun = true;
  }
  if (parser->keep_alive()) impl_->give_back(origin, std::move(c));
  ClientResponse response;
  response.status = parser->status;
  response.headers = std::move(parser->headers);
  response.body = std::move(parser->body);
  co_return response;
}

net::awaitable<core::Result<StreamedResponse>> Client::open(const Origin& origin,
                                                            ClientRequest request) {
  if (auto valid = check_request(request); !valid) co_return std::unexpected(valid.error());
  auto stream = std::make_unique<PooledBodyStream>(*impl_, origin, request);
  auto started =
      co_await impl_->start(origin, request, stream->parser_, stream->limits_, stream->first_);
  if (!started) co_return std::unexpected(std::move(started.error()));
  stream->connection_ = std::move(*started);
  StreamedResponse response;
  response.status = stream->parser_->status;
  response.headers = std::move(stream->parser_->headers);
  response.body = std::move(stream);
  co_return response;
}

std::size_t Client::idle_connections() const {
  std::size_t count = 0;
  for (const Pool& pool : impl_->pools) count += pool.idle.size();
  return count;
}

}  // namespace backstop::http
