#include "providers/synth.h"

#include <algorithm>
#include <array>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "chat/stream.h"

namespace backstop::providers {
namespace {

namespace bj = boost::json;

// Deeper than this, the generator gives up (null); deeper than kOptionalDepth it adds only
// required properties, so recursive schemas (trees) end.
constexpr int kMaxDepth = 32;
constexpr int kOptionalDepth = 6;

std::string hex(std::uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

// "a~1b~0c" -> "a/b~c" (RFC 6901).
std::string unescape_pointer_token(std::string_view token) {
  std::string out;
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
      out += token[i + 1] == '0' ? '~' : '/';
      ++i;
    } else {
      out += token[i];
    }
  }
  return out;
}

// Resolves a local $ref ("#", "#/definitions/X", "#/$defs/X", any JSON pointer).
const bj::value* resolve_ref(const bj::value& root, std::string_view ref) {
  if (!ref.starts_with('#')) return nullptr;
  ref.remove_prefix(1);
  const bj::value* at = &root;
  while (!ref.empty()) {
    if (ref.front() != '/') return nullptr;
    ref.remove_prefix(1);
    const std::size_t end = ref.find('/');
    const std::string token = unescape_pointer_token(ref.substr(0, end));
    ref = end == std::string_view::npos ? std::string_view{} : ref.substr(end);
    if (const auto* obj = at->if_object()) {
      const auto it = obj->find(token);
      if (it == obj->end()) return nullptr;
      at = &it->value();
    } else if (const auto* arr = at->if_array()) {
      char* parsed_end = nullptr;
      const unsigned long index = std::strtoul(token.c_str(), &parsed_end, 10);
      if (token.empty() || *parsed_end != '\0' || index >= arr->size()) return nullptr;
      at = &(*arr)[index];
    } else {
      return nullptr;
    }
  }
  return at;
}

const bj::array* array_field(const bj::object& obj, std::string_view key) {
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : it->value().if_array();
}

std::optional<double> number_field(const bj::object& obj, std::string_view key) {
  const auto it = obj.find(key);
  if (it == obj.end() || !it->value().is_number()) return std::nullopt;
  return it->value().to_number<double>();
}

bool true_field(const bj::object& obj, std::string_view key) {
  const auto it = obj.find(key);
  return it != obj.end() && it->value().is_bool() && it->value().get_bool();
}

// The types a schema allows, from `type` (a string or a list), or inferred from the
// keywords present; empty when it says nothing.
std::vector<std::string> schema_types(const bj::object& obj) {
  std::vector<std::string> types;
  if (const auto it = obj.find("type"); it != obj.end()) {
    if (const auto* s = it->value().if_string()) types.emplace_back(*s);
    if (const auto* arr = it->value().if_array()) {
      for (const auto& t : *arr) {
        if (const auto* s = t.if_string()) types.emplace_back(*s);
      }
    }
    return types;
  }
  if (obj.contains("properties") || obj.contains("required") ||
      obj.contains("additionalProperties")) {
    types.emplace_back("object");
  } else if (obj.contains("items") || obj.contains("prefixItems") || obj.contains("minItems")) {
    types.emplace_back("array");
  } else if (obj.contains("minimum") || obj.contains("maximum") ||
             obj.contains("exclusiveMinimum") || obj.contains("exclusiveMaximum")) {
    types.emplace_back("number");
  } else if (obj.contains("minLength") || obj.contains("maxLength") || obj.contains("format") ||
             obj.contains("pattern")) {
    types.emplace_back("string");
  }
  return types;
}

// The type to generate: the first one listed that is not "null" (null only when alone).
std::string primary_type(const bj::object& obj) {
  const auto types = schema_types(obj);
  for (const auto& t : types) {
    if (t != "null") return t;
  }
  return types.empty() ? std::string() : types.front();
}

std::string string_for(const bj::object& obj) {
  std::string out = "example";
  if (const auto it = obj.find("format"); it != obj.end() && it->value().is_string()) {
    const std::string_view format = it->value().get_string();
    if (format == "date") out = "2026-12-01";
    if (format == "date-time") out = "2026-12-01T09:00:00Z";
    if (format == "time") out = "09:00:00";
    if (format == "email") out = "user@example.com";
    if (format == "uri" || format == "url" || format == "iri") out = "https://example.com/";
    if (format == "uuid") out = "123e4567-e89b-42d3-a456-426614174000";
    if (format == "ipv4") out = "192.0.2.1";
    if (format == "ipv6") out = "2001:db8::1";
    if (format == "hostname") out = "example.com";
  }
  if (const auto min = number_field(obj, "minLength"); min && out.size() < *min) {
    out.append(static_cast<std::size_t>(*min) - out.size(), 'x');
  }
  if (const auto max = number_field(obj, "maxLength"); max && out.size() > *max) {
    out.resize(static_cast<std::size_t>(*max));
  }
  return out;
}

// A number within minimum/maximum (inclusive or exclusive, drafts 4 and 6+), near 1.
bj::value number_for(const bj::object& obj, bool integer) {
  std::optional<double> lo = number_field(obj, "minimum");
  std::optional<double> hi = number_field(obj, "maximum");
  bool lo_exclusive = true_field(obj, "exclusiveMinimum");  // draft 4: a flag
  bool hi_exclusive = true_field(obj, "exclusiveMaximum");
  if (const auto x = number_field(obj, "exclusiveMinimum")) {
    lo = x;
    lo_exclusive = true;
  }
  if (const auto x = number_field(obj, "exclusiveMaximum")) {
    hi = x;
    hi_exclusive = true;
  }
  if (integer) {
    // Exclusive integer bounds become inclusive ones.
    if (lo) lo = lo_exclusive ? std::floor(*lo) + 1 : std::ceil(*lo);
    if (hi) hi = hi_exclusive ? std::ceil(*hi) - 1 : std::floor(*hi);
    lo_exclusive = hi_exclusive = false;
  }
  double v = 1;
  const auto below = [&](double x) { return lo && (x < *lo || (lo_exclusive && x <= *lo)); };
  const auto above = [&](double x) { return hi && (x > *hi || (hi_exclusive && x >= *hi)); };
  if (below(v)) v = lo_exclusive ? *lo + 1 : *lo;
  if (above(v)) v = hi_exclusive ? *hi - 1 : *hi;
  if (below(v) && lo && hi) v = (*lo + *hi) / 2;
  if (const auto m = number_field(obj, "multipleOf"); m && *m > 0) {
    const double up = std::ceil(v / *m) * *m;
    v = above(up) ? std::floor(v / *m) * *m : up;
  }
  // A whole number is written as one ("1", not "1.0"): clients that read a `number` into an
  // integer type (Codex CLI's tool arguments) refuse the other spelling.
  if (integer || (v == std::floor(v) && std::fabs(v) < 1e15)) {
    return bj::value(static_cast<std::int64_t>(std::llround(v)));
  }
  return bj::value(v);
}

class Generator {
 public:
  explicit Generator(const bj::value& root) : root_(root) {}

