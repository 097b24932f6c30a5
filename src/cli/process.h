#pragma once

#include <cstdint>

namespace backstop::cli {

// Process-wide settings every subcommand makes at start-up.

// Ignores SIGPIPE, so that writing to a closed socket or to a pipe whose reader has gone
// (an access log piped to a dead log shipper) fails with EPIPE instead of killing the
// process.
void ignore_broken_pipes();

}  // namespace backstop::cli
