#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace {

// Restores the default thread count after each test.
class ThreadPoolTest : public ::testing::Test {
 protected:
  void TearDown() override { lc::set_num_threads(0); }
};

TEST_F(ThreadPoolTest, DefaultThreadCountIsPositive) {
  lc::set_num_threads(0);
  EXPECT_GE(lc::num_threads(), 1);
}

TEST_F(ThreadPoolTest, SetNumThreads) {
  lc::set_num_threads(3);
  EXPECT_EQ(lc::num_threads(), 3);
  lc::set_num_threads(1);
  EXPECT_EQ(lc::num_threads(), 1);
}

TEST_F(ThreadPoolTest, TooManyThreadsIsAnError) {
  lc::set_num_threads(2);
  EXPECT_THROW(lc::set_num_threads(100000), lc::Error);
  EXPECT_EQ(lc::num_threads(), 2);
}

TEST_F(ThreadPoolTest, EveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 7, 16}) {
    lc::set_num_threads(threads);
    for (int64_t n : {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 100, 1000, 4097}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> calls{0};
      std::mutex mu;
      std::vector<std::pair<int64_t, int64_t>> ranges;
      lc::parallel_for(n, [&](int64_t b, int64_t e) {
        calls.fetch_add(1);
        {
          std::lock_guard<std::mutex> lk(mu);
          ranges.emplace_back(b, e);
        }
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1)
            << "index " << i << " n=" << n << " threads=" << threads;
      // One non-empty contiguous chunk per thread (or per index when n is smaller).
      const int64_t want_chunks = n <= 0 ? 0 : std::min<int64_t>(n, threads);
      EXPECT_EQ(calls.load(), want_chunks) << "n=" << n << " threads=" << threads;
      std::sort(ranges.begin(), ranges.end());
      int64_t next = 0;
      int64_t min_len = n, max_len = 0;
      for (auto [b, e] : ranges) {
        EXPECT_EQ(b, next);
        EXPECT_LT(b, e);
        min_len = std::min(min_len, e - b);
        max_len = std::max(max_len, e - b);
        next = e;
      }
      EXPECT_EQ(next, std::max<int64_t>(n, 0));
      if (!ranges.empty()) {
        EXPECT_LE(max_len - min_len, 1) << "chunks should be balanced";
      }
    }
  }
}

TEST_F(ThreadPoolTest, TasksEachExactlyOnce) {
  for (int threads : {1, 2, 5}) {
    lc::set_num_threads(threads);
    for (int n_tasks : {0, 1, 2, 9, 64, 333}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
      lc::parallel_for_tasks(n_tasks, [&](int t, int nt) {
        EXPECT_EQ(nt, n_tasks);
        hits[static_cast<size_t>(t)].fetch_add(1);
      });
      for (int t = 0; t < n_tasks; ++t) ASSERT_EQ(hits[static_cast<size_t>(t)].load(), 1);
    }
  }
}

TEST_F(ThreadPoolTest, UsesSeveralThreads) {
  lc::set_num_threads(4);
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> arrived{0};
  // Each chunk waits (bounded) until all 4 chunks are running: they must be on distinct threads.
  lc::parallel_for(4, [&](int64_t, int64_t) {
    {
      std::lock_guard<std::mutex> lk(mu);
      ids.insert(std::this_thread::get_id());
    }
    arrived.fetch_add(1);
    for (int i = 0; i < 2000 && arrived.load() < 4; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_TRUE(ids.count(std::this_thread::get_id())) << "the caller participates";
}

TEST_F(ThreadPoolTest, ExceptionPropagates) {
  for (int threads : {1, 2, 4}) {
    lc::set_num_threads(threads);
    EXPECT_THROW(lc::parallel_for(1000,
                                  [&](int64_t b, int64_t e) {
                                    if (b <= 500 && 500 < e) lc::fail("boom at 500");
                                  }),
                 lc::Error);
    try {
      lc::parallel_for_tasks(16, [&](int t, int) {
        if (t == 11) throw std::runtime_error("task 11 failed");
      });
      ADD_FAILURE() << "expected an exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "task 11 failed");
    }
    // The pool stays usable after an exception.
    std::atomic<int64_t> sum{0};
    lc::parallel_for(100, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
    });
    EXPECT_EQ(sum.load(), 4950);
  }
}

TEST_F(ThreadPoolTest, NestedCallRunsSerially) {
  lc::set_num_threads(4);
  std::atomic<int64_t> total{0};
  std::atomic<int> inner_calls{0};
  lc::parallel_for(8, [&](int64_t b, int64_t e) {
    EXPECT_TRUE(lc::in_parallel_region());
    for (int64_t i = b; i < e; ++i) {
      lc::parallel_for(10, [&](int64_t ib, int64_t ie) {
        inner_calls.fetch_add(1);
        EXPECT_EQ(ib, 0);  // serial: one call over the whole range
        EXPECT_EQ(ie, 10);
        total.fetch_add(ie - ib);
      });
      lc::parallel_for_tasks(3, [&](int, int) { total.fetch_add(1); });
    }
  });
  EXPECT_FALSE(lc::in_parallel_region());
  EXPECT_EQ(inner_calls.load(), 8);
  EXPECT_EQ(total.load(), 8 * 10 + 8 * 3);
}

TEST_F(ThreadPoolTest, ManyRapidCalls) {
  lc::set_num_threads(4);
  std::vector<int64_t> data(257, 0);
  for (int iter = 0; iter < 20000; ++iter) {
    lc::parallel_for(static_cast<int64_t>(data.size()), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) data[static_cast<size_t>(i)] += 1;
    });
  }
  for (int64_t v : data) ASSERT_EQ(v, 20000);
}

TEST_F(ThreadPoolTest, ConcurrentCallersAreSerialised) {
  lc::set_num_threads(3);
  std::atomic<int64_t> sum{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int iter = 0; iter < 500; ++iter)
        lc::parallel_for(64, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(sum.load(), 3 * 500 * 64);
}

TEST_F(ThreadPoolTest, SetNumThreadsInsideRegionIsAnInternalError) {
  lc::set_num_threads(2);
  EXPECT_THROW(lc::parallel_for(2, [&](int64_t, int64_t) { lc::set_num_threads(3); }),
               lc::InternalError);
  EXPECT_EQ(lc::num_threads(), 2);
}

}  // namespace
