#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace backstop::core {

// The cancellation of one request (its client went away), seen by everything working for it.
// Used on one thread: callbacks run on the thread that calls request().
class Cancellation {
 public:
  // Keeps a callback registered until destroyed. Must not outlive its Cancellation.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), id_(other.id_) {}
    Subscription& operator=(Subscription&& other) noexcept {
      if (this != &other) {
        reset();
        owner_ = std::exchange(other.owner_, nullptr);
        id_ = other.id_;
      }
      return *this;
    }
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription() { reset(); }

    // Unregisters the callback now.
    void reset() {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->remove(id_);
    }

   private:
    friend class Cancellation;
    Subscription(Cancellation* owner, std::uint64_t id) : owner_(owner), id_(id) {}
    Cancellation* owner_ = nullptr;
    std::uint64_t id_ = 0;
  };

  Cancellation() = default;
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  [[nodiscard]] bool requested() const { return requested_; }

  // Cancels: runs every registered callback once. Later calls do nothing.
  void request() {
    if (requested_) return;
    requested_ = true;
    auto callbacks = std::exchange(callbacks_, {});
    for (auto& [id, callback] : callbacks) callback();
  }

  // Runs `callback` on request() while the subscription lives; at once when already
  // requested (and then the subscription is empty).
  [[nodiscard]] Subscription subscribe(std::function<void()> callback) {
    if (requested_) {
      callback();
      return {};
    }
    callbacks_.emplace_back(++next_id_, std::move(callback));
    return Subscription(this, next_id_);
  }

 private:
  void remove(std::uint64_t id) {
    std::erase_if(callbacks_, [id](const auto& entry) { return entry.first == id; });
  }

  bool requested_ = false;
  std::uint64_t next_id_ = 0;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> callbacks_;
};

}  // namespace backstop::core
