#include "json/json.h"

// The whole of Boost.JSON is compiled here, not linked from its shared library: the parser
// below then inlines the value stack it builds trees with.
#include <boost/json/src.hpp>
#include <boost/json/value_stack.hpp>
#include <cmath>

#include "json/fast_reader.h"

namespace backstop::json {
namespace {

using core::ErrorCode;
using core::fail;

std::unexpected<core::Error> wrong_type(std::string_view where, std::string_view key,
                                        std::string_view expected, const boost::json::value& got) {
  return fail(ErrorCode::kInvalidArgument, "`" + join_path(where, key) + "` must be " +
                                               std::string(expected) + ", got " +
                                               std::string(kind_name(got)));
}

// Builds the tree as boost::json::parser does, but rejects a number that does not fit a
// double ("1e999" would become infinity, which has no JSON form): one test per double read.
struct TreeBuilder {
  static constexpr std::size_t max_object_size = boost::json::object::max_size();
  static constexpr std::size_t max_array_size = boost::json::array::max_size();
  static constexpr std::size_t max_key_size = boost::json::string::max_size();
  static constexpr std::size_t max_string_size = boost::json::string::max_size();

  template <typename... Args>
  explicit TreeBuilder(Args&&... args) : stack(std::forward<Args>(args)...) {}

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    ++depth;
    return true;
  }
  bool on_object_end(std::size_t n, boost::system::error_code&) {
    if (depth-- == 1) flush_member();
    stack.push_object(n);
    return true;
  }
  bool on_array_begin(boost::system::error_code&) {
    ++depth;
    return true;
  }
  bool on_array_end(std::size_t n, boost::system::error_code&) {
    --depth;
    stack.push_array(n);
    return true;
  }
  bool on_key_part(std::string_view s, std::size_t, boost::system::error_code&) {
    in_parts = true;
    stack.push_chars(s);
    return true;
  }
  bool on_key(std::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1 && visit != nullptr) {
      flush_member();
      key = in_text(s);
      has_key = true;
    }
    in_parts = false;
    stack.push_key(s);
    return true;
  }
  bool on_string_part(std::string_view s, std::size_t, boost::system::error_code&) {
    in_parts = true;
    stack.push_chars(s);
    return true;
  }
  bool on_string(std::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1 && has_key) {
      (*visit)(key, in_text(s));
      has_key = false;
    }
    in_parts = false;
    stack.push_string(s);
    return true;
  }
  bool on_number_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t i, std::string_view, boost::system::error_code&) {
    stack.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, std::string_view, boost::system::error_code&) {
    stack.push_uint64(u);
    return true;
  }
  bool on_double(double d, std::string_view, boost::system::error_code& ec) {
    if (!std::isfinite(d)) [[unlikely]] {
      out_of_range = true;
      ec = boost::json::error::exponent_overflow;
      return false;
    }
    stack.push_double(d);
    return true;
  }
  bool on_bool(bool b, boost::system::error_code&) {
    stack.push_bool(b);
    return true;
  }
  bool on_null(boost::system::error_code&) {
    stack.push_null();
    return true;
  }
  bool on_comment_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_comment(std::string_view, boost::system::error_code&) { return true; }

  [[nodiscard]] std::string_view in_text(std::string_view s) const {
    return in_parts ? std::string_view() : view_in_text(text, s);
  }

  // Shows `visit` the pending top-level member whose value was not a string.
  void flush_member() {
    if (has_key) (*visit)(key, {});
    has_key = false;
  }

  boost::json::value_stack stack;
  bool out_of_range = false;  // a number was too large for a double

  // Top-level members for `visit` (when set): `key` is the last one's, pending until its
  // value is known. `in_parts`: the string being read came in parts (escapes).
  const MemberVisitor* visit = nullptr;
  std::string_view text;
  int depth = 0;
  std::string_view key;
  bool has_key = false;
  bool in_parts = false;
};

core::Result<boost::json::value> parse_visiting(std::string_view text,
                                                boost::json::storage_ptr storage,
                                                const MemberVisitor* visit);

}  // namespace

std::string_view view_in_text(std::string_view text, std::string_view s) {
  const auto at = reinterpret_cast<std::uintptr_t>(s.data());
  const auto begin = reinterpret_cast<std::uintptr_t>(text.data());
  if (at <= begin || at + s.size() >= begin + text.size()) return {};
  // Read through `text`, which the view is now known to lie in.
  const std::size_t offset = at - begin;
  if (text[offset - 1] != '"' || text[offset + s.size()] != '"') return {};
  return text.substr(offset, s.size());
}

core::Result<boost::json::value> parse(std::string_view text) { return parse(text, {}); }

core::Result<boost::json::value> parse(std::string_view text, boost::json::storage_ptr storage) {
  return parse_visiting(text, std::move(storage), nullptr);
}

