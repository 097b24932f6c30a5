#include "http/server.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "core/json_string.h"
#include "http/wire.h"

namespace backstop::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

constexpr auto kAwait = net::as_tuple(net::use_awaitable);
// After refusing a request, read what the client still sends for at most this long before
// closing, so that it sees the error response instead of a reset.
constexpr std::chrono::milliseconds kLinger{500};
constexpr std::size_t kLingerBytes = 1024 * 1024;
// How long an accept loop pauses after a failed accept (e.g. out of descriptors).
constexpr std::chrono::milliseconds kAcceptBackoff{10};
// Refused connections and failed accepts are logged at most once per interval.
constexpr std::chrono::seconds kReportInterval{10};
// Descriptors connection_cap keeps aside: for the process, and for each worker.
constexpr std::uint64_t kReservedFds = 128;
constexpr std::uint64_t kReservedFdsPerWorker = 4;
// After cancelling everything at stop, how long workers get to unwind before their loops
// are stopped outright.
constexpr std::chrono::milliseconds kCancelGrace{1'000};
constexpr std::size_t kFirstRead = 4096;
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view error_code_for(int status) {
  switch (status) {
    case 400:
      return "invalid_http";
    case 408:
      return "request_timeout";
    case 413:
      return "request_too_large";
    case 431:
      return "headers_too_large";
    case 500:
      return "internal_error";
    case 501:
      return "not_implemented";
    case 503:
      return "overloaded";
    default:
      return "http_error";
  }
}

template <typename Number>
void append_number(std::string& out, Number value, int base = 10) {
  std::array<char, 24> digits;
  auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value, base);
  out.append(digits.data(), end);
}

// A header we can put on the wire as is: a token name and a value without line breaks.
bool is_safe_header(const Header& header) {
  if (header.name.empty()) return false;
  for (char c : header.name) {
    if (c <= ' ' || c == ':' || c == 0x7f) return false;
  }
  return std::none_of(header.value.begin(), header.value.end(),
                      [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// The server frames every response itself; these headers from a handler are dropped.
bool is_framing_header(std::string_view name) {
  return equals_ignoring_case(name, "content-length") ||
         equals_ignoring_case(name, "transfer-encoding") ||
         equals_ignoring_case(name, "connection");
}

struct Refusal {
  int status = 0;  // 0: close without an answer
  std::string message;
};

// Calls `each` with every element of a comma-separated header list, spaces trimmed, empty
// elements skipped.
template <typename Each>
void for_each_element(std::string_view list, Each each) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    std::string_view element = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) {
      element.remove_prefix(1);
    }
    while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) {
      element.remove_suffix(1);
    }
    if (!element.empty()) each(element);
  }
}

