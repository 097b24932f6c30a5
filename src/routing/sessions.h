#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "chat/chat.h"
#include "config/config.h"

namespace backstop::routing {

// A 128-bit key for SipHash-2-4, drawn at random once per process.
struct HashKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
  // A fresh random key (std::random_device).
  [[nodiscard]] static HashKey random();
};

// SipHash-2-4 of `data` under `key`: a keyed hash, so that an outsider can neither predict
// nor collide the conversation hashes.
[[nodiscard]] std::uint64_t siphash(const HashKey& key, std::string_view data);

// The keyed hash of a request's conversation so far (every message: role, name, text, tool
// calls and results). The text is hashed and dropped: only the hash is kept.
[[nodiscard]] std::uint64_t conversation_hash(const HashKey& key, const chat::ChatRequest& request);

// What the client's headers say about a request being sent again.
struct ClientSignals {
  int retry_count = 0;          // x-stainless-retry-count
  std::string_view session_id;  // X-Claude-Code-Session-Id or x-session-id; empty: none
};

// What the sessions table made of one request.
struct SessionVerdict {
  bool retry = false;      // the same conversation sent again: reason `retry`
  bool escalated = false;  // the session goes straight to the fallback
};

// Client retries of one workload (its `sessions:` block): a request is a retry when the
// client says so (x-stainless-retry-count > 0), or its session id comes again with the same
// conversation, or (without a session id) the same conversation comes again within
// window_s. A session with more than retry_threshold retries within window_s is escalated
// for escalate_s. The table holds only keyed hashes, at most `capacity` entries (expired
// ones go first, then the least recently seen). Thread-safe: sharded locks held for a lookup.
class ClientRetries {
 public:
  ClientRetries(const config::Sessions& config, HashKey key, std::size_t capacity = 65'536);

  // Records the request at unix_ms and judges it.
  [[nodiscard]] SessionVerdict observe(const chat::ChatRequest& request,
                                       const ClientSignals& signals, std::int64_t unix_ms);
  // Entries held now (tests).
  [[nodiscard]] std::size_t size() const;

 private:
  struct Entry {
    std::uint64_t conversation = 0;
    std::int64_t last_ms = 0;
    int retries = 0;  // within window_s of the last request
    std::int64_t escalated_until_ms = 0;
  };
  static constexpr std::size_t kShards = 16;
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::uint64_t, Entry> entries;
  };

  [[nodiscard]] bool expired(const Entry& entry, std::int64_t unix_ms) const;
  // Makes room for one more entry in `shard` (its lock held).
  void evict(Shard& shard, std::int64_t unix_ms) const;

  config::Sessions config_;
  HashKey key_;
  std::size_t shard_capacity_;
  std::array<Shard, kShards> shards_;
};

}  // namespace backstop::routing
