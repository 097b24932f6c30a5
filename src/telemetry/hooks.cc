#include "telemetry/hooks.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace backstop::telemetry {

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

struct Hooks::State {
  struct Event {
    std::string name;
    std::string body;
  };

  std::vector<HookTarget> targets;
  HookPost post;
  HookOptions options;

  mutable std::mutex mutex;
  std::condition_variable wake;  // the thread: an event or stop
  std::condition_variable idle;  // flush(): the queue drained
  std::deque<Event> queue;
  bool busy = false;  // the thread holds an event it took from the queue
  bool stop = false;
  std::map<std::pair<std::string, std::string>, std::uint64_t> counts;

  void count(const std::string& event, const char* result) {
    std::lock_guard lock(mutex);
    ++counts[{event, result}];
  }

  // Posts to one receiver, retrying with backoff; a stop cuts the waits short.
  bool deliver(const HookTarget& target, const Event& event) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"content-type", "application/json"}, {"x-backstop-event", event.name}};
    if (!target.secret.empty()) {
      headers.emplace_back("x-backstop-signature",
                           "sha256=" + hmac_sha256_hex(target.secret, event.body));
    }
    auto backoff = options.retry_backoff;
    for (int attempt = 0; attempt < options.tries; ++attempt) {
      if (attempt > 0) {
        std::unique_lock lock(mutex);
        if (wake.wait_for(lock, backoff, [&] { return stop; })) return false;
        backoff *= 2;
      }
      if (post(target.url, event.body, headers)) return true;
    }
    return false;
  }

  void run() {
    for (;;) {
      Event event;
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stop || !queue.empty(); });
        if (queue.empty()) break;  // stopped with nothing left
        event = std::move(queue.front());
        queue.pop_front();
        busy = true;
      }
      for (const HookTarget& target : targets) {
        if (std::find(target.events.begin(), target.events.end(), event.name) ==
            target.events.end()) {
          continue;
        }
        count(event.name, deliver(target, event) ? "sent" : "failed");
      }
      {
        std::lock_guard lock(mutex);
        busy = false;
      }
      idle.notify_all();
    }
    OPENSSL_thread_stop();  // this thread's OpenSSL state (the HMACs)
  }
};

Hooks::Hooks(std::vector<HookTarget> targets, HookPost post, HookOptions options)
    : state_(std::make_shared<State>()) {
  state_->targets = std::move(targets);
  state_->post = std::move(post);
  state_->options = options;
  if (state_->targets.empty()) return;
  thread_ = std::thread([state = state_] { state->run(); });
}

Hooks::~Hooks() {
  flush();
  {
    std::lock_guard lock(state_->mutex);
    state_->stop = true;
    state_->queue.clear();
  }
  state_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Hooks::wants(std::string_view event) const {
  for (const HookTarget& target : state_->targets) {
    if (std::find(target.events.begin(), target.events.end(), event) != target.events.end()) {
      return true;
    }
  }
  return false;
}

bool Hooks::emit(std::string_view event, std::string body) {
  if (!wants(event)) return true;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->queue.size() >= state_->options.queue_events) {
      ++state_->counts[{std::string(event), "dropped"}];
      return false;
    }
    state_->queue.push_back({std::string(event), std::move(body)});
  }
  state_->wake.notify_one();
  return true;
}

void Hooks::flush() {
  std::unique_lock lock(state_->mutex);
  state_->idle.wait_for(lock, state_->options.flush_timeout,
                        [&] { return state_->queue.empty() && !state_->busy; });
}

std::vector<Hooks::Count> Hooks::counts() const {
  std::lock_guard lock(state_->mutex);
  std::vector<Count> out;
  for (const auto& [key, count] : state_->counts) out.push_back({key.first, key.second, count});
  return out;
}

}  // namespace backstop::telemetry