  bj::value instance(const bj::value& schema, int depth) const {
    if (depth > kMaxDepth) return nullptr;
    const auto* obj = schema.if_object();
    if (obj == nullptr) return "example";  // `true` (or a non-schema): anything goes
    if (const auto it = obj->find("$ref"); it != obj->end() && it->value().is_string()) {
      const bj::value* target = resolve_ref(root_, it->value().get_string());
      return target != nullptr ? instance(*target, depth + 1) : bj::value(nullptr);
    }
    if (const auto it = obj->find("const"); it != obj->end()) return it->value();
    if (const auto* values = array_field(*obj, "enum"); values && !values->empty()) {
      return values->front();
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (const auto* branches = array_field(*obj, key); branches && !branches->empty()) {
        return instance(branches->front(), depth + 1);
      }
    }
    bj::value out = typed(*obj, depth);
    if (const auto* parts = array_field(*obj, "allOf")) {
      // Every part must hold: merge the parts' objects into one.
      for (const auto& part : *parts) {
        bj::value piece = instance(part, depth + 1);
        if (out.is_null()) {
          out = std::move(piece);
        } else if (out.is_object() && piece.is_object()) {
          for (auto& [key, value] : piece.as_object()) {
            if (!out.as_object().contains(key)) out.as_object()[key] = std::move(value);
          }
        }
      }
    }
    return out;
  }

