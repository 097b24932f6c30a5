// Fuzz target: openai::decode_response on an upstream's 2xx body, and upstream_error_message
// on the same bytes as an error body; what decodes is re-encoded for both dialects' clients.
// What the one-pass reader takes, the tree reader must read the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dialects/anthropic/anthropic.h"
#include "dialects/openai/openai.h"
#include "dialects/openai/response_reader.h"
#include "fuzz_support.h"

namespace {

bool same_answer(const backstop::chat::ChatResponse& a, const backstop::chat::ChatResponse& b) {
  if (a.tool_calls.size() != b.tool_calls.size()) return false;
  for (std::size_t i = 0; i < a.tool_calls.size(); ++i) {
    const auto& x = a.tool_calls[i];
    const auto& y = b.tool_calls[i];
    if (x.id != y.id || x.name != y.name || x.arguments != y.arguments) return false;
  }
  return a.id == b.id && a.model == b.model && a.created == b.created && a.content == b.content &&
         a.reasoning == b.reasoning && a.finish_reason == b.finish_reason &&
         a.usage.input_tokens == b.usage.input_tokens &&
         a.usage.cached_input_tokens == b.usage.cached_input_tokens &&
         a.usage.output_tokens == b.usage.output_tokens;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  namespace openai = backstop::dialects::openai;
  namespace anthropic = backstop::dialects::anthropic;

  std::string_view body = fuzz::as_text(data, size);
  // The same bytes as a non-2xx body: its message ends up in the error a client is sent.
  const backstop::core::Error error{backstop::core::ErrorCode::kUpstream,
                                    openai::upstream_error_message(body)};
  fuzz::require(error.message.size() <= 300, "an upstream error message is cut to 300 bytes");
  fuzz::require_json(openai::encode_error(error), "openai::encode_error of an upstream message");
  fuzz::require_json(anthropic::encode_error(error),
                     "anthropic::encode_error of an upstream message");

  if (auto plain = openai::detail::read_plain_response(body)) {
    auto tree = openai::detail::decode_response_tree(body);
    fuzz::require(tree.has_value(), "what the one-pass reader takes, the tree reader takes");
    fuzz::require(same_answer(*plain, *tree), "the one-pass reader reads what the tree reads");
  }
  auto response = openai::decode_response(body);
  if (!response) {
    fuzz::require(response.error().code == backstop::core::ErrorCode::kBadResponse,
                  "a rejected response is kBadResponse");
    return 0;
  }
  std::string same = openai::encode_response(*response, "served-model");
  fuzz::require_json(same, "openai::encode_response");
  fuzz::require(openai::decode_response(same).has_value(),
                "openai::encode_response output decodes as a Chat Completion");
  fuzz::require_json(anthropic::encode_response(*response, "served-model"),
                     "anthropic::encode_response");
  return 0;
}
