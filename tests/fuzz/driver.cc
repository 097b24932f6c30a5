// A standalone driver for one libFuzzer-style target (LLVMFuzzerTestOneInput), for compilers
// whose -fsanitize=fuzzer cannot build the project. It runs every seed given on the command
// line, then a deterministic mutation loop (no coverage feedback) bounded by a run count and
// a time limit. A crash, a property violation (abort) or a hang saves the input being run
// as <artifact_prefix>crash-<target>-<hash> (or timeout-...) and ends the process.
//
//   fuzz_<target> [flags] CORPUS_DIR_OR_FILE...
//   -runs=N              mutation iterations (default 20000; 0: only the seeds)
//   -max_total_time=S    stop mutating after S seconds (default 5)
//   -seed=N              the PRNG seed (default 1): the same seed replays the same inputs
//   -max_len=N           longest mutated input in bytes (default 8192, or the longest seed)
//   -timeout=S           one input running longer than S seconds is a hang (default 5)
//   -artifact_prefix=P   where crash inputs are written (default: the working directory)
// When every argument is a file (not a directory), only those files run (to replay a crash).
// The flag names are libFuzzer's, so a command line works with either.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);
// Provided by the sanitizer runtimes (ASan, UBSan): called before they end the process.
extern "C" __attribute__((weak)) void __sanitizer_set_death_callback(void (*callback)());

