#include "providers/provider.h"

#include "providers/stack_probe.h"

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
  std::lock_guard lock(mutex_);
  detected_ = std::move(label);
  publish_stack();
}

void Provider::pin_stack(std::string label) {
  if (label.empty()) return;
  std::lock_guard lock(mutex_);
  pinned_.store(true, std::memory_order_release);
  stack_.store(std::make_shared<const std::string>(std::move(label)), std::memory_order_release);
}

void Provider::observe_fingerprint(std::string_view fingerprint) {
  if (fingerprint.empty() || pinned_.load(std::memory_order_acquire)) return;
  if (auto last = fingerprint_.load(std::memory_order_acquire); last && *last == fingerprint) {
    return;
  }
  std::lock_guard lock(mutex_);
  if (pinned_.load(std::memory_order_relaxed)) return;
  fingerprint_.store(std::make_shared<const std::string>(fingerprint), std::memory_order_release);
  seen_ = clean_stack_label(fingerprint);
  publish_stack();
}

void Provider::publish_stack() {
  if (pinned_.load(std::memory_order_relaxed)) return;
  std::string label = detected_;
  if (!seen_.empty()) label += (label.empty() ? "" : "+") + seen_;
  stack_.store(std::make_shared<const std::string>(std::move(label)), std::memory_order_release);
}

boost::asio::awaitable<std::string> Provider::detect_stack(CallContext&) { co_return stack(); }

}  // namespace backstop::providers
