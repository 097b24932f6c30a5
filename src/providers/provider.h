#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "chat/chat.h"
#include "core/clock.h"
#include "core/error.h"

namespace boost::asio {
class io_context;
}
namespace backstop::http {
class Client;
}

namespace backstop::providers {

// What a call may use of the worker it runs on.
struct CallContext {
  boost::asio::io_context& loop;  // the worker's event loop (timers)
  http::Client& http;             // the worker's pooled client
  const core::Clock& clock;
  std::string_view request_id;  // forwarded as x-request-id
};

// One upstream model. Immutable after construction and shared by all workers.
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
};

}  // namespace backstop::providers
