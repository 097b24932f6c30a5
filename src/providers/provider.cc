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

}  // namespace backstop::providers