// Parses a request straight into a Request: no intermediate header container, the body
// reserved once from Content-Length.
//
// Framing is stricter than Beast's (RFC 9112 6.1, 6.3, 5.2): Beast reads a request whose
// Transfer-Encoding does not end in `chunked` ("xchunked", "identity", "chunked, identity")
// as having no body, so the body would run as the next request on the connection
// (smuggling), and it joins obs-folded header lines. Such requests are refused here and
// the connection closed.
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  explicit RequestParser(Request& out) : out_(out) { out_.headers.reserve(16); }

  [[nodiscard]] int version() const { return version_; }
  [[nodiscard]] bool expects_continue() const { return expects_continue_; }
  // Why the request was refused by the checks above; status 0 when it was not.
  [[nodiscard]] const Refusal& refusal() const { return refusal_; }

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int version, error_code&) override {
    out_.method.assign(method.data(), method.size());
    out_.target.assign(target.data(), target.size());
    version_ = version;
  }
  void on_response_impl(int, beast::string_view, int, error_code& ec) override {
    ec = bhttp::error::bad_line_ending;  // unreachable for a request parser
  }
  void on_field_impl(bhttp::field name, beast::string_view name_string, beast::string_view value,
                     error_code& ec) override {
    if (folded(name_string)) {
      return refuse(ec, 400,
                    "header " + std::string(name_string) +
                        " is folded over several lines (obsolete line folding)");
    }
    if (name == bhttp::field::transfer_encoding) {
      has_transfer_encoding_ = true;
      for_each_element(value, [this](std::string_view coding) {
        ++codings_;
        last_coding_chunked_ = equals_ignoring_case(coding, "chunked");
        if (last_coding_chunked_) ++chunked_;
      });
    } else if (name == bhttp::field::content_length) {
      has_content_length_ = true;
    } else if (name == bhttp::field::expect && equals_ignoring_case(value, "100-continue")) {
      expects_continue_ = true;
    }
    if (has_transfer_encoding_ && has_content_length_) {
      return refuse(ec, 400, "the request has both Transfer-Encoding and Content-Length");
    }
    out_.headers.push_back(
        Header{std::string(name_string.data(), name_string.size()), std::string(value)});
  }
  void on_header_impl(error_code& ec) override {
    if (!has_transfer_encoding_) return;
    if (version_ < 11) return refuse(ec, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (!last_coding_chunked_ || chunked_ != 1) {
      return refuse(ec, 400, "Transfer-Encoding must be chunked, applied once and last");
    }
    if (codings_ != 1) {
      return refuse(ec, 501, "only the chunked transfer coding is supported");
    }
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) out_.body.reserve(static_cast<std::size_t>(*length));
  }
  std::size_t on_body_impl(beast::string_view body, error_code&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  // Whether the field starting at `name` continues on the next line (obs-fold). Beast hands
  // the name as a view into the input, which holds the whole header and at least one byte
  // past the line's CRLF (Beast reads it to detect the fold); a field has no bare CR.
  static bool folded(beast::string_view name) {
    const char* p = name.data() + name.size();
    while (*p != '\r') ++p;
    return p[2] == ' ' || p[2] == '\t';
  }

  void refuse(error_code& ec, int status, std::string message) {
    refusal_ = {status, std::move(message)};
    ec = bhttp::error::bad_field;
  }

  Request& out_;
  int version_ = 11;
  bool expects_continue_ = false;
  bool has_transfer_encoding_ = false;
  bool has_content_length_ = false;
  bool last_coding_chunked_ = false;
  int codings_ = 0;  // transfer codings, over every Transfer-Encoding field
  int chunked_ = 0;  // of them, `chunked`
  Refusal refusal_;
};

// An event that is logged at most once per kReportInterval, whichever worker sees it, with
// how many times it happened since the last line.
class Report {
 public:
  // Counts one event. True when a line is due now; `since_last` is then the number of
  // events since the previous line, this one included.
  bool due(const core::Clock& clock, std::uint64_t& since_last) {
    const std::uint64_t total = events_.fetch_add(1, std::memory_order_relaxed) + 1;
    const std::int64_t now = clock.now().time_since_epoch().count();
    std::int64_t next = next_ns_.load(std::memory_order_relaxed);
    if (now < next) return false;
    const std::int64_t interval = std::chrono::nanoseconds(kReportInterval).count();
    if (!next_ns_.compare_exchange_strong(next, now + interval)) return false;
    since_last = total - reported_.exchange(total);
    return true;
  }
  [[nodiscard]] std::uint64_t events() const { return events_.load(); }

 private:
  std::atomic<std::int64_t> next_ns_{std::numeric_limits<std::int64_t>::min()};
  std::atomic<std::uint64_t> events_{0};
  std::atomic<std::uint64_t> reported_{0};
};

// Counters and the stop rendezvous, shared by every worker.
struct Shared {
  std::atomic<std::size_t> open_connections{0};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> draining{false};
  std::atomic<bool> closing{false};  // begin_drain: every response closes its connection
  core::Logger* logger = nullptr;
  const core::Clock* clock = nullptr;
  Report refused;  // connections over max_connections
  Report accept_failures;
  std::mutex mutex;
  std::condition_variable changed;
  int workers_quiet = 0;     // workers that closed their acceptor and idle connections
  int workers_finished = 0;  // workers whose loop returned

  void notify() {
    std::lock_guard lock(mutex);
    changed.notify_all();
  }
};

using SteadyClock = std::chrono::steady_clock;
constexpr SteadyClock::time_point kNever = SteadyClock::time_point::max();

// One accepted connection. Owned by its session coroutine and by the coroutine's completion
// handler; listed in its worker so that stop can reach it.
struct Connection {
  Connection(tcp::socket s, std::size_t buffer_limit, std::chrono::milliseconds granule)
      : socket(std::move(s)),
        timer(socket.get_executor()),
        granule(granule),
        buffer(buffer_limit) {}

