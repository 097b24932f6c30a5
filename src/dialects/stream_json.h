#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json_string.h"

// JSON text written straight into a frame buffer, for the stream encoders of both dialects:
// a chunk is a few fixed keys around one or two strings, so building a value tree per
// chunk would cost allocations for nothing. Strings: core::append_json_string.
namespace backstop::dialects {

// Appends `n` in decimal.
inline void append_int(std::string& out, std::int64_t n) {
  char buf[24];
  auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
  out.append(buf, end);
}

}  // namespace backstop::dialects
