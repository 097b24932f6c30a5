#include "ledger/ledger_read.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

namespace backstop::ledger {
namespace {

using core::ErrorCode;

constexpr std::int64_t kDec1 = 1'796'112'000'000;  // 2026-12-01T08:00:00Z
constexpr std::int64_t kDay = 86'400'000;

class LedgerReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("backstop_ledger_read_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string db_path() const { return (dir_ / "ledger.db").string(); }

  // Writes rows through the ledger's own writer.
  void write(const std::vector<RequestRow>& rows) {
    auto store = make_sqlite_store(db_path(), {3'600'000, {}});
    ASSERT_TRUE(store) << store.error().message;
    for (const RequestRow& row : rows) (*store)->record(row);
    ASSERT_TRUE((*store)->flush());
  }

  std::filesystem::path dir_;
};

RequestRow row(std::string id, std::int64_t unix_ms, std::string workload, std::string outcome,
               std::vector<AttemptRow> attempts) {
  return RequestRow{
      std::move(id),      unix_ms, 120, std::move(workload), "k1", std::move(outcome), "claude",
      std::move(attempts)};
}

TEST_F(LedgerReadTest, DaySpendSumsEachWorkloadAndKeyOfThatDayOnly) {
  RequestRow keyless =
      row("d", kDec1 + 3, "agentic", "primary", {{"v4", "v4-flash", "", 200, 1, 0, 1, 40, 5}});
  keyless.key_name = "";
  write(
      {row("a", kDec1, "agentic", "fallback",
           {{"v4", "v4-flash", "invalid_json", 200, 100, 10, 20, 17, 30},
            {"claude", "sonnet", "", 200, 110, 0, 25, 705, 80}}),
       row("b", kDec1 + 2, "agentic", "primary", {{"v4", "v4-flash", "", 200, 1, 0, 1, 3, 5}}),
       keyless,
       row("c", kDec1 + kDay, "agentic", "primary", {{"v4", "v4-flash", "", 200, 5, 0, 6, 2, 9}})});
  auto spend = read_day_spend(db_path(), "2026-12-01");
  ASSERT_TRUE(spend) << spend.error().message;
  EXPECT_EQ(*spend, (std::vector<KeySpend>{{"agentic", "", 40}, {"agentic", "k1", 725}}));
  EXPECT_EQ(read_day_spend((dir_ / "none.db").string(), "2026-12-01").error().code,
            ErrorCode::kNotFound);
}

TEST_F(LedgerReadTest, ReadsBackEveryRequestWithItsAttemptsInOrder) {
  const std::vector<RequestRow> rows = {
      row("a", kDec1, "agentic", "fallback",
          {{"v4", "v4-flash", "invalid_json", 200, 100, 10, 20, 17, 30},
           {"claude", "sonnet", "", 200, 110, 0, 25, 705, 80}}),
      row("b", kDec1 + 1, "", "rejected", {}),
      row("c", kDec1 + kDay, "chat", "primary", {{"v4", "v4-flash", "", 200, 5, 0, 6, 2, 9}}),
  };
  write(rows);
  auto read = read_requests(db_path(), {});
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(*read, rows);
}

TEST_F(LedgerReadTest, KeepsOnlyTheDaysAndWorkloadAsked) {
  write({row("a", kDec1, "agentic", "primary", {}),
         row("b", kDec1 + kDay, "agentic", "primary", {}),
         row("c", kDec1 + kDay, "chat", "primary", {}),
         row("d", kDec1 + 2 * kDay, "agentic", "primary", {})});
  auto read = read_requests(db_path(), {"2026-12-02", "2026-12-02", "agentic", std::nullopt});
  ASSERT_TRUE(read);
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].request_id, "b");
  auto from = read_requests(db_path(), {"2026-12-02", "", std::nullopt, std::nullopt});
  ASSERT_TRUE(from);
  EXPECT_EQ(from->size(), 3u);
}

TEST_F(LedgerReadTest, ProgressIsToldEveryNRequests) {
  std::vector<RequestRow> rows(5, row("r", kDec1, "w", "primary", {}));
  write(rows);
  std::vector<std::int64_t> told;
  auto read = read_requests(
      db_path(), {}, [&](std::int64_t n) { told.push_back(n); }, 2);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->size(), 5u);
  EXPECT_EQ(told, (std::vector<std::int64_t>{2, 4}));
}

TEST_F(LedgerReadTest, AMissingFileIsNotFoundAndIsNotCreated) {
  auto read = read_requests(db_path(), {});
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, ErrorCode::kNotFound);
  EXPECT_NE(read.error().message.find(db_path()), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(db_path()));
}

TEST_F(LedgerReadTest, AnEarlierBackstopsLedgerIsRefusedByName) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE spend (day TEXT)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto read = read_requests(db_path(), {});
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(read.error().message.find("earlier backstop"), std::string::npos);
}

}  // namespace
}  // namespace backstop::ledger
