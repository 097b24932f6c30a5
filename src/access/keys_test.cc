#include "access/keys.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace backstop::access {
namespace {

// sha256("test"), as `echo -n test | sha256sum` prints it.
constexpr const char* kTestDigest =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

EnvReader env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

config::Auth auth_with_two_keys() {
  config::Auth auth;
  auth.enabled = true;
  auth.keys.push_back({"team-a", "TEAM_A_KEY", "", false, {"agentic"}, std::nullopt, 1});
  auth.keys.push_back({"ci", "", kTestDigest, true, {}, std::nullopt, 2});
  return auth;
}

TEST(KeysTest, AKeyIsFoundByItsValueFromTheEnvironmentOrItsDigest) {
  auto keys = Keys::create(auth_with_two_keys(), env_of({{"TEAM_A_KEY", "sk-team-a"}}));
  ASSERT_TRUE(keys.has_value()) << keys.error().message;
  EXPECT_TRUE(keys->enabled());
  const Key* a = keys->find("sk-team-a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name, "team-a");
  const Key* ci = keys->find("test");
  ASSERT_NE(ci, nullptr);
  EXPECT_EQ(ci->name, "ci");
  EXPECT_EQ(keys->find("sk-team-b"), nullptr);
  EXPECT_EQ(keys->find(""), nullptr);
  EXPECT_EQ(keys->find("sk-team-a "), nullptr);
}

TEST(KeysTest, AKeyAllowsOnlyItsWorkloadsUnlessAll) {
  auto keys = Keys::create(auth_with_two_keys(), env_of({{"TEAM_A_KEY", "sk-team-a"}}));
  ASSERT_TRUE(keys.has_value());
  EXPECT_TRUE(keys->find("sk-team-a")->allows("agentic"));
  EXPECT_FALSE(keys->find("sk-team-a")->allows("docs-qa"));
  EXPECT_TRUE(keys->find("test")->allows("docs-qa"));
}

TEST(KeysTest, AnUnsetVariableIsAnErrorNamingItButNoValue) {
  auto keys = Keys::create(auth_with_two_keys(), env_of({{"TEAM_A_KEY", ""}}));
  ASSERT_FALSE(keys.has_value());
  EXPECT_EQ(keys.error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(keys.error().message,
            "client key \"team-a\" (key_env): environment variable TEAM_A_KEY is not set");

  config::Auth auth = auth_with_two_keys();
  auth.metrics_key_env = "METRICS_KEY";
  auto metrics = Keys::create(auth, env_of({{"TEAM_A_KEY", "k"}}));
  ASSERT_FALSE(metrics.has_value());
  EXPECT_EQ(metrics.error().message,
            "the /metrics key (metrics_key_env): environment variable METRICS_KEY is not set");
}

TEST(KeysTest, TwoKeysWithTheSameValueAreAnErrorWithoutTheValue) {
  auto keys = Keys::create(auth_with_two_keys(), env_of({{"TEAM_A_KEY", "test"}}));
  ASSERT_FALSE(keys.has_value());
  EXPECT_EQ(keys.error().message,
            "client keys \"team-a\" and \"ci\" have the same value: a request could not say "
            "which it is");
}

TEST(KeysTest, BearerComesFirstThenXApiKey) {
  EXPECT_EQ(presented_key("Bearer sk-1", "sk-2"), "sk-1");
  EXPECT_EQ(presented_key("bearer  sk-1 ", ""), "sk-1");
  EXPECT_EQ(presented_key("", "sk-2"), "sk-2");
  EXPECT_EQ(presented_key("Basic dXNlcjpwYXNz", "sk-2"), "sk-2");
  EXPECT_EQ(presented_key("Bearer", ""), "");
  EXPECT_EQ(presented_key("", ""), "");
}

TEST(KeysTest, MetricsAreOpenWithoutAMetricsKeyElseNeedItsBearer) {
  auto open = Keys::create(auth_with_two_keys(), env_of({{"TEAM_A_KEY", "k"}}));
  ASSERT_TRUE(open.has_value());
  EXPECT_TRUE(open->metrics_allowed(""));

  config::Auth auth = auth_with_two_keys();
  auth.metrics_key_env = "METRICS_KEY";
  auto closed = Keys::create(auth, env_of({{"TEAM_A_KEY", "k"}, {"METRICS_KEY", "scrape-me"}}));
  ASSERT_TRUE(closed.has_value());
  EXPECT_TRUE(closed->metrics_allowed("Bearer scrape-me"));
  EXPECT_FALSE(closed->metrics_allowed(""));
  EXPECT_FALSE(closed->metrics_allowed("Bearer k"));
  EXPECT_FALSE(closed->metrics_allowed("scrape-me"));
}

TEST(KeysTest, WithoutAuthNothingIsAskedFor) {
  auto keys = Keys::create(config::Auth{}, env_of({}));
  ASSERT_TRUE(keys.has_value());
  EXPECT_FALSE(keys->enabled());
  EXPECT_TRUE(keys->metrics_allowed(""));
}

}  // namespace
}  // namespace backstop::access
