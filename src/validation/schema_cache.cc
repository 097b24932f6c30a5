#include <algorithm>
#include <boost/json/serializer.hpp>
#include <charconv>
#include <exception>
#include <expected>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "validation/pattern.h"
#include "validation/schema_bounds.h"
#include "validation/validator.h"
#include "validation/valijson_re2.h"

namespace backstop::validation {
namespace {

namespace bj = boost::json;

constexpr std::size_t kMaxMessage = 200;  // messages quote schema text; keep them short
constexpr int kMaxHops = 32;              // $ref and combinator hops when resolving a schema
constexpr std::size_t kMaxListed = 10;    // enum values shown in "must be one of [...]"

struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept {
    return std::hash<std::string_view>{}(text);
  }
};

// A message cut to kMaxMessage, without valijson's full stop.
std::string capped(std::string text) {
  if (!text.empty() && text.back() == '.') text.pop_back();
  if (text.size() > kMaxMessage) {
    text.resize(kMaxMessage);
    text += "...";
  }
  return text;
}

// A schema value as it reads in a message: strings bare, everything else as JSON.
std::string render(const bj::value& v) {
  if (const auto* s = v.if_string()) return std::string(s->data(), s->size());
  return bj::serialize(v);
}

// "string", or "string or null" for a list of types.
std::string render_types(const bj::value& type) {
  const auto* list = type.if_array();
  if (!list) return render(type);
  std::string out;
  for (const auto& t : *list) {
    if (!out.empty()) out += " or ";
    out += render(t);
  }
  return out;
}

std::string render_list(const bj::value& values) {
  const auto* list = values.if_array();
  if (!list) return render(values);
  std::string out = "[";
  std::size_t shown = 0;
  for (const auto& v : *list) {
    if (shown == kMaxListed) {
      out += ", ...";
      break;
    }
    if (shown++ > 0) out += ", ";
    out += render(v);
  }
  out += "]";
  return out;
}

// Follows local "$ref"s ("#/definitions/x"); a remote or broken ref yields nullptr.
const bj::value* deref(const bj::value& root, const bj::value* node) {
  for (int hops = 0; node != nullptr && hops < kMaxHops; ++hops) {
    const auto* obj = node->if_object();
    if (obj == nullptr) return node;
    auto it = obj->find("$ref");
    if (it == obj->end() || !it->value().is_string()) return node;
    std::string_view ref = it->value().get_string();
    if (!ref.starts_with('#')) return nullptr;
    ref.remove_prefix(1);
    boost::system::error_code ec;
    node = root.find_pointer(ref, ec);
  }
  return nullptr;
}

constexpr std::string_view kCombinators[] = {"allOf", "anyOf", "oneOf"};

// The value of `keyword` in `node`, or in the first of its allOf/anyOf/oneOf members
// that has it.
const bj::value* find_keyword(const bj::value& root, const bj::value* node,
                              std::string_view keyword, int depth = 0) {
  node = deref(root, node);
  if (node == nullptr || depth > kMaxHops) return nullptr;
  const auto* obj = node->if_object();
  if (obj == nullptr) return nullptr;
  if (auto it = obj->find(keyword); it != obj->end()) return &it->value();
  for (std::string_view combinator : kCombinators) {
    auto it = obj->find(combinator);
    if (it == obj->end() || !it->value().is_array()) continue;
    for (const auto& member : it->value().get_array()) {
      if (const auto* found = find_keyword(root, &member, keyword, depth + 1)) return found;
    }
  }
  return nullptr;
}

// The subschema under `node` that applies to one step into the instance: the member
// `token` of an object, or the element `index` of an array.
const bj::value* child_schema(const bj::value& root, const bj::value* node, bool in_array,
                              std::string_view token, std::size_t index, int depth = 0) {
  node = deref(root, node);
  if (node == nullptr || depth > kMaxHops) return nullptr;
  const auto* obj = node->if_object();
  if (obj == nullptr) return nullptr;
  if (in_array) {
    if (auto it = obj->find("items"); it != obj->end()) {
      const auto* tuple = it->value().if_array();
      if (tuple == nullptr) return &it->value();
      if (index < tuple->size()) return &(*tuple)[index];
    }
    if (auto it = obj->find("additionalItems"); it != obj->end()) return &it->value();
  } else {
    if (auto it = obj->find("properties"); it != obj->end() && it->value().is_object()) {
      const auto& props = it->value().get_object();
      if (auto p = props.find(token); p != props.end()) return &p->value();
    }
  }
  for (std::string_view combinator : kCombinators) {
    auto it = obj->find(combinator);
    if (it == obj->end() || !it->value().is_array()) continue;
    for (const auto& member : it->value().get_array()) {
      if (const auto* found = child_schema(root, &member, in_array, token, index, depth + 1)) {
        return found;
      }
    }
  }
  if (!in_array) {
    if (auto it = obj->find("additionalProperties"); it != obj->end()) return &it->value();
  }
  return nullptr;
}

// Where one valijson error points: instance tokens after "<root>", brackets stripped.
std::vector<std::string_view> location(const valijson::ValidationResults::Error& error) {
  std::vector<std::string_view> tokens;
  for (std::size_t i = 1; i < error.context.size(); ++i) {
    std::string_view t = error.context[i];
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') t = t.substr(1, t.size() - 2);
    tokens.push_back(t);
  }
  return tokens;
}

void append_pointer_token(std::string& out, std::string_view token) {
  out += '/';
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
}

// Walks instance and schema together along `tokens`; nullptr when the schema cannot be
// followed (a remote $ref, patternProperties ...).
const bj::value* schema_at(const bj::value& schema, const bj::value& instance,
                           const std::vector<std::string_view>& tokens) {
  const bj::value* node = &schema;
  const bj::value* value = &instance;
  for (std::string_view token : tokens) {
    if (node == nullptr || value == nullptr) return nullptr;
    if (const auto* arr = value->if_array()) {
      std::size_t index = 0;
      std::from_chars(token.data(), token.data() + token.size(), index);
      node = child_schema(schema, node, true, token, index);
      value = index < arr->size() ? &(*arr)[index] : nullptr;
    } else if (const auto* obj = value->if_object()) {
      node = child_schema(schema, node, false, token, 0);
      auto it = obj->find(token);
      value = it != obj->end() ? &it->value() : nullptr;
    } else {
      return nullptr;
    }
  }
  return node;
}

// valijson prints numbers with std::to_string ("10.000000"); drop the zeros.
std::string trim_number(std::string_view text) {
  std::string out(text);
  while (!out.empty() && (out.back() == '.' || out.back() == ' ')) out.pop_back();
  if (out.find('.') != std::string::npos) {
    while (!out.empty() && out.back() == '0') out.pop_back();
    if (!out.empty() && out.back() == '.') out.pop_back();
  }
  return out;
}

// The first run of digits in `text` ("5" in "no more than 5 characters").
std::string_view first_integer(std::string_view text) {
  auto begin = text.find_first_of("0123456789");
  if (begin == std::string_view::npos) return {};
  auto end = text.find_first_not_of("0123456789", begin);
  return text.substr(begin, end == std::string_view::npos ? text.npos : end - begin);
}

// The text between the first pair of single quotes.
std::string_view quoted(std::string_view text) {
  auto begin = text.find('\'');
  if (begin == std::string_view::npos) return {};
  auto end = text.find('\'', begin + 1);
  if (end == std::string_view::npos) return {};
  return text.substr(begin + 1, end - begin - 1);
}

// One valijson error as "<pointer> <short reason>".
std::string describe(const valijson::ValidationResults::Error& error, const bj::value& schema,
                     const bj::value& instance) {
  const auto tokens = location(error);
  std::string pointer;
  for (auto token : tokens) append_pointer_token(pointer, token);
  const std::string at = pointer.empty() ? "/" : pointer;
  std::string_view d = error.description;
  const bj::value* node = nullptr;
  // Keyword-based messages quote the schema at the failing location.
  auto keyword = [&](std::string_view name) -> const bj::value* {
    if (node == nullptr) node = schema_at(schema, instance, tokens);
    return node != nullptr ? find_keyword(schema, node, name) : nullptr;
  };
  auto bound = [&](std::string_view prefix, std::string_view op) {
    return at + " must be " + std::string(op) + " " + trim_number(d.substr(prefix.size()));
  };

  if (d.starts_with("Missing required property")) {
    std::string what = "missing required property " + std::string(quoted(d));
    return pointer.empty() ? what : pointer + " " + what;
  }
  if (d.starts_with("Object contains a property that could not be validated")) {
    std::string extra = pointer;
    auto colon = d.find(':');
    append_pointer_token(extra, quoted(colon == d.npos ? d : d.substr(colon)));
    return extra + " is not allowed";
  }
  if (d.starts_with("Failed to match against any enum values")) {
    const auto* values = keyword("enum");
    return at + (values ? " must be one of " + render_list(*values) : " must be an allowed value");
  }
  if (d.starts_with("Value type not permitted")) {
    const auto* type = keyword("type");
    return at + (type ? " must be " + render_types(*type) : " has the wrong type");
  }
  if (d.starts_with("Failed to match expected value set by 'const'")) {
    const auto* value = keyword("const");
    return at + (value ? " must be " + bj::serialize(*value) : " must be the const value");
  }
  if (d.starts_with("Failed to match regex")) {
    const auto* pattern = keyword("pattern");
    return at + (pattern ? " must match pattern " + render(*pattern) : " must match the pattern");
  }
  static constexpr std::string_view kLe = "Expected number less than or equal to ";
  static constexpr std::string_view kLt = "Expected number less than ";
  static constexpr std::string_view kGe = "Expected number greater than or equal to ";
  static constexpr std::string_view kGt = "Expected number greater than ";
  static constexpr std::string_view kMultiple = "Value should be a multiple of ";
  if (d.starts_with(kLe)) return bound(kLe, "<=");
  if (d.starts_with(kLt)) return bound(kLt, "<");
  if (d.starts_with(kGe)) return bound(kGe, ">=");
  if (d.starts_with(kGt)) return bound(kGt, ">");
  if (d.starts_with(kMultiple)) return bound(kMultiple, "a multiple of");
  const std::string n(first_integer(d));
  const bool one = n == "1";
  if (d.starts_with("String should be no more than"))
    return at + " must be at most " + n + (one ? " character" : " characters");
  if (d.starts_with("String should be no fewer than"))
    return at + " must be at least " + n + (one ? " character" : " characters");
  if (d.starts_with("Array should contain no more than"))
    return at + " must have at most " + n + (one ? " item" : " items");
  if (d.starts_with("Array should contain no fewer than"))
    return at + " must have at least " + n + (one ? " item" : " items");
  if (d.starts_with("Object should have no more than"))
    return at + " must have at most " + n + (one ? " property" : " properties");
  if (d.starts_with("Object should have no fewer than"))
    return at + " must have at least " + n + (one ? " property" : " properties");
  if (d.starts_with("Array contains more items than allowed")) return at + " has too many items";
  if (d.find("anyOf") != d.npos) return at + " must match a schema in anyOf";
  if (d.find("oneOf") != d.npos || d.find("exactly one") != d.npos) {
    return at + " must match exactly one schema in oneOf";
  }
  if (d.find("'not'") != d.npos) return at + " must not match the schema in not";
  if (d.find("uniqueness") != d.npos) return at + " must have unique items";
  if (d.find("'contains'") != d.npos) return at + " must contain a matching item";
  if (d.starts_with("Missing dependency"))
    return at + " missing dependency " + std::string(quoted(d));
  // Anything else: valijson's own words, lower-cased, without the full stop.
  std::string text(d);
  if (!text.empty() && text.back() == '.') text.pop_back();
  if (!text.empty() && text.front() >= 'A' && text.front() <= 'Z') text.front() += 'a' - 'A';
  return at + " " + text;
}

// The most specific error: the first of those that point deepest into the instance
// (valijson also reports each enclosing object and item as failing).
std::string first_error(const valijson::ValidationResults& results, const bj::value& schema,
                        const bj::value& instance) {
  const valijson::ValidationResults::Error* best = nullptr;
  for (const auto& error : results) {
    if (best == nullptr || error.context.size() > best->context.size()) best = &error;
  }
  // valijson reports every failed anyOf/oneOf alternative, then the combinator itself at
  // the same place: the combinator is the true reason there, not its first alternative.
  for (const auto& error : results) {
    if (best != nullptr && error.context == best->context &&
        (error.description.find("anyOf constraint") != std::string::npos ||
         error.description.find("oneOf constraint") != std::string::npos)) {
      best = &error;
      break;
    }
  }
  if (best == nullptr) return "/ does not match the schema";
  return capped(describe(*best, schema, instance));
}

// The quick path: the schemas that tools usually declare (types, properties, required,
// additionalProperties, string enums, bounds, items) are checked straight on the schema's
// JSON, with no key to serialize, no compiled schema and no valijson visitor. It only ever
// answers "valid", and only where valijson (draft 7, strict types) would too: the whole
// schema must use nothing but these keywords in their plain forms, or it is left to
// valijson, as is every value that does not pass (valijson then words the message).
namespace quick {

constexpr int kMaxDepth = 16;

enum class Keyword {
  kType,
  kProperties,
  kAdditionalProperties,
  kRequired,
  kEnum,
  kConst,
  kMinLength,
  kMaxLength,
  kMinimum,
  kMaximum,
  kExclusiveMinimum,
  kExclusiveMaximum,
  kItems,
  kMinItems,
  kMaxItems,
  kAnnotation,  // no effect on validity
  kOther,       // anything else: valijson decides
};

Keyword keyword(std::string_view key) {
  static constexpr std::pair<std::string_view, Keyword> kKnown[] = {
      {"type", Keyword::kType},
      {"properties", Keyword::kProperties},
      {"additionalProperties", Keyword::kAdditionalProperties},
      {"required", Keyword::kRequired},
      {"enum", Keyword::kEnum},
      {"const", Keyword::kConst},
      {"minLength", Keyword::kMinLength},
      {"maxLength", Keyword::kMaxLength},
      {"minimum", Keyword::kMinimum},
      {"maximum", Keyword::kMaximum},
      {"exclusiveMinimum", Keyword::kExclusiveMinimum},
      {"exclusiveMaximum", Keyword::kExclusiveMaximum},
      {"items", Keyword::kItems},
      {"minItems", Keyword::kMinItems},
      {"maxItems", Keyword::kMaxItems},
      {"description", Keyword::kAnnotation},
      {"title", Keyword::kAnnotation},
      {"default", Keyword::kAnnotation},
      {"examples", Keyword::kAnnotation},
      {"$comment", Keyword::kAnnotation},
      {"$schema", Keyword::kAnnotation},
  };
  for (const auto& [name, kind] : kKnown) {
    if (name == key) return kind;
  }
  return Keyword::kOther;
}

bool is_type_name(const bj::value& name) {
  const auto* s = name.if_string();
  if (s == nullptr) return false;
  const std::string_view n = *s;
  return n == "object" || n == "array" || n == "string" || n == "number" || n == "integer" ||
         n == "boolean" || n == "null";
}

// A non-negative integer, as the length and item bounds must be.
std::optional<std::uint64_t> count(const bj::value& v) {
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  if (v.is_uint64()) return v.get_uint64();
  return std::nullopt;
}

bool is_string_list(const bj::value& v, bool allow_empty) {
  const auto* list = v.if_array();
  if (list == nullptr || (list->empty() && !allow_empty)) return false;
  return std::all_of(list->begin(), list->end(), [](const bj::value& e) { return e.is_string(); });
}

// Whether every node of `schema` is within the quick path's keywords and forms.
bool supported(const bj::value& schema, int depth) {
  if (schema.is_bool()) return true;
  const auto* node = schema.if_object();
  if (node == nullptr || depth > kMaxDepth) return false;
  for (const auto& member : *node) {
    const bj::value& v = member.value();
    switch (keyword(member.key())) {
      case Keyword::kType:
        if (const auto* list = v.if_array()) {
          if (list->empty() || !std::all_of(list->begin(), list->end(), is_type_name)) return false;
        } else if (!is_type_name(v)) {
          return false;
        }
        break;
      case Keyword::kProperties: {
        const auto* properties = v.if_object();
        if (properties == nullptr) return false;
        for (const auto& property : *properties) {
          if (!supported(property.value(), depth + 1)) return false;
        }
        break;
      }
      case Keyword::kAdditionalProperties:
      case Keyword::kItems:
        if (!supported(v, depth + 1)) return false;
        break;
      case Keyword::kRequired:
        if (!is_string_list(v, true)) return false;
        break;
      case Keyword::kEnum:
        if (!is_string_list(v, false)) return false;
        break;
      case Keyword::kConst:
        if (!v.is_string()) return false;
        break;
      case Keyword::kMinLength:
      case Keyword::kMaxLength:
      case Keyword::kMinItems:
      case Keyword::kMaxItems:
        if (!count(v)) return false;
        break;
      case Keyword::kMinimum:
      case Keyword::kMaximum:
      case Keyword::kExclusiveMinimum:
      case Keyword::kExclusiveMaximum:
        if (!v.is_number()) return false;
        break;
      case Keyword::kAnnotation:
        break;
      case Keyword::kOther:
        return false;
    }
  }
  return true;
}

bool type_allows(std::string_view name, const bj::value& instance) {
  if (name == "object") return instance.is_object();
  if (name == "array") return instance.is_array();
  if (name == "string") return instance.is_string();
  if (name == "number") return instance.is_number();
  if (name == "integer") return instance.is_int64();  // valijson: a double or uint64 is not
  if (name == "boolean") return instance.is_bool();
  return instance.is_null();
}

// Code points, as valijson counts them; nullopt for a string valijson would cut at a NUL.
std::optional<std::uint64_t> length(const bj::string& s) {
  std::uint64_t n = 0;
  for (char c : s) {
    if (c == '\0') return std::nullopt;
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// Whether `instance` is valid against a `supported` schema; false: not known to be.
bool valid(const bj::value& schema, const bj::value& instance) {
  if (schema.is_bool()) return schema.get_bool();
  const bj::object& node = schema.get_object();
  const bj::object* properties = nullptr;
  const bj::value* additional = nullptr;
  for (const auto& member : node) {
    const bj::value& v = member.value();
    const Keyword kind = keyword(member.key());
    switch (kind) {
      case Keyword::kType:
        if (const auto* list = v.if_array()) {
          if (std::none_of(list->begin(), list->end(), [&](const bj::value& t) {
                return type_allows(t.get_string(), instance);
              })) {
            return false;
          }
        } else if (!type_allows(v.get_string(), instance)) {
          return false;
        }
        break;
      case Keyword::kProperties:
        properties = &v.get_object();
        break;
      case Keyword::kAdditionalProperties:
        additional = &v;
        break;
      case Keyword::kRequired:
        if (const auto* object = instance.if_object()) {
          for (const auto& name : v.get_array()) {
            if (!object->contains(name.get_string())) return false;
          }
        }
        break;
      case Keyword::kEnum:
      case Keyword::kConst: {
        // Strict equality: only a string can equal these string values.
        const auto* s = instance.if_string();
        if (s == nullptr) return false;
        const auto equal = [s](const bj::value& e) { return e.get_string() == *s; };
        if (v.is_string() ? !equal(v)
                          : std::none_of(v.get_array().begin(), v.get_array().end(), equal)) {
          return false;
        }
        break;
      }
      case Keyword::kMinLength:
      case Keyword::kMaxLength:
        if (const auto* s = instance.if_string()) {
          const auto n = length(*s);
          const std::uint64_t bound = *count(v);
          if (!n || (kind == Keyword::kMinLength ? *n < bound : *n > bound)) return false;
        }
        break;
      case Keyword::kMinItems:
      case Keyword::kMaxItems:
        if (const auto* a = instance.if_array()) {
          const std::uint64_t bound = *count(v);
          if (kind == Keyword::kMinItems ? a->size() < bound : a->size() > bound) return false;
        }
        break;
      case Keyword::kMinimum:
      case Keyword::kMaximum:
      case Keyword::kExclusiveMinimum:
      case Keyword::kExclusiveMaximum:
        if (instance.is_number()) {
          // valijson compares as doubles.
          const double x = instance.to_number<double>();
          const double bound = v.to_number<double>();
          const bool ok = kind == Keyword::kMinimum            ? x >= bound
                          : kind == Keyword::kMaximum          ? x <= bound
                          : kind == Keyword::kExclusiveMinimum ? x > bound
                                                               : x < bound;
          if (!ok) return false;
        }
        break;
      case Keyword::kItems:
        if (const auto* a = instance.if_array()) {
          for (const auto& item : *a) {
            if (!valid(v, item)) return false;
          }
        }
        break;
      case Keyword::kAnnotation:
      case Keyword::kOther:
        break;
    }
  }
  const auto* object = instance.if_object();
  if (object == nullptr || (properties == nullptr && additional == nullptr)) return true;
  for (const auto& member : *object) {
    const bj::value* sub = additional;
    if (properties != nullptr) {
      if (auto it = properties->find(member.key()); it != properties->end()) sub = &it->value();
    }
    if (sub != nullptr && !valid(*sub, member.value())) return false;
  }
  return true;
}

}  // namespace quick

struct Entry {
  // The schema's own copy on the default heap: the request's arena is freed with the
  // request, and the compiled schema keeps values (enum, const) that point into its source.
  std::unique_ptr<bj::value> source;
  std::unique_ptr<valijson::Schema> schema;  // nullptr: the schema does not compile
  PatternTable patterns;                     // its `pattern`s and `patternProperties` keys
  std::string error;                         // why it does not
  std::size_t bytes = 0;                     // an estimate of the memory held, key excluded
};

// Memory held per JSON value of a compiled schema: its copy and valijson's constraints
// (measured on tool schemas with glibc: 150 to 200 bytes).
constexpr std::size_t kBytesPerNode = 200;
// Per cached entry: the list and index nodes, the Entry itself.
constexpr std::size_t kBytesPerEntry = 256;

// Values of these keywords are data, not schemas: a "pattern" inside them is no pattern.
bool holds_data(std::string_view keyword) {
  return keyword == "enum" || keyword == "const" || keyword == "default" || keyword == "examples";
}

// Compiles every `pattern` and `patternProperties` key under `node` into `patterns`. It
// reads "pattern" wherever a schema could have it, a property so named included: a spare
// compiled pattern costs a little memory, a missing one would be compiled at each use.
std::expected<void, std::string> compile_patterns(const bj::value& node, PatternTable& patterns) {
  if (const auto* list = node.if_array()) {
    for (const auto& item : *list) {
      if (auto done = compile_patterns(item, patterns); !done) return done;
    }
    return {};
  }
  const auto* object = node.if_object();
  if (object == nullptr) return {};
  for (const auto& member : *object) {
    const std::string_view key = member.key();
    if (holds_data(key)) continue;
    const bj::value& value = member.value();
    if (key == "pattern" && value.is_string()) {
      if (auto added = patterns.add(value.get_string()); !added) return added;
    } else if (key == "patternProperties" && value.is_object()) {
      for (const auto& property : value.get_object()) {
        if (auto added = patterns.add(property.key()); !added) return added;
      }
    }
    if (auto done = compile_patterns(value, patterns); !done) return done;
  }
  return {};
}

Entry compile_entry(const bj::value& schema, const SchemaLimits& limits) {
  Entry entry;
  // First, before anything recurses into the schema (its copy, valijson's parser).
  auto shape = measure(schema, limits);
  if (!shape) {
    entry.error = capped(std::move(shape.error()));
  } else {
    try {
      entry.source = std::make_unique<bj::value>(schema, bj::storage_ptr());
      if (auto compiled = compile_patterns(*entry.source, entry.patterns); !compiled) {
        entry.error = capped(std::move(compiled.error()));
      } else {
        auto compiled_schema = std::make_unique<valijson::Schema>();
        valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
        valijson::adapters::BoostJsonAdapter adapter(*entry.source);
        parser.populateSchema(adapter, *compiled_schema);
        entry.schema = std::move(compiled_schema);
      }
    } catch (const std::exception& e) {
      entry.error = capped(e.what());
    } catch (...) {
      entry.error = "cannot be compiled";
    }
  }
  if (!entry.schema) {
    if (entry.error.empty()) entry.error = "cannot be compiled";
    // An invalid schema is kept for its message only.
    entry.source.reset();
    entry.patterns = PatternTable();
    entry.bytes = entry.error.size();
    return entry;
  }
  // A pattern is charged the most its RE2 may grow to, not what it holds today.
  entry.bytes = shape->nodes * kBytesPerNode + entry.patterns.size() * kPatternMaxMem;
  return entry;
}

}  // namespace

struct SchemaCache::Impl {
  explicit Impl(SchemaCacheLimits cache_limits) : limits(cache_limits) {
    limits.max_entries = std::max<std::size_t>(limits.max_entries, 1);
  }

