#include "providers/http_provider.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>
#include <utility>
#include <variant>

#include "chat/stream.h"
#include "http/sse.h"
#include "providers/connections.h"
#include "providers/stack_probe.h"

namespace backstop::providers {
namespace {

namespace net = boost::asio;

constexpr std::string_view kRedacted = "[redacted]";
constexpr double kMaxRetryAfterMs = 24.0 * 3600 * 1000;
// What is read of an error body before a stream: enough for any vendor's error message.
constexpr std::size_t kMaxErrorBody = 64 * 1024;
// A 2xx answer that is not a stream is read whole, up to the client's own body limit.
constexpr std::size_t kMaxWholeBody = 64 * 1024 * 1024;

using SteadyClock = std::chrono::steady_clock;
// How long the end of a body may take after [DONE] / message_stop.
constexpr std::chrono::milliseconds kTailGrace{1'000};

// A non-negative decimal number ("0", "1.5"), surrounding spaces allowed.
std::optional<double> parse_decimal(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0 ||
      !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

std::string redact_key(std::string message, std::string_view key) {
  if (key.empty()) return message;
  for (std::size_t at = message.find(key); at != std::string::npos;
       at = message.find(key, at + kRedacted.size())) {
    message.replace(at, key.size(), kRedacted);
  }
  return message;
}

// `text` with every occurrence of `what` that stands alone (not inside a longer name or
// number) replaced by `with`.
std::string replace_token(std::string text, std::string_view what, std::string_view with) {
  if (what.empty()) return text;
  const auto name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
  };
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at)) {
    const std::size_t end = at + what.size();
    const bool joined_before = at > 0 && (name_char(text[at - 1]) || text[at - 1] == '.');
    // A dot after it goes on a longer name only when a name character follows the dot.
    const bool joined_after =
        end < text.size() && (name_char(text[end]) || (text[end] == '.' && end + 1 < text.size() &&
                                                       name_char(text[end + 1])));
    if (joined_before || joined_after) {
      at = end;
      continue;
    }
    text.replace(at, what.size(), with);
    at += with.size();
  }
  return text;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

core::Error exchange_timeout(std::int64_t timeout_ms) {
  return core::Error{core::ErrorCode::kTimeout, "the streamed answer did not end within " +
                                                    std::to_string(timeout_ms) + " ms"};
}

// The next piece of `body`, or kTimeout once `deadline` has passed (the pending read is
// cancelled then).
net::awaitable<core::Result<std::string>> next_piece(http::BodyStream& body, net::io_context& loop,
                                                     SteadyClock::time_point deadline,
                                                     std::int64_t timeout_ms) {
  using namespace net::experimental::awaitable_operators;
  if (SteadyClock::now() >= deadline) co_return std::unexpected(exchange_timeout(timeout_ms));
  net::steady_timer timer(loop, deadline);
  auto first = co_await (body.next() || timer.async_wait(net::as_tuple(net::use_awaitable)));
  if (first.index() == 1) co_return std::unexpected(exchange_timeout(timeout_ms));
  co_return std::get<0>(std::move(first));
}

// The body read to its end or to `limit` bytes, whichever comes first.
net::awaitable<core::Result<std::string>> read_body(http::BodyStream& body, net::io_context& loop,
                                                    SteadyClock::time_point deadline,
                                                    std::int64_t timeout_ms, std::size_t limit) {
  std::string out;
  while (out.size() < limit) {
    auto piece = co_await next_piece(body, loop, deadline, timeout_ms);
    if (!piece) co_return std::unexpected(std::move(piece.error()));
    if (piece->empty()) break;
    out.append(*piece, 0, limit - out.size());
  }
  co_return out;
}

// `request` asking for a stream, for a caller that did not set stream itself.
chat::ChatRequest streaming(const chat::ChatRequest& request) {
  chat::ChatRequest out = request;
  // Encoders check it against the client's body, and send that body saying so too.
  out.stream = true;
  return out;
}

// The events of an upstream's text/event-stream body, decoded in its dialect.
class SseEventStream final : public EventStream {
 public:
  SseEventStream(net::io_context& loop, std::unique_ptr<http::BodyStream> body,
                 const dialects::Dialect& dialect, SteadyClock::time_point deadline,
                 std::int64_t timeout_ms, HttpProvider& provider)
      : loop_(loop),
        body_(std::move(body)),
        dialect_(dialect),
        reader_(dialect.stream_reader()),
        deadline_(deadline),
        timeout_ms_(timeout_ms),
        provider_(provider) {}

