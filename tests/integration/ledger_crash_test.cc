// The ledger's guarantee against a real crash: a `backstop serve` child under load against
// a `backstop mock` child is killed with SIGKILL; the SQLite file must then hold the row of
// every request answered more than flush_ms before the kill, and the rows' costs must add
// up to the spend /metrics reported just before it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backstop_test_paths.h"
#include "http/client.h"

namespace backstop {
namespace {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr auto kPatience = std::chrono::seconds(60);  // bound of every wait

// Between two checks of a bounded poll: leaves the CPU to what the poll waits for.
void pause_poll() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

// A child process whose stdout and stderr go to a file; SIGKILLed when still running at
// the end of the test, or when the test process dies first (a ctest timeout).
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::filesystem::path& output)
      : output_(output) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ::_exit(127);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    EXPECT_GT(pid_, 0) << "cannot start " << argv[0];
  }
  ~Child() { kill_now(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The first match of `pattern`'s group 1 in the child's output, polled until it appears
  // (bounded); nullopt when the child exits or time runs out first.
  std::optional<std::string> wait_for(const std::regex& pattern) {
    const auto deadline = Clock::now() + kPatience;
    while (Clock::now() < deadline) {
      std::ifstream in(output_);
      std::stringstream text;
      text << in.rdbuf();
      std::smatch match;
      const std::string s = text.str();
      if (std::regex_search(s, match, pattern)) return match[1].str();
      if (pid_ < 0 || waitpid(pid_, nullptr, WNOHANG) != 0) return std::nullopt;
      pause_poll();
    }
    return std::nullopt;
  }

  // SIGTERM, then the exit status once the child has exited (bounded); -1 otherwise.
  int terminate_and_wait() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + kPatience;
    int status = 0;
    while (Clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      pause_poll();
    }
    return -1;
  }

  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string output() const {
    std::ifstream in(output_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::filesystem::path output_;
  pid_t pid_ = -1;
};

// What the load saw: each answered request's id and when its answer arrived.
struct Load {
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};
  std::mutex mutex;
  std::map<std::string, Clock::time_point> answered;  // under mutex
  std::vector<std::string> errors;                    // under mutex

  std::size_t answered_count() {
    std::lock_guard lock(mutex);
    return answered.size();
  }
};

http::ClientRequest chat_request(std::string id) {
  http::ClientRequest request;
  request.target = "/v1/chat/completions";
  request.headers = {{"content-type", "application/json"}, {"x-request-id", std::move(id)}};
  // The primary answers empty (billed, then failed by the check); the fallback answers the
  // same JSON every time, so every request costs the same. Each upstream call takes 2 ms:
  // a steady load that leaves the machine's cores to the gateway's threads, the writer's
  // included, rather than a busy loop of the mock.
  request.body =
      R"({"model":"docs","response_format":{"type":"json_object"},"messages":[{"role":"user",)"
      R"("content":"[mock:empty@v4-flash] [mock-delay:2] status?"}]})";
  request.timeout = std::chrono::milliseconds(10'000);
  return request;
}

// One client of the load: requests one after the other until told to stop.
net::awaitable<void> keep_sending(http::Client& client, http::Origin origin, int client_number,
                                  Load& load) {
  for (int i = 0; !load.stop.load(); ++i) {
    std::string id = "crash-" + std::to_string(client_number) + "-" + std::to_string(i);
    auto response = co_await client.send(origin, chat_request(id));
    const auto at = Clock::now();
    std::lock_guard lock(load.mutex);
    if (!response || response->status != 200) {
      load.errors.push_back(id + ": " +
                            (response ? std::to_string(response->status) + " " + response->body
                                      : response.error().message));
      break;
    }
    load.answered.emplace(std::move(id), at);
  }
  load.running.fetch_sub(1);
}

// Sum of every sample of a counter family in Prometheus text, in micro-units.
std::int64_t sum_micros(const std::string& metrics, const std::string& family) {
  std::int64_t total = 0;
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(family + "{") && !line.starts_with(family + " ")) continue;
    total += std::llround(std::stod(line.substr(line.rfind(' ') + 1)) * 1e6);
  }
  return total;
}

