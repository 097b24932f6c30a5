#include "dialects/registry.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "dialects/builtin/builtin.h"

namespace backstop::dialects {
namespace {

namespace bj = boost::json;

TEST(Registry, FindsEachBuiltInDialectByItsName) {
  const Registry& r = builtin();
  for (std::string_view name : {"openai", "anthropic", "responses"}) {
    const Dialect* d = r.find(name);
    ASSERT_NE(d, nullptr) << name;
    EXPECT_EQ(d->name(), name);
  }
  EXPECT_EQ(r.find("gemini"), nullptr);
}

TEST(Registry, PathsUnderAChatEndpointBelongToItsDialectOthersToTheDefault) {
  const Registry& r = builtin();
  EXPECT_EQ(r.for_path("/v1/messages").name(), "anthropic");
  EXPECT_EQ(r.for_path("/v1/messages/batches").name(), "anthropic");
  EXPECT_EQ(r.for_path("/v1/responses/resp_1").name(), "responses");
  EXPECT_EQ(r.for_path("/v1/messagesx").name(), "openai");
  EXPECT_EQ(r.for_path("/v1/embeddings").name(), "openai");
}

TEST(Registry, EndpointNamesTheDialectAndTheKindOfAnExactPath) {
  const Registry& r = builtin();
  auto [chat, chat_endpoint] = r.endpoint("/v1/chat/completions");
  ASSERT_NE(chat, nullptr);
  EXPECT_EQ(chat->name(), "openai");
  EXPECT_EQ(chat_endpoint->kind, Endpoint::Kind::kChat);
  auto [count, count_endpoint] = r.endpoint("/v1/messages/count_tokens");
  ASSERT_NE(count, nullptr);
  EXPECT_EQ(count->name(), "anthropic");
  EXPECT_EQ(count_endpoint->kind, Endpoint::Kind::kCountTokens);
  EXPECT_EQ(r.endpoint("/v1/chat/completions/x").first, nullptr);
}

TEST(Registry, UpstreamKindsAreThoseOfTheDialectsThatServeModels) {
  EXPECT_EQ(builtin().upstream_kinds(),
            (std::vector<std::string>{"openai", "anthropic", "openai_responses"}));
  EXPECT_EQ(builtin().find_kind("openai_responses"), builtin().find("responses"));
  EXPECT_EQ(builtin().find_kind("responses"), nullptr);
}

TEST(Registry, EndpointListNamesEveryClientEndpoint) {
  EXPECT_EQ(builtin().endpoint_list(),
            "POST /v1/chat/completions, POST /v1/messages, POST /v1/messages/count_tokens, "
            "POST /v1/responses");
}

TEST(Registry, EachDialectsRequestsCarryItsNameAsOrigin) {
  const Registry& r = builtin();
  auto openai = r.find("openai")->decode_request(
      R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_TRUE(openai.has_value());
  EXPECT_EQ(openai->origin, "openai");
  auto anthropic =
      r.find("anthropic")
          ->decode_request(
              R"({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_TRUE(anthropic.has_value());
  EXPECT_EQ(anthropic->origin, "anthropic");
  auto responses = r.find("responses")->decode_request(R"({"model": "m", "input": "hi"})");
  ASSERT_TRUE(responses.has_value());
  EXPECT_EQ(responses->origin, "responses");
}

TEST(Registry, ModelListsComeInEachDialectsShape) {
  const std::string_view names[] = {"a", "b"};
  const bj::value openai = bj::parse(builtin().fallback().encode_models(names));
  EXPECT_EQ(openai.at("object"), "list");
  EXPECT_EQ(openai.at("data").at(1).at("id"), "b");
  const bj::value anthropic = bj::parse(builtin().find("anthropic")->encode_models(names));
  EXPECT_EQ(anthropic.at("first_id"), "a");
  EXPECT_EQ(anthropic.at("last_id"), "b");
  EXPECT_EQ(anthropic.at("data").at(0).at("type"), "model");
}

TEST(Registry, UpstreamSideSendsEachDialectsAuthHeaders) {
  UpstreamSettings settings{"sk-1", "", 4096};
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(builtin().find("openai")->upstream_headers(settings),
            (Headers{{"authorization", "Bearer sk-1"}}));
  EXPECT_EQ(builtin().find("anthropic")->upstream_headers(settings),
            (Headers{{"x-api-key", "sk-1"}, {"anthropic-version", "2023-06-01"}}));
  EXPECT_EQ(builtin().find("responses")->upstream_headers(settings),
            (Headers{{"authorization", "Bearer sk-1"}}));
}

}  // namespace
}  // namespace backstop::dialects
