#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace backstop::core {

// Generates request ids: 32 lowercase hex characters, unique per process run.
// One per worker thread; not thread-safe.
class IdGenerator {
 public:
  explicit IdGenerator(std::uint64_t seed);
  [[nodiscard]] std::string next();

 private:
  std::uint64_t state_;
  std::uint64_t counter_ = 0;
};

// True when a client-sent request id is safe to echo and log: 1-128 characters of
// [A-Za-z0-9._:-].
[[nodiscard]] bool is_valid_request_id(std::string_view id);

}  // namespace backstop::core