namespace {

// The fast reader's tree of `text`, or nullopt when it was unsure (then nothing it built
// is kept, though it may have used some of `storage`).
std::optional<boost::json::value> read_fast(std::string_view text,
                                            const boost::json::storage_ptr& storage,
                                            const MemberVisitor* visit) {
  alignas(boost::json::value) unsigned char scratch[2048];
  TreeBuilder builder(boost::json::storage_ptr(), scratch, sizeof scratch);
  builder.stack.reset(storage);
  builder.text = text;
  // `visit` sees the members only once the reader is sure, so that none is shown twice when
  // basic_parser reads the text again. The views are into `text` (or null).
  std::vector<std::pair<std::string_view, std::string_view>> members;
  const MemberVisitor collect = [&](std::string_view key, std::string_view value) {
    members.emplace_back(key, value);
  };
  if (visit != nullptr) builder.visit = &collect;
  if (!detail::FastReader<TreeBuilder>(builder, text).read()) return std::nullopt;
  for (const auto& [key, value] : members) (*visit)(key, value);
  return builder.stack.release();
}

core::Result<boost::json::value> parse_visiting(std::string_view text,
                                                boost::json::storage_ptr storage,
                                                const MemberVisitor* visit) {
  if (auto fast = read_fast(text, storage, visit)) return std::move(*fast);
  // The parser's working stack lives here, so that only the result is allocated.
  alignas(boost::json::value) unsigned char scratch[2048];
  boost::json::basic_parser<TreeBuilder> p({}, boost::json::storage_ptr(), scratch, sizeof scratch);
  p.handler().stack.reset(std::move(storage));
  p.handler().visit = visit;
  p.handler().text = text;
  boost::system::error_code ec;
  std::size_t consumed = p.write_some(true, text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) {
    // Trailing bytes after a complete value: only whitespace is allowed.
    for (std::size_t i = consumed; i < text.size(); ++i) {
      char c = text[i];
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
        return fail(ErrorCode::kInvalidArgument,
                    "not valid JSON at byte " + std::to_string(i) + ": extra data after the value");
      }
    }
  }
  if (!ec) p.write_some(false, nullptr, 0, ec);
  if (ec) {
    // The byte where the parser stopped: just past an out-of-range number.
    return fail(ErrorCode::kInvalidArgument,
                "not valid JSON at byte " + std::to_string(consumed) + ": " +
                    (p.handler().out_of_range ? "number out of range" : ec.message()));
  }
  return p.handler().stack.release();
}

core::Result<boost::json::object> object_of(core::Result<boost::json::value> v) {
  if (!v) return std::unexpected(std::move(v.error()));
  if (!v->is_object()) {
    return fail(ErrorCode::kInvalidArgument,
                "body must be a JSON object, got " + std::string(kind_name(*v)));
  }
  return std::move(v->as_object());
}

}  // namespace

core::Result<boost::json::object> parse_object(std::string_view text) {
  return parse_object(text, {});
}

namespace {

// The high bit of each of the 8 bytes at `p` that is a quote, a backslash or a control
// character (bytes above a flagged one may be flagged falsely; the caller looks again).
std::uint64_t needs_escape8(const char* p) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  std::uint64_t v = 0;
  std::memcpy(&v, p, 8);
  const auto zero_byte = [](std::uint64_t x) { return (x - kOnes) & ~x; };
  return (zero_byte(v ^ (kOnes * '"')) | zero_byte(v ^ (kOnes * '\\')) |
          ((v - kOnes * 0x20) & ~v)) &
         kHigh;
}

// One character escaped as boost::json::serializer escapes it.
void append_escaped(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  char short_form = 0;
  switch (c) {
    case '"':
    case '\\':
      short_form = static_cast<char>(c);
      break;
    case '\b':
      short_form = 'b';
      break;
    case '\t':
      short_form = 't';
      break;
    case '\n':
      short_form = 'n';
      break;
    case '\f':
      short_form = 'f';
      break;
    case '\r':
      short_form = 'r';
      break;
    default:
      break;
  }
  if (short_form != 0) {
    const char pair[] = {'\\', short_form};
    out.append(pair, 2);
    return;
  }
  const char unicode[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
  out.append(unicode, sizeof unicode);
}

void append_string(std::string& out, std::string_view s) {
  out += '"';
  const char* p = s.data();
  const char* const end = p + s.size();
  const char* run = p;  // not yet copied
  while (p < end) {
    if (end - p >= 8) {
      const std::uint64_t mask = needs_escape8(p);
      if (mask == 0) {
        p += 8;
        continue;
      }
      p += detail::first_flagged_byte(mask);
    }
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20) {
      out.append(run, static_cast<std::size_t>(p - run));
      append_escaped(out, c);
      run = p + 1;
    }
    ++p;
  }
  out.append(run, static_cast<std::size_t>(p - run));
  out += '"';
}

