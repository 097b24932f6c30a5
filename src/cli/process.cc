#include "cli/process.h"

#include <csignal>

namespace backstop::cli {

void ignore_broken_pipes() { std::signal(SIGPIPE, SIG_IGN); }

}  // namespace backstop::cli
