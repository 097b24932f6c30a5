#include "routing/sessions.h"

#include <gtest/gtest.h>

namespace backstop::routing {
namespace {

chat::ChatRequest conversation(std::string text) {
  chat::ChatRequest r;
  chat::Message m;
  m.role = chat::Role::kUser;
  m.content.push_back({chat::ContentPart::Kind::kText, std::move(text), {}});
  r.messages.push_back(std::move(m));
  return r;
}

constexpr std::int64_t kT0 = 1'764'547'200'000;

class ClientRetriesTest : public ::testing::Test {
 protected:
  ClientRetries retries_{config::Sessions{2, 60, 300}, HashKey{1, 2}};
};

TEST(ConversationHash, IsKeyedAndTellsConversationsApart) {
  const chat::ChatRequest a = conversation("what is the weather in Paris?");
  const chat::ChatRequest b = conversation("what is the weather in Rome?");
  EXPECT_EQ(conversation_hash({1, 2}, a), conversation_hash({1, 2}, a));
  EXPECT_NE(conversation_hash({1, 2}, a), conversation_hash({1, 2}, b));
  EXPECT_NE(conversation_hash({1, 2}, a), conversation_hash({3, 4}, a));
}

TEST(ConversationHash, SipHashMatchesTheReferenceVector) {
  // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e -> a129ca6149be45e5.
  std::string message;
  for (char c = 0; c < 15; ++c) message.push_back(c);
  EXPECT_EQ(siphash({0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL}, message),
            0xa129ca6149be45e5ULL);
}

TEST_F(ClientRetriesTest, TheSameConversationAgainWithinTheWindowIsARetry) {
  const chat::ChatRequest r = conversation("hello");
  EXPECT_FALSE(retries_.observe(r, {}, kT0).retry);
  EXPECT_TRUE(retries_.observe(r, {}, kT0 + 10'000).retry);
  EXPECT_FALSE(retries_.observe(conversation("other"), {}, kT0 + 10'000).retry);
  // The window is counted from the last time it was seen: 60 s later it is new again.
  EXPECT_FALSE(retries_.observe(r, {}, kT0 + 70'000).retry);
}

TEST_F(ClientRetriesTest, ARetryCountHeaderIsARetryEvenTheFirstTime) {
  EXPECT_TRUE(retries_.observe(conversation("hello"), {1, {}}, kT0).retry);
  EXPECT_FALSE(retries_.observe(conversation("bye"), {0, {}}, kT0).retry);
}

TEST_F(ClientRetriesTest, ASessionIdIsARetryOnlyWithTheSameConversation) {
  const ClientSignals session{0, "sess-1"};
  EXPECT_FALSE(retries_.observe(conversation("turn 1"), session, kT0).retry);
  EXPECT_FALSE(retries_.observe(conversation("turn 1, turn 2"), session, kT0 + 1000).retry);
  EXPECT_TRUE(retries_.observe(conversation("turn 1, turn 2"), session, kT0 + 2000).retry);
  // Another session sending the same text is not this session's retry.
  EXPECT_FALSE(retries_.observe(conversation("turn 1, turn 2"), {0, "sess-2"}, kT0 + 3000).retry);
}

TEST_F(ClientRetriesTest, MoreRetriesThanTheThresholdEscalateForEscalateS) {
  const chat::ChatRequest r = conversation("hello");
  EXPECT_FALSE(retries_.observe(r, {}, kT0).escalated);
  EXPECT_FALSE(retries_.observe(r, {}, kT0 + 1000).escalated);  // retry 1
  EXPECT_FALSE(retries_.observe(r, {}, kT0 + 2000).escalated);  // retry 2: at the threshold
  EXPECT_TRUE(retries_.observe(r, {}, kT0 + 3000).escalated);   // retry 3: above it
  // Escalated for 300 s from then, whatever the session sends.
  EXPECT_TRUE(retries_.observe(r, {}, kT0 + 3000 + 299'000).escalated);
  EXPECT_FALSE(retries_.observe(r, {}, kT0 + 3000 + 300'000 + 61'000).escalated);
}

TEST(ClientRetries, TheTableStaysWithinItsCapacity) {
  ClientRetries retries(config::Sessions{2, 60, 300}, HashKey{1, 2}, 32);
  for (int i = 0; i < 1000; ++i) {
    (void)retries.observe(conversation("c" + std::to_string(i)), {}, kT0 + i);
  }
  EXPECT_LE(retries.size(), 32u);
  EXPECT_GT(retries.size(), 0u);
}

}  // namespace
}  // namespace backstop::routing
