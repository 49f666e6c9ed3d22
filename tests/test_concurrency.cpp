// One model, many sessions, many threads: sessions of one loaded model run on several threads at
// once give bit for bit the logits they give one after another, and callers on several threads
// share the thread pool without deadlock or mixed-up work. Also run under ThreadSanitizer
// (make tsan-test).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <latch>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "engine/memory_config.h"
#include "engine/session.h"
#include "kernels/scratch.h"
#include "memory/block_index.h"
#include "model/model.h"
#include "support/paths.h"
#include "support/tiny_model.h"

namespace lc {
namespace {

constexpr int kSessions = 4;
constexpr int kPrefillCalls = 6;  // eval() calls of the prompt, each several forward steps
constexpr int kDecodeSteps = 16;

// Restores the default thread count after each test.
class Concurrency : public ::testing::Test {
 protected:
  void TearDown() override { set_num_threads(0); }
};

// Waits for every future up to a deadline; a caller stuck in the pool fails the test (and ends
// the process, since its threads cannot be joined).
template <typename T>
void wait_all_or_die(std::vector<std::future<T>>& fs, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (auto& f : fs)
    if (f.wait_until(deadline) != std::future_status::ready) {
      std::fprintf(stderr, "concurrent callers did not finish within %lld s: deadlock?\n",
                   static_cast<long long>(limit.count()));
      std::fflush(stderr);
      std::_Exit(1);
    }
  for (auto& f : fs) f.get();  // rethrows a caller's exception
}

// The four sessions: memory policies, prompts and prefill batches all differ.
SessionOptions session_options(const Model& m, int i) {
  SessionOptions so;
  so.rope = m.rope();
  so.batch = 24 + 8 * i;
  switch (i) {
    case 0:
      so.memory.policy = MemoryPolicy::Full;
      break;
    case 1:
      so.memory.policy = MemoryPolicy::Full;
      so.memory.kv_type = KvType::F16;
      break;
    case 2:
      so.memory.policy = MemoryPolicy::Streaming;
      so.memory.ctx = default_context_memory(256);
      break;
    default:
      so.memory.policy = MemoryPolicy::InfLLM;
      so.memory.ctx = default_context_memory(256);
      break;
  }
  return so;
}

std::vector<int32_t> prompt(const Model& m, int i) {
  std::mt19937 rng(100 + static_cast<unsigned>(i));
  std::uniform_int_distribution<int32_t> tok(0, m.hparams().n_vocab - 1);
  // More than 512 tokens, so decoding takes attention's key-segment path.
  std::vector<int32_t> p(static_cast<size_t>(530 + 23 * i));
  for (auto& t : p) t = tok(rng);
  return p;
}

// What one session does, one call at a time: the prompt in kPrefillCalls pieces, then greedy
// decoding. Every call's logits are recorded.
struct Script {
  Session session;
  std::vector<int32_t> prompt;
  std::vector<std::vector<float>> logits;
  int calls_done = 0;

  Script(std::shared_ptr<const Model> m, SessionOptions so, std::vector<int32_t> p)
      : session(std::move(m), std::move(so)), prompt(std::move(p)) {}

  static int total_calls() { return kPrefillCalls + kDecodeSteps; }

