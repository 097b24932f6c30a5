// Fuzz target: anthropic::StreamDecoder::feed. The input is one SSE event per line, its name
// then a space then its data ("content_block_delta {...}"), fed in order until the decoder
// fails; every event it yields is re-encoded for both dialects' clients.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dialects/anthropic/anthropic.h"
#include "fuzz_support.h"
#include "stream_sink.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  std::string_view input = fuzz::as_text(data, size);

  backstop::dialects::anthropic::StreamDecoder decoder;
  fuzz::StreamSink sink;
  std::vector<backstop::chat::StreamEvent> events;
  std::size_t pos = 0;
  while (pos < input.size()) {  // a final newline ends the last line, it adds none
    std::size_t end = input.find('\n', pos);
    if (end == std::string_view::npos) end = input.size();
    std::string_view line = input.substr(pos, end - pos);
    std::size_t space = line.find(' ');
    std::string_view name = line.substr(0, space);
    std::string_view payload = space == std::string_view::npos ? "" : line.substr(space + 1);
    auto fed = decoder.feed(name, payload, events);
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
