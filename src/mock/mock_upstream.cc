#include "mock/mock_upstream.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/chat.h"
#include "chat/stream.h"
#include "dialects/builtin/builtin.h"
#include "providers/synth.h"

namespace backstop::mock {
namespace {

namespace net = boost::asio;
namespace bj = boost::json;
using providers::Fault;
using providers::mix64;
using providers::parse_fault;
using providers::stream_events;
using providers::synthesize;

// What a request asked the mock to do.
struct Behaviour {
  enum class Kind {
    kAnswer,
    kRateLimited,
    kServerError,
    kBadResponse,
    kTimeout,
    kSlow,
    kStreamBreak,
    kStreamAbort,
    kStreamNoDone,
    kStreamMalformed,
    kContentFilter,
    kContextLength
  };
  Kind kind = Kind::kAnswer;
  Fault fault = Fault::kNone;  // kAnswer: the defect in the answer
};

std::optional<Behaviour> parse_behaviour(std::string_view name) {
  using Kind = Behaviour::Kind;
  if (const auto fault = parse_fault(name)) return Behaviour{Kind::kAnswer, *fault};
  if (name == "rate_limited") return Behaviour{Kind::kRateLimited};
  if (name == "server_error") return Behaviour{Kind::kServerError};
  if (name == "bad_response") return Behaviour{Kind::kBadResponse};
  if (name == "timeout") return Behaviour{Kind::kTimeout};
  if (name == "slow") return Behaviour{Kind::kSlow};
  if (name == "stream_break") return Behaviour{Kind::kStreamBreak};
  if (name == "stream_abort") return Behaviour{Kind::kStreamAbort};
  if (name == "stream_no_done") return Behaviour{Kind::kStreamNoDone};
  if (name == "stream_malformed") return Behaviour{Kind::kStreamMalformed};
  if (name == "content_filter") return Behaviour{Kind::kContentFilter};
  if (name == "context_length") return Behaviour{Kind::kContextLength};
  return std::nullopt;
}

// One `[mock:NAME*N@MODEL]` marker (the suffixes are optional and in either order).
struct Marker {
  std::string_view name;
  int times = 0;  // 0: every request
  std::string_view model;
};

std::optional<std::int64_t> parse_count(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

std::vector<Marker> find_markers(std::string_view text) {
  constexpr std::string_view kOpen = "[mock:";
  std::vector<Marker> markers;
  for (std::size_t at = text.find(kOpen); at != std::string_view::npos;
       at = text.find(kOpen, at + 1)) {
    const std::size_t close = text.find(']', at);
    if (close == std::string_view::npos) break;
    std::string_view body = text.substr(at + kOpen.size(), close - at - kOpen.size());
    Marker marker;
    std::size_t cut = body.find_first_of("*@");
    marker.name = body.substr(0, cut);
    while (cut != std::string_view::npos) {
      const char sign = body[cut];
      const std::size_t next = body.find_first_of("*@", cut + 1);
      const std::string_view value = body.substr(cut + 1, next - cut - 1);
      if (sign == '@') marker.model = value;
      if (sign == '*') marker.times = static_cast<int>(parse_count(value).value_or(0));
      cut = next;
    }
    markers.push_back(marker);
  }
  return markers;
}

// The number N of the first `OPENN]` marker in `text` (`open` "[mock-delay:", say).
std::optional<std::int64_t> number_marker(std::string_view text, std::string_view open) {
  const std::size_t at = text.find(open);
  if (at == std::string_view::npos) return std::nullopt;
  const std::size_t close = text.find(']', at);
  if (close == std::string_view::npos) return std::nullopt;
  return parse_count(text.substr(at + open.size(), close - at - open.size()));
}

// `[mock-tool:NAME]`: the name of the tool the answer should call; empty without one.
std::string_view tool_marker(std::string_view text) {
  constexpr std::string_view kOpen = "[mock-tool:";
  const std::size_t at = text.find(kOpen);
  if (at == std::string_view::npos) return {};
  const std::size_t close = text.find(']', at);
  if (close == std::string_view::npos) return {};
  return text.substr(at + kOpen.size(), close - at - kOpen.size());
}

// `request` with the tool named `name` moved first (the one a correct answer calls), when
// it offers that tool and it is not first already; nullopt otherwise.
std::optional<chat::ChatRequest> with_tool_first(const chat::ChatRequest& request,
                                                 std::string_view name) {
  const auto it = std::ranges::find_if(request.tools,
                                       [&](const chat::Tool& tool) { return tool.name == name; });
  if (name.empty() || it == request.tools.end() || it == request.tools.begin()) {
    return std::nullopt;
  }
  std::optional<chat::ChatRequest> out(request);
  const auto index = it - request.tools.begin();
  std::rotate(out->tools.begin(), out->tools.begin() + index, out->tools.begin() + index + 1);
  return out;
}

std::string last_user_text(const chat::ChatRequest& request) {
  for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it) {
    if (it->role == chat::Role::kUser) return it->text();
  }
  return {};
}

// Built outside the coroutines: g++ 12 miscompiles aggregate temporaries in co_await
// expressions (a double free).
http::Response whole(int status, std::string content_type, std::string body) {
  http::Response response;
  response.status = status;
  response.content_type = std::move(content_type);
  response.body = std::move(body);
  return response;
}

http::Response error_response(const dialects::Dialect& dialect, int status, core::ErrorCode code,
                              std::string message) {
  const core::Error error{code, std::move(message)};
  http::Response response;
  response.status = status;
  response.body = dialect.encode_error(error, {});
  return response;
}

// A 400 in the dialect's error shape, with the `code` where the dialect's errors carry one.
http::Response refusal(const dialects::Dialect& dialect, std::string code, std::string message) {
  core::Error error{core::ErrorCode::kRejected, std::move(message), 400};
  error.upstream_code = std::move(code);
  http::Response response;
  response.status = 400;
  response.body = dialect.encode_error(error, {});
  return response;
}

std::string hex(std::uint64_t value) {
  constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) out[i] = kDigits[value & 0xf];
  return out;
}

// The SSE frames that stream `response` in `dialect`, one per chunk or event; the last one
// ends the stream ([DONE], or message_delta and message_stop). `filler` text deltas of one
// word each come first, before the answer's own text or call.
std::vector<std::string> stream_frames(const dialects::Dialect& dialect,
                                       const chat::ChatResponse& response,
                                       const chat::ChatRequest& request, std::size_t filler) {
  std::vector<chat::StreamEvent> events = stream_events(response);
  // The input tokens early, as Anthropic's message_start carries them (a dialect that
  // reports usage once keeps the final, whole one).
  chat::Usage input;
  input.input_tokens = response.usage.input_tokens;
  events.insert(events.begin() + 1, chat::usage_event(input));
  events.insert(events.begin() + 2, filler, chat::text_event("tick "));
  const auto writer = dialect.stream_writer(request, request.model);
  std::vector<std::string> frames;
  for (const chat::StreamEvent& event : events) {
    if (std::string frame = writer->encode(event); !frame.empty()) {
      frames.push_back(std::move(frame));
    }
  }
  frames.push_back(writer->finish());
  // A keep-alive after the first event, as the API sends one (Anthropic's ping).
  const std::size_t end = frames.front().find("\n\n");
  if (end != std::string::npos) frames.front().insert(end + 2, dialect.keepalive_frame());
  return frames;
}

// A copy of the first event of `frame` whose JSON does not parse.
std::string malformed(const std::string& frame) {
  std::string out = frame.substr(0, frame.find("\n\n"));
  const std::size_t brace = out.find("data: {");
  if (brace != std::string::npos) out.insert(brace + 7, "oops");
  return out + "\n\n";
}

// How a stream trickles: filler chunks first, and the wait between frames.
struct Trickle {
  std::size_t chunks = 0;
  std::chrono::milliseconds interval{0};
};

// The most filler chunks a request may ask for: the frames are built before the first is sent.
constexpr std::int64_t kMaxStreamChunks = 100'000;
// The longest wait between frames a request may ask for.
constexpr std::int64_t kMaxChunkIntervalMs = 60'000;

// The trickle a request asks for (headers first, then markers in `text`), else the options'.
Trickle trickle_of(const http::Request& request, std::string_view text,
                   const MockOptions& options) {
  std::optional<std::int64_t> chunks = parse_count(request.header("x-mock-stream-chunks"));
  if (!chunks) chunks = number_marker(text, "[mock-chunks:");
  std::optional<std::int64_t> interval = parse_count(request.header("x-mock-chunk-interval-ms"));
  if (!interval) interval = number_marker(text, "[mock-interval:");
  Trickle trickle;
  trickle.chunks = chunks ? static_cast<std::size_t>(std::min(*chunks, kMaxStreamChunks))
                          : options.stream_chunks;
  trickle.interval = interval ? std::chrono::milliseconds(std::min(*interval, kMaxChunkIntervalMs))
                              : options.stream_frame_delay;
  return trickle;
}

std::vector<http::Header> stream_headers() { return {{"cache-control", "no-cache"}}; }

// A token-counting endpoint: {"input_tokens": N}, N a deterministic estimate from the
// body's size; 400 when the body is not an object with model and messages.
http::Response count_tokens(const dialects::Dialect& dialect, const std::string& body) {
  boost::system::error_code ec;
  const bj::value parsed = bj::parse(body, ec);
  const bj::object* object = ec ? nullptr : parsed.if_object();
  if (object == nullptr || !object->contains("model") || !object->contains("messages")) {
    return error_response(dialect, 400, core::ErrorCode::kInvalidArgument,
                          "count_tokens: the body must be a JSON object with `model` and "
                          "`messages`");
  }
  const auto tokens = std::max<std::size_t>(1, body.size() / 4);
  return whole(200, "application/json",
               bj::serialize(bj::object{{"input_tokens", static_cast<std::uint64_t>(tokens)}}));
}

// A Responder that adds `extra` headers to whatever `inner` sends.
class AddHeaders final : public http::Responder {
 public:
  AddHeaders(http::Responder& inner, std::vector<http::Header> extra)
      : inner_(inner), extra_(std::move(extra)) {}

