#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "access/budget.h"
#include "access/keys.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "dialects/registry.h"
#include "http/server.h"
#include "ledger/ledger.h"
#include "providers/provider.h"
#include "routing/drift.h"
#include "routing/router.h"
#include "server/stack_watch.h"
#include "telemetry/access_log.h"
#include "telemetry/hooks.h"
#include "telemetry/registry.h"

namespace backstop::server {

// Reads an environment variable; nullptr when unset. Injected so tests need no real env.
using EnvReader = std::function<const char*(const char*)>;

struct GatewayOptions {
  std::string listen;                  // overrides config's listen when not empty ("HOST:PORT")
  int threads = -1;                    // overrides config's threads when >= 0 (0: one per core)
  core::Logger* logger = nullptr;      // nullptr: stderr
  const core::Clock* clock = nullptr;  // nullptr: the system clock
  std::unique_ptr<ledger::SpendStore> spend;  // nullptr: from config (SQLite or memory)
  EnvReader env;                              // nullptr: ::getenv
  std::size_t access_log_queue_lines = 0;     // 0: the access log's default
  telemetry::HookPost hook_post;              // nullptr: HTTP POSTs to the hooks' URLs
  telemetry::HookOptions hook_options;
  // Ask the upstreams without a configured stack which stack serves them (StackWatch); off for
  // tests whose upstreams script every request they get.
  bool detect_stacks = true;
  const dialects::Registry* dialects = nullptr;  // nullptr: dialects::builtin()
};

// The composition root: providers, router, telemetry, ledger and the HTTP server built
// from one immutable Config.
class Gateway {
 public:
  // Builds everything; errors when a provider cannot be built (bad base_url), a key's
  // variable (api_key_env, auth's key_env or metrics_key_env) is unset, or the spend store
  // cannot be opened.
  [[nodiscard]] static core::Result<std::unique_ptr<Gateway>> create(
      std::shared_ptr<const config::Config> config, GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds the listen address and starts the workers.
  [[nodiscard]] core::Result<void> start();
  [[nodiscard]] std::uint16_t port() const;
  // The first stop signal: begin_drain(), keep accepting for server.drain_delay_ms (so
  // that load balancers see /readyz fail), then stop(). A stop() from another thread ends
  // the delay early. Returns when stopped.
  void drain();
  // /readyz answers 503 and every response carries Connection: close; still accepting.
  void begin_drain();
  // begin_drain(), stop accepting, let in-flight requests finish (server.drain_timeout_ms),
  // flush the spend store and the access log.
  void stop();
  void wait();

  [[nodiscard]] bool draining() const { return draining_.load(); }
  [[nodiscard]] const config::Config& config() const { return *config_; }
  [[nodiscard]] const routing::Router& router() const { return *router_; }
  // The client keys of the config's auth: block (none: every request is let through).
  [[nodiscard]] const access::Keys& keys() const { return keys_; }
  // The day's spend against the budgets of keys and workloads (empty when none is set).
  [[nodiscard]] access::Budgets& budgets() { return *budgets_; }
  [[nodiscard]] telemetry::Registry& registry() { return *registry_; }
  // The dialects its endpoints and providers speak.
  [[nodiscard]] const dialects::Registry& dialects() const { return *dialects_; }
  [[nodiscard]] ledger::SpendStore& spend() { return *spend_; }
  [[nodiscard]] core::Logger& logger() { return *logger_; }
  [[nodiscard]] telemetry::AccessLog& access_log() { return *access_log_; }
  [[nodiscard]] telemetry::Hooks& hooks() { return *hooks_; }
  [[nodiscard]] const core::Clock& clock() const { return *clock_; }
  [[nodiscard]] int threads() const { return threads_; }
  // The connection limit in force (max_connections, capped below the open-file limit).
  [[nodiscard]] std::size_t max_connections() const;
  // One round of the background watch (every 10 s once started): band changes of the fallback
  // rate are logged and sent as `band` hook events; budgets spent since the last round are
  // sent as `budget` events.
  void watch();

 private:
  Gateway() = default;

  std::shared_ptr<const config::Config> config_;
  std::unique_ptr<core::Logger> owned_logger_;
  core::Logger* logger_ = nullptr;
  std::unique_ptr<core::Clock> owned_clock_;
  const core::Clock* clock_ = nullptr;
  std::unique_ptr<ledger::SpendStore> spend_;
  std::unique_ptr<telemetry::Registry> registry_;
  const dialects::Registry* dialects_ = nullptr;
  std::unique_ptr<telemetry::AccessLog> access_log_;
  std::unique_ptr<telemetry::Hooks> hooks_;
  access::Keys keys_;
  std::unique_ptr<access::Budgets> budgets_;
  std::vector<std::unique_ptr<providers::Provider>> providers_;
  std::unique_ptr<routing::Router> router_;
  std::unique_ptr<StackWatch> stack_watch_;  // the providers' inference stacks
  bool detect_stacks_ = true;
  std::unique_ptr<http::Server> server_;
  std::string host_;
  std::uint16_t port_ = 0;
  int threads_ = 1;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  // Runs watch() every 10 s until stop(). band_wake_ also
  // ends drain()'s delay.
  std::thread band_thread_;
  std::mutex watch_mutex_;  // watch() from the thread or a test
  std::unique_ptr<routing::BandWatch> band_watch_;
  std::unique_ptr<routing::DriftWatch> drift_watch_;
  std::mutex band_mutex_;
  std::condition_variable band_wake_;
};

}  // namespace backstop::server
