#pragma once

#include "http/client.h"

namespace backstop::providers {

// A worker's pooled upstream connections. Outside providers the type is opaque (provider.h
// declares it): routing hands a worker's connections to each call without seeing what they
// are, and only providers reach the client inside.
class Connections {
 public:
  explicit Connections(boost::asio::io_context& loop) : client_(loop) {}
  Connections(const Connections&) = delete;
  Connections& operator=(const Connections&) = delete;

  [[nodiscard]] http::Client& client() { return client_; }

 private:
  http::Client client_;
};

}  // namespace backstop::providers
