#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chat/chat.h"

namespace backstop::chat {

// Folds a stream's events into the answer they add up to (for checks on a buffered stream).
// Text and reasoning deltas are concatenated (a signature replaces the one before); tool
// calls are keyed by their index.
class StreamAssembler {
 public:
  void add(const StreamEvent& event);
  void add(const std::vector<StreamEvent>& events) {
    for (const auto& e : events) add(e);
  }
  // The answer so far.
  [[nodiscard]] const ChatResponse& response() const { return response_; }
  // Moves the answer out; the assembler is left empty.
  [[nodiscard]] ChatResponse take() { return std::move(response_); }
  // True once a kFinish event arrived.
  [[nodiscard]] bool finished() const { return finished_; }

 private:
  ChatResponse response_;
  std::vector<int> tool_index_;  // position in response_.tool_calls -> its stream index
  bool finished_ = false;
};

// One event of each kind, with the fields that kind carries.
[[nodiscard]] StreamEvent start_event(std::string id, std::string model);
[[nodiscard]] StreamEvent text_event(std::string text);
[[nodiscard]] StreamEvent reasoning_event(std::string text);
// A kReasoningDelta with no text that carries the thinking block's signature.
[[nodiscard]] StreamEvent signature_event(std::string signature);
[[nodiscard]] StreamEvent tool_start_event(int index, std::string id, std::string name);
[[nodiscard]] StreamEvent tool_delta_event(int index, std::string arguments);
[[nodiscard]] StreamEvent finish_event(FinishReason reason,
                                       std::optional<std::string> stop_sequence = std::nullopt);
[[nodiscard]] StreamEvent usage_event(const Usage& usage);

// The events that stream a whole answer: kStart, reasoning (then its signature), text, each tool
// call (start, then its arguments in one delta), kFinish, kUsage. For replaying a non-streamed
// answer and for simulated upstreams.
[[nodiscard]] std::vector<StreamEvent> to_events(const ChatResponse& response);

}  // namespace backstop::chat
