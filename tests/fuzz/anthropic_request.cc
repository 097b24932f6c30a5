// Fuzz target: anthropic::decode_request on a client's body; what decodes is re-encoded for
// both dialects' upstreams.
#include <cstddef>
#include <cstdint>

#include "dialects/anthropic/anthropic.h"
#include "dialects/openai/openai.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  namespace openai = backstop::dialects::openai;
  namespace anthropic = backstop::dialects::anthropic;

  auto request = anthropic::decode_request(fuzz::as_text(data, size));
  if (!request) {
    fuzz::require(request.error().code == backstop::core::ErrorCode::kInvalidArgument,
                  "a rejected request is kInvalidArgument");
    fuzz::require(!request.error().message.empty(), "a rejected request says why");
    return 0;
  }
  std::string same = anthropic::encode_request(*request, "upstream-model", 4096);
  fuzz::require_json(same, "anthropic::encode_request");
  // The same dialect passes the body through with only `model` changed, so it must decode
  // again.
  fuzz::require(anthropic::decode_request(same).has_value(),
                "anthropic::encode_request of an Anthropic request decodes again");
  fuzz::require_json(openai::encode_request(*request, "upstream-model"), "openai::encode_request");
  return 0;
}
