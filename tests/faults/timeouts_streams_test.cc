// Fault tests for provider timeouts (first token, idle, whole call, the workload deadline, no
// same-target retry after a timeout), stream completeness without [DONE], skipped malformed
// events, `stream_mode: buffer`, the reasons `broken_stream` and `rejected`, counted replays and
// errors that never name an upstream's address.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "fault_gateway.h"

namespace backstop::faults {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Small times, so that every fault shows within a second: a first token within 200 ms
// (not on a route's last target), no silence over 200 ms inside a stream, 1.5 s a call.
// The least hop from a primary that never sent its first token to the fallback: the
// first-token limit (200 ms) less a margin, since the fault server stamps a request when it has
// read it, after the gateway's clock for it started.
constexpr std::chrono::milliseconds kFirstTokenHop{150};

constexpr std::string_view kProviderKeys = R"(    connect_timeout_ms: 500
    first_token_timeout_ms: 200
    idle_timeout_ms: 200
    timeout_ms: 1500
)";

// Every workload may retry twice, so that a test shows when a retry does NOT happen.
constexpr std::string_view kWorkloads = R"(workloads:
  plain:
    route: [primary, fallback]
    retries: {max: 2, base_backoff_ms: 5, max_backoff_ms: 20}
  checked:
    route: [primary, fallback]
    validate: {content: non_empty}
    retries: {max: 2, base_backoff_ms: 5, max_backoff_ms: 20}
  buffered:
    route: [primary, fallback]
    stream_mode: buffer
    retries: {max: 2, base_backoff_ms: 5, max_backoff_ms: 20}
  bounded:
    route: [primary, fallback]
    deadline_ms: 400
    retries: {max: 2, base_backoff_ms: 5, max_backoff_ms: 20}
)";

const std::string kFullText = Answer{}.text;
constexpr std::string_view kStream = R"(,"stream":true)";

class TimeoutStreamFaultTest : public FaultGatewayTest {
 protected:
  void SetUp() override { start(kProviderKeys, kWorkloads); }

  // Milliseconds since `from`.
  static Ms since(SteadyClock::time_point from) {
    return std::chrono::duration_cast<Ms>(SteadyClock::now() - from);
  }
  // Milliseconds between the primary's first request and the fallback's first request.
  // Ms::max() when either saw none.
  Ms hop() const {
    const auto primary = primary_.received();
    const auto fallback = fallback_.received();
    if (primary.empty() || fallback.empty()) return Ms::max();
    return std::chrono::duration_cast<Ms>(fallback[0].arrived - primary[0].arrived);
  }
  // The stream of `workload` served whole by the fallback after `reason`.
  void expect_fallback_stream(const http::ClientResponse& r, std::string_view reason) {
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
    EXPECT_EQ(r.header("x-backstop-attempts"), "2");
    EXPECT_EQ(r.header("x-backstop-fallback-reason"), reason);
    OpenAIStream s = read_openai_stream(r.body);
    EXPECT_EQ(s.content, kFullText);  // none of the primary's words
    EXPECT_TRUE(s.done);
    EXPECT_FALSE(s.error);
    EXPECT_EQ(std::count(s.models.begin(), s.models.end(), "fallback-model"),
              static_cast<std::ptrdiff_t>(s.models.size()));
    EXPECT_EQ(primary_.count(), 1u);  // neither retried nor replayed
    EXPECT_EQ(fallback_.count(), 1u);
  }
};

Behaviour stream_then(int events, StreamEnd end) {
  Behaviour b = Behaviour::ok();
  b.stop_after_events = events;
  b.end = end;
  return b;
}

// --- provider timeouts -----------------------------------------------------------------

TEST_F(TimeoutStreamFaultTest, SilentPrimaryTimesOutOnceAndFallsBackWithoutASameTargetRetry) {
  primary_.script({Behaviour::silent()});
  const auto started = SteadyClock::now();
  auto r = chat("plain", "silent");
  const Ms took = since(started);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "timeout");
  EXPECT_EQ(primary_.count(), 1u);  // retries.max is 2, but never after a timeout
  EXPECT_EQ(fallback_.count(), 1u);
  EXPECT_LT(took, Ms(1500 + 1000));  // one timeout, not three
}

