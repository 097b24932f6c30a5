#include <boost/asio/io_context.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "config/config.h"
#include "http/server.h"
#include "mock/mock_upstream.h"

namespace backstop::cli {

int mock(const std::string& listen, int threads) {
  auto address = config::split_listen(listen);
  if (!address) {
    std::fprintf(stderr, "backstop mock: %s\n", address.error().message.c_str());
    return 1;
  }
  block_stop_signals();
  http::ServerLimits limits;
  http::Server server(limits, threads,
                      [](boost::asio::io_context& loop, int) -> std::unique_ptr<http::Service> {
                        return std::make_unique<mock::MockUpstream>(loop);
                      });
  if (auto bound = server.listen(address->first, address->second); !bound) {
    std::fprintf(stderr, "backstop mock: %s\n", bound.error().message.c_str());
    return 1;
  }
  server.start();
  // Tests and scripts read the port from this line.
  std::printf("listening on %s:%u\n", address->first.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  wait_for_signal();
  server.stop(std::chrono::milliseconds(2000));
  server.wait();
  return 0;
}

}  // namespace backstop::cli
