#include "fault_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <optional>
#include <stdexcept>

namespace backstop::faults {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

json::value parse_body(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  return ec ? json::value() : v;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string head(int status, std::string_view content_type, const std::vector<Header>& headers,
                 std::string_view framing) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " +
                    std::string(reason_phrase(status)) +
                    "\r\ncontent-type: " + std::string(content_type) + "\r\n";
  for (const Header& h : headers) out += h.name + ": " + h.value + "\r\n";
  out += framing;
  out += "\r\n";
  return out;
}

std::string whole(int status, const std::vector<Header>& headers, std::string_view body) {
  return head(status, "application/json", headers,
              "content-length: " + std::to_string(body.size()) + "\r\n") +
         std::string(body);
}

std::string chunk(std::string_view data) {
  char size[16];
  const auto [end, ec] = std::to_chars(size, size + sizeof size, data.size(), 16);
  (void)ec;
  return std::string(size, end) + "\r\n" + std::string(data) + "\r\n";
}

// The answer's text in word-sized pieces (each keeps its trailing space), so that a stream
// has several content events.
std::vector<std::string> pieces(const std::string& text) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (from < text.size()) {
    std::size_t space = text.find(' ', from);
    std::size_t to = space == std::string::npos ? text.size() : space + 1;
    out.push_back(text.substr(from, to - from));
    from = to;
  }
  return out;
}

bool is_anthropic(const Received& r) { return r.target.find("/v1/messages") != std::string::npos; }

std::string openai_whole(const Received& r, const Answer& a) {
  json::object body{
      {"id", "chatcmpl-fault"},
      {"object", "chat.completion"},
      {"created", 1764547200},
      {"model", r.model()},
      {"choices", json::array{json::object{
                      {"index", 0},
                      {"message", json::object{{"role", "assistant"}, {"content", a.text}}},
                      {"finish_reason", "stop"}}}},
      {"usage", json::object{{"prompt_tokens", a.input_tokens},
                             {"completion_tokens", a.output_tokens},
                             {"total_tokens", a.input_tokens + a.output_tokens}}}};
  return json::serialize(body);
}

std::string anthropic_whole(const Received& r, const Answer& a) {
  json::object body{{"id", "msg_fault"},
                    {"type", "message"},
                    {"role", "assistant"},
                    {"model", r.model()},
                    {"content", json::array{json::object{{"type", "text"}, {"text", a.text}}}},
                    {"stop_reason", "end_turn"},
                    {"stop_sequence", nullptr},
                    {"usage", json::object{{"input_tokens", a.input_tokens},
                                           {"output_tokens", a.output_tokens}}}};
  return json::serialize(body);
}

std::string data_event(const json::value& v) { return "data: " + json::serialize(v) + "\n\n"; }

std::string named_event(std::string_view name, const json::value& v) {
  return "event: " + std::string(name) + "\n" + data_event(v);
}

std::vector<std::string> openai_events(const Received& r, const Answer& a, bool done) {
  const std::string model = r.model();
  auto chunk_of = [&](json::value delta, json::value finish) {
    return data_event(json::object{
        {"id", "chatcmpl-fault"},
        {"object", "chat.completion.chunk"},
        {"created", 1764547200},
        {"model", model},
        {"choices",
         json::array{json::object{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}}}});
  };
  std::vector<std::string> out;
  out.push_back(chunk_of(json::object{{"role", "assistant"}, {"content", ""}}, nullptr));
  for (const std::string& p : pieces(a.text)) {
    out.push_back(chunk_of(json::object{{"content", p}}, nullptr));
  }
  out.push_back(chunk_of(json::object{}, "stop"));
  out.push_back(data_event(
      json::object{{"id", "chatcmpl-fault"},
                   {"object", "chat.completion.chunk"},
                   {"created", 1764547200},
                   {"model", model},
                   {"choices", json::array{}},
                   {"usage", json::object{{"prompt_tokens", a.input_tokens},
                                          {"completion_tokens", a.output_tokens},
                                          {"total_tokens", a.input_tokens + a.output_tokens}}}}));
  if (done) out.push_back("data: [DONE]\n\n");
  return out;
}

