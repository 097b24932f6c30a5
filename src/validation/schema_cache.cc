#include <boost/json/serializer.hpp>
#include <charconv>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>
#include <vector>

#include "validation/validator.h"

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

struct Entry {
  std::unique_ptr<valijson::Schema> schema;  // nullptr: the schema does not compile
  std::string error;                         // why it does not
};

Entry compile(const bj::value& schema) {
  Entry entry;
  try {
    auto compiled = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::BoostJsonAdapter adapter(schema);
    parser.populateSchema(adapter, *compiled);
    entry.schema = std::move(compiled);
  } catch (const std::exception& e) {
    entry.error = capped(e.what());
  } catch (...) {
    entry.error = "cannot be compiled";
  }
  if (!entry.schema && entry.error.empty()) entry.error = "cannot be compiled";
  return entry;
}

}  // namespace

struct SchemaCache::Impl {
  explicit Impl(std::size_t max) : capacity(max < 1 ? 1 : max) {}

  // The compiled entry for `schema`, compiling it on first sight.
  Entry& lookup(const bj::value& schema) {
    // The key buffer and the serializer are reused so that a cache hit allocates nothing.
    key.clear();
    serializer.reset(&schema);
    char chunk[1024];
    while (!serializer.done()) key.append(serializer.read(chunk));
    if (auto it = entries.find(std::string_view(key)); it != entries.end()) return it->second;
    if (entries.size() >= capacity) entries.erase(entries.begin());
    return entries.emplace(key, compile(schema)).first->second;
  }

  std::size_t capacity;
  std::string key;
  bj::serializer serializer;
  std::unordered_map<std::string, Entry, TextHash, std::equal_to<>> entries;
  valijson::Validator validator;  // holds the compiled `pattern` regexes between calls
};

SchemaCache::SchemaCache() : SchemaCache(kDefaultCapacity) {}
SchemaCache::SchemaCache(std::size_t capacity) : impl_(std::make_unique<Impl>(capacity)) {}
SchemaCache::~SchemaCache() = default;

std::size_t SchemaCache::size() const { return impl_->entries.size(); }

SchemaOutcome SchemaCache::validate(const bj::value& schema, const bj::value& instance) {
  Entry& entry = impl_->lookup(schema);
  if (!entry.schema) return {SchemaOutcome::Kind::kInvalidSchema, entry.error};
  try {
    valijson::adapters::BoostJsonAdapter target(instance);
    // The fast path collects no messages; only a failing value is validated again.
    if (impl_->validator.validate(*entry.schema, target, nullptr)) return {};
    valijson::ValidationResults results;
    impl_->validator.validate(*entry.schema, target, &results);
    return {SchemaOutcome::Kind::kMismatch, first_error(results, schema, instance)};
  } catch (const std::exception& e) {
    // valijson compiles `pattern` regexes while validating: a bad one throws here.
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
