#include "core/ids.h"

#include <array>

namespace backstop::core {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void append_hex(std::string& out, std::uint64_t v) {
  static constexpr std::array<char, 16> kDigits = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                   '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kDigits[(v >> shift) & 0xF]);
}

}  // namespace

IdGenerator::IdGenerator(std::uint64_t seed) : state_(seed) {}

std::string IdGenerator::next() {
  std::string id;
  id.reserve(32);
  append_hex(id, splitmix64(state_));
  // The counter half guarantees uniqueness within a run even if the hash half collides.
  append_hex(id, ++counter_ ^ (state_ << 20));
  return id;
}

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace backstop::core
