#pragma once

#include <string>
#include <utility>
#include <vector>

#include "dialects/dialect.h"

// The stream adapters the dialects' registrations share (internal to dialects/).
namespace backstop::dialects {

// A StreamWriter over a dialect's stream encoder (encode, finish, error).
template <typename Encoder>
class EncoderWriter final : public StreamWriter {
 public:
  template <typename... Args>
  explicit EncoderWriter(Args&&... args) : encoder_(std::forward<Args>(args)...) {}
  std::string encode(const chat::StreamEvent& event) override { return encoder_.encode(event); }
  std::string finish() override { return encoder_.finish(); }
  std::string error(const core::Error& error) override { return encoder_.error(error); }

 private:
  Encoder encoder_;
};

// A StreamReader over a stream decoder that reads an event's name and data.
template <typename Decoder>
class DecoderReader final : public StreamReader {
 public:
  core::Result<void> feed(std::string_view event, std::string_view data,
                          std::vector<chat::StreamEvent>& out) override {
    return decoder_.feed(event, data, out);
  }
  bool done() const override { return decoder_.done(); }
  bool complete() const override { return decoder_.complete(); }

 private:
  Decoder decoder_;
};

}  // namespace backstop::dialects
