#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace backstop::http {

// One server-sent event: its `event:` name (empty when none) and its `data:` lines joined
// with "\n".
struct SseEvent {
  std::string event;
  std::string data;

  bool operator==(const SseEvent&) const = default;
};

// Incremental text/event-stream parser (WHATWG rules: LF, CRLF or CR line ends; comments
// ignored; `id:`/`retry:` ignored). Bytes may be split anywhere between feed() calls.
class SseParser {
 public:
  // Parses `bytes` and appends every event completed by them to `out`.
  void feed(std::string_view bytes, std::vector<SseEvent>& out);
  // Bytes held for an event not yet complete.
  [[nodiscard]] std::size_t pending() const { return line_.size() + data_.size(); }

 private:
  std::string line_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
  bool last_was_cr_ = false;
};

// "event: NAME\ndata: DATA\n\n" (no event line when name is empty; multi-line data split
// into several data lines).
[[nodiscard]] std::string sse_frame(std::string_view event, std::string_view data);

}  // namespace backstop::http
