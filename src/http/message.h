#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace backstop::http {

struct Header {
  std::string name;
  std::string value;
};

// Case-insensitive lookup; "" when absent.
[[nodiscard]] std::string_view find_header(const std::vector<Header>& headers,
                                           std::string_view name);

// An inbound request, read whole (the body limit applies).
struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/v1/chat/completions?x=1"
  std::vector<Header> headers;
  std::string body;

  [[nodiscard]] std::string_view header(std::string_view name) const {
    return find_header(headers, name);
  }
  // The target without its query string.
  [[nodiscard]] std::string_view path() const;
};

// A whole response.
struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<Header> headers;
  std::string body;
};

}  // namespace backstop::http