// A number as boost::json::serializer formats it.
void append_number(std::string& out, const boost::json::value& v) {
  char digits[boost::json::detail::max_number_chars + 1];
  unsigned n = 0;
  if (v.is_int64()) n = boost::json::detail::format_int64(digits, v.get_int64());
  if (v.is_uint64()) n = boost::json::detail::format_uint64(digits, v.get_uint64());
  if (v.is_double()) n = boost::json::detail::format_double(digits, v.get_double());
  out.append(digits, n);
}

void append_value(std::string& out, const boost::json::value& v);

void append_object(std::string& out, const boost::json::object& o) {
  out += '{';
  bool first = true;
  for (const auto& member : o) {
    if (!first) out += ',';
    first = false;
    append_string(out, member.key());
    out += ':';
    append_value(out, member.value());
  }
  out += '}';
}

void append_value(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::object:
      append_object(out, v.get_object());
      return;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& element : v.get_array()) {
        if (!first) out += ',';
        first = false;
        append_value(out, element);
      }
      out += ']';
      return;
    }
    case boost::json::kind::string:
      append_string(out, v.get_string());
      return;
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    default:
      append_number(out, v);
  }
}

}  // namespace

std::string serialize(const boost::json::value& v) {
  std::string out;
  out.reserve(256);
  append_value(out, v);
  return out;
}

std::string serialize(const boost::json::object& o) {
  std::string out;
  out.reserve(256);
  append_object(out, o);
  return out;
}

core::Result<boost::json::object> parse_object(std::string_view text,
                                               boost::json::storage_ptr storage) {
  return object_of(parse_visiting(text, std::move(storage), nullptr));
}

core::Result<boost::json::object> parse_object(std::string_view text,
                                               boost::json::storage_ptr storage,
                                               const MemberVisitor& visit) {
  return object_of(parse_visiting(text, std::move(storage), &visit));
}

core::Result<std::optional<std::string_view>> optional_string(const boost::json::object& obj,
                                                              std::string_view key,
                                                              std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return std::optional<std::string_view>{};
  if (!it->value().is_string()) return wrong_type(where, key, "a string", it->value());
  const auto& s = it->value().get_string();
  return std::optional<std::string_view>(std::string_view(s.data(), s.size()));
}

core::Result<std::string_view> required_string(const boost::json::object& obj, std::string_view key,
                                               std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) {
    return fail(ErrorCode::kInvalidArgument, "`" + join_path(where, key) + "` is required");
  }
  if (!it->value().is_string()) return wrong_type(where, key, "a string", it->value());
  const auto& s = it->value().get_string();
  return std::string_view(s.data(), s.size());
}

core::Result<std::optional<double>> optional_number(const boost::json::object& obj,
                                                    std::string_view key, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return std::optional<double>{};
  const auto& v = it->value();
  if (v.is_double()) return std::optional<double>(v.get_double());
  if (v.is_int64()) return std::optional<double>(static_cast<double>(v.get_int64()));
  if (v.is_uint64()) return std::optional<double>(static_cast<double>(v.get_uint64()));
  return wrong_type(where, key, "a number", v);
}

core::Result<std::optional<std::int64_t>> optional_int(const boost::json::object& obj,
                                                       std::string_view key,
                                                       std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return std::optional<std::int64_t>{};
  const auto& v = it->value();
  if (v.is_int64()) return std::optional<std::int64_t>(v.get_int64());
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return std::optional<std::int64_t>(static_cast<std::int64_t>(v.get_uint64()));
  }
  if (v.is_double() &&
      v.get_double() == static_cast<double>(static_cast<std::int64_t>(v.get_double()))) {
    return std::optional<std::int64_t>(static_cast<std::int64_t>(v.get_double()));
  }
  return wrong_type(where, key, "an integer", v);
}

core::Result<std::optional<bool>> optional_bool(const boost::json::object& obj,
                                                std::string_view key, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return std::optional<bool>{};
  if (!it->value().is_bool()) return wrong_type(where, key, "a boolean", it->value());
  return std::optional<bool>(it->value().get_bool());
}

core::Result<const boost::json::object*> optional_object(const boost::json::object& obj,
                                                         std::string_view key,
                                                         std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return nullptr;
  if (!it->value().is_object()) return wrong_type(where, key, "an object", it->value());
  return &it->value().get_object();
}

core::Result<const boost::json::array*> optional_array(const boost::json::object& obj,
                                                       std::string_view key,
                                                       std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return nullptr;
  if (!it->value().is_array()) return wrong_type(where, key, "an array", it->value());
  return &it->value().get_array();
}

std::string join_path(std::string_view where, std::string_view key) {
  if (where.empty()) return std::string(key);
  std::string out(where);
  out.push_back('.');
  out.append(key);
  return out;
}

std::string index_path(std::string_view where, std::size_t i) {
  std::string out(where);
  out.push_back('[');
  out.append(std::to_string(i));
  out.push_back(']');
  return out;
}

std::string_view kind_name(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "unknown";
}

}  // namespace backstop::json