  tcp::socket socket;
  // The read and write deadlines are kept lazily: arming one only stores the time, and the
  // timer wakes at most every `granule` to compare it with the clock. Re-arming an Asio timer
  // for every read and write would cost a timerfd_settime each (nginx and Envoy avoid it
  // the same way). On expiry the socket's operation is cancelled (instead of closing the
  // socket, as beast::tcp_stream would) so that a 408 can still go out.
  net::steady_timer timer;
  SteadyClock::time_point deadline = kNever;  // kNever: no deadline now
  SteadyClock::time_point wake = kNever;      // when the pending wait fires; kNever: none
  std::uint64_t wait_generation = 0;
  std::chrono::milliseconds granule;  // the shortest timeout: no deadline ends before it
  bool deadline_passed = false;
  bool idle = true;  // waiting for the first byte of a request
  net::cancellation_signal cancel;
  beast::flat_buffer buffer;  // reused for every request on this connection
  std::string head;           // reused for every response head
  std::list<Connection*>::iterator entry;
};

void wake_at(const std::shared_ptr<Connection>& c, SteadyClock::time_point at) {
  c->wake = at;
  c->timer.expires_at(at);
  c->timer.async_wait([c, generation = ++c->wait_generation](error_code ec) {
    // A nearer wake or the connection's end makes this wait stale, even when it fired.
    if (ec || generation != c->wait_generation) return;
    c->wake = kNever;
    if (c->deadline == kNever) return;
    const auto now = SteadyClock::now();
    if (now < c->deadline) {
      wake_at(c, std::min(c->deadline, now + c->granule));
      return;
    }
    c->deadline_passed = true;
    error_code ignored;
    c->socket.cancel(ignored);
  });
}

void arm(const std::shared_ptr<Connection>& c, std::chrono::milliseconds timeout) {
  c->deadline_passed = false;
  c->deadline = SteadyClock::now() + timeout;
  // A pending wait that fires before the deadline re-checks it then; only a nearer deadline
  // needs the timer moved.
  if (c->wake > c->deadline) wake_at(c, c->deadline);
}

void disarm(Connection& c) { c.deadline = kNever; }

// Ends the pending wait, which would otherwise keep the connection and the loop alive.
void stop_watching(Connection& c) {
  c.deadline = kNever;
  c.wake = kNever;
  ++c.wait_generation;
  c.timer.cancel();
}

}  // namespace

Response Service::protocol_error(int status, std::string_view message, std::string_view) {
  Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body.reserve(96 + message.size());
  response.body += R"({"error":{"message":)";
  core::append_json_string(response.body, message);
  response.body += R"(,"type":")";
  response.body += status >= 500 ? "server_error" : "invalid_request_error";
  response.body += R"(","code":")";
  response.body += error_code_for(status);
  response.body += R"("}})";
  return response;
}

namespace {

// What a handler asked to hear of its client leaving (Responder::watch_client).
struct ClientWatch {
  std::function<void()> on_gone;
  bool waiting = false;          // a wait for the socket's readability is pending
  std::uint64_t generation = 0;  // a wait started before the last stop is stale
};

// Waits until the client's socket is readable while the request is handled: a close (or a
// reset, or the server cancelling the socket) calls on_gone; bytes of a pipelined request end
// the watch, since a close could no longer be told from them.
void wait_for_close(const std::shared_ptr<Connection>& c, const std::shared_ptr<ClientWatch>& w) {
  w->waiting = true;
  c->socket.async_wait(tcp::socket::wait_read, [c, w, generation = w->generation](error_code ec) {
    if (generation != w->generation) return;
    w->waiting = false;
    if (!w->on_gone) return;
    if (!ec) {
      char byte;
      const ssize_t n = ::recv(c->socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) return;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        wait_for_close(c, w);
        return;
      }
    }
    std::exchange(w->on_gone, {})();
  });
}

struct Worker {
  Worker(const ServerLimits& limits, Shared& shared, int index)
      : limits(limits), shared(shared), index(index) {}

  void forget(Connection& c) {
    connections.erase(c.entry);
    shared.open_connections.fetch_sub(1, std::memory_order_relaxed);
    if (shared.draining.load(std::memory_order_relaxed)) shared.notify();
  }

  net::io_context loop{1};
  const ServerLimits& limits;
  Shared& shared;
  int index;
  std::optional<tcp::acceptor> acceptor;
  std::unique_ptr<Service> service;
  std::list<Connection*> connections;  // touched only on this worker's thread
  bool draining = false;               // this worker's copy, read on its thread
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::thread thread;
};