namespace backstop::fuzz {
namespace {

namespace fs = std::filesystem;

struct Options {
  long runs = 20'000;
  double max_total_time = 5;
  std::uint64_t seed = 1;
  std::size_t max_len = 8192;
  unsigned timeout = 5;
  std::string artifact_prefix;
  std::vector<std::string> inputs;  // corpus directories and files
};

// The input being run, for the crash and hang handlers. A signal handler can reach only
// globals, hence these (the artifact path is built before any input runs).
const std::string* g_current = nullptr;
long g_run = 0;                   // how many inputs ran before the current one
std::string g_crash_path_prefix;  // "<prefix>crash-<target>-"
std::string g_timeout_path_prefix;

// FNV-1a, to name an artifact after its bytes.
std::uint64_t hash_of(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Writes the current input to `<path_prefix><hash>`, using only async-signal-safe calls.
void save_current(const std::string& path_prefix, const char* what) {
  if (g_current == nullptr) return;
  char path[4096];
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t n = std::min(path_prefix.size(), sizeof path - 17);
  std::memcpy(path, path_prefix.data(), n);
  std::uint64_t h = hash_of(*g_current);
  for (int i = 15; i >= 0; --i, h >>= 4) path[n + i] = kHex[h & 0xf];
  path[n + 16] = '\0';
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    const char* p = g_current->data();
    std::size_t left = g_current->size();
    while (left > 0) {
      ssize_t w = ::write(fd, p, left);
      if (w <= 0) break;
      p += w;
      left -= static_cast<std::size_t>(w);
    }
    ::close(fd);
  }
  auto say = [](const char* s) { [[maybe_unused]] auto r = ::write(2, s, std::strlen(s)); };
  char number[24];
  char* digits = number + sizeof number;
  *--digits = '\0';
  long run = g_run;
  do {
    *--digits = static_cast<char>('0' + run % 10);
    run /= 10;
  } while (run > 0);
  say("==fuzz== ");
  say(what);
  say(" in run ");
  say(digits);
  say("; input saved to ");
  say(fd >= 0 ? path : "(could not write the artifact)");
  say("\n");
}

void on_death() { save_current(g_crash_path_prefix, "crash"); }

void on_signal(int sig) {
  if (sig == SIGALRM) {
    save_current(g_timeout_path_prefix, "timeout (an input ran longer than -timeout)");
    ::_exit(70);
  }
  save_current(g_crash_path_prefix, "crash");
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_handlers() {
  if (__sanitizer_set_death_callback != nullptr) {
    // The sanitizer reports memory errors itself (with a stack) and then calls us back.
    __sanitizer_set_death_callback(on_death);
  } else {
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, on_signal);
  }
  // A failed property aborts; sanitizers leave SIGABRT alone.
  std::signal(SIGABRT, on_signal);
  std::signal(SIGALRM, on_signal);
}

bool parse_flag(std::string_view arg, Options& options) {
  auto value = [&](std::string_view name) -> const char* {
    if (!arg.starts_with(name) || arg.size() <= name.size() || arg[name.size()] != '=')
      return nullptr;
    return arg.data() + name.size() + 1;
  };
  if (const char* v = value("-runs")) {
    options.runs = std::strtol(v, nullptr, 10);
  } else if (const char* v = value("-max_total_time")) {
    options.max_total_time = std::strtod(v, nullptr);
  } else if (const char* v = value("-seed")) {
    options.seed = std::strtoull(v, nullptr, 10);
  } else if (const char* v = value("-max_len")) {
    options.max_len = std::strtoull(v, nullptr, 10);
  } else if (const char* v = value("-timeout")) {
    options.timeout = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
  } else if (const char* v = value("-artifact_prefix")) {
    options.artifact_prefix = v;
  } else {
    return false;
  }
  return true;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Tokens worth inserting whole: JSON syntax and extremes, the dialects' key words, SSE and
// YAML syntax. Random bytes alone rarely produce them.
// Laid out by hand: clang-format would give each token a line of its own.
// clang-format off
constexpr std::string_view kTokens[] = {
    "{", "}", "[", "]", "\"", ",", ":", "null", "true", "false", "{}", "[]", "\"\"", "\"\":",
    "0", "-1", "1.5", "1e999", "-1e999", "1e-400", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "\\u0000", "\\ud800", "\\udc00\\ud800", "\\\"", "\\\\", "[[[[", "{{{{",
    "\"role\"", "\"content\"", "\"type\"", "\"text\"", "\"tool_calls\"", "\"tool_use\"",
    "\"arguments\"", "\"input\"", "\"index\"", "\"choices\"", "\"delta\"", "\"usage\"",
    "\"model\"", "\"stream\"", "\"tools\"", "\"parameters\"", "\"$ref\"", "\"#\"",
    "\"finish_reason\"", "\"stop_reason\"", "\"enum\"",
    "\n", "\r", "\r\n", "\n\n", "data: ", "event: ",
    ": ", "- ", "&a ", "*a", "<<: ", "\t"};
// clang-format on

// Deterministic mutations of byte strings: the same seed gives the same sequence.
class Mutator {
 public:
  Mutator(std::uint64_t seed, std::size_t max_len) : rng_(seed), max_len_(max_len) {}

  // `base` changed by one to four mutations; `other` is a second seed for splicing.
  std::string mutate(std::string base, const std::string& other) {
    int count = 1 + static_cast<int>(below(4));
    for (int i = 0; i < count; ++i) mutate_once(base, other);
    if (base.size() > max_len_) base.resize(max_len_);
    return base;
  }

  // A number in [0, n); 0 when n is 0.
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng_() % n); }

 private:
  void mutate_once(std::string& s, const std::string& other) {
    std::size_t pos = below(s.size() + 1);
    switch (below(12)) {
      case 0:  // flip one bit
        if (!s.empty()) s[below(s.size())] ^= static_cast<char>(1u << below(8));
        break;
      case 1:  // set a byte to anything
        if (!s.empty()) s[below(s.size())] = static_cast<char>(below(256));
        break;
      case 2:  // insert a few random bytes
        s.insert(pos, 1 + below(4), static_cast<char>(below(256)));
        break;
      case 3:  // delete a range
        if (!s.empty()) s.erase(below(s.size()), 1 + below(std::min<std::size_t>(s.size(), 16)));
        break;
      case 4:  // truncate
        s.resize(below(s.size() + 1));
        break;
      case 5: {  // duplicate a range elsewhere
        if (s.empty()) break;
        std::size_t from = below(s.size());
        std::string piece = s.substr(from, 1 + below(64));
        s.insert(below(s.size() + 1), piece);
        break;
      }
      case 6:  // splice: a prefix of this with a suffix of the other
        s = s.substr(0, pos) + other.substr(below(other.size() + 1));
        break;
      case 7:
      case 8:  // insert a token
        s.insert(pos, kTokens[below(std::size(kTokens))]);
        break;
      case 9: {  // replace a range with a token
        std::string_view token = kTokens[below(std::size(kTokens))];
        s.replace(pos, below(8), token);
        break;
      }
      case 10:  // deep nesting
        s.insert(pos, 1 + below(200), below(2) == 0 ? '[' : '{');
        break;
      default: {  // swap two bytes
        if (s.size() < 2) break;
        std::swap(s[below(s.size())], s[below(s.size())]);
        break;
      }
    }
  }

