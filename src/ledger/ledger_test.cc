#include "ledger/ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace backstop::ledger {

// gtest's printers for failed comparisons (found by ADL, so not in the anonymous namespace).
void PrintTo(const DaySpend& s, std::ostream* os) {
  *os << "{" << s.day << "," << s.workload << "," << s.provider << "," << s.model << ", attempts "
      << s.attempts << ", in " << s.input_tokens << ", cached " << s.cached_input_tokens << ", out "
      << s.output_tokens << ", cost " << s.cost_micro_usd << "}";
}

void PrintTo(const RequestRow& r, std::ostream* os) {
  *os << "{" << r.request_id << " at " << r.unix_ms << ", " << r.workload << ", " << r.outcome
      << ", served by " << r.served_by << ", " << r.attempts.size() << " attempts, cost "
      << r.cost_micro_usd() << "}";
}

namespace {

using core::ErrorCode;

constexpr std::int64_t kDec1 = 1'796'112'000'000;  // 2026-12-01T08:00:00Z
constexpr std::int64_t kDec2 = kDec1 + 86'400'000;
// A writer that never wakes on its own in tests that count batches or call flush() only.
constexpr std::int64_t kNever = 3'600'000;

AttemptRow attempt(std::string provider, std::string model, std::int64_t input, std::int64_t output,
                   std::int64_t cost, std::int64_t cached = 0) {
  return AttemptRow{
      std::move(provider), std::move(model), "", 200, input, cached, output, cost, 40};
}

RequestRow request(std::string id, std::int64_t unix_ms, std::string workload,
                   std::vector<AttemptRow> attempts) {
  RequestRow row{std::move(id), unix_ms, 50, std::move(workload), "", "primary", "", {}};
  if (!attempts.empty()) row.served_by = attempts.back().provider;
  row.attempts = std::move(attempts);
  return row;
}

// Keeps every batch it is given.
class CapturingSink final : public Sink {
 public:
  core::Result<void> write(const std::vector<RequestRow>& batch) override {
    std::lock_guard lock(mutex_);
    batches_.push_back(batch);
    return {};
  }
  std::vector<DaySpend> totals() override { return {}; }

