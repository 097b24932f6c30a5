#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cli/commands.h"
#include "config/config.h"
#include "dialects/builtin/builtin.h"
#include "server/gateway.h"

namespace backstop::cli {

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

config::ParseOptions config_options() {
  return config::ParseOptions{dialects::builtin().upstream_kinds()};
}

int check_config(const std::string& config_file) {
  config::LoadResult loaded = config::load_file(config_file, config_options());
  for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
  if (!loaded.errors.empty()) {
    std::fprintf(stderr, "%s: %zu error%s\n", config_file.c_str(), loaded.errors.size(),
                 loaded.errors.size() == 1 ? "" : "s");
    return 1;
  }
  const config::Config& c = *loaded.config;
  std::printf("%s: ok (%zu providers, %zu workloads)\n", config_file.c_str(), c.providers.size(),
              c.workloads.size());
  return 0;
}

int serve(const std::string& config_file, const std::string& listen, int threads) {
  config::LoadResult loaded = config::load_file(config_file, config_options());
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  // Workers inherit the mask, so only this thread takes the stop signals.
  block_stop_signals();
  server::GatewayOptions options;
  options.listen = listen;
  options.threads = threads;
  auto gateway = server::Gateway::create(loaded.config, std::move(options));
  if (!gateway) {
    std::fprintf(stderr, "backstop: %s\n", gateway.error().message.c_str());
    return 1;
  }
  if (auto started = (*gateway)->start(); !started) {
    std::fprintf(stderr, "backstop: %s\n", started.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr,
               "backstop: listening on port %u with %d worker threads (%zu workloads, "
               "max_connections %zu)\n",
               static_cast<unsigned>((*gateway)->port()), (*gateway)->threads(),
               loaded.config->workloads.size(), (*gateway)->max_connections());
  const int sig = wait_for_signal();
  const config::Server& s = loaded.config->server;
  std::fprintf(stderr,
               "backstop: %s, draining: /readyz answers 503 and new connections are still "
               "accepted for %lld ms, then in-flight requests finish (up to %lld ms); a second "
               "signal exits at once\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(s.drain_delay_ms),
               static_cast<long long>(s.drain_timeout_ms));
  // The second signal ends the process where it stands, drain or not.
  std::thread([] {
    const int second = wait_for_signal();
    std::fprintf(stderr, "backstop: %s again, exiting at once\n",
                 second == SIGTERM ? "SIGTERM" : "SIGINT");
    std::_Exit(128 + second);
  }).detach();
  (*gateway)->drain();
  (*gateway)->wait();
  std::fprintf(stderr, "backstop: stopped\n");
  return 0;
}

}  // namespace backstop::cli
