#include "providers/provider.h"

namespace backstop::providers {

boost::asio::awaitable<core::Result<std::unique_ptr<EventStream>>> Provider::stream(
    const chat::ChatRequest&, CallContext&) {
  co_return core::fail(core::ErrorCode::kInternal,
                       "provider \"" + name() + "\" does not support streaming");
}

boost::asio::awaitable<core::Result<RelayedAnswer>> Provider::count_tokens(const chat::ChatRequest&,
                                                                           CallContext&) {
  co_return core::fail(core::ErrorCode::kInternal,
                       "provider \"" + name() + "\" does not count tokens");
}

std::string Provider::stack() const {
  const std::shared_ptr<const std::string> label = stack_.load(std::memory_order_acquire);
  return label ? *label : std::string();
}

void Provider::set_stack(std::string label) {
  stack_.store(std::make_shared<const std::string>(std::move(label)), std::memory_order_release);
}

boost::asio::awaitable<std::string> Provider::detect_stack(CallContext&) { co_return stack(); }

}  // namespace backstop::providers
