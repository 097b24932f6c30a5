#include "ledger/ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

namespace backstop::ledger {

// gtest's printer for failed comparisons (found by ADL, so not in the anonymous namespace).
void PrintTo(const DaySpend& s, std::ostream* os) {
  *os << "{" << s.day << "," << s.workload << "," << s.provider << "," << s.model << ", req "
      << s.requests << ", in " << s.input_tokens << ", cached " << s.cached_input_tokens << ", out "
      << s.output_tokens << ", cost " << s.cost_micro_usd << "}";
}

namespace {

using core::ErrorCode;

constexpr std::int64_t kDec1 = 1'796'112'000'000;  // 2026-12-01T08:00:00Z
constexpr std::int64_t kDec2 = kDec1 + 86'400'000;

chat::Usage usage(std::int64_t input, std::int64_t output, std::int64_t cached = 0) {
  chat::Usage u;
  u.input_tokens = input;
  u.output_tokens = output;
  u.cached_input_tokens = cached;
  return u;
}

SpendRecord spend(std::int64_t unix_ms, std::string workload, std::string provider,
                  std::string model, chat::Usage u, std::int64_t cost) {
  return SpendRecord{unix_ms, std::move(workload), std::move(provider), std::move(model), u, cost};
}

TEST(Cost, MillionInputTokensAtFourteenCents) {
  EXPECT_EQ(cost_micro_usd(usage(1'000'000, 0), Price{140'000, 280'000}), 140'000);
}

TEST(Cost, InputAndOutputAtSonnetPrices) {
  // 1234 * 3 USD/M = 3702 µUSD; 567 * 15 USD/M = 8505 µUSD.
  EXPECT_EQ(cost_micro_usd(usage(1234, 567), Price{3'000'000, 15'000'000}), 12'207);
}

TEST(Cost, RoundsHalfUpOncePerCall) {
  EXPECT_EQ(cost_micro_usd(usage(1, 0), Price{500'000, 0}), 1);
  EXPECT_EQ(cost_micro_usd(usage(1, 0), Price{499'999, 0}), 0);
  // 0.3 + 0.3 µUSD is rounded once, as 0.6 -> 1, not as 0 + 0.
  EXPECT_EQ(cost_micro_usd(usage(1, 1), Price{300'000, 300'000}), 1);
  EXPECT_EQ(cost_micro_usd(usage(3, 0), Price{500'000, 0}), 2);  // 1.5 -> 2
}

TEST(Cost, CachedInputUsesItsPriceOrInput) {
  EXPECT_EQ(cost_micro_usd(usage(0, 0, 1'000'000), Price{3'000'000, 15'000'000}), 3'000'000);
  EXPECT_EQ(cost_micro_usd(usage(0, 0, 1'000'000), Price{3'000'000, 15'000'000, 300'000}), 300'000);
  EXPECT_EQ(cost_micro_usd(usage(0, 0, 1'000'000), Price{3'000'000, 15'000'000, 0}), 0);
}

TEST(Cost, LargeProductsDoNotOverflow) {
  // 10^13 tokens at 10^9 µUSD/M: the product 10^22 exceeds 64 bits, the cost does not.
  EXPECT_EQ(cost_micro_usd(usage(10'000'000'000'000, 0), Price{1'000'000'000, 0}),
            10'000'000'000'000'000);
}

TEST(UtcDay, FormatsTheUtcDate) {
  EXPECT_EQ(utc_day(kDec1), "2026-12-01");
  EXPECT_EQ(utc_day(0), "1970-01-01");
  EXPECT_EQ(utc_day(-1), "1969-12-31");
  EXPECT_EQ(utc_day(1'796'169'599'999), "2026-12-01");  // 23:59:59.999
  EXPECT_EQ(utc_day(1'796'169'600'000), "2026-12-02");
}

TEST(MemoryStore, AggregatesPerDayWorkloadProviderModel) {
  auto store = make_memory_store();
  store->record(spend(kDec2, "agentic", "v4", "flash", usage(10, 1), 5));
  store->record(spend(kDec1, "agentic", "v4", "flash", usage(100, 10, 5), 20));
  store->record(spend(kDec1 + 1000, "agentic", "v4", "flash", usage(200, 20, 1), 30));
  store->record(spend(kDec1, "agentic", "claude", "sonnet", usage(1, 2), 7));
  ASSERT_TRUE(store->flush().has_value());
  EXPECT_EQ(store->totals(), (std::vector<DaySpend>{
                                 {"2026-12-01", "agentic", "claude", "sonnet", 1, 1, 0, 2, 7},
                                 {"2026-12-01", "agentic", "v4", "flash", 2, 300, 6, 30, 50},
                                 {"2026-12-02", "agentic", "v4", "flash", 1, 10, 0, 1, 5},
                             }));
}

// The store keeps the last day's text while the day lasts: a record a millisecond past
// midnight (or before the epoch) must still land on its own day.
TEST(MemoryStore, RecordsAcrossMidnightLandOnTheirDays) {
  auto store = make_memory_store();
  for (std::int64_t at :
       {1'796'169'599'999LL, 1'796'169'600'000LL, 0LL, -1LL, 1'796'169'599'998LL}) {
    store->record(spend(at, "agentic", "v4", "flash", usage(1, 1), 1));
  }
  std::vector<std::string> days;
  for (const DaySpend& row : store->totals())
    days.push_back(row.day + "x" + std::to_string(row.requests));
  EXPECT_EQ(days, (std::vector<std::string>{"1969-12-31x1", "1970-01-01x1", "2026-12-01x2",
                                            "2026-12-02x1"}));
}

TEST(MemoryStore, RecordFromManyThreads) {
  auto store = make_memory_store();
  constexpr int kThreads = 4;
  constexpr int kRecords = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < kRecords; ++i) {
        store->record(spend(kDec1, "w", t % 2 == 0 ? "a" : "b", "m", usage(1, 2), 3));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  constexpr std::int64_t kEach = 2 * kRecords;
  EXPECT_EQ(store->totals(),
            (std::vector<DaySpend>{
                {"2026-12-01", "w", "a", "m", kEach, kEach, 0, 2 * kEach, 3 * kEach},
                {"2026-12-01", "w", "b", "m", kEach, kEach, 0, 2 * kEach, 3 * kEach},
            }));
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

  std::string db_path() const { return (dir_ / "spend.db").string(); }

  std::filesystem::path dir_;
};

TEST_F(SqliteStoreTest, FlushedTotalsSurviveReopen) {
  const std::vector<DaySpend> expected{
      {"2026-12-01", "agentic", "claude", "sonnet", 1, 1234, 0, 567, 12'207},
      {"2026-12-01", "agentic", "v4", "flash", 2, 300, 6, 30, 50},
      {"2026-12-02", "docs-qa", "v4", "flash", 1, 10, 0, 1, 5},
  };
  {
    auto store = make_sqlite_store(db_path());
    ASSERT_TRUE(store.has_value()) << store.error().message;
    (*store)->record(spend(kDec1, "agentic", "v4", "flash", usage(100, 10, 5), 20));
    (*store)->record(spend(kDec1, "agentic", "claude", "sonnet", usage(1234, 567), 12'207));
    ASSERT_TRUE((*store)->flush().has_value());
    // A second flush adds to the rows already written (the UPSERT path).
    (*store)->record(spend(kDec1 + 5, "agentic", "v4", "flash", usage(200, 20, 1), 30));
    (*store)->record(spend(kDec2, "docs-qa", "v4", "flash", usage(10, 1), 5));
    auto flushed = (*store)->flush();
    ASSERT_TRUE(flushed.has_value()) << flushed.error().message;
    EXPECT_EQ((*store)->totals(), expected);
  }
  auto reopened = make_sqlite_store(db_path());
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  EXPECT_EQ((*reopened)->totals(), expected);
}

TEST_F(SqliteStoreTest, TotalsIncludeUnflushedRecords) {
  auto store = make_sqlite_store(db_path());
  ASSERT_TRUE(store.has_value()) << store.error().message;
  (*store)->record(spend(kDec1, "w", "p", "m", usage(1, 1), 1));
  ASSERT_TRUE((*store)->flush().has_value());
  (*store)->record(spend(kDec1, "w", "p", "m", usage(2, 2), 2));
  EXPECT_EQ((*store)->totals(),
            (std::vector<DaySpend>{{"2026-12-01", "w", "p", "m", 2, 3, 0, 3, 3}}));

  // The buffered record is not in the file yet: a second connection sees only the flushed row.
  auto other = make_sqlite_store(db_path());
  ASSERT_TRUE(other.has_value()) << other.error().message;
  EXPECT_EQ((*other)->totals(),
            (std::vector<DaySpend>{{"2026-12-01", "w", "p", "m", 1, 1, 0, 1, 1}}));
}

TEST_F(SqliteStoreTest, DestructorFlushes) {
  {
    auto store = make_sqlite_store(db_path());
    ASSERT_TRUE(store.has_value()) << store.error().message;
    (*store)->record(spend(kDec1, "w", "p", "m", usage(4, 5), 6));
  }
  auto reopened = make_sqlite_store(db_path());
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  EXPECT_EQ((*reopened)->totals(),
            (std::vector<DaySpend>{{"2026-12-01", "w", "p", "m", 1, 4, 0, 5, 6}}));
}

TEST_F(SqliteStoreTest, UsesWalJournal) {
  auto store = make_sqlite_store(db_path());
  ASSERT_TRUE(store.has_value()) << store.error().message;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &statement, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)), "wal");
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, FailedFlushKeepsTheBuffer) {
  auto store = make_sqlite_store(db_path());
  ASSERT_TRUE(store.has_value()) << store.error().message;
  // Another connection drops the table, so the store's UPSERT fails.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE spend", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  (*store)->record(spend(kDec1, "w", "p", "m", usage(1, 1), 1));
  auto flushed = (*store)->flush();
  ASSERT_FALSE(flushed.has_value());
  EXPECT_EQ(flushed.error().code, ErrorCode::kInternal);
  EXPECT_EQ(flushed.error().message, "spend database: upsert: no such table: spend");
  // The record stays buffered for the next flush.
  EXPECT_EQ((*store)->totals(),
            (std::vector<DaySpend>{{"2026-12-01", "w", "p", "m", 1, 1, 0, 1, 1}}));
}

TEST_F(SqliteStoreTest, MissingDirectoryIsInvalidArgument) {
  const std::string path = (dir_ / "missing" / "spend.db").string();
  auto store = make_sqlite_store(path);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store.error().message,
            "cannot open spend database \"" + path + "\": unable to open database file");
}

}  // namespace
}  // namespace backstop::ledger
