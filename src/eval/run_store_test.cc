#include "eval/run_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "ledger/ledger.h"

namespace backstop::eval {
namespace {

// A database path in a fresh temporary folder, removed with it.
struct TempDb {
  std::filesystem::path dir;
  std::string path;
  TempDb() {
    dir = std::filesystem::temp_directory_path() /
          ("eval_store_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    path = (dir / "backstop.db").string();
  }
  ~TempDb() { std::filesystem::remove_all(dir); }
};

StoredRun sample(std::string id, std::int64_t unix_ms) {
  StoredRun run;
  run.run = {id, unix_ms, "suite.jsonl", "abc123", "v4-flash", "deepseek", "vllm-0.7.3", 2, 1};
  run.cases.push_back({"a", "agentic", "pass", "", "", 10, 2, 5, 17, 40, 1});
  run.cases.push_back(
      {"b", "qa", "fail", "schema", "content: /x must be a string", 11, 0, 6, 23, 50, 2});
  return run;
}

TEST(RunStoreTest, ASavedRunReadsBackWithItsCasesInOrder) {
  TempDb db;
  const StoredRun run = sample("r1", 1000);
  ASSERT_TRUE(save_run(db.path, run));
  auto loaded = load_run(db.path, "r1");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->run, run.run);
  EXPECT_EQ(loaded->cases, run.cases);
}

TEST(RunStoreTest, RunsAreListedOldestFirst) {
  TempDb db;
  ASSERT_TRUE(save_run(db.path, sample("late", 2000)));
  ASSERT_TRUE(save_run(db.path, sample("early", 1000)));
  auto runs = list_runs(db.path);
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].id, "early");
  EXPECT_EQ((*runs)[1].id, "late");
}

TEST(RunStoreTest, AMissingFileOrRunIsNotFound) {
  TempDb db;
  EXPECT_EQ(list_runs(db.path).error().code, core::ErrorCode::kNotFound);
  ASSERT_TRUE(save_run(db.path, sample("r1", 1000)));
  EXPECT_EQ(load_run(db.path, "r2").error().code, core::ErrorCode::kNotFound);
}

TEST(RunStoreTest, RunsShareTheFileWithTheRequestLedgerEitherWayRound) {
  TempDb db;
  {
    auto sink = ledger::make_sqlite_sink(db.path);
    ASSERT_TRUE(sink) << sink.error().message;
  }
  auto runs = list_runs(db.path);
  ASSERT_TRUE(runs);
  EXPECT_TRUE(runs->empty());
  ASSERT_TRUE(save_run(db.path, sample("r1", 1000)));
  auto again = ledger::make_sqlite_sink(db.path);
  EXPECT_TRUE(again) << again.error().message;

  TempDb fresh;
  ASSERT_TRUE(save_run(fresh.path, sample("r1", 1000)));
  auto sink = ledger::make_sqlite_sink(fresh.path);
  EXPECT_TRUE(sink) << sink.error().message;
}

TEST(RunStoreTest, ARunIdIsItsUtcTimeAndFourHexDigits) {
  EXPECT_EQ(make_run_id(1'764'547'200'000, 0x123f2a), "20251201-000000-3f2a");
  EXPECT_EQ(make_run_id(1'764'547'261'999, 7), "20251201-000101-0007");
}

}  // namespace
}  // namespace backstop::eval
