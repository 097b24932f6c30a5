#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <vector>

#include "validation/pattern.h"
#include "validation/validator.h"
#include "validation/valijson_re2.h"

namespace backstop::validation {
namespace {

namespace bj = boost::json;

// The message of checking `instance` against `schema`, both given as JSON text.
std::string check(SchemaCache& cache, std::string_view schema, std::string_view instance) {
  return cache.check(bj::parse(schema), bj::parse(instance));
}

constexpr std::string_view kWeather = R"({
  "type": "object",
  "properties": {
    "city": {"type": "string"},
    "unit": {"type": "string", "enum": ["c", "f"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 14}
  },
  "required": ["city"],
  "additionalProperties": false
})";

TEST(SchemaCacheTest, ValidInstanceGivesEmptyMessage) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, kWeather, R"({"city": "Paris", "unit": "c", "days": 3})"), "");
}

TEST(SchemaCacheTest, EnumFailureListsTheValues) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, kWeather, R"({"city": "Paris", "unit": "kelvin"})"),
            "/unit must be one of [c, f]");
}

TEST(SchemaCacheTest, TypeFailureNamesTheType) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, kWeather, R"({"city": "Paris", "days": "three"})"),
            "/days must be integer");
  EXPECT_EQ(check(cache, kWeather, R"([1])"), "/ must be object");
}

TEST(SchemaCacheTest, MissingRequiredPropertyAtTheRootHasNoPointer) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, kWeather, R"({"unit": "c"})"), "missing required property city");
}

TEST(SchemaCacheTest, MissingRequiredPropertyBelowTheRootNamesItsObject) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, R"({"properties": {"address": {"type": "object", "required": ["zip"]}}})",
                  R"({"address": {}})"),
            "/address missing required property zip");
}

TEST(SchemaCacheTest, BoundsAreShownAsWrittenInTheSchema) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, kWeather, R"({"city": "Paris", "days": 0})"), "/days must be >= 1");
  EXPECT_EQ(check(cache, kWeather, R"({"city": "Paris", "days": 15})"), "/days must be <= 14");
  EXPECT_EQ(check(cache, R"({"type": "number", "exclusiveMinimum": 0.5})", "0.5"),
            "/ must be > 0.5");
}

TEST(SchemaCacheTest, UnexpectedPropertyIsNamedByItsPointer) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, kWeather, R"({"city": "Paris", "extra": 1})"), "/extra is not allowed");
}

TEST(SchemaCacheTest, ArrayItemsAndEscapedKeysGiveJsonPointers) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, R"({"properties": {"tags": {"items": {"type": "string"}}}})",
                  R"({"tags": ["a", 2]})"),
            "/tags/1 must be string");
  EXPECT_EQ(check(cache, R"({"properties": {"a/b~c": {"type": "boolean"}}})", R"({"a/b~c": 1})"),
            "/a~1b~0c must be boolean");
}

TEST(SchemaCacheTest, LengthPatternConstAndTypeLists) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, R"({"maxLength": 3})", R"("abcd")"), "/ must be at most 3 characters");
  EXPECT_EQ(check(cache, R"({"minItems": 2})", "[1]"), "/ must have at least 2 items");
  EXPECT_EQ(check(cache, R"({"pattern": "^[a-z]+$"})", R"("ABC")"),
            "/ must match pattern ^[a-z]+$");
  EXPECT_EQ(check(cache, R"({"const": "yes"})", R"("no")"), R"(/ must be "yes")");
  EXPECT_EQ(check(cache, R"({"type": ["string", "null"]})", "1"), "/ must be string or null");
}

TEST(SchemaCacheTest, LocalRefsAreFollowedForTheMessage) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, R"({
    "definitions": {"label": {"enum": ["spam", "ham"]}},
    "properties": {"label": {"$ref": "#/definitions/label"}}
  })",
                  R"({"label": "eggs"})"),
            "/label must be one of [spam, ham]");
}

