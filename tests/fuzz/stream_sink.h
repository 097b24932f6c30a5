#pragma once

#include <string>
#include <vector>

#include "chat/chat.h"
#include "chat/stream.h"
#include "core/error.h"
#include "dialects/anthropic/anthropic.h"
#include "dialects/openai/openai.h"
#include "fuzz_support.h"

namespace backstop::fuzz {

// Where a stream target's decoded events go, as in the gateway: each event is encoded for a
// client of either dialect and folded into the answer a buffered check would see.
class StreamSink {
 public:
  // Encodes and folds `events`, then clears them.
  void take(std::vector<chat::StreamEvent>& events) {
    for (const auto& event : events) {
      require_sse_json(openai_.encode(event), "openai::StreamEncoder::encode");
      require_sse_json(anthropic_.encode(event), "anthropic::StreamEncoder::encode");
      assembler_.add(event);
    }
    events.clear();
  }
  // The end of a stream that broke: both encoders' error frames.
  void fail(const core::Error& error) {
    require_sse_json(openai_.error(error), "openai::StreamEncoder::error");
    require_sse_json(anthropic_.error(error), "anthropic::StreamEncoder::error");
  }
  // The end of a clean stream: both encoders' closing frames, and the assembled answer
  // encoded as a whole response.
  void finish() {
    require_sse_json(openai_.finish(), "openai::StreamEncoder::finish");
    require_sse_json(anthropic_.finish(), "anthropic::StreamEncoder::finish");
    const chat::ChatResponse& answer = assembler_.response();
    require_json(dialects::openai::encode_response(answer, "served-model"),
                 "openai::encode_response of an assembled stream");
    require_json(dialects::anthropic::encode_response(answer, "served-model"),
                 "anthropic::encode_response of an assembled stream");
  }

 private:
  dialects::openai::StreamEncoder openai_{"served-model", true};
  dialects::anthropic::StreamEncoder anthropic_{"served-model"};
  chat::StreamAssembler assembler_;
};

}  // namespace backstop::fuzz
