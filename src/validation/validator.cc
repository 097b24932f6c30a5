#include "validation/validator.h"

#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/stream_parser.hpp>
#include <expected>

#include "json/json.h"

namespace backstop::validation {
namespace {

namespace bj = boost::json;

constexpr std::size_t kMaxName = 64;     // a model may invent a very long "name"
constexpr std::size_t kMaxOffered = 10;  // names listed in a tool_mismatch detail

// A tool name as it appears in a detail: quoted, and cut when absurdly long.
std::string quoted_name(std::string_view name) {
  std::string out = "\"";
  out += name.substr(0, kMaxName);
  if (name.size() > kMaxName) out += "...";
  out += '"';
  return out;
}

// "a, b, c" from the names `name_of` reads off `items`; "none" when there are none.
template <typename Items, typename NameOf>
std::string listed(const Items& items, NameOf name_of) {
  if (items.empty()) return "none";
  std::string out;
  std::size_t shown = 0;
  for (const auto& item : items) {
    if (shown == kMaxOffered) {
      out += ", ...";
      break;
    }
    if (shown++ > 0) out += ", ";
    out += std::string_view(name_of(item)).substr(0, kMaxName);
  }
  return out;
}

bool is_blank(const std::optional<std::string>& content) {
  if (!content) return true;
  return std::all_of(content->begin(), content->end(),
                     [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; });
}

// Parses one JSON text into `storage`; on failure, the byte offset where it went wrong.
// Written here rather than json::parse so that the value lives in the caller's arena and
// a failure builds no message.
std::expected<bj::value, std::size_t> parse_json(std::string_view text, bj::storage_ptr storage) {
  unsigned char scratch[512];
  bj::stream_parser parser({}, {}, scratch, sizeof scratch);
  parser.reset(std::move(storage));
  boost::system::error_code ec;
  std::size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) {
    auto extra = text.find_first_not_of(" \t\r\n", consumed);
    if (extra != std::string_view::npos) return std::unexpected(extra);
  }
  if (!ec) parser.finish(ec);
  if (ec) return std::unexpected(consumed);
  return parser.release();
}

class BuiltinValidator final : public Validator {
 public:
  explicit BuiltinValidator(Spec spec) : spec_(std::move(spec)) {}

  Verdict check(const chat::ChatRequest& request, const chat::ChatResponse& response,
                SchemaCache& schemas) const override {
    if (response.finish_reason == chat::FinishReason::kLength && !spec_.allow_truncated) {
      return Verdict::fail(Reason::kTruncated, "finish_reason length");
    }
    if (response.tool_calls.empty()) {
      if (spec_.tool_call == Spec::ToolCall::kRequired) {
        return Verdict::fail(Reason::kNoToolCall, "no tool call in the answer");
      }
      return check_content(request, response, schemas);
    }
    for (const auto& call : response.tool_calls) {
      if (Verdict v = check_name(request, call); !v.pass) return v;
    }
    if (spec_.arguments != Spec::Arguments::kNone) {
      for (const auto& call : response.tool_calls) {
        if (Verdict v = check_arguments(request, call, schemas); !v.pass) return v;
      }
    }
    return Verdict::ok();
  }

 private:
  static Verdict not_offered(const chat::ChatRequest& request, std::string_view name) {
    return Verdict::fail(
        Reason::kToolMismatch,
        "tool " + quoted_name(name) + " was not offered (offered: " +
            listed(request.tools,
                   [](const chat::Tool& t) -> const std::string& { return t.name; }) +
            ")");
  }

