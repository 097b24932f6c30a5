#pragma once

#include <string_view>

namespace backstop::core {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// The logging facade: one line per call. Never pass prompt text, completion text or
// keys to it. Implementations must be safe to call from any thread.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, std::string_view line) = 0;
};

// Writes "LEVEL line\n" to stderr with one write() call per line, at or above a level.
class StderrLogger final : public Logger {
 public:
  explicit StderrLogger(LogLevel min_level = LogLevel::kInfo) : min_level_(min_level) {}
  void log(LogLevel level, std::string_view line) override;

 private:
  LogLevel min_level_;
};

// Discards everything (tests, benchmarks).
class NullLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view) override {}
};

}  // namespace backstop::core
