#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace backstop::telemetry {

// One attempt as it appears in the access log.
struct AttemptLog {
  std::string provider;
  std::string model;
  std::string result;  // "pass" or the reason
  int status = 0;      // upstream HTTP status, 0 when none
  double latency_ms = 0;
};

// One request: no prompt or completion text and no key, ever.
struct AccessLogEntry {
  std::int64_t unix_ms = 0;
  std::string request_id;
  std::string method;
  std::string path;
  int status = 0;
  std::string workload;
  std::string key;      // the client key's name; empty (and no field) when auth is off
  std::string outcome;  // primary | fallback | failed | rejected
  std::string served_by;
  std::vector<AttemptLog> attempts;
  std::int64_t input_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cost_micro_usd = 0;
  double duration_ms = 0;
  bool stream = false;     // the client asked for a stream
  std::string error_code;  // the error answered ("invalid_request", "model_not_found" ...)
  std::string error;       // its message; empty with error_code when the answer was no error
};

// The entry as one JSON object and a trailing newline.
[[nodiscard]] std::string to_json_line(const AccessLogEntry& entry);

// Appends lines to a file descriptor from a writer thread of its own: write() only queues
// the line (a bounded queue, no lock), so a worker never blocks on a slow disk or a full
// pipe; when the queue is full the line is dropped. The writer writes whole lines.
class AccessLog {
 public:
  struct Options {
    std::size_t queue_lines = 8192;  // rounded up to a power of two
    // How long flush() and the destructor wait for the writer before giving up on it.
    std::chrono::milliseconds flush_timeout{2000};
  };

  // path "-": stdout; "": disabled; else the file, created or appended.
  explicit AccessLog(const std::string& path, Options options);
  explicit AccessLog(const std::string& path) : AccessLog(path, Options{}) {}
  // Writes to `fd`, which stays the caller's (tests: a pipe).
  AccessLog(int fd, Options options);
  // Writes what is queued (up to flush_timeout), then stops the writer.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  [[nodiscard]] bool enabled() const { return state_ != nullptr; }
  // Why the file could not be opened ("" when it was, or when disabled on purpose).
  [[nodiscard]] const std::string& open_error() const { return open_error_; }
  // Queues the entry's line; false when the queue was full and the line dropped (a
  // disabled log drops nothing). Any thread; never blocks.
  bool write(const AccessLogEntry& entry);
  // Waits until every line queued before the call is written (up to flush_timeout).
  void flush();
  // Lines dropped because the queue was full, since start.
  [[nodiscard]] std::uint64_t dropped() const;

  // Shared with the writer thread, which may outlive a destructor that gave up on it.
  struct State;

 private:
  void start(int fd, bool owned, Options options);

  std::shared_ptr<State> state_;
  std::string open_error_;
};

}  // namespace backstop::telemetry
