#include "http/sse.h"

namespace backstop::http {
namespace {

// The value of a field line: what follows the first colon, less one leading space; a line
// without a colon is a field with an empty value.
void split_field(std::string_view line, std::string_view& name, std::string_view& value) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    name = line;
    value = {};
    return;
  }
  name = line.substr(0, colon);
  value = line.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
}

}  // namespace

void SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
  auto process_line = [this, &out](std::string_view line) {
    if (line.empty()) {
      if (has_data_) out.push_back({std::move(event_), std::move(data_)});
      event_.clear();
      data_.clear();
      has_data_ = false;
      return;
    }
    if (line.front() == ':') return;  // a comment (servers send them as keep-alives)
    std::string_view name, value;
    split_field(line, name, value);
    if (name == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    } else if (name == "event") {
      event_.assign(value);
    }
    // id, retry and unknown fields carry nothing a client of an LLM stream needs.
  };

  if (bytes.empty()) return;
  std::size_t pos = 0;
  // A CRLF split between two feeds: the LF belongs to the line the CR ended.
  if (last_was_cr_ && bytes.front() == '\n') pos = 1;
  last_was_cr_ = false;
  while (pos < bytes.size()) {
    auto end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      return;
    }
    std::string_view piece = bytes.substr(pos, end - pos);
    if (line_.empty()) {
      process_line(piece);
    } else {
      line_.append(piece);
      process_line(line_);
      line_.clear();
    }
    pos = end + 1;
    if (bytes[end] == '\r') {
      if (pos == bytes.size()) {
        last_was_cr_ = true;
      } else if (bytes[pos] == '\n') {
        ++pos;
      }
    }
  }
}

std::string sse_frame(std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 16);
  if (!event.empty()) {
    out.append("event: ").append(event).push_back('\n');
  }
  // Each line of the data is its own data: field; the parser joins them with "\n" again.
  std::size_t pos = 0;
  while (true) {
    auto end = data.find_first_of("\r\n", pos);
    out.append("data: ").append(data.substr(pos, end - pos)).push_back('\n');
    if (end == std::string_view::npos) break;
    pos = end + 1;
    if (data[end] == '\r' && pos < data.size() && data[pos] == '\n') ++pos;
  }
  out.push_back('\n');
  return out;
}

}  // namespace backstop::http
