#include "telemetry/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>

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
  if (!entry.key.empty()) {
    append_field(out, "key");
    append_string(out, entry.key);
  }
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

namespace {

// Up to this much is written with one write() (whole lines).
constexpr std::size_t kBatchBytes = 64 * 1024;

// A bounded queue of lines for many producers and one consumer (Dmitry Vyukov's bounded
// MPMC ring): a push is one compare-and-swap, no lock; a full queue refuses at once.
class LineQueue {
 public:
  explicit LineQueue(std::size_t capacity) {
    std::size_t size = 2;
    while (size < capacity) size *= 2;
    cells_ = std::make_unique<Cell[]>(size);
    mask_ = size - 1;
    for (std::size_t i = 0; i < size; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  }

  // Moves `line` in; false when full.
  bool push(std::string& line) {
    std::size_t position = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& cell = cells_[position & mask_];
      const std::size_t sequence = cell.sequence.load(std::memory_order_acquire);
      const auto lag = static_cast<std::ptrdiff_t>(sequence - position);
      if (lag == 0) {
        if (tail_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          cell.line = std::move(line);
          cell.sequence.store(position + 1, std::memory_order_release);
          return true;
        }
      } else if (lag < 0) {
        return false;  // the cell still holds a line from a lap ago: full
      } else {
        position = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // The consumer's side: moves the oldest line out; false when empty.
  bool pop(std::string& line) {
    const std::size_t position = head_.load(std::memory_order_relaxed);
    Cell& cell = cells_[position & mask_];
    if (cell.sequence.load(std::memory_order_acquire) != position + 1) return false;
    head_.store(position + 1, std::memory_order_relaxed);
    line = std::move(cell.line);
    cell.line.clear();
    cell.sequence.store(position + mask_ + 1, std::memory_order_release);
    return true;
  }

  // The consumer's side: whether a line is ready.
  [[nodiscard]] bool ready() const {
    const std::size_t position = head_.load(std::memory_order_relaxed);
    return cells_[position & mask_].sequence.load(std::memory_order_acquire) == position + 1;
  }

 private:
  struct Cell {
    std::atomic<std::size_t> sequence{0};
    std::string line;
  };
  std::unique_ptr<Cell[]> cells_;
  std::size_t mask_ = 0;
  alignas(64) std::atomic<std::size_t> tail_{0};
  alignas(64) std::atomic<std::size_t> head_{0};
};

// Writes all of `bytes`; false when the descriptor fails (the bytes are then dropped).
bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd ready{fd, POLLOUT, 0};
        ::poll(&ready, 1, 100);
        continue;
      }
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

}  // namespace

struct AccessLog::State {
  State(int fd, bool owned, std::size_t capacity) : fd(fd), owned(owned), queue(capacity) {}
  ~State() {
    if (owned) ::close(fd);
  }

  void wake_writer() {
    wake.fetch_add(1);
    wake.notify_one();
  }

  // The writer thread: writes queued lines in batches until stopping and empty.
  void run() {
    std::string batch;
    std::string line;
    for (;;) {
      std::uint64_t taken = 0;
      batch.clear();
      while (batch.size() < kBatchBytes && queue.pop(line)) {
        batch += line;
        ++taken;
      }
      if (taken != 0) {
        write_all(fd, batch);
        {
          std::lock_guard lock(mutex);
          written += taken;
        }
        progress.notify_all();
        continue;
      }
      if (stopping.load()) break;
      // Sleep until a producer sees writer_idle and wakes us. The fences pair with the one in
      // AccessLog::write: either it sees writer_idle, or ready() sees its line.
      const std::uint32_t seen = wake.load();
      writer_idle.store(true);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (!queue.ready() && !stopping.load()) wake.wait(seen);
      writer_idle.store(false);
    }
    std::lock_guard lock(mutex);
    finished = true;
    progress.notify_all();
  }

  const int fd;
  const bool owned;
  LineQueue queue;
  std::atomic<std::uint64_t> queued{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<bool> writer_idle{false};
  std::atomic<std::uint32_t> wake{0};
  std::atomic<bool> stopping{false};
  std::mutex mutex;  // the writer's progress, for flush() and the destructor only
  std::condition_variable progress;
  std::uint64_t written = 0;  // lines taken off the queue (written or failed)
  bool finished = false;
  std::chrono::milliseconds flush_timeout{0};
  std::thread writer;
};

AccessLog::AccessLog(const std::string& path, Options options) {
  if (path.empty()) return;
  if (path == "-") {
    start(STDOUT_FILENO, /*owned=*/false, options);
    return;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    open_error_ = "cannot open access log \"" + path + "\": " + std::strerror(errno);
    return;
  }
  start(fd, /*owned=*/true, options);
}

AccessLog::AccessLog(int fd, Options options) { start(fd, /*owned=*/false, options); }

void AccessLog::start(int fd, bool owned, Options options) {
  state_ = std::make_shared<State>(fd, owned, options.queue_lines);
  state_->flush_timeout = options.flush_timeout;
  // The thread shares the state, so that a writer stuck in write() can be left behind.
  state_->writer = std::thread([state = state_] { state->run(); });
}

AccessLog::~AccessLog() {
  if (!state_) return;
  state_->stopping = true;
  state_->wake_writer();
  bool finished = false;
  {
    std::unique_lock lock(state_->mutex);
    finished =
        state_->progress.wait_for(lock, state_->flush_timeout, [this] { return state_->finished; });
  }
  // A writer blocked on a pipe nobody reads is left to the process's exit.
  if (finished) {
    state_->writer.join();
  } else {
    state_->writer.detach();
  }
}

bool AccessLog::write(const AccessLogEntry& entry) {
  if (!state_) return true;
  std::string line = to_json_line(entry);
  if (!state_->queue.push(line)) {
    state_->dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  state_->queued.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (state_->writer_idle.load(std::memory_order_relaxed) && state_->writer_idle.exchange(false)) {
    state_->wake_writer();
  }
  return true;
}

void AccessLog::flush() {
  if (!state_) return;
  const std::uint64_t target = state_->queued.load();
  std::unique_lock lock(state_->mutex);
  state_->progress.wait_for(lock, state_->flush_timeout,
                            [&] { return state_->written >= target || state_->finished; });
}

std::uint64_t AccessLog::dropped() const { return state_ ? state_->dropped.load() : 0; }

}  // namespace backstop::telemetry
