#include "validation/valijson_re2.h"

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "validation/pattern.h"

namespace valijson {
namespace {

using backstop::validation::ActivePatterns;

template <typename Adapter>
bool pattern_holds(const Adapter& target, bool strict, ValidationResults* results,
                   const std::vector<std::string>& context,
                   const constraints::PatternConstraint& constraint) {
  if ((strict && !target.isString()) || !target.maybeString()) return true;
  if (ActivePatterns::search(constraint.getPattern<std::string::allocator_type>(),
                             target.asString())) {
    return true;
  }
  if (results != nullptr) {
    results->pushError(context, "Failed to match regex specified by 'pattern' constraint.");
  }
  return false;
}

// Whether the target passes `format`'s own check; `month` and `day` are left for valijson's
// range check when it is a date.
template <typename Adapter>
bool format_holds(const Adapter& target, bool strict, ValidationResults* results,
                  const std::vector<std::string>& context,
                  const constraints::FormatConstraint& constraint, int& month, int& day) {
  month = 0;
  day = 0;
  // valijson 1.0 reads every target as a string here, and throws on a number; JSON Schema
  // applies `format` to strings only.
  if ((strict && !target.isString()) || !target.maybeString()) return true;
  const std::string text = target.asString();
  const std::string_view failure =
      backstop::validation::check_format(constraint.getFormat(), text, month, day);
  if (failure.empty()) return true;
  if (results != nullptr) results->pushError(context, std::string(failure));
  return false;
}

// valijson's patternProperties step (validation_visitor.hpp), with RE2 for the key match.
template <typename Adapter>
bool pattern_properties_hold(const typename Adapter::Object& object,
                             const std::vector<std::string>& context, bool continue_on_success,
                             bool continue_on_failure, bool continue_if_unmatched, bool strict,
                             ValidationResults* results, std::set<std::string>* matched,
                             bool* validated,
                             std::unordered_map<std::string, std::regex>& unused_cache,
                             const constraints::PropertiesConstraint::String& pattern,
                             const Subschema* subschema) {
  const std::string_view source(pattern.data(), pattern.size());
  bool match_found = false;
  for (const typename Adapter::ObjectMember member : object) {
    if (!ActivePatterns::search(source, member.first)) continue;
    match_found = true;
    if (matched != nullptr) matched->insert(member.first);
    std::vector<std::string> member_context = context;
    member_context.push_back("[" + member.first + "]");
    ValidationVisitor<Adapter> visitor(member.second, member_context, strict, results,
                                       unused_cache);
    if (visitor.validateSchema(*subschema)) continue;
    if (results != nullptr) {
      results->pushError(context, "Failed to validate against schema associated with pattern '" +
                                      std::string(source) + "'.");
    }
    if (validated != nullptr) *validated = false;
    if (!continue_on_failure) return false;
  }
  if (!match_found && !continue_if_unmatched) return false;
  return continue_on_success;
}

}  // namespace

template <>
bool ValidationVisitor<adapters::BoostJsonAdapter>::visit(
    const constraints::PatternConstraint& constraint) {
  return pattern_holds(m_target, m_strictTypes, m_results, m_context, constraint);
}

template <>
bool ValidationVisitor<adapters::StdStringAdapter>::visit(
    const constraints::PatternConstraint& constraint) {
  return pattern_holds(m_target, m_strictTypes, m_results, m_context, constraint);
}

template <>
bool ValidationVisitor<adapters::BoostJsonAdapter>::visit(
    const constraints::FormatConstraint& constraint) {
  int month = 0;
  int day = 0;
  if (!format_holds(m_target, m_strictTypes, m_results, m_context, constraint, month, day)) {
    return false;
  }
  return month == 0 || validate_date_range(month, day);
}

template <>
bool ValidationVisitor<adapters::StdStringAdapter>::visit(
    const constraints::FormatConstraint& constraint) {
  int month = 0;
  int day = 0;
  if (!format_holds(m_target, m_strictTypes, m_results, m_context, constraint, month, day)) {
    return false;
  }
  return month == 0 || validate_date_range(month, day);
}

template <>
template <>
bool ValidationVisitor<adapters::BoostJsonAdapter>::ValidatePatternPropertySubschemas::operator()<
    constraints::PropertiesConstraint::String>(
    const constraints::PropertiesConstraint::String& pattern, const Subschema* subschema) const {
  return pattern_properties_hold<adapters::BoostJsonAdapter>(
      m_object, m_context, m_continueOnSuccess, m_continueOnFailure, m_continueIfUnmatched,
      m_strictTypes, m_results, m_propertiesMatched, m_validated, m_regexesCache, pattern,
      subschema);
}

template <>
template <>
bool ValidationVisitor<adapters::StdStringAdapter>::ValidatePatternPropertySubschemas::operator()<
    constraints::PropertiesConstraint::String>(
    const constraints::PropertiesConstraint::String& pattern, const Subschema* subschema) const {
  return pattern_properties_hold<adapters::StdStringAdapter>(
      m_object, m_context, m_continueOnSuccess, m_continueOnFailure, m_continueIfUnmatched,
      m_strictTypes, m_results, m_propertiesMatched, m_validated, m_regexesCache, pattern,
      subschema);
}

}  // namespace valijson
