#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "cli/process.h"

namespace backstop::cli {
namespace {

TEST(ProcessTest, AWriteToAPipeWithoutReaderFailsWithEpipeInsteadOfKillingTheProcess) {
  ignore_broken_pipes();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  errno = 0;
  EXPECT_EQ(::write(fds[1], "x", 1), -1);  // without it, SIGPIPE would end this test here
  EXPECT_EQ(errno, EPIPE);
  ::close(fds[1]);
}

TEST(ProcessTest, RaisesTheSoftOpenFileLimitToTheHardLimit) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  const rlim_t low = std::min<rlim_t>(limit.rlim_max, 256);
  rlimit lowered{low, limit.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);

  const FdLimit raised = raise_fd_limit();
  EXPECT_EQ(raised.before, low);
  EXPECT_EQ(raised.now, limit.rlim_max);
  EXPECT_EQ(raised.hard, limit.rlim_max);
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(limit.rlim_cur, limit.rlim_max);
}

}  // namespace
}  // namespace backstop::cli
