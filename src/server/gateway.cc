#include "server/gateway.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <thread>
#include <variant>

#include "core/ids.h"
#include "dialects/builtin/builtin.h"
#include "http/client.h"
#include "json/json.h"
#include "ledger/ledger_read.h"
#include "providers/connections.h"
#include "providers/http_provider.h"
#include "providers/simulated_provider.h"
#include "server/build_provider.h"
#include "validation/validator.h"

namespace backstop::server {
namespace {

namespace net = boost::asio;
using core::ErrorCode;

constexpr std::string_view kOtherEndpoints =
    "GET /v1/models, GET /metrics, GET /healthz, GET /readyz";

http::Response json_response(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

using dialects::Dialect;

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

// Dollars for a message, exact: "12.50", "0.000125" (at least two decimals, no trailing zero
// beyond them).
std::string usd_text(std::int64_t micro_usd) {
  char text[32];
  std::snprintf(text, sizeof text, "%lld.%06lld", static_cast<long long>(micro_usd / 1'000'000),
                static_cast<long long>(micro_usd % 1'000'000));
  std::string out = text;
  while (out.back() == '0' && out[out.size() - 3] != '.') out.pop_back();
  return out;
}

// Sends a `budget` hook event for each budget found spent for the first time on its day;
// false when the hooks' queue was full and one was dropped.
bool announce_budgets(telemetry::Hooks& hooks, const config::Config& config,
                      const std::vector<access::BudgetHit>& hits, std::int64_t now_ms) {
  if (hits.empty() || !hooks.wants("budget")) return true;
  bool all_queued = true;
  for (const access::BudgetHit& hit : hits) {
    boost::json::object body{{"event", "budget"},
                             {"unix_ms", now_ms},
                             {"scope", access::to_string(hit.scope)},
                             {"name", hit.name},
                             {"day", hit.day},
                             {"limit_micro_usd", hit.limit_micro_usd},
                             {"spent_micro_usd", hit.spent_micro_usd}};
    const config::Workload* w =
        hit.scope == access::BudgetScope::kWorkload ? config.find_workload(hit.name) : nullptr;
    const bool cut =
        w != nullptr && w->budget && w->budget->on_exceeded == config::BudgetAction::kPrimaryOnly;
    body["on_exceeded"] = cut ? "primary_only" : "reject";
    all_queued = hooks.emit("budget", boost::json::serialize(body)) && all_queued;
  }
  return all_queued;
}

// Sends a `band` hook event for a workload whose fallback-rate band changed.
void announce_band(telemetry::Hooks& hooks, const routing::BandWatch::Change& change,
                   std::int64_t now_ms) {
  if (!hooks.wants("band")) return;
  boost::json::object body{
      {"event", "band"},
      {"unix_ms", now_ms},
      {"workload", change.workload},
      {"band", routing::to_string(change.to)},
      {"previous_band", change.from ? boost::json::value(routing::to_string(*change.from))
                                    : boost::json::value(nullptr)},
      // In parts per million: an integer, exact to print.
      {"fallback_rate_ppm", static_cast<std::int64_t>(change.fallback_rate * 1e6 + 0.5)},
      {"requests", change.requests},
      {"window_s", change.window_s},
      {"message", change.line}};
  (void)hooks.emit("band", boost::json::serialize(body));
}

// Writes a routed stream to the client in its dialect, headers first.
class ClientStream final : public routing::StreamSink {
 public:
  ClientStream(http::Responder& responder, const Dialect& dialect, const chat::ChatRequest& request,
               std::string request_id, std::string workload)
      : responder_(responder),
        dialect_(dialect),
        request_(request),
        request_id_(std::move(request_id)),
        workload_(std::move(workload)) {}

  net::awaitable<bool> begin(const routing::RouteResult& result) override {
    const providers::Provider& served = *result.served_by->provider;
    writer_ = dialect_.stream_writer(request_, served.model());
    std::vector<http::Header> headers = {
        {"cache-control", "no-cache"},
        {"x-request-id", request_id_},
        {"x-backstop-workload", workload_},
        {"x-backstop-served-by", served.name()},
        {"x-backstop-attempts", std::to_string(result.attempts.size())}};
    if (result.bypassed) headers.push_back({"x-backstop-route", "bypass"});
    if (result.escalated) headers.push_back({"x-backstop-route", "escalate"});
    if (result.outcome == routing::Outcome::kFallback && result.fallback_reason) {
      headers.push_back({"x-backstop-fallback-reason",
                         std::string(validation::to_string(*result.fallback_reason))});
    }
    started_ = co_await responder_.begin_stream(200, "text/event-stream", std::move(headers));
    co_return started_;
  }

  net::awaitable<bool> send(const std::vector<chat::StreamEvent>& events) override {
    std::string out;
    for (const auto& e : events) out += writer_->encode(e);
    if (out.empty()) co_return true;
    co_return co_await responder_.write(out);
  }

  net::awaitable<void> finish() override {
    std::string out = writer_->finish();
    if (co_await responder_.write(out)) co_await responder_.end_stream();
  }

  net::awaitable<void> abort(const core::Error& error) override {
    std::string out = writer_->error(error);
    if (co_await responder_.write(out)) co_await responder_.end_stream();
  }

  [[nodiscard]] bool started() const { return started_; }

 private:
  http::Responder& responder_;
  const Dialect& dialect_;
  const chat::ChatRequest& request_;  // outlives the stream: the routed request
  std::string request_id_;
  std::string workload_;
  std::unique_ptr<dialects::StreamWriter> writer_;  // from begin()
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

// What the client's headers say of a retry (the sessions table judges the rest).
routing::ClientSignals client_signals(const http::Request& request) {
  routing::ClientSignals out;
  const std::string_view count = request.header("x-stainless-retry-count");
  std::from_chars(count.data(), count.data() + count.size(), out.retry_count);
  out.session_id = request.header("x-claude-code-session-id");
  if (out.session_id.empty()) out.session_id = request.header("x-session-id");
  return out;
}

// One worker's view of the gateway: its own client pool, metric shard, schema cache and
// id generator, so the request path takes no lock.
class GatewayService final : public http::Service {
 public:
  GatewayService(Gateway& gateway, net::io_context& loop, int worker)
      : gateway_(gateway),
        loop_(loop),
        http_(loop),
        dialects_(gateway.dialects()),
        shard_(gateway.registry().shard(worker)),
        rng_(std::random_device{}() ^ (static_cast<std::uint64_t>(worker) << 32)),
        ids_(rng_()),
        worker_(worker) {}

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
        status, dialects_.for_path(path).encode_error(core::Error{code, std::string(message)}, {}));
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
      if (key == nullptr) co_return unauthorized(dialects_.for_path(path), request, log);
      log.key = key->name;
    }
    if (const auto [dialect, endpoint] = dialects_.endpoint(path); dialect != nullptr) {
      if (!post) co_return method_not_allowed(*dialect, "POST", log);
      if (endpoint->kind == dialects::Endpoint::Kind::kCountTokens) {
        co_return co_await count_tokens(request, *dialect, key, log);
      }
      co_return co_await chat(request, *dialect, key, responder, log);
    }
    const Dialect& plain = dialects_.fallback();
    if (path == "/") {
      // Clients probe the base URL (Claude Code sends HEAD /) before their first request.
      if (!get) co_return method_not_allowed(plain, "GET", log);
      co_return json_response(200, R"({"status":"ok"})");
    }
    if (path == "/v1/models") {
      if (!get) co_return method_not_allowed(plain, "GET", log);
      co_return models(request, key);
    }
    if (path == "/metrics") {
      if (!get) co_return method_not_allowed(plain, "GET", log);
      if (!gateway_.keys().metrics_allowed(request.header("authorization"))) {
        http::Response r = error(
            plain,
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
      if (!get) co_return method_not_allowed(plain, "GET", log);
      co_return json_response(200, R"({"status":"ok"})");
    }
    if (path == "/readyz") {
      if (!get) co_return method_not_allowed(plain, "GET", log);
      if (gateway_.draining()) co_return json_response(503, R"({"status":"draining"})");
      co_return json_response(200, R"({"status":"ready"})");
    }
    // Under a dialect's chat endpoint in its shape (its SDKs read that), elsewhere the default.
    const Dialect& dialect = dialects_.for_path(path);
    boost::json::object extra;
    if (dialect.error_codes()) extra["code"] = "not_found";
    co_return error(dialect,
                    {ErrorCode::kNotFound,
                     request.method + " " + std::string(path) + " is not an endpoint (endpoints: " +
                         dialects_.endpoint_list() + ", " + std::string(kOtherEndpoints) + ")"},
                    log, std::move(extra));
  }

  // The workloads the key may use as models, in the list shape of the dialect whose marker
  // header the client sent (Anthropic's SDKs send anthropic-version), else the default's.
  // No key (no auth): all of them.
  http::Response models(const http::Request& request, const access::Key* key) const {
    std::vector<std::string_view> listed;
    for (const auto& w : gateway_.router().workloads()) {
      if (key == nullptr || key->allows(w->name)) listed.push_back(w->name);
    }
    const Dialect* shape = &dialects_.fallback();
    for (const Dialect* d : dialects_.all()) {
      const std::string_view marker = d->marker_header();
      if (!marker.empty() && !request.header(marker).empty()) {
        shape = d;
        break;
      }
    }
    return json_response(200, shape->encode_models(listed));
  }

  http::Response method_not_allowed(const Dialect& dialect, std::string_view allowed,
                                    telemetry::AccessLogEntry& log) {
    http::Response r = error(
        dialect, {ErrorCode::kMethodNotAllowed, "method not allowed; use " + std::string(allowed)},
        log, {});
    r.headers.push_back({"allow", std::string(allowed)});
    return r;
  }

  // The error in the dialect's shape; the access log line says what it was.
  http::Response error(const Dialect& dialect, core::Error e, telemetry::AccessLogEntry& log,
                       boost::json::object extra) {
    extra["request_id"] = log.request_id;
    if (const auto* code = extra.if_contains("code"); code != nullptr && code->is_string()) {
      log.error_code = std::string(code->get_string());
    } else {
      log.error_code = std::string(core::to_string(e.code));
    }
    log.error = e.message;
    return json_response(core::client_status(e), dialect.encode_error(e, extra));
  }

  // A request without a known key (auth is on): 401, neither counted nor in the ledger.
  http::Response unauthorized(const Dialect& dialect, const http::Request& request,
                              telemetry::AccessLogEntry& log) {
    const bool presented =
        !request.header("authorization").empty() || !request.header("x-api-key").empty();
    boost::json::object extra;
    if (dialect.error_codes()) extra["code"] = "invalid_api_key";
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
  http::Response reject(const Dialect& dialect, const http::Request& request, core::Error e,
                        telemetry::AccessLogEntry& log, boost::json::object extra = {}) {
    log.outcome = "rejected";
    if (!log.stream) log.stream = asked_for_stream(request.body);
    gateway_.router().count_rejected(shard_, log.workload, log.request_id, log.key);
    return error(dialect, std::move(e), log, std::move(extra));
  }

  // The verdict of the key's and the workload's budgets; a budget this check found spent for
  // the first time today is announced to the hooks.
  access::BudgetVerdict check_budget(const routing::Workload& workload,
                                     const telemetry::AccessLogEntry& log) {
    access::Budgets& budgets = gateway_.budgets();
    if (budgets.empty()) return {};
    const std::int64_t now_ms = gateway_.clock().unix_ms();
    access::BudgetVerdict verdict = budgets.check(workload.name, log.key, now_ms);
    if (!announce_budgets(gateway_.hooks(), gateway_.config(), verdict.newly_spent, now_ms)) {
      shard_.add(gateway_.router().metrics().log_lines_dropped_total, {"hooks"});
    }
    return verdict;
  }

  // 429 budget_exceeded in the client's dialect, counted per budget.
  http::Response over_budget(const Dialect& dialect, const http::Request& request,
                             const access::BudgetHit& hit, telemetry::AccessLogEntry& log) {
    shard_.add(gateway_.router().metrics().budget_rejections_total,
               {access::to_string(hit.scope), hit.name});
    boost::json::object extra{{"type", "budget_exceeded"}};
    if (dialect.error_codes()) extra["code"] = "budget_exceeded";
    http::Response r = reject(
        dialect, request,
        {ErrorCode::kRateLimited,
         std::string(access::to_string(hit.scope)) + " \"" + hit.name +
             "\" has spent its budget for " + hit.day + " (" + usd_text(hit.spent_micro_usd) +
             " of " + usd_text(hit.limit_micro_usd) + " USD); it resets at 00:00 UTC"},
        log, std::move(extra));
    // The OpenAI and Anthropic SDKs retry a 429 unless told not to; nothing changes before
    // midnight, which Retry-After names.
    constexpr std::int64_t kDayMs = 24 * 60 * 60 * 1000;
    const std::int64_t now_ms = gateway_.clock().unix_ms();
    const std::int64_t to_midnight_ms = kDayMs - ((now_ms % kDayMs) + kDayMs) % kDayMs;
    r.headers.push_back({"x-should-retry", "false"});
    r.headers.push_back({"retry-after", std::to_string((to_midnight_ms + 999) / 1000)});
    return r;
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
      const Dialect& dialect, const http::Request& request, const chat::ChatRequest& chat_request,
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

  // A token-counting endpoint (POST /v1/messages/count_tokens): the workload's first target
  // that counts tokens does; with none, a local estimate (x-backstop-token-count: estimate).
  net::awaitable<http::Response> count_tokens(const http::Request& request, const Dialect& dialect,
                                              const access::Key* key,
                                              telemetry::AccessLogEntry& log) {
    auto decoded = dialect.decode_count_tokens_request(request.body);
    if (!decoded) co_return reject(dialect, request, decoded.error(), log);
    forward_dialect_headers(request, dialect, *decoded);
    auto found = workload_of(dialect, request, *decoded, key, log);
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
        co_return error(dialect, answer.error(), log, {});
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

  // The client's own dialect headers (Anthropic's anthropic-version and anthropic-beta), for
  // targets of its dialect.
  static void forward_dialect_headers(const http::Request& request, const Dialect& dialect,
                                      chat::ChatRequest& out) {
    for (std::string_view name : dialect.forwarded_headers()) {
      if (std::string_view value = request.header(name); !value.empty()) {
        out.dialect_headers.emplace_back(std::string(name), std::string(value));
      }
    }
  }

  net::awaitable<std::optional<http::Response>> chat(const http::Request& request,
                                                     const Dialect& dialect, const access::Key* key,
                                                     http::Responder& responder,
                                                     telemetry::AccessLogEntry& log) {
    const routing::Router& router = gateway_.router();
    auto decoded = dialect.decode_request(request.body);
    if (!decoded) co_return reject(dialect, request, decoded.error(), log);
    if (auto invalid = validation::check_request_schemas(
            *decoded, schemas_, {dialect.tool_schema_field(), dialect.response_schema_field()})) {
      co_return reject(dialect, request, std::move(*invalid), log);
    }
    chat::ChatRequest& chat_request = *decoded;
    log.stream = chat_request.stream;
    forward_dialect_headers(request, dialect, chat_request);
    auto found = workload_of(dialect, request, chat_request, key, log);
    if (auto* response = std::get_if<http::Response>(&found)) co_return std::move(*response);
    const routing::Workload* workload = std::get<const routing::Workload*>(found);
    if (!routing::Router::carried(*workload, chat_request)) {
      co_return reject(dialect, request,
                       {ErrorCode::kInvalidArgument,
                        chat_request.dialect_only + " can only be sent to a target of the " +
                            std::string(chat_request.origin) + " dialect, and workload \"" +
                            workload->name + "\" has none"},
                       log);
    }
    log.workload = workload->name;
    const access::BudgetVerdict budget = check_budget(*workload, log);
    if (budget.action == access::BudgetVerdict::Action::kReject) {
      co_return over_budget(dialect, request, *budget.hit, log);
    }
    core::Cancellation cancel;
    routing::WorkerContext worker{loop_, http_, shard_, schemas_, rng_, &cancel, log.key};
    worker.primary_only = budget.action == access::BudgetVerdict::Action::kPrimaryOnly;
    worker.client = client_signals(request);
    std::optional<ClientStream> stream;
    routing::RouteResult result;
    {
      const ClientWatch watch(responder, cancel);
      if (chat_request.stream) {
        stream.emplace(responder, dialect, chat_request, log.request_id, workload->name);
        result =
            co_await router.route_stream(*workload, chat_request, worker, log.request_id, *stream);
      } else {
        result = co_await router.route(*workload, chat_request, worker, log.request_id);
      }
    }

    log.outcome = std::string(routing::to_string(result.outcome));
    emit_hook_event(*workload, result, log);
    gateway_.budgets().add(worker_, workload->name, log.key, log.unix_ms, result.cost_micro_usd);
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
    if (result.escalated) headers.push_back({"x-backstop-route", "escalate"});
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
    r.body = dialect.encode_response(*result.response, chat_request, model);
    r.headers = std::move(headers);
    co_return r;
  }

  Gateway& gateway_;
  net::io_context& loop_;
  providers::Connections http_;
  const dialects::Registry& dialects_;
  telemetry::Shard& shard_;
  validation::SchemaCache schemas_;
  std::mt19937_64 rng_;
  core::IdGenerator ids_;
  int worker_;
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

// Today's spend already in the ledger, so that a restart does not reset the day's budgets.
core::Result<void> seed_budgets(access::Budgets& budgets, const std::string& path,
                                std::int64_t now_ms) {
  auto spend = ledger::read_day_spend(path, ledger::utc_day(now_ms));
  if (!spend) return std::unexpected(spend.error());
  for (const ledger::KeySpend& s : *spend)
    budgets.seed(s.workload, s.key_name, now_ms, s.cost_micro_usd);
  return {};
}

}  // namespace

core::Result<std::unique_ptr<Gateway>> Gateway::create(std::shared_ptr<const config::Config> config,
                                                       GatewayOptions options) {
  std::unique_ptr<Gateway> g(new Gateway());
  g->config_ = std::move(config);
  g->dialects_ = options.dialects != nullptr ? options.dialects : &dialects::builtin();
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
    auto provider = build_provider(p, *g->dialects_, env);
    if (!provider) return std::unexpected(provider.error());
    g->providers_.push_back(std::move(*provider));
  }
  g->router_ = std::make_unique<routing::Router>(c, g->providers_, *g->registry_, *g->spend_,
                                                 *g->clock_, g->logger_, g->hooks_.get());
  g->budgets_ = std::make_unique<access::Budgets>(c, threads);
  if (!options.spend && !c.ledger.path.empty() && !g->budgets_->empty()) {
    if (auto seeded = seed_budgets(*g->budgets_, c.ledger.path, g->clock_->unix_ms()); !seeded) {
      return std::unexpected(seeded.error());
    }
  }
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
    std::unique_lock lock(band_mutex_);
    while (
        !band_wake_.wait_for(lock, std::chrono::seconds(10), [this] { return stopped_.load(); })) {
      watch();
    }
  });
  return {};
}

void Gateway::watch() {
  std::lock_guard lock(watch_mutex_);
  if (!band_watch_) band_watch_ = std::make_unique<routing::BandWatch>(*router_);
  const std::int64_t now_ms = clock_->unix_ms();
  for (const routing::BandWatch::Change& change : band_watch_->check(now_ms)) {
    logger_->log(core::LogLevel::kWarn, change.line);
    announce_band(*hooks_, change, now_ms);
  }
  if (!drift_watch_) drift_watch_ = std::make_unique<routing::DriftWatch>(*router_);
  for (const routing::DriftEvent& event : drift_watch_->check(now_ms)) {
    logger_->log(core::LogLevel::kWarn, event.line());
    if (hooks_->wants("drift")) hooks_->emit("drift", event.json());
  }
  // A budget spent by the last requests of a quiet spell is announced without waiting for
  // the next request.
  if (!budgets_->empty())
    (void)announce_budgets(*hooks_, *config_, budgets_->merge(now_ms), now_ms);
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
