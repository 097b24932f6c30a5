#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace backstop::routing {

// A provider's `max_in_flight`: the calls to it from every worker at once (attempts, probes,
// hedges and shadows alike). Lock-free.
class InFlight {
 public:
  // A call's place, given back when destroyed.
  class Slot {
   public:
    Slot() = default;
    explicit Slot(InFlight* owner) : owner_(owner) {}
    Slot(Slot&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    // Whether a place was granted.
    [[nodiscard]] explicit operator bool() const { return owner_ != nullptr; }
    void release() {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->count_.fetch_sub(1);
    }

   private:
    InFlight* owner_ = nullptr;
  };

  // 0: no limit (places are still counted).
  explicit InFlight(std::int64_t max) : max_(max) {}

  // A place for one more call; an empty slot when max calls are in flight already.
  [[nodiscard]] Slot try_acquire() {
    const std::int64_t now = count_.fetch_add(1) + 1;
    if (max_ > 0 && now > max_) {
      count_.fetch_sub(1);
      return Slot();
    }
    return Slot(this);
  }
  [[nodiscard]] std::int64_t in_flight() const { return count_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t max() const { return max_; }

 private:
  std::int64_t max_;
  std::atomic<std::int64_t> count_{0};
};

}  // namespace backstop::routing
