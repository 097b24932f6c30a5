#include <charconv>
#include <string>

#include "http/client.h"

namespace backstop::http {
namespace {

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

core::Result<Origin> invalid(std::string_view url, std::string_view why) {
  return core::fail(core::ErrorCode::kInvalidArgument,
                    "invalid base URL \"" + std::string(url) + "\": " + std::string(why));
}

}  // namespace

core::Result<Origin> parse_origin(std::string_view url) {
  Origin origin;
  std::string_view rest;
  if (starts_with_ignoring_case(url, "https://")) {
    origin.tls = true;
    origin.port = 443;
    rest = url.substr(8);
  } else if (starts_with_ignoring_case(url, "http://")) {
    origin.port = 80;
    rest = url.substr(7);
  } else {
    return invalid(url, "expected http://host[:port][/path] or https://host[:port][/path]");
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return invalid(url, "a query or fragment is not allowed");
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) {
    return invalid(url, "credentials in the URL are not allowed");
  }

  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {  // an IPv6 literal: [::1]:8000
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return invalid(url, "unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid(url, "unexpected text after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return invalid(url, "empty port");
    }
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty()) return invalid(url, "empty port");
  }
  if (host.empty()) return invalid(url, "missing host");
  for (char c : host) {
    if (c <= ' ' || c == 0x7f || c == '\\' || c == '%')
      return invalid(url, "bad character in host");
  }
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return invalid(url, "port must be a number from 1 to 65535");
    }
    origin.port = static_cast<std::uint16_t>(value);
  }
  for (char c : path) {
    if (c <= ' ' || c == 0x7f) return invalid(url, "bad character in path");
  }
  while (path.ends_with('/')) path.remove_suffix(1);

  origin.host = std::string(host);
  origin.base_path = std::string(path);
  return origin;
}

}  // namespace backstop::http