std::vector<std::string> anthropic_events(const Received& r, const Answer& a) {
  std::vector<std::string> out;
  out.push_back(named_event(
      "message_start",
      json::object{{"type", "message_start"},
                   {"message", json::object{{"id", "msg_fault"},
                                            {"type", "message"},
                                            {"role", "assistant"},
                                            {"model", r.model()},
                                            {"content", json::array{}},
                                            {"stop_reason", nullptr},
                                            {"stop_sequence", nullptr},
                                            {"usage", json::object{{"input_tokens", a.input_tokens},
                                                                   {"output_tokens", 1}}}}}}));
  out.push_back(
      named_event("content_block_start",
                  json::object{{"type", "content_block_start"},
                               {"index", 0},
                               {"content_block", json::object{{"type", "text"}, {"text", ""}}}}));
  for (const std::string& p : pieces(a.text)) {
    out.push_back(
        named_event("content_block_delta",
                    json::object{{"type", "content_block_delta"},
                                 {"index", 0},
                                 {"delta", json::object{{"type", "text_delta"}, {"text", p}}}}));
  }
  out.push_back(named_event("content_block_stop",
                            json::object{{"type", "content_block_stop"}, {"index", 0}}));
  out.push_back(named_event(
      "message_delta",
      json::object{{"type", "message_delta"},
                   {"delta", json::object{{"stop_reason", "end_turn"}, {"stop_sequence", nullptr}}},
                   {"usage", json::object{{"output_tokens", a.output_tokens}}}}));
  out.push_back(named_event("message_stop", json::object{{"type", "message_stop"}}));
  return out;
}

// An event cut off in the middle of its JSON, as a buggy or overloaded server writes it.
std::string malformed_event(bool anthropic) {
  return anthropic
             ? "event: content_block_delta\n"
               "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"te\n\n"
             : "data: {\"id\":\"chatcmpl-fault\",\"choices\":[{\"index\":0,\"delta\":{\"con\n\n";
}

}  // namespace

std::string Received::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (h.name == name) return h.value;
  }
  return "";
}

bool Received::wants_stream() const {
  json::value v = parse_body(body);
  const json::value* stream = v.is_object() ? v.get_object().if_contains("stream") : nullptr;
  return stream != nullptr && stream->is_bool() && stream->get_bool();
}

std::string Received::model() const {
  json::value v = parse_body(body);
  const json::value* model = v.is_object() ? v.get_object().if_contains("model") : nullptr;
  return model != nullptr && model->is_string() ? std::string(model->get_string()) : "";
}

std::string Received::last_role() const {
  json::value v = parse_body(body);
  const json::value* messages = v.is_object() ? v.get_object().if_contains("messages") : nullptr;
  if (messages == nullptr || !messages->is_array() || messages->get_array().empty()) return "";
  const json::value& last = messages->get_array().back();
  const json::value* role = last.is_object() ? last.get_object().if_contains("role") : nullptr;
  return role != nullptr && role->is_string() ? std::string(role->get_string()) : "";
}

Behaviour Behaviour::ok(Answer answer) {
  Behaviour b;
  b.answer = std::move(answer);
  return b;
}

Behaviour Behaviour::reply(int status, std::string body, std::vector<Header> headers) {
  Behaviour b;
  b.kind = Kind::kRaw;
  b.status = status;
  b.body = std::move(body);
  b.headers = std::move(headers);
  return b;
}

Behaviour Behaviour::reset() {
  Behaviour b;
  b.kind = Kind::kReset;
  return b;
}

Behaviour Behaviour::silent() {
  Behaviour b;
  b.kind = Kind::kSilent;
  return b;
}

std::string openai_error(std::string_view message, std::string_view type, std::string_view code) {
  return json::serialize(
      json::object{{"error", json::object{{"message", message}, {"type", type}, {"code", code}}}});
}

std::string anthropic_error(std::string_view type, std::string_view message) {
  return json::serialize(json::object{
      {"type", "error"}, {"error", json::object{{"type", type}, {"message", message}}}});
}

