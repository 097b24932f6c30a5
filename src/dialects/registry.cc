#include "dialects/registry.h"

#include <algorithm>

namespace backstop::dialects {
namespace {

bool under(std::string_view path, std::string_view endpoint) {
  return path == endpoint || (path.starts_with(endpoint) && path.size() > endpoint.size() &&
                              path[endpoint.size()] == '/');
}

}  // namespace

void Registry::add(const Dialect& dialect) { dialects_.push_back(&dialect); }

const Dialect* Registry::find(std::string_view name) const {
  auto it = std::find_if(dialects_.begin(), dialects_.end(),
                         [name](const Dialect* d) { return d->name() == name; });
  return it == dialects_.end() ? nullptr : *it;
}

const Dialect& Registry::for_path(std::string_view path) const {
  for (const Dialect* d : dialects_) {
    for (const Endpoint& e : d->endpoints()) {
      if (e.kind == Endpoint::Kind::kChat && under(path, e.path)) return *d;
    }
  }
  return fallback();
}

std::pair<const Dialect*, const Endpoint*> Registry::endpoint(std::string_view path) const {
  for (const Dialect* d : dialects_) {
    for (const Endpoint& e : d->endpoints()) {
      if (e.path == path) return {d, &e};
    }
  }
  return {nullptr, nullptr};
}

const Dialect* Registry::find_kind(std::string_view kind) const {
  auto it = std::find_if(dialects_.begin(), dialects_.end(), [kind](const Dialect* d) {
    return !d->upstream_path().empty() && d->kind() == kind;
  });
  return it == dialects_.end() ? nullptr : *it;
}

std::vector<std::string> Registry::upstream_kinds() const {
  std::vector<std::string> out;
  for (const Dialect* d : dialects_) {
    if (!d->upstream_path().empty()) out.emplace_back(d->kind());
  }
  return out;
}

std::string Registry::endpoint_list() const {
  std::string out;
  for (const Dialect* d : dialects_) {
    for (const Endpoint& e : d->endpoints()) {
      if (!out.empty()) out += ", ";
      out += "POST ";
      out += e.path;
    }
  }
  return out;
}

}  // namespace backstop::dialects
