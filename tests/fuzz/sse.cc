// Fuzz target: http::SseParser::feed. The first byte picks where the rest of the input is
// split between two feed() calls; the events must be those of feeding it whole, and each
// event written back with sse_frame must parse to itself.
#include "http/sse.h"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  namespace http = backstop::http;
  if (size == 0) return 0;
  std::string_view bytes = fuzz::as_text(data + 1, size - 1);
  std::size_t split = bytes.size() * data[0] / 255;

  http::SseParser whole;
  std::vector<http::SseEvent> expected;
  whole.feed(bytes, expected);

  http::SseParser parts;
  std::vector<http::SseEvent> events;
  parts.feed(bytes.substr(0, split), events);
  parts.feed(bytes.substr(split), events);
  fuzz::require(events == expected, "a split between feed() calls changes no event");
  fuzz::require(parts.pending() == whole.pending(), "a split changes no pending byte count");

  for (const auto& event : events) {
    http::SseParser again;
    std::vector<http::SseEvent> back;
    again.feed(http::sse_frame(event.event, event.data), back);
    fuzz::require(back.size() == 1 && back.front() == event,
                  "sse_frame of an event parses back to it");
    fuzz::require(again.pending() == 0, "sse_frame writes a whole frame");
  }
  return 0;
}