TEST(SchemaCacheTest, DeepestErrorWins) {
  SchemaCache cache;
  // Both the missing `city` (at the root) and `/days` fail; the deeper one is reported.
  EXPECT_EQ(check(cache, kWeather, R"({"days": true})"), "/days must be integer");
}

TEST(SchemaCacheTest, FailedAnyOfIsReportedAsTheCombinator) {
  SchemaCache cache;
  EXPECT_EQ(
      check(cache, R"({"properties": {"a": {"anyOf": [{"enum": [1, 2]}, {"type": "string"}]}}})",
            R"({"a": 3})"),
      "/a must match a schema in anyOf");
}

TEST(SchemaCacheTest, SameSchemaTextCompilesOnce) {
  SchemaCache cache;
  bj::value first = bj::parse(kWeather);
  bj::value second = bj::parse(kWeather);  // an equal schema from another request
  // Failing values go to the compiled schema (a pass of a plain schema needs none).
  EXPECT_EQ(cache.check(first, bj::parse(R"({"city": 1})")), "/city must be string");
  EXPECT_EQ(cache.check(second, bj::parse(R"({"city": 2})")), "/city must be string");
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.check(bj::parse(R"({"type": "string", "pattern": "^x"})"), bj::parse(R"("x")")),
            "");
  EXPECT_EQ(cache.size(), 2u);
}

// A cached schema must not point into the memory of the request it came from: that
// request's arena is freed before the next request with the same schema arrives.
TEST(SchemaCacheTest, CachedSchemaOutlivesTheRequestsArena) {
  SchemaCache cache;
  // Not plain (a number in the enum), so valijson compiles it; long strings, so that they
  // are allocated from the arena rather than kept inside the value.
  constexpr std::string_view kSchema =
      R"({"enum": ["a long enum value number one", "another long enum value two", 1]})";
  std::vector<unsigned char> buffer(16384);
  {
    bj::monotonic_resource arena(buffer.data(), buffer.size());
    bj::value schema = bj::parse(kSchema, &arena);
    EXPECT_NE(cache.check(schema, bj::parse(R"("other")")), "");
  }
  std::fill(buffer.begin(), buffer.end(), 'x');  // the request is gone; its memory reused
  EXPECT_EQ(cache.check(bj::parse(kSchema), bj::parse(R"("another long enum value two")")), "");
  EXPECT_EQ(cache.size(), 1u);
}

TEST(SchemaCacheTest, PlainSchemaPassesWithoutCompiling) {
  SchemaCache cache;
  EXPECT_EQ(check(cache, kWeather, R"({"city": "Paris", "unit": "c", "days": 3})"), "");
  EXPECT_EQ(cache.size(), 0u);
}

