#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dialects/dialect.h"

namespace backstop::dialects {

// The dialects a process speaks, by name. Filled once at the composition root, then read
// by every worker.
class Registry {
 public:
  // Adds a dialect (not owned; it outlives the registry). The first one added is the
  // default: its shape answers paths no dialect claims.
  void add(const Dialect& dialect);

  // nullptr when none has that name.
  [[nodiscard]] const Dialect* find(std::string_view name) const;
  // The dialect with an upstream side whose config `kind` this is; nullptr when none.
  [[nodiscard]] const Dialect* find_kind(std::string_view kind) const;
  // The dialect whose chat endpoint `path` is or is under; the default when none.
  [[nodiscard]] const Dialect& for_path(std::string_view path) const;
  // The dialect and endpoint answering exactly `path`; nullptr when none.
  [[nodiscard]] std::pair<const Dialect*, const Endpoint*> endpoint(std::string_view path) const;
  [[nodiscard]] const Dialect& fallback() const { return *dialects_.front(); }
  [[nodiscard]] const std::vector<const Dialect*>& all() const { return dialects_; }
  // The values a provider's `kind` may take: those of the dialects with an upstream side.
  [[nodiscard]] std::vector<std::string> upstream_kinds() const;
  // "POST /v1/chat/completions, POST /v1/messages, ...", every endpoint once.
  [[nodiscard]] std::string endpoint_list() const;

 private:
  std::vector<const Dialect*> dialects_;
};

}  // namespace backstop::dialects
