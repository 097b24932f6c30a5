#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/process.h"
#include "config/config.h"
#include "http/server.h"
#include "mock/mock_upstream.h"

namespace backstop::cli {

int mock(const MockCliOptions& options) {
  const std::string& listen = options.listen;
  auto address = config::split_listen(listen);
  if (!address) {
    std::fprintf(stderr, "backstop mock: %s\n", address.error().message.c_str());
    return 1;
  }
  block_stop_signals();
  http::ServerLimits limits;
  // The mock holds no upstream connections: each client connection takes one descriptor, where
  // connection_cap keeps one aside for an upstream connection per client connection.
  limits.fd_limit = 2 * cli::open_file_limit();
  limits.max_connections = 1'000'000;
  mock::MockOptions mock_options;
  mock_options.stream_chunks = options.stream_chunks;
  mock_options.stream_frame_delay = std::chrono::milliseconds(options.chunk_interval_ms);
  http::Server server(
      limits, options.threads,
      [mock_options](boost::asio::io_context& loop, int) -> std::unique_ptr<http::Service> {
        return std::make_unique<mock::MockUpstream>(loop, mock_options);
      });
  if (auto bound = server.listen(address->first, address->second); !bound) {
    std::fprintf(stderr, "backstop mock: %s\n", bound.error().message.c_str());
    return 1;
  }
  server.start();
  // Tests and scripts read the port from this line.
  std::printf("listening on %s:%u\n", address->first.c_str(), static_cast<unsigned>(server.port()));
  std::fprintf(stderr, "backstop mock: max_connections %zu\n", server.max_connections());
  std::fflush(stdout);
  wait_for_signal();
  server.stop(std::chrono::milliseconds(2000));
  server.wait();
  return 0;
}

}  // namespace backstop::cli