TEST_F(TimeoutStreamFaultTest, SilentPrimaryStreamFallsBackAfterTheFirstTokenTimeout) {
  primary_.script({Behaviour::silent()});
  auto r = chat("plain", "silent-stream", kStream);
  expect_fallback_stream(r, "timeout");
  EXPECT_GE(hop(), kFirstTokenHop);
  EXPECT_LT(hop(), Ms(1000));  // the first-token limit, not timeout_ms
}

TEST_F(TimeoutStreamFaultTest, SlowFirstTokenFallsBackAfterTheFirstTokenTimeout) {
  Behaviour slow = Behaviour::ok();
  slow.first_event_delay = Ms(1200);  // headers at once, the first event late
  primary_.script({slow});
  auto r = chat("plain", "slow-first-token", kStream);
  expect_fallback_stream(r, "timeout");
  EXPECT_GE(hop(), kFirstTokenHop);
  EXPECT_LT(hop(), Ms(1000));
}

TEST_F(TimeoutStreamFaultTest, SlowHeadersFallBackAfterTheFirstTokenTimeout) {
  primary_.script({Behaviour::ok().after(Ms(1200))});
  auto r = chat("plain", "slow-headers", kStream);
  expect_fallback_stream(r, "timeout");
  EXPECT_GE(hop(), kFirstTokenHop);
  EXPECT_LT(hop(), Ms(1000));
}

TEST_F(TimeoutStreamFaultTest, SlowFirstTokenOnTheRoutesLastTargetIsWaitedFor) {
  primary_.otherwise(Behaviour::reply(503, openai_error("down", "server_error", "")));
  Behaviour slow = Behaviour::ok();
  slow.first_event_delay = Ms(500);  // over first_token_timeout_ms, under timeout_ms
  fallback_.script({slow});
  auto r = chat("plain", "slow-last-target", kStream);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, kFullText);
  EXPECT_TRUE(s.done);
  EXPECT_FALSE(s.error);
  EXPECT_EQ(fallback_.count(), 1u);
}

TEST_F(TimeoutStreamFaultTest, StreamStallIsCutAfterTheIdleTimeout) {
  primary_.script({stream_then(3, StreamEnd::kStall)});
  const auto started = SteadyClock::now();
  auto r = chat("plain", "stall", kStream);
  const Ms took = since(started);
  ASSERT_EQ(r.status, 200) << r.body;
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, "the fault ");
  EXPECT_TRUE(s.error) << r.body;
  EXPECT_FALSE(s.done);
  EXPECT_LT(took, Ms(1000));  // idle_timeout_ms (200), not timeout_ms (1500)
  EXPECT_EQ(primary_.count(), 1u);
  EXPECT_EQ(fallback_.count(), 0u);
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "failed"}), 1);
}

TEST_F(TimeoutStreamFaultTest, StreamStallBeforeTheChecksDecideFallsBackAfterTheIdleTimeout) {
  primary_.script({stream_then(3, StreamEnd::kStall)});
  auto r = chat("checked", "stall-checked", kStream);
  expect_fallback_stream(r, "timeout");
  EXPECT_LT(hop(), Ms(1000));
}

TEST_F(TimeoutStreamFaultTest, LongStreamThatKeepsFlowingIsNeverCut) {
  Behaviour flowing = Behaviour::ok();
  flowing.event_delay = Ms(70);  // 11 events: about 700 ms, over both 200 ms limits
  primary_.script({flowing});
  auto r = chat("plain", "flowing", kStream);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, kFullText);
  EXPECT_TRUE(s.done);
  EXPECT_FALSE(s.error);
  EXPECT_EQ(fallback_.count(), 0u);
}

TEST_F(TimeoutStreamFaultTest, StreamStillFlowingAtTimeoutMsIsCut) {
  std::string sixty_words;
  for (int i = 0; i < 60; ++i) sixty_words += "word ";
  Behaviour endless = Behaviour::ok({sixty_words, 11, 7});
  endless.event_delay = Ms(40);  // 64 events: about 2.5 s, past timeout_ms (1.5 s)
  primary_.script({endless});
  const auto started = SteadyClock::now();
  auto r = chat("plain", "past-timeout", kStream);
  const Ms took = since(started);
  ASSERT_EQ(r.status, 200) << r.body;
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_TRUE(s.error) << r.body;
  EXPECT_FALSE(s.done);
  EXPECT_GE(took, Ms(1500));
  EXPECT_LT(took, Ms(2300));
  EXPECT_EQ(primary_.count(), 1u);
}