  struct Slot {
    std::string key;  // the schema's serialized text
    Entry entry;
    std::size_t bytes;  // the key and the entry's estimate
  };

  // The serialized text of `schema`, in `key`. The key buffer and the serializer are reused
  // so that a cache hit allocates nothing.
  void serialize(const bj::value& schema) {
    key.clear();
    serializer.reset(&schema);
    char chunk[1024];
    while (!serializer.done()) key.append(serializer.read(chunk));
  }

  // The compiled entry for `schema`, compiling it on first sight; it becomes the most
  // recently used. The reference is valid until the next lookup.
  Entry& lookup(const bj::value& schema) {
    serialize(schema);
    if (auto it = index.find(std::string_view(key)); it != index.end()) {
      order.splice(order.begin(), order, it->second);
      return order.front().entry;
    }
    Entry entry = compile_entry(schema, limits.schema);
    const std::size_t cost = kBytesPerEntry + key.size() + entry.bytes;
    order.push_front(Slot{key, std::move(entry), cost});
    index.emplace(std::string_view(order.front().key), order.begin());
    bytes += cost;
    // The least recently used go first; the newest stays even when alone it is over the
    // budget (the schema bounds cap how far over).
    while (order.size() > 1 && (order.size() > limits.max_entries || bytes > limits.max_bytes)) {
      bytes -= order.back().bytes;
      index.erase(std::string_view(order.back().key));
      order.pop_back();
    }
    return order.front().entry;
  }

