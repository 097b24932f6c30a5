#include "server/gateway.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <cstdlib>
#include <optional>
#include <random>
#include <thread>
#include <variant>

#include "core/ids.h"
#include "dialects/anthropic/anthropic.h"
#include "dialects/openai/openai.h"
#include "dialects/responses/responses.h"
#include "http/client.h"
#include "json/json.h"
#include "providers/http_provider.h"
#include "providers/simulated_provider.h"
#include "server/build_provider.h"
#include "validation/validator.h"

namespace backstop::server {
namespace {

namespace net = boost::asio;
using core::ErrorCode;

constexpr std::string_view kChatPath = "/v1/chat/completions";
constexpr std::string_view kMessagesPath = "/v1/messages";
constexpr std::string_view kCountTokensPath = "/v1/messages/count_tokens";
constexpr std::string_view kResponsesPath = "/v1/responses";
constexpr std::string_view kEndpoints =
    "POST /v1/chat/completions, POST /v1/messages, POST /v1/messages/count_tokens, "
    "POST /v1/responses, "
    "GET /v1/models, GET /metrics, GET /healthz, GET /readyz";

http::Response json_response(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string encode_error(chat::Dialect dialect, const core::Error& error,
                         const boost::json::object& extra) {
  switch (dialect) {
    case chat::Dialect::kAnthropic:
      return dialects::anthropic::encode_error(error, extra);
    case chat::Dialect::kResponses:
      return dialects::responses::encode_error(error, extra);
    case chat::Dialect::kOpenAI:
      break;
  }
  return dialects::openai::encode_error(error, extra);
}

bool under(std::string_view path, std::string_view endpoint) {
  return path == endpoint || (path.starts_with(endpoint) && path.size() > endpoint.size() &&
                              path[endpoint.size()] == '/');
}

// Anthropic's shape for its endpoint and everything under it, the Responses API's for its own;
// OpenAI's elsewhere.
chat::Dialect dialect_of_path(std::string_view path) {
  if (under(path, kMessagesPath)) return chat::Dialect::kAnthropic;
  if (under(path, kResponsesPath)) return chat::Dialect::kResponses;
  return chat::Dialect::kOpenAI;
}

// A client's request body in the dialect of the endpoint it came to.
core::Result<chat::ChatRequest> decode(chat::Dialect dialect, std::string_view body) {
  switch (dialect) {
    case chat::Dialect::kAnthropic:
      return dialects::anthropic::decode_request(body);
    case chat::Dialect::kResponses:
      return dialects::responses::decode_request(body);
    case chat::Dialect::kOpenAI:
      break;
  }
  return dialects::openai::decode_request(body);
}

// The client's top-level "stream": true in a body that did not decode; false when absent.
bool asked_for_stream(std::string_view body) {
  auto parsed = json::parse(body);
  if (!parsed || !parsed->is_object()) return false;
  const auto* stream = parsed->get_object().if_contains("stream");
  return stream != nullptr && stream->is_bool() && stream->get_bool();
}

// The workloads the client's key may use (all of them without auth), comma-separated.
std::string workload_names(const routing::Router& router, const access::Key* key) {
  std::string out;
  for (const auto& w : router.workloads()) {
    if (key != nullptr && !key->allows(w->name)) continue;
    if (!out.empty()) out += ", ";
    out += w->name;
  }
  return out;
}

boost::json::array attempts_json(const std::vector<routing::Attempt>& attempts) {
  boost::json::array out;
  for (const auto& a : attempts) {
    boost::json::object o;
    o["provider"] = a.provider;
    o["model"] = a.model;
    o["reason"] = a.pass ? "pass" : validation::to_string(a.reason);
    o["status"] = a.status;
    o["detail"] = a.detail;
    // Whole milliseconds: Boost.JSON writes doubles in exponent form ("3.371E0").
    o["latency_ms"] = static_cast<std::int64_t>(a.latency_ms + 0.5);
    out.push_back(std::move(o));
  }
  return out;
}

// Writes a routed stream to the client in its dialect, headers first.
class ClientStream final : public routing::StreamSink {
 public:
  ClientStream(http::Responder& responder, const chat::ChatRequest& request, std::string request_id,
               std::string workload)
      : responder_(responder),
        dialect_(request.origin),
        include_usage_(request.include_usage),
        echo_(dialects::responses::echo_of(request, {})),
        request_id_(std::move(request_id)),
        workload_(std::move(workload)) {}

  net::awaitable<bool> begin(const routing::RouteResult& result) override {
    const providers::Provider& served = *result.served_by->provider;
    switch (dialect_) {
      case chat::Dialect::kOpenAI:
        openai_.emplace(served.model(), include_usage_);
        break;
      case chat::Dialect::kAnthropic:
        anthropic_.emplace(served.model());
        break;
      case chat::Dialect::kResponses:
        echo_.model = served.model();
        responses_.emplace(std::move(echo_));
        break;
    }
    std::vector<http::Header> headers = {
        {"cache-control", "no-cache"},
        {"x-request-id", request_id_},
        {"x-backstop-workload", workload_},
        {"x-backstop-served-by", served.name()},
        {"x-backstop-attempts", std::to_string(result.attempts.size())}};
    if (result.bypassed) headers.push_back({"x-backstop-route", "bypass"});
    if (result.outcome == routing::Outcome::kFallback && result.fallback_reason) {
      headers.push_back({"x-backstop-fallback-reason",
                         std::string(validation::to_string(*result.fallback_reason))});
    }
    started_ = co_await responder_.begin_stream(200, "text/event-stream", std::move(headers));
    co_return started_;
  }

  net::awaitable<bool> send(const std::vector<chat::StreamEvent>& events) override {
    std::string out;
    for (const auto& e : events) {
      out += openai_      ? openai_->encode(e)
             : anthropic_ ? anthropic_->encode(e)
                          : responses_->encode(e);
    }
    if (out.empty()) co_return true;
    co_return co_await responder_.write(out);
  }

  net::awaitable<void> finish() override {
    std::string out = openai_      ? openai_->finish()
                      : anthropic_ ? anthropic_->finish()
                                   : responses_->finish();
    if (co_await responder_.write(out)) co_await responder_.end_stream();
  }

  net::awaitable<void> abort(const core::Error& error) override {
    std::string out = openai_      ? openai_->error(error)
                      : anthropic_ ? anthropic_->error(error)
                                   : responses_->error(error);
    if (co_await responder_.write(out)) co_await responder_.end_stream();
  }

  [[nodiscard]] bool started() const { return started_; }

 private:
  http::Responder& responder_;
  chat::Dialect dialect_;
  bool include_usage_;
  dialects::responses::Echo echo_;  // kResponses: what the stream's response object repeats
  std::string request_id_;
  std::string workload_;
  std::optional<dialects::openai::StreamEncoder> openai_;
  std::optional<dialects::anthropic::StreamEncoder> anthropic_;
  std::optional<dialects::responses::StreamEncoder> responses_;
  bool started_ = false;
};

// Watches the client while its request is routed: when it goes away, `cancel` is requested,
// which ends the upstream call in flight at once.
class ClientWatch {
 public:
  ClientWatch(http::Responder& responder, core::Cancellation& cancel) : responder_(responder) {
    responder_.watch_client([&cancel] { cancel.request(); });
  }
  ~ClientWatch() { responder_.watch_client({}); }
  ClientWatch(const ClientWatch&) = delete;
  ClientWatch& operator=(const ClientWatch&) = delete;

 private:
  http::Responder& responder_;
};

// One worker's view of the gateway: its own client pool, metric shard, schema cache and
// id generator, so the request path takes no lock.
class GatewayService final : public http::Service {
 public:
  GatewayService(Gateway& gateway, net::io_context& loop, int worker)
      : gateway_(gateway),
        loop_(loop),
        http_(loop),
        shard_(gateway.registry().shard(worker)),
        rng_(std::random_device{}() ^ (static_cast<std::uint64_t>(worker) << 32)),
        ids_(rng_()) {}

  net::awaitable<void> handle(http::Request request, http::Responder& responder) override {
    const auto started = gateway_.clock().now();
    telemetry::AccessLogEntry log;
    log.unix_ms = gateway_.clock().unix_ms();
    log.method = request.method;
    log.path = std::string(request.path());
    std::string_view client_id = request.header("x-request-id");
    log.request_id = core::is_valid_request_id(client_id) ? std::string(client_id) : ids_.next();

    std::optional<http::Response> response = co_await dispatch(request, responder, log);
    if (response) {
      response->headers.push_back({"x-request-id", log.request_id});
      log.status = response->status;
      co_await responder.send(std::move(*response));
    }
    log.duration_ms = core::elapsed_ms(started, gateway_.clock().now());
    // Only API calls are logged; probes and scrapes would drown them.
    if (log.path.starts_with("/v1/") && !gateway_.access_log().write(log)) {
      shard_.add(gateway_.router().metrics().log_lines_dropped_total, {"access_log"});
    }
  }

  http::Response protocol_error(int status, std::string_view message,
                                std::string_view target) override {
    ErrorCode code = status == 413   ? ErrorCode::kPayloadTooLarge
                     : status == 431 ? ErrorCode::kHeaderTooLarge
                     : status == 408 ? ErrorCode::kRequestTimeout
                                     : ErrorCode::kInvalidArgument;
    std::string_view path = target.substr(0, target.find('?'));
    return json_response(
        status, encode_error(dialect_of_path(path), core::Error{code, std::string(message)}, {}));
  }

 private:
  // The response to send, or nullopt when a stream was already written to the responder.
  net::awaitable<std::optional<http::Response>> dispatch(const http::Request& request,
                                                         http::Responder& responder,
                                                         telemetry::AccessLogEntry& log) {
    std::string_view path = request.path();
    const bool post = request.method == "POST";
    const bool get = request.method == "GET" || request.method == "HEAD";
    // With auth: every API path asks for a known key before anything else is read.
    const access::Key* key = nullptr;
    if (path.starts_with("/v1/") && gateway_.keys().enabled()) {
      key = gateway_.keys().find(
          access::presented_key(request.header("authorization"), request.header("x-api-key")));
      if (key == nullptr) co_return unauthorized(dialect_of_path(path), request, log);
      log.key = key->name;
    }
    if (path == kChatPath || path == kMessagesPath || path == kResponsesPath) {
      chat::Dialect dialect = dialect_of_path(path);
      if (!post) co_return method_not_allowed(dialect, "POST", log);
      co_return co_await chat(request, dialect, key, responder, log);
    }
    if (path == kCountTokensPath) {
      if (!post) co_return method_not_allowed(chat::Dialect::kAnthropic, "POST", log);
      co_return co_await count_tokens(request, key, log);
    }
    if (path == "/") {
      // Clients probe the base URL (Claude Code sends HEAD /) before their first request.
      if (!get) co_return method_not_allowed(chat::Dialect::kOpenAI, "GET", log);
      co_return json_response(200, R"({"status":"ok"})");
    }
    if (path == "/v1/models") {
      if (!get) co_return method_not_allowed(chat::Dialect::kOpenAI, "GET", log);
      co_return models(!request.header("anthropic-version").empty(), key);
    }
    if (path == "/metrics") {
      if (!get) co_return method_not_allowed(chat::Dialect::kOpenAI, "GET", log);
      if (!gateway_.keys().metrics_allowed(request.header("authorization"))) {
        http::Response r = error(
            chat::Dialect::kOpenAI,
            {ErrorCode::kUnauthorized, "/metrics needs Authorization: Bearer <metrics_key_env>"},
            log, {{"code", "invalid_api_key"}});
        r.headers.push_back({"www-authenticate", "Bearer"});
        co_return r;
      }
      http::Response r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = gateway_.registry().render();
      co_return r;
    }
    if (path == "/healthz") {
      if (!get) co_return method_not_allowed(chat::Dialect::kOpenAI, "GET", log);
      co_return json_response(200, R"({"status":"ok"})");
    }
    if (path == "/readyz") {
      if (!get) co_return method_not_allowed(chat::Dialect::kOpenAI, "GET", log);
      if (gateway_.draining()) co_return json_response(503, R"({"status":"draining"})");
      co_return json_response(200, R"({"status":"ready"})");
    }
    // Under /v1/messages in Anthropic's shape (its SDKs read that), elsewhere OpenAI's.
    chat::Dialect dialect = dialect_of_path(path);
    boost::json::object extra;
    if (dialect != chat::Dialect::kAnthropic) extra["code"] = "not_found";
    co_return error(dialect,
                    {ErrorCode::kNotFound,
                     request.method + " " + std::string(path) +
                         " is not an endpoint (endpoints: " + std::string(kEndpoints) + ")"},
                    log, std::move(extra));
  }

  // The workloads the key may use as models, in Anthropic's list shape when the client is an
  // Anthropic SDK (it sends anthropic-version), else OpenAI's. No key (no auth): all of them.
  http::Response models(bool anthropic, const access::Key* key) const {
    boost::json::array data;
    std::vector<std::string_view> listed;
    for (const auto& w : gateway_.router().workloads()) {
      if (key != nullptr && !key->allows(w->name)) continue;
      listed.push_back(w->name);
      if (anthropic) {
        data.push_back({{"type", "model"},
                        {"id", w->name},
                        {"display_name", w->name},
                        {"created_at", "1970-01-01T00:00:00Z"}});
      } else {
        data.push_back(
            {{"id", w->name}, {"object", "model"}, {"created", 0}, {"owned_by", "backstop"}});
      }
    }
    boost::json::object body;
    if (anthropic) {
      body = {
          {"data", std::move(data)},
          {"has_more", false},
          {"first_id", listed.empty() ? boost::json::value() : boost::json::value(listed.front())},
          {"last_id", listed.empty() ? boost::json::value() : boost::json::value(listed.back())}};
    } else {
      body = {{"object", "list"}, {"data", std::move(data)}};
    }
    return json_response(200, boost::json::serialize(body));
  }

  http::Response method_not_allowed(chat::Dialect dialect, std::string_view allowed,
                                    telemetry::AccessLogEntry& log) {
    http::Response r = error(
        dialect, {ErrorCode::kMethodNotAllowed, "method not allowed; use " + std::string(allowed)},
        log, {});
    r.headers.push_back({"allow", std::string(allowed)});
    return r;
  }

  // The error in the dialect's shape; the access log line says what it was.
  http::Response error(chat::Dialect dialect, core::Error e, telemetry::AccessLogEntry& log,
                       boost::json::object extra) {
    extra["request_id"] = log.request_id;
    if (const auto* code = extra.if_contains("code"); code != nullptr && code->is_string()) {
      log.error_code = std::string(code->get_string());
    } else {
      log.error_code = std::string(core::to_string(e.code));
    }
    log.error = e.message;
    return json_response(core::client_status(e), encode_error(dialect, e, extra));
  }

  // A request without a known key (auth is on): 401, neither counted nor in the ledger.
  http::Response unauthorized(chat::Dialect dialect, const http::Request& request,
                              telemetry::AccessLogEntry& log) {
    const bool presented =
        !request.header("authorization").empty() || !request.header("x-api-key").empty();
    boost::json::object extra;
    if (dialect != chat::Dialect::kAnthropic) extra["code"] = "invalid_api_key";
    http::Response r =
        error(dialect,
              {ErrorCode::kUnauthorized,
               presented ? "invalid API key"
                         : "missing API key: send Authorization: Bearer KEY or x-api-key: KEY"},
              log, std::move(extra));
    r.headers.push_back({"www-authenticate", "Bearer"});
    return r;
  }

  // The request refused before routing: counted, its stream wish logged, the error sent.
  http::Response reject(chat::Dialect dialect, const http::Request& request, core::Error e,
                        telemetry::AccessLogEntry& log, boost::json::object extra = {}) {
    log.outcome = "rejected";
    if (!log.stream) log.stream = asked_for_stream(request.body);
    gateway_.router().count_rejected(shard_, log.workload, log.request_id, log.key);
    return error(dialect, std::move(e), log, std::move(extra));
  }

  // A fallback or an all-failed request, for the hooks that asked for it; a full hooks queue
  // drops it (counted), the request never waits.
  void emit_hook_event(const routing::Workload& workload, const routing::RouteResult& result,
                       const telemetry::AccessLogEntry& log) {
    const bool fallback = result.outcome == routing::Outcome::kFallback;
    if (!fallback && result.outcome != routing::Outcome::kFailed) return;
    const std::string_view event = fallback ? "fallback" : "all_failed";
    telemetry::Hooks& hooks = gateway_.hooks();
    if (!hooks.wants(event)) return;
    boost::json::object body{{"event", event},
                             {"unix_ms", log.unix_ms},
                             {"request_id", log.request_id},
                             {"workload", workload.name}};
    if (fallback && !result.attempts.empty() && result.served_by != nullptr) {
      body["from"] = result.attempts.front().provider;
      body["to"] = result.served_by->provider->name();
      if (result.fallback_reason) body["reason"] = validation::to_string(*result.fallback_reason);
    }
    body["attempts"] = attempts_json(result.attempts);
    if (!hooks.emit(event, boost::json::serialize(body))) {
      shard_.add(gateway_.router().metrics().log_lines_dropped_total, {"hooks"});
    }
  }

  // The workload named by a decoded request's model; an error response when there is none,
  // or when the client's key may not use it (403).
  std::variant<const routing::Workload*, http::Response> workload_of(
      chat::Dialect dialect, const http::Request& request, const chat::ChatRequest& chat_request,
      const access::Key* key, telemetry::AccessLogEntry& log) {
    const routing::Router& router = gateway_.router();
    const routing::Workload* workload = router.find(chat_request.model);
    if (workload == nullptr) {
      return reject(dialect, request,
                    {ErrorCode::kNotFound,
                     "unknown model \"" + chat_request.model +
                         "\": a model names a workload; workloads: " + workload_names(router, key)},
                    log, {{"code", "model_not_found"}});
    }
    if (key != nullptr && !key->allows(workload->name)) {
      log.workload = workload->name;
      return reject(dialect, request,
                    {ErrorCode::kForbidden,
                     "key \"" + key->name + "\" may not use workload \"" + workload->name + "\""},
                    log);
    }
    return workload;
  }

  // POST /v1/messages/count_tokens: the workload's first Anthropic target counts; with none,
  // a local estimate (x-backstop-token-count: estimate).
  net::awaitable<http::Response> count_tokens(const http::Request& request, const access::Key* key,
                                              telemetry::AccessLogEntry& log) {
    constexpr chat::Dialect kDialect = chat::Dialect::kAnthropic;
    auto decoded = dialects::anthropic::decode_count_tokens_request(request.body);
    if (!decoded) co_return reject(kDialect, request, decoded.error(), log);
    forward_dialect_headers(request, *decoded);
    auto found = workload_of(kDialect, request, *decoded, key, log);
    if (auto* response = std::get_if<http::Response>(&found)) co_return std::move(*response);
    const routing::Workload& workload = *std::get<const routing::Workload*>(found);
    log.workload = workload.name;
    for (const routing::Target& target : workload.route) {
      providers::Provider& provider = *target.provider;
      if (!provider.counts_tokens()) continue;
      providers::CallContext call{loop_, http_, gateway_.clock(), log.request_id};
      auto answer = co_await provider.count_tokens(*decoded, call);
      log.served_by = provider.name();
      if (!answer) {
        log.outcome = "failed";
        co_return error(kDialect, answer.error(), log, {});
      }
      log.outcome = "primary";
      http::Response r = json_response(answer->status, std::move(answer->body));
      if (!answer->content_type.empty()) r.content_type = std::move(answer->content_type);
      r.headers.push_back({"x-backstop-workload", workload.name});
      r.headers.push_back({"x-backstop-served-by", provider.name()});
      co_return r;
    }
    log.outcome = "primary";
    http::Response r = json_response(
        200, boost::json::serialize(
                 boost::json::object{{"input_tokens", chat::estimate_input_tokens(*decoded)}}));
    r.headers.push_back({"x-backstop-workload", workload.name});
    r.headers.push_back({"x-backstop-token-count", "estimate"});
    co_return r;
  }

  // An Anthropic client's own anthropic-version and anthropic-beta, for Anthropic targets.
  static void forward_dialect_headers(const http::Request& request, chat::ChatRequest& out) {
    if (out.origin != chat::Dialect::kAnthropic) return;
    for (std::string_view name : dialects::anthropic::kForwardedHeaders) {
      if (std::string_view value = request.header(name); !value.empty()) {
        out.dialect_headers.emplace_back(std::string(name), std::string(value));
      }
    }
  }

  net::awaitable<std::optional<http::Response>> chat(const http::Request& request,
                                                     chat::Dialect dialect, const access::Key* key,
                                                     http::Responder& responder,
                                                     telemetry::AccessLogEntry& log) {
    const routing::Router& router = gateway_.router();
    auto decoded = decode(dialect, request.body);
    if (!decoded) co_return reject(dialect, request, decoded.error(), log);
    if (auto invalid = validation::check_request_schemas(*decoded, schemas_)) {
      co_return reject(dialect, request, std::move(*invalid), log);
    }
    chat::ChatRequest& chat_request = *decoded;
    log.stream = chat_request.stream;
    forward_dialect_headers(request, chat_request);
    auto found = workload_of(dialect, request, chat_request, key, log);
    if (auto* response = std::get_if<http::Response>(&found)) co_return std::move(*response);
    const routing::Workload* workload = std::get<const routing::Workload*>(found);
    if (!routing::Router::carried(*workload, chat_request)) {
      co_return reject(dialect, request,
                       {ErrorCode::kInvalidArgument,
                        chat_request.dialect_only + " can only be sent to a target of the " +
                            std::string(chat::to_string(chat_request.origin)) +
                            " dialect, and workload \"" + workload->name + "\" has none"},
                       log);
    }
    log.workload = workload->name;
    core::Cancellation cancel;
    routing::WorkerContext worker{loop_, http_, shard_, schemas_, rng_, &cancel, log.key};
    std::optional<ClientStream> stream;
    routing::RouteResult result;
    {
      const ClientWatch watch(responder, cancel);
      if (chat_request.stream) {
        stream.emplace(responder, chat_request, log.request_id, workload->name);
        result =
            co_await router.route_stream(*workload, chat_request, worker, log.request_id, *stream);
      } else {
        result = co_await router.route(*workload, chat_request, worker, log.request_id);
      }
    }

    log.outcome = std::string(routing::to_string(result.outcome));
    emit_hook_event(*workload, result, log);
    log.input_tokens = result.usage.input_tokens;
    log.cached_input_tokens = result.usage.cached_input_tokens;
    log.output_tokens = result.usage.output_tokens;
    log.cost_micro_usd = result.cost_micro_usd;
    for (const auto& a : result.attempts) {
      log.attempts.push_back({a.provider, a.model,
                              a.pass ? "pass" : std::string(validation::to_string(a.reason)),
                              a.status, a.latency_ms});
    }

    if (result.served_by) log.served_by = result.served_by->provider->name();
    if (stream && stream->started()) {
      log.status = 200;
      co_return std::nullopt;
    }
    std::vector<http::Header> headers;
    headers.push_back({"x-backstop-workload", workload->name});
    headers.push_back({"x-backstop-attempts", std::to_string(result.attempts.size())});
    if (result.bypassed) headers.push_back({"x-backstop-route", "bypass"});
    if (result.outcome == routing::Outcome::kRejected && result.rejection) {
      // The upstream's status, code and message, in the client's dialect.
      http::Response r = error(dialect, *result.rejection, log, {});
      r.headers = std::move(headers);
      co_return r;
    }
    if (result.outcome == routing::Outcome::kFailed) {
      http::Response r = error(
          dialect,
          {ErrorCode::kAllTargetsFailed, "every target of workload \"" + workload->name +
                                             "\" failed (" +
                                             std::to_string(result.attempts.size()) + " attempts)"},
          log, {{"code", "all_targets_failed"}, {"attempts", attempts_json(result.attempts)}});
      r.headers = std::move(headers);
      co_return r;
    }
    const providers::Provider& served = *result.served_by->provider;
    headers.push_back({"x-backstop-served-by", served.name()});
    if (result.outcome == routing::Outcome::kFallback && result.fallback_reason) {
      headers.push_back({"x-backstop-fallback-reason",
                         std::string(validation::to_string(*result.fallback_reason))});
    }
    const std::string& model =
        result.response->model.empty() ? served.model() : result.response->model;
    http::Response r;
    switch (dialect) {
      case chat::Dialect::kOpenAI:
        r.body = dialects::openai::encode_response(*result.response, model);
        break;
      case chat::Dialect::kAnthropic:
        r.body = dialects::anthropic::encode_response(*result.response, model);
        break;
      case chat::Dialect::kResponses:
        r.body = dialects::responses::encode_response(
            *result.response, dialects::responses::echo_of(chat_request, model));
        break;
    }
    r.headers = std::move(headers);
    co_return r;
  }

  Gateway& gateway_;
  net::io_context& loop_;
  http::Client http_;
  telemetry::Shard& shard_;
  validation::SchemaCache schemas_;
  std::mt19937_64 rng_;
  core::IdGenerator ids_;
};

// A hook's POST, on the hooks thread: its own loop and client for each event (events are
// rare), 5 s for the whole exchange.
bool post_hook(const std::string& url, const std::string& body,
               const std::vector<std::pair<std::string, std::string>>& headers) {
  auto origin = http::parse_origin(url);
  if (!origin) return false;
  const std::size_t slash = url.find('/', url.find("://") + 3);
  net::io_context loop;
  http::Client client(loop);
  http::ClientRequest request;
  request.method = "POST";
  request.target = slash == std::string::npos ? "/" : url.substr(slash);
  request.body = body;
  for (const auto& [name, value] : headers) request.headers.push_back({name, value});
  request.timeout = std::chrono::milliseconds(5'000);
  request.connect_timeout = std::chrono::milliseconds(2'000);
  auto sent = net::co_spawn(loop, client.send(*origin, std::move(request)), net::use_future);
  loop.run();
  auto response = sent.get();
  return response && response->status >= 200 && response->status < 300;
}

}  // namespace

core::Result<std::unique_ptr<Gateway>> Gateway::create(std::shared_ptr<const config::Config> config,
                                                       GatewayOptions options) {
  std::unique_ptr<Gateway> g(new Gateway());
  g->config_ = std::move(config);
  const config::Config& c = *g->config_;
  if (options.logger) {
    g->logger_ = options.logger;
  } else {
    g->owned_logger_ = std::make_unique<core::StderrLogger>();
    g->logger_ = g->owned_logger_.get();
  }
  if (options.clock) {
    g->clock_ = options.clock;
  } else {
    g->owned_clock_ = std::make_unique<core::SystemClock>();
    g->clock_ = g->owned_clock_.get();
  }
  EnvReader env =
      options.env ? options.env : EnvReader([](const char* n) { return std::getenv(n); });

  auto listen = config::split_listen(options.listen.empty() ? c.server.listen : options.listen);
  if (!listen) return std::unexpected(listen.error());
  g->host_ = listen->first;
  g->port_ = listen->second;
  int threads = options.threads >= 0 ? options.threads : c.server.threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  g->threads_ = threads;

  ledger::LedgerOptions ledger_options;
  ledger_options.flush_ms = c.ledger.flush_ms;
  core::Logger* logger = g->logger_;
  ledger_options.on_write_error = [logger](const core::Error& e) {
    logger->log(core::LogLevel::kError, e.message + " (rows stay queued and are retried)");
  };
  if (options.spend) {
    g->spend_ = std::move(options.spend);
  } else if (c.ledger.path.empty()) {
    g->spend_ = ledger::make_memory_store(std::move(ledger_options));
  } else {
    auto store = ledger::make_sqlite_store(c.ledger.path, std::move(ledger_options));
    if (!store) return std::unexpected(store.error());
    g->spend_ = std::move(*store);
  }
  g->registry_ = std::make_unique<telemetry::Registry>(threads);
  std::vector<telemetry::HookTarget> hook_targets;
  for (const config::Hook& h : c.hooks) {
    telemetry::HookTarget target{h.url, h.events, {}};
    if (!h.secret_env.empty()) {
      const char* secret = env(h.secret_env.c_str());
      if (secret == nullptr || *secret == '\0') {
        return core::fail(ErrorCode::kInvalidArgument, "hook " + h.url + ": environment variable " +
                                                           h.secret_env +
                                                           " (secret_env) is not set");
      }
      target.secret = secret;
    }
    hook_targets.push_back(std::move(target));
  }
  g->hooks_ = std::make_unique<telemetry::Hooks>(std::move(hook_targets),
                                                 options.hook_post ? options.hook_post : post_hook,
                                                 options.hook_options);
  telemetry::AccessLog::Options log_options;
  if (options.access_log_queue_lines != 0) log_options.queue_lines = options.access_log_queue_lines;
  g->access_log_ = std::make_unique<telemetry::AccessLog>(c.log.access_log, log_options);

  auto keys = access::Keys::create(c.auth, env);
  if (!keys) return std::unexpected(keys.error());
  g->keys_ = std::move(*keys);
  for (const config::Provider& p : c.providers) {
    auto provider = build_provider(p, env);
    if (!provider) return std::unexpected(provider.error());
    g->providers_.push_back(std::move(*provider));
  }
  g->router_ = std::make_unique<routing::Router>(c, g->providers_, *g->registry_, *g->spend_,
                                                 *g->clock_, g->logger_, g->hooks_.get());
  g->stack_watch_ = std::make_unique<StackWatch>(c, g->providers_, *g->registry_);
  g->detect_stacks_ = options.detect_stacks;
  g->registry_->gauge_source(g->router_->metrics().ledger_queue_depth, [spend = g->spend_.get()] {
    return std::vector<std::pair<std::vector<std::string>, double>>{
        {{}, static_cast<double>(spend->queue_depth())}};
  });

  http::ServerLimits limits;
  limits.max_body_bytes = static_cast<std::size_t>(c.server.max_body_bytes);
  limits.max_header_bytes = static_cast<std::size_t>(c.server.max_header_bytes);
  limits.read_timeout = std::chrono::milliseconds(c.server.read_timeout_ms);
  limits.idle_timeout = std::chrono::milliseconds(c.server.idle_timeout_ms);
  limits.max_connections = static_cast<std::size_t>(c.server.max_connections);
  Gateway* self = g.get();
  g->server_ = std::make_unique<http::Server>(
      limits, threads,
      [self](net::io_context& loop, int worker) -> std::unique_ptr<http::Service> {
        return std::make_unique<GatewayService>(*self, loop, worker);
      },
      http::ServerLog{g->logger_, g->clock_});
  // The series exists from the start, so that rate() and alerts see its first drop.
  g->registry_->shard(0).add(g->router_->metrics().log_lines_dropped_total, {"access_log"}, 0);
  if (!c.hooks.empty()) {
    g->registry_->shard(0).add(g->router_->metrics().log_lines_dropped_total, {"hooks"}, 0);
  }
  g->registry_->gauge_source(g->router_->metrics().hook_events_total, [hooks = g->hooks_.get()] {
    std::vector<std::pair<std::vector<std::string>, double>> out;
    for (const auto& c : hooks->counts()) {
      out.push_back({{c.event, c.result}, static_cast<double>(c.count)});
    }
    return out;
  });
  return g;
}

Gateway::~Gateway() {
  stop();
  wait();
}

core::Result<void> Gateway::start() {
  auto bound = server_->listen(host_, port_);
  if (!bound) return bound;
  port_ = server_->port();
  server_->start();
  if (detect_stacks_) stack_watch_->start();
  band_thread_ = std::thread([this] {
    routing::BandWatch watch(*router_);
    routing::DriftWatch drift(*router_);
    std::unique_lock lock(band_mutex_);
    while (
        !band_wake_.wait_for(lock, std::chrono::seconds(10), [this] { return stopped_.load(); })) {
      for (const std::string& line : watch.check(clock_->unix_ms())) {
        logger_->log(core::LogLevel::kWarn, line);
      }
      for (const routing::DriftEvent& event : drift.check(clock_->unix_ms())) {
        logger_->log(core::LogLevel::kWarn, event.line());
        if (hooks_->wants("drift")) hooks_->emit("drift", event.json());
      }
    }
  });
  return {};
}

std::uint16_t Gateway::port() const { return port_; }

std::size_t Gateway::max_connections() const { return server_->max_connections(); }

void Gateway::begin_drain() {
  if (draining_.exchange(true)) return;
  if (server_) server_->begin_drain();
}

void Gateway::drain() {
  begin_drain();
  {
    std::unique_lock lock(band_mutex_);
    band_wake_.wait_for(lock, std::chrono::milliseconds(config_->server.drain_delay_ms),
                        [this] { return stopped_.load(); });
  }
  stop();
}

void Gateway::stop() {
  {
    std::lock_guard lock(band_mutex_);
    if (stopped_.exchange(true)) return;
  }
  band_wake_.notify_all();
  if (band_thread_.joinable()) band_thread_.join();
  if (stack_watch_) stack_watch_->stop();
  begin_drain();
  if (server_) server_->stop(std::chrono::milliseconds(config_->server.drain_timeout_ms));
  if (spend_) {
    if (auto flushed = spend_->flush(); !flushed) {
      logger_->log(core::LogLevel::kError, "ledger flush failed: " + flushed.error().message);
    }
  }
  if (access_log_) access_log_->flush();
}

void Gateway::wait() {
  if (server_) server_->wait();
}

}  // namespace backstop::server
