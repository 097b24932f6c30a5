// stream_load: holds N concurrent streamed requests against one HTTP/1.1 server and prints one
// summary line, for bench/streams. Each stream is its own keep-alive-less connection: connect,
// POST the body, read the text/event-stream answer (chunked, Content-Length or to the close)
// to its end. Connections are opened at --ramp per second, so that N of them are open at once
// when each stream lasts longer than N / ramp seconds.
//
//   stream_load --port P --streams N --body FILE [--path /v1/chat/completions]
//               [--header 'name: value']... [--ramp 2000] [--end '[DONE]'] [--timeout 120]
//               [--probes 100] [--probe-rate 20] [--pid PID]...
//
// Prints "STREAMS key=value ...": ok, errors, chunks (SSE events received, over every stream),
// peak_open (streams open at once), ttfb_p50_us / ttfb_p99_us (from the request's write to the
// first body byte, over the N streams of the ramp), probe_p50_us / probe_p99_us (the same for
// --probes more streams opened at --probe-rate per second once all N are open: what a new
// request waits while N streams trickle, without the ramp's own storm), and for the --pid
// processes (their sum): rss_idle_kib (before the first
// connection), rss_peak_kib (sampled every 50 ms), cpu_ticks (utime + stime over the run).
// The first few errors are printed on stderr. Exit 1 on bad arguments.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <list>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kAwait = net::as_tuple(net::use_awaitable);
constexpr std::size_t kReadSize = 4096;
constexpr int kErrorsShown = 5;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string path = "/v1/chat/completions";
  std::vector<std::string> headers;
  std::string body;
  std::size_t streams = 0;
  double ramp = 2000;  // connections opened per second
  std::string end = "[DONE]";
  int timeout_s = 120;
  std::size_t probes = 100;
  double probe_rate = 20;  // probes opened per second
  std::vector<int> pids;
};

struct Totals {
  std::size_t ok = 0;
  std::size_t errors = 0;
  std::uint64_t chunks = 0;
  std::size_t open = 0;
  std::size_t peak_open = 0;
  std::size_t finished = 0;
  std::vector<std::int64_t> ttfb_us;
  std::vector<std::int64_t> probe_ttfb_us;
  int shown = 0;
  std::list<tcp::socket*> sockets;  // open now, closed at the deadline
};

void fail(Totals& totals, std::size_t index, const std::string& why) {
  ++totals.errors;
  if (totals.shown++ < kErrorsShown) std::fprintf(stderr, "stream %zu: %s\n", index, why.c_str());
}

// Reads one response: head, then the body with its framing removed; counts SSE events
// ("\n\n") and keeps the body's tail to find the end marker.
class Response {
 public:
  // Feeds bytes; false on a malformed response.
  bool feed(std::string_view bytes) {
    in_.append(bytes);
    if (!head_done_ && !read_head()) return !bad_;
    return read_body();
  }
  // At the connection's close: whether the message was complete.
  [[nodiscard]] bool complete_at_close() const {
    return done_ || (head_done_ && !chunked_ && length_ < 0);
  }
  [[nodiscard]] bool done() const { return done_; }
  [[nodiscard]] bool bad() const { return bad_; }
  [[nodiscard]] int status() const { return status_; }
  [[nodiscard]] bool got_body() const { return body_bytes_ > 0; }
  [[nodiscard]] std::uint64_t events() const { return events_; }
  [[nodiscard]] const std::string& tail() const { return tail_; }
  [[nodiscard]] const std::string& head() const { return head_; }

 private:
  bool read_head() {
    const std::size_t end = in_.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    head_ = in_.substr(0, end + 2);
    in_.erase(0, end + 4);
    head_done_ = true;
    if (head_.size() < 12 || !head_.starts_with("HTTP/1.")) {
      bad_ = true;
      return false;
    }
    std::from_chars(head_.data() + 9, head_.data() + 12, status_);
    std::string lower(head_);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    chunked_ = lower.find("\r\ntransfer-encoding: chunked") != std::string::npos;
    if (const std::size_t at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
      std::size_t p = at + 17;
      while (p < lower.size() && lower[p] == ' ') ++p;
      std::from_chars(lower.data() + p, lower.data() + lower.size(), length_);
    }
    return true;
  }

  void take(std::string_view data) {
    body_bytes_ += data.size();
    for (char c : data) {
      if (c == '\n' && last_ == '\n') ++events_;
      last_ = c;
    }
    tail_.append(data);
    if (tail_.size() > 256) tail_.erase(0, tail_.size() - 128);
  }

