#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace backstop::core {

// The one error taxonomy. Each code maps to exactly one HTTP status (http_status).
enum class ErrorCode {
  kInvalidArgument,   // bad client input: 400
  kNotFound,          // unknown path or workload: 404
  kMethodNotAllowed,  // 405
  kPayloadTooLarge,   // 413
  kHeaderTooLarge,    // 431
  kRequestTimeout,    // client too slow: 408
  kUnauthorized,      // 401
  kForbidden,         // the client's key may not do this: 403
  kRateLimited,       // upstream 429
  kUpstream,          // upstream 5xx or other non-2xx
  kTimeout,           // upstream deadline passed
  kConnect,           // upstream connect/DNS/TLS failure
  kBadResponse,       // upstream answered something we could not decode
  kBrokenStream,      // an upstream stream stopped before the dialect's own end: 502
  kRejected,          // an upstream refused the request itself: its own 4xx reaches the client
  kAllTargetsFailed,  // every target of a route failed: 502
  kUnavailable,       // draining or overloaded: 503
  kInternal,          // a bug: 500
};

// A failure as a value: a canonical code, a human message, and for upstream
// failures the upstream's HTTP status (0 when there was none) and Retry-After.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  int upstream_status = 0;
  int retry_after_ms = -1;  // -1: the upstream sent no Retry-After
  std::string upstream_code =
      {};  // kRejected: the upstream's error code or type ("content_filter")
};

template <typename T>
using Result = std::expected<T, Error>;

// Shorthand for returning a failure: `return fail(ErrorCode::kNotFound, "...")`.
[[nodiscard]] inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

// The HTTP status a client sees for this code.
[[nodiscard]] int http_status(ErrorCode code);

// The HTTP status a client sees for this error: the upstream's own 4xx for kRejected,
// else http_status(error.code).
[[nodiscard]] int client_status(const Error& error);

// Stable snake_case name of the code ("invalid_argument"), for logs and tests.
[[nodiscard]] std::string_view to_string(ErrorCode code);

}  // namespace backstop::core
