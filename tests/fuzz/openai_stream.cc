// Fuzz target: openai::StreamDecoder::feed. The input is one `data:` payload per line (a
// chunk's JSON or "[DONE]"), fed in order until the decoder fails; every event it yields is
// re-encoded for both dialects' clients.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dialects/openai/openai.h"
#include "fuzz_support.h"
#include "stream_sink.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  std::string_view input = fuzz::as_text(data, size);

  backstop::dialects::openai::StreamDecoder decoder;
  fuzz::StreamSink sink;
  std::vector<backstop::chat::StreamEvent> events;
  std::size_t pos = 0;
  while (pos < input.size()) {  // a final newline ends the last line, it adds none
    std::size_t end = input.find('\n', pos);
    if (end == std::string_view::npos) end = input.size();
    auto fed = decoder.feed(input.substr(pos, end - pos), events);
    sink.take(events);
    if (!fed) {
      sink.fail(fed.error());
      return 0;
    }
    pos = end + 1;
  }
  sink.finish();
  return 0;
}
