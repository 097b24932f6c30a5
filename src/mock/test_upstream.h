#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "http/server.h"
#include "mock/mock_upstream.h"

namespace backstop::mock {

// For tests: an http::Server on 127.0.0.1:0 with one worker, stopped on destruction.
class TestUpstream {
 public:
  explicit TestUpstream(http::Server::ServiceFactory factory)
      : server_(http::ServerLimits{}, 1, std::move(factory)) {
    const auto bound = server_.listen("127.0.0.1", 0);
    EXPECT_TRUE(bound.has_value()) << bound.error().message;
    server_.start();
  }
  ~TestUpstream() {
    server_.stop(std::chrono::milliseconds(0));
    server_.wait();
  }
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;

  // "http://127.0.0.1:PORT" + path.
  [[nodiscard]] std::string url(std::string_view path = "") const {
    return "http://127.0.0.1:" + std::to_string(server_.port()) + std::string(path);
  }
  [[nodiscard]] std::uint16_t port() const { return server_.port(); }

 private:
  http::Server server_;
};

// For tests: backstop's mock upstream (MockUpstream) in-process, on its own port.
class MockServer final : public TestUpstream {
 public:
  MockServer()
      : TestUpstream([](boost::asio::io_context& loop, int) -> std::unique_ptr<http::Service> {
          return std::make_unique<MockUpstream>(loop);
        }) {}
};

// For tests that fill a config template: `s` with every `from` replaced by `to`.
inline std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

}  // namespace backstop::mock