// The quick path must never call valid what valijson rejects: every pair below is checked
// by both, and their verdicts must agree.
TEST(SchemaCacheTest, QuickPathAgreesWithValijson) {
  const std::vector<std::pair<std::string_view, std::vector<std::string_view>>> cases = {
      {kWeather,
       {R"({"city": "Paris"})", R"({"city": "Paris", "unit": "c", "days": 3})",
        R"({"city": "Paris", "unit": "kelvin"})", R"({"city": "Paris", "days": 3.0})",
        R"({"city": "Paris", "days": 0})", R"({"city": "Paris", "days": 15})",
        R"({"city": "Paris", "days": 18446744073709551615})", R"({"city": "Paris", "x": 1})",
        R"({"unit": "c"})", R"("Paris")", "[]", "null"}},
      {R"({"type": ["string", "null"], "minLength": 2, "maxLength": 3})",
       {R"("ab")", R"("abcd")", R"("a")", R"("é€")", R"("é€😀")", "null", "1", R"("a\u0000b")"}},
      {R"({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10})",
       {"0", "0.5", "10", "9.99", "-1", "1e400", R"("5")"}},
      {R"({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2})",
       {"[1]", "[1, 2, 3]", "[]", R"([1, "2"])", "[1.5]", R"({"a": 1})"}},
      {R"({"properties": {"a": {"const": "x"}, "b": true, "c": false},
           "additionalProperties": {"type": "boolean"}})",
       {R"({"a": "x"})", R"({"a": "y"})", R"({"b": [1]})", R"({"c": 1})", R"({"d": true})",
        R"({"d": 1})", "7"}},
      {R"({"type": "object", "required": [], "title": "t", "description": "d", "default": {},
           "examples": [{}], "$comment": "c", "properties": {}})",
       {"{}", R"({"a": 1})", "1"}},
      {R"({"properties": {"a": {"type": "string", "format": "date"}}})",
       {R"({"a": "2024-01-02"})", R"({"a": "yesterday"})"}},
      {R"({"type": "integer", "minimum": 1.5, "maximum": 3})", {"1", "2", "3", "4"}},
      {R"({"enum": ["a", "b"], "type": "string"})", {R"("a")", R"("c")", "1"}},
  };
  for (const auto& [schema_text, instances] : cases) {
    const bj::value schema = bj::parse(schema_text);
    valijson::Schema compiled;
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::BoostJsonAdapter schema_adapter(schema);
    parser.populateSchema(schema_adapter, compiled);
    for (std::string_view instance_text : instances) {
      boost::system::error_code ec;
      const bj::value instance = bj::parse(instance_text, ec);
      ASSERT_FALSE(ec) << instance_text;
      valijson::Validator validator;
      valijson::adapters::BoostJsonAdapter target(instance);
      const bool expected = validator.validate(compiled, target, nullptr);
      SchemaCache cache;
      EXPECT_EQ(cache.validate(schema, instance).kind == SchemaOutcome::Kind::kValid, expected)
          << schema_text << " with " << instance_text;
    }
  }
}

TEST(SchemaCacheTest, InvalidSchemaIsAMessageAndIsCached) {
  SchemaCache cache;
  bj::value schema = bj::parse(R"({"type": 12})");
  std::string first = cache.check(schema, bj::parse("1"));
  EXPECT_EQ(first, "schema is invalid: JSON value is not a string");
  EXPECT_EQ(cache.check(schema, bj::parse("1"), "get_weather").substr(0, 34),
            "schema of get_weather is invalid: ");
  EXPECT_EQ(cache.size(), 1u);

  SchemaOutcome outcome = cache.validate(schema, bj::parse("1"));
  EXPECT_EQ(outcome.kind, SchemaOutcome::Kind::kInvalidSchema);
  EXPECT_FALSE(outcome.message.empty());
}