TEST_F(TimeoutStreamFaultTest, WorkloadDeadlineBoundsEveryAttempt) {
  primary_.otherwise(Behaviour::silent());
  fallback_.otherwise(Behaviour::silent());
  const auto started = SteadyClock::now();
  auto r = chat("bounded", "deadline");
  const Ms took = since(started);
  ASSERT_EQ(r.status, 502) << r.body;
  auto body = json(r);
  EXPECT_EQ(body.at_pointer("/error/code"), "all_targets_failed");
  const auto& attempts = body.at_pointer("/error/attempts").as_array();
  ASSERT_FALSE(attempts.empty());
  EXPECT_EQ(attempts.back().at("reason"), "timeout");
  EXPECT_GE(took, Ms(400));
  EXPECT_LT(took, Ms(400 + 800));  // not the 1.5 s of each target's own timeout
  EXPECT_EQ(primary_.count(), 1u);
}

// --- stream completeness and malformed events -------------------------------------------

TEST_F(TimeoutStreamFaultTest, NoDoneAfterTheFinishReasonIsAComplete) {
  Behaviour no_done = Behaviour::ok();
  no_done.omit_done = true;
  primary_.script({no_done});
  auto r = chat("plain", "no-done", kStream);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, kFullText);
  EXPECT_TRUE(s.done);  // the client's stream ends cleanly, [DONE] included
  EXPECT_FALSE(s.error) << r.body;
  EXPECT_EQ(primary_.count(), 1u);
  EXPECT_EQ(fallback_.count(), 0u);
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "primary"}), 1);
}

TEST_F(TimeoutStreamFaultTest, NoDoneAfterTheFinishReasonPassesTheChecks) {
  Behaviour no_done = Behaviour::ok();
  no_done.omit_done = true;
  primary_.script({no_done});
  auto r = chat("checked", "no-done-checked", kStream);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_TRUE(read_openai_stream(r.body).done);
  EXPECT_EQ(fallback_.count(), 0u);
}

TEST_F(TimeoutStreamFaultTest, CleanEndBeforeTheFinishReasonIsABrokenStream) {
  primary_.script({stream_then(3, StreamEnd::kComplete)});
  auto r = chat("checked", "early-end", kStream);
  expect_fallback_stream(r, "broken_stream");
}

TEST_F(TimeoutStreamFaultTest, StreamCutBeforeTheChecksDecideFallsBackAsBrokenStream) {
  primary_.script({stream_then(3, StreamEnd::kCut)});
  auto r = chat("checked", "cut-checked", kStream);
  expect_fallback_stream(r, "broken_stream");
}

TEST_F(TimeoutStreamFaultTest, MalformedEventIsSkippedCountedAndTheStreamCompletes) {
  Behaviour malformed = Behaviour::ok();
  malformed.malformed_at = 2;  // between the first and second word
  primary_.script({malformed});
  auto r = chat("plain", "malformed", kStream);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_EQ(r.header("x-backstop-attempts"), "1");
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, kFullText);
  EXPECT_TRUE(s.done);
  EXPECT_FALSE(s.error) << r.body;
  EXPECT_EQ(primary_.count(), 1u);
  EXPECT_EQ(fallback_.count(), 0u);
  const std::string text = metrics_text();
  EXPECT_NE(text.find("backstop_stream_events_skipped_total{provider=\"primary\"} 1"),
            std::string::npos)
      << text;
}

TEST_F(TimeoutStreamFaultTest, MalformedAnthropicEventIsSkippedAndCountedForItsProvider) {
  primary_.otherwise(Behaviour::reply(503, openai_error("down", "server_error", "")));
  Behaviour malformed = Behaviour::ok();
  malformed.malformed_at = 3;  // after message_start, content_block_start and one word
  fallback_.script({malformed});
  auto r = chat("plain", "malformed-anthropic", kStream);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, kFullText);
  EXPECT_TRUE(s.done);
  EXPECT_FALSE(s.error) << r.body;
  EXPECT_EQ(fallback_.count(), 1u);
  const std::string text = metrics_text();
  EXPECT_NE(text.find("backstop_stream_events_skipped_total{provider=\"fallback\"} 1"),
            std::string::npos)
      << text;
}

