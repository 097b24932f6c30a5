#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

// Hook events: JSON POSTs to the operator's receivers, sent off the request path.
namespace backstop::telemetry {

// One receiver: its URL, the events it asked for, and the secret its bodies are signed with
// (empty: unsigned).
struct HookTarget {
  std::string url;
  std::vector<std::string> events;
  std::string secret;
};

// Sends one body to `url` with `headers`; true when the receiver answered 2xx. Called on the
// hooks thread only.
using HookPost =
    std::function<bool(const std::string& url, const std::string& body,
                       const std::vector<std::pair<std::string, std::string>>& headers)>;

struct HookOptions {
  std::size_t queue_events = 1024;                 // events waiting; beyond: dropped
  int tries = 3;                                   // per receiver, the first included
  std::chrono::milliseconds retry_backoff{250};    // doubled after each failed try
  std::chrono::milliseconds flush_timeout{2'000};  // the most flush() and the destructor wait
};

// The hex HMAC-SHA256 of `data` under `key`: the x-backstop-signature of a body.
[[nodiscard]] std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Queues events for a thread of its own that posts each to every receiver that asked for it,
// signed (x-backstop-signature: sha256=HEX) when the receiver has a secret, retried with
// backoff, then given up (counted as failed). A full queue drops the event (counted as
// dropped): the request that produced it never waits.
class Hooks {
 public:
  Hooks(std::vector<HookTarget> targets, HookPost post, HookOptions options = {});
  // Sends what is queued (up to flush_timeout), then stops the thread and joins it (a post in
  // flight ends within its own 5 s).
  ~Hooks();
  Hooks(const Hooks&) = delete;
  Hooks& operator=(const Hooks&) = delete;

  // Whether any receiver asked for `event` (so that its body need not be built otherwise).
  [[nodiscard]] bool wants(std::string_view event) const;
  // Queues `body` (a JSON object's text) for the receivers of `event`; false when the queue
  // was full and the event dropped. Any thread; takes a short lock, never waits on a receiver.
  bool emit(std::string_view event, std::string body);
  // Waits until every event queued before the call is sent or given up (up to flush_timeout).
  void flush();

  struct Count {
    std::string event;
    std::string result;  // sent | failed | dropped
    std::uint64_t count = 0;
  };
  // Deliveries so far, per event and result (a dropped event counts once, a sent or failed
  // one once per receiver).
  [[nodiscard]] std::vector<Count> counts() const;

  struct State;  // shared with the thread

 private:
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace backstop::telemetry
