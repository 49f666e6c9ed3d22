// Persistent pool: n-1 worker threads plus the calling thread.
//
// A parallel region is published by writing the task description and bumping an atomic generation
// counter (under the pool mutex, so sleeping workers cannot miss it). Workers spin on the
// generation for a while (see spin_microseconds) before sleeping on a condition variable. Tasks are
// claimed from an atomic progress word by the caller and whichever workers are awake; the caller
// returns once every task is claimed and no claimed task is still running, without waiting for
// workers that have not woken up yet (a descheduled worker costs the region nothing; see
// ThreadPool::run for why this is safe).
#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.h"

namespace lc {
namespace {

// Depth of parallel regions the current thread is executing inside (workers: always >= 1).
thread_local int t_region_depth = 0;
// Index of the current thread in the pool (see thread_index()); set once by each worker.
thread_local int t_thread_index = 0;

struct DepthGuard {
  DepthGuard() { ++t_region_depth; }
  ~DepthGuard() { --t_region_depth; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
};

// How long an idle thread spins for new work before it sleeps, in microseconds; LONGCTX_SPIN
// overrides it (0: sleep at once). A decode step runs a few hundred short parallel regions; a
// worker that went to sleep between two of them wakes up only after the caller did the region's
// work alone, so threads stay awake across the gaps of a forward pass. While spinning, a thread
// yields the CPU now and then, so that on a machine busy with other work it does not keep a
// runnable thread (of this process or another) waiting.
constexpr long kDefaultSpinUs = 1000;
constexpr int kSpinCheck = 64;   // cpu_relax() calls between two looks at the clock
constexpr int kYieldEvery = 16;  // clock looks between two sched_yield() calls

long spin_microseconds() {
  static const long n = [] {
    const char* env = std::getenv("LONGCTX_SPIN");
    if (env == nullptr || *env == '\0') return kDefaultSpinUs;
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || v < 0 || v > 10000000)
      fail("LONGCTX_SPIN must be a number of microseconds in 0..10000000, got '", env, "'");
    return v;
  }();
  return n;
}

// Spins until done() or spin_us have passed; returns done().
template <typename Done>
bool spin_until(long spin_us, const Done& done) {
  if (done()) return true;
  if (spin_us <= 0) return false;
  const auto t0 = std::chrono::steady_clock::now();
  const auto limit = std::chrono::microseconds(spin_us);
  for (int looks = 1;; ++looks) {
    for (int i = 0; i < kSpinCheck; ++i) {
      cpu_relax();
      if (done()) return true;
    }
    if (std::chrono::steady_clock::now() - t0 >= limit) return done();
    if (looks % kYieldEvery == 0) sched_yield();
  }
}

int default_num_threads() {
  if (const char* env = std::getenv("LONGCTX_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || v <= 0 || v > 4096)
      fail("LONGCTX_THREADS must be a positive integer (at most 4096), got '", env, "'");
    return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(std::min(hc, 4096u));
}

// Progress of the current region in one atomic word: task count (high 32 bits) and next unclaimed
// task (low 32 bits). A claim is a CAS that raises `next` while next < count.
constexpr uint64_t pack(uint32_t n_tasks, uint32_t next) {
  return (static_cast<uint64_t>(n_tasks) << 32) | next;
}
constexpr uint32_t count_of(uint64_t w) { return static_cast<uint32_t>(w >> 32); }
constexpr uint32_t next_of(uint64_t w) { return static_cast<uint32_t>(w); }

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    workers_.reserve(static_cast<size_t>(n_threads_ - 1));
    try {
      for (int i = 0; i < n_threads_ - 1; ++i)
        workers_.emplace_back([this, i] { worker_loop(i + 1); });
    } catch (const std::system_error& e) {
      shut_down();
      fail("could not start ", n_threads_, " threads (", e.what(), "); use fewer threads");
    }
  }

  ~ThreadPool() { shut_down(); }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(task, n_tasks) for all tasks using all threads; the caller participates. Not reentrant:
  // the caller serialises regions.
  //
  // Why the caller may return without waiting for workers that have not woken up yet: a worker
  // raises running_ before it reads the progress word, and reads fn_ only after a successful claim.
  // The caller leaves its claim loop after seeing next == count, which in the word's modification
  // order follows every successful claim, each preceded by that claimer's running_ increment (all
  // seq_cst). So once the caller then sees running_ == 0, every claimed task has finished, and any
  // thread that raises running_ later finds nothing to claim in this region (or claims from a later
  // one, whose fn_ is already published and which cannot end before it lowers running_ again).
  void run(int n_tasks, const std::function<void(int, int)>& fn) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      error_ = nullptr;
      word_.store(pack(static_cast<uint32_t>(n_tasks), 0));
      generation_.fetch_add(1);
    }
    cv_work_.notify_all();

    {
      DepthGuard depth;
      run_tasks();
    }
    wait_until_idle();

    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