TEST_F(TimeoutStreamFaultTest, MalformedEventBeforeTheChecksDecideIsSkipped) {
  Behaviour malformed = Behaviour::ok();
  malformed.malformed_at = 2;
  primary_.script({malformed});
  auto r = chat("checked", "malformed-checked", kStream);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_EQ(read_openai_stream(r.body).content, kFullText);
  EXPECT_EQ(fallback_.count(), 0u);
}

TEST_F(TimeoutStreamFaultTest, MalformedEventWithNothingValidAfterItIsABrokenStream) {
  Behaviour malformed = stream_then(4, StreamEnd::kComplete);
  malformed.malformed_at = 3;  // the role chunk, two words, the malformed event, the end
  primary_.script({malformed});
  auto r = chat("checked", "malformed-last", kStream);
  expect_fallback_stream(r, "broken_stream");
}

// --- stream_mode: buffer ------------------------------------------------------------------

TEST_F(TimeoutStreamFaultTest, BufferModeFallsBackFromACutPrimaryBeforeAByte) {
  primary_.script({stream_then(3, StreamEnd::kCut)});
  auto r = chat("buffered", "buffer-cut", kStream);
  expect_fallback_stream(r, "broken_stream");
}

TEST_F(TimeoutStreamFaultTest, BufferModeFallsBackFromAStalledPrimaryBeforeAByte) {
  primary_.script({stream_then(3, StreamEnd::kStall)});
  auto r = chat("buffered", "buffer-stall", kStream);
  expect_fallback_stream(r, "timeout");
  EXPECT_LT(hop(), Ms(1000));
}

// --- 4xx that another target would not answer differently ------------------------------

TEST_F(TimeoutStreamFaultTest, ContentFilterIsReturnedToTheClientAsRejected) {
  primary_.script({Behaviour::reply(
      400, openai_error("The response was filtered due to the prompt triggering the content "
                        "management policy.",
                        "invalid_request_error", "content_filter"))});
  auto r = chat("plain", "content-filter");
  ASSERT_EQ(r.status, 400) << r.body;
  auto body = json(r);
  EXPECT_EQ(body.at_pointer("/error/code"), "content_filter");
  EXPECT_NE(body.at_pointer("/error/message").as_string().find("content management policy"),
            std::string::npos);
  EXPECT_EQ(primary_.count(), 1u);
  EXPECT_EQ(fallback_.count(), 0u);  // no other target would answer differently
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "rejected"}), 1);
  EXPECT_EQ(counter(metrics().fallbacks_total, {"plain", "primary", "fallback", "rejected"}), 0);
}

TEST_F(TimeoutStreamFaultTest, ContextLengthExceededStillFallsBack) {
  primary_.script(
      {Behaviour::reply(400, openai_error("This model's maximum context length is 8192 tokens.",
                                          "invalid_request_error", "context_length_exceeded"))});
  auto r = chat("plain", "context-length");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_NE(r.header("x-backstop-fallback-reason"), "rejected");
  EXPECT_EQ(fallback_.count(), 1u);
}

// --- replays and client-visible errors ----------------------------------------------------

TEST_F(TimeoutStreamFaultTest, PooledConnectionHeldThenClosedIsNotReplayedSilently) {
  ASSERT_EQ(chat("plain", "warm").status, 200);  // leaves a pooled connection to the primary
  // The pooled connection holds the request 100 ms, then closes before a byte of answer.
  primary_.script({Behaviour::reset().after(Ms(100))});
  auto r = chat("plain", "held-then-closed");
  ASSERT_EQ(r.status, 200) << r.body;
  std::size_t seen = 0;
  for (const Received& q : primary_.received())
    seen += q.header("x-request-id") == "held-then-closed";
  for (const Received& q : fallback_.received())
    seen += q.header("x-request-id") == "held-then-closed";
  // The held request failed and something answered after it (a counted replay or retry, or
  // the fallback): every request an upstream saw is an attempt the client is told about.
  EXPECT_GE(seen, 2u);
  EXPECT_EQ(r.header("x-backstop-attempts"), std::to_string(seen));
}

TEST_F(TimeoutStreamFaultTest, ErrorsNeverNameTheUpstreamsAddress) {
  primary_.otherwise(Behaviour::reset());
  fallback_.otherwise(Behaviour::reset());
  auto r = chat("plain", "no-address");
  ASSERT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(r.body.find("127.0.0.1"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(std::to_string(primary_.port())), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(std::to_string(fallback_.port())), std::string::npos) << r.body;
}

}  // namespace
}  // namespace backstop::faults
