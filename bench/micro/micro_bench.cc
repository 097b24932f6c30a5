// Micro-benchmarks of the per-request CPU work that is not I/O: decoding and encoding both
// dialects, OpenAI -> Anthropic translation, and the validators. Inputs are the fixtures
// bench/run sends (bench/fixtures), so the numbers add up to its CPU per request.
#include <benchmark/benchmark.h>

#include <boost/json/parse.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "chat/chat.h"
#include "dialects/anthropic/anthropic.h"
#include "dialects/openai/openai.h"
#include "dialects/openai/request_reader.h"
#include "dialects/openai/response_reader.h"
#include "validation/validator.h"

namespace backstop::bench {
namespace {

namespace openai = dialects::openai;
namespace anthropic = dialects::anthropic;

// A fixture's bytes; aborts when it is missing, since every number would be meaningless.
std::string fixture(const char* name) {
  const std::string path = std::string(BENCH_FIXTURES_DIR) + "/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "micro_bench: cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Unwraps a Result in set-up code, where a failure is a broken fixture.
template <typename T>
T must(core::Result<T> result, const char* what) {
  if (!result) {
    std::fprintf(stderr, "micro_bench: %s: %s\n", what, result.error().message.c_str());
    std::abort();
  }
  return std::move(*result);
}

// The inputs, decoded once.
struct Inputs {
  std::string openai_request = fixture("request.json");
  std::string openai_answer = fixture("answer_valid.json");
  std::string openai_wrong_answer = fixture("answer_invalid.json");
  std::string openai_json_answer = fixture("answer_content_json.json");
  std::string anthropic_request = fixture("anthropic_request.json");
  std::string anthropic_answer = fixture("anthropic_answer.json");
  chat::ChatRequest request = must(openai::decode_request(openai_request), "request.json");
  chat::ChatResponse response = must(openai::decode_response(openai_answer), "answer_valid.json");
  chat::ChatResponse wrong_response =
      must(openai::decode_response(openai_wrong_answer), "answer_invalid.json");
  chat::ChatResponse json_response =
      must(openai::decode_response(openai_json_answer), "answer_content_json.json");
  chat::ChatRequest anthropic_decoded =
      must(anthropic::decode_request(anthropic_request), "anthropic_request.json");
  chat::ChatResponse anthropic_response =
      must(anthropic::decode_response(anthropic_answer), "anthropic_answer.json");
  // The large case (bench/fixtures/make_large.py): a 148 KB Claude Code-sized request.
  std::string large_request = fixture("large_request.json");
  std::string large_anthropic_answer = fixture("large_answer_anthropic.json");
  std::string large_openai_answer = fixture("large_answer_openai.json");
  chat::ChatRequest large_decoded =
      must(anthropic::decode_request(large_request), "large_request.json");
  chat::ChatResponse large_response =
      must(anthropic::decode_response(large_anthropic_answer), "large_answer_anthropic.json");
};

const Inputs& inputs() {
  static const Inputs kInputs;
  return kInputs;
}

void set_bytes(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

void BM_OpenAIDecodeRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto request = openai::decode_request(in.openai_request);
    benchmark::DoNotOptimize(request);
  }
  set_bytes(state, in.openai_request.size());
}
BENCHMARK(BM_OpenAIDecodeRequest);

// The tree reader decode_request falls back to: what the one-pass reader saves.
void BM_OpenAIDecodeRequestTree(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto request = openai::detail::decode_request_tree(in.openai_request);
    benchmark::DoNotOptimize(request);
  }
  set_bytes(state, in.openai_request.size());
}
BENCHMARK(BM_OpenAIDecodeRequestTree);

void BM_OpenAIEncodeRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::string body = openai::encode_request(in.request, "deepseek-ai/DeepSeek-V4-Flash");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_OpenAIEncodeRequest);

void BM_OpenAIDecodeResponse(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto response = openai::decode_response(in.openai_answer);
    benchmark::DoNotOptimize(response);
  }
  set_bytes(state, in.openai_answer.size());
}
BENCHMARK(BM_OpenAIDecodeResponse);

