#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace backstop::access {

// SHA-256 of a key: what is held and compared, never the key itself.
using Digest = std::array<unsigned char, 32>;

[[nodiscard]] Digest sha256(std::string_view text);

// Reads an environment variable; nullptr when unset.
using EnvReader = std::function<const char*(const char*)>;

// A client key as the gateway holds it.
struct Key {
  std::string name;
  Digest digest{};
  bool all_workloads = false;
  std::vector<std::string> workloads;

  // Whether this key may send requests to the workload.
  [[nodiscard]] bool allows(std::string_view workload) const;
};

// The key a request presents: `Authorization: Bearer K` (OpenAI clients), else `x-api-key: K`
// (Anthropic clients); empty when it presents none.
[[nodiscard]] std::string_view presented_key(std::string_view authorization,
                                             std::string_view x_api_key);

// The client keys of a config's `auth:` block, immutable once built and shared by workers.
class Keys {
 public:
  // No auth: every request is let through, and /metrics is open.
  Keys() = default;

  // Reads each key_env (and metrics_key_env) through `env`. kInvalidArgument naming the key
  // and the variable when one is unset or empty, or when two keys have the same value; the
  // value itself is never in a message.
  [[nodiscard]] static core::Result<Keys> create(const config::Auth& auth, const EnvReader& env);

  // Whether requests must present a key.
  [[nodiscard]] bool enabled() const { return enabled_; }

  // The key whose digest matches the presented one; nullptr when none does (or it is empty).
  // The digests are compared in constant time, and every key is compared.
  [[nodiscard]] const Key* find(std::string_view presented) const;

  // Whether a scrape that sent `authorization` may read /metrics: always when no
  // metrics_key_env is set, else only with `Bearer <that key>`.
  [[nodiscard]] bool metrics_allowed(std::string_view authorization) const;

  [[nodiscard]] const std::vector<Key>& keys() const { return keys_; }

 private:
  bool enabled_ = false;
  std::vector<Key> keys_;
  std::optional<Digest> metrics_digest_;
};

}  // namespace backstop::access