// The Responder of one connection, reset for each request.
class ConnectionResponder final : public Responder {
 public:
  ConnectionResponder(Worker& worker, std::shared_ptr<Connection> connection)
      : worker_(worker), c_(std::move(connection)), client_(std::make_shared<ClientWatch>()) {}
  ~ConnectionResponder() override { client_->on_gone = nullptr; }
  ConnectionResponder(const ConnectionResponder&) = delete;
  ConnectionResponder& operator=(const ConnectionResponder&) = delete;

  void watch_client(std::function<void()> on_gone) override {
    client_->on_gone = std::move(on_gone);
    if (client_->on_gone) {
      if (!client_->waiting) wait_for_close(c_, client_);
    } else if (client_->waiting) {
      // Nothing else is pending on the socket while the handler runs. Left queued, the wait
      // would keep the next request's read from being tried at once.
      ++client_->generation;
      client_->waiting = false;
      error_code ignored;
      c_->socket.cancel(ignored);
    }
  }

  void reset(bool keep_alive, int version, bool head_only) {
    keep_alive_ = keep_alive;
    version_ = version;
    head_only_ = head_only;
    state_ = State::kIdle;
  }
  [[nodiscard]] bool started() const { return state_ != State::kIdle; }
  [[nodiscard]] bool complete() const { return state_ == State::kDone; }
  [[nodiscard]] bool keep_alive() const { return keep_alive_; }

  net::awaitable<void> send(Response response) override {
    if (state_ != State::kIdle) co_return;
    state_ = State::kFailed;  // until the write succeeds
    write_head(response.status, response.content_type, response.headers, response.body.size());
    const std::string_view body = head_only_ ? std::string_view() : std::string_view(response.body);
    const Buffers buffers{net::buffer(c_->head), net::buffer(body), net::const_buffer()};
    const bool written = co_await write_all(buffers);
    if (written) state_ = State::kDone;
  }

  net::awaitable<bool> begin_stream(int status, std::string content_type,
                                    std::vector<Header> headers) override {
    if (state_ != State::kIdle) co_return false;
    state_ = State::kFailed;
    // A stream may last minutes: its connection's read buffer, empty unless the client
    // pipelined, is freed until the next request is read.
    if (c_->buffer.size() == 0) c_->buffer.shrink_to_fit();
    // HTTP/1.0 has no chunked encoding: the body runs to the connection's close instead.
    chunked_ = version_ >= 11;
    if (!chunked_) keep_alive_ = false;
    write_head(status, content_type, headers, std::nullopt);
    const Buffers buffers{net::buffer(c_->head), net::const_buffer(), net::const_buffer()};
    const bool written = co_await write_all(buffers);
    if (written) state_ = State::kStreaming;
    co_return written;
  }

  net::awaitable<bool> write(std::string_view data) override {
    if (state_ != State::kStreaming) co_return false;
    if (data.empty() || head_only_) co_return true;  // an empty chunk would end the body
    Buffers buffers{net::buffer(data), net::const_buffer(), net::const_buffer()};
    if (chunked_) {
      chunk_size_.clear();
      append_number(chunk_size_, data.size(), 16);
      chunk_size_ += "\r\n";
      buffers = {net::buffer(chunk_size_), net::buffer(data), net::buffer(kCrlf)};
    }
    const bool written = co_await write_all(buffers);
    co_return written;
  }

  net::awaitable<void> end_stream() override {
    if (state_ != State::kStreaming) co_return;
    state_ = State::kFailed;
    if (!chunked_ || head_only_) {
      state_ = State::kDone;
      co_return;
    }
    const Buffers buffers{net::buffer(kLastChunk), net::const_buffer(), net::const_buffer()};
    const bool written = co_await write_all(buffers);
    if (written) state_ = State::kDone;
  }

 private:
  enum class State { kIdle, kStreaming, kDone, kFailed };
  using Buffers = std::array<net::const_buffer, 3>;  // a response is written with one writev