std::vector<std::string> sse_data(std::string_view body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("data:")) out.emplace_back(trim(line.substr(5)));
    pos = end + 1;
  }
  return out;
}

FaultServer::FaultServer() {
  if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener_ < 0) throw std::runtime_error("socket failed");
  const int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_, 128) != 0) {
    throw std::runtime_error("cannot listen on 127.0.0.1:0");
  }
  socklen_t length = sizeof address;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FaultServer::~FaultServer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // Unblocks any read of a connection thread that is not in pause().
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  const char byte = 'x';
  [[maybe_unused]] const ssize_t n = ::write(wake_[1], &byte, 1);
  acceptor_.join();
  // No thread is added once the acceptor has ended.
  for (std::thread& t : connections_) t.join();
  ::close(listener_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void FaultServer::script(std::initializer_list<Behaviour> behaviours) {
  std::lock_guard lock(mutex_);
  script_.insert(script_.end(), behaviours.begin(), behaviours.end());
}

void FaultServer::otherwise(Behaviour behaviour) {
  std::lock_guard lock(mutex_);
  otherwise_ = std::move(behaviour);
}

SteadyTime FaultServer::outage(Ms length, Behaviour during) {
  std::lock_guard lock(mutex_);
  outage_end_ = Clock::now() + length;
  outage_ = std::move(during);
  return outage_end_;
}

std::vector<Received> FaultServer::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

std::size_t FaultServer::count() const {
  std::lock_guard lock(mutex_);
  return received_.size();
}

bool FaultServer::wait_for(std::size_t n, Ms limit) const {
  std::unique_lock lock(mutex_);
  return arrived_.wait_for(lock, limit, [&] { return received_.size() >= n; });
}

std::vector<Ms> FaultServer::spacing(std::string_view request_id) const {
  std::vector<Ms> out;
  std::optional<SteadyTime> previous;
  for (const Received& r : received()) {
    if (r.header("x-request-id") != request_id) continue;
    if (previous) out.push_back(std::chrono::duration_cast<Ms>(r.arrived - *previous));
    previous = r.arrived;
  }
  return out;
}

std::vector<std::string> FaultServer::request_ids() const {
  std::vector<std::string> out;
  for (const Received& r : received()) {
    std::string id = r.header("x-request-id");
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(std::move(id));
  }
  return out;
}

void FaultServer::accept_loop() {
  while (true) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mutex_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    open_fds_.push_back(fd);
    connections_.emplace_back([this, fd] { serve(fd); });
  }
}

