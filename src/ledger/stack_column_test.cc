#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "ledger/ledger.h"
#include "ledger/ledger_read.h"

namespace backstop::ledger {
namespace {

constexpr std::int64_t kDec1 = 1'796'112'000'000;  // 2026-12-01T08:00:00Z

class StackColumnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("backstop_stack_column_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "ledger.db").string(); }

  void write(const RequestRow& row) {
    auto store = make_sqlite_store(path(), {3'600'000, {}});
    ASSERT_TRUE(store) << store.error().message;
    (*store)->record(row);
    ASSERT_TRUE((*store)->flush());
  }

  std::filesystem::path dir_;
};

RequestRow with_stack(std::string stack) {
  RequestRow row{"a", kDec1, 12, "agentic", "", "primary", "v4", {}};
  AttemptRow attempt{"v4", "m", "", 200, 10, 0, 5, 3, 12};
  attempt.stack = std::move(stack);
  row.attempts.push_back(attempt);
  return row;
}

TEST_F(StackColumnTest, AnAttemptsStackIsWrittenAndReadBack) {
  write(with_stack("vllm-0.7.3"));
  auto rows = read_requests(path(), {});
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].attempts[0].stack, "vllm-0.7.3");
}

// The schema of a ledger written before the stack column.
constexpr const char* kOldSchema =
    "CREATE TABLE requests (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, unix_ms INTEGER "
    "NOT NULL, day TEXT NOT NULL, workload TEXT NOT NULL, key_name TEXT NOT NULL, outcome TEXT "
    "NOT NULL, served_by TEXT NOT NULL, duration_ms INTEGER NOT NULL, cost_micro_usd INTEGER NOT "
    "NULL);"
    "CREATE TABLE attempts (request INTEGER NOT NULL REFERENCES requests (id), attempt INTEGER "
    "NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, reason TEXT NOT NULL, status INTEGER "
    "NOT NULL, input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL, "
    "output_tokens INTEGER NOT NULL, cost_micro_usd INTEGER NOT NULL, latency_ms INTEGER NOT "
    "NULL, PRIMARY KEY (request, attempt)) WITHOUT ROWID;"
    "INSERT INTO requests VALUES (1, 'old', 1796112000000, '2026-12-01', 'agentic', '', "
    "'primary', 'v4', 10, 3);"
    "INSERT INTO attempts VALUES (1, 0, 'v4', 'm', '', 200, 10, 0, 5, 3, 10);"
    "PRAGMA user_version = 2;";

TEST_F(StackColumnTest, ALedgerWithoutTheColumnReadsAsUnknownAndGainsItWhenWritten) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, kOldSchema, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto old = read_requests(path(), {});
  ASSERT_TRUE(old) << old.error().message;
  ASSERT_EQ(old->size(), 1u);
  EXPECT_EQ((*old)[0].attempts[0].stack, "");

  write(with_stack("sglang-0.4.6"));
  auto rows = read_requests(path(), {});
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].attempts[0].stack, "");
  EXPECT_EQ((*rows)[1].attempts[0].stack, "sglang-0.4.6");
}

}  // namespace
}  // namespace backstop::ledger
