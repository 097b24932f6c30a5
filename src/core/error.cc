#include "core/error.h"

namespace backstop::core {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kForbidden:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kMethodNotAllowed:
      return 405;
    case ErrorCode::kRequestTimeout:
      return 408;
    case ErrorCode::kPayloadTooLarge:
      return 413;
    case ErrorCode::kHeaderTooLarge:
      return 431;
    case ErrorCode::kRateLimited:
      return 429;
    case ErrorCode::kUpstream:
      return 502;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kConnect:
      return 502;
    case ErrorCode::kBadResponse:
      return 502;
    case ErrorCode::kBrokenStream:
      return 502;
    case ErrorCode::kRejected:
      return 400;
    case ErrorCode::kAllTargetsFailed:
      return 502;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

int client_status(const Error& error) {
  if (error.code == ErrorCode::kRejected && error.upstream_status >= 400 &&
      error.upstream_status <= 499) {
    return error.upstream_status;
  }
  return http_status(error.code);
}

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kMethodNotAllowed:
      return "method_not_allowed";
    case ErrorCode::kPayloadTooLarge:
      return "payload_too_large";
    case ErrorCode::kHeaderTooLarge:
      return "header_too_large";
    case ErrorCode::kRequestTimeout:
      return "request_timeout";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kForbidden:
      return "forbidden";
    case ErrorCode::kRateLimited:
      return "rate_limited";
    case ErrorCode::kUpstream:
      return "upstream_error";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kConnect:
      return "connect";
    case ErrorCode::kBadResponse:
      return "bad_response";
    case ErrorCode::kBrokenStream:
      return "broken_stream";
    case ErrorCode::kRejected:
      return "rejected";
    case ErrorCode::kAllTargetsFailed:
      return "all_targets_failed";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

}  // namespace backstop::core
