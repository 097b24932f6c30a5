// The store's queues and its writer thread.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iterator>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/spend_table.h"

namespace backstop::ledger {
namespace {

// One recording thread's rows. Its mutex is taken by that thread and by the writer, never
// by another worker. A cache line of its own, so that workers' queues do not share one.
struct alignas(64) Queue {
  std::mutex mutex;
  std::vector<RequestRow> rows;
  std::atomic<std::int64_t> pushed{0};  // rows ever queued here; written under `mutex`
};

// Tells stores apart in each thread's list of its queues (an address could be reused).
std::atomic<std::uint64_t> next_store_id{1};

}  // namespace

struct SpendStore::Impl {
  Impl(std::unique_ptr<Sink> s, LedgerOptions o) : sink(std::move(s)), options(std::move(o)) {}

  // This thread's queue, registered on its first row.
  Queue& own_queue() {
    // A thread finds its queue without a shared lock; the list grows once per
    // (thread, store), and an entry of a destroyed store never matches again.
    thread_local std::vector<std::pair<std::uint64_t, Queue*>> mine;
    for (const auto& [store, queue] : mine) {
      if (store == id) return *queue;
    }
    std::lock_guard lock(queues_mutex);
    queues.push_back(std::make_unique<Queue>());
    mine.emplace_back(id, queues.back().get());
    return *queues.back();
  }

  // Moves every queued row into `pending` and writes it as one batch. Under write_mutex.
  core::Result<void> write_pending() {
    {
      std::lock_guard lock(queues_mutex);
      for (const auto& queue : queues) {
        {
          std::lock_guard queue_lock(queue->mutex);
          if (queue->rows.empty()) continue;
          // The spare vector goes back with its capacity, so the worker rarely reallocates.
          std::swap(queue->rows, spare);
        }
        std::move(spare.begin(), spare.end(), std::back_inserter(pending));
        spare.clear();
      }
    }
    if (pending.empty()) return {};
    auto result = sink->write(pending);
    if (!result) return result;
    written.fetch_add(static_cast<std::int64_t>(pending.size()), std::memory_order_release);
    pending.clear();
    return {};
  }

  // The writer thread: a batch every quarter of flush_ms, so that a row waits at most
  // flush_ms for its commit as long as the writer gets through a batch in the rest of it.
  void run() {
    const auto interval =
        std::chrono::milliseconds(std::max<std::int64_t>(1, options.flush_ms / 4));
    bool failing = false;
    std::unique_lock wake_lock(wake_mutex);
    while (!wake.wait_for(wake_lock, interval, [this] { return stopping; })) {
      wake_lock.unlock();
      core::Result<void> result;
      {
        std::lock_guard lock(write_mutex);
        result = write_pending();
      }
      if (!result && !failing && options.on_write_error) options.on_write_error(result.error());
      failing = !result;
      wake_lock.lock();
    }
  }

  const std::uint64_t id = next_store_id.fetch_add(1);
  std::unique_ptr<Sink> sink;
  LedgerOptions options;

  std::mutex queues_mutex;  // the list of queues: a thread's first row, the writer, scrapes
  std::vector<std::unique_ptr<Queue>> queues;

  std::mutex write_mutex;           // the sink, pending and spare: the writer or a flush() caller
  std::vector<RequestRow> pending;  // drained, not written yet (a failed write keeps them)
  std::vector<RequestRow> spare;
  std::atomic<std::int64_t> written{0};

  std::mutex wake_mutex;
  std::condition_variable wake;
  bool stopping = false;  // under wake_mutex
  std::thread writer;
};

SpendStore::SpendStore(std::unique_ptr<Sink> sink, LedgerOptions options)
    : impl_(std::make_unique<Impl>(std::move(sink), std::move(options))) {
  impl_->writer = std::thread([impl = impl_.get()] { impl->run(); });
}

SpendStore::~SpendStore() {
  {
    std::lock_guard lock(impl_->wake_mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->writer.join();
  // What is still queued is written out; there is nobody left to tell of a failure.
  (void)flush();
}

void SpendStore::record(RequestRow row) {
  Queue& queue = impl_->own_queue();
  std::lock_guard lock(queue.mutex);
  // Counted before it is visible to the writer, so the depth never goes below zero.
  queue.pushed.fetch_add(1, std::memory_order_relaxed);
  queue.rows.push_back(std::move(row));
}

core::Result<void> SpendStore::flush() {
  std::lock_guard lock(impl_->write_mutex);
  return impl_->write_pending();
}

std::vector<DaySpend> SpendStore::totals() {
  std::lock_guard lock(impl_->write_mutex);
  // Rows a failed write left behind are counted from memory.
  (void)impl_->write_pending();
  SpendTable table;
  for (const DaySpend& spend : impl_->sink->totals()) table.add(spend);
  for (const RequestRow& row : impl_->pending) table.add(row);
  return table.to_vector();
}

std::int64_t SpendStore::queue_depth() const {
  // Written first: every row written was pushed before, so the difference is never negative.
  const std::int64_t written = impl_->written.load(std::memory_order_acquire);
  std::int64_t pushed = 0;
  std::lock_guard lock(impl_->queues_mutex);
  for (const auto& queue : impl_->queues) pushed += queue->pushed.load(std::memory_order_relaxed);
  return pushed - written;
}

}  // namespace backstop::ledger
