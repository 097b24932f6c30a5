#pragma once

// A fast first pass over JSON text for json.cc's parse: a recursive-descent reader that calls
// a boost::json::basic_parser handler's on_* functions as basic_parser would, for the common
// shapes only. Boost.JSON 1.81 copies every byte of a string after its first escape one at a
// time; agent requests are mostly such strings (file contents, tool results), so this reader
// scans strings eight bytes at a time and unescapes in runs. It gives up (returns false) on
// anything it does not handle exactly as basic_parser would: any syntax error, invalid UTF-8,
// a lone surrogate, nesting deeper than Boost's default limit, "-0", and numbers Boost would
// not convert exactly (more than 15 significant digits, or a power of ten beyond 1e22). The
// caller then parses the text again with basic_parser, which reports any error.

#include <bit>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace backstop::json::detail {

// The index of the first byte in memory order whose high bit `mask` (of 8 bytes read as one
// word) has.
[[nodiscard]] inline std::size_t first_flagged_byte(std::uint64_t mask) {
  if constexpr (std::endian::native == std::endian::little) {
    return static_cast<std::size_t>(std::countr_zero(mask)) / 8;
  } else {
    return static_cast<std::size_t>(std::countl_zero(mask)) / 8;
  }
}

template <typename Handler>
class FastReader {
 public:
  FastReader(Handler& handler, std::string_view text) : h_(handler), text_(text) {}

  // Reads the whole text as one value followed by whitespace. False: unsure, parse again.
  [[nodiscard]] bool read() {
    skip_space();
    if (!h_.on_document_begin(ec_) || !value() || !h_.on_document_end(ec_)) return false;
    skip_space();
    return at_ == text_.size();
  }

 private:
  static constexpr int kMaxDepth = 32;  // boost::json::parse_options::max_depth's default

  bool value() {
    if (at_ >= text_.size()) return false;
    switch (text_[at_]) {
      case '{':
        return object();
      case '[':
        return array();
      case '"':
        return string(false);
      case 't':
        return literal("true") && h_.on_bool(true, ec_);
      case 'f':
        return literal("false") && h_.on_bool(false, ec_);
      case 'n':
        return literal("null") && h_.on_null(ec_);
      default:
        return number();
    }
  }

  bool object() {
    if (++depth_ >= kMaxDepth || !h_.on_object_begin(ec_)) return false;
    ++at_;
    std::size_t n = 0;
    skip_space();
    if (peek() != '}') {
      for (;; ++n) {
        skip_space();
        if (peek() != '"' || !string(true)) return false;
        skip_space();
        if (peek() != ':') return false;
        ++at_;
        skip_space();
        if (!value()) return false;
        skip_space();
        if (peek() != ',') break;
        ++at_;
      }
      ++n;
      if (peek() != '}') return false;
    }
    ++at_;
    --depth_;
    return h_.on_object_end(n, ec_);
  }

  bool array() {
    if (++depth_ >= kMaxDepth || !h_.on_array_begin(ec_)) return false;
    ++at_;
    std::size_t n = 0;
    skip_space();
    if (peek() != ']') {
      for (;; ++n) {
        skip_space();
        if (!value()) return false;
        skip_space();
        if (peek() != ',') break;
        ++at_;
      }
      ++n;
      if (peek() != ']') return false;
    }
    ++at_;
    --depth_;
    return h_.on_array_end(n, ec_);
  }

  // A string or key at the opening quote. Without escapes the handler gets a view of the
  // text between the quotes, as basic_parser gives it; with escapes, the unescaped copy.
  bool string(bool key) {
    const std::size_t begin = ++at_;
    if (!scan_plain()) return false;
    std::string_view s = text_.substr(begin, at_ - begin);
    if (text_[at_] == '\\') {
      unescaped_.assign(s);
      if (!unescape_rest()) return false;
      s = unescaped_;
    }
    ++at_;  // the closing quote
    return key ? h_.on_key(s, s.size(), ec_) : h_.on_string(s, s.size(), ec_);
  }

  // Advances to the next quote or backslash, over valid UTF-8 and no control character.
  bool scan_plain() {
    const char* const data = text_.data();
    const char* p = data + at_;
    const char* const end = data + text_.size();
    for (;;) {
      while (end - p >= 8) {
        const std::uint64_t mask = special8(p);
        if (mask != 0) {
          p += first_flagged_byte(mask);
          break;
        }
        p += 8;
      }
      if (p >= end) return false;
      const auto c = static_cast<unsigned char>(*p);
      if (c == '"' || c == '\\') {
        at_ = static_cast<std::size_t>(p - data);
        return true;
      }
      if (c < 0x20) return false;
      if (c < 0x80) {
        ++p;
        continue;
      }
      const std::size_t n = core::utf8_sequence(text_, static_cast<std::size_t>(p - data));
      if (n == 0) return false;
      p += n;
    }
  }

