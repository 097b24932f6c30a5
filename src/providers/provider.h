#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat.h"
#include "core/cancellation.h"
#include "core/clock.h"
#include "core/error.h"

namespace boost::asio {
class io_context;
}
namespace backstop::providers {

// A worker's pooled upstream connections (providers/connections.h); opaque to callers.
class Connections;

// What a call may use of the worker it runs on.
struct CallContext {
  boost::asio::io_context& loop;  // the worker's event loop (timers)
  Connections& connections;       // the worker's pooled upstream connections
  const core::Clock& clock;
  std::string_view request_id;  // forwarded as x-request-id
  // What the caller allows this call (the request's deadline less the time already spent):
  // the wait for the answer to begin (connect, head, first byte) is cut to it. An answer
  // already flowing is bounded by the provider's idle and whole-call timeouts alone.
  std::chrono::milliseconds budget = std::chrono::milliseconds::max();
  // Whether the provider's first-token timeout applies (false on a route's last target,
  // which has nobody to hand over to).
  bool first_token_limit = true;
  // When requested (the client went away), the call ends at once. Null: none.
  core::Cancellation* cancel = nullptr;
  // Out: each failure of a pooled connection after which the call went out again on a fresh
  // one (a replay), appended as it happens.
  std::vector<core::Error> replays{};
};

// The events of one streamed answer, read batch by batch.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // The next events (one or more); an empty vector at the clean end of the stream, which
  // comes only after the dialect's own end of the answer. Errors: kTimeout (one of the
  // provider's timeouts passed), kBrokenStream (the body stopped or broke before that end),
  // kUpstream (the stream carried an error event).
  virtual boost::asio::awaitable<core::Result<std::vector<chat::StreamEvent>>> next() = 0;
  // Events that did not decode and were skipped so far.
  [[nodiscard]] virtual std::int64_t skipped_events() const { return 0; }
};

// An upstream's answer passed to the client as it came (token counting).
struct RelayedAnswer {
  int status = 0;
  std::string content_type;
  std::string body;  // the key, if it appears, redacted
};

// One upstream model. Immutable after construction, but for its inference-stack label, and
// shared by all workers.
//
// Errors of complete(): kRateLimited (429; retry_after_ms when sent), kUpstream (any other
// non-2xx; upstream_status set), kTimeout, kConnect, kBadResponse (a 2xx body that does not
// decode). Messages never contain the key or prompt text.
class Provider {
 public:
  virtual ~Provider() = default;
  [[nodiscard]] virtual const std::string& name() const = 0;   // the config's provider name
  [[nodiscard]] virtual const std::string& model() const = 0;  // the upstream model name
  // Sends the request (translated to this provider's dialect, `model` replaced by
  // model()) and decodes the answer.
  virtual boost::asio::awaitable<core::Result<chat::ChatResponse>> complete(
      const chat::ChatRequest& request, CallContext& context) = 0;
  // Starts a streamed answer (the request is sent with stream: true). Failures before the
  // first event (status, connect, timeout) are errors here, as for complete(). The stream
  // must not outlive the context's loop. The default: kInternal, streaming unsupported.
  virtual boost::asio::awaitable<core::Result<std::unique_ptr<EventStream>>> stream(
      const chat::ChatRequest& request, CallContext& context);
  // Whether this provider can be sent the request: false when the request holds what only
  // its client's dialect carries (chat::ChatRequest::dialect_only) and this provider speaks
  // another. The default: only requests that translate whole.
  [[nodiscard]] virtual bool carries(const chat::ChatRequest& request) const {
    return request.dialect_only.empty();
  }
  // Whether count_tokens() asks the upstream (an Anthropic API).
  [[nodiscard]] virtual bool counts_tokens() const { return false; }
  // The upstream's own count of the request's input tokens, its answer relayed whatever its
  // status (errors: kConnect, kTimeout, as complete()). The default: kInternal.
  virtual boost::asio::awaitable<core::Result<RelayedAnswer>> count_tokens(
      const chat::ChatRequest& request, CallContext& context);

  // The inference stack serving this provider now: the config's `stack:` ("vllm-0.7.3"), else
  // what detection last found joined by "+" to the system_fingerprint answers carried last
  // ("vllm-0.7.3+fp_44709d6fcb"), or either alone; empty when unknown. Any thread.
  [[nodiscard]] std::string stack() const;
  // Sets what detection found (the part before the fingerprint). Any thread.
  void set_stack(std::string label);
  // Fixes stack() to the config's `stack:`: detection and fingerprints no longer change it
  // (an empty label pins nothing). Any thread.
  void pin_stack(std::string label);
  // Notes the system_fingerprint an answer carried (empty: none, ignored); a new one changes
  // stack() unless it is pinned. Costs a comparison when it did not change. Any thread.
  void observe_fingerprint(std::string_view fingerprint);
  // Asks the upstream which stack serves it, off the request path, within the context's
  // budget; empty when it does not say. The default: stack().
  virtual boost::asio::awaitable<std::string> detect_stack(CallContext& context);

 private:
  // stack() from detected_ and fingerprint_; under mutex_.
  void publish_stack();

  std::atomic<std::shared_ptr<const std::string>> stack_;        // what stack() gives
  std::atomic<std::shared_ptr<const std::string>> fingerprint_;  // as the answer sent it
  std::atomic<bool> pinned_ = false;
  std::mutex mutex_;      // serialises the writers
  std::string detected_;  // under mutex_
  std::string seen_;      // the last fingerprint, cleaned; under mutex_
};

}  // namespace backstop::providers
