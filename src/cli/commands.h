#pragma once

#include <cstdint>
#include <string>

namespace backstop::cli {

// Each subcommand returns the process exit code.

// Runs the gateway until SIGTERM or SIGINT, then drains and returns 0; a second signal
// exits at once with 128 + its number. 1 when it cannot start (config, port taken).
int serve(const std::string& config_file, const std::string& listen, int threads);
// Prints every config error as FILE:LINE: PATH: MESSAGE; 1 on any, else 0.
int check_config(const std::string& config_file);
// The embedded demo: a gateway on the demo config, sample traffic, a summary.
struct DemoOptions {
  int requests = 300;
  int concurrency = 16;
};
int demo(const DemoOptions& options);
// The mock upstream, until SIGTERM or SIGINT.
int mock(const std::string& listen, int threads);

// Blocks SIGINT and SIGTERM in the calling thread (and threads it starts later), so that
// wait_for_signal() can take them synchronously.
void block_stop_signals();
// Waits for SIGINT or SIGTERM; returns its number.
int wait_for_signal();

}  // namespace backstop::cli