  // The high bit of each of the 8 bytes at `p` that is a quote, a backslash, a control or
  // not ASCII; bytes above a flagged one may be flagged falsely, the lowest never is.
  static std::uint64_t special8(const char* p) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
    constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
    std::uint64_t v = 0;
    std::memcpy(&v, p, 8);
    const auto zero_byte = [](std::uint64_t x) { return (x - kOnes) & ~x; };
    const std::uint64_t control = v - kOnes * 0x20;
    return ((zero_byte(v ^ (kOnes * '"')) | zero_byte(v ^ (kOnes * '\\')) | (control & ~v) | v) &
            kHigh);
  }

  // At a backslash inside a string: appends the rest of it, unescaped, to unescaped_, and
  // stops at the closing quote.
  bool unescape_rest() {
    while (text_[at_] == '\\') {
      if (!escape()) return false;
      const std::size_t begin = at_;
      if (!scan_plain()) return false;
      unescaped_.append(text_.substr(begin, at_ - begin));
    }
    return true;
  }

  // One escape sequence at its backslash.
  bool escape() {
    if (text_.size() - at_ < 2) return false;
    const char c = text_[at_ + 1];
    at_ += 2;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        unescaped_ += c;
        return true;
      case 'b':
        unescaped_ += '\b';
        return true;
      case 'f':
        unescaped_ += '\f';
        return true;
      case 'n':
        unescaped_ += '\n';
        return true;
      case 'r':
        unescaped_ += '\r';
        return true;
      case 't':
        unescaped_ += '\t';
        return true;
      case 'u':
        return unicode_escape();
      default:
        return false;
    }
  }

  // After "\u": a code point, or a surrogate pair written as two escapes.
  bool unicode_escape() {
    int code = hex4();
    if (code < 0) return false;
    if (code >= 0xDC00 && code <= 0xDFFF) return false;  // a lone low surrogate
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (text_.size() - at_ < 2 || text_[at_] != '\\' || text_[at_ + 1] != 'u') return false;
      at_ += 2;
      const int low = hex4();
      if (low < 0xDC00 || low > 0xDFFF) return false;
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(static_cast<unsigned>(code));
    return true;
  }

  int hex4() {
    if (text_.size() - at_ < 4) return -1;
    int code = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text_[at_++];
      int digit = -1;
      if (c >= '0' && c <= '9') digit = c - '0';
      if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      if (digit < 0) return -1;
      code = code * 16 + digit;
    }
    return code;
  }

  void append_utf8(unsigned code) {
    if (code < 0x80) {
      unescaped_ += static_cast<char>(code);
    } else if (code < 0x800) {
      unescaped_ += static_cast<char>(0xC0 | (code >> 6));
      unescaped_ += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      unescaped_ += static_cast<char>(0xE0 | (code >> 12));
      unescaped_ += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      unescaped_ += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      unescaped_ += static_cast<char>(0xF0 | (code >> 18));
      unescaped_ += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      unescaped_ += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      unescaped_ += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  // A number Boost would read exactly: an integer of up to 18 digits (int64), or a decimal of
  // up to 15 significant digits times a power of ten within 1e22, which Boost (1.81) computes
  // as one multiplication or division of exact doubles, as here.
  bool number() {
    const std::size_t begin = at_;
    const bool negative = peek() == '-';
    if (negative) ++at_;
    if (!digit(peek())) return false;
    if (peek() == '0' && negative) return false;  // "-0": left to Boost
    if (peek() == '0' && digit(peek(1))) return false;
    std::uint64_t mantissa = 0;
    int digits = 0;
    int exponent = 0;
    digits += read_digits(mantissa);
    bool integer = true;
    if (peek() == '.') {
      ++at_;
      const int fraction = read_digits(mantissa);
      if (fraction == 0) return false;
      digits += fraction;
      exponent -= fraction;
      integer = false;
    }
    if (peek() == 'e' || peek() == 'E') {
      if (!read_exponent(exponent)) return false;
      integer = false;
    }
    const std::string_view token = text_.substr(begin, at_ - begin);
    if (integer) {
      if (digits > 18) return false;
      const auto i = static_cast<std::int64_t>(mantissa);
      return h_.on_int64(negative ? -i : i, token, ec_);
    }
    if (digits > 15 || exponent < -22 || exponent > 22) return false;
    double x = static_cast<double>(mantissa);
    if (negative) x = -x;
    x = exponent < 0 ? x / kPow10[-exponent] : x * kPow10[exponent];
    return h_.on_double(x, token, ec_);
  }

  // Digits into `mantissa` (while it stays below 1e18); their count.
  int read_digits(std::uint64_t& mantissa) {
    int n = 0;
    while (digit(peek())) {
      if (mantissa < 100000000000000000ULL) mantissa = mantissa * 10 + (text_[at_] - '0');
      ++at_;
      ++n;
    }
    return n;
  }

  bool read_exponent(int& exponent) {
    ++at_;
    bool negative = false;
    if (peek() == '+' || peek() == '-') negative = text_[at_++] == '-';
    if (!digit(peek())) return false;
    int e = 0;
    while (digit(peek())) {
      if (e < 1000) e = e * 10 + (text_[at_] - '0');
      ++at_;
    }
    exponent += negative ? -e : e;
    return true;
  }

  bool literal(std::string_view word) {
    if (text_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  void skip_space() {
    while (at_ < text_.size()) {
      const char c = text_[at_];
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return;
      ++at_;
    }
  }

  [[nodiscard]] char peek(std::size_t ahead = 0) const {
    return at_ + ahead < text_.size() ? text_[at_ + ahead] : '\0';
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }

  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

  Handler& h_;
  std::string_view text_;
  std::size_t at_ = 0;
  int depth_ = 0;
  std::string unescaped_;
  boost::system::error_code ec_;
};

}  // namespace backstop::json::detail
