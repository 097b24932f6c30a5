// One test per upstream fault: what the caller got, and what the upstreams saw (how many
// attempts, how far apart). The gateway runs in-process; its primary and fallback are two
// scripted fault servers. Times are small milliseconds, measured where the upstream saw them.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "fault_gateway.h"

namespace backstop::faults {
namespace {

constexpr std::string_view kProviderKeys = "    timeout_ms: 3000\n";

// Every workload retries a failing target once, quickly, unless its test needs otherwise.
constexpr std::string_view kWorkloads = R"(workloads:
  plain:
    route: [primary, fallback]
    retries: {max: 1, base_backoff_ms: 5, max_backoff_ms: 20}
  checked:
    route: [primary, fallback]
    validate: {content: non_empty}
    retries: {max: 1, base_backoff_ms: 5, max_backoff_ms: 20}
  honoured:
    route: [primary, fallback]
    retries: {max: 1, base_backoff_ms: 1, max_backoff_ms: 1, retry_after_cap_ms: 5000}
  capped:
    route: [primary, fallback]
    retries: {max: 1, base_backoff_ms: 1, max_backoff_ms: 1, retry_after_cap_ms: 80}
  jittered:
    route: [primary, fallback]
    retries: {max: 2, base_backoff_ms: 60, max_backoff_ms: 60}
)";

const std::string kFullText = Answer{}.text;

class FaultTest : public FaultGatewayTest {
 protected:
  void SetUp() override { start(kProviderKeys, kWorkloads); }
};

Behaviour rate_limited(std::vector<Header> headers = {}) {
  return Behaviour::reply(429, openai_error("Rate limit reached", "rate_limit_error", "rate_limit"),
                          std::move(headers));
}

Behaviour server_error(int status) {
  return Behaviour::reply(status, openai_error("upstream trouble", "server_error", ""));
}

Behaviour cut_after(int events) {
  Behaviour b = Behaviour::ok();
  b.stop_after_events = events;
  b.end = StreamEnd::kCut;
  return b;
}

TEST_F(FaultTest, RetryAfterIsWaitedBeforeTheSameTargetRetry) {
  primary_.script({rate_limited({{"retry-after-ms", "150"}})});
  auto r = chat("honoured", "retry-after-1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "");
  ASSERT_EQ(primary_.count(), 2u);
  // The workload's own backoff is 1 ms: only the upstream's Retry-After makes this wait.
  EXPECT_GE(primary_.spacing("retry-after-1").at(0), Ms(150));
  EXPECT_EQ(fallback_.count(), 0u);
}

TEST_F(FaultTest, RetryAfterIsCappedByRetryAfterCapMs) {
  primary_.script({rate_limited({{"retry-after", "30"}})});
  auto r = chat("capped", "retry-after-capped");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  ASSERT_EQ(primary_.count(), 2u);
  const Ms gap = primary_.spacing("retry-after-capped").at(0);
  EXPECT_GE(gap, Ms(80));    // the cap is waited
  EXPECT_LT(gap, Ms(2000));  // not the 30 s the upstream asked for
}

TEST_F(FaultTest, RetryAfterIsWaitedBeforeAStreamsRetry) {
  primary_.script({rate_limited({{"retry-after-ms", "150"}})});
  auto r = chat("honoured", "retry-after-stream", R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_TRUE(read_openai_stream(r.body).done);
  ASSERT_EQ(primary_.count(), 2u);
  EXPECT_GE(primary_.spacing("retry-after-stream").at(0), Ms(150));
  EXPECT_EQ(fallback_.count(), 0u);
}

TEST_F(FaultTest, PersistentRateLimitBacksOffWithJitterThenFallsBack) {
  primary_.otherwise(rate_limited());
  constexpr int kRequests = 5;
  for (int i = 0; i < kRequests; ++i) {
    auto r = chat("jittered", "rate-limited-" + std::to_string(i));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
    EXPECT_EQ(r.header("x-backstop-attempts"), "4");  // the first try and 2 retries, then fallback
    EXPECT_EQ(r.header("x-backstop-fallback-reason"), "rate_limited");
    EXPECT_EQ(json(r).at("model"), "fallback-model");
  }
  EXPECT_EQ(primary_.count(), 3u * kRequests);
  EXPECT_EQ(fallback_.count(), static_cast<std::size_t>(kRequests));
  std::vector<Ms> gaps;
  for (int i = 0; i < kRequests; ++i) {
    auto spacing = primary_.spacing("rate-limited-" + std::to_string(i));
    ASSERT_EQ(spacing.size(), 2u);
    gaps.insert(gaps.end(), spacing.begin(), spacing.end());
  }
  // Full jitter: each wait is drawn from [0, 60 ms]; a fixed backoff would wait 60 ms each
  // time, so among ten draws some fall well below it (all ten above 48 ms: p < 1e-6).
  EXPECT_LT(*std::min_element(gaps.begin(), gaps.end()), Ms(48));
  EXPECT_LT(*std::max_element(gaps.begin(), gaps.end()), Ms(60 + 500));
  EXPECT_EQ(counter(metrics().fallbacks_total, {"jittered", "primary", "fallback", "rate_limited"}),
            kRequests);
}

TEST_F(FaultTest, ServerErrorOnceIsRetriedAndServedByThePrimary) {
  primary_.script({server_error(500)});
  auto r = chat("plain", "error-once");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "");
  EXPECT_EQ(json(r).at("model"), "primary-model");
  ASSERT_EQ(primary_.count(), 2u);
  EXPECT_LT(primary_.spacing("error-once").at(0), Ms(20 + 500));  // backoff of at most 20 ms
  EXPECT_EQ(fallback_.count(), 0u);
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "primary"}), 1);
  EXPECT_EQ(counter(metrics().attempts_total, {"plain", "primary", "fail"}), 1);
  EXPECT_EQ(counter(metrics().attempts_total, {"plain", "primary", "pass"}), 1);
}