struct LedgerRow {
  std::int64_t cost = 0;
  std::int64_t attempts = 0;
  std::int64_t attempts_cost = 0;
  std::string outcome;
};

// request_id -> row, read from the file as a restarted backstop would find it.
std::map<std::string, LedgerRow> read_ledger(const std::string& path, int& duplicates) {
  std::map<std::string, LedgerRow> rows;
  duplicates = 0;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  const char* sql =
      "SELECT r.request_id, r.cost_micro_usd, r.outcome, count(a.attempt), "
      "coalesce(sum(a.cost_micro_usd), 0) FROM requests r LEFT JOIN attempts a "
      "ON a.request = r.id GROUP BY r.id";
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  while (statement != nullptr && sqlite3_step(statement) == SQLITE_ROW) {
    const std::string id = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    LedgerRow row{sqlite3_column_int64(statement, 1), sqlite3_column_int64(statement, 3),
                  sqlite3_column_int64(statement, 4),
                  reinterpret_cast<const char*>(sqlite3_column_text(statement, 2))};
    if (!rows.emplace(id, row).second) ++duplicates;
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return rows;
}

// A `backstop mock` child, and a `backstop serve` child routing to it with a ledger file.
class LedgerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("backstop_ledger_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    mock_.emplace(std::vector<std::string>{binary_, "mock", "--listen", "127.0.0.1:0"},
                  dir_ / "mock.out");
    mock_port_ = mock_->wait_for(std::regex(R"(listening on 127\.0\.0\.1:(\d+))")).value_or("");
    ASSERT_FALSE(mock_port_.empty()) << mock_->output();
  }

  void TearDown() override {
    if (HasFailure() && serve_) std::fprintf(stderr, "serve said:\n%s", serve_->output().c_str());
    serve_.reset();
    mock_.reset();
    // A failed run's files stay for inspection.
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Starts serve; false (with a test failure) when it did not come up.
  bool start_serve(std::int64_t flush_ms) {
    {
      std::ofstream config(dir_ / "backstop.yaml");
      config << "listen: 127.0.0.1:0\nthreads: 2\nlog: {access_log: \"\"}\n"
             << "ledger: {path: " << ledger() << ", flush_ms: " << flush_ms << "}\n"
             << "providers:\n"
             << "  v4: {kind: openai, base_url: http://127.0.0.1:" << mock_port_
             << "/v1, model: v4-flash, price: {input: 0.14, output: 0.28}}\n"
             << "  gpt: {kind: openai, base_url: http://127.0.0.1:" << mock_port_
             << "/v1, model: gpt-x, price: {input: 1.25, output: 10}}\n"
             << "workloads:\n  docs: {route: [v4, gpt], validate: {content: json}}\n";
    }
    serve_.emplace(
        std::vector<std::string>{binary_, "serve", "--config", (dir_ / "backstop.yaml").string()},
        dir_ / "serve.out");
    const auto port = serve_->wait_for(std::regex(R"(listening on port (\d+))"));
    EXPECT_TRUE(port) << serve_->output();
    if (!port) return false;
    origin_ = {false, "127.0.0.1", static_cast<std::uint16_t>(std::stoi(*port)), "", ""};
    return true;
  }

  // Sends requests from 8 clients until at least `answered` were answered and `duration`
  // passed, then lets the requests in flight finish. The load pauses there so that a
  // scrape counts exactly the answered requests.
  void run_load(std::size_t answered, std::chrono::milliseconds duration) {
    constexpr int kClients = 8;
    load_.running = kClients;
    for (int c = 0; c < kClients; ++c) {
      net::co_spawn(loop_, keep_sending(client_, origin_, c, load_), net::detached);
    }
    std::thread io([this] { loop_.run(); });
    const auto started = Clock::now();
    while (Clock::now() - started < kPatience &&
           (load_.answered_count() < answered || Clock::now() - started < duration) &&
           load_.running.load() == kClients) {
      pause_poll();
    }
    load_.stop = true;
    while (load_.running.load() > 0 && Clock::now() - started < 2 * kPatience) {
      pause_poll();
    }
    loop_.stop();
    io.join();
    loop_.restart();
    std::lock_guard lock(load_.mutex);
    EXPECT_TRUE(load_.errors.empty()) << load_.errors.front() << "\n" << serve_->output();
  }

  // GET /metrics.
  std::string scrape() {
    http::ClientRequest request;
    request.method = "GET";
    request.target = "/metrics";
    auto future = net::co_spawn(loop_, client_.send(origin_, request), net::use_future);
    loop_.run();
    loop_.restart();
    auto response = future.get();
    EXPECT_TRUE(response.has_value()) << response.error().message;
    return response ? response->body : "";
  }

  std::string ledger() const { return (dir_ / "ledger.db").string(); }

  const std::string binary_ = std::string(BACKSTOP_BINARY_DIR) + "/backstop";
  std::filesystem::path dir_;
  std::optional<Child> mock_;
  std::optional<Child> serve_;
  std::string mock_port_;
  http::Origin origin_;
  net::io_context loop_;
  http::Client client_{loop_};
  Load load_;
};

