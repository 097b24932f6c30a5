#include <gtest/gtest.h>
#include <unistd.h>

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

}  // namespace
}  // namespace backstop::cli