 private:
  bj::value typed(const bj::object& obj, int depth) const {
    const std::string type = primary_type(obj);
    if (type == "object") return object_for(obj, depth);
    if (type == "array") return array_for(obj, depth);
    if (type == "string") return bj::value(string_for(obj));
    if (type == "integer") return number_for(obj, true);
    if (type == "number") return number_for(obj, false);
    if (type == "boolean") return true;
    if (type == "null") return nullptr;
    // No type at all: null when a combinator will supply the value, else anything.
    return obj.contains("allOf") ? bj::value(nullptr) : bj::value("example");
  }

  bj::value object_for(const bj::object& obj, int depth) const {
    bj::object out;
    std::vector<std::string_view> required;
    if (const auto* list = array_field(obj, "required")) {
      for (const auto& name : *list) {
        if (const auto* s = name.if_string()) required.emplace_back(*s);
      }
    }
    if (const auto it = obj.find("properties"); it != obj.end() && it->value().is_object()) {
      for (const auto& [key, schema] : it->value().get_object()) {
        const bool is_required =
            std::ranges::find(required, std::string_view(key)) != required.end();
        if (!is_required && depth > kOptionalDepth) continue;
        out[key] = instance(schema, depth + 1);
      }
    }
    for (const auto name : required) {
      if (!out.contains(name)) out[name] = "example";
    }
    return out;
  }

  bj::value array_for(const bj::object& obj, int depth) const {
    bj::array out;
    const bj::array* prefix = array_field(obj, "prefixItems");
    const bj::value* items = nullptr;
    if (const auto it = obj.find("items"); it != obj.end()) {
      if (it->value().is_array()) {
        prefix = &it->value().get_array();  // draft 7 tuple form
      } else {
        items = &it->value();
      }
    }
    std::size_t count = 1;
    if (const auto min = number_field(obj, "minItems")) count = static_cast<std::size_t>(*min);
    if (prefix != nullptr) count = std::max(count, prefix->size());
    count = std::max<std::size_t>(count, 1);
    if (const auto max = number_field(obj, "maxItems"); max && count > *max) {
      count = static_cast<std::size_t>(*max);
    }
    for (std::size_t i = 0; i < count; ++i) {
      if (prefix != nullptr && i < prefix->size()) {
        out.push_back(instance((*prefix)[i], depth + 1));
      } else if (items != nullptr) {
        out.push_back(instance(*items, depth + 1));
      } else {
        out.push_back("example");
      }
    }
    return out;
  }

  const bj::value& root_;
};

// Follows $refs from the top of `schema` to the schema that says something.
const bj::value& follow_refs(const bj::value& root, const bj::value& schema) {
  const bj::value* at = &schema;
  for (int i = 0; i < kMaxDepth; ++i) {
    const auto* obj = at->if_object();
    if (obj == nullptr) break;
    const auto it = obj->find("$ref");
    if (it == obj->end() || !it->value().is_string()) break;
    const bj::value* target = resolve_ref(root, it->value().get_string());
    if (target == nullptr) break;
    at = target;
  }
  return *at;
}

// A value of a type the schema does not allow; nullopt when it allows every type.
std::optional<bj::value> wrong_type_for(const bj::object& obj) {
  const auto types = schema_types(obj);
  if (types.empty()) {
    if (obj.contains("enum") || obj.contains("const")) return bj::value("__not_an_allowed_value__");
    return std::nullopt;
  }
  const auto allows = [&](std::string_view t) {
    return std::ranges::find(types, t) != types.end();
  };
  if (!allows("null")) return bj::value(nullptr);
  if (!allows("string")) return bj::value("wrong type");
  if (!allows("integer") && !allows("number")) return bj::value(12345);
  if (!allows("boolean")) return bj::value(true);
  if (!allows("array")) return bj::value(bj::array{});
  if (!allows("object")) return bj::value(bj::object{});
  return std::nullopt;
}

std::int64_t tokens_for(std::size_t characters) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(characters / 4));
}

