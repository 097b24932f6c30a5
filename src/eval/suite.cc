#include "eval/suite.h"

#include <openssl/sha.h>
#include <re2/re2.h>

#include <array>
#include <boost/json/serialize.hpp>
#include <expected>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <utility>

#include "json/json.h"
#include "validation/validator.h"

namespace backstop::eval {
namespace {

namespace bj = boost::json;

// A line's problem, as the message of its SuiteError.
using LineResult = std::expected<Case, std::string>;

std::string sha256_hex(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : digest) {
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
  }
  return out;
}

// The first key of `object` that is not in `known`, or nullopt.
template <std::size_t N>
std::optional<std::string> unknown_key(const bj::object& object,
                                       const std::array<std::string_view, N>& known) {
  for (const auto& member : object) {
    bool found = false;
    for (std::string_view k : known) found = found || member.key() == k;
    if (!found) return std::string(member.key());
  }
  return std::nullopt;
}

// A schema field of `expect`: an object (or boolean) that compiles.
std::expected<std::optional<bj::value>, std::string> schema_field(const bj::object& expect,
                                                                  std::string_view key,
                                                                  validation::SchemaCache& cache) {
  const bj::value* value = expect.if_contains(key);
  if (value == nullptr) return std::nullopt;
  const std::string where = "expect." + std::string(key);
  if (!value->is_object() && !value->is_bool()) {
    return std::unexpected(where + ": must be a JSON Schema (an object), not " +
                           std::string(json::kind_name(*value)));
  }
  if (auto invalid = cache.compile(*value)) return std::unexpected(where + ": " + *invalid);
  return *value;
}

std::expected<void, std::string> read_regex(const bj::object& object, Expect& expect) {
  auto regex = json::optional_string(object, "content_regex", "expect");
  if (!regex) return std::unexpected(regex.error().message);
  if (!*regex) return {};
  RE2::Options options;
  options.set_log_errors(false);
  auto pattern = std::make_shared<const RE2>(std::string(**regex), options);
  if (!pattern->ok()) {
    return std::unexpected("expect.content_regex: does not compile (RE2): " + pattern->error());
  }
  expect.content_regex = std::string(**regex);
  expect.content_pattern = std::move(pattern);
  return {};
}

std::expected<Expect, std::string> read_expect(const bj::object& object,
                                               validation::SchemaCache& cache) {
  static constexpr std::array<std::string_view, 5> kKeys = {"tool", "arguments", "arguments_schema",
                                                            "content_regex", "content_schema"};
  if (auto key = unknown_key(object, kKeys)) {
    return std::unexpected("expect: unknown key \"" + *key + "\"");
  }
  Expect expect;
  auto tool = json::optional_string(object, "tool", "expect");
  if (!tool) return std::unexpected(tool.error().message);
  if (*tool) expect.tool = std::string(**tool);
  if (const bj::value* arguments = object.if_contains("arguments")) {
    if (!arguments->is_object()) {
      return std::unexpected("expect.arguments: must be an object, not " +
                             std::string(json::kind_name(*arguments)));
    }
    expect.arguments = *arguments;
  }
  auto arguments_schema = schema_field(object, "arguments_schema", cache);
  if (!arguments_schema) return std::unexpected(arguments_schema.error());
  expect.arguments_schema = std::move(*arguments_schema);
  if (auto regex = read_regex(object, expect); !regex) return std::unexpected(regex.error());
  auto content_schema = schema_field(object, "content_schema", cache);
  if (!content_schema) return std::unexpected(content_schema.error());
  expect.content_schema = std::move(*content_schema);
  return expect;
}

// The required non-empty string `key` of a case.
std::expected<std::string, std::string> required_name(const bj::object& object,
                                                      std::string_view key) {
  auto value = json::required_string(object, key, "");
  if (!value) return std::unexpected(value.error().message);
  if (value->empty()) return std::unexpected(std::string(key) + ": must not be empty");
  return std::string(*value);
}

std::expected<std::string, std::string> read_dialect(const bj::object& object) {
  auto dialect = json::optional_string(object, "dialect", "");
  if (!dialect) return std::unexpected(dialect.error().message);
  if (!*dialect) return std::string("openai");
  for (std::string_view known : kSuiteDialects) {
    if (**dialect == known) return std::string(known);
  }
  return std::unexpected("dialect: \"" + std::string(**dialect) +
                         "\" is not one of openai, anthropic, responses");
}

LineResult read_case(std::string_view line, validation::SchemaCache& cache) {
  auto parsed = json::parse_object(line);
  if (!parsed) return std::unexpected(parsed.error().message);
  const bj::object& object = *parsed;
  static constexpr std::array<std::string_view, 5> kKeys = {"id", "workload", "dialect", "request",
                                                            "expect"};
  if (auto key = unknown_key(object, kKeys)) return std::unexpected("unknown key \"" + *key + "\"");
  Case c;
  auto id = required_name(object, "id");
  if (!id) return std::unexpected(id.error());
  c.id = std::move(*id);
  auto workload = required_name(object, "workload");
  if (!workload) return std::unexpected(workload.error());
  c.workload = std::move(*workload);
  auto dialect = read_dialect(object);
  if (!dialect) return std::unexpected(dialect.error());
  c.dialect = std::move(*dialect);
  const bj::value* request = object.if_contains("request");
  if (request == nullptr || !request->is_object()) {
    return std::unexpected(std::string("request: must be an object (the request body)"));
  }
  // The workload is the model a client would name; a request may leave it out.
  bj::object body = request->get_object();
  if (!body.contains("model")) body["model"] = c.workload;
  c.request = bj::serialize(body);
  auto expect = json::optional_object(object, "expect", "");
  if (!expect) return std::unexpected(expect.error().message);
  if (*expect != nullptr) {
    auto read = read_expect(**expect, cache);
    if (!read) return std::unexpected(read.error());
    c.expect = std::move(*read);
  }
  return c;
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

std::string SuiteError::to_string(std::string_view file) const {
  return std::string(file) + ":" + std::to_string(line) + ": " + message;
}

Suite parse_suite(std::string_view text) {
  Suite suite;
  suite.hash = sha256_hex(text);
  validation::SchemaCache cache;
  std::set<std::string, std::less<>> ids;
  int number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (blank(line)) continue;
    auto read = read_case(line, cache);
    if (!read) {
      suite.errors.push_back({number, read.error()});
      continue;
    }
    if (!ids.insert(read->id).second) {
      suite.errors.push_back({number, "id: \"" + read->id + "\" is already a case of this suite"});
      continue;
    }
    read->line = number;
    suite.cases.push_back(std::move(*read));
  }
  return suite;
}

core::Result<Suite> load_suite(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::fail(core::ErrorCode::kNotFound, "suite \"" + path + "\": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_suite(text.str());
}

}  // namespace backstop::eval
