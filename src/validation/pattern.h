#pragma once

#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace re2 {
class RE2;
}

namespace backstop::validation {

// The memory one compiled pattern may use (RE2's max_mem: its program and its DFA cache).
// A pattern whose program does not fit is refused; a DFA that fills up falls back to RE2's
// NFA, still linear in the text.
inline constexpr std::size_t kPatternMaxMem = 256 * 1024;

// The `pattern`s and `patternProperties` keys of one schema, compiled with RE2: matching is
// linear in the text and memory is bounded (kPatternMaxMem each). RE2 has no backreferences
// and no lookaround; a pattern that uses them does not compile.
class PatternTable {
 public:
  PatternTable();
  ~PatternTable();
  PatternTable(PatternTable&&) noexcept;
  PatternTable& operator=(PatternTable&&) noexcept;

  // Compiles `source` (a JSON Schema pattern: ECMA-262 syntax) unless it is already in the
  // table; why it does not compile otherwise ("invalid perl operator: (?=").
  [[nodiscard]] std::expected<void, std::string> add(std::string_view source);
  // Whether `text` contains a match of `source` (a search, as JSON Schema asks), with the
  // compiled pattern when `source` is in the table, else compiled for this call only. A
  // pattern that does not compile throws std::runtime_error (it is never in the table).
  [[nodiscard]] bool search(std::string_view source, std::string_view text) const;
  // Patterns in the table.
  [[nodiscard]] std::size_t size() const { return compiled_.size(); }

 private:
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  std::unordered_map<std::string, std::unique_ptr<re2::RE2>, TextHash, std::equal_to<>> compiled_;
};

// The pattern table that valijson's visitors read on this thread while a validation runs.
// valijson 1.0 hard-codes std::regex and gives no way to pass a regex engine through its
// Validator, so the table of the schema being validated travels in this scope instead.
class ActivePatterns {
 public:
  explicit ActivePatterns(const PatternTable& table);
  ~ActivePatterns();
  ActivePatterns(const ActivePatterns&) = delete;
  ActivePatterns& operator=(const ActivePatterns&) = delete;

  // Whether `text` contains a match of `source`, with the active table (or, outside any
  // scope, a pattern compiled for this call). Throws std::runtime_error when `source` does
  // not compile.
  [[nodiscard]] static bool search(std::string_view source, std::string_view text);

 private:
  const PatternTable* previous_;
};

// The checks valijson applies for `format` (date, time, date-time; other formats hold),
// evaluated with RE2. Empty: `text` holds; else valijson's wording of the failure.
// `month` and `day` are set for a date or date-time, for valijson's range check.
[[nodiscard]] std::string_view check_format(std::string_view format, std::string_view text,
                                            int& month, int& day);

}  // namespace backstop::validation
