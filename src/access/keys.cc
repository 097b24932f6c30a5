#include "access/keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>

namespace backstop::access {
namespace {

constexpr std::string_view kBearer = "bearer ";

// Hex digits -> bytes; the config has checked there are 64 of them.
Digest from_hex(std::string_view hex) {
  auto nibble = [](char c) {
    return static_cast<unsigned char>(c <= '9' ? c - '0' : std::tolower(c) - 'a' + 10);
  };
  Digest out{};
  for (std::size_t i = 0; i < out.size() && 2 * i + 1 < hex.size(); ++i) {
    out[i] = static_cast<unsigned char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return out;
}

bool same(const Digest& a, const Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The token of "Bearer TOKEN" (the scheme is case-insensitive); empty for any other scheme.
std::string_view bearer_token(std::string_view authorization) {
  authorization = trim(authorization);
  if (authorization.size() <= kBearer.size()) return {};
  for (std::size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kBearer[i]) return {};
  }
  return trim(authorization.substr(kBearer.size()));
}

core::Result<Digest> digest_from_env(const EnvReader& env, const std::string& variable,
                                     std::string_view what) {
  const char* value = env(variable.c_str());
  if (value == nullptr || *value == '\0') {
    return core::fail(core::ErrorCode::kInvalidArgument,
                      std::string(what) + ": environment variable " + variable + " is not set");
  }
  return sha256(value);
}

}  // namespace

Digest sha256(std::string_view text) {
  Digest out{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
  return out;
}

bool Key::allows(std::string_view workload) const {
  return all_workloads ||
         std::find(workloads.begin(), workloads.end(), workload) != workloads.end();
}

std::string_view presented_key(std::string_view authorization, std::string_view x_api_key) {
  if (std::string_view token = bearer_token(authorization); !token.empty()) return token;
  return trim(x_api_key);
}

core::Result<Keys> Keys::create(const config::Auth& auth, const EnvReader& env) {
  Keys out;
  out.enabled_ = auth.enabled;
  for (const config::ClientKey& k : auth.keys) {
    Key key;
    key.name = k.name;
    key.all_workloads = k.all_workloads;
    key.workloads = k.workloads;
    if (!k.key_env.empty()) {
      auto digest = digest_from_env(env, k.key_env, "client key \"" + k.name + "\" (key_env)");
      if (!digest) return std::unexpected(digest.error());
      key.digest = *digest;
    } else {
      key.digest = from_hex(k.key_sha256);
    }
    for (const Key& other : out.keys_) {
      if (same(other.digest, key.digest)) {
        return core::fail(core::ErrorCode::kInvalidArgument,
                          "client keys \"" + other.name + "\" and \"" + key.name +
                              "\" have the same value: a request could not say which it is");
      }
    }
    out.keys_.push_back(std::move(key));
  }
  if (!auth.metrics_key_env.empty()) {
    auto digest = digest_from_env(env, auth.metrics_key_env, "the /metrics key (metrics_key_env)");
    if (!digest) return std::unexpected(digest.error());
    out.metrics_digest_ = *digest;
  }
  return out;
}

const Key* Keys::find(std::string_view presented) const {
  if (presented.empty()) return nullptr;
  const Digest digest = sha256(presented);
  const Key* found = nullptr;
  // No early exit: the time taken says nothing about which key matched, or how far.
  for (const Key& key : keys_) {
    if (same(key.digest, digest)) found = &key;
  }
  return found;
}

bool Keys::metrics_allowed(std::string_view authorization) const {
  if (!metrics_digest_) return true;
  std::string_view token = bearer_token(authorization);
  return !token.empty() && same(*metrics_digest_, sha256(token));
}

}  // namespace backstop::access