  std::vector<std::vector<RequestRow>> batches() {
    std::lock_guard lock(mutex_);
    return batches_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::vector<RequestRow>> batches_;
};

TEST(Cost, MillionInputTokensAtFourteenCents) {
  chat::Usage u;
  u.input_tokens = 1'000'000;
  EXPECT_EQ(cost_micro_usd(u, Price{140'000, 280'000}), 140'000);
}

TEST(Cost, InputAndOutputAtSonnetPrices) {
  // 1234 * 3 USD/M = 3702 µUSD; 567 * 15 USD/M = 8505 µUSD.
  chat::Usage u;
  u.input_tokens = 1234;
  u.output_tokens = 567;
  EXPECT_EQ(cost_micro_usd(u, Price{3'000'000, 15'000'000}), 12'207);
}

TEST(Cost, RoundsHalfUpOncePerCall) {
  const auto cost = [](std::int64_t input, std::int64_t output, Price price) {
    chat::Usage u;
    u.input_tokens = input;
    u.output_tokens = output;
    return cost_micro_usd(u, price);
  };
  EXPECT_EQ(cost(1, 0, Price{500'000, 0}), 1);
  EXPECT_EQ(cost(1, 0, Price{499'999, 0}), 0);
  // 0.3 + 0.3 µUSD is rounded once, as 0.6 -> 1, not as 0 + 0.
  EXPECT_EQ(cost(1, 1, Price{300'000, 300'000}), 1);
  EXPECT_EQ(cost(3, 0, Price{500'000, 0}), 2);  // 1.5 -> 2
}

TEST(Cost, CachedInputUsesItsPriceOrInput) {
  chat::Usage u;
  u.cached_input_tokens = 1'000'000;
  EXPECT_EQ(cost_micro_usd(u, Price{3'000'000, 15'000'000}), 3'000'000);
  EXPECT_EQ(cost_micro_usd(u, Price{3'000'000, 15'000'000, 300'000}), 300'000);
  EXPECT_EQ(cost_micro_usd(u, Price{3'000'000, 15'000'000, 0}), 0);
}

TEST(Cost, LargeProductsDoNotOverflow) {
  // 10^13 tokens at 10^9 µUSD/M: the product 10^22 exceeds 64 bits, the cost does not.
  chat::Usage u;
  u.input_tokens = 10'000'000'000'000;
  EXPECT_EQ(cost_micro_usd(u, Price{1'000'000'000, 0}), 10'000'000'000'000'000);
}

TEST(UtcDay, FormatsTheUtcDate) {
  EXPECT_EQ(utc_day(kDec1), "2026-12-01");
  EXPECT_EQ(utc_day(0), "1970-01-01");
  EXPECT_EQ(utc_day(-1), "1969-12-31");
  EXPECT_EQ(utc_day(1'796'169'599'999), "2026-12-01");  // 23:59:59.999
  EXPECT_EQ(utc_day(1'796'169'600'000), "2026-12-02");
}

TEST(RequestRow, CostIsTheSumOfItsAttempts) {
  EXPECT_EQ(request("r", kDec1, "w", {attempt("v4", "flash", 1, 1, 20), attempt("c", "s", 1, 1, 7)})
                .cost_micro_usd(),
            27);
  EXPECT_EQ(request("r", kDec1, "", {}).cost_micro_usd(), 0);
}

TEST(MemoryStore, AggregatesAttemptsPerDayWorkloadProviderModel) {
  auto store = make_memory_store({kNever, {}});
  store->record(request("a", kDec2, "agentic", {attempt("v4", "flash", 10, 1, 5)}));
  store->record(
      request("b", kDec1, "agentic",
              {attempt("v4", "flash", 100, 10, 20, 5), attempt("claude", "sonnet", 1, 2, 7)}));
  store->record(request("c", kDec1 + 1000, "agentic", {attempt("v4", "flash", 200, 20, 30, 1)}));
  store->record(request("d", kDec1, "", {}));  // rejected before routing: no attempt, no spend
  ASSERT_TRUE(store->flush().has_value());
  EXPECT_EQ(store->totals(), (std::vector<DaySpend>{
                                 {"2026-12-01", "agentic", "claude", "sonnet", 1, 1, 0, 2, 7},
                                 {"2026-12-01", "agentic", "v4", "flash", 2, 300, 6, 30, 50},
                                 {"2026-12-02", "agentic", "v4", "flash", 1, 10, 0, 1, 5},
                             }));
}

// The day's text is kept while the day lasts: a request a millisecond past midnight (or
// before the epoch) must still land on its own day.
TEST(MemoryStore, RequestsAcrossMidnightLandOnTheirDays) {
  auto store = make_memory_store({kNever, {}});
  for (std::int64_t at :
       {1'796'169'599'999LL, 1'796'169'600'000LL, 0LL, -1LL, 1'796'169'599'998LL}) {
    store->record(request("r", at, "agentic", {attempt("v4", "flash", 1, 1, 1)}));
  }
  std::vector<std::string> days;
  for (const DaySpend& row : store->totals())
    days.push_back(row.day + "x" + std::to_string(row.attempts));
  EXPECT_EQ(days, (std::vector<std::string>{"1969-12-31x1", "1970-01-01x1", "2026-12-01x2",
                                            "2026-12-02x1"}));
}

TEST(MemoryStore, TotalsCountRowsRecordedFromManyThreads) {
  auto store = make_memory_store({1, {}});  // the writer runs all along
  constexpr int kThreads = 4;
  constexpr int kRows = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < kRows; ++i) {
        store->record(request("r", kDec1, "w", {attempt(t % 2 == 0 ? "a" : "b", "m", 1, 2, 3)}));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  constexpr std::int64_t kEach = 2 * kRows;
  EXPECT_EQ(store->totals(),
            (std::vector<DaySpend>{
                {"2026-12-01", "w", "a", "m", kEach, kEach, 0, 2 * kEach, 3 * kEach},
                {"2026-12-01", "w", "b", "m", kEach, kEach, 0, 2 * kEach, 3 * kEach},
            }));
  EXPECT_EQ(store->queue_depth(), 0);
}

TEST(SpendStore, FlushWritesEverythingQueuedAsOneBatch) {
  auto sink = std::make_unique<CapturingSink>();
  CapturingSink& captured = *sink;
  SpendStore store(std::move(sink), {kNever, {}});
  std::thread other([&store] { store.record(request("from-other", kDec1, "w", {})); });
  other.join();
  store.record(request("r1", kDec1, "w", {attempt("v4", "flash", 1, 1, 1)}));
  store.record(request("r2", kDec1, "w", {}));
  EXPECT_EQ(store.queue_depth(), 3);
  ASSERT_TRUE(store.flush().has_value());
  const auto batches = captured.batches();
  ASSERT_EQ(batches.size(), 1u);
  std::multiset<std::string> ids;
  for (const RequestRow& row : batches[0]) ids.insert(row.request_id);
  EXPECT_EQ(ids, (std::multiset<std::string>{"from-other", "r1", "r2"}));
  EXPECT_EQ(store.queue_depth(), 0);
  // Nothing new: no empty batch.
  ASSERT_TRUE(store.flush().has_value());
  EXPECT_EQ(captured.batches().size(), 1u);
}

TEST(SpendStore, WriterWritesEveryFlushIntervalWithoutBeingAsked) {
  auto sink = std::make_unique<CapturingSink>();
  CapturingSink& captured = *sink;
  SpendStore store(std::move(sink), {5, {}});
  store.record(request("r1", kDec1, "w", {attempt("v4", "flash", 1, 1, 1)}));
  // Bounded polling: the writer wakes every few milliseconds on its own.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (captured.batches().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a bounded poll's pause
  }
  ASSERT_EQ(captured.batches().size(), 1u);
  EXPECT_EQ(
      captured.batches()[0],
      (std::vector<RequestRow>{request("r1", kDec1, "w", {attempt("v4", "flash", 1, 1, 1)})}));
}

// A sink whose first write waits until released.
class BlockingSink final : public Sink {
 public:
  core::Result<void> write(const std::vector<RequestRow>& batch) override {
    std::unique_lock lock(mutex_);
    if (!entered_) {
      entered_ = true;
      entered_promise_.set_value();
      released_.wait(lock, [this] { return release_; });
    }
    rows_ += static_cast<std::int64_t>(batch.size());
    for (const RequestRow& row : batch) ids_.insert(row.request_id);
    return {};
  }
  std::vector<DaySpend> totals() override { return {}; }

  std::future<void> entered() { return entered_promise_.get_future(); }
  void release() {
    {
      std::lock_guard lock(mutex_);
      release_ = true;
    }
    released_.notify_all();
  }
  std::int64_t rows() {
    std::lock_guard lock(mutex_);
    return rows_;
  }
  std::size_t distinct_ids() {
    std::lock_guard lock(mutex_);
    return ids_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  std::promise<void> entered_promise_;
  bool entered_ = false;
  bool release_ = false;
  std::int64_t rows_ = 0;
  std::set<std::string> ids_;
};

// A writer stuck in I/O holds no worker back and loses nothing: the queues grow, the depth
// says by how much, and every row is written once the writer moves again.
TEST(SpendStore, StuckWriterLetsQueuesGrowAndDropsNothing) {
  auto sink = std::make_unique<BlockingSink>();
  BlockingSink& blocking = *sink;
  auto entered = blocking.entered();
  SpendStore store(std::move(sink), {2, {}});
  store.record(request("first", kDec1, "w", {}));
  ASSERT_EQ(entered.wait_for(std::chrono::seconds(10)), std::future_status::ready);

  constexpr int kThreads = 4;
  constexpr int kRows = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < kRows; ++i) {
        store.record(request(std::to_string(t) + "-" + std::to_string(i), kDec1, "w", {}));
      }
    });
  }
  // Every record() returned while the writer is stuck.
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(store.queue_depth(), kThreads * kRows + 1);

  blocking.release();
  ASSERT_TRUE(store.flush().has_value());
  EXPECT_EQ(store.queue_depth(), 0);
  EXPECT_EQ(blocking.rows(), kThreads * kRows + 1);
  EXPECT_EQ(blocking.distinct_ids(), static_cast<std::size_t>(kThreads * kRows + 1));
}

// Fails its first `failures` writes.
class FlakySink final : public Sink {
 public:
  explicit FlakySink(int failures) : failures_(failures) {}
  core::Result<void> write(const std::vector<RequestRow>& batch) override {
    std::lock_guard lock(mutex_);
    if (failures_ > 0) {
      --failures_;
      return core::fail(ErrorCode::kInternal, "ledger: commit: disk I/O error");
    }
    for (const RequestRow& row : batch) ids_.insert(row.request_id);
    return {};
  }
  std::vector<DaySpend> totals() override { return {}; }
  std::multiset<std::string> ids() {
    std::lock_guard lock(mutex_);
    return ids_;
  }

 private:
  std::mutex mutex_;
  int failures_;
  std::multiset<std::string> ids_;
};

TEST(SpendStore, FailedWritesKeepTheRowsForTheNextBatch) {
  auto sink = std::make_unique<FlakySink>(2);
  FlakySink& flaky = *sink;
  SpendStore store(std::move(sink), {kNever, {}});
  store.record(request("r1", kDec1, "w", {}));
  auto first = store.flush();
  ASSERT_FALSE(first.has_value());
  EXPECT_EQ(first.error().code, ErrorCode::kInternal);
  store.record(request("r2", kDec1, "w", {}));
  ASSERT_FALSE(store.flush().has_value());
  EXPECT_EQ(store.queue_depth(), 2);
  ASSERT_TRUE(store.flush().has_value());
  EXPECT_EQ(flaky.ids(), (std::multiset<std::string>{"r1", "r2"}));
  EXPECT_EQ(store.queue_depth(), 0);
}

TEST(SpendStore, WriterReportsAFailureOnceUntilItRecovers) {
  std::mutex mutex;
  std::vector<std::string> reported;
  auto sink = std::make_unique<FlakySink>(3);
  FlakySink& flaky = *sink;
  SpendStore store(std::move(sink), {2, [&](const core::Error& e) {
                                       std::lock_guard lock(mutex);
                                       reported.push_back(e.message);
                                     }});
  store.record(request("r1", kDec1, "w", {}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (flaky.ids().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a bounded poll's pause
  }
  EXPECT_EQ(flaky.ids(), (std::multiset<std::string>{"r1"}));
  std::lock_guard lock(mutex);
  EXPECT_EQ(reported, (std::vector<std::string>{"ledger: commit: disk I/O error"}));
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("backstop_ledger_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string db_path() const { return (dir_ / "ledger.db").string(); }

  // Every row of `sql` as text cells joined by '|', through a connection of its own.
  std::vector<std::string> query(const std::string& sql) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    std::vector<std::string> rows;
    while (statement != nullptr && sqlite3_step(statement) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(statement); ++i) {
        if (i > 0) row += '|';
        const auto* text = sqlite3_column_text(statement, i);
        row += text == nullptr ? "NULL" : reinterpret_cast<const char*>(text);
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return rows;
  }

  void exec(const std::string& sql) const {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  std::filesystem::path dir_;
};

TEST_F(SqliteStoreTest, OneRequestRowAndOneRowPerAttempt) {
  auto store = make_sqlite_store(db_path(), {kNever, {}});
  ASSERT_TRUE(store.has_value()) << store.error().message;
  RequestRow fallback{"req-1", kDec1, 1234, "agentic", "", "fallback", "claude", {}};
  fallback.attempts.push_back({"v4", "deepseek-v4-flash", "schema", 200, 1000, 200, 100, 168, 41});
  fallback.attempts.push_back({"claude", "claude-sonnet-4-5", "", 200, 1234, 0, 567, 12'207, 1190});
  (*store)->record(fallback);
  (*store)->record({"req-2", kDec2, 3, "", "", "rejected", "", {}});
  auto flushed = (*store)->flush();
  ASSERT_TRUE(flushed.has_value()) << flushed.error().message;

  EXPECT_EQ(query("SELECT request_id, unix_ms, day, workload, key_name, outcome, served_by, "
                  "duration_ms, cost_micro_usd FROM requests ORDER BY unix_ms"),
            (std::vector<std::string>{
                "req-1|1796112000000|2026-12-01|agentic||fallback|claude|1234|12375",
                "req-2|1796198400000|2026-12-02|||rejected||3|0"}));
  EXPECT_EQ(
      query("SELECT r.request_id, a.attempt, a.provider, a.model, a.reason, a.status, "
            "a.input_tokens, a.cached_input_tokens, a.output_tokens, a.cost_micro_usd, "
            "a.latency_ms FROM attempts a JOIN requests r ON r.id = a.request "
            "ORDER BY a.request, a.attempt"),
      (std::vector<std::string>{"req-1|0|v4|deepseek-v4-flash|schema|200|1000|200|100|168|41",
                                "req-1|1|claude|claude-sonnet-4-5||200|1234|0|567|12207|1190"}));
}

TEST_F(SqliteStoreTest, TotalsSurviveReopenAndAddUp) {
  const std::vector<DaySpend> expected{
      {"2026-12-01", "agentic", "claude", "sonnet", 1, 1234, 0, 567, 12'207},
      {"2026-12-01", "agentic", "v4", "flash", 2, 300, 6, 30, 50},
      {"2026-12-02", "docs-qa", "v4", "flash", 1, 10, 0, 1, 5},
  };
  {
    auto store = make_sqlite_store(db_path(), {kNever, {}});
    ASSERT_TRUE(store.has_value()) << store.error().message;
    (*store)->record(request(
        "a", kDec1, "agentic",
        {attempt("v4", "flash", 100, 10, 20, 5), attempt("claude", "sonnet", 1234, 567, 12'207)}));
    ASSERT_TRUE((*store)->flush().has_value());
    (*store)->record(request("b", kDec1 + 5, "agentic", {attempt("v4", "flash", 200, 20, 30, 1)}));
    (*store)->record(request("c", kDec2, "docs-qa", {attempt("v4", "flash", 10, 1, 5)}));
    EXPECT_EQ((*store)->totals(), expected);
  }
  auto reopened = make_sqlite_store(db_path(), {kNever, {}});
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  EXPECT_EQ((*reopened)->totals(), expected);
}

TEST_F(SqliteStoreTest, DestructorWritesWhatIsQueued) {
  {
    auto store = make_sqlite_store(db_path(), {kNever, {}});
    ASSERT_TRUE(store.has_value()) << store.error().message;
    (*store)->record(request("r", kDec1, "w", {attempt("p", "m", 4, 5, 6)}));
  }
  EXPECT_EQ(query("SELECT request_id, cost_micro_usd FROM requests"),
            (std::vector<std::string>{"r|6"}));
}

TEST_F(SqliteStoreTest, UsesWalJournal) {
  auto store = make_sqlite_store(db_path());
  ASSERT_TRUE(store.has_value()) << store.error().message;
  EXPECT_EQ(query("PRAGMA journal_mode"), (std::vector<std::string>{"wal"}));
}

TEST_F(SqliteStoreTest, FailedWriteKeepsTheRowsInTotals) {
  auto store = make_sqlite_store(db_path(), {kNever, {}});
  ASSERT_TRUE(store.has_value()) << store.error().message;
  // Another connection drops a table, so the store's insert fails.
  exec("DROP TABLE attempts");
  (*store)->record(request("r", kDec1, "w", {attempt("p", "m", 1, 1, 1)}));
  auto flushed = (*store)->flush();
  ASSERT_FALSE(flushed.has_value());
  EXPECT_EQ(flushed.error().code, ErrorCode::kInternal);
  EXPECT_EQ(flushed.error().message, "ledger: insert attempt: no such table: attempts");
  EXPECT_EQ((*store)->queue_depth(), 1);
  EXPECT_EQ((*store)->totals(),
            (std::vector<DaySpend>{{"2026-12-01", "w", "p", "m", 1, 1, 0, 1, 1}}));
  // The batch was rolled back whole: not even the request row is in the file.
  EXPECT_EQ(query("SELECT count(*) FROM requests"), (std::vector<std::string>{"0"}));
}

TEST_F(SqliteStoreTest, OldSpendTableIsRefusedNamingTheFile) {
  exec(
      "CREATE TABLE spend (day TEXT, workload TEXT, provider TEXT, model TEXT, requests "
      "INTEGER, input_tokens INTEGER, cached_input_tokens INTEGER, output_tokens INTEGER, "
      "cost_micro_usd INTEGER)");
  auto store = make_sqlite_store(db_path());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store.error().message,
            "ledger \"" + db_path() +
                "\": holds the ledger of an earlier backstop (table spend: daily totals, no rows "
                "per request); move it aside or set ledger.path to a new file");
}

TEST_F(SqliteStoreTest, OtherSchemaVersionIsRefused) {
  exec("PRAGMA user_version = 7");
  auto store = make_sqlite_store(db_path());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().message, "ledger \"" + db_path() +
                                       "\": has ledger schema version 7, this backstop writes "
                                       "version 2");
}

TEST_F(SqliteStoreTest, ForeignTablesNamedLikeOursAreRefused) {
  exec("CREATE TABLE requests (x INTEGER)");
  auto store = make_sqlite_store(db_path());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().message, "ledger \"" + db_path() +
                                       "\": has tables requests or attempts that backstop did "
                                       "not create");
}

TEST_F(SqliteStoreTest, MissingDirectoryIsInvalidArgument) {
  const std::string path = (dir_ / "missing" / "ledger.db").string();
  auto store = make_sqlite_store(path);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store.error().message, "ledger \"" + path + "\": unable to open database file");
}

}  // namespace
}  // namespace backstop::ledger
