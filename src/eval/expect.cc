#include "eval/expect.h"

#include <re2/re2.h>

#include <algorithm>

#include "json/json.h"

namespace backstop::eval {
namespace {

namespace bj = boost::json;
using validation::Reason;
using validation::Verdict;

// A number of either kind as a double, for comparing 1 with 1.0.
std::optional<double> number_of(const bj::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double()) return v.get_double();
  return std::nullopt;
}

// Escapes a key as a JSON pointer token (RFC 6901).
std::string pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string> object_difference(const bj::object& a, const bj::object& b) {
  for (const auto& member : a) {
    const bj::value* other = b.if_contains(member.key());
    const std::string here = "/" + pointer_token(member.key());
    if (other == nullptr) return here;
    if (auto inner = first_difference(member.value(), *other)) return here + *inner;
  }
  for (const auto& member : b) {
    if (!a.contains(member.key())) return "/" + pointer_token(member.key());
  }
  return std::nullopt;
}

std::optional<std::string> array_difference(const bj::array& a, const bj::array& b) {
  const std::size_t common = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < common; ++i) {
    if (auto inner = first_difference(a[i], b[i])) return "/" + std::to_string(i) + *inner;
  }
  if (a.size() != b.size()) return "/" + std::to_string(common);
  return std::nullopt;
}

// The call the expectations are about: the expected tool's, else the first.
const chat::ToolCall* call_of(const Expect& expect, const chat::ChatResponse& response) {
  if (response.tool_calls.empty()) return nullptr;
  if (!expect.tool) return &response.tool_calls.front();
  for (const auto& call : response.tool_calls) {
    if (call.name == *expect.tool) return &call;
  }
  return nullptr;
}

Verdict schema_verdict(validation::SchemaCache& schemas, const bj::value& schema,
                       const bj::value& instance, std::string_view what) {
  validation::SchemaOutcome outcome = schemas.validate(schema, instance);
  if (outcome.kind == validation::SchemaOutcome::Kind::kValid) return Verdict::ok();
  return Verdict::fail(Reason::kSchema, std::string(what) + ": " + outcome.message);
}

Verdict check_call(const Expect& expect, const chat::ChatResponse& response,
                   validation::SchemaCache& schemas) {
  if (response.tool_calls.empty()) {
    return Verdict::fail(Reason::kNoToolCall, "expected a tool call, the answer has none");
  }
  const chat::ToolCall* call = call_of(expect, response);
  if (call == nullptr) {
    return Verdict::fail(Reason::kToolMismatch, "expected tool \"" + *expect.tool +
                                                    "\", called \"" +
                                                    response.tool_calls.front().name + "\"");
  }
  if (!expect.arguments && !expect.arguments_schema) return Verdict::ok();
  auto arguments = json::parse(call->arguments);
  if (!arguments) {
    return Verdict::fail(Reason::kInvalidJson,
                         "arguments of " + call->name + ": " + arguments.error().message);
  }
  if (expect.arguments) {
    if (auto where = first_difference(*expect.arguments, *arguments)) {
      return Verdict::fail(
          Reason::kSchema,
          "arguments of " + call->name + " differ from the expected ones at \"" + *where + "\"");
    }
  }
  if (expect.arguments_schema) {
    return schema_verdict(schemas, *expect.arguments_schema, *arguments,
                          "arguments of " + call->name + " (expect.arguments_schema)");
  }
  return Verdict::ok();
}

Verdict check_content(const Expect& expect, const chat::ChatResponse& response,
                      validation::SchemaCache& schemas) {
  if (!expect.content_pattern && !expect.content_schema) return Verdict::ok();
  const std::string content = response.content.value_or("");
  if (content.empty())
    return Verdict::fail(Reason::kEmpty, "expected content, the answer has none");
  if (expect.content_pattern && !RE2::PartialMatch(content, *expect.content_pattern)) {
    return Verdict::fail(Reason::kSchema, "content does not match expect.content_regex");
  }
  if (!expect.content_schema) return Verdict::ok();
  auto parsed = json::parse(content);
  if (!parsed) return Verdict::fail(Reason::kInvalidJson, "content: " + parsed.error().message);
  return schema_verdict(schemas, *expect.content_schema, *parsed,
                        "content (expect.content_schema)");
}

}  // namespace

std::optional<std::string> first_difference(const bj::value& a, const bj::value& b) {
  const auto na = number_of(a);
  const auto nb = number_of(b);
  if (na || nb) {
    if (na && nb && *na == *nb) return std::nullopt;
    return std::string();
  }
  if (a.kind() != b.kind()) return std::string();
  if (a.is_object()) return object_difference(a.get_object(), b.get_object());
  if (a.is_array()) return array_difference(a.get_array(), b.get_array());
  if (a == b) return std::nullopt;
  return std::string();
}

Verdict check_expect(const Expect& expect, const chat::ChatResponse& response,
                     validation::SchemaCache& schemas) {
  if (expect.wants_tool_call()) {
    if (Verdict v = check_call(expect, response, schemas); !v.pass) return v;
  }
  return check_content(expect, response, schemas);
}

}  // namespace backstop::eval