  net::awaitable<core::Result<std::vector<chat::StreamEvent>>> next() override {
    std::vector<chat::StreamEvent> out;
    while (out.empty()) {
      if (state_ == State::kEnded) co_return out;
      if (state_ == State::kFailed) {
        co_return core::fail(core::ErrorCode::kUpstream, "the stream already failed");
      }
      if (done()) {
        // Once the answer is complete, what is left is the body's end, read (briefly) so that
        // the connection can be pooled; whatever happens to it no longer matters.
        const auto until = std::min(deadline_, SteadyClock::now() + kTailGrace);
        auto tail = co_await next_piece(*body_, loop_, until, timeout_ms_);
        if (!tail || tail->empty()) state_ = State::kEnded;
        continue;
      }
      // The client bounds each read by the same whole-call timeout (and the idle one) on the
      // connection's own lazy deadline: a timer raced per piece would cost a timer set and a
      // cancel, and a few coroutine frames, for every chunk of every stream.
      auto piece = co_await body_->next();
      if (!piece && piece.error().code == core::ErrorCode::kTimeout &&
          SteadyClock::now() >= deadline_) {
        piece = std::unexpected(exchange_timeout(timeout_ms_));
      }
      if (!piece) {
        // A body that breaks is a broken stream; a timeout stays one.
        if (piece.error().code != core::ErrorCode::kTimeout) {
          piece.error().code = core::ErrorCode::kBrokenStream;
        }
        co_return fail(std::move(piece.error()));
      }
      if (piece->empty()) {
        // The body's clean end is the answer's only when the dialect's own end came first
        // and something decoded; a cut stream must never look complete.
        if (complete() && decoded_) {
          state_ = State::kEnded;
          continue;
        }
        co_return fail(incomplete());
      }
      events_.clear();
      parser_.feed(*piece, events_);
      for (const http::SseEvent& event : events_) {
        if (done()) break;  // anything after the end belongs to no answer
        const std::size_t had = out.size();
        auto fed = reader_->feed(event.event, event.data, out);
        if (fed) {
          if (!decoded_ && out.size() > had) note_start(out[had]);
          decoded_ = decoded_ || out.size() > had;
          if (done() && !decoded_) co_return fail(incomplete());
          continue;
        }
        if (fed.error().code != core::ErrorCode::kBadResponse) {
          co_return fail(std::move(fed.error()));
        }
        // An undecodable event is skipped (the decoder kept no trace of it); a stream that
        // never reaches its end after it is broken there.
        ++skipped_;
        last_skipped_ = std::move(fed.error().message);
      }
    }
    co_return out;
  }

  [[nodiscard]] std::int64_t skipped_events() const override { return skipped_; }

 private:
  enum class State { kReading, kEnded, kFailed };

  // True after the last event the dialect sends ([DONE], message_stop).
  [[nodiscard]] bool done() const { return reader_->done(); }

  // True once the answer is whole by the dialect's own end (finish_reason, message_stop).
  [[nodiscard]] bool complete() const { return reader_->complete(); }

  // The error for a body that ended cleanly before the answer was whole.
  [[nodiscard]] core::Error incomplete() const {
    std::string message =
        "stream ended before it was complete (no " + std::string(dialect_.stream_end_name()) + ")";
    if (!decoded_ && complete()) message = "stream ended with no event that decodes";
    if (skipped_ > 0) {
      message += "; " + std::to_string(skipped_) +
                 " undecodable event(s) skipped, the last: " + last_skipped_;
    }
    return core::Error{core::ErrorCode::kBrokenStream, std::move(message)};
  }

  // The answer's first event: its system_fingerprint, when it has one, is the provider's.
  void note_start(const chat::StreamEvent& first) {
    if (first.kind == chat::StreamEvent::Kind::kStart) {
      provider_.observe_fingerprint(first.system_fingerprint);
    }
  }

