#include "validation/schema_bounds.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace backstop::validation {
namespace {

namespace bj = boost::json;

constexpr std::size_t kMaxQuoted = 60;  // text of the schema quoted in a message

std::string quoted(std::string_view text) {
  std::string out = "\"";
  out += text.substr(0, kMaxQuoted);
  if (text.size() > kMaxQuoted) out += "...";
  out += '"';
  return out;
}

// Values of these keywords are data, not schemas.
bool holds_data(std::string_view keyword) {
  return keyword == "enum" || keyword == "const" || keyword == "default" || keyword == "examples";
}

// The first pass: size, nesting, patterns and references, over the whole JSON text.
class Census {
 public:
  explicit Census(const SchemaLimits& limits) : limits_(limits) {}

  std::expected<SchemaShape, std::string> run(const bj::value& schema) {
    if (auto done = visit(schema, 1, false); !done) return std::unexpected(done.error());
    return shape_;
  }

  // Whether the schema applies subschemas to the same value ($ref, allOf, not, ...).
  bool applies_in_place() const { return applies_in_place_; }

 private:
  std::expected<void, std::string> visit(const bj::value& node, std::size_t depth, bool data) {
    if (++shape_.nodes > limits_.max_nodes) {
      return std::unexpected("schema has more than " + std::to_string(limits_.max_nodes) +
                             " JSON values");
    }
    if (!node.is_array() && !node.is_object()) return {};
    if (depth > limits_.max_depth) {
      return std::unexpected("schema nests deeper than " + std::to_string(limits_.max_depth) +
                             " levels");
    }
    if (const auto* list = node.if_array()) {
      for (const auto& item : *list) {
        if (auto done = visit(item, depth + 1, data); !done) return done;
      }
      return {};
    }
    for (const auto& member : node.get_object()) {
      const std::string_view key = member.key();
      const bj::value& value = member.value();
      if (!data) {
        if (auto done = keyword(key, value); !done) return done;
      }
      if (auto done = visit(value, depth + 1, data || holds_data(key)); !done) return done;
    }
    return {};
  }

  std::expected<void, std::string> keyword(std::string_view key, const bj::value& value) {
    if (key == "$ref" || key == "allOf" || key == "anyOf" || key == "oneOf" || key == "not" ||
        key == "if" || key == "then" || key == "else" || key == "dependencies") {
      applies_in_place_ = true;
    }
    if (key == "pattern" && value.is_string()) return pattern(value.get_string());
    if (key == "patternProperties" && value.is_object()) {
      for (const auto& property : value.get_object()) {
        if (auto done = pattern(property.key()); !done) return done;
      }
      return {};
    }
    const bool ref = key == "$ref";
    // valijson reads a scope from "id" (not "$id") and runs it through a std::regex (its URN
    // check): its length is bounded like a reference's.
    if ((ref || key == "$id" || key == "id") && value.is_string()) {
      const std::string_view text = value.get_string();
      if (text.size() > limits_.max_reference_bytes) {
        return std::unexpected(std::string(key) + " " + quoted(text) + " is longer than " +
                               std::to_string(limits_.max_reference_bytes) + " bytes");
      }
      // A remote reference would need a fetch; an $id-relative one valijson resolves to
      // documents it cannot load. Only pointers into this schema are followed.
      if (ref && !text.starts_with('#')) {
        return std::unexpected("$ref " + quoted(text) +
                               " is not local: only references into the schema (\"#/...\") "
                               "are supported");
      }
    }
    return {};
  }

  std::expected<void, std::string> pattern(std::string_view text) {
    if (++shape_.patterns > limits_.max_patterns) {
      return std::unexpected("schema has more than " + std::to_string(limits_.max_patterns) +
                             " patterns");
    }
    if (text.size() > limits_.max_pattern_bytes) {
      return std::unexpected("pattern " + quoted(text) + " is longer than " +
                             std::to_string(limits_.max_pattern_bytes) + " bytes");
    }
    return {};
  }

  const SchemaLimits& limits_;
  SchemaShape shape_;
  bool applies_in_place_ = false;
};

// The second pass: the subschemas applied to the same value as a schema (through $ref,
// allOf, anyOf, oneOf, not, if/then/else, dependencies) form a graph that must have no
// cycle, no path longer than max_depth and no node that expands past max_expansion.
class Applicators {
 public:
  Applicators(const bj::value& root, const SchemaLimits& limits) : root_(root), limits_(limits) {}

  std::expected<void, std::string> run() {
    // Every subschema reachable from the root, found without recursion: a chain of
    // references can be far longer than the JSON is deep.
    std::vector<const bj::value*> pending{&root_};
    std::unordered_set<const bj::value*> seen{&root_};
    std::vector<const bj::value*> children;
    while (!pending.empty()) {
      const bj::value* node = pending.back();
      pending.pop_back();
      if (auto done = expand(node, 0); !done) return std::unexpected(done.error());
      children.clear();
      subschemas(*node, true, children);
      for (const bj::value* child : children) {
        if (seen.insert(child).second) pending.push_back(child);
      }
    }
    return {};
  }

 private:
  struct Mark {
    bool done = false;
    std::size_t expansion = 1;  // this subschema and every one applied with it, per path
  };

