#include "validation/schema_bounds.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <string>

namespace backstop::validation {
namespace {

namespace bj = boost::json;

// Why `schema` (JSON text) is past the default limits; empty when it is within them.
std::string why(std::string_view schema, const SchemaLimits& limits = {}) {
  auto shape = measure(bj::parse(schema), limits);
  return shape ? std::string() : shape.error();
}

// {"items": {"items": ... {"type": "string"} ...}} with `levels` objects.
bj::value nested_items(int levels) {
  bj::value schema = bj::object{{"type", "string"}};
  for (int i = 1; i < levels; ++i) schema = bj::object{{"items", std::move(schema)}};
  return schema;
}

TEST(SchemaBoundsTest, OrdinaryToolSchemaIsWithinBoundsAndMeasured) {
  auto shape = measure(bj::parse(R"({"type": "object", "properties": {
      "city": {"type": "string", "pattern": "^[A-Z]"},
      "unit": {"enum": ["c", "f"]}}, "required": ["city"]})"),
                       {});
  ASSERT_TRUE(shape.has_value()) << shape.error();
  EXPECT_EQ(shape->nodes, 12u);
  EXPECT_EQ(shape->patterns, 1u);
}

TEST(SchemaBoundsTest, NestingPastTheDepthIsRefused) {
  EXPECT_TRUE(measure(nested_items(64), {}).has_value());
  auto deep = measure(nested_items(65), {});
  ASSERT_FALSE(deep.has_value());
  EXPECT_EQ(deep.error(), "schema nests deeper than 64 levels");
}

TEST(SchemaBoundsTest, TooManyValuesAreRefused) {
  SchemaLimits limits;
  limits.max_nodes = 5;
  EXPECT_EQ(why(R"({"enum": [1, 2, 3]})", limits), "");
  EXPECT_EQ(why(R"({"enum": [1, 2, 3, 4]})", limits), "schema has more than 5 JSON values");
}

TEST(SchemaBoundsTest, LongPatternsAndTooManyPatternsAreRefused) {
  const std::string long_pattern(1001, 'a');
  EXPECT_EQ(why(R"({"pattern": ")" + long_pattern + R"("})"),
            "pattern \"" + std::string(60, 'a') + "...\" is longer than 1000 bytes");
  EXPECT_EQ(why(R"({"patternProperties": {")" + long_pattern + R"(": {}}})").substr(0, 8),
            "pattern ");
  SchemaLimits limits;
  limits.max_patterns = 2;
  EXPECT_EQ(why(R"({"pattern": "a", "patternProperties": {"b": {}, "c": {}}})", limits),
            "schema has more than 2 patterns");
  // A "pattern" inside data is no pattern.
  EXPECT_EQ(why(R"({"enum": [{"pattern": ")" + long_pattern + R"("}]})"), "");
}

TEST(SchemaBoundsTest, RemoteAndOverlongReferencesAreRefused) {
  EXPECT_EQ(why(R"({"$ref": "https://example.com/schema.json"})"),
            "$ref \"https://example.com/schema.json\" is not local: only references into the "
            "schema (\"#/...\") are supported");
  EXPECT_EQ(why(R"({"$id": ")" + std::string(513, 'x') + R"("})").substr(0, 5), "$id \"");
  EXPECT_EQ(why(R"({"id": "urn:)" + std::string(600, 'x') + R"("})").substr(0, 4), "id \"");
  // A property named "id" is no identifier.
  EXPECT_EQ(why(R"({"properties": {"id": {"type": "string"}}})"), "");
}

TEST(SchemaBoundsTest, ReferenceCyclesOnTheSameValueAreRefused) {
  const std::string cycle =
      "$ref cycle: a subschema refers back to itself without descending into the value";
  EXPECT_EQ(why(R"({"$ref": "#"})"), cycle);
  EXPECT_EQ(why(R"({"allOf": [{"$ref": "#"}]})"), cycle);
  EXPECT_EQ(why(R"({"definitions": {"a": {"$ref": "#/definitions/b"},
                                     "b": {"not": {"$ref": "#/definitions/a"}}},
                    "properties": {"x": {"$ref": "#/definitions/a"}}})"),
            cycle);
  // valijson decodes %-escapes and ~1 in pointers: so must the check.
  EXPECT_EQ(why(R"({"definitions": {"a b/c": {"anyOf": [{"$ref": "#/definitions/a%20b~1c"}]}},
                    "items": {"$ref": "#/definitions/a%20b~1c"}})"),
            cycle);
}

TEST(SchemaBoundsTest, RecursionThroughTheValueIsAllowed) {
  EXPECT_EQ(why(R"({"type": "object", "properties": {"child": {"$ref": "#"}}})"), "");
  EXPECT_EQ(
      why(R"({"definitions": {"node": {"type": "array", "items": {"$ref": "#/definitions/node"}}},
                    "$ref": "#/definitions/node"})"),
      "");
}

TEST(SchemaBoundsTest, ReferencesThatExpandExponentiallyAreRefused) {
  // d0 applies d1 twice, d1 applies d2 twice, ...: 2^20 subschemas for one value.
  bj::object definitions;
  for (int i = 0; i < 20; ++i) {
    const std::string next = "#/definitions/d" + std::to_string(i + 1);
    definitions["d" + std::to_string(i)] =
        bj::object{{"anyOf", bj::array{bj::object{{"$ref", next}}, bj::object{{"$ref", next}}}}};
  }
  definitions["d20"] = bj::object{{"type", "string"}};
  bj::value schema = bj::object{{"definitions", definitions}, {"$ref", "#/definitions/d0"}};
  auto shape = measure(schema, {});
  ASSERT_FALSE(shape.has_value());
  EXPECT_EQ(shape.error(), "$ref and combinators apply more than 1000 subschemas to one value");
}

TEST(SchemaBoundsTest, LongReferenceChainsAreRefusedWithoutDeepRecursion) {
  bj::object definitions;
  for (int i = 0; i < 5000; ++i) {
    definitions["d" + std::to_string(i)] =
        bj::object{{"$ref", "#/definitions/d" + std::to_string(i + 1)}};
  }
  definitions["d5000"] = bj::object{{"type", "string"}};
  bj::value schema = bj::object{{"definitions", definitions}, {"$ref", "#/definitions/d0"}};
  auto shape = measure(schema, {});
  ASSERT_FALSE(shape.has_value());
  EXPECT_EQ(shape.error(), "$ref and combinators apply more than 64 subschemas in turn");
}

TEST(SchemaBoundsTest, SchemaCacheRefusesASchemaPastItsLimitsAsInvalid) {
  SchemaCache cache;
  SchemaOutcome cycle = cache.validate(bj::parse(R"({"$ref": "#"})"), bj::parse("1"));
  EXPECT_EQ(cycle.kind, SchemaOutcome::Kind::kInvalidSchema);
  EXPECT_EQ(cycle.message,
            "$ref cycle: a subschema refers back to itself without descending into the value");

  SchemaLimits limits;
  limits.max_nodes = 3;
  SchemaCacheLimits cache_limits;
  cache_limits.schema = limits;
  SchemaCache small(cache_limits);
  EXPECT_EQ(small.validate(bj::parse(R"({"enum": [1, 2, 3]})"), bj::parse("1")).kind,
            SchemaOutcome::Kind::kInvalidSchema);
  EXPECT_EQ(small.validate(bj::parse(R"({"enum": [1]})"), bj::parse("1")).kind,
            SchemaOutcome::Kind::kValid);
}

}  // namespace
}  // namespace backstop::validation