  net::awaitable<void> send(http::Response response) override {
    response.headers.insert(response.headers.end(), extra_.begin(), extra_.end());
    co_await inner_.send(std::move(response));
  }
  net::awaitable<bool> begin_stream(int status, std::string content_type,
                                    std::vector<http::Header> headers) override {
    headers.insert(headers.end(), extra_.begin(), extra_.end());
    co_return co_await inner_.begin_stream(status, std::move(content_type), std::move(headers));
  }
  net::awaitable<bool> write(std::string_view data) override {
    co_return co_await inner_.write(data);
  }
  net::awaitable<void> end_stream() override { co_await inner_.end_stream(); }

 private:
  http::Responder& inner_;
  std::vector<http::Header> extra_;
};

}  // namespace

MockUpstream::MockUpstream(net::io_context& loop, MockOptions options)
    : loop_(loop),
      options_(options),
      dialects_(options.dialects != nullptr ? *options.dialects : dialects::builtin()) {}

int MockUpstream::count(const std::string& key) {
  auto [it, inserted] = seen_.try_emplace(key, 0);
  const int n = ++it->second;
  if (inserted) {
    seen_order_.push_back(key);
    if (seen_order_.size() > options_.max_tracked_ids) {
      seen_.erase(seen_order_.front());
      seen_order_.pop_front();
    }
  }
  return n;
}

