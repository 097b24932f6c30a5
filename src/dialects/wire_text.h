#pragma once

#include <algorithm>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/utf8.h"

// Helpers both dialects apply to what an upstream sends, kept in one place so that the
// dialects (and their stream decoders) cannot drift apart.
namespace backstop::dialects {

// The largest token count taken from an upstream: far above any real count, and small enough
// that sums of a few counts cannot overflow (and stay exact as doubles).
inline constexpr std::int64_t kMaxTokenCount = std::int64_t{1} << 53;

// Longest upstream error message passed to a client, in bytes.
inline constexpr std::size_t kMaxUpstreamMessage = 300;

// An integer `v` clamped to 0..kMaxTokenCount; nullopt when `v` is not an integer.
[[nodiscard]] inline std::optional<std::int64_t> clamped_count(const boost::json::value& v) {
  if (v.is_int64()) return std::clamp<std::int64_t>(v.get_int64(), 0, kMaxTokenCount);
  if (v.is_uint64()) {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(v.get_uint64(), static_cast<std::uint64_t>(kMaxTokenCount)));
  }
  return std::nullopt;
}

// `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD.
[[nodiscard]] inline std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
    } else if (std::size_t n = core::utf8_sequence(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append(core::kReplacement);
      ++i;
    }
  }
  return out;
}

// An upstream's error text made fit for a client's message: valid UTF-8 (bad bytes become
// U+FFFD), line breaks and tabs turned to single spaces, other control characters dropped,
// cut to kMaxUpstreamMessage bytes on a character boundary.
[[nodiscard]] inline std::string upstream_text(std::string_view text) {
  const std::string valid = valid_utf8(text);
  std::string out;
  out.reserve(std::min(valid.size(), kMaxUpstreamMessage + 4));
  for (char c : valid) {
    auto byte = static_cast<unsigned char>(c);
    if (byte == '\n' || byte == '\r' || byte == '\t') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else if (byte >= 0x20 && byte != 0x7f) {
      out.push_back(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kMaxUpstreamMessage) {
    std::size_t cut = kMaxUpstreamMessage;
    // Never end inside a UTF-8 sequence: back up over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

}  // namespace backstop::dialects