  // Writes the status line and headers into the connection's reused head buffer.
  void write_head(int status, std::string_view content_type, const std::vector<Header>& headers,
                  std::optional<std::size_t> content_length) {
    if (status < 100 || status > 999) status = 500;
    if (worker_.draining || worker_.shared.closing.load(std::memory_order_relaxed)) {
      keep_alive_ = false;
    }
    std::string& head = c_->head;
    head.clear();
    head += "HTTP/1.1 ";
    append_number(head, status);
    head += ' ';
    const beast::string_view reason = bhttp::obsolete_reason(bhttp::int_to_status(status));
    head.append(reason.data(), reason.size());
    head += "\r\n";
    if (!content_type.empty()) {
      head += "Content-Type: ";
      head += content_type;
      head += "\r\n";
    }
    for (const Header& header : headers) {
      if (!is_safe_header(header) || is_framing_header(header.name)) continue;
      head += header.name;
      head += ": ";
      head += header.value;
      head += "\r\n";
    }
    if (content_length) {
      head += "Content-Length: ";
      append_number(head, *content_length);
      head += "\r\n";
    } else if (chunked_) {
      head += "Transfer-Encoding: chunked\r\n";
    }
    if (!keep_alive_) {
      head += "Connection: close\r\n";
    } else if (version_ < 11) {
      head += "Connection: keep-alive\r\n";
    }
    head += "\r\n";
  }

  net::awaitable<bool> write_all(Buffers buffers) {
    arm(c_, worker_.limits.write_timeout);
    const error_code ec = co_await wire::write(c_->socket, buffers);
    disarm(*c_);
    if (ec) {
      keep_alive_ = false;
      state_ = State::kFailed;
      co_return false;
    }
    co_return true;
  }

  Worker& worker_;
  std::shared_ptr<Connection> c_;
  std::shared_ptr<ClientWatch> client_;
  std::string chunk_size_;
  bool keep_alive_ = true;
  bool chunked_ = true;
  bool head_only_ = false;
  int version_ = 11;
  State state_ = State::kIdle;
};

// Sends the refusal for a request that could not be read, then closes the connection after
// a short linger.
net::awaitable<void> refuse(Worker* worker, std::shared_ptr<Connection> c, int status,
                            std::string message, std::string target) {
  Response response = worker->service->protocol_error(status, message, target);
  ConnectionResponder responder(*worker, c);
  responder.reset(/*keep_alive=*/false, 11, /*head_only=*/false);
  co_await responder.send(std::move(response));
  if (!responder.complete()) co_return;
  error_code ignored;
  c->socket.shutdown(tcp::socket::shutdown_send, ignored);
  arm(c, std::min(kLinger, worker->limits.read_timeout));
  std::array<char, 4096> sink;
  for (std::size_t drained = 0; drained < kLingerBytes;) {
    auto [ec, n] = co_await c->socket.async_read_some(net::buffer(sink), kAwait);
    if (ec) break;
    drained += n;
  }
  disarm(*c);
}

// What to answer when reading a request failed with `ec`.
Refusal refusal_for(const Connection& c, const RequestParser& parser, error_code ec,
                    const ServerLimits& limits) {
  if (c.deadline_passed) {
    return {408, "the request was not received within " +
                     std::to_string(limits.read_timeout.count()) + " ms"};
  }
  if (parser.refusal().status != 0) return parser.refusal();
  if (ec == bhttp::error::body_limit) {
    return {413,
            "the request body is larger than " + std::to_string(limits.max_body_bytes) + " bytes"};
  }
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
    return {431, "the request headers are larger than " + std::to_string(limits.max_header_bytes) +
                     " bytes"};
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return {};
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
    return {400, "malformed HTTP request"};
  }
  return {};  // the client is gone, or the server is stopping
}

