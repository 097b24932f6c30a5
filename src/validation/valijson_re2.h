#pragma once

// valijson with every regular expression evaluated by RE2 (validation/pattern.h) instead of
// std::regex, whose backtracking is exponential on some patterns and recursive per character
// of the text. valijson 1.0 hard-codes std::regex in the validation visitor and offers no
// hook, so the three members that use it are explicitly specialized for the adapters
// backstop validates with (Boost.JSON values, and the std::string adapter valijson uses for
// `propertyNames`). Include this header, never <valijson/validator.hpp> directly: every
// translation unit that validates must see these declarations before it instantiates the
// visitor.

#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/adapters/std_string_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validation_visitor.hpp>
#include <valijson/validator.hpp>

namespace valijson {

// `pattern`: a search with the pattern table active on this thread.
template <>
bool ValidationVisitor<adapters::BoostJsonAdapter>::visit(
    const constraints::PatternConstraint& constraint);
template <>
bool ValidationVisitor<adapters::StdStringAdapter>::visit(
    const constraints::PatternConstraint& constraint);

// `format`: date, time and date-time as valijson checks them, with RE2; only strings.
template <>
bool ValidationVisitor<adapters::BoostJsonAdapter>::visit(
    const constraints::FormatConstraint& constraint);
template <>
bool ValidationVisitor<adapters::StdStringAdapter>::visit(
    const constraints::FormatConstraint& constraint);

// `patternProperties`: each key a search with the pattern table active on this thread.
template <>
template <>
bool ValidationVisitor<adapters::BoostJsonAdapter>::ValidatePatternPropertySubschemas::operator()<
    constraints::PropertiesConstraint::String>(
    const constraints::PropertiesConstraint::String& pattern, const Subschema* subschema) const;
template <>
template <>
bool ValidationVisitor<adapters::StdStringAdapter>::ValidatePatternPropertySubschemas::operator()<
    constraints::PropertiesConstraint::String>(
    const constraints::PropertiesConstraint::String& pattern, const Subschema* subschema) const;

}  // namespace valijson
