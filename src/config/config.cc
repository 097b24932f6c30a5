#include "config/config.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

namespace backstop::config {

const Provider* Config::find_provider(std::string_view name) const {
  for (const Provider& p : providers) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const Workload* Config::find_workload(std::string_view name) const {
  for (const Workload& w : workloads) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

std::string ConfigError::to_string() const {
  std::string out = file + ":" + std::to_string(line) + ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

LoadResult load_file(const std::string& path, const ParseOptions& options) {
  auto unreadable = [&](std::string reason) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, "", "cannot read config file: " + reason});
    return result;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return unreadable("is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return unreadable(std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return unreadable("read failed");
  return parse(text, path, options);
}

core::Result<std::pair<std::string, std::uint16_t>> split_listen(std::string_view listen) {
  auto malformed = [&] {
    return core::fail(
        core::ErrorCode::kInvalidArgument,
        "listen address \"" + std::string(listen) + "\" must be HOST:PORT with PORT 0..65535");
  };
  std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return malformed();
  std::string_view host = listen.substr(0, colon);
  std::string_view port = listen.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return malformed();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return malformed();
  }
  if (port.empty() || port.size() > 5) return malformed();
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) return malformed();
  return std::pair{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace backstop::config