  Verdict check_name(const chat::ChatRequest& request, const chat::ToolCall& call) const {
    if (spec_.tool_names_declared && request.find_tool(call.name) == nullptr) {
      return not_offered(request, call.name);
    }
    const auto& allowed = spec_.tool_names;
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), call.name) == allowed.end()) {
      return Verdict::fail(
          Reason::kToolMismatch,
          "tool " + quoted_name(call.name) + " is not allowed (allowed: " +
              listed(allowed, [](const std::string& n) -> const std::string& { return n; }) + ")");
    }
    const bool names_checked = spec_.tool_names_declared || !allowed.empty();
    const auto& choice = request.tool_choice;
    if (names_checked && choice.kind == chat::ToolChoice::Kind::kNamed &&
        call.name != choice.name) {
      return Verdict::fail(Reason::kToolMismatch, "tool " + quoted_name(call.name) +
                                                      " was called but tool_choice named " +
                                                      quoted_name(choice.name));
    }
    return Verdict::ok();
  }

  Verdict check_arguments(const chat::ChatRequest& request, const chat::ToolCall& call,
                          SchemaCache& schemas) const {
    // Arguments are small; most parse inside this stack arena without touching the heap.
    unsigned char arena[4096];
    bj::monotonic_resource resource(arena, sizeof arena);
    const std::string_view name = std::string_view(call.name).substr(0, kMaxName);
    auto arguments = parse_json(call.arguments, &resource);
    if (!arguments) {
      return Verdict::fail(Reason::kInvalidJson, "arguments of " + std::string(name) +
                                                     " are not valid JSON at byte " +
                                                     std::to_string(arguments.error()));
    }
    if (!arguments->is_object()) {
      return Verdict::fail(Reason::kInvalidJson,
                           "arguments of " + std::string(name) + " are not a JSON object (got " +
                               std::string(json::kind_name(*arguments)) + ")");
    }
    if (spec_.arguments != Spec::Arguments::kSchema) return Verdict::ok();
    const chat::Tool* tool = request.find_tool(call.name);
    if (tool == nullptr) return not_offered(request, call.name);
    if (tool->parameters.is_null()) return Verdict::ok();
    SchemaOutcome outcome = schemas.validate(tool->parameters, *arguments);
    switch (outcome.kind) {
      case SchemaOutcome::Kind::kValid:
        return Verdict::ok();
      case SchemaOutcome::Kind::kMismatch:
        return Verdict::fail(Reason::kSchema,
                             "arguments of " + std::string(name) + ": " + outcome.message);
      case SchemaOutcome::Kind::kInvalidSchema:
        break;
    }
    return Verdict::fail(Reason::kSchema,
                         "schema of " + std::string(name) + " is invalid: " + outcome.message);
  }

  Verdict check_content(const chat::ChatRequest& request, const chat::ChatResponse& response,
                        SchemaCache& schemas) const {
    if (is_blank(response.content)) {
      // Neither a call nor text: nothing useful, whenever anything was asked of the answer.
      if (spec_.content != Spec::Content::kOff || spec_.tool_call == Spec::ToolCall::kOptional) {
        return Verdict::fail(Reason::kEmpty, "empty content");
      }
      return Verdict::ok();
    }
    if (spec_.content != Spec::Content::kJson && spec_.content != Spec::Content::kSchema) {
      return Verdict::ok();
    }
    unsigned char arena[4096];
    bj::monotonic_resource resource(arena, sizeof arena);
    auto content = parse_json(*response.content, &resource);
    if (!content) {
      return Verdict::fail(Reason::kInvalidJson,
                           "content is not valid JSON at byte " + std::to_string(content.error()));
    }
    const auto& format = request.response_format;
    if (spec_.content != Spec::Content::kSchema ||
        format.kind != chat::ResponseFormat::Kind::kJsonSchema || format.schema.is_null()) {
      return Verdict::ok();
    }
    SchemaOutcome outcome = schemas.validate(format.schema, *content);
    switch (outcome.kind) {
      case SchemaOutcome::Kind::kValid:
        return Verdict::ok();
      case SchemaOutcome::Kind::kMismatch:
        return Verdict::fail(Reason::kSchema, "content: " + outcome.message);
      case SchemaOutcome::Kind::kInvalidSchema:
        break;
    }
    return Verdict::fail(Reason::kSchema,
                         "schema of response_format is invalid: " + outcome.message);
  }

  Spec spec_;
};

}  // namespace

std::unique_ptr<Validator> make_validator(Spec spec) {
  return std::make_unique<BuiltinValidator>(std::move(spec));
}

}  // namespace backstop::validation
