#include "core/log.h"

#include <unistd.h>

#include <string>

namespace backstop::core {

void StderrLogger::log(LogLevel level, std::string_view line) {
  if (level < min_level_) return;
  std::string out;
  switch (level) {
    case LogLevel::kDebug:
      out = "debug ";
      break;
    case LogLevel::kInfo:
      out = "info ";
      break;
    case LogLevel::kWarn:
      out = "warn ";
      break;
    case LogLevel::kError:
      out = "error ";
      break;
  }
  out.append(line);
  out.push_back('\n');
  // One write per line keeps lines from different threads whole.
  [[maybe_unused]] auto n = ::write(2, out.data(), out.size());
}

}  // namespace backstop::core