bool FaultServer::pause(int fd, Ms d) const {
  const auto until = Clock::now() + d;
  while (true) {
    int timeout = -1;
    if (d.count() >= 0) {
      const auto left = std::chrono::duration_cast<Ms>(until - Clock::now()).count();
      if (left <= 0) return true;
      timeout = static_cast<int>(left);
    }
    pollfd fds[2] = {{wake_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    const int n = ::poll(fds, fd < 0 ? 1 : 2, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[0].revents != 0) return false;
    if (n == 0) return true;
    if (fd >= 0 && fds[1].revents != 0) {
      // Whatever the peer sends now is not a request this server will answer.
      char sink[4096];
      const ssize_t got = ::recv(fd, sink, sizeof sink, 0);
      if (got <= 0) return false;
    }
  }
}

Behaviour FaultServer::next(Received request) {
  std::lock_guard lock(mutex_);
  Behaviour b = request.arrived < outage_end_ ? outage_ : otherwise_;
  if (!script_.empty()) {
    b = std::move(script_.front());
    script_.pop_front();
  }
  received_.push_back(std::move(request));
  arrived_.notify_all();
  return b;
}

void FaultServer::serve(int fd) {
  std::string buffer;
  // Reads more bytes into `buffer`; false when the peer closed or the server is stopping.
  auto read_more = [&] {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    while (::poll(fds, 2, -1) < 0) {
      if (errno != EINTR) return false;
    }
    if (fds[1].revents != 0) return false;
    char data[16 * 1024];
    const ssize_t n = ::recv(fd, data, sizeof data, 0);
    if (n <= 0) return false;
    buffer.append(data, static_cast<std::size_t>(n));
    return true;
  };

  // Answers one request; false when the connection must end after it.
  auto answer = [&](const Behaviour& b, const Received& r) {
    if (b.before_headers.count() > 0 && !pause(-1, b.before_headers)) return false;
    switch (b.kind) {
      case Behaviour::Kind::kReset: {
        // Linger 0: close() sends RST instead of FIN.
        linger l{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        return false;
      }
      case Behaviour::Kind::kSilent:
        pause(fd, Ms(-1));
        return false;
      case Behaviour::Kind::kRaw:
        return send_all(fd, whole(b.status, b.headers, b.body));
      case Behaviour::Kind::kAnswer:
        break;
    }
    const bool anthropic = is_anthropic(r);
    if (!r.wants_stream()) {
      return send_all(fd,
                      whole(200, b.headers,
                            anthropic ? anthropic_whole(r, b.answer) : openai_whole(r, b.answer)));
    }
    std::vector<std::string> events =
        anthropic ? anthropic_events(r, b.answer) : openai_events(r, b.answer, !b.omit_done);
    if (b.malformed_at >= 0) {
      const auto at =
          std::min<std::size_t>(static_cast<std::size_t>(b.malformed_at), events.size());
      events.insert(events.begin() + static_cast<std::ptrdiff_t>(at), malformed_event(anthropic));
    }
    if (!send_all(fd,
                  head(200, "text/event-stream", b.headers, "transfer-encoding: chunked\r\n"))) {
      return false;
    }
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (b.stop_after_events >= 0 && i == static_cast<std::size_t>(b.stop_after_events)) break;
      const Ms delay = i < b.delays.size() ? b.delays[i]
                       : i == 0            ? b.first_event_delay
                                           : b.event_delay;
      if (delay.count() > 0 && !pause(-1, delay)) return false;
      if (!send_all(fd, chunk(events[i]))) return false;
    }
    switch (b.end) {
      case StreamEnd::kComplete:
        return send_all(fd, "0\r\n\r\n");
      case StreamEnd::kCut:
        return false;
      case StreamEnd::kStall:
        pause(fd, Ms(-1));
        return false;
    }
    return false;
  };

  while (true) {
    std::size_t end = 0;
    bool open = true;
    while (open && (end = buffer.find("\r\n\r\n")) == std::string::npos) open = read_more();
    if (!open) break;
    Received r;
    std::string_view text(buffer.data(), end);
    const std::size_t line_end = text.find("\r\n");
    std::string_view line = text.substr(0, line_end);
    const std::size_t s1 = line.find(' ');
    const std::size_t s2 = line.find(' ', s1 + 1);
    r.method = std::string(line.substr(0, s1));
    r.target = std::string(line.substr(s1 + 1, s2 - s1 - 1));
    std::size_t length = 0;
    for (std::size_t pos = line_end == std::string_view::npos ? text.size() : line_end + 2;
         pos < text.size();) {
      std::size_t next = text.find("\r\n", pos);
      if (next == std::string_view::npos) next = text.size();
      std::string_view h = text.substr(pos, next - pos);
      const std::size_t colon = h.find(':');
      if (colon != std::string_view::npos) {
        Header header{lower(trim(h.substr(0, colon))), std::string(trim(h.substr(colon + 1)))};
        if (header.name == "content-length") {
          (void)std::from_chars(header.value.data(), header.value.data() + header.value.size(),
                                length);
        }
        r.headers.push_back(std::move(header));
      }
      pos = next + 2;
    }
    const std::size_t body_at = end + 4;
    while (open && buffer.size() < body_at + length) open = read_more();
    if (!open) break;
    r.body = buffer.substr(body_at, length);
    buffer.erase(0, body_at + length);
    r.arrived = Clock::now();
    const Behaviour b = next(r);
    if (!answer(b, r)) break;
  }
  std::lock_guard lock(mutex_);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
  ::close(fd);
}

}  // namespace backstop::faults