TEST(SchemaCacheTest, BadRegexIsAnInvalidSchemaNotACrash) {
  SchemaCache cache;
  bj::value schema = bj::parse(R"({"type": "string", "pattern": "(["})");
  SchemaOutcome outcome = cache.validate(schema, bj::parse(R"("x")"));
  EXPECT_EQ(outcome.kind, SchemaOutcome::Kind::kInvalidSchema);
  EXPECT_EQ(cache.validate(schema, bj::parse(R"("y")")).kind, SchemaOutcome::Kind::kInvalidSchema);
}

TEST(SchemaCacheTest, CatastrophicPatternOnALongStringIsAPlainMismatch) {
  SchemaCache cache;
  // Exponential for a backtracking engine; RE2 answers in one pass over the text.
  const bj::value schema = bj::parse(R"({"type": "string", "pattern": "^(a+)+$"})");
  const bj::value instance(std::string(100'000, 'a') + "!");
  SchemaOutcome outcome = cache.validate(schema, instance);
  EXPECT_EQ(outcome.kind, SchemaOutcome::Kind::kMismatch);
  EXPECT_EQ(outcome.message, "/ must match pattern ^(a+)+$");
  EXPECT_EQ(cache.validate(schema, bj::value(std::string(100'000, 'a'))).kind,
            SchemaOutcome::Kind::kValid);
}

TEST(SchemaCacheTest, PatternOnAMegabyteStringDoesNotExhaustTheStack) {
  SchemaCache cache;
  // std::regex recursed once per character here and overflowed the stack.
  const bj::value schema = bj::parse(R"({"type": "string", "pattern": "^(a|b)*$"})");
  EXPECT_EQ(cache.validate(schema, bj::value(std::string(1 << 20, 'b'))).kind,
            SchemaOutcome::Kind::kValid);
}

TEST(SchemaCacheTest, LookaheadPatternIsAnInvalidSchema) {
  SchemaCache cache;
  const bj::value schema = bj::parse(R"json({"type": "string", "pattern": "^(?=x)"})json");
  SchemaOutcome outcome = cache.validate(schema, bj::parse(R"("x")"));
  EXPECT_EQ(outcome.kind, SchemaOutcome::Kind::kInvalidSchema);
  EXPECT_EQ(outcome.message,
            "pattern \"^(?=x)\" does not compile: invalid perl operator: (?= (patterns run on "
            "RE2: no lookaround, no backreferences)");
}

TEST(SchemaCacheTest, BackreferenceInAPatternPropertyIsAnInvalidSchema) {
  SchemaCache cache;
  const bj::value schema =
      bj::parse(R"({"type": "object", "patternProperties": {"^(a)\\1$": {"type": "integer"}}})");
  EXPECT_EQ(cache.validate(schema, bj::parse(R"({"aa": 1})")).kind,
            SchemaOutcome::Kind::kInvalidSchema);
}

TEST(SchemaCacheTest, PatternPropertiesMatchKeysWithRE2) {
  SchemaCache cache;
  const bj::value schema = bj::parse(R"({"type": "object",
    "patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": false})");
  EXPECT_EQ(cache.validate(schema, bj::parse(R"({"aaa": 1})")).kind, SchemaOutcome::Kind::kValid);
  EXPECT_EQ(cache.check(schema, bj::parse(R"({"aaa": "x"})")), "/aaa has the wrong type");
  bj::object long_key;
  long_key[std::string(50'000, 'a') + "!"] = 1;
  EXPECT_EQ(cache.validate(schema, long_key).kind, SchemaOutcome::Kind::kMismatch);
}

TEST(SchemaCacheTest, PropertyNamesPatternRunsOnRE2) {
  SchemaCache cache;
  const bj::value schema =
      bj::parse(R"({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}})");
  EXPECT_EQ(cache.validate(schema, bj::parse(R"({"abc": 1})")).kind, SchemaOutcome::Kind::kValid);
  EXPECT_EQ(cache.validate(schema, bj::parse(R"({"ABC": 1})")).kind,
            SchemaOutcome::Kind::kMismatch);
}

TEST(SchemaCacheTest, FormatChecksDatesAndIgnoresNonStrings) {
  SchemaCache cache;
  const bj::value schema = bj::parse(R"({"format": "date-time"})");
  EXPECT_EQ(cache.validate(schema, bj::parse(R"("2024-01-02T03:04:05Z")")).kind,
            SchemaOutcome::Kind::kValid);
  EXPECT_EQ(cache.check(schema, bj::parse(R"("2024-02-30T03:04:05Z")")),
            "/ string should be a valid date-time");
  EXPECT_EQ(cache.check(schema, bj::parse(R"("tomorrow")")),
            "/ string should be a valid date-time");
  // valijson 1.0 threw on a number here, which read as an invalid schema.
  EXPECT_EQ(cache.validate(schema, bj::parse("12")).kind, SchemaOutcome::Kind::kValid);
}

TEST(SchemaCacheTest, ValidateTellsMismatchFromValid) {
  SchemaCache cache;
  bj::value schema = bj::parse(kWeather);
  EXPECT_EQ(cache.validate(schema, bj::parse(R"({"city": "a"})")).kind,
            SchemaOutcome::Kind::kValid);
  SchemaOutcome bad = cache.validate(schema, bj::parse(R"({"city": 1})"));
  EXPECT_EQ(bad.kind, SchemaOutcome::Kind::kMismatch);
  EXPECT_EQ(bad.message, "/city must be string");
}

TEST(SchemaCacheTest, CapacityBoundsTheCache) {
  SchemaCache cache(2);
  for (std::string_view schema :
       {R"({"type": "string"})", R"({"type": "integer"})", R"({"type": "boolean"})"}) {
    EXPECT_EQ(cache.check(bj::parse(schema), bj::parse("true")).empty(),
              schema == R"({"type": "boolean"})");
  }
  EXPECT_EQ(cache.size(), 2u);
}

// Three schemas valijson compiles (a number in an enum keeps them off the quick path).
const bj::value kFirst = bj::parse(R"({"enum": [1, "a"]})");
const bj::value kSecond = bj::parse(R"({"enum": [2, "b"]})");
const bj::value kThird = bj::parse(R"({"enum": [3, "c"]})");

SchemaCacheLimits byte_limit(std::size_t max_bytes) {
  SchemaCacheLimits limits;
  limits.max_bytes = max_bytes;
  return limits;
}

TEST(SchemaCacheTest, CountBoundEvictsTheLeastRecentlyUsed) {
  SchemaCache cache(2);
  EXPECT_EQ(cache.validate(kFirst, bj::parse("1")).kind, SchemaOutcome::Kind::kValid);
  EXPECT_EQ(cache.validate(kSecond, bj::parse("2")).kind, SchemaOutcome::Kind::kValid);
  EXPECT_EQ(cache.validate(kFirst, bj::parse("1")).kind, SchemaOutcome::Kind::kValid);
  EXPECT_EQ(cache.validate(kThird, bj::parse("3")).kind, SchemaOutcome::Kind::kValid);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.cached(kFirst));
  EXPECT_FALSE(cache.cached(kSecond));
  EXPECT_TRUE(cache.cached(kThird));
}

TEST(SchemaCacheTest, ByteBoundEvictsTheLeastRecentlyUsed) {
  SchemaCache probe;
  (void)probe.validate(kFirst, bj::parse("1"));
  const std::size_t one = probe.bytes();
  ASSERT_GT(one, 0u);

  // Room for two of these schemas (they are the same size), not three.
  SchemaCache cache(byte_limit(2 * one + one / 2));
  (void)cache.validate(kFirst, bj::parse("1"));
  (void)cache.validate(kSecond, bj::parse("1"));
  (void)cache.validate(kFirst, bj::parse("1"));
  EXPECT_EQ(cache.bytes(), 2 * one);
  (void)cache.validate(kThird, bj::parse("1"));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.bytes(), 2 * one);
  EXPECT_TRUE(cache.cached(kFirst));
  EXPECT_FALSE(cache.cached(kSecond));
  EXPECT_TRUE(cache.cached(kThird));
}

TEST(SchemaCacheTest, EachPatternIsChargedItsMemoryBound) {
  SchemaCache cache;
  (void)cache.validate(bj::parse(R"({"type": "string", "pattern": "^a", "enum": [1, "a"]})"),
                       bj::parse(R"("a")"));
  EXPECT_GT(cache.bytes(), kPatternMaxMem);
  EXPECT_LT(cache.bytes(), 2 * kPatternMaxMem);
}

TEST(SchemaCacheTest, ASchemaOverTheByteBoundIsKeptAloneUntilTheNext) {
  SchemaCache cache(byte_limit(1));
  EXPECT_EQ(cache.validate(kFirst, bj::parse("2")).kind, SchemaOutcome::Kind::kMismatch);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.validate(kSecond, bj::parse("1")).kind, SchemaOutcome::Kind::kMismatch);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.cached(kSecond));
}

TEST(SchemaCacheTest, InvalidSchemaIsKeptForItsMessageOnly) {
  SchemaCache cache;
  const bj::value invalid =
      bj::parse(R"json({"type": "string", "pattern": "(?=a)", "enum": [1]})json");
  (void)cache.validate(invalid, bj::parse("1"));
  ASSERT_TRUE(cache.cached(invalid));
  EXPECT_LT(cache.bytes(), 1024u);
}

}  // namespace
}  // namespace backstop::validation
