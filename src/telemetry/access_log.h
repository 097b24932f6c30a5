#pragma once

#include <cstdint>
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

// Appends lines to a file descriptor with one write() each (whole lines under O_APPEND).
class AccessLog {
 public:
  // path "-": stdout; "": disabled; else the file, created or appended.
  explicit AccessLog(const std::string& path);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  [[nodiscard]] bool enabled() const { return fd_ >= 0; }
  // Why the file could not be opened ("" when it was, or when disabled on purpose).
  [[nodiscard]] const std::string& open_error() const { return open_error_; }
  // Appends the entry's line; a failed write is dropped (the log never fails a request).
  void write(const AccessLogEntry& entry);

 private:
  int fd_ = -1;
  bool owned_ = false;
  std::string open_error_;
};

}  // namespace backstop::telemetry