  bool read_body() {
    if (!chunked_) {
      take(in_);
      in_.clear();
      if (length_ >= 0 && body_bytes_ >= static_cast<std::uint64_t>(length_)) done_ = true;
      return true;
    }
    while (!done_) {
      if (chunk_left_ == 0) {
        const std::size_t eol = in_.find("\r\n");
        if (eol == std::string::npos) return true;
        if (after_chunk_) {  // the CRLF that ends a chunk's data
          if (eol != 0) return !(bad_ = true);
          in_.erase(0, 2);
          after_chunk_ = false;
          continue;
        }
        std::uint64_t size = 0;
        const auto [p, ec] = std::from_chars(in_.data(), in_.data() + eol, size, 16);
        if (ec != std::errc() || p == in_.data()) return !(bad_ = true);
        in_.erase(0, eol + 2);
        if (size == 0) {
          done_ = true;  // trailers are not expected here
          return true;
        }
        chunk_left_ = size;
        continue;
      }
      if (in_.empty()) return true;
      const std::size_t n = std::min<std::size_t>(chunk_left_, in_.size());
      take(std::string_view(in_).substr(0, n));
      in_.erase(0, n);
      chunk_left_ -= n;
      if (chunk_left_ == 0) after_chunk_ = true;
    }
    return true;
  }

  std::string in_;
  std::string head_;
  std::string tail_;
  bool head_done_ = false;
  bool chunked_ = false;
  bool after_chunk_ = false;
  bool done_ = false;
  bool bad_ = false;
  int status_ = 0;
  std::int64_t length_ = -1;
  std::uint64_t chunk_left_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::uint64_t events_ = 0;
  char last_ = 0;
};

net::awaitable<void> run_stream(const Options& options, const std::string& request,
                                tcp::endpoint endpoint, Totals& totals, std::size_t index,
                                std::vector<std::int64_t>& ttfb_us) {
  tcp::socket socket(co_await net::this_coro::executor);
  const auto entry = totals.sockets.insert(totals.sockets.end(), &socket);
  totals.peak_open = std::max(totals.peak_open, ++totals.open);
  Response response;
  std::string why;
  auto [cec] = co_await socket.async_connect(endpoint, kAwait);
  if (cec) {
    why = "connect: " + cec.message();
  } else {
    socket.set_option(tcp::no_delay(true));
    const auto written = Clock::now();
    auto [wec, n] = co_await net::async_write(socket, net::buffer(request), kAwait);
    if (wec) why = "write: " + wec.message();
    std::vector<char> buffer(kReadSize);
    bool timed = false;
    while (why.empty() && !response.done()) {
      auto [rec, got] = co_await socket.async_read_some(net::buffer(buffer), kAwait);
      if (rec) {
        if (rec == net::error::eof && response.complete_at_close()) break;
        why = (rec == net::error::operation_aborted || rec == net::error::bad_descriptor)
                  ? "timed out after " + std::to_string(options.timeout_s) + " s"
                  : "read: " + rec.message() + " after " + std::to_string(response.events()) +
                        " events";
        break;
      }
      if (!response.feed(std::string_view(buffer.data(), got))) why = "malformed HTTP response";
      if (!timed && response.got_body()) {
        timed = true;
        ttfb_us.push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - written).count());
      }
    }
    if (why.empty() && response.status() != 200) {
      why = "HTTP " + std::to_string(response.status()) + ": " + response.tail();
    }
    if (why.empty() && response.tail().find(options.end) == std::string::npos) {
      why = "the stream ended without " + options.end + ": ..." + response.tail();
    }
  }
  totals.chunks += response.events();
  if (why.empty()) {
    ++totals.ok;
  } else {
    fail(totals, index, why);
  }
  totals.sockets.erase(entry);
  --totals.open;
  ++totals.finished;
  boost::system::error_code ignored;
  socket.close(ignored);
}

// Sum over the processes: VmRSS in KiB, and utime + stime in clock ticks.
std::int64_t rss_kib(const std::vector<int>& pids) {
  std::int64_t total = 0;
  for (int pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("VmRSS:")) total += std::strtoll(line.c_str() + 6, nullptr, 10);
    }
  }
  return total;
}

std::int64_t cpu_ticks(const std::vector<int>& pids) {
  std::int64_t total = 0;
  for (int pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i >= 14) total += std::strtoll(field.c_str(), nullptr, 10);
    }
  }
  return total;
}

net::awaitable<void> sample_rss(const Options& options, const Totals& totals, std::int64_t& peak) {
  net::steady_timer timer(co_await net::this_coro::executor);
  while (totals.finished < options.streams + options.probes) {
    peak = std::max(peak, rss_kib(options.pids));
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(kAwait);
  }
}

// Opens `count` streams at `rate` per second, their first-byte times going to `ttfb_us`.
net::awaitable<void> open_streams(const Options& options, const std::string& request,
                                  Totals& totals, std::size_t first, std::size_t count, double rate,
                                  std::vector<std::int64_t>& ttfb_us) {
  auto executor = co_await net::this_coro::executor;
  const tcp::endpoint endpoint(net::ip::make_address(options.host), options.port);
  net::steady_timer timer(executor);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    const auto due = start + std::chrono::microseconds(
                                 static_cast<std::int64_t>(static_cast<double>(i) * 1e6 / rate));
    if (due > Clock::now()) {
      timer.expires_at(due);
      co_await timer.async_wait(kAwait);
    }
    net::co_spawn(executor, run_stream(options, request, endpoint, totals, first + i, ttfb_us),
                  net::detached);
  }
}

