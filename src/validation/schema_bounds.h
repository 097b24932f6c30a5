#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <expected>
#include <string>

#include "validation/validator.h"

namespace backstop::validation {

// What a schema within its limits is made of.
struct SchemaShape {
  std::size_t nodes = 0;     // JSON values in the schema
  std::size_t patterns = 0;  // `pattern`s and `patternProperties` keys
};

// The shape of `schema`, or why it is past `limits`: too deep, too many values, a pattern
// too long or too many of them, a `$ref` that is not local ("#..."), a `$ref` cycle that
// applies a schema to the same value again (valijson would recurse until the stack
// overflows), or references that expand one value's checks past `limits.max_expansion`.
// Walks the schema without recursing deeper than `limits.max_depth`.
[[nodiscard]] std::expected<SchemaShape, std::string> measure(const boost::json::value& schema,
                                                              const SchemaLimits& limits);

}  // namespace backstop::validation