  SchemaCacheLimits limits;
  std::string key;
  bj::serializer serializer;
  std::list<Slot> order;  // most recently used first
  std::unordered_map<std::string_view, std::list<Slot>::iterator, TextHash, std::equal_to<>>
      index;  // keys point into `order`
  std::size_t bytes = 0;
  // Its std::regex cache stays empty: patterns run on RE2 (validation/valijson_re2.h).
  valijson::Validator validator;
};

SchemaCache::SchemaCache() : SchemaCache(SchemaCacheLimits{}) {}
SchemaCache::SchemaCache(std::size_t capacity)
    : SchemaCache([capacity] {
        SchemaCacheLimits limits;
        limits.max_entries = capacity;
        return limits;
      }()) {}
SchemaCache::SchemaCache(SchemaCacheLimits limits) : impl_(std::make_unique<Impl>(limits)) {}
SchemaCache::~SchemaCache() = default;

std::size_t SchemaCache::size() const { return impl_->order.size(); }

std::optional<std::string> SchemaCache::compile(const bj::value& schema) {
  if (quick::supported(schema, 0)) {
    auto shape = measure(schema, impl_->limits.schema);
    if (!shape) return capped(std::move(shape.error()));
    return std::nullopt;
  }
  const Entry& entry = impl_->lookup(schema);
  if (!entry.schema) return entry.error;
  return std::nullopt;
}

std::size_t SchemaCache::bytes() const { return impl_->bytes; }

bool SchemaCache::cached(const bj::value& schema) {
  impl_->serialize(schema);
  return impl_->index.contains(std::string_view(impl_->key));
}

SchemaOutcome SchemaCache::validate(const bj::value& schema, const bj::value& instance) {
  const bool plain = quick::supported(schema, 0);
  if (plain && quick::valid(schema, instance)) return {};
  Entry& entry = impl_->lookup(schema);
  if (!entry.schema) return {SchemaOutcome::Kind::kInvalidSchema, entry.error};
  try {
    const ActivePatterns active(entry.patterns);
    valijson::adapters::BoostJsonAdapter target(instance);
    // A first pass collects no messages; only a failing value is validated again. A plain
    // schema the quick path did not pass is all but certain to fail: no first pass then.
    if (!plain && impl_->validator.validate(*entry.schema, target, nullptr)) return {};
    valijson::ValidationResults results;
    if (impl_->validator.validate(*entry.schema, target, &results)) return {};
    return {SchemaOutcome::Kind::kMismatch, first_error(results, schema, instance)};
  } catch (const std::exception& e) {
    // Not expected (patterns compile with the schema), but a throw must not reach a worker.
    entry.schema.reset();
    entry.error = capped(e.what());
  } catch (...) {
    entry.schema.reset();
    entry.error = "cannot be applied";
  }
  return {SchemaOutcome::Kind::kInvalidSchema, entry.error};
}

std::string SchemaCache::check(const bj::value& schema, const bj::value& instance,
                               std::string_view what) {
  SchemaOutcome outcome = validate(schema, instance);
  switch (outcome.kind) {
    case SchemaOutcome::Kind::kValid:
      return {};
    case SchemaOutcome::Kind::kMismatch:
      return std::move(outcome.message);
    case SchemaOutcome::Kind::kInvalidSchema:
      break;
  }
  std::string message = what.empty() ? "schema" : "schema of " + std::string(what);
  return message + " is invalid: " + outcome.message;
}

}  // namespace backstop::validation