void BM_OpenAIDecodeResponseTree(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto response = openai::detail::decode_response_tree(in.openai_answer);
    benchmark::DoNotOptimize(response);
  }
  set_bytes(state, in.openai_answer.size());
}
BENCHMARK(BM_OpenAIDecodeResponseTree);

void BM_OpenAIEncodeResponse(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::string body = openai::encode_response(in.response, "deepseek-ai/DeepSeek-V4-Flash");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_OpenAIEncodeResponse);

void BM_AnthropicDecodeRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto request = anthropic::decode_request(in.anthropic_request);
    benchmark::DoNotOptimize(request);
  }
  set_bytes(state, in.anthropic_request.size());
}
BENCHMARK(BM_AnthropicDecodeRequest);

void BM_AnthropicEncodeRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::string body = anthropic::encode_request(in.anthropic_decoded, "claude-sonnet-4-5", 4096);
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_AnthropicEncodeRequest);

void BM_AnthropicDecodeResponse(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto response = anthropic::decode_response(in.anthropic_answer);
    benchmark::DoNotOptimize(response);
  }
  set_bytes(state, in.anthropic_answer.size());
}
BENCHMARK(BM_AnthropicDecodeResponse);

void BM_AnthropicEncodeResponse(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::string body = anthropic::encode_response(in.anthropic_response, "claude-sonnet-4-5");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_AnthropicEncodeResponse);

// An OpenAI client's request sent to an Anthropic fallback: the translation of the hop.
void BM_TranslateOpenAIToAnthropicRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::string body = anthropic::encode_request(in.request, "claude-sonnet-4-5", 4096);
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_TranslateOpenAIToAnthropicRequest);

// The Anthropic fallback's answer returned to the OpenAI client.
void BM_TranslateAnthropicToOpenAIResponse(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto response = anthropic::decode_response(in.anthropic_answer);
    std::string body = openai::encode_response(*response, "claude-sonnet-4-5");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_TranslateAnthropicToOpenAIResponse);

// The large case, same dialect: decode the 148 KB request, splice `model` into its bytes.
void BM_LargeAnthropicDecodeRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto request = anthropic::decode_request(in.large_request);
    benchmark::DoNotOptimize(request);
  }
  set_bytes(state, in.large_request.size());
}
BENCHMARK(BM_LargeAnthropicDecodeRequest);

void BM_LargeAnthropicEncodeRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::string body = anthropic::encode_request(in.large_decoded, "claude-sonnet-4-5", 4096);
    benchmark::DoNotOptimize(body);
  }
  set_bytes(state, in.large_request.size());
}
BENCHMARK(BM_LargeAnthropicEncodeRequest);

// The large case, translated: the decoded request encoded for an OpenAI primary.
void BM_LargeTranslateAnthropicToOpenAIRequest(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::string body = openai::encode_request(in.large_decoded, "deepseek-ai/DeepSeek-V4-Flash");
    benchmark::DoNotOptimize(body);
  }
  set_bytes(state, in.large_request.size());
}
BENCHMARK(BM_LargeTranslateAnthropicToOpenAIRequest);

// The large case's answers: the Anthropic upstream's, and the OpenAI primary's translated back.
void BM_LargeAnthropicAnswer(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto response = anthropic::decode_response(in.large_anthropic_answer);
    std::string body = anthropic::encode_response(*response, "claude-sonnet-4-5");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_LargeAnthropicAnswer);

void BM_LargeTranslateOpenAIToAnthropicAnswer(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    auto response = openai::decode_response(in.large_openai_answer);
    std::string body = anthropic::encode_response(*response, "deepseek-ai/DeepSeek-V4-Flash");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_LargeTranslateOpenAIToAnthropicAnswer);

validation::Spec tool_call_spec(validation::Spec::Arguments arguments) {
  validation::Spec spec;
  spec.tool_call = validation::Spec::ToolCall::kRequired;
  spec.tool_names_declared = true;
  spec.arguments = arguments;
  return spec;
}

