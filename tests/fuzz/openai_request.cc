// Fuzz target: openai::decode_request on a client's body; what decodes is re-encoded for
// both dialects' upstreams. What the one-pass reader takes, the tree reader must read the same.
#include <cstddef>
#include <cstdint>

#include "dialects/anthropic/anthropic.h"
#include "dialects/openai/openai.h"
#include "dialects/openai/request_reader.h"
#include "fuzz_support.h"

namespace {

// Every modelled field, as OpenAI's encoder writes a request from its fields (not its bytes),
// and the passthrough map.
std::string fields_of(backstop::chat::ChatRequest request) {
  const backstop::chat::OriginalBody body = request.original_body;
  request.origin = {};  // not the client's dialect: encoded from the fields
  return backstop::dialects::openai::encode_request(request, "m") + " " + body.text + " " +
         std::to_string(body.model_begin) + "," + std::to_string(body.model_end) + "," +
         std::to_string(body.first_member) + "," + std::to_string(body.stream) +
         std::to_string(body.has_stream_options) + std::to_string(request.include_usage) +
         std::to_string(request.original.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  namespace openai = backstop::dialects::openai;
  namespace anthropic = backstop::dialects::anthropic;

  if (auto plain = openai::detail::read_plain_request(fuzz::as_text(data, size))) {
    auto tree = openai::detail::decode_request_tree(fuzz::as_text(data, size));
    fuzz::require(tree.has_value(), "what the one-pass reader takes, the tree reader takes");
    fuzz::require(fields_of(*plain) == fields_of(*tree),
                  "the one-pass reader reads what the tree reads");
  }
  auto request = openai::decode_request(fuzz::as_text(data, size));
  if (!request) {
    fuzz::require(request.error().code == backstop::core::ErrorCode::kInvalidArgument,
                  "a rejected request is kInvalidArgument");
    fuzz::require(!request.error().message.empty(), "a rejected request says why");
    return 0;
  }
  std::string same = openai::encode_request(*request, "upstream-model");
  fuzz::require_json(same, "openai::encode_request");
  // The same dialect passes the body through with only `model` (and the usage option)
  // changed, so it must decode again.
  fuzz::require(openai::decode_request(same).has_value(),
                "openai::encode_request of an OpenAI request decodes again");
  fuzz::require_json(anthropic::encode_request(*request, "upstream-model", 4096),
                     "anthropic::encode_request");
  return 0;
}