TEST_F(FaultTest, PersistentServiceUnavailableFallsBackAfterTheRetries) {
  primary_.otherwise(server_error(503));
  auto r = chat("plain", "unavailable");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-attempts"), "3");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
  EXPECT_EQ(json(r).at("model"), "fallback-model");
  EXPECT_EQ(primary_.count(), 2u);
  ASSERT_EQ(fallback_.count(), 1u);
  const Received sent = fallback_.received().at(0);
  EXPECT_EQ(sent.target, "/v1/messages");  // translated for the Anthropic fallback
  EXPECT_EQ(sent.model(), "fallback-model");
}

TEST_F(FaultTest, ResetBeforeHeadersFallsBackWithoutARetry) {
  primary_.script({Behaviour::reset()});
  auto r = chat("plain", "reset");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
  // A fresh connection that was reset is neither replayed nor retried.
  EXPECT_EQ(primary_.count(), 1u);
  EXPECT_EQ(fallback_.count(), 1u);
}

TEST_F(FaultTest, StreamCutMidAnswerEndsTheClientsStreamWithAnError) {
  primary_.script({cut_after(3)});  // the role chunk and two words, then the connection closes
  auto r = chat("plain", "cut-plain", R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, "the fault ");
  EXPECT_TRUE(s.error) << r.body;
  EXPECT_FALSE(s.done) << r.body;  // never a clean end
  // Bytes reached the client: no retry and no fallback could be spliced in.
  EXPECT_EQ(primary_.count(), 1u);
  EXPECT_EQ(fallback_.count(), 0u);
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "failed"}), 1);
}