net::awaitable<void> serve_requests(Worker* worker, std::shared_ptr<Connection> c) {
  const ServerLimits& limits = worker->limits;
  ConnectionResponder responder(*worker, c);
  Request request;
  std::optional<RequestParser> parser;
  bool first = true;
  for (;;) {
    if (c->buffer.size() == 0) {
      // Nothing pipelined: wait for the next request, as an idle connection.
      if (!first) co_await wire::let_others_run();
      if (worker->draining) co_return;
      c->idle = true;
      arm(c, first ? limits.read_timeout : limits.idle_timeout);
      const std::size_t room = std::min(kFirstRead, c->buffer.max_size());
      auto [ec, n] = co_await c->socket.async_read_some(c->buffer.prepare(room), kAwait);
      c->idle = false;
      if (ec) co_return;  // closed, idle too long, or drained: nothing to answer
      c->buffer.commit(n);
    }
    c->idle = false;
    arm(c, limits.read_timeout);  // covers the whole request, header and body

    request = Request{};
    parser.emplace(request);
    parser->body_limit(limits.max_body_bytes);
    parser->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    // The header first, so that an oversized Content-Length is refused before any body.
    error_code ec = co_await wire::read(c->socket, c->buffer, *parser, wire::header_done);
    if (!ec && !parser->is_done()) {
      if (parser->expects_continue()) {
        ec = co_await wire::write(c->socket, net::buffer(kContinue));
      }
      if (!ec) {
        ec = co_await wire::read(c->socket, c->buffer, *parser, wire::message_done);
      }
    }
    if (ec) {
      Refusal refusal = refusal_for(*c, *parser, ec, limits);
      disarm(*c);
      if (refusal.status != 0) {
        co_await refuse(worker, c, refusal.status, std::move(refusal.message),
                        std::move(request.target));
      }
      co_return;
    }
    disarm(*c);

    const bool head_only = request.method == "HEAD";
    responder.reset(parser->keep_alive(), parser->version(), head_only);
    worker->shared.in_flight.fetch_add(1, std::memory_order_relaxed);
    try {
      co_await worker->service->handle(std::move(request), responder);
    } catch (...) {
      // Nothing about the request is logged; the client gets a 500 below if it can.
    }
    worker->shared.in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (!responder.started()) {
      Response unanswered =
          worker->service->protocol_error(500, "the request was not answered", {});
      co_await responder.send(std::move(unanswered));
    }
    // A stream the handler left open cannot be finished cleanly: close it.
    if (!responder.complete() || !responder.keep_alive()) break;
    first = false;
  }
  error_code ignored;
  c->socket.shutdown(tcp::socket::shutdown_send, ignored);
}

net::awaitable<void> serve(Worker* worker, std::shared_ptr<Connection> c) {
  try {
    co_await serve_requests(worker, c);
  } catch (...) {
    // Cancelled at stop, or out of memory: drop the connection.
  }
  stop_watching(*c);
  error_code ignored;
  c->socket.close(ignored);
}