TEST_F(LedgerProcessTest, SigkillUnderLoadLosesAtMostFlushMsOfRows) {
  constexpr std::int64_t kFlushMs = 300;
  ASSERT_TRUE(start_serve(kFlushMs));
  run_load(400, std::chrono::milliseconds(5 * kFlushMs));
  // The kill follows the scrape at once, with the writer's last rows still queued.
  const std::string metrics = scrape();
  const auto killed_at = Clock::now();
  serve_->kill_now();
  const std::int64_t spend = sum_micros(metrics, "backstop_spend_usd_total");
  const std::int64_t requests = sum_micros(metrics, "backstop_requests_total") / 1'000'000;

  int duplicates = 0;
  const std::map<std::string, LedgerRow> rows = read_ledger(ledger(), duplicates);
  EXPECT_EQ(duplicates, 0);
  std::lock_guard lock(load_.mutex);
  ASSERT_EQ(requests, static_cast<std::int64_t>(load_.answered.size()));

  // Every row is an answered request, priced as its attempts, and all cost the same.
  ASSERT_FALSE(rows.empty()) << "nothing reached the file before the kill";
  const std::int64_t each = rows.begin()->second.cost;
  EXPECT_GT(each, 0);
  std::int64_t written = 0;
  for (const auto& [id, row] : rows) {
    EXPECT_TRUE(load_.answered.contains(id)) << id;
    EXPECT_EQ(row.outcome, "fallback") << id;
    EXPECT_EQ(row.attempts, 2) << id;
    EXPECT_EQ(row.attempts_cost, row.cost) << id;
    EXPECT_EQ(row.cost, each) << id;
    written += row.cost;
  }

  // Only requests answered within the last flush_ms may be missing.
  const auto limit = killed_at - std::chrono::milliseconds(kFlushMs);
  std::int64_t missing = 0;
  for (const auto& [id, at] : load_.answered) {
    if (rows.contains(id)) continue;
    ++missing;
    EXPECT_GE(at, limit)
        << id << " was answered "
        << std::chrono::duration_cast<std::chrono::milliseconds>(killed_at - at).count()
        << " ms before the kill and has no row";
  }
  EXPECT_EQ(written + missing * each, spend) << rows.size() << " rows, " << missing << " missing, "
                                             << load_.answered.size() << " answered";
}

TEST_F(LedgerProcessTest, SigtermWritesEveryRow) {
  // The writer would not write on its own during the test: only the clean stop does.
  ASSERT_TRUE(start_serve(3'600'000));
  run_load(100, std::chrono::milliseconds(0));
  const std::string metrics = scrape();
  EXPECT_EQ(serve_->terminate_and_wait(), 0) << serve_->output();

  int duplicates = 0;
  const std::map<std::string, LedgerRow> rows = read_ledger(ledger(), duplicates);
  EXPECT_EQ(duplicates, 0);
  std::lock_guard lock(load_.mutex);
  std::int64_t written = 0;
  for (const auto& [id, row] : rows) written += row.cost;
  EXPECT_EQ(rows.size(), load_.answered.size());
  for (const auto& [id, at] : load_.answered) EXPECT_TRUE(rows.contains(id)) << id;
  EXPECT_EQ(written, sum_micros(metrics, "backstop_spend_usd_total"));
}

}  // namespace
}  // namespace backstop