 private:
  void shut_down() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true);
      generation_.fetch_add(1);
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  // Spins briefly, then sleeps on cv_done_ until no worker runs a task of this region.
  void wait_until_idle() {
    if (spin_until(spin_us_, [this] { return running_.load() == 0; })) return;
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [this] { return running_.load() == 0; });
  }

  // Claims and runs tasks until none is left.
  void run_tasks() {
    uint64_t w = word_.load();
    for (;;) {
      const uint32_t n = count_of(w), t = next_of(w);
      if (t >= n) return;
      if (!word_.compare_exchange_weak(w, pack(n, t + 1))) continue;  // w reloaded
      try {
        (*fn_)(static_cast<int>(t), static_cast<int>(n));
      } catch (...) {
        {
          std::lock_guard<std::mutex> lk(error_mu_);
          if (!error_) error_ = std::current_exception();
        }
        // Skip the tasks not yet claimed (the region cannot change while this thread runs in it).
        uint64_t cur = word_.load();
        while (next_of(cur) < count_of(cur) &&
               !word_.compare_exchange_weak(cur, pack(count_of(cur), count_of(cur)))) {
        }
      }
      w = word_.load();
    }
  }

  void worker_loop(int index) {
    ++t_region_depth;  // anything a worker runs is inside a region
    t_thread_index = index;
    uint64_t seen = 0;
    for (;;) {
      uint64_t g = seen;
      spin_until(spin_us_, [&] { return (g = generation_.load()) != seen; });
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_work_.wait(lk, [&] { return generation_.load() != seen; });
        g = generation_.load();
      }
      seen = g;
      if (stop_.load()) return;
      running_.fetch_add(1);
      run_tasks();
      if (running_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        cv_done_.notify_one();
      }
    }
  }

  const int n_threads_;
  const long spin_us_ = spin_microseconds();
  std::vector<std::thread> workers_;

  std::mutex mu_;
  std::condition_variable cv_work_;  // workers wait for a new generation
  std::condition_variable cv_done_;  // the caller waits for running_ == 0
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> running_{0};  // workers inside run_tasks()
  std::atomic<uint64_t> word_{0};
  const std::function<void(int, int)>* fn_ = nullptr;  // published by the word_ store

  std::mutex error_mu_;
  std::exception_ptr error_;
};

struct Global {
  std::mutex mu;  // serialises parallel regions and pool replacement
  std::unique_ptr<ThreadPool> pool;
  std::atomic<int> n_threads{0};  // 0 until the pool exists

  // Requires mu held.
  ThreadPool& get() {
    if (!pool) {
      pool = std::make_unique<ThreadPool>(default_num_threads());
      n_threads.store(pool->size(), std::memory_order_release);
    }
    return *pool;
  }
};

Global& global() {
  static Global g;
  return g;
}

}  // namespace

bool in_parallel_region() { return t_region_depth > 0; }

int thread_index() { return t_thread_index; }

void set_num_threads(int n) {
  LC_CHECK(!in_parallel_region());
  Global& g = global();
  std::lock_guard<std::mutex> lk(g.mu);
  if (n > 4096) fail("the number of threads must be at most 4096, got ", n);
  int want = n <= 0 ? default_num_threads() : n;
  if (g.pool && g.pool->size() == want) return;
  g.pool.reset();
  g.n_threads.store(0, std::memory_order_release);
  g.pool = std::make_unique<ThreadPool>(want);
  g.n_threads.store(g.pool->size(), std::memory_order_release);
}

int num_threads() {
  Global& g = global();
  int n = g.n_threads.load(std::memory_order_acquire);
  if (n > 0) return n;
  if (in_parallel_region()) return 1;  // cannot happen before a pool exists; be safe anyway
  std::lock_guard<std::mutex> lk(g.mu);
  return g.get().size();
}

void parallel_for_tasks(int n_tasks, const std::function<void(int task, int n_tasks)>& fn) {
  if (n_tasks <= 0) return;
  if (n_tasks == 1 || in_parallel_region()) {
    for (int t = 0; t < n_tasks; ++t) fn(t, n_tasks);
    return;
  }
  Global& g = global();
  std::lock_guard<std::mutex> lk(g.mu);
  ThreadPool& pool = g.get();
  if (pool.size() == 1) {
    DepthGuard depth;
    for (int t = 0; t < n_tasks; ++t) fn(t, n_tasks);
    return;
  }
  pool.run(n_tasks, fn);
}

void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn) {
  if (n <= 0) return;
  if (n == 1 || in_parallel_region()) {
    fn(0, n);
    return;
  }
  Global& g = global();
  std::lock_guard<std::mutex> lk(g.mu);
  ThreadPool& pool = g.get();
  const int k = static_cast<int>(std::min<int64_t>(n, pool.size()));
  if (k == 1) {
    DepthGuard depth;
    fn(0, n);
    return;
  }
  struct Split {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t base, rem;
  } split{&fn, n / k, n % k};
  // Captures one pointer so the std::function stays in its small buffer (no allocation).
  const Split* s = &split;
  std::function<void(int, int)> chunk = [s](int t, int) {
    const int64_t begin = t * s->base + std::min<int64_t>(t, s->rem);
    const int64_t end = begin + s->base + (t < s->rem ? 1 : 0);
    (*s->fn)(begin, end);
  };
  pool.run(k, chunk);
}

}  // namespace lc