  std::unexpected<core::Error> fail(core::Error error) {
    state_ = State::kFailed;
    body_.reset();  // a broken body never goes back to the pool
    return std::unexpected(provider_.redact(std::move(error)));
  }

  net::io_context& loop_;
  std::unique_ptr<http::BodyStream> body_;
  const dialects::Dialect& dialect_;
  std::unique_ptr<dialects::StreamReader> reader_;
  SteadyClock::time_point deadline_;
  std::int64_t timeout_ms_;
  // Outlives its streams; redacts their errors, notes the fingerprint of their start.
  HttpProvider& provider_;
  State state_ = State::kReading;
  bool decoded_ = false;  // some event decoded into the answer
  std::int64_t skipped_ = 0;
  std::string last_skipped_;  // why the last skipped event did not decode
  http::SseParser parser_;
  std::vector<http::SseEvent> events_;
};

// A whole answer handed out as one batch of events.
class WholeAnswerStream final : public EventStream {
 public:
  explicit WholeAnswerStream(std::vector<chat::StreamEvent> events) : events_(std::move(events)) {}

  net::awaitable<core::Result<std::vector<chat::StreamEvent>>> next() override {
    co_return std::exchange(events_, {});
  }

 private:
  std::vector<chat::StreamEvent> events_;
};

// Whether `text` holds any of `needles` (lower case), ignoring case.
bool mentions(std::string_view text, std::initializer_list<std::string_view> needles) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::any_of(needles.begin(), needles.end(), [&lower](std::string_view needle) {
    return lower.find(needle) != std::string::npos;
  });
}

// A refusal on content grounds (OpenAI's and Azure's codes and wording).
bool says_content_policy(std::string_view text) {
  return mentions(text, {"content_filter", "content_policy", "content policy",
                         "content management policy", "safety system", "responsibleaipolicy"});
}

// A 400 that another target may answer: its window (context length, max_tokens), what it
// supports, its model, its account. Such a 400 is the target's, not the request's.
bool says_target_limit(std::string_view text) {
  return mentions(
      text,
      {"context_length",  "context length",   "context window",           "prompt is too long",
       "too many tokens", "max_tokens",       "max_completion_tokens",    "not supported",
       "unsupported",     "does not support", "model_not_found",          "does not exist",
       "not found",       "unrecognized",     "unknown parameter",        "unknown field",
       "extra inputs",    "extra_forbidden",  "credit balance",           "billing",
       "quota",           "api key",          "--enable-auto-tool-choice"});
}

}  // namespace

core::Error status_error(const http::ClientResponse& response, const dialects::Dialect& dialect) {
  const std::string detail = dialect.upstream_error_message(response.body);
  // nullopt: not the API's error shape (a proxy or load balancer answered), never a rejection.
  const std::optional<std::string> code = dialect.upstream_error_code(response.body);
  const int status = response.status;
  core::Error error;
  error.upstream_status = status;
  error.retry_after_ms = retry_after_ms(response);
  error.code = status == 429 ? core::ErrorCode::kRateLimited : core::ErrorCode::kUpstream;
  if (code && (status == 400 || status == 403 || status == 422)) {
    const std::string said = *code + ' ' + detail;
    const bool policy = says_content_policy(said);
    if (policy || (status != 403 && !says_target_limit(said))) {
      error.code = core::ErrorCode::kRejected;
      error.message = detail;  // as the upstream said it
      error.upstream_code = *code;
      return error;
    }
  }
  error.message = "HTTP " + std::to_string(status) + ": " + detail;
  return error;
}

int retry_after_ms(const http::ClientResponse& response) {
  std::optional<double> ms = parse_decimal(response.header("retry-after-ms"));
  if (!ms) {
    // Delta seconds; an HTTP date does not parse and counts as absent.
    if (const auto seconds = parse_decimal(response.header("retry-after"))) ms = *seconds * 1000;
  }
  if (!ms) return -1;
  return static_cast<int>(std::llround(std::min(*ms, kMaxRetryAfterMs)));
}

