#pragma once
// Eval suites: JSONL files, one case a line (DESIGN, "Command line").

#include <boost/json/value.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace re2 {
class RE2;
}

namespace backstop::eval {

// What a case expects of the answer beyond its workload's checks; every part optional.
struct Expect {
  std::optional<std::string> tool;                     // the name of the tool called
  std::optional<boost::json::value> arguments;         // the call's arguments, equal as JSON
  std::optional<boost::json::value> arguments_schema;  // a JSON Schema the arguments match
  std::optional<std::string> content_regex;            // RE2, searched in the content
  std::shared_ptr<const re2::RE2> content_pattern;     // content_regex compiled
  std::optional<boost::json::value> content_schema;    // a JSON Schema the content (JSON) matches

  // Whether the answer must carry a tool call.
  [[nodiscard]] bool wants_tool_call() const { return tool || arguments || arguments_schema; }
};

// One case of a suite.
struct Case {
  std::string id;        // unique within the suite
  std::string workload;  // a workload of the config: its checks apply
  std::string dialect;   // openai | anthropic | responses: how `request` is written
  std::string request;   // the request body, as JSON text ("model": the workload when absent)
  Expect expect;
  int line = 0;  // 1-based line of the suite file
};

// A line that could not be read as a case.
struct SuiteError {
  int line = 0;
  std::string message;

  // "FILE:LINE: MESSAGE".
  [[nodiscard]] std::string to_string(std::string_view file) const;
};

// A suite: the cases that were read, the lines that were not, and the hash of the text.
struct Suite {
  std::vector<Case> cases;
  std::vector<SuiteError> errors;
  std::string hash;  // SHA-256 of the file's bytes, 64 lowercase hex digits
};

// The dialects a case may be written in.
inline constexpr std::string_view kSuiteDialects[] = {"openai", "anthropic", "responses"};

// Reads JSONL text: each non-blank line one case. A line that is not a valid case (not a
// JSON object, a missing or mistyped field, an unknown key, a duplicate id, a content_regex
// that RE2 does not compile, a schema that does not compile) is an error naming its line;
// the other lines are still read.
[[nodiscard]] Suite parse_suite(std::string_view text);

// Reads the suite file at `path`; kNotFound when it cannot be read.
[[nodiscard]] core::Result<Suite> load_suite(const std::string& path);

}  // namespace backstop::eval