TEST_F(FaultTest, StreamCutBeforeTheChecksDecideFallsBackBeforeAByte) {
  primary_.script({cut_after(3)});
  auto r = chat("checked", "cut-checked", R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_FALSE(r.header("x-backstop-fallback-reason").empty());
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_EQ(s.content, kFullText);  // the fallback's whole answer, none of the primary's
  EXPECT_TRUE(s.done);
  EXPECT_FALSE(s.error);
  EXPECT_EQ(std::count(s.models.begin(), s.models.end(), "fallback-model"),
            static_cast<std::ptrdiff_t>(s.models.size()));
  EXPECT_EQ(primary_.count(), 1u);
  ASSERT_EQ(fallback_.count(), 1u);
  EXPECT_TRUE(fallback_.received().at(0).wants_stream());
}

TEST_F(FaultTest, ContextLengthExceededFallsBackWithoutARetry) {
  primary_.script({Behaviour::reply(
      400, openai_error("This model's maximum context length is 8192 tokens. However, you "
                        "requested 40000 tokens.",
                        "invalid_request_error", "context_length_exceeded"))});
  auto r = chat("plain", "context-length");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-attempts"), "2");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
  EXPECT_EQ(json(r).at("model"), "fallback-model");
  EXPECT_EQ(primary_.count(), 1u);  // a 400 is not retried on the same target
  EXPECT_EQ(fallback_.count(), 1u);
}

TEST_F(FaultTest, FallbackRejectingAnAssistantPrefillGivesTheAllFailedError) {
  primary_.otherwise(server_error(503));
  fallback_.script({Behaviour::reply(
      400, anthropic_error("invalid_request_error",
                           "This model does not support assistant message prefill. The "
                           "conversation must end with a user message."))});
  auto r = post("/v1/chat/completions",
                R"({"model":"plain","messages":[{"role":"user","content":"Answer in JSON."},)"
                R"({"role":"assistant","content":"{"}]})",
                {{"x-request-id", "prefill"}});
  ASSERT_EQ(r.status, 502) << r.body;
  auto body = json(r);
  EXPECT_EQ(body.at_pointer("/error/code"), "all_targets_failed");
  const auto& attempts = body.at_pointer("/error/attempts").as_array();
  ASSERT_EQ(attempts.size(), 3u);
  for (int i : {0, 1}) {
    EXPECT_EQ(attempts[i].at("provider"), "primary");
    EXPECT_EQ(attempts[i].at("model"), "primary-model");
    EXPECT_EQ(attempts[i].at("reason"), "upstream_error");
    EXPECT_EQ(attempts[i].at("status"), 503);
  }
  EXPECT_EQ(attempts[2].at("provider"), "fallback");
  EXPECT_EQ(attempts[2].at("model"), "fallback-model");
  EXPECT_EQ(attempts[2].at("status"), 400);
  EXPECT_NE(attempts[2].at("detail").as_string().find("prefill"), std::string::npos);
  EXPECT_EQ(primary_.count(), 2u);
  ASSERT_EQ(fallback_.count(), 1u);  // a 400 is not retried
  EXPECT_EQ(fallback_.received().at(0).last_role(), "assistant");
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "failed"}), 1);
}

TEST_F(FaultTest, PrimaryOutageIsServedByTheFallbackThenByThePrimaryAgain) {
  // The outage lasts as long as the test says: three requests in, the primary recovers.
  primary_.otherwise(server_error(503));
  for (int i = 0; i < 3; ++i) {
    auto r = chat("plain", "outage-" + std::to_string(i));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
    EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
  }
  EXPECT_EQ(primary_.count(), 6u);
  EXPECT_EQ(fallback_.count(), 3u);
  primary_.otherwise(Behaviour::ok());
  for (int i = 0; i < 3; ++i) {
    auto r = chat("plain", "recovered-" + std::to_string(i));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
    EXPECT_EQ(r.header("x-backstop-attempts"), "1");
  }
  EXPECT_EQ(primary_.count(), 9u);
  EXPECT_EQ(fallback_.count(), 3u);  // nothing more once the primary is back
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "fallback"}), 3);
  EXPECT_EQ(counter(metrics().requests_total, {"plain", "primary"}), 3);
}

TEST_F(FaultTest, PrimaryDownForAWhileIsServedByTheFallbackThenBackOnThePrimaryAtOnce) {
  // "A minute" scaled down to 300 ms: the primary answers 503 until then, and heals by itself.
  const SteadyTime healed = primary_.outage(Ms(300), server_error(503));
  std::size_t during = 0;
  std::string back;  // the request id of the first answer from the primary again
  for (int i = 0; i < 200 && back.empty(); ++i) {
    const std::string id = "down-" + std::to_string(i);
    auto r = chat("plain", id);
    ASSERT_EQ(r.status, 200) << r.body;
    if (r.header("x-backstop-served-by") == "primary") {
      back = id;
      break;
    }
    EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
    EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
    ++during;
  }
  ASSERT_FALSE(back.empty()) << "the primary never served again";
  EXPECT_GT(during, 0u);
  EXPECT_EQ(fallback_.count(), during);
  // Each request of the outage tried the primary (and failed there) before the fallback; the
  // first request after it was the primary's again.
  SteadyTime last_try{};
  for (const Received& q : primary_.received()) {
    if (q.header("x-request-id") == back) {
      last_try = q.arrived;
    } else {
      EXPECT_LT(q.arrived, healed);
    }
  }
  EXPECT_GE(last_try, healed);
  EXPECT_EQ(primary_.count(), 2 * during + (primary_.spacing(back).size() + 1));
  auto after = chat("plain", "healed");
  EXPECT_EQ(after.header("x-backstop-served-by"), "primary");
  EXPECT_EQ(after.header("x-backstop-attempts"), "1");
  EXPECT_EQ(fallback_.count(), during);
}

