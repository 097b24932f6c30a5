#include "telemetry/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace backstop::telemetry {
namespace {

AccessLogEntry sample_entry() {
  AccessLogEntry entry;
  entry.unix_ms = 1'796'112'000'123;  // 2026-12-01T08:00:00.123Z
  entry.request_id = "req-1";
  entry.method = "POST";
  entry.path = "/v1/chat/completions";
  entry.status = 200;
  entry.workload = "agentic";
  entry.outcome = "fallback";
  entry.served_by = "claude";
  entry.attempts = {{"v4-flash", "deepseek-ai/DeepSeek-V4-Flash", "schema", 200, 12.5},
                    {"claude", "claude-sonnet-4-5", "pass", 200, 840.25}};
  entry.input_tokens = 1234;
  entry.cached_input_tokens = 10;
  entry.output_tokens = 567;
  entry.cost_micro_usd = 12207;
  entry.duration_ms = 853.1234;
  entry.stream = true;
  return entry;
}

TEST(AccessLog, LineByteForByte) {
  EXPECT_EQ(to_json_line(sample_entry()),
            "{\"ts\":\"2026-12-01T08:00:00.123Z\",\"request_id\":\"req-1\",\"method\":\"POST\","
            "\"path\":\"/v1/chat/completions\",\"status\":200,\"workload\":\"agentic\","
            "\"outcome\":\"fallback\",\"served_by\":\"claude\",\"attempts\":["
            "{\"provider\":\"v4-flash\",\"model\":\"deepseek-ai/DeepSeek-V4-Flash\","
            "\"result\":\"schema\",\"status\":200,\"latency_ms\":12.500},"
            "{\"provider\":\"claude\",\"model\":\"claude-sonnet-4-5\",\"result\":\"pass\","
            "\"status\":200,\"latency_ms\":840.250}],"
            "\"tokens\":{\"input\":1234,\"cached_input\":10,\"output\":567},"
            "\"cost_usd\":0.012207,\"cost_micro_usd\":12207,\"duration_ms\":853.123,"
            "\"stream\":true}\n");
}

TEST(AccessLog, TheClientKeysNameFollowsTheWorkloadWhenThereIsOne) {
  AccessLogEntry entry = sample_entry();
  entry.key = "team-a";
  EXPECT_NE(to_json_line(entry).find(R"("workload":"agentic","key":"team-a","outcome")"),
            std::string::npos);
}

TEST(AccessLog, EmptyEntryIsValidLine) {
  AccessLogEntry entry;
  entry.cost_micro_usd = 123;
  EXPECT_EQ(to_json_line(entry),
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"request_id\":\"\",\"method\":\"\","
            "\"path\":\"\",\"status\":0,\"workload\":\"\",\"outcome\":\"\",\"served_by\":\"\","
            "\"attempts\":[],\"tokens\":{\"input\":0,\"cached_input\":0,\"output\":0},"
            "\"cost_usd\":0.000123,\"cost_micro_usd\":123,\"duration_ms\":0.000,"
            "\"stream\":false}\n");
}

TEST(AccessLog, EscapesHostileRequestId) {
  AccessLogEntry entry;
  entry.request_id = std::string("a\"}\n\\\x01\x1f\t\r\b\f\x7f", 12) + "\xc3\xa9" + "\xff" +
                     "\xe2\x82" + "\xed\xa0\x80" + std::string(1, '\0') + "z";
  const std::string line = to_json_line(entry);
  EXPECT_NE(line.find("\"request_id\":\"a\\\"}\\n\\\\\\u0001\\u001f\\t\\r\\b\\f\\u007f"
                      "\xc3\xa9\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\u0000z\","),
            std::string::npos)
      << line;
  // Exactly one line, whatever the id held.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(AccessLog, NegativeTimeAndCost) {
  AccessLogEntry entry;
  entry.unix_ms = -1;
  entry.cost_micro_usd = -1'500'000;
  const std::string line = to_json_line(entry);
  EXPECT_NE(line.find("\"ts\":\"1969-12-31T23:59:59.999Z\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"cost_usd\":-1.500000,"), std::string::npos) << line;
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("backstop_access_log_" + std::to_string(::getpid()) + "_" + name);
}

TEST(AccessLog, AppendsLinesToFile) {
  const auto path = temp_path("append.log");
  std::filesystem::remove(path);
  {
    std::ofstream(path) << "existing\n";
    AccessLog log(path.string());
    ASSERT_TRUE(log.enabled());
    EXPECT_EQ(log.open_error(), "");
    log.write(sample_entry());
    log.write(sample_entry());
  }
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  const std::string line = to_json_line(sample_entry());
  EXPECT_EQ(content.str(), "existing\n" + line + line);
  std::filesystem::remove(path);
}

TEST(AccessLog, EmptyPathDisables) {
  AccessLog log("");
  EXPECT_FALSE(log.enabled());
  EXPECT_EQ(log.open_error(), "");
  log.write(sample_entry());
}

TEST(AccessLog, UnopenableFileIsDisabledWithReason) {
  AccessLog log("/nonexistent-dir-backstop/access.log");
  EXPECT_FALSE(log.enabled());
  EXPECT_NE(
      log.open_error().find("cannot open access log \"/nonexistent-dir-backstop/access.log\""),
      std::string::npos)
      << log.open_error();
  log.write(sample_entry());
}

// Reads what is in the pipe now, without waiting.
std::string read_available(int fd) {
  std::string out;
  char chunk[4096];
  for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) out.append(chunk, n);
  return out;
}

TEST(AccessLog, WritesWholeLinesFromItsOwnThreadAndFlushes) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  {
    AccessLog log(fds[1], {});
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(log.write(sample_entry()));
    log.flush();
    const std::string line = to_json_line(sample_entry());
    EXPECT_EQ(read_available(fds[0]), line + line + line);
    EXPECT_EQ(log.dropped(), 0u);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(AccessLog, AFullQueueDropsAndCountsLinesWithoutBlockingTheCaller) {
  // The pipe's reader goes away at the end: the writer's write() then fails with EPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    AccessLog log(fds[1], {.queue_lines = 4, .flush_timeout = std::chrono::seconds(10)});
    // Nobody reads the pipe: once its 64 KiB are full the writer blocks in write(), the
    // queue fills, and every later line is dropped. A blocking write() here would hang.
    const std::size_t line_bytes = to_json_line(sample_entry()).size();
    const int lines = static_cast<int>(4 * 1024 * 1024 / line_bytes);
    int dropped = 0;
    for (int i = 0; i < lines; ++i) {
      if (!log.write(sample_entry())) ++dropped;
    }
    EXPECT_GT(dropped, lines / 2);
    EXPECT_EQ(log.dropped(), static_cast<std::uint64_t>(dropped));
    ::close(fds[0]);
  }
  ::close(fds[1]);
}

TEST(AccessLog, DashIsStdout) {
  AccessLog log("-");
  EXPECT_TRUE(log.enabled());
}

}  // namespace
}  // namespace backstop::telemetry
