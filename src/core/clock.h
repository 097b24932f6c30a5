#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace backstop::core {

// Time source injected everywhere time matters, so tests use ManualClock and never sleep.
class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  // Monotonic time, for latencies and deadlines.
  [[nodiscard]] virtual TimePoint now() const = 0;
  // Wall-clock time in milliseconds since the Unix epoch, for log lines and days.
  [[nodiscard]] virtual std::int64_t unix_ms() const = 0;
};

// The real clocks.
class SystemClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const override { return std::chrono::steady_clock::now(); }
  [[nodiscard]] std::int64_t unix_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told to; safe to read from several threads.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t unix_ms = 1'764'547'200'000) : unix_ms_(unix_ms) {}
  [[nodiscard]] TimePoint now() const override {
    return TimePoint(Duration(mono_ns_.load(std::memory_order_relaxed)));
  }
  [[nodiscard]] std::int64_t unix_ms() const override {
    return unix_ms_.load(std::memory_order_relaxed);
  }
  // Moves both clocks forward by d.
  void advance(Duration d) {
    mono_ns_.fetch_add(d.count(), std::memory_order_relaxed);
    unix_ms_.fetch_add(std::chrono::duration_cast<std::chrono::milliseconds>(d).count(),
                       std::memory_order_relaxed);
  }

 private:
  std::atomic<std::int64_t> mono_ns_{1'000'000'000};
  std::atomic<std::int64_t> unix_ms_;
};

// Milliseconds between two time points, as a double (for latency_ms fields).
[[nodiscard]] inline double elapsed_ms(Clock::TimePoint from, Clock::TimePoint to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace backstop::core
