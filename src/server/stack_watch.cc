#include "server/stack_watch.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <string>

#include "http/client.h"
#include "providers/connections.h"

namespace backstop::server {
namespace {

namespace net = boost::asio;

net::awaitable<void> ask(providers::Provider& provider, providers::CallContext& context) {
  std::string label = co_await provider.detect_stack(context);
  if (!label.empty()) provider.set_stack(std::move(label));
}

}  // namespace

StackWatch::StackWatch(const config::Config& config,
                       const std::vector<std::unique_ptr<providers::Provider>>& providers,
                       telemetry::Registry& registry, StackWatchOptions options)
    : options_(options) {
  std::vector<const providers::Provider*> all;
  for (const auto& p : providers) {
    all.push_back(p.get());
    const config::Provider* pc = config.find_provider(p->name());
    if (pc != nullptr && pc->stack.empty()) asked_.push_back(p.get());
  }
  const telemetry::FamilyId family =
      registry.declare(telemetry::FamilyDef{"backstop_upstream_stack_info",
                                            "The inference stack each provider runs on now (1).",
                                            telemetry::MetricType::kGauge,
                                            {"provider", "stack"},
                                            {}});
  registry.gauge_source(family, [all] {
    std::vector<std::pair<std::vector<std::string>, double>> out;
    for (const providers::Provider* p : all) {
      std::string stack = p->stack();
      if (!stack.empty()) out.push_back({{p->name(), std::move(stack)}, 1.0});
    }
    return out;
  });
}

StackWatch::~StackWatch() { stop(); }

void StackWatch::detect_once() {
  net::io_context loop;
  providers::Connections client(loop);
  std::vector<std::unique_ptr<providers::CallContext>> contexts;
  for (providers::Provider* p : asked_) {
    contexts.push_back(std::make_unique<providers::CallContext>(
        providers::CallContext{loop, client, clock_, "stack-probe", options_.timeout}));
    net::co_spawn(loop, ask(*p, *contexts.back()), net::detached);
  }
  loop.run();
}

void StackWatch::start() {
  if (asked_.empty()) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopped_) {
      lock.unlock();
      detect_once();
      lock.lock();
      wake_.wait_for(lock, options_.interval, [this] { return stopped_; });
    }
  });
}

void StackWatch::stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace backstop::server