// Whether a tool result came after the conversation's last assistant message: the model
// has what it asked for, and the round trip ends with text.
bool answers_tool_result(const chat::ChatRequest& request) {
  for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it) {
    if (it->role == chat::Role::kTool) return true;
    if (it->role == chat::Role::kAssistant) return false;
  }
  return false;
}

// The tool a correct answer calls, or nullptr when the answer is not a tool call.
const chat::Tool* chosen_tool(const chat::ChatRequest& request) {
  using Kind = chat::ToolChoice::Kind;
  const Kind choice = request.tool_choice.kind;
  if (request.tools.empty() || choice == Kind::kNone) return nullptr;
  // A forced choice (required, or a named tool) calls a tool whatever came before.
  if ((choice == Kind::kUnset || choice == Kind::kAuto) && answers_tool_result(request)) {
    return nullptr;
  }
  if (choice == Kind::kNamed) {
    if (const auto* tool = request.find_tool(request.tool_choice.name)) return tool;
  }
  return &request.tools.front();
}

// Cuts JSON text in the middle, so it no longer parses.
std::string cut(const std::string& text) {
  return text.substr(0, std::max<std::size_t>(1, text.size() / 2));
}

constexpr std::array<std::string_view, 4> kTextAnswers = {
    "Here is a short answer to your question.",
    "Sure. The short answer is yes, with the details above in mind.",
    "I looked at this and the answer is ok.",
    "Done: the request was handled as described.",
};

// `text` cut into up to `pieces` parts of about equal size, never inside a UTF-8 character.
std::vector<std::string> split_text(const std::string& text, std::size_t pieces) {
  std::vector<std::string> parts;
  const std::size_t step =
      std::max<std::size_t>(1, (text.size() + pieces - 1) / std::max<std::size_t>(1, pieces));
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = std::min(text.size(), begin + step);
    // A continuation byte (10xxxxxx) belongs to the character before it.
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    parts.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return parts;
}

}  // namespace

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string_view to_string(Fault fault) {
  switch (fault) {
    case Fault::kNone:
      return "none";
    case Fault::kNoToolCall:
      return "no_tool_call";
    case Fault::kUnknownTool:
      return "unknown_tool";
    case Fault::kInvalidJson:
      return "invalid_json";
    case Fault::kSchema:
      return "schema";
    case Fault::kEmpty:
      return "empty";
    case Fault::kTruncated:
      return "truncated";
  }
  return "none";
}

std::optional<Fault> parse_fault(std::string_view name) {
  for (const Fault fault :
       {Fault::kNone, Fault::kNoToolCall, Fault::kUnknownTool, Fault::kInvalidJson, Fault::kSchema,
        Fault::kEmpty, Fault::kTruncated}) {
    if (to_string(fault) == name) return fault;
  }
  return std::nullopt;
}

bj::value instance_of(const bj::value& schema) { return Generator(schema).instance(schema, 0); }