boost::asio::awaitable<std::string> HttpProvider::detect_stack(CallContext& context) {
  const auto timeout = std::min(context.budget, std::chrono::milliseconds(2'000));
  co_return co_await probe_stack(context.connections.client(), origin_, timeout);
}

core::Result<std::unique_ptr<HttpProvider>> HttpProvider::create(HttpProviderOptions options) {
  if (options.dialect == nullptr || options.dialect->upstream_path().empty()) {
    return core::fail(core::ErrorCode::kInvalidArgument,
                      "provider " + options.name + ": its dialect speaks to no upstream");
  }
  auto origin = http::parse_origin(options.base_url);
  if (!origin) {
    return core::fail(core::ErrorCode::kInvalidArgument,
                      "provider " + options.name + ": " + origin.error().message);
  }
  origin->ca_file = options.ca_file;
  return std::unique_ptr<HttpProvider>(new HttpProvider(std::move(options), std::move(*origin)));
}

HttpProvider::HttpProvider(HttpProviderOptions options, http::Origin origin)
    : options_(std::move(options)), origin_(std::move(origin)) {
  headers_ = {{"content-type", "application/json"},
              {"accept", "application/json"},
              {"user-agent", "backstop/0.1"}};
  target_ = origin_.base_path + std::string(options_.dialect->upstream_path());
  for (auto& [name, value] : options_.dialect->upstream_headers(settings())) {
    headers_.push_back({std::move(name), std::move(value)});
  }
}

dialects::UpstreamSettings HttpProvider::settings() const {
  return {options_.api_key, options_.api_version, options_.default_max_tokens};
}

std::string HttpProvider::redact(std::string message) const {
  message = redact_key(std::move(message), options_.api_key);
  // The address a client must not learn: host:port first, then the host in DNS errors.
  const std::string name = "provider " + options_.name;
  message =
      replace_token(std::move(message), origin_.host + ":" + std::to_string(origin_.port), name);
  return replace_token(std::move(message), origin_.host, name);
}

core::Error HttpProvider::redact(core::Error error) const {
  error.message = redact(std::move(error.message));
  return error;
}

core::Error HttpProvider::status_error(const http::ClientResponse& response) const {
  core::Error error = providers::status_error(response, *options_.dialect);
  error.message = redact(std::move(error.message));
  error.upstream_code = redact(std::move(error.upstream_code));
  return error;
}

std::vector<http::Header> HttpProvider::headers_for(const chat::ChatRequest& request,
                                                    const CallContext& context) const {
  std::vector<http::Header> headers = headers_;
  if (request.origin == options_.dialect->name()) {
    for (const auto& [name, value] : request.dialect_headers) {
      auto same = std::find_if(headers.begin(), headers.end(),
                               [&name](const http::Header& h) { return h.name == name; });
      if (same != headers.end()) {
        same->value = value;
      } else {
        headers.push_back({name, value});
      }
    }
  }
  if (!context.request_id.empty()) {
    headers.push_back({"x-request-id", std::string(context.request_id)});
  }
  return headers;
}

void HttpProvider::limit(http::ClientRequest& call, CallContext& context) const {
  using std::chrono::milliseconds;
  // The caller's budget bounds the wait for the answer to begin; an answer already flowing
  // is bounded by the idle and whole-call timeouts alone, so that a long stream is never cut
  // before timeout_ms.
  const milliseconds whole(options_.timeout_ms);
  const milliseconds begin = std::min(whole, std::max(context.budget, milliseconds(1)));
  call.connect_timeout = std::min(milliseconds(options_.connect_timeout_ms), begin);
  call.first_byte_timeout = context.first_token_limit
                                ? std::min(milliseconds(options_.first_token_timeout_ms), begin)
                                : begin;
  call.idle_timeout = milliseconds(options_.idle_timeout_ms);
  call.timeout = whole;
  call.cancel = context.cancel;
  call.on_replay = [&replays = context.replays](const core::Error& error) {
    replays.push_back(error);
  };
}

http::ClientRequest HttpProvider::call_for(const chat::ChatRequest& request, CallContext& context,
                                           bool stream) const {
  http::ClientRequest call;
  call.method = "POST";
  call.target = target_;
  call.headers = headers_for(request, context);
  if (stream) {
    for (http::Header& header : call.headers) {
      if (header.name == "accept") header.value = "text/event-stream";
    }
  }
  call.body = options_.dialect->encode_request(request, options_.model, settings());
  limit(call, context);
  return call;
}

core::Result<chat::ChatResponse> HttpProvider::decode(int status, std::string_view body) const {
  auto decoded = options_.dialect->decode_response(body);
  if (!decoded) {
    return std::unexpected(core::Error{core::ErrorCode::kBadResponse,
                                       redact("HTTP " + std::to_string(status) +
                                              " body does not decode: " + decoded.error().message),
                                       status});
  }
  return decoded;
}

net::awaitable<core::Result<chat::ChatResponse>> HttpProvider::complete(
    const chat::ChatRequest& request, CallContext& context) {
  auto sent =
      co_await context.connections.client().send(origin_, call_for(request, context, false));
  if (!sent) co_return std::unexpected(redact(std::move(sent.error())));
  const http::ClientResponse& response = *sent;
  if (response.status < 200 || response.status > 299) {
    co_return std::unexpected(status_error(response));
  }
  auto decoded = decode(response.status, response.body);
  if (decoded) observe_fingerprint(decoded->system_fingerprint);
  co_return decoded;
}

bool HttpProvider::carries(const chat::ChatRequest& request) const {
  return request.dialect_only.empty() || request.origin == options_.dialect->name();
}

net::awaitable<core::Result<RelayedAnswer>> HttpProvider::count_tokens(
    const chat::ChatRequest& request, CallContext& context) {
  if (!counts_tokens()) co_return co_await Provider::count_tokens(request, context);
  http::ClientRequest call;
  call.method = "POST";
  call.target = origin_.base_path + std::string(options_.dialect->count_tokens_path());
  call.headers = headers_for(request, context);
  // The client's body with the model replaced.
  call.body = options_.dialect->encode_request(request, options_.model, settings());
  limit(call, context);
  auto sent = co_await context.connections.client().send(origin_, std::move(call));
  if (!sent) co_return std::unexpected(redact(std::move(sent.error())));
  RelayedAnswer answer;
  answer.status = sent->status;
  answer.content_type = std::string(sent->header("content-type"));
  answer.body = redact(std::move(sent->body));
  co_return answer;
}

net::awaitable<core::Result<std::unique_ptr<EventStream>>> HttpProvider::stream(
    const chat::ChatRequest& request, CallContext& context) {
  http::ClientRequest call = request.stream ? call_for(request, context, true)
                                            : call_for(streaming(request), context, true);
  // The client bounds the exchange too; this bound covers the reads of the provider's own.
  const auto deadline = SteadyClock::now() + call.timeout;
  const std::int64_t timeout_ms = call.timeout.count();
  auto opened = co_await context.connections.client().open(origin_, std::move(call));
  if (!opened) co_return std::unexpected(redact(std::move(opened.error())));
  http::StreamedResponse& response = *opened;

  if (response.status < 200 || response.status > 299) {
    http::ClientResponse whole;
    whole.status = response.status;
    whole.headers = std::move(response.headers);
    // An error body that cannot be read whole still names the status.
    auto body =
        co_await read_body(*response.body, context.loop, deadline, timeout_ms, kMaxErrorBody);
    if (body) whole.body = std::move(*body);
    co_return std::unexpected(status_error(whole));
  }
  if (!starts_with_nocase(response.header("content-type"), "text/event-stream")) {
    // An upstream that ignored stream: true answered whole.
    auto body =
        co_await read_body(*response.body, context.loop, deadline, timeout_ms, kMaxWholeBody);
    if (!body) co_return std::unexpected(redact(std::move(body.error())));
    auto decoded = decode(response.status, *body);
    if (!decoded) co_return std::unexpected(std::move(decoded.error()));
    observe_fingerprint(decoded->system_fingerprint);
    co_return std::make_unique<WholeAnswerStream>(chat::to_events(*decoded));
  }
  co_return std::make_unique<SseEventStream>(context.loop, std::move(response.body),
                                             *options_.dialect, deadline, timeout_ms, *this);
}

}  // namespace backstop::providers
