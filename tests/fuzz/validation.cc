// Fuzz target: the validation path. The input is an OpenAI request body and an OpenAI
// response body, separated by a line "---" (without one, its two halves); when both decode,
// every built-in check runs on them.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "dialects/openai/openai.h"
#include "fuzz_support.h"
#include "validation/validator.h"

namespace {

namespace validation = backstop::validation;
using Spec = validation::Spec;

// Specs that between them turn every check on (the first failing check decides, so one
// spec alone would hide the later checks behind the earlier ones).
std::vector<Spec> every_check() {
  Spec required;
  required.tool_call = Spec::ToolCall::kRequired;
  required.tool_names_declared = true;
  required.arguments = Spec::Arguments::kSchema;
  required.content = Spec::Content::kSchema;

  Spec allow_listed = required;
  allow_listed.tool_call = Spec::ToolCall::kOptional;
  allow_listed.tool_names = {"get_weather", "search"};
  allow_listed.allow_truncated = true;

  Spec json_only;
  json_only.tool_call = Spec::ToolCall::kOptional;
  json_only.arguments = Spec::Arguments::kJson;
  json_only.content = Spec::Content::kJson;

  Spec non_empty;
  non_empty.content = Spec::Content::kNonEmpty;
  non_empty.allow_truncated = true;
  return {required, allow_listed, json_only, non_empty};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  namespace openai = backstop::dialects::openai;
  // Built once: validators are immutable and shared by every request.
  static const auto validators = [] {
    std::vector<std::unique_ptr<validation::Validator>> all;
    for (Spec spec : every_check()) all.push_back(validation::make_validator(std::move(spec)));
    return all;
  }();

  std::string_view input = fuzz::as_text(data, size);
  std::string_view request_body, response_body;
  if (std::size_t separator = input.find("\n---\n"); separator != std::string_view::npos) {
    request_body = input.substr(0, separator);
    response_body = input.substr(separator + 5);
  } else {
    request_body = input.substr(0, size / 2);
    response_body = input.substr(size / 2);
  }
  // A worker's cache outlives each request: the pair is decoded and checked twice, so that
  // the second pass meets the schemas cached from a request already destroyed. Two entries
  // only, so that eviction happens within one input.
  validation::SchemaCache schemas(2);
  for (int pass = 0; pass < 2; ++pass) {
    auto request = openai::decode_request(request_body);
    if (!request) return 0;
    auto response = openai::decode_response(response_body);
    if (!response) return 0;
    for (const auto& validator : validators) {
      validation::Verdict verdict = validator->check(*request, *response, schemas);
      fuzz::require(verdict.pass || !verdict.detail.empty(), "a failing verdict says why");
    }
    fuzz::require(schemas.size() <= 2, "the schema cache stays within its capacity");
  }
  return 0;
}