bj::value violation_of(const bj::value& schema) {
  bj::value instance = instance_of(schema);
  const auto* top = follow_refs(schema, schema).if_object();
  if (top == nullptr) return instance;
  if (auto* out = instance.if_object()) {
    if (const auto* required = array_field(*top, "required")) {
      for (const auto& name : *required) {
        if (const auto* s = name.if_string(); s && out->erase(*s) > 0) return instance;
      }
    }
    if (const auto it = top->find("properties"); it != top->end() && it->value().is_object()) {
      for (const auto& [key, property] : it->value().get_object()) {
        const auto* resolved = follow_refs(schema, property).if_object();
        if (resolved == nullptr) continue;
        if (auto wrong = wrong_type_for(*resolved)) {
          (*out)[key] = std::move(*wrong);
          return instance;
        }
      }
    }
  }
  if (auto wrong = wrong_type_for(*top)) return std::move(*wrong);
  return instance;
}

chat::ChatResponse synthesize(const chat::ChatRequest& request, Fault fault, std::string_view model,
                              std::uint64_t random) {
  chat::ChatResponse response;
  response.id = "chatcmpl-" + hex(mix64(random));
  response.model = std::string(model);
  response.finish_reason = chat::FinishReason::kStop;
  const bool cut_json = fault == Fault::kInvalidJson || fault == Fault::kTruncated;
  const chat::Tool* tool = chosen_tool(request);

  if (fault == Fault::kEmpty) {
    response.content = "";
  } else if (tool != nullptr && fault != Fault::kNoToolCall) {
    bj::value arguments =
        fault == Fault::kSchema ? violation_of(tool->parameters) : instance_of(tool->parameters);
    // Arguments are an object on the wire; a schema that allows anything gets {}.
    if (!arguments.is_object() && fault != Fault::kSchema) arguments = bj::object{};
    std::string text = bj::serialize(arguments);
    if (cut_json) text = cut(text);
    response.tool_calls.push_back(chat::ToolCall{
        "call_" + hex(mix64(random ^ 0x5bd1e995ULL)),
        fault == Fault::kUnknownTool ? "unknown_tool" : tool->name, std::move(text)});
    response.finish_reason = chat::FinishReason::kToolCalls;
  } else if (request.response_format.kind == chat::ResponseFormat::Kind::kJsonSchema) {
    const auto& schema = request.response_format.schema;
    std::string text =
        bj::serialize(fault == Fault::kSchema ? violation_of(schema) : instance_of(schema));
    response.content = cut_json ? cut(text) : text;
  } else if (request.response_format.kind == chat::ResponseFormat::Kind::kJsonObject) {
    const std::string text = R"({"answer":"ok"})";
    response.content = cut_json ? cut(text) : text;
  } else {
    const std::string text(kTextAnswers[random % kTextAnswers.size()]);
    response.content = fault == Fault::kTruncated ? cut(text) : text;
  }
  if (fault == Fault::kTruncated) response.finish_reason = chat::FinishReason::kLength;

  std::size_t input_chars = 0;
  for (const auto& message : request.messages) {
    input_chars += message.text().size();
    for (const auto& call : message.tool_calls)
      input_chars += call.name.size() + call.arguments.size();
  }
  std::size_t output_chars = response.content ? response.content->size() : 0;
  for (const auto& call : response.tool_calls)
    output_chars += call.name.size() + call.arguments.size();
  response.usage.input_tokens = tokens_for(input_chars);
  response.usage.output_tokens = tokens_for(output_chars);
  return response;
}

std::vector<chat::StreamEvent> stream_events(const chat::ChatResponse& response,
                                             std::size_t pieces) {
  using Kind = chat::StreamEvent::Kind;
  std::vector<chat::StreamEvent> out;
  for (chat::StreamEvent& event : chat::to_events(response)) {
    if (event.kind != Kind::kTextDelta && event.kind != Kind::kReasoningDelta &&
        event.kind != Kind::kToolCallDelta) {
      out.push_back(std::move(event));
      continue;
    }
    for (std::string& part : split_text(event.text, pieces)) {
      chat::StreamEvent piece = event;
      piece.text = std::move(part);
      out.push_back(std::move(piece));
    }
  }
  return out;
}

}  // namespace backstop::providers
