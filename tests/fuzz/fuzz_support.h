#pragma once

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

// What every fuzz target checks besides "does not crash": properties that must hold for any
// input, each a hard failure (abort) so that the driver or libFuzzer saves the input.
namespace backstop::fuzz {

// The fuzzer's bytes as text.
[[nodiscard]] inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Aborts with `what` when `condition` is false.
inline void require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

// Aborts unless `text` is one well-formed JSON value. Encoders may nest a client's value
// (a tool schema) deeper than the decoders' 32 levels, so the depth is not limited here.
inline void require_json(std::string_view text, const char* what) {
  boost::json::parse_options options;
  options.max_depth = 100'000;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec, {}, options);
  if (ec) {
    std::fprintf(stderr, "fuzz property violated: %s is not JSON (%s): %.*s\n", what,
                 ec.message().c_str(), static_cast<int>(text.size() > 2000 ? 2000 : text.size()),
                 text.data());
    std::abort();
  }
}

// Aborts unless every `data:` line of an encoder's SSE output is JSON or "[DONE]", and the
// output is whole frames (ends with a blank line, or is empty).
inline void require_sse_json(std::string_view frames, const char* what) {
  require(frames.empty() || frames.ends_with("\n\n"), what);
  std::size_t pos = 0;
  while (pos < frames.size()) {
    std::size_t end = frames.find('\n', pos);
    if (end == std::string_view::npos) end = frames.size();
    std::string_view line = frames.substr(pos, end - pos);
    if (line.starts_with("data: ") && line != "data: [DONE]") {
      require_json(line.substr(6), what);
    }
    pos = end + 1;
  }
}

}  // namespace backstop::fuzz
