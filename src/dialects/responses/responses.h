#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat.h"
#include "core/error.h"

// OpenAI's Responses API (POST /v1/responses), inbound and stateless: a client's request is
// read into the neutral model (then sent to any target, translated), and the answer is written
// back as a `response` object or its event stream. Nothing is stored: `store: true` is
// answered with `store: false`, and what needs stored state (`previous_response_id`,
// `conversation`, item references) or a built-in tool is refused with a 400.
namespace backstop::dialects::responses {

// The dialect's name: ChatRequest::origin of its clients' requests, and its registry key.
inline constexpr std::string_view kName = "responses";

// A client's request body. kInvalidArgument with a message naming the path of what is wrong
// ("`input[3].call_id` is required").
[[nodiscard]] core::Result<chat::ChatRequest> decode_request(std::string_view body);

// What a `response` object repeats of the request it answers.
struct Echo {
  std::string model;  // the name reported (the served model)
  std::optional<std::int64_t> max_output_tokens;
  std::optional<double> temperature;
  std::optional<double> top_p;
  bool parallel_tool_calls = true;
};

// The echo of a decoded request, reported under `model`.
[[nodiscard]] Echo echo_of(const chat::ChatRequest& request, std::string_view model);

// The `response` object for an answer (status completed, or incomplete when the answer was cut
// at max_output_tokens or by a content filter).
[[nodiscard]] std::string encode_response(const chat::ChatResponse& response, const Echo& echo);

// {"error":{"message","type","param","code",...extra}}: the Responses API answers errors in the
// shape of Chat Completions.
[[nodiscard]] std::string encode_error(const core::Error& error,
                                       const boost::json::object& extra = {});

// Turns neutral events into the Responses event stream as SSE frames ("event: TYPE\ndata:
// {...}\n\n"): response.created and response.in_progress first; each reasoning, message and
// function call as an output item (added, its deltas, done); response.completed or
// response.incomplete at the end, each event with its sequence_number.
class StreamEncoder {
 public:
  explicit StreamEncoder(Echo echo);
  [[nodiscard]] std::string encode(const chat::StreamEvent& event);
  // Closes the open items, then response.completed (or response.incomplete).
  [[nodiscard]] std::string finish();
  // A stream that broke after bytes were sent: response.failed, with the error in
  // `response.error`; nothing follows it.
  [[nodiscard]] std::string error(const core::Error& error);

 private:
  struct Item {
    enum class Kind { kReasoning, kMessage, kFunctionCall };
    Kind kind = Kind::kMessage;
    std::string id;       // rs_..., msg_..., fc_...
    std::string text;     // reasoning summary or message text; function call arguments
    std::string call_id;  // kFunctionCall
    std::string name;     // kFunctionCall
    int tool_index = -1;  // kFunctionCall: the stream's tool call index
    bool done = false;
  };

  static Item new_item(Item::Kind kind, std::string_view id_prefix);
  // response.created and response.in_progress, unless they went out already.
  void start(std::string& out);
  // One SSE frame for `data` (its "type" set to `type`, a sequence_number added).
  void frame(std::string& out, std::string_view type, boost::json::object data);
  // Adds an item and its output_item.added (and, for text, its part's .added) event.
  Item& open(std::string& out, Item item);
  // The .done events of item `index`, if it is still open.
  void close(std::string& out, std::size_t index);
  // The open item of `kind` last added, or nullptr when the last item is of another kind.
  Item* last_open(Item::Kind kind);
  // The `response` object as it stands, with `status`.
  [[nodiscard]] boost::json::object snapshot(std::string_view status) const;

  Echo echo_;
  std::string id_;
  std::int64_t created_at_ = 0;
  std::int64_t sequence_ = 0;
  bool started_ = false;
  std::vector<Item> items_;
  chat::FinishReason finish_reason_ = chat::FinishReason::kStop;
  chat::Usage usage_;
};

// --- as a target (`kind: openai_responses`) ---

// The body for a Responses API target: the client's own bytes when it spoke this dialect
// (stored state, built-in tools and all; the model replaced), else encoded from the fields
// (system turns as `instructions`, the rest as `input` items, `store: false`).
[[nodiscard]] std::string encode_upstream_request(const chat::ChatRequest& request,
                                                  std::string_view model);
// A `response` object; kBadResponse when it is not one, kUpstream when its status is failed.
[[nodiscard]] core::Result<chat::ChatResponse> decode_upstream_response(std::string_view body);

// Reads a Responses API event stream: text, reasoning and function-call deltas, the end
// (response.completed / response.incomplete) with the usage; response.failed and error
// events are kUpstream.
class UpstreamStreamDecoder {
 public:
  [[nodiscard]] core::Result<void> feed(std::string_view event, std::string_view data,
                                        std::vector<chat::StreamEvent>& out);
  [[nodiscard]] bool done() const { return done_; }
  [[nodiscard]] bool complete() const { return done_; }

 private:
  std::vector<std::int64_t> tools_;  // per tool call index: its output_index
  bool done_ = false;
};

}  // namespace backstop::dialects::responses
