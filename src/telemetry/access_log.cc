#include "telemetry/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "core/utf8.h"

namespace backstop::telemetry {
namespace {

// `value` as a JSON string: quotes, backslashes and control characters escaped, and
// invalid UTF-8 replaced by U+FFFD so the line stays valid JSON whatever a client sent.
void append_string(std::string& out, std::string_view value) {
  out += '"';
  for (std::size_t i = 0; i < value.size();) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            char buffer[8];
            std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
            out += buffer;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const std::size_t length = core::utf8_sequence(value, i);
    if (length == 0) {
      out += "\\ufffd";
      ++i;
    } else {
      out.append(value.substr(i, length));
      i += length;
    }
  }
  out += '"';
}

void append_field(std::string& out, std::string_view name) {
  if (out.size() > 1) out += ',';
  out += '"';
  out += name;
  out += "\":";
}

void append_int(std::string& out, std::int64_t value) { out += std::to_string(value); }

// Milliseconds with three decimals; non-finite values (never expected) as 0 to keep JSON valid.
void append_millis(std::string& out, double value) {
  if (!std::isfinite(value)) value = 0;
  char buffer[48];
  const int length = std::snprintf(buffer, sizeof buffer, "%.3f", value);
  out.append(buffer, static_cast<std::size_t>(length));
}

// Micro-dollars as an exact decimal number of dollars with six decimals: 0.000123.
void append_usd(std::string& out, std::int64_t micro) {
  const bool negative = micro < 0;
  const std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(micro) : static_cast<std::uint64_t>(micro);
  char buffer[48];
  const int length = std::snprintf(buffer, sizeof buffer, "%s%llu.%06llu", negative ? "-" : "",
                                   static_cast<unsigned long long>(magnitude / 1'000'000),
                                   static_cast<unsigned long long>(magnitude % 1'000'000));
  out.append(buffer, static_cast<std::size_t>(length));
}

// RFC 3339 UTC with milliseconds: 2026-12-01T08:00:00.123Z.
void append_timestamp(std::string& out, std::int64_t unix_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> time{milliseconds(unix_ms)};
  const auto day = floor<days>(time);
  const year_month_day date{day};
  const hh_mm_ss clock{time - day};
  char buffer[40];
  const int length = std::snprintf(
      buffer, sizeof buffer, "\"%04d-%02u-%02uT%02d:%02d:%02d.%03dZ\"",
      static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
      static_cast<unsigned>(date.day()), static_cast<int>(clock.hours().count()),
      static_cast<int>(clock.minutes().count()), static_cast<int>(clock.seconds().count()),
      static_cast<int>(clock.subseconds().count()));
  out.append(buffer, static_cast<std::size_t>(length));
}

}  // namespace

std::string to_json_line(const AccessLogEntry& entry) {
  std::string out = "{";
  out.reserve(512);
  append_field(out, "ts");
  append_timestamp(out, entry.unix_ms);
  append_field(out, "request_id");
  append_string(out, entry.request_id);
  append_field(out, "method");
  append_string(out, entry.method);
  append_field(out, "path");
  append_string(out, entry.path);
  append_field(out, "status");
  append_int(out, entry.status);
  append_field(out, "workload");
  append_string(out, entry.workload);
  append_field(out, "outcome");
  append_string(out, entry.outcome);
  append_field(out, "served_by");
  append_string(out, entry.served_by);
  append_field(out, "attempts");
  out += '[';
  for (std::size_t i = 0; i < entry.attempts.size(); ++i) {
    const AttemptLog& attempt = entry.attempts[i];
    if (i != 0) out += ',';
    out += "{\"provider\":";
    append_string(out, attempt.provider);
    out += ",\"model\":";
    append_string(out, attempt.model);
    out += ",\"result\":";
    append_string(out, attempt.result);
    out += ",\"status\":";
    append_int(out, attempt.status);
    out += ",\"latency_ms\":";
    append_millis(out, attempt.latency_ms);
    out += '}';
  }
  out += ']';
  append_field(out, "tokens");
  out += "{\"input\":";
  append_int(out, entry.input_tokens);
  out += ",\"cached_input\":";
  append_int(out, entry.cached_input_tokens);
  out += ",\"output\":";
  append_int(out, entry.output_tokens);
  out += '}';
  append_field(out, "cost_usd");
  append_usd(out, entry.cost_micro_usd);
  append_field(out, "cost_micro_usd");
  append_int(out, entry.cost_micro_usd);
  append_field(out, "duration_ms");
  append_millis(out, entry.duration_ms);
  append_field(out, "stream");
  out += entry.stream ? "true" : "false";
  if (!entry.error_code.empty()) {
    append_field(out, "error");
    out += "{\"code\":";
    append_string(out, entry.error_code);
    out += ",\"message\":";
    append_string(out, entry.error);
    out += '}';
  }
  out += "}\n";
  return out;
}

AccessLog::AccessLog(const std::string& path) {
  if (path.empty()) return;
  if (path == "-") {
    fd_ = STDOUT_FILENO;
    return;
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    open_error_ = "cannot open access log \"" + path + "\": " + std::strerror(errno);
    return;
  }
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_) ::close(fd_);
}

void AccessLog::write(const AccessLogEntry& entry) {
  if (fd_ < 0) return;
  const std::string line = to_json_line(entry);
  std::string_view rest = line;
  // One write() per line; the loop only resumes after a signal or a short write to a pipe.
  while (!rest.empty()) {
    const ssize_t written = ::write(fd_, rest.data(), rest.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return;
    }
    rest.remove_prefix(static_cast<std::size_t>(written));
  }
}

}  // namespace backstop::telemetry
