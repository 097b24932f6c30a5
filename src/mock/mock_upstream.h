#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "dialects/registry.h"
#include "http/server.h"

namespace boost::asio {
class io_context;
}

namespace backstop::mock {

struct MockOptions {
  std::chrono::milliseconds timeout_wait{60'000};   // how long a `timeout` request hangs
  std::chrono::milliseconds slow_delay{1'000};      // `slow` without a delay given
  std::size_t max_tracked_ids = 4096;               // request ids remembered for NAME*N
  std::uint64_t seed = 0;                           // varies ids; e.g. the worker index
  std::chrono::milliseconds stream_frame_delay{0};  // between the frames of a stream
  std::size_t stream_chunks = 0;  // filler text deltas in every stream (0: the answer as is)
  const dialects::Registry* dialects = nullptr;  // the dialects served; nullptr: built-in
};

// The upstream behind `backstop mock`: POST /v1/chat/completions (OpenAI) and
// POST /v1/messages (Anthropic) answer with synthesized answers (see synthesize(): one tool
// call when the request offers tools, and a short text once a tool result ends the
// conversation, so an agent's tool round trip ends); POST /v1/messages/count_tokens answers
// like Anthropic, {"input_tokens": N} with N the body's bytes / 4 (at least 1), or 400 in
// Anthropic's error shape for a body that is not a JSON object with `model` and `messages`;
// GET /healthz is 200; anything else 404. Every answer on an Anthropic path carries
// `x-mock-anthropic-beta` with the request's `anthropic-beta` header when it had one, so a
// test can see what reached the upstream. A request picks a fault with the header
// `x-mock-fault: NAME`, or with markers in its last user message: `[mock:NAME]`,
// `[mock:NAME@MODEL]` (only when the request's model is MODEL), `[mock:NAME*N]` (only the
// first N requests with this x-request-id and model); the first marker that applies wins.
// NAME is a synth fault (no_tool_call, unknown_tool, invalid_json, schema, empty,
// truncated) or rate_limited (429, Retry-After: 0), server_error (500), bad_response (200,
// not JSON), timeout (hang, then 504), slow (wait `x-mock-delay-ms` or `[mock-delay:MS]`,
// then answer). The delay header or marker alone delays any request. `[mock-tool:NAME]` in
// the last user message makes a tool call name NAME instead of the first tool, when the
// request offers NAME (Claude Code, say, lists a placeholder tool first). Undecodable
// requests get 400. Errors come in the endpoint's dialect.
//
// A request with "stream": true is answered as a text/event-stream in its dialect (OpenAI
// chunks ending with data: [DONE], the usage chunk when stream_options.include_usage asks;
// Anthropic events with a ping after message_start, ending with message_stop), the text and
// arguments cut across several deltas. Faults apply as above, the errors before any stream
// byte, plus two that only streams feel: stream_break (the first part of the stream, then a
// clean end of the body with no [DONE] / message_stop), stream_abort (the first part,
// then the connection closes mid-body), stream_no_done (the whole answer without its last
// event, [DONE] or message_stop: complete for OpenAI, broken for Anthropic) and
// stream_malformed (one event that is not JSON after the first). A stream trickles when asked:
// `x-mock-stream-chunks: N` (or `[mock-chunks:N]`; else MockOptions::stream_chunks) puts N
// text deltas of one filler word each before the answer's own text or call, and
// `x-mock-chunk-interval-ms: MS` (or `[mock-interval:MS]`; else stream_frame_delay) waits MS
// between frames, the first frame at once. content_filter (400,
// code content_policy_violation) and context_length (400, context_length_exceeded; Anthropic:
// "prompt is too long") answer like the APIs' refusals. One per worker thread.
class MockUpstream final : public http::Service {
 public:
  explicit MockUpstream(boost::asio::io_context& loop, MockOptions options = {});

  boost::asio::awaitable<void> handle(http::Request request, http::Responder& responder) override;

 private:
  boost::asio::awaitable<void> answer(http::Request request, http::Responder& responder);
  // How many requests with this key (x-request-id and model) came so far, this one included.
  int count(const std::string& key);
  boost::asio::awaitable<void> wait(std::chrono::milliseconds delay);
  // Writes the first `count` of `frames` as a text/event-stream, `interval` apart; then ends
  // the body when `end` is set, else leaves it open (the server closes the connection).
  boost::asio::awaitable<void> write_stream(http::Responder& responder,
                                            std::vector<std::string> frames, std::size_t count,
                                            bool end, std::chrono::milliseconds interval);

  boost::asio::io_context& loop_;
  MockOptions options_;
  const dialects::Registry& dialects_;
  std::uint64_t served_ = 0;
  std::unordered_map<std::string, int> seen_;
  std::deque<std::string> seen_order_;  // oldest first, to forget beyond max_tracked_ids
};

}  // namespace backstop::mock
