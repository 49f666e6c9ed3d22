// One process-wide thread pool, created on first use and kept for the life of the process.
//
// Call sites never see the pool: they say parallel_for(n, fn) and the work is split over the pool's
// threads, the calling thread included.
//
//  - Thread count: LONGCTX_THREADS from the environment if set (a positive integer), otherwise
//    std::thread::hardware_concurrency(). set_num_threads() changes it (and rebuilds the pool).
//  - Blocking: both entry points return only when every chunk/task has finished.
//  - Exceptions: the first exception thrown by fn (on any thread) is captured, chunks/tasks not yet
//    started are skipped, and the exception is rethrown in the caller once all running work ended.
//  - Nesting: a parallel_for/parallel_for_tasks made from inside a chunk or task (on a worker or on
//    the participating caller) runs serially on that thread; it never deadlocks.
//  - Concurrent callers from different threads are serialised: one parallel region at a time.
//  - Thread index: thread_index() tells a running chunk or task which of the pool's threads runs
//    it: 0 for the calling thread (every caller is 0, inside its regions and outside any), and
//    1..num_threads()-1 for the workers, each always the same worker. Since a worker runs one
//    region at a time, the chunks of one caller's regions never share an index while they run,
//    so a caller's per-thread scratch indexed by it (kernels/scratch.h) is never shared.
#pragma once

#include <cstdint>
#include <functional>

namespace lc {

// Sets the total number of threads (the caller counts as one). n <= 0 restores the default
// (LONGCTX_THREADS or hardware_concurrency). n > 4096, or threads that cannot be started:
// lc::Error. Must not be called from inside a parallel region (LC_CHECK).
void set_num_threads(int n);

// The CPU's hint for one round of a spin-wait loop (x86 pause, Arm yield).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Total number of threads parallel work is split over (>= 1).
int num_threads();

// Splits [0, n) into min(n, num_threads()) contiguous, non-empty chunks of near-equal size and
// calls fn(begin, end) once per chunk. n <= 0: no call. n == 1, one thread, or nested: fn(0, n)
// directly.
void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

// Calls fn(task, n_tasks) once for every task in [0, n_tasks); tasks are claimed dynamically by the
// pool's threads (n_tasks may exceed the thread count). n_tasks <= 0: no call. Nested or one
// thread: all tasks run in order on the calling thread.
void parallel_for_tasks(int n_tasks, const std::function<void(int task, int n_tasks)>& fn);

// True while the current thread is executing a chunk or task of a parallel region.
bool in_parallel_region();

// Index of the current thread within the pool: 0 for a caller (inside its region or outside any),
// 1..num_threads()-1 for the worker threads. Always < num_threads() inside a region.
int thread_index();

}  // namespace lc
