#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace backstop::json {

// Parses text as one JSON value. On failure the error (kInvalidArgument) says what is
// wrong and at which byte offset: "not valid JSON at byte 17: syntax error".
[[nodiscard]] core::Result<boost::json::value> parse(std::string_view text);
// The same, the result allocated from `storage`.
[[nodiscard]] core::Result<boost::json::value> parse(std::string_view text,
                                                     boost::json::storage_ptr storage);

// The JSON text of `v`, byte for byte what boost::json::serialize writes, but with strings
// copied in runs between the characters that need escaping (Boost.JSON 1.81 copies a string
// one byte at a time after its first escape): for large bodies.
[[nodiscard]] std::string serialize(const boost::json::value& v);
[[nodiscard]] std::string serialize(const boost::json::object& o);

// Parses text that must be a JSON object.
[[nodiscard]] core::Result<boost::json::object> parse_object(std::string_view text);
// The same, the result allocated from `storage`.
[[nodiscard]] core::Result<boost::json::object> parse_object(std::string_view text,
                                                             boost::json::storage_ptr storage);

// Called by parse_object with each top-level member, in order. `key` and `value` view the
// parsed text itself: `value` is the member's string value between its quotes. Either has a
// null data() when the parser did not read it straight from the text (it has escapes), and
// `value` also when the member's value is not a string.
using MemberVisitor = std::function<void(std::string_view key, std::string_view value)>;
// parse_object that also shows `visit` each top-level member where it stands in `text`.
[[nodiscard]] core::Result<boost::json::object> parse_object(std::string_view text,
                                                             boost::json::storage_ptr storage,
                                                             const MemberVisitor& visit);

// `s`, a key or string a boost::json::basic_parser handler was given while parsing `text`
// whole, as it stands in `text` between its quotes; a null view when the parser gave it from
// its own buffer (escapes). A string that came in parts must not be asked about.
[[nodiscard]] std::string_view view_in_text(std::string_view text, std::string_view s);

// Strict field readers. `where` names the enclosing path for the message
// ("messages[2]"); a missing optional field is std::nullopt, a field of the wrong
// type is a kInvalidArgument error naming the path and the expected type.
[[nodiscard]] core::Result<std::optional<std::string_view>> optional_string(
    const boost::json::object& obj, std::string_view key, std::string_view where);
[[nodiscard]] core::Result<std::string_view> required_string(const boost::json::object& obj,
                                                             std::string_view key,
                                                             std::string_view where);
[[nodiscard]] core::Result<std::optional<double>> optional_number(const boost::json::object& obj,
                                                                  std::string_view key,
                                                                  std::string_view where);
[[nodiscard]] core::Result<std::optional<std::int64_t>> optional_int(const boost::json::object& obj,
                                                                     std::string_view key,
                                                                     std::string_view where);
[[nodiscard]] core::Result<std::optional<bool>> optional_bool(const boost::json::object& obj,
                                                              std::string_view key,
                                                              std::string_view where);
[[nodiscard]] core::Result<const boost::json::object*> optional_object(
    const boost::json::object& obj, std::string_view key, std::string_view where);
[[nodiscard]] core::Result<const boost::json::array*> optional_array(const boost::json::object& obj,
                                                                     std::string_view key,
                                                                     std::string_view where);

// "where.key", or "key" when where is empty.
[[nodiscard]] std::string join_path(std::string_view where, std::string_view key);
// "where[i]".
[[nodiscard]] std::string index_path(std::string_view where, std::size_t i);

// The JSON type name of a value, for messages: "string", "object", "null" ...
[[nodiscard]] std::string_view kind_name(const boost::json::value& v);

}  // namespace backstop::json
