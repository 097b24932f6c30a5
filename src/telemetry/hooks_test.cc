#include "telemetry/hooks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace backstop::telemetry {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Received {
  std::string url;
  std::string body;
  Headers headers;

  [[nodiscard]] std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

// A receiver that records every post and answers from a script (true: 2xx).
struct Receiver {
  std::mutex mutex;
  std::vector<Received> posts;
  std::vector<bool> answers;  // per post, in order; past the end: 2xx

  HookPost post() {
    return [this](const std::string& url, const std::string& body, const Headers& headers) {
      std::lock_guard lock(mutex);
      posts.push_back({url, body, headers});
      return posts.size() > answers.size() || answers[posts.size() - 1];
    };
  }
};

HookOptions fast() {
  HookOptions o;
  o.retry_backoff = std::chrono::milliseconds(1);
  return o;
}

std::uint64_t count_of(const Hooks& hooks, std::string_view event, std::string_view result) {
  for (const auto& c : hooks.counts()) {
    if (c.event == event && c.result == result) return c.count;
  }
  return 0;
}

TEST(HmacTest, MatchesTheRfc4231TestVector) {
  // RFC 4231, test case 2.
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HooksTest, AnEventGoesToTheReceiversThatAskedForItSignedWithTheirSecret) {
  Receiver receiver;
  Hooks hooks({{"http://a/hook", {"fallback"}, "s3cret"}, {"http://b/hook", {"all_failed"}, ""}},
              receiver.post(), fast());
  EXPECT_TRUE(hooks.wants("fallback"));
  EXPECT_FALSE(hooks.wants("drift"));
  EXPECT_TRUE(hooks.emit("fallback", R"({"event":"fallback"})"));
  EXPECT_TRUE(hooks.emit("all_failed", R"({"event":"all_failed"})"));
  EXPECT_TRUE(hooks.emit("drift", R"({"event":"drift"})"));  // nobody asked: nothing sent
  hooks.flush();
  ASSERT_EQ(receiver.posts.size(), 2u);
  EXPECT_EQ(receiver.posts[0].url, "http://a/hook");
  EXPECT_EQ(receiver.posts[0].header("x-backstop-event"), "fallback");
  EXPECT_EQ(receiver.posts[0].header("x-backstop-signature"),
            "sha256=" + hmac_sha256_hex("s3cret", R"({"event":"fallback"})"));
  EXPECT_EQ(receiver.posts[1].url, "http://b/hook");
  EXPECT_EQ(receiver.posts[1].header("x-backstop-signature"), "");  // no secret: unsigned
  EXPECT_EQ(count_of(hooks, "fallback", "sent"), 1u);
  EXPECT_EQ(count_of(hooks, "all_failed", "sent"), 1u);
}

TEST(HooksTest, AFailingReceiverIsRetriedThenGivenUpAndCounted) {
  Receiver receiver;
  receiver.answers = {false, true};  // fails once, then takes it
  Hooks hooks({{"http://a/hook", {"fallback"}, ""}}, receiver.post(), fast());
  hooks.emit("fallback", "{}");
  hooks.flush();
  EXPECT_EQ(receiver.posts.size(), 2u);
  EXPECT_EQ(count_of(hooks, "fallback", "sent"), 1u);

  Receiver down;
  down.answers = {false, false, false, false};
  Hooks failing({{"http://down/hook", {"fallback"}, ""}}, down.post(), fast());
  failing.emit("fallback", "{}");
  failing.flush();
  EXPECT_EQ(down.posts.size(), 3u);  // tries: 3
  EXPECT_EQ(count_of(failing, "fallback", "failed"), 1u);
}

TEST(HooksTest, AFullQueueDropsAndCountsWithoutWaiting) {
  // A receiver that blocks until released holds the thread, so the queue fills.
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> posts{0};
  HookOptions options = fast();
  options.queue_events = 2;
  Hooks hooks(
      {{"http://slow/hook", {"fallback"}, ""}},
      [&](const std::string&, const std::string&, const Headers&) {
        ++posts;
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return released; });
        return true;
      },
      options);
  hooks.emit("fallback", "1");
  // Wait (bounded) until the thread holds the first event, so the queue is empty again.
  for (int i = 0; i < 2000 && posts.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(posts.load(), 1);
  EXPECT_TRUE(hooks.emit("fallback", "2"));
  EXPECT_TRUE(hooks.emit("fallback", "3"));
  EXPECT_FALSE(hooks.emit("fallback", "4"));  // the queue holds 2
  EXPECT_EQ(count_of(hooks, "fallback", "dropped"), 1u);
  {
    std::lock_guard lock(mutex);
    released = true;
  }
  cv.notify_all();
  hooks.flush();
  EXPECT_EQ(posts.load(), 3);
  EXPECT_EQ(count_of(hooks, "fallback", "sent"), 3u);
}

}  // namespace
}  // namespace backstop::telemetry
