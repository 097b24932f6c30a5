#pragma once

// A scripted upstream that misbehaves on purpose: plain POSIX sockets, one thread per
// connection, enough HTTP/1.1 for backstop's client (keep-alive, content-length requests,
// chunked answers). Each request takes the next behaviour of the script (the default once
// the script is empty), and every request is recorded with the time it arrived.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace backstop::faults {

using Ms = std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

// A header as written on the wire.
struct Header {
  std::string name;
  std::string value;
};

// One request the server received.
struct Received {
  std::string method;
  std::string target;
  std::vector<Header> headers;  // names lower-cased
  std::string body;
  SteadyTime arrived;  // when the whole request had been read

  // The header's value; empty when absent. `name` lower-case.
  [[nodiscard]] std::string header(std::string_view name) const;
  // Whether the body asked for a stream ("stream": true).
  [[nodiscard]] bool wants_stream() const;
  // The body's "model".
  [[nodiscard]] std::string model() const;
  // The role of the last entry of the body's "messages"; empty when there is none.
  [[nodiscard]] std::string last_role() const;
};

// The content of a generated answer.
struct Answer {
  std::string text = "the fault server answers in several words";
  int input_tokens = 11;
  int output_tokens = 7;
};

// How a generated stream ends after its events (or after `stop_after_events`).
enum class StreamEnd {
  kComplete,  // the body's clean end (the last chunk)
  kCut,       // the connection closes mid-body
  kStall,     // nothing more is sent; the connection stays open
};

// One scripted reply.
struct Behaviour {
  enum class Kind {
    kAnswer,  // a model answer in the request's dialect (by path), SSE when it asked for one
    kRaw,     // status, headers and body as given
    kReset,   // the connection is reset once the request is read, before any byte
    kSilent,  // the request is read and never answered
  };
  Kind kind = Kind::kAnswer;
  Ms before_headers{0};  // wait this long before the first byte

  // kRaw
  int status = 200;
  std::vector<Header> headers;
  std::string body;

  // kAnswer
  Answer answer;
  Ms first_event_delay{0};     // streams: after the headers, before the first event
  Ms event_delay{0};           // streams: between two events
  std::vector<Ms> delays;      // streams: when given, delays[i] before event i (the rest: above)
  int stop_after_events = -1;  // streams: write only the first N events, then `end`
  StreamEnd end = StreamEnd::kComplete;
  int malformed_at = -1;   // streams: an event whose data is not JSON goes before event N
  bool omit_done = false;  // OpenAI streams: no `data: [DONE]` after the finish_reason

  // A whole, well-formed answer.
  static Behaviour ok(Answer answer = {});
  // Any status with a JSON body (error bodies, a 429 with Retry-After).
  static Behaviour reply(int status, std::string body, std::vector<Header> headers = {});
  static Behaviour reset();
  static Behaviour silent();

  Behaviour& after(Ms delay) {
    before_headers = delay;
    return *this;
  }
};

// An OpenAI error body: {"error": {"message", "type", "code"}}.
[[nodiscard]] std::string openai_error(std::string_view message, std::string_view type,
                                       std::string_view code);
// An Anthropic error body: {"type": "error", "error": {"type", "message"}}.
[[nodiscard]] std::string anthropic_error(std::string_view type, std::string_view message);

// The events of an SSE body: each `data:` payload, in order.
[[nodiscard]] std::vector<std::string> sse_data(std::string_view body);

class FaultServer {
 public:
  // Listens on 127.0.0.1, on a port the OS picks.
  FaultServer();
  ~FaultServer();
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }

  // Appends to the script: the next requests take these behaviours, in order.
  void script(std::initializer_list<Behaviour> behaviours);
  // What requests get once the script is used up (at first: Behaviour::ok()).
  void otherwise(Behaviour behaviour);
  // From now until `length` has passed, requests the script does not cover get `during`
  // instead of the default: an outage on the clock, that ends by itself. Returns its end.
  SteadyTime outage(Ms length, Behaviour during);

  // Every request so far, in arrival order.
  [[nodiscard]] std::vector<Received> received() const;
  [[nodiscard]] std::size_t count() const;
  // Waits (bounded) until `n` requests have arrived; false when they did not in `limit`.
  bool wait_for(std::size_t n, Ms limit = Ms(5'000)) const;
  // The gaps between consecutive arrivals of the requests carrying this x-request-id.
  [[nodiscard]] std::vector<Ms> spacing(std::string_view request_id) const;
  // The x-request-id of each request, in arrival order, without repeats.
  [[nodiscard]] std::vector<std::string> request_ids() const;

 private:
  void accept_loop();
  void serve(int fd);
  // Takes the behaviour for the next request and records it.
  Behaviour next(Received request);
  // Waits up to `d` (forever when negative) for the server to stop, or, when `fd` is not -1,
  // for the peer to close. False when the server is stopping or the peer has gone.
  bool pause(int fd, Ms d) const;

  int listener_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: written once, at destruction, to end every wait
  std::uint16_t port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mutex_;
  mutable std::condition_variable arrived_;
  std::deque<Behaviour> script_;
  Behaviour otherwise_;
  SteadyTime outage_end_{};
  Behaviour outage_;
  std::vector<Received> received_;
  std::vector<std::thread> connections_;
  std::vector<int> open_fds_;
  bool stopping_ = false;
};

}  // namespace backstop::faults
