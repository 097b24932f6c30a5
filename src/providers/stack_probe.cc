#include "providers/stack_probe.h"

#include <boost/json/parse.hpp>
#include <cctype>

namespace backstop::providers {
namespace {

namespace bj = boost::json;

constexpr std::size_t kMaxLabel = 64;

// The string member `key` of a JSON object body; empty when absent or not a string.
std::string string_member(const bj::object& object, std::string_view key) {
  const bj::value* v = object.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

// `stack` and, when known, "-" and its version.
std::string versioned(std::string_view stack, const std::string& version) {
  return clean_stack_label(version.empty() ? std::string(stack)
                                           : std::string(stack) + "-" + version);
}

}  // namespace

std::string clean_stack_label(std::string_view label) {
  std::string out;
  for (char c : label) {
    if (out.size() == kMaxLabel) break;
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' ||
                      c == '+' || c == '-';
    if (keep) out += c;
  }
  return out;
}

std::string stack_label_of(std::string_view path, std::string_view body) {
  boost::system::error_code ec;
  const bj::value parsed = bj::parse(body, ec);
  if (ec || !parsed.is_object()) return {};
  const bj::object& o = parsed.get_object();
  if (path == "/get_server_info") {
    if (!o.contains("version") && !o.contains("tp_size")) return {};
    return versioned("sglang", string_member(o, "version"));
  }
  if (path == "/info") {
    if (!o.contains("model_id")) return {};
    return versioned("tgi", string_member(o, "version"));
  }
  if (path == "/props") {
    if (!o.contains("build_info") && !o.contains("default_generation_settings")) return {};
    return versioned("llama.cpp", string_member(o, "build_info"));
  }
  if (path == "/version") {
    const std::string version = string_member(o, "version");
    return version.empty() ? std::string() : versioned("vllm", version);
  }
  return {};
}

boost::asio::awaitable<std::string> probe_stack(http::Client& client, http::Origin origin,
                                                std::chrono::milliseconds timeout) {
  for (std::string_view path : kStackProbePaths) {
    http::ClientRequest request;
    request.method = "GET";
    request.target = std::string(path);
    request.connect_timeout = timeout;
    request.timeout = timeout;
    auto answer = co_await client.send(origin, std::move(request));
    if (!answer) {
      // Nothing listens, or it is too slow: the other paths would fare no better.
      if (answer.error().code == core::ErrorCode::kConnect ||
          answer.error().code == core::ErrorCode::kTimeout) {
        co_return std::string();
      }
      continue;
    }
    if (answer->status != 200) continue;
    std::string label = stack_label_of(path, answer->body);
    if (!label.empty()) co_return label;
  }
  co_return std::string();
}

}  // namespace backstop::providers