net::awaitable<void> MockUpstream::wait(std::chrono::milliseconds delay) {
  if (delay.count() <= 0) co_return;
  net::steady_timer timer(loop_, delay);
  co_await timer.async_wait(net::as_tuple(net::use_awaitable));
}

net::awaitable<void> MockUpstream::handle(http::Request request, http::Responder& responder) {
  // The dialect's own request headers that reached the mock, echoed as x-mock-NAME.
  std::vector<http::Header> extra;
  for (std::string_view name : dialects_.for_path(request.path()).forwarded_headers()) {
    if (std::string_view value = request.header(name); !value.empty()) {
      extra.push_back({"x-mock-" + std::string(name), std::string(value)});
    }
  }
  if (extra.empty()) {
    co_await answer(std::move(request), responder);
    co_return;
  }
  AddHeaders echoing(responder, std::move(extra));
  co_await answer(std::move(request), echoing);
}

net::awaitable<void> MockUpstream::answer(http::Request request, http::Responder& responder) {
  const std::string_view path = request.path();
  if (request.method == "GET" && path == "/healthz") {
    co_await responder.send(whole(200, "application/json", R"({"status":"ok"})"));
    co_return;
  }
  // The endpoints of the dialects that serve models (an upstream side).
  const auto [found, endpoint] = dialects_.endpoint(path);
  const bool known = found != nullptr && !found->upstream_path().empty();
  const dialects::Dialect& dialect = known ? *found : dialects_.for_path(path);
  if (!known || request.method != "POST") {
    co_await responder.send(
        error_response(dialect, 404, core::ErrorCode::kNotFound,
                       "no route for " + request.method + " " + std::string(path)));
    co_return;
  }
  if (endpoint->kind == dialects::Endpoint::Kind::kCountTokens) {
    co_await responder.send(count_tokens(dialect, request.body));
    co_return;
  }
  auto decoded = dialect.decode_request(request.body);
  if (!decoded) {
    co_await responder.send(
        error_response(dialect, 400, decoded.error().code, decoded.error().message));
    co_return;
  }
  const chat::ChatRequest& chat_request = *decoded;
  const std::string text = last_user_text(chat_request);
  const std::optional<chat::ChatRequest> reordered =
      with_tool_first(chat_request, tool_marker(text));

  Behaviour behaviour;
  if (const std::string_view name = request.header("x-mock-fault"); !name.empty()) {
    const auto parsed = parse_behaviour(name);
    if (!parsed) {
      co_await responder.send(error_response(dialect, 400, core::ErrorCode::kInvalidArgument,
                                             "unknown x-mock-fault " + std::string(name)));
      co_return;
    }
    behaviour = *parsed;
  } else {
    std::optional<int> ordinal;  // of this request among those with its id and model
    for (const Marker& marker : find_markers(text)) {
      if (!marker.model.empty() && marker.model != chat_request.model) continue;
      const auto parsed = parse_behaviour(marker.name);
      if (!parsed) continue;
      if (marker.times > 0) {
        const std::string_view id = request.header("x-request-id");
        // Without an id every request is a first one.
        if (!ordinal) ordinal = id.empty() ? 1 : count(std::string(id) + '\n' + chat_request.model);
        if (*ordinal > marker.times) continue;
      }
      behaviour = *parsed;
      break;
    }
  }

  const Trickle trickle = trickle_of(request, text, options_);
  std::optional<std::int64_t> delay_ms = parse_count(request.header("x-mock-delay-ms"));
  if (!delay_ms) delay_ms = number_marker(text, "[mock-delay:");
  if (delay_ms) {
    co_await wait(std::chrono::milliseconds(*delay_ms));
  } else if (behaviour.kind == Behaviour::Kind::kSlow) {
    co_await wait(options_.slow_delay);
  }

  using Kind = Behaviour::Kind;
  switch (behaviour.kind) {
    case Kind::kRateLimited: {
      http::Response response =
          error_response(dialect, 429, core::ErrorCode::kRateLimited, "mock: rate limit reached");
      response.headers.push_back({"retry-after", "0"});
      co_await responder.send(std::move(response));
      co_return;
    }
    case Kind::kServerError:
      co_await responder.send(
          error_response(dialect, 500, core::ErrorCode::kInternal, "mock: server error"));
      co_return;
    case Kind::kBadResponse:
      co_await responder.send(whole(200, "text/html", "<html>mock: this is not JSON</html>"));
      co_return;
    case Kind::kContentFilter:
      co_await responder.send(refusal(dialect, "content_policy_violation",
                                      "mock: this request was rejected by the content policy"));
      co_return;
    case Kind::kContextLength: {
      // Built before the co_await: GCC 12 destroys a temporary of a conditional operator
      // inside a co_await expression twice.
      http::Response response =
          refusal(dialect, "context_length_exceeded",
                  "mock: prompt is too long: 300000 tokens > 200000 maximum (this model's "
                  "maximum context length is 200000 tokens)");
      co_await responder.send(std::move(response));
      co_return;
    }
    case Kind::kTimeout:
      co_await wait(options_.timeout_wait);
      co_await responder.send(
          error_response(dialect, 504, core::ErrorCode::kTimeout, "mock: gave up"));
      co_return;
    case Kind::kAnswer:
    case Kind::kSlow:
    case Kind::kStreamBreak:
    case Kind::kStreamAbort:
    case Kind::kStreamNoDone:
    case Kind::kStreamMalformed:
      break;
  }

  const std::uint64_t random = mix64(options_.seed + ++served_);
  chat::ChatResponse response = synthesize(reordered ? *reordered : chat_request, behaviour.fault,
                                           chat_request.model, random);
  response.created = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  // The dialect's own id shapes, so SDKs see what they expect ("msg_", "toolu_").
  if (const std::string_view prefix = dialect.response_id_prefix(); !prefix.empty()) {
    response.id = std::string(prefix) + hex(random);
  }
  if (const std::string_view prefix = dialect.tool_call_id_prefix(); !prefix.empty()) {
    for (auto& call : response.tool_calls) {
      if (call.id.starts_with("call_")) call.id.replace(0, 5, prefix);
    }
  }
  if (chat_request.stream) {
    std::vector<std::string> frames =
        stream_frames(dialect, response, chat_request, trickle.chunks);
    if (behaviour.kind == Kind::kStreamNoDone) {
      // The whole answer, without the last event: OpenAI's [DONE], Anthropic's message_stop.
      std::string& last = frames.back();
      last.erase(last.rfind(dialect.last_frame_marker()));
      if (last.empty()) frames.pop_back();  // an empty write would end the chunked body
    } else if (behaviour.kind == Kind::kStreamMalformed) {
      // One event that is not JSON, after the first.
      frames.insert(frames.begin() + 1, malformed(frames[1]));
    }
    const bool cut = behaviour.kind == Kind::kStreamBreak || behaviour.kind == Kind::kStreamAbort;
    // A cut stream stops halfway, before its end frame, but after at least one chunk.
    const std::size_t count =
        cut ? std::max<std::size_t>(1, (frames.size() - 1) / 2) : frames.size();
    co_await write_stream(responder, std::move(frames), count, behaviour.kind != Kind::kStreamAbort,
                          trickle.interval);
    co_return;
  }
  http::Response out;
  out.body = dialect.encode_response(response, chat_request, chat_request.model);
  co_await responder.send(std::move(out));
}

net::awaitable<void> MockUpstream::write_stream(http::Responder& responder,
                                                std::vector<std::string> frames, std::size_t count,
                                                bool end, std::chrono::milliseconds interval) {
  std::string content_type = "text/event-stream";
  std::vector<http::Header> headers = stream_headers();
  if (!co_await responder.begin_stream(200, std::move(content_type), std::move(headers))) {
    co_return;
  }
  for (std::size_t i = 0; i < count && i < frames.size(); ++i) {
    if (i > 0) co_await wait(interval);
    if (!co_await responder.write(frames[i])) co_return;
  }
  if (end) co_await responder.end_stream();
}

}  // namespace backstop::mock