TEST_F(FaultTest, StreamCutMidAnswerEndsAnAnthropicClientsStreamWithAnErrorEvent) {
  primary_.script({cut_after(3)});
  auto r = messages("plain", "cut-anthropic", R"(,"stream":true)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "primary");
  EXPECT_NE(r.body.find("event: content_block_delta"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("event: error"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("event: message_stop"), std::string::npos) << r.body;
  EXPECT_EQ(primary_.count(), 1u);
  EXPECT_EQ(fallback_.count(), 0u);
}

TEST_F(FaultTest, PersistentServiceUnavailableFallsBackForAnAnthropicClient) {
  primary_.otherwise(server_error(503));
  auto r = messages("plain", "unavailable-anthropic");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
  auto body = json(r);
  EXPECT_EQ(body.at("type"), "message");
  EXPECT_EQ(body.at("model"), "fallback-model");
  EXPECT_EQ(body.at_pointer("/content/0/text").as_string(), kFullText);
  EXPECT_EQ(primary_.count(), 2u);
  EXPECT_EQ(fallback_.count(), 1u);
}

// 120 input tokens at $3/M and 45 output tokens at $15/M.
constexpr double kFallbackCostUsd = (120 * 3.0 + 45 * 15.0) / 1e6;

TEST_F(FaultTest, FallbackAnswerNamesTheFallbackAndOnlyItIsBilled) {
  primary_.otherwise(server_error(503));
  fallback_.script({Behaviour::ok({kFullText, 120, 45})});
  auto r = chat("plain", "accounting");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-workload"), "plain");
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-attempts"), "3");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
  auto body = json(r);
  EXPECT_EQ(body.at("model"), "fallback-model");
  EXPECT_EQ(body.at_pointer("/usage/prompt_tokens"), 120);
  EXPECT_EQ(body.at_pointer("/usage/completion_tokens"), 45);
  EXPECT_EQ(primary_.count(), 2u);
  EXPECT_EQ(fallback_.count(), 1u);
  EXPECT_NEAR(counter(metrics().spend_usd_total, {"plain", "fallback", "fallback-model"}),
              kFallbackCostUsd, 1e-12);
  // The primary's failed attempts returned no answer: nothing of them is billed.
  EXPECT_EQ(counter(metrics().spend_usd_total, {"plain", "primary", "primary-model"}), 0);
  EXPECT_EQ(counter(metrics().tokens_total, {"primary", "primary-model", "input"}), 0);
  const std::string text = metrics_text();
  EXPECT_NE(text.find("backstop_spend_usd_total{workload=\"plain\",provider=\"fallback\","
                      "model=\"fallback-model\"} 0.001035"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("backstop_spend_usd_total{workload=\"plain\",provider=\"primary\""),
            std::string::npos)
      << text;
}

TEST_F(FaultTest, FallbackStreamNamesTheFallbackAndOnlyItIsBilled) {
  primary_.otherwise(server_error(503));
  fallback_.script({Behaviour::ok({kFullText, 120, 45})});
  auto r = chat("plain", "accounting-stream",
                R"(,"stream":true,"stream_options":{"include_usage":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-backstop-served-by"), "fallback");
  EXPECT_EQ(r.header("x-backstop-attempts"), "3");
  EXPECT_EQ(r.header("x-backstop-fallback-reason"), "upstream_error");
  OpenAIStream s = read_openai_stream(r.body);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.content, kFullText);
  EXPECT_EQ(s.prompt_tokens, 120);
  EXPECT_EQ(s.completion_tokens, 45);
  ASSERT_FALSE(s.models.empty());
  EXPECT_EQ(std::count(s.models.begin(), s.models.end(), "fallback-model"),
            static_cast<std::ptrdiff_t>(s.models.size()));
  EXPECT_NEAR(counter(metrics().spend_usd_total, {"plain", "fallback", "fallback-model"}),
              kFallbackCostUsd, 1e-12);
  EXPECT_EQ(counter(metrics().spend_usd_total, {"plain", "primary", "primary-model"}), 0);
}

}  // namespace
}  // namespace backstop::faults