// The ramp of N streams, then, once all of them are open, the probes.
net::awaitable<void> ramp(const Options& options, const std::string& request, Totals& totals) {
  co_await open_streams(options, request, totals, 0, options.streams, options.ramp, totals.ttfb_us);
  net::steady_timer timer(co_await net::this_coro::executor);
  while (totals.open < options.streams && totals.finished == 0) {
    timer.expires_after(std::chrono::milliseconds(10));
    co_await timer.async_wait(kAwait);
  }
  co_await open_streams(options, request, totals, options.streams, options.probes,
                        options.probe_rate, totals.probe_ttfb_us);
}

// At the deadline every stream still open is cut (and counted as an error by its reader).
net::awaitable<void> deadline(const Options& options, Totals& totals) {
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(std::chrono::seconds(options.timeout_s));
  co_await timer.async_wait(kAwait);
  for (tcp::socket* socket : totals.sockets) {
    boost::system::error_code ignored;
    socket->cancel(ignored);
  }
}

std::int64_t percentile(std::vector<std::int64_t> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto at = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(at, values.size() - 1)];
}

bool parse(int argc, char** argv, Options& options) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--host") {
      options.host = value;
    } else if (flag == "--port") {
      options.port = static_cast<std::uint16_t>(std::atoi(value));
    } else if (flag == "--path") {
      options.path = value;
    } else if (flag == "--header") {
      options.headers.emplace_back(value);
    } else if (flag == "--body") {
      std::ifstream in(value, std::ios::binary);
      if (!in) return false;
      options.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    } else if (flag == "--streams") {
      options.streams = static_cast<std::size_t>(std::atoll(value));
    } else if (flag == "--ramp") {
      options.ramp = std::atof(value);
    } else if (flag == "--end") {
      options.end = value;
    } else if (flag == "--timeout") {
      options.timeout_s = std::atoi(value);
    } else if (flag == "--probes") {
      options.probes = static_cast<std::size_t>(std::atoll(value));
    } else if (flag == "--probe-rate") {
      options.probe_rate = std::atof(value);
    } else if (flag == "--pid") {
      options.pids.push_back(std::atoi(value));
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && options.port != 0 && options.streams > 0 && options.ramp > 0 &&
         options.probe_rate > 0;
}

// The client holds one descriptor per stream: the soft limit goes up to the hard one.
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: stream_load --port P --streams N --body FILE [--host H] [--path P] "
                 "[--header 'name: value']... [--ramp PER_S] [--end MARKER] [--timeout S] "
                 "[--probes K] [--probe-rate PER_S] [--pid PID]...\n");
    return 1;
  }
  raise_fd_limit();
  std::string request = "POST " + options.path + " HTTP/1.1\r\nHost: " + options.host +
                        "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n";
  for (const std::string& header : options.headers) request += header + "\r\n";
  request += "Content-Length: " + std::to_string(options.body.size()) + "\r\n\r\n" + options.body;

  net::io_context loop(1);
  Totals totals;
  totals.ttfb_us.reserve(options.streams);
  const std::int64_t rss_idle = rss_kib(options.pids);
  std::int64_t rss_peak = rss_idle;
  const std::int64_t ticks_before = cpu_ticks(options.pids);
  const auto start = Clock::now();
  net::co_spawn(loop, ramp(options, request, totals), net::detached);
  net::co_spawn(loop, sample_rss(options, totals, rss_peak), net::detached);
  net::co_spawn(loop, deadline(options, totals), net::detached);
  // The deadline's timer keeps the loop alive: run until every stream has finished.
  while (totals.finished < options.streams + options.probes && loop.run_one() > 0) {
  }
  const std::int64_t ticks = cpu_ticks(options.pids) - ticks_before;
  const auto duration =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  std::printf(
      "STREAMS streams=%zu ok=%zu errors=%zu chunks=%llu peak_open=%zu ttfb_p50_us=%lld "
      "ttfb_p99_us=%lld probe_p50_us=%lld probe_p99_us=%lld rss_idle_kib=%lld rss_peak_kib=%lld "
      "cpu_ticks=%lld duration_us=%lld\n",
      options.streams, totals.ok, totals.errors, static_cast<unsigned long long>(totals.chunks),
      totals.peak_open, static_cast<long long>(percentile(totals.ttfb_us, 0.50)),
      static_cast<long long>(percentile(totals.ttfb_us, 0.99)),
      static_cast<long long>(percentile(totals.probe_ttfb_us, 0.50)),
      static_cast<long long>(percentile(totals.probe_ttfb_us, 0.99)),
      static_cast<long long>(rss_idle), static_cast<long long>(rss_peak),
      static_cast<long long>(ticks), static_cast<long long>(duration));
  return 0;
}
