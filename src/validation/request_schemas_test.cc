#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <string>

#include "validation/validator.h"

namespace backstop::validation {
namespace {

namespace bj = boost::json;

chat::Tool tool(std::string name, std::string_view schema) {
  return chat::Tool{std::move(name), "", bj::parse(schema)};
}

constexpr std::string_view kPlain =
    R"({"type": "object", "properties": {"city": {"type": "string"}}})";
constexpr std::string_view kLookahead =
    R"json({"type": "object", "properties": {"city": {"type": "string", "pattern": "^(?!x)"}}})json";

TEST(CheckRequestSchemasTest, ValidSchemasPass) {
  SchemaCache schemas;
  chat::ChatRequest request;
  request.tools = {tool("a", kPlain),
                   tool("b", R"({"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}]})")};
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonSchema;
  request.response_format.schema = bj::parse(kPlain);
  EXPECT_FALSE(check_request_schemas(request, schemas).has_value());
}

TEST(CheckRequestSchemasTest, InvalidToolSchemaIsAnInvalidArgumentNamingTheTool) {
  SchemaCache schemas;
  chat::ChatRequest request;
  request.tools = {tool("a", kPlain), tool("b", kPlain), tool("get_weather", kLookahead)};
  auto error = check_request_schemas(request, schemas);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error->message,
            "tools[2] \"get_weather\": parameters: pattern \"^(?!x)\" does not compile: invalid "
            "perl operator: (?! (patterns run on RE2: no lookaround, no backreferences)");
}

TEST(CheckRequestSchemasTest, ToolSchemaIsNamedWithTheGivenField) {
  SchemaCache schemas;
  chat::ChatRequest request;
  request.tools = {tool("f", R"({"$ref": "#"})")};
  auto error =
      check_request_schemas(request, schemas, {"input_schema", "output_config.format.schema"});
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->message,
            "tools[0] \"f\": input_schema: $ref cycle: a subschema refers back to itself without "
            "descending into the value");
}

TEST(CheckRequestSchemasTest, ResponseSchemaIsNamedWithTheGivenField) {
  SchemaCache schemas;
  chat::ChatRequest request;
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonSchema;
  request.response_format.schema = bj::parse(R"({"$ref": "#"})");
  auto error = check_request_schemas(request, schemas, {"parameters", "text.format.schema"});
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->message.starts_with("text.format.schema: ")) << error->message;
}

TEST(CheckRequestSchemasTest, InvalidResponseFormatIsNamedByDefaultAsOpenAISendsIt) {
  SchemaCache schemas;
  chat::ChatRequest request;
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonSchema;
  request.response_format.schema = bj::parse(kLookahead);
  auto error = check_request_schemas(request, schemas);
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->message.starts_with("response_format.json_schema.schema: pattern "))
      << error->message;
}

TEST(CheckRequestSchemasTest, PlainSchemaPastTheLimitsIsInvalidWithoutCompiling) {
  SchemaCacheLimits limits;
  limits.schema.max_nodes = 4;
  SchemaCache schemas(limits);
  chat::ChatRequest request;
  request.tools = {tool("f", kPlain)};
  auto error = check_request_schemas(request, schemas);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->message, "tools[0] \"f\": parameters: schema has more than 4 JSON values");
  EXPECT_EQ(schemas.size(), 0u);
}

TEST(CheckRequestSchemasTest, CompiledSchemaIsKeptForTheAnswersCheck) {
  SchemaCache schemas;
  chat::ChatRequest request;
  request.tools = {tool("f", R"({"type": "string", "pattern": "^a", "enum": ["a", 1]})")};
  ASSERT_FALSE(check_request_schemas(request, schemas).has_value());
  EXPECT_TRUE(schemas.cached(request.tools[0].parameters));
}

}  // namespace
}  // namespace backstop::validation