// Tool call present, name declared, arguments parsed: no schema.
void BM_ValidateToolCallJson(benchmark::State& state) {
  const Inputs& in = inputs();
  auto validator = validation::make_validator(tool_call_spec(validation::Spec::Arguments::kJson));
  validation::SchemaCache schemas;
  for (auto _ : state) {
    validation::Verdict verdict = validator->check(in.request, in.response, schemas);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_ValidateToolCallJson);

// The full tool-call check on get_weather's 5-field schema (compiled once, then cached).
void BM_ValidateToolCallSchemaPass(benchmark::State& state) {
  const Inputs& in = inputs();
  auto validator = validation::make_validator(tool_call_spec(validation::Spec::Arguments::kSchema));
  validation::SchemaCache schemas;
  if (!validator->check(in.request, in.response, schemas).pass) state.SkipWithError("no pass");
  for (auto _ : state) {
    validation::Verdict verdict = validator->check(in.request, in.response, schemas);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_ValidateToolCallSchemaPass);

// The same check failing (unit "kelvin" is not in the enum): the fallback's trigger.
void BM_ValidateToolCallSchemaFail(benchmark::State& state) {
  const Inputs& in = inputs();
  auto validator = validation::make_validator(tool_call_spec(validation::Spec::Arguments::kSchema));
  validation::SchemaCache schemas;
  if (validator->check(in.request, in.wrong_response, schemas).pass) state.SkipWithError("passed");
  for (auto _ : state) {
    validation::Verdict verdict = validator->check(in.request, in.wrong_response, schemas);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_ValidateToolCallSchemaFail);

// A schema seen for the first time: what a new client schema costs once.
void BM_ValidateToolCallSchemaCold(benchmark::State& state) {
  const Inputs& in = inputs();
  auto validator = validation::make_validator(tool_call_spec(validation::Spec::Arguments::kSchema));
  for (auto _ : state) {
    validation::SchemaCache schemas;
    validation::Verdict verdict = validator->check(in.request, in.response, schemas);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_ValidateToolCallSchemaCold);

// The large case's check: an Edit call against the Edit tool's schema, among 20 tools.
void BM_LargeValidateToolCallSchema(benchmark::State& state) {
  const Inputs& in = inputs();
  auto validator = validation::make_validator(tool_call_spec(validation::Spec::Arguments::kSchema));
  validation::SchemaCache schemas;
  if (!validator->check(in.large_decoded, in.large_response, schemas).pass) {
    state.SkipWithError("no pass");
  }
  for (auto _ : state) {
    validation::Verdict verdict = validator->check(in.large_decoded, in.large_response, schemas);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_LargeValidateToolCallSchema);

// Content that must be JSON (a classification answer of 5 fields).
void BM_ValidateContentJson(benchmark::State& state) {
  const Inputs& in = inputs();
  validation::Spec spec;
  spec.content = validation::Spec::Content::kJson;
  auto validator = validation::make_validator(spec);
  chat::ChatRequest request = in.request;
  request.tools.clear();
  validation::SchemaCache schemas;
  if (!validator->check(request, in.json_response, schemas).pass) state.SkipWithError("no pass");
  for (auto _ : state) {
    validation::Verdict verdict = validator->check(request, in.json_response, schemas);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_ValidateContentJson);

// Content checked against response_format's schema (5 fields).
void BM_ValidateContentSchema(benchmark::State& state) {
  const Inputs& in = inputs();
  validation::Spec spec;
  spec.content = validation::Spec::Content::kSchema;
  auto validator = validation::make_validator(spec);
  chat::ChatRequest request = in.request;
  request.tools.clear();
  request.response_format.kind = chat::ResponseFormat::Kind::kJsonSchema;
  request.response_format.name = "ticket";
  request.response_format.schema = boost::json::parse(R"({
    "type": "object",
    "properties": {
      "label": {"type": "string", "enum": ["billing", "bug", "other"]},
      "confidence": {"type": "number", "minimum": 0, "maximum": 1},
      "language": {"type": "string", "minLength": 2, "maxLength": 2},
      "urgent": {"type": "boolean"},
      "tags": {"type": "array", "items": {"type": "string"}}
    },
    "required": ["label", "confidence"],
    "additionalProperties": false})");
  validation::SchemaCache schemas;
  if (!validator->check(request, in.json_response, schemas).pass) state.SkipWithError("no pass");
  for (auto _ : state) {
    validation::Verdict verdict = validator->check(request, in.json_response, schemas);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_ValidateContentSchema);

}  // namespace
}  // namespace backstop::bench

BENCHMARK_MAIN();
