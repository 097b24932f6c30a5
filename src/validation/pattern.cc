#include "validation/pattern.h"

#include <re2/re2.h>

#include <cstdint>
#include <optional>
#include <stdexcept>

namespace backstop::validation {
namespace {

constexpr std::size_t kMaxQuoted = 60;  // pattern text quoted in an error

RE2::Options pattern_options() {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(static_cast<int64_t>(kPatternMaxMem));
  options.set_never_capture(true);  // a search needs no groups; they would cost memory
  return options;
}

std::optional<std::uint32_t> hex4(std::string_view text, std::size_t at) {
  if (at + 4 > text.size()) return std::nullopt;
  std::uint32_t value = 0;
  for (char c : text.substr(at, 4)) {
    value <<= 4;
    if (c >= '0' && c <= '9') {
      value |= static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      value |= static_cast<std::uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      value |= static_cast<std::uint32_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
  }
  return value;
}

std::string hex(std::uint32_t value) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[value & 0xF]);
    value >>= 4;
  } while (value != 0);
  return out;
}

// JSON Schema patterns are ECMA-262, which RE2 reads alike in their common subset. Two
// spellings differ and are rewritten: `\uXXXX` (RE2: `\x{XXXX}`; a surrogate pair becomes
// its code point) and named groups `(?<name>...)` (RE2: `(?P<name>...)`).
std::string to_re2_syntax(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  bool in_class = false;
  for (std::size_t i = 0; i < source.size(); ++i) {
    const char c = source[i];
    if (c == '\\' && i + 1 < source.size()) {
      const auto unit = source[i + 1] == 'u' ? hex4(source, i + 2) : std::nullopt;
      if (!unit) {
        out += source.substr(i, 2);
        ++i;
        continue;
      }
      std::uint32_t code_point = *unit;
      std::size_t used = 6;
      if (code_point >= 0xD800 && code_point <= 0xDBFF && source.substr(i + 6, 2) == "\\u") {
        if (const auto low = hex4(source, i + 8); low && *low >= 0xDC00 && *low <= 0xDFFF) {
          code_point = 0x10000 + ((code_point - 0xD800) << 10) + (*low - 0xDC00);
          used = 12;
        }
      }
      out += "\\x{" + hex(code_point) + "}";
      i += used - 1;
      continue;
    }
    if (in_class) {
      in_class = c != ']';
    } else if (c == '[') {
      in_class = true;
    } else if (source.substr(i, 3) == "(?<" && i + 3 < source.size() && source[i + 3] != '=' &&
               source[i + 3] != '!') {
      out += "(?P<";
      i += 2;
      continue;
    }
    out += c;
  }
  return out;
}

std::string quoted(std::string_view source) {
  std::string out = "\"";
  out += source.substr(0, kMaxQuoted);
  if (source.size() > kMaxQuoted) out += "...";
  out += '"';
  return out;
}

// `source` compiled, or why it does not compile.
std::expected<std::unique_ptr<RE2>, std::string> compile(std::string_view source) {
  auto re = std::make_unique<RE2>(to_re2_syntax(source), pattern_options());
  if (re->ok()) return re;
  std::string why = "pattern " + quoted(source) + " does not compile: " + re->error();
  switch (re->error_code()) {
    case RE2::ErrorBadPerlOp:
    case RE2::ErrorBadEscape:
      why += " (patterns run on RE2: no lookaround, no backreferences)";
      break;
    case RE2::ErrorPatternTooLarge:
      why += " (too large)";
      break;
    default:
      break;
  }
  return std::unexpected(std::move(why));
}

thread_local const PatternTable* active_table = nullptr;

}  // namespace

PatternTable::PatternTable() = default;
PatternTable::~PatternTable() = default;
PatternTable::PatternTable(PatternTable&&) noexcept = default;
PatternTable& PatternTable::operator=(PatternTable&&) noexcept = default;

std::expected<void, std::string> PatternTable::add(std::string_view source) {
  if (compiled_.contains(source)) return {};
  auto re = compile(source);
  if (!re) return std::unexpected(std::move(re.error()));
  compiled_.emplace(std::string(source), std::move(*re));
  return {};
}

bool PatternTable::search(std::string_view source, std::string_view text) const {
  if (auto it = compiled_.find(source); it != compiled_.end()) {
    return RE2::PartialMatch(text, *it->second);
  }
  auto re = compile(source);
  if (!re) throw std::runtime_error(re.error());
  return RE2::PartialMatch(text, **re);
}

ActivePatterns::ActivePatterns(const PatternTable& table) : previous_(active_table) {
  active_table = &table;
}

ActivePatterns::~ActivePatterns() { active_table = previous_; }

bool ActivePatterns::search(std::string_view source, std::string_view text) {
  if (active_table != nullptr) return active_table->search(source, text);
  return PatternTable().search(source, text);
}

std::string_view check_format(std::string_view format, std::string_view text, int& month,
                              int& day) {
  // valijson's own expressions for these formats.
  static const RE2 kDate("([0-9]+)-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])");
  static const RE2 kTime(
      "([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)(\\.[0-9]+)?"
      "(([Zz])|([\\+|\\-]([01][0-9]|2[0-3]):[0-5][0-9]))");
  static const RE2 kDateTime(
      "([0-9]+)-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):"
      "([0-5][0-9]|60)(\\.[0-9]+)?(([Zz])|([\\+|\\-]([01][0-9]|2[0-3]):[0-5][0-9]))");
  month = 0;
  day = 0;
  if (format == "date") {
    if (RE2::FullMatch(text, kDate, nullptr, &month, &day)) return {};
    return "String should be a valid date";
  }
  if (format == "time") {
    if (RE2::FullMatch(text, kTime)) return {};
    return "String should be a valid time";
  }
  if (format == "date-time") {
    if (RE2::FullMatch(text, kDateTime, nullptr, &month, &day)) return {};
    return "String should be a valid date-time";
  }
  return {};
}

}  // namespace backstop::validation
