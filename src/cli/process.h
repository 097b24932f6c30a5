#pragma once

#include <cstdint>

namespace backstop::cli {

// Process-wide settings every subcommand makes at start-up.

// Ignores SIGPIPE, so that writing to a closed socket or to a pipe whose reader has gone
// (an access log piped to a dead log shipper) fails with EPIPE instead of killing the
// process.
void ignore_broken_pipes();

// The open-file limit (RLIMIT_NOFILE) before and after raise_fd_limit().
struct FdLimit {
  std::uint64_t before = 0;  // the soft limit found at start-up
  std::uint64_t now = 0;     // the soft limit now
  std::uint64_t hard = 0;
};

// Raises the soft open-file limit to the hard limit (the default soft limit, 1,024, would
// lock clients out long before max_connections). Keeps the old limit when it cannot.
FdLimit raise_fd_limit();

// The soft open-file limit now; 0 when unlimited or unknown.
std::uint64_t open_file_limit();

}  // namespace backstop::cli
