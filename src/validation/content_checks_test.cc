#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "validation/validator.h"

namespace backstop::validation {
namespace {

namespace bj = boost::json;

chat::ChatRequest classify_request() {
  chat::ChatRequest request;
  request.model = "classify";
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonSchema;
  request.response_format.name = "label";
  request.response_format.schema = bj::parse(R"({
    "type": "object",
    "properties": {"label": {"enum": ["spam", "ham"]}, "score": {"type": "number"}},
    "required": ["label"]
  })");
  return request;
}

chat::ChatResponse text(std::string content) {
  chat::ChatResponse response;
  response.content = std::move(content);
  return response;
}

Spec content(Spec::Content check) {
  Spec spec;
  spec.content = check;
  return spec;
}

class ContentChecksTest : public ::testing::Test {
 protected:
  Verdict run(const Spec& spec, const chat::ChatRequest& request,
              const chat::ChatResponse& response) {
    return make_validator(spec)->check(request, response, schemas_);
  }

  SchemaCache schemas_;
};

TEST_F(ContentChecksTest, NonEmptyPassesText) {
  EXPECT_TRUE(run(content(Spec::Content::kNonEmpty), {}, text("Paris.")).pass);
}

TEST_F(ContentChecksTest, NonEmptyFailsBlankAndAbsentContent) {
  for (const auto& response : {text(""), text(" \n\t "), chat::ChatResponse{}}) {
    Verdict v = run(content(Spec::Content::kNonEmpty), {}, response);
    EXPECT_FALSE(v.pass);
    EXPECT_EQ(v.reason, Reason::kEmpty);
    EXPECT_EQ(v.detail, "empty content");
  }
}

TEST_F(ContentChecksTest, JsonAndSchemaChecksFailEmptyContentAsEmpty) {
  EXPECT_EQ(run(content(Spec::Content::kJson), {}, text("  ")).reason, Reason::kEmpty);
  EXPECT_EQ(run(content(Spec::Content::kSchema), classify_request(), {}).reason, Reason::kEmpty);
}

TEST_F(ContentChecksTest, JsonPassesAnyJsonValue) {
  EXPECT_TRUE(run(content(Spec::Content::kJson), {}, text(R"({"a": [1, 2]})")).pass);
  EXPECT_TRUE(run(content(Spec::Content::kJson), {}, text(" [1] \n")).pass);
}

TEST_F(ContentChecksTest, JsonFailsProseAtTheByte) {
  Verdict v = run(content(Spec::Content::kJson), {}, text(R"({"label": spam})"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kInvalidJson);
  EXPECT_EQ(v.detail, "content is not valid JSON at byte 10");
}

TEST_F(ContentChecksTest, SchemaPassesMatchingContent) {
  Verdict v = run(content(Spec::Content::kSchema), classify_request(),
                  text(R"({"label": "spam", "score": 0.9})"));
  EXPECT_TRUE(v.pass) << v.detail;
}

TEST_F(ContentChecksTest, SchemaFailsOnTheResponseFormatsSchema) {
  Verdict v =
      run(content(Spec::Content::kSchema), classify_request(), text(R"({"label": "eggs"})"));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, Reason::kSchema);
  EXPECT_EQ(v.detail, "content: /label must be one of [spam, ham]");
}

TEST_F(ContentChecksTest, SchemaModeStillRequiresJson) {
  Verdict v = run(content(Spec::Content::kSchema), classify_request(), text("spam"));
  EXPECT_EQ(v.reason, Reason::kInvalidJson);
  EXPECT_EQ(v.detail, "content is not valid JSON at byte 0");
}

TEST_F(ContentChecksTest, SchemaModeWithoutASchemaOnlyChecksJson) {
  chat::ChatRequest request;
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonObject;
  EXPECT_TRUE(run(content(Spec::Content::kSchema), request, text(R"({"label": "eggs"})")).pass);
  EXPECT_EQ(run(content(Spec::Content::kSchema), request, text("eggs")).reason,
            Reason::kInvalidJson);
}

TEST_F(ContentChecksTest, InvalidResponseFormatSchemaFailsSchema) {
  chat::ChatRequest request = classify_request();
  request.response_format.schema = bj::parse(R"({"type": 12})");
  Verdict v = run(content(Spec::Content::kSchema), request, text("{}"));
  EXPECT_EQ(v.reason, Reason::kSchema);
  EXPECT_TRUE(v.detail.starts_with("schema of response_format is invalid: ")) << v.detail;
}

TEST_F(ContentChecksTest, ContentIsNotCheckedWhenTheAnswerCallsATool) {
  chat::ChatResponse response;
  response.tool_calls.push_back({"call_1", "search", "{}"});
  EXPECT_TRUE(run(content(Spec::Content::kSchema), classify_request(), response).pass);
}

TEST_F(ContentChecksTest, NoChecksLetAnEmptyAnswerThrough) {
  EXPECT_TRUE(run(Spec{}, {}, chat::ChatResponse{}).pass);
}

TEST_F(ContentChecksTest, TruncatedContentFailsUnlessAllowed) {
  chat::ChatResponse response = text(R"({"label": "sp)");
  response.finish_reason = chat::FinishReason::kLength;
  Verdict v = run(content(Spec::Content::kNonEmpty), {}, response);
  EXPECT_EQ(v.reason, Reason::kTruncated);
  EXPECT_EQ(v.detail, "finish_reason length");

  Spec allowed = content(Spec::Content::kNonEmpty);
  allowed.allow_truncated = true;
  EXPECT_TRUE(run(allowed, {}, response).pass);
}

TEST_F(ContentChecksTest, ResponseFormatSchemaIsCompiledOnceAcrossRequests) {
  auto validator = make_validator(content(Spec::Content::kSchema));
  for (int i = 0; i < 3; ++i) {
    // Failing content goes to the compiled schema (a pass of a plain schema needs none).
    EXPECT_FALSE(validator->check(classify_request(), text(R"({"label": "eggs"})"), schemas_).pass);
  }
  EXPECT_EQ(schemas_.size(), 1u);
}

TEST_F(ContentChecksTest, PlainResponseFormatSchemaPassesWithoutCompiling) {
  auto validator = make_validator(content(Spec::Content::kSchema));
  EXPECT_TRUE(validator->check(classify_request(), text(R"({"label": "ham"})"), schemas_).pass);
  EXPECT_EQ(schemas_.size(), 0u);
}

}  // namespace
}  // namespace backstop::validation
