#pragma once

#include <array>
#include <boost/json/basic_parser.hpp>
#include <boost/json/error.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// What the OpenAI dialect's one-pass readers share (internal): the fixed parts of a
// boost::json::basic_parser handler, the objects and arrays being read with the fields each
// has had, and the parse of a whole body. A reader that meets anything outside the shape it
// knows stops the parse, and its caller reads the body from a tree instead.
namespace backstop::dialects::openai::one_pass {

// The handler callbacks every reader has alike. Derive from it.
struct Handler {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_number_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_comment_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_comment(std::string_view, boost::system::error_code&) { return true; }

  // Stops the parse: every callback returns this when the body leaves the known shape.
  static bool stop(boost::system::error_code& ec) {
    ec = boost::json::error::syntax;
    return false;
  }
};

// The objects and arrays being read, innermost last, each with the fields it has had (one
// bit per field, below 64) and the elements it has had (arrays).
template <typename Frame>
class Frames {
 public:
  [[nodiscard]] bool empty() const { return depth_ == 0; }
  [[nodiscard]] std::size_t depth() const { return depth_; }
  // The innermost frame; not when empty().
  [[nodiscard]] Frame top() const { return frames_[depth_ - 1]; }

  // Enters a frame; false past 64 (the parser's own depth limit is lower).
  [[nodiscard]] bool push(Frame frame) {
    if (depth_ == frames_.size()) return false;
    frames_[depth_] = frame;
    seen_[depth_] = 0;
    elements_[depth_] = 0;
    ++depth_;
    return true;
  }
  void pop() { --depth_; }

  // Notes that the innermost frame has field `bit`; false when it had it already.
  [[nodiscard]] bool first(int bit) {
    const std::uint64_t mask = std::uint64_t{1} << bit;
    if ((seen_[depth_ - 1] & mask) != 0) return false;
    seen_[depth_ - 1] |= mask;
    return true;
  }
  // How many elements the innermost frame had before this one.
  std::size_t next_element() { return elements_[depth_ - 1]++; }

 private:
  std::array<Frame, 64> frames_{};
  std::array<std::uint64_t, 64> seen_{};
  std::array<std::size_t, 64> elements_{};
  std::size_t depth_ = 0;
};

// A key or string the parser hands over in parts (it had escapes), joined.
class Parts {
 public:
  void append(std::string_view s) { text_.append(s); }
  // `s` when no part came before it, else the parts with `s` appended.
  [[nodiscard]] std::string_view whole(std::string_view s) {
    if (text_.empty()) return s;
    text_.append(s);
    return text_;
  }
  [[nodiscard]] bool empty() const { return text_.empty(); }
  void clear() { text_.clear(); }

 private:
  std::string text_;
};

// Parses `body` with `parser`: true when it is one complete JSON value, followed by nothing
// but whitespace, and the handler never stopped.
template <typename H>
[[nodiscard]] bool parse_whole(boost::json::basic_parser<H>& parser, std::string_view body) {
  boost::system::error_code ec;
  const std::size_t consumed = parser.write_some(true, body.data(), body.size(), ec);
  if (ec || body.find_first_not_of(" \t\r\n", consumed) != std::string_view::npos) return false;
  parser.write_some(false, nullptr, 0, ec);
  return !ec && parser.done();
}

}  // namespace backstop::dialects::openai::one_pass