  void next_call() {
    const int c = calls_done++;
    if (c < kPrefillCalls) {
      const int64_t n = static_cast<int64_t>(prompt.size());
      const int64_t b = n * c / kPrefillCalls, e = n * (c + 1) / kPrefillCalls;
      logits.push_back(session.eval(prompt.data() + b, e - b));
      return;
    }
    const std::vector<float>& last = logits.back();
    const int32_t next =
        static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    logits.push_back(session.eval(&next, 1));
  }
};

std::vector<std::unique_ptr<Script>> make_scripts(const std::shared_ptr<const Model>& m) {
  std::vector<std::unique_ptr<Script>> s;
  for (int i = 0; i < kSessions; ++i)
    s.push_back(std::make_unique<Script>(m, session_options(*m, i), prompt(*m, i)));
  return s;
}

void expect_same_logits(Script& seq, const Script& par, int session) {
  ASSERT_EQ(seq.logits.size(), par.logits.size());
  for (size_t c = 0; c < seq.logits.size(); ++c) {
    const auto& a = seq.logits[c];
    const auto& b = par.logits[c];
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
        << "session " << session << " (" << seq.session.memory().name() << "), call " << c;
  }
}

// Runs the four sessions one after another, then the same four on four threads at once (each call
// of each session between two barriers, so every forward step meets the others' in the pool),
// and compares every logit bit for bit.
void sessions_on_threads_match_sequential(const std::shared_ptr<const Model>& m, int threads) {
  set_num_threads(threads);
  auto seq = make_scripts(m);
  for (auto& s : seq)
    for (int c = 0; c < Script::total_calls(); ++c) s->next_call();

  auto par = make_scripts(m);
  std::latch start(kSessions);
  std::barrier step(kSessions);
  std::vector<std::future<void>> fs;
  for (int i = 0; i < kSessions; ++i)
    fs.push_back(std::async(std::launch::async, [&, i] {
      start.arrive_and_wait();
      for (int c = 0; c < Script::total_calls(); ++c) {
        par[static_cast<size_t>(i)]->next_call();
        step.arrive_and_wait();
      }
    }));
  wait_all_or_die(fs, std::chrono::seconds(300));

  for (int i = 0; i < kSessions; ++i)
    expect_same_logits(*seq[static_cast<size_t>(i)], *par[static_cast<size_t>(i)], i);
}

std::shared_ptr<const Model> tiny_q8_model() {
  // Q8_0 weights (quantized activations, panel kernels when prefilling), head_dim 32.
  test::TinyModelSpec spec;
  spec.n_layer = 2;
  spec.n_embd = 128;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  spec.n_ff = 256;
  spec.n_ctx = 256;
  spec.type = TensorType::Q8_0;
  spec.seed = 7;
  const std::string path = test::temp_dir() + "/tiny-q8_0.gguf";
  test::write_tiny_model(spec, path);
  return Model::load(path);
}

TEST_F(Concurrency, FourSessionsOfOneModelOnFourThreadsMatchSequentialBitForBit) {
  auto m = tiny_q8_model();
  for (int threads : {2, 3}) {
    SCOPED_TRACE("pool threads " + std::to_string(threads));
    sessions_on_threads_match_sequential(m, threads);
  }
}

TEST_F(Concurrency, FourSessionsOfStories260KOnFourThreadsMatchSequentialBitForBit) {
  // F32 weights, head_dim 8.
  auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  for (int threads : {2, 3}) {
    SCOPED_TRACE("pool threads " + std::to_string(threads));
    sessions_on_threads_match_sequential(m, threads);
  }
}

TEST_F(Concurrency, WorkspaceBytesCountedAndStableWhileDecoding) {
  // One thread: which worker claims which task (and so grows which slot) is not deterministic.
  set_num_threads(1);
  auto m = tiny_q8_model();
  Script s(m, session_options(*m, 0), prompt(*m, 0));
  EXPECT_EQ(s.session.workspace_bytes(), 0u);
  for (int c = 0; c < kPrefillCalls + 2; ++c) s.next_call();
  const size_t after = s.session.workspace_bytes();
  // At least the activations of a prefill step of `batch` tokens and some kernel scratch.
  const auto& hp = m->hparams();
  EXPECT_GT(after, static_cast<size_t>(s.session.options().batch * hp.n_embd) * sizeof(float));
  // Buffers are reused: more decode steps allocate nothing.
  for (int c = 0; c < 4; ++c) s.next_call();
  EXPECT_EQ(s.session.workspace_bytes(), after);
}

// --- the pool itself, called from several threads at once ---

TEST_F(Concurrency, CallersOnFourThreadsGetAllTheirWorkOnceUnmixed) {
  constexpr int kCallers = 4, kRounds = 200;
  for (int threads : {2, 3, 4}) {
    set_num_threads(threads);
    // What a kernel's per-thread scratch relies on: while a caller's region runs, no two of its
    // chunks share a thread index (busy[caller][index]); index 0 is the caller's own thread, and
    // every other index is always the same worker thread, never a caller. The bookkeeping atomics
    // are relaxed so that they add no ordering the pool itself must provide.
    constexpr auto relaxed = std::memory_order_relaxed;
    std::vector<std::atomic<int>> busy(static_cast<size_t>(kCallers * threads));
    std::vector<std::atomic<std::thread::id>> worker(static_cast<size_t>(threads));
    std::vector<std::thread::id> caller_id(kCallers);
    std::atomic<int> index_clashes{0}, bad_index{0};
    auto enter = [&](int c) {
      const int t = thread_index();
      if (t < 0 || t >= threads) {
        bad_index.fetch_add(1, relaxed);
        return -1;
      }
      const std::thread::id me = std::this_thread::get_id();
      if (t == 0) {
        if (me != caller_id[static_cast<size_t>(c)]) bad_index.fetch_add(1, relaxed);
      } else {
        std::thread::id none;
        if (!worker[static_cast<size_t>(t)].compare_exchange_strong(none, me, relaxed) &&
            none != me)
          bad_index.fetch_add(1, relaxed);
        for (const std::thread::id& id : caller_id)
          if (id == me) bad_index.fetch_add(1, relaxed);
      }
      if (busy[static_cast<size_t>(c * threads + t)].exchange(1, relaxed) != 0)
        index_clashes.fetch_add(1, relaxed);
      return t;
    };
    auto leave = [&](int c, int t) {
      if (t >= 0) busy[static_cast<size_t>(c * threads + t)].store(0, relaxed);
    };

    std::latch start(kCallers);
    std::vector<std::future<int>> fs;
    for (int c = 0; c < kCallers; ++c)
      fs.push_back(std::async(std::launch::async, [&, c] {
        caller_id[static_cast<size_t>(c)] = std::this_thread::get_id();
        start.arrive_and_wait();
        int errors = 0;
        for (int r = 0; r < kRounds; ++r) {
          // parallel_for: every index written once, with this caller's and round's value.
          const int64_t n = 37 + (c * 131 + r * 17) % 300;
          std::vector<int64_t> out(static_cast<size_t>(n), -1);
          std::vector<int> hits(static_cast<size_t>(n), 0);
          parallel_for(n, [&](int64_t b, int64_t e) {
            const int t = enter(c);
            for (int64_t i = b; i < e; ++i) {
              out[static_cast<size_t>(i)] = c * 1000000 + r * 1000 + i;
              ++hits[static_cast<size_t>(i)];
            }
            // A nested region runs on this thread, with its index.
            parallel_for(3, [&](int64_t, int64_t) {
              if (thread_index() != std::max(t, 0)) bad_index.fetch_add(1, relaxed);
            });
            leave(c, t);
          });
          for (int64_t i = 0; i < n; ++i)
            if (out[static_cast<size_t>(i)] != c * 1000000 + r * 1000 + i ||
                hits[static_cast<size_t>(i)] != 1)
              ++errors;

          // parallel_for_tasks: every task once.
          const int n_tasks = 1 + (c * 7 + r) % 40;
          std::vector<int> task_hits(static_cast<size_t>(n_tasks), 0);
          std::vector<int> task_val(static_cast<size_t>(n_tasks), 0);
          parallel_for_tasks(n_tasks, [&](int task, int total) {
            const int t = enter(c);
            if (total != n_tasks) bad_index.fetch_add(1, relaxed);
            ++task_hits[static_cast<size_t>(task)];
            task_val[static_cast<size_t>(task)] = c * 100 + task;
            leave(c, t);
          });
          for (int k = 0; k < n_tasks; ++k)
            if (task_hits[static_cast<size_t>(k)] != 1 ||
                task_val[static_cast<size_t>(k)] != c * 100 + k)
              ++errors;
        }
        if (thread_index() != 0) ++errors;  // outside any region a caller is thread 0
        return errors;
      }));
    std::vector<int> errors;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (auto& f : fs)
      if (f.wait_until(deadline) != std::future_status::ready) {
        std::fprintf(stderr, "pool callers did not finish within 120 s: deadlock?\n");
        std::fflush(stderr);
        std::_Exit(1);
      }
    for (auto& f : fs) errors.push_back(f.get());
    for (int c = 0; c < kCallers; ++c)
      EXPECT_EQ(errors[static_cast<size_t>(c)], 0) << "caller " << c << ", threads " << threads;
    EXPECT_EQ(index_clashes.load(), 0) << "threads " << threads;
    EXPECT_EQ(bad_index.load(), 0) << "threads " << threads;
  }
}

TEST_F(Concurrency, KernelScratchHasASlotPerPoolThread) {
  set_num_threads(3);
  KernelScratch ks;
  EXPECT_EQ(ks.slots(), 0);
  EXPECT_EQ(ks.bytes(), 0u);
  ks.prepare();
  EXPECT_EQ(ks.slots(), 3);
  std::vector<std::atomic<ThreadScratch*>> seen(3);
  parallel_for_tasks(30, [&](int, int) {
    ThreadScratch* s = &ks.slot();
    seen[static_cast<size_t>(thread_index())].store(s);
  });
  for (int i = 0; i < 3; ++i) {
    ThreadScratch* s = seen[static_cast<size_t>(i)].load();
    if (s == nullptr) continue;  // a worker that did not wake in time ran no task
    for (int j = i + 1; j < 3; ++j) EXPECT_NE(s, seen[static_cast<size_t>(j)].load());
  }
  if (seen[0].load() != nullptr) {
    EXPECT_EQ(&ks.slot(), seen[0].load());  // the caller: slot 0 inside and outside regions
  }
  ks.slot().scores.resize(1000);
  EXPECT_GE(ks.bytes(), 1000 * sizeof(float));
}

// The index search's two lanes pin pages of one store from two pool threads, pages spilling to
// disk and read back: on two threads the results equal those on one, search after search.
TEST_F(Concurrency, IndexSearchLanesOnTwoThreadsMatchOneThread) {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t dim = 32, n = 6000, k = 8;
  std::vector<float> data(static_cast<size_t>(n * dim));
  std::vector<float> centre(static_cast<size_t>(dim));
  for (int64_t b = 0; b < n; ++b) {
    if (b % 40 == 0)
      for (float& x : centre) x = nd(rng);
    for (int64_t e = 0; e < dim; ++e)
      data[static_cast<size_t>(b * dim + e)] = centre[static_cast<size_t>(e)] + 0.3f * nd(rng);
  }
  BlockIndexOptions io;
  io.dim = dim;
  io.max_clusters = 64;
  io.max_scored = 256;
  io.pages.mem_budget = 16 << 10;  // most pages on disk: every search reads some back
  BlockIndex idx(io);
  for (int64_t b = 0; b < n; ++b) idx.add(data.data() + b * dim);
  std::vector<std::vector<int64_t>> one, two;
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < 40; ++i) {
    std::vector<float> q(static_cast<size_t>(dim));
    const int64_t near = static_cast<int64_t>(rng() % static_cast<unsigned>(n));
    for (int64_t e = 0; e < dim; ++e)
      q[static_cast<size_t>(e)] = data[static_cast<size_t>(near * dim + e)] + 0.5f * nd(rng);
    queries.push_back(q);
  }
  set_num_threads(1);
  for (const auto& q : queries) one.push_back(idx.top_k(q.data(), k));
  set_num_threads(2);
  for (const auto& q : queries) two.push_back(idx.top_k(q.data(), k));
  EXPECT_EQ(one, two);
  EXPECT_GT(idx.page_store().reads_from_disk(), 0);
}

}  // namespace
}  // namespace lc