// Refuses a connection over max_connections with a 503, without blocking the loop.
void refuse_overloaded(Worker& worker, tcp::socket& socket) {
  Shared& shared = worker.shared;
  std::uint64_t since_last = 0;
  if (shared.refused.due(*shared.clock, since_last) && shared.logger != nullptr) {
    shared.logger->log(core::LogLevel::kWarn, "refused " + std::to_string(since_last) +
                                                  " connection(s) with 503 at max_connections (" +
                                                  std::to_string(worker.limits.max_connections) +
                                                  ") since the last such line (at most one every " +
                                                  std::to_string(kReportInterval.count()) + " s)");
  }
  const Response response =
      worker.service->protocol_error(503, "the server is at its connection limit", {});
  std::string wire = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: ";
  wire += response.content_type;
  wire += "\r\nContent-Length: ";
  append_number(wire, response.body.size());
  wire += "\r\nConnection: close\r\n\r\n";
  wire += response.body;
  error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(net::buffer(wire), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

net::awaitable<void> accept_connections(Worker* worker) {
  // Beyond the header limit the parser reports header_limit; the buffer never needs more.
  const std::size_t buffer_limit =
      std::max<std::size_t>(worker->limits.max_header_bytes, kFirstRead) + kFirstRead;
  const ServerLimits& limits = worker->limits;
  const auto granule =
      std::max(std::chrono::milliseconds(1),
               std::min({limits.read_timeout, limits.idle_timeout, limits.write_timeout}));
  for (;;) {
    auto [ec, socket] = co_await worker->acceptor->async_accept(kAwait);
    if (ec) {
      if (ec == net::error::operation_aborted || !worker->acceptor->is_open()) co_return;
      Shared& shared = worker->shared;
      std::uint64_t since_last = 0;
      if (shared.accept_failures.due(*shared.clock, since_last) && shared.logger != nullptr) {
        shared.logger->log(core::LogLevel::kError,
                           "accepting a connection failed " + std::to_string(since_last) +
                               " time(s) since the last such line: " + ec.message());
      }
      net::steady_timer pause(worker->loop, kAcceptBackoff);
      co_await pause.async_wait(kAwait);
      continue;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    // Writes are tried at once and only wait on the loop when the kernel is full.
    socket.non_blocking(true, ignored);
    if (worker->shared.open_connections.load(std::memory_order_relaxed) >=
        worker->limits.max_connections) {
      refuse_overloaded(*worker, socket);
      continue;
    }
    worker->shared.open_connections.fetch_add(1, std::memory_order_relaxed);
    auto c = std::make_shared<Connection>(std::move(socket), buffer_limit, granule);
    c->entry = worker->connections.insert(worker->connections.end(), c.get());
    net::co_spawn(worker->loop, serve(worker, c),
                  net::bind_cancellation_slot(
                      c->cancel.slot(), [worker, c](std::exception_ptr) { worker->forget(*c); }));
  }
}

net::awaitable<void> run_acceptor(Worker* worker) {
  try {
    co_await accept_connections(worker);
  } catch (...) {
    // Out of memory while accepting: this worker stops accepting.
  }
}

using ReusePort = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// The process's open-file soft limit; 0 when unknown or unlimited.
std::uint64_t open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 0;
  return limit.rlim_cur;
}

}  // namespace

std::size_t connection_cap(std::uint64_t fd_limit, int threads) {
  const std::uint64_t reserved =
      kReservedFds + kReservedFdsPerWorker * static_cast<std::uint64_t>(std::max(threads, 1));
  const std::uint64_t usable = fd_limit > reserved ? fd_limit - reserved : 0;
  return static_cast<std::size_t>(std::max<std::uint64_t>(usable / 2, 1));
}

struct Server::Impl {
  ServerLimits limits;
  ServiceFactory factory;
  core::SystemClock system_clock;
  Shared shared;
  std::vector<std::unique_ptr<Worker>> workers;
  std::uint16_t port = 0;
  bool started = false;
  std::atomic<bool> stopping{false};
  bool stopped = false;  // guarded by shared.mutex
  std::thread stopper;   // runs a stop requested from a worker thread

  // Drains, cancels and joins the workers (Server::stop's contract).
  void stop_now(std::chrono::milliseconds drain);
};

Server::Server(ServerLimits limits, int threads, ServiceFactory factory, ServerLog log)
    : impl_(std::make_unique<Impl>()) {
  impl_->factory = std::move(factory);
  impl_->shared.logger = log.logger;
  impl_->shared.clock = log.clock != nullptr ? log.clock : &impl_->system_clock;
  const int count = std::max(threads, 1);
  // Over the open-file limit accept() fails and clients wait in the backlog, unanswered;
  // under the cap they get a 503 instead.
  const std::uint64_t fd_limit = limits.fd_limit != 0 ? limits.fd_limit : open_file_limit();
  if (fd_limit != 0 && limits.max_connections > connection_cap(fd_limit, count)) {
    const std::size_t cap = connection_cap(fd_limit, count);
    if (log.logger != nullptr) {
      log.logger->log(core::LogLevel::kWarn,
                      "max_connections " + std::to_string(limits.max_connections) + " capped to " +
                          std::to_string(cap) + ": the open-file limit is " +
                          std::to_string(fd_limit) +
                          " (half of the rest is kept for upstream connections)");
    }
    limits.max_connections = cap;
  }
  impl_->limits = limits;
  for (int i = 0; i < count; ++i) {
    impl_->workers.push_back(std::make_unique<Worker>(impl_->limits, impl_->shared, i));
  }
}

Server::~Server() {
  if (impl_->started) stop(std::chrono::milliseconds(0));
  wait();
  if (impl_->stopper.joinable()) impl_->stopper.join();
}

core::Result<void> Server::listen(const std::string& host, std::uint16_t port) {
  const std::string where = host + ":" + std::to_string(port);
  error_code ec;
  net::ip::address address = net::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(impl_->workers.front()->loop);
    auto results = resolver.resolve(host, "", ec);
    if (ec || results.empty()) {
      return core::fail(core::ErrorCode::kConnect, "cannot resolve listen address " + where);
    }
    address = results.begin()->endpoint().address();
  }
  if (port != 0) {
    // Every socket with SO_REUSEPORT of the same user may bind the port: a second backstop
    // would start and split the traffic. A probe without it fails when anything listens
    // there. (SO_REUSEADDR: a previous run's TIME_WAIT connections do not count.)
    tcp::acceptor probe(impl_->workers.front()->loop);
    const tcp::endpoint endpoint(address, port);
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec == net::error::address_in_use) {
      return core::fail(core::ErrorCode::kConnect,
                        "cannot listen on " + where + ": the port is already in use");
    }
    if (ec) {
      return core::fail(core::ErrorCode::kConnect,
                        "cannot listen on " + where + ": " + ec.message());
    }
  }
  std::uint16_t bound = port;
  for (auto& worker : impl_->workers) {
    tcp::acceptor& acceptor = worker->acceptor.emplace(worker->loop);
    const tcp::endpoint endpoint(address, bound);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.set_option(ReusePort(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      for (auto& w : impl_->workers) w->acceptor.reset();
      return core::fail(core::ErrorCode::kConnect,
                        "cannot listen on " + where + ": " + ec.message());
    }
    // Port 0: the first acceptor gets a port from the OS and the others share it.
    if (bound == 0) bound = acceptor.local_endpoint(ec).port();
  }
  impl_->port = bound;
  return {};
}

