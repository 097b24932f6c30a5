#include "chat/chat.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace backstop::chat {
namespace {

Message text_message(Role role, std::string text) {
  Message message;
  message.role = role;
  message.content.push_back({ContentPart::Kind::kText, std::move(text), {}});
  return message;
}

TEST(EstimateInputTokensTest, FourBytesATokenPlusFraming) {
  ChatRequest request;
  request.messages.push_back(text_message(Role::kSystem, std::string(40, 's')));
  request.messages.push_back(text_message(Role::kUser, std::string(60, 'u')));
  // 100 bytes / 4 + 2 messages * 4 framing.
  EXPECT_EQ(estimate_input_tokens(request), 25 + 8);
}

TEST(EstimateInputTokensTest, ToolsCallsAndImagesCount) {
  ChatRequest request;
  Message user = text_message(Role::kUser, "");
  user.content.push_back({ContentPart::Kind::kImage, {}, "https://x/y.png"});
  request.messages.push_back(std::move(user));
  Message assistant;
  assistant.role = Role::kAssistant;
  assistant.tool_calls.push_back({"c1", "getx", R"({"a":1})"});  // 4 + 7 bytes
  request.messages.push_back(std::move(assistant));
  request.tools.push_back({"getx", "desc", boost::json::parse(R"({"type":"object"})")});
  // bytes: 11 (call) + 4 + 4 + 17 (tool) = 36 -> 9; framing 3 * 4; the image 85.
  EXPECT_EQ(estimate_input_tokens(request), 9 + 12 + 85);
}

TEST(EstimateInputTokensTest, AnEmptyRequestIsAtLeastOne) {
  EXPECT_EQ(estimate_input_tokens(ChatRequest()), 1);
}

}  // namespace
}  // namespace backstop::chat
