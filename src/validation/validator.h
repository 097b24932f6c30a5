#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat.h"
#include "core/error.h"

namespace backstop::validation {

// DESIGN's closed list of reasons, used in verdicts, metric labels, headers, errors.
enum class Reason {
  kNoToolCall,
  kToolMismatch,
  kInvalidJson,
  kSchema,
  kEmpty,
  kTruncated,
  kRetry,
  kRateLimited,
  kUpstreamError,
  kTimeout,
  kConnect,
  kBadResponse,
  kRejected,      // an upstream's 4xx that no other target would answer differently
  kBrokenStream,  // a stream that stopped before its dialect's end
};

// "no_tool_call", "tool_mismatch", ...
[[nodiscard]] std::string_view to_string(Reason reason);
[[nodiscard]] std::optional<Reason> parse_reason(std::string_view name);

// The outcome of checking one answer.
struct Verdict {
  bool pass = true;
  Reason reason = Reason::kEmpty;  // meaningful only when !pass
  std::string detail;              // short, no prompt or completion text beyond names/paths

  [[nodiscard]] static Verdict ok() { return {}; }
  [[nodiscard]] static Verdict fail(Reason reason, std::string detail) {
    return {false, reason, std::move(detail)};
  }
};

// What a workload checks; mirrors config's `validate:` block.
struct Spec {
  enum class ToolCall { kOff, kRequired, kOptional };
  enum class Arguments { kNone, kJson, kSchema };
  enum class Content { kOff, kNonEmpty, kJson, kSchema };
  ToolCall tool_call = ToolCall::kOff;
  bool tool_names_declared = false;
  std::vector<std::string> tool_names;  // an explicit allow-list, when not empty
  Arguments arguments = Arguments::kNone;
  Content content = Content::kOff;
  bool allow_truncated = false;
};

// The outcome of validating one JSON value against one schema.
struct SchemaOutcome {
  enum class Kind { kValid, kMismatch, kInvalidSchema };
  Kind kind = Kind::kValid;
  // kMismatch: "/unit must be one of [c, f]"; kInvalidSchema: why it does not compile.
  std::string message;
};

// How large one client schema may be. Past any bound the schema is invalid, so that one
// schema cannot stall a worker while it compiles or validates.
struct SchemaLimits {
  // Nesting of JSON arrays and objects; also of subschemas applied to one value in turn
  // (through $ref, allOf, anyOf, oneOf, not, if/then/else, dependencies).
  std::size_t max_depth = 64;
  std::size_t max_nodes = 20'000;         // JSON values in the schema
  std::size_t max_patterns = 64;          // `pattern`s and `patternProperties` keys
  std::size_t max_pattern_bytes = 1'000;  // one of them
  std::size_t max_reference_bytes = 512;  // one `$ref`, `$id` or `id`
  // Subschemas applied to one value, counting each path through references: shared
  // definitions referenced from every branch of nested anyOfs would otherwise grow
  // exponentially.
  std::size_t max_expansion = 1'000;
};

// What a SchemaCache keeps, and how large a schema it compiles.
struct SchemaCacheLimits {
  std::size_t max_entries = 1024;  // distinct schemas
  // The memory the kept schemas hold, estimated: the JSON values of each (its copy and
  // valijson's constraints) and, per pattern, the most its RE2 may grow to (kPatternMaxMem).
  std::size_t max_bytes = 32 * 1024 * 1024;
  SchemaLimits schema;
};

// Compiled JSON Schemas, keyed by the schema's serialized text: each distinct schema is
// compiled once. Past either bound of its limits the least recently used schema is evicted,
// so that clients sending ever-new schemas cannot grow it without bound. One per worker
// thread; not thread-safe.
class SchemaCache {
 public:
  SchemaCache();
  // Keeps at most `capacity` (>= 1) schemas; the other limits are the defaults.
  explicit SchemaCache(std::size_t capacity);
  explicit SchemaCache(SchemaCacheLimits limits);
  ~SchemaCache();
  SchemaCache(const SchemaCache&) = delete;
  SchemaCache& operator=(const SchemaCache&) = delete;

  // Validates `instance` against `schema` (draft 7). Empty string: valid. Otherwise the
  // first error as "/path must be ..." (JSON pointer of the failing value, then why).
  // A schema that cannot be compiled yields "schema of <what> is invalid: ...".
  // An empty `what` gives "schema is invalid: ...".
  [[nodiscard]] std::string check(const boost::json::value& schema,
                                  const boost::json::value& instance, std::string_view what = {});
  // Validates `instance` against `schema` (draft 7), telling a mismatch from a schema that
  // does not compile. Never throws; an invalid schema is remembered and not re-parsed.
  [[nodiscard]] SchemaOutcome validate(const boost::json::value& schema,
                                       const boost::json::value& instance);
  // Compiles `schema` (or finds it compiled) without validating anything: why it is
  // invalid or past the limits, or nullopt. A schema the quick path handles is only
  // measured against the limits, never compiled.
  [[nodiscard]] std::optional<std::string> compile(const boost::json::value& schema);
  // Distinct schemas kept (those that failed to compile included: they are cached too).
  [[nodiscard]] std::size_t size() const;
  // The estimated memory they hold (SchemaCacheLimits::max_bytes).
  [[nodiscard]] std::size_t bytes() const;
  // Whether `schema` is compiled and kept.
  [[nodiscard]] bool cached(const boost::json::value& schema);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where the client wrote its schemas, in the words of its dialect (Dialect's
// tool_schema_field() and response_schema_field()), so that a message points at the field
// the client sent.
struct SchemaFields {
  std::string_view tool_schema = "parameters";
  std::string_view response_schema = "response_format.json_schema.schema";
};

// The first client schema of `request` that is invalid (does not compile, or is past the
// cache's limits), as a kInvalidArgument error that names it with `fields`:
// `tools[2] "get_weather": parameters: pattern "(?=x)" does not compile: ...`, or
// `response_format.json_schema.schema: ...`. Run right after decoding, so that an invalid
// schema is the client's 400 and never a failed check of an upstream's answer.
[[nodiscard]] std::optional<core::Error> check_request_schemas(const chat::ChatRequest& request,
                                                               SchemaCache& schemas,
                                                               SchemaFields fields = {});

// Checks an answer against the request. Immutable; shared by every worker.
class Validator {
 public:
  virtual ~Validator() = default;
  [[nodiscard]] virtual Verdict check(const chat::ChatRequest& request,
                                      const chat::ChatResponse& response,
                                      SchemaCache& schemas) const = 0;
};

// The built-in checks of a spec, run in a fixed order: truncated, tool call presence,
// tool names, arguments (json, then schema), content. The first failure decides.
[[nodiscard]] std::unique_ptr<Validator> make_validator(Spec spec);

}  // namespace backstop::validation