  std::mt19937_64 rng_;
  std::size_t max_len_;
};

class Runner {
 public:
  explicit Runner(unsigned timeout) : timeout_(timeout) {}

  void run(const std::string& input) {
    g_current = &input;
    g_run = runs_;
    if (timeout_ > 0) ::alarm(timeout_);
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
    if (timeout_ > 0) ::alarm(0);
    g_current = nullptr;
    ++runs_;
  }
  long runs() const { return runs_; }

 private:
  unsigned timeout_;
  long runs_ = 0;
};

int run_main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-help" || arg == "--help") {
      std::printf(
          "usage: %s [-runs=N] [-max_total_time=S] [-seed=N] [-max_len=N] [-timeout=S] "
          "[-artifact_prefix=P] CORPUS_DIR_OR_FILE...\n",
          argv[0]);
      return 0;
    }
    if (arg.starts_with('-')) {
      if (!parse_flag(arg, options)) {
        std::fprintf(stderr, "%s: unknown flag %s\n", argv[0], argv[i]);
        return 2;
      }
    } else {
      options.inputs.emplace_back(arg);
    }
  }
  std::string target = fs::path(argv[0]).filename().string();
  if (target.starts_with("fuzz_")) target.erase(0, 5);
  g_crash_path_prefix = options.artifact_prefix + "crash-" + target + "-";
  g_timeout_path_prefix = options.artifact_prefix + "timeout-" + target + "-";
  install_handlers();
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  std::vector<std::string> seeds;
  bool only_files = !options.inputs.empty();
  for (const auto& input : options.inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      only_files = false;
      std::vector<fs::path> files;
      for (const auto& entry : fs::directory_iterator(input, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());  // the same order on every machine
      for (const auto& file : files) seeds.push_back(read_file(file));
    } else if (fs::is_regular_file(input, ec)) {
      seeds.push_back(read_file(input));
    } else {
      std::fprintf(stderr, "%s: no such corpus directory or file: %s\n", argv[0], input.c_str());
      return 2;
    }
  }
  if (only_files) options.runs = 0;

  const auto started = std::chrono::steady_clock::now();
  Runner runner(options.timeout);
  for (const auto& seed : seeds) runner.run(seed);
  const std::size_t seed_count = seeds.size();
  runner.run(std::string());

  // The pool mutations start from: the seeds, then a bounded share of earlier mutants, so that
  // mutations accumulate without coverage feedback to pick them.
  std::vector<std::string> pool = seeds;
  if (pool.empty()) pool.emplace_back();
  const std::size_t pool_limit = pool.size() * 2 + 64;
  std::size_t longest = 0;
  for (const auto& s : pool) longest = std::max(longest, s.size());
  Mutator mutator(options.seed, std::max(options.max_len, longest));
  const auto deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(options.max_total_time));
  for (long i = 0; i < options.runs; ++i) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    const std::string& base = pool[mutator.below(pool.size())];
    const std::string& other = pool[mutator.below(pool.size())];
    std::string input = mutator.mutate(base, other);
    runner.run(input);
    if (mutator.below(8) == 0) {
      if (pool.size() < pool_limit) {
        pool.push_back(std::move(input));
      } else if (pool.size() > seed_count) {
        pool[seed_count + mutator.below(pool.size() - seed_count)] = std::move(input);
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%s: %ld runs, 0 crashes (%zu seeds, %.1f s, seed %llu)\n", target.c_str(),
              runner.runs(), seed_count, seconds, static_cast<unsigned long long>(options.seed));
  return 0;
}

}  // namespace
}  // namespace backstop::fuzz

int main(int argc, char** argv) { return backstop::fuzz::run_main(argc, argv); }
