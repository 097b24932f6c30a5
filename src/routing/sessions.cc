#include "routing/sessions.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>

namespace backstop::routing {
namespace {

struct SipState {
  std::uint64_t v0, v1, v2, v3;

  void round() {
    v0 += v1;
    v1 = std::rotl(v1, 13);
    v1 ^= v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = std::rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = std::rotl(v1, 17);
    v1 ^= v2;
    v2 = std::rotl(v2, 32);
  }
  void absorb(std::uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

std::uint64_t load_le(const char* p, std::size_t n) {
  std::uint64_t out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return out;
}

// Appends a field with its length first, so that no two conversations serialize alike.
void field(std::string& out, std::string_view value) {
  const std::uint64_t n = value.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out.append(value);
}

}  // namespace

HashKey HashKey::random() {
  std::random_device device;
  auto draw = [&device] {
    return (static_cast<std::uint64_t>(device()) << 32) | static_cast<std::uint64_t>(device());
  };
  return {draw(), draw()};
}

std::uint64_t siphash(const HashKey& key, std::string_view data) {
  SipState s{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL,
             key.k0 ^ 0x6c7967656e657261ULL, key.k1 ^ 0x7465646279746573ULL};
  const std::size_t whole = data.size() / 8 * 8;
  for (std::size_t i = 0; i < whole; i += 8) s.absorb(load_le(data.data() + i, 8));
  const std::uint64_t last = (static_cast<std::uint64_t>(data.size()) << 56) |
                             load_le(data.data() + whole, data.size() - whole);
  s.absorb(last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

std::uint64_t conversation_hash(const HashKey& key, const chat::ChatRequest& request) {
  std::string text;
  for (const chat::Message& m : request.messages) {
    text.push_back(static_cast<char>(m.role));
    field(text, m.name);
    for (const chat::ContentPart& part : m.content) {
      text.push_back(static_cast<char>(part.kind));
      field(text, part.text);
      field(text, part.image_url);
    }
    for (const chat::ToolCall& call : m.tool_calls) {
      field(text, call.id);
      field(text, call.name);
      field(text, call.arguments);
    }
    field(text, m.tool_call_id);
  }
  return siphash(key, text);
}

ClientRetries::ClientRetries(const config::Sessions& config, HashKey key, std::size_t capacity)
    : config_(config), key_(key), shard_capacity_(std::max<std::size_t>(1, capacity / kShards)) {}

bool ClientRetries::expired(const Entry& entry, std::int64_t unix_ms) const {
  return entry.last_ms + config_.window_s * 1000 <= unix_ms && entry.escalated_until_ms <= unix_ms;
}

void ClientRetries::evict(Shard& shard, std::int64_t unix_ms) const {
  std::erase_if(shard.entries, [&](const auto& kv) { return expired(kv.second, unix_ms); });
  if (shard.entries.size() < shard_capacity_) return;
  auto oldest = std::min_element(
      shard.entries.begin(), shard.entries.end(),
      [](const auto& a, const auto& b) { return a.second.last_ms < b.second.last_ms; });
  shard.entries.erase(oldest);
}

SessionVerdict ClientRetries::observe(const chat::ChatRequest& request,
                                      const ClientSignals& signals, std::int64_t unix_ms) {
  const std::uint64_t conversation = conversation_hash(key_, request);
  // A session is keyed by its id when the client sends one, else by its conversation.
  const std::uint64_t id = signals.session_id.empty()
                               ? conversation
                               : siphash(key_, std::string("session:").append(signals.session_id));
  Shard& shard = shards_[id % kShards];
  const std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(id);
  if (it != shard.entries.end() && expired(it->second, unix_ms)) {
    shard.entries.erase(it);
    it = shard.entries.end();
  }
  if (it == shard.entries.end()) {
    if (shard.entries.size() >= shard_capacity_) evict(shard, unix_ms);
    it = shard.entries.emplace(id, Entry{conversation, unix_ms, 0, 0}).first;
    if (signals.retry_count <= 0) return {};
  }
  Entry& e = it->second;
  SessionVerdict verdict;
  const bool in_window = e.last_ms + config_.window_s * 1000 > unix_ms;
  verdict.retry = signals.retry_count > 0 || (e.conversation == conversation && in_window);
  if (!in_window) e.retries = 0;
  if (verdict.retry && ++e.retries > config_.retry_threshold) {
    e.escalated_until_ms = unix_ms + config_.escalate_s * 1000;
  }
  e.conversation = conversation;
  e.last_ms = unix_ms;
  verdict.escalated = e.escalated_until_ms > unix_ms;
  return verdict;
}

std::size_t ClientRetries::size() const {
  std::size_t n = 0;
  for (const Shard& s : shards_) {
    const std::lock_guard lock(s.mutex);
    n += s.entries.size();
  }
  return n;
}

}  // namespace backstop::routing
