#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "validation/validator.h"

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
  EXPECT_EQ(cache.check(first, bj::parse(R"({"city": "a"})")), "");
  EXPECT_EQ(cache.check(second, bj::parse(R"({"city": "b"})")), "");
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.check(bj::parse(R"({"type": "string"})"), bj::parse(R"("x")")), "");
  EXPECT_EQ(cache.size(), 2u);
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

}  // namespace
}  // namespace backstop::validation
