#pragma once
// The inference stack behind each provider: asked off the request path, exported as
// backstop_upstream_stack_info.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "providers/provider.h"
#include "telemetry/registry.h"

namespace backstop::server {

struct StackWatchOptions {
  std::chrono::milliseconds interval{300'000};  // between two rounds of asking
  std::chrono::milliseconds timeout{2'000};     // one probe of one upstream
};

// Declares backstop_upstream_stack_info{provider, stack} (1 for each provider whose stack is
// known now) and, for every provider without a `stack:` in the config, asks the upstream
// (Provider::detect_stack) at start() and then every interval on a thread of its own, setting
// what it finds (Provider::set_stack). A provider that does not answer keeps its last label.
class StackWatch {
 public:
  StackWatch(const config::Config& config,
             const std::vector<std::unique_ptr<providers::Provider>>& providers,
             telemetry::Registry& registry, StackWatchOptions options = {});
  // stop().
  ~StackWatch();
  StackWatch(const StackWatch&) = delete;
  StackWatch& operator=(const StackWatch&) = delete;

  // Starts the thread (nothing to ask: no thread).
  void start();
  // Ends the thread; a round in progress ends within one probe's timeout.
  void stop();
  // One round of asking, on the calling thread.
  void detect_once();

 private:
  std::vector<providers::Provider*> asked_;  // those without a configured stack
  StackWatchOptions options_;
  const core::SystemClock clock_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopped_ = false;
};

}  // namespace backstop::server