std::uint16_t Server::port() const { return impl_->port; }

void Server::start() {
  if (impl_->started) return;
  for (auto& worker : impl_->workers) {
    worker->service = impl_->factory(worker->loop, worker->index);
  }
  impl_->started = true;
  for (auto& worker : impl_->workers) {
    Worker* w = worker.get();
    w->guard.emplace(w->loop.get_executor());
    if (w->acceptor) net::co_spawn(w->loop, run_acceptor(w), net::detached);
    w->thread = std::thread([w] {
      w->loop.run();
      w->service.reset();  // on its own thread, after every connection has ended
      std::lock_guard lock(w->shared.mutex);
      ++w->shared.workers_finished;
      w->shared.changed.notify_all();
    });
  }
}

void Server::begin_drain() { impl_->shared.closing = true; }

void Server::stop(std::chrono::milliseconds drain) {
  Impl& impl = *impl_;
  if (impl.stopping.exchange(true)) return;
  // On a worker (a handler asking for shutdown) the stop cannot join that worker: it runs
  // on a thread of its own, which the destructor joins.
  for (auto& worker : impl.workers) {
    if (worker->thread.get_id() == std::this_thread::get_id()) {
      impl.stopper = std::thread([&impl, drain] { impl.stop_now(drain); });
      return;
    }
  }
  impl.stop_now(drain);
}

void Server::Impl::stop_now(std::chrono::milliseconds drain) {
  Impl& impl = *this;
  Shared& shared = impl.shared;
  const auto drain_deadline = std::chrono::steady_clock::now() + drain;
  const int count = static_cast<int>(impl.workers.size());
  if (!impl.started) {
    std::lock_guard lock(shared.mutex);
    impl.stopped = true;
    shared.changed.notify_all();
    return;
  }

  // 1. Stop accepting and close idle keep-alive connections; busy ones close after their
  //    response, which goes out with Connection: close.
  shared.draining = true;
  for (auto& worker : impl.workers) {
    Worker* w = worker.get();
    net::post(w->loop, [w] {
      w->draining = true;
      error_code ignored;
      if (w->acceptor) w->acceptor->close(ignored);
      for (Connection* c : w->connections) {
        if (c->idle) c->socket.close(ignored);
      }
      std::lock_guard lock(w->shared.mutex);
      ++w->shared.workers_quiet;
      w->shared.changed.notify_all();
    });
  }
  {
    std::unique_lock lock(shared.mutex);
    shared.changed.wait_until(lock, drain_deadline, [&] {
      return shared.workers_quiet == count && shared.open_connections.load() == 0;
    });
  }

  // 2. Cancel whatever is left: sockets closed, handlers cancelled down to their awaited
  //    operations. Each loop then runs out of work and returns.
  for (auto& worker : impl.workers) {
    Worker* w = worker.get();
    net::post(w->loop, [w] {
      error_code ignored;
      if (w->acceptor) w->acceptor->close(ignored);
      for (Connection* c : w->connections) {
        c->socket.close(ignored);
        c->cancel.emit(net::cancellation_type::terminal);
      }
      w->guard.reset();
    });
  }
  {
    std::unique_lock lock(shared.mutex);
    shared.changed.wait_for(lock, kCancelGrace, [&] { return shared.workers_finished == count; });
  }
  // A service still holding work of its own after the grace period: stop its loop outright.
  for (auto& worker : impl.workers) worker->loop.stop();
  for (auto& worker : impl.workers) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  std::lock_guard lock(shared.mutex);
  impl.stopped = true;
  shared.changed.notify_all();
}

void Server::wait() {
  std::unique_lock lock(impl_->shared.mutex);
  impl_->shared.changed.wait(lock, [&] { return impl_->stopped || !impl_->started; });
}

std::size_t Server::open_connections() const { return impl_->shared.open_connections.load(); }

std::size_t Server::in_flight() const { return impl_->shared.in_flight.load(); }

std::size_t Server::max_connections() const { return impl_->limits.max_connections; }

std::uint64_t Server::refused_connections() const { return impl_->shared.refused.events(); }

}  // namespace backstop::http
