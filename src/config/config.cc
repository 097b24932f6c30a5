#include "config/config.h"

#include <cerrno>
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

LoadResult load_file(const std::string& path) {
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
  return parse(text, path);
}

}  // namespace backstop::config