  // The target of a local `$ref`; nullptr when there is none (valijson reports it).
  const bj::value* target(const bj::object& node) const {
    auto it = node.find("$ref");
    if (it == node.end() || !it->value().is_string()) return nullptr;
    std::string_view pointer = it->value().get_string();
    pointer.remove_prefix(1);  // "#": Census let only local references through
    return resolve(pointer);
  }

  // A JSON pointer decoded as valijson decodes it: "~1", "~0", then %-escapes per token.
  const bj::value* resolve(std::string_view pointer) const {
    const bj::value* node = &root_;
    if (!pointer.empty() && !pointer.starts_with('/')) return nullptr;
    while (!pointer.empty() && node != nullptr) {
      pointer.remove_prefix(1);
      const std::size_t end = std::min(pointer.find('/'), pointer.size());
      auto token = decode(pointer.substr(0, end));
      pointer.remove_prefix(end);
      if (!token) return nullptr;
      if (const auto* object = node->if_object()) {
        auto found = object->find(*token);
        node = found == object->end() ? nullptr : &found->value();
      } else if (const auto* list = node->if_array()) {
        std::size_t index = 0;
        auto [rest, ec] = std::from_chars(token->data(), token->data() + token->size(), index);
        const bool whole = ec == std::errc() && rest == token->data() + token->size();
        node = whole && index < list->size() ? &(*list)[index] : nullptr;
      } else {
        node = nullptr;
      }
    }
    return node;
  }

  static std::optional<std::string> decode(std::string_view raw) {
    std::string token;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~' && i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        token += raw[++i] == '1' ? '/' : '~';
      } else {
        token += raw[i];
      }
    }
    std::string out;
    for (std::size_t i = 0; i < token.size(); ++i) {
      if (token[i] != '%') {
        out += token[i];
        continue;
      }
      unsigned value = 0;
      if (i + 2 >= token.size()) return std::nullopt;
      auto [rest, ec] = std::from_chars(token.data() + i + 1, token.data() + i + 3, value, 16);
      if (ec != std::errc() || rest != token.data() + i + 3) return std::nullopt;
      out += static_cast<char>(value);
      i += 2;
    }
    return out;
  }

  // The subschemas of `node`: those applied to the same value, and with `all`, also
  // those applied to its members and items.
  void subschemas(const bj::value& node, bool all, std::vector<const bj::value*>& out) const {
    const auto* object = node.if_object();
    if (object == nullptr) return;
    auto push = [&](const bj::value& v) {
      if (v.is_object()) out.push_back(&v);
    };
    auto push_each = [&](const bj::value& v) {
      if (const auto* list = v.if_array()) {
        for (const auto& item : *list) push(item);
      } else if (const auto* map = v.if_object()) {
        for (const auto& member : *map) push(member.value());
      }
    };
    if (const bj::value* ref = target(*object)) push(*ref);
    for (const auto& member : *object) {
      const std::string_view key = member.key();
      const bj::value& v = member.value();
      if (key == "allOf" || key == "anyOf" || key == "oneOf" || key == "dependencies") {
        push_each(v);
      } else if (key == "not" || key == "if" || key == "then" || key == "else") {
        push(v);
      } else if (!all) {
        continue;
      } else if (key == "properties" || key == "patternProperties") {
        push_each(v);
      } else if (key == "items" && v.is_array()) {
        push_each(v);
      } else if (key == "items") {
        push(v);
      } else if (key == "additionalItems" || key == "additionalProperties" || key == "contains" ||
                 key == "propertyNames") {
        push(v);
      }
    }
  }

  std::expected<std::size_t, std::string> expand(const bj::value* node, std::size_t depth) {
    if (depth > limits_.max_depth) {
      return std::unexpected("$ref and combinators apply more than " +
                             std::to_string(limits_.max_depth) + " subschemas in turn");
    }
    auto [it, fresh] = marks_.try_emplace(node);
    if (!fresh) {
      if (!it->second.done) {
        return std::unexpected(
            "$ref cycle: a subschema refers back to itself without descending into the value");
      }
      return it->second.expansion;
    }
    std::vector<const bj::value*> children;
    subschemas(*node, false, children);
    std::size_t expansion = 1;
    for (const bj::value* child : children) {
      auto below = expand(child, depth + 1);
      if (!below) return below;
      expansion += *below;
      if (expansion > limits_.max_expansion) {
        return std::unexpected("$ref and combinators apply more than " +
                               std::to_string(limits_.max_expansion) + " subschemas to one value");
      }
    }
    // try_emplace's iterator may be stale after the recursion rehashed the map.
    marks_[node] = Mark{true, expansion};
    return expansion;
  }

  const bj::value& root_;
  const SchemaLimits& limits_;
  std::unordered_map<const bj::value*, Mark> marks_;
};

}  // namespace

std::expected<SchemaShape, std::string> measure(const bj::value& schema,
                                                const SchemaLimits& limits) {
  Census census(limits);
  auto shape = census.run(schema);
  if (!shape) return shape;
  // Without them every path through the schema is a path through its JSON: bounded already.
  if (!census.applies_in_place()) return shape;
  if (auto applied = Applicators(schema, limits).run(); !applied) {
    return std::unexpected(std::move(applied.error()));
  }
  return shape;
}

}  // namespace backstop::validation
