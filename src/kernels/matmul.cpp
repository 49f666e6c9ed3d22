// matmul() / matmul_group(): prepare the input the kernel table wants (f32 rows, rows quantized
// to ActQ8 for the integer kernels, or rows rounded to bf16 for the BF16 dot-product kernels) once,
// then cut the output rows of every matrix into tasks that the pool's threads claim dynamically.
// Types a table has no kernel for are dequantized row by row with the reference dequantizer.
#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/quant.h"

namespace lc {

namespace {

constexpr int64_t kParallelMinWork = 1 << 16;
constexpr int64_t kFallbackRows = 4;  // rows dequantized together, each reused by every token
// Tasks per thread of one region: enough that a thread the OS takes away for a while holds back
// only a small part of the work, few enough that claiming them (one atomic each) costs nothing.
// With many tokens every task reads all the activations again, so tasks are fewer and longer.
constexpr int64_t kTasksPerThreadDecode = 6;
constexpr int64_t kTasksPerThreadBatch = 3;
// Rows of a task are a multiple of the kernels' row tiles (4 rows; panels of 16 for many tokens,
// whose rows must start on a multiple of 16 to get the same numbers however the rows are cut), and
// a task holds at least this much work (weight elements times tokens) so that small matrices are
// not cut finer than useful.
constexpr int64_t kRowAlignDecode = 4, kRowAlignBatch = 16;
constexpr int64_t kMinTaskWork = 1 << 14;
constexpr int kMaxGroup = 8;

// Rows [r0, r1) of a type without a direct kernel: dequantize a few rows, dot with every token.
void fallback_rows(const KernelTable& k, const WeightMatrix& w, const float* x, int64_t n_tok,
                   int64_t r0, int64_t r1, float* y, std::vector<float>& buf) {
  const int64_t n_in = w.n_in;
  if (buf.size() < static_cast<size_t>(kFallbackRows * n_in))
    buf.resize(static_cast<size_t>(kFallbackRows * n_in));
  for (int64_t r = r0; r < r1; r += kFallbackRows) {
    const int64_t nr = std::min(kFallbackRows, r1 - r);
    for (int64_t i = 0; i < nr; ++i) dequantize_row_ref(w.type, w.row(r + i), &buf[i * n_in], n_in);
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t i = 0; i < nr; ++i)
        y[t * w.n_out + r + i] = k.dot_f32(x + t * n_in, &buf[i * n_in], n_in);
  }
}

template <typename T>
void grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

}  // namespace

void weight_row(const WeightMatrix& w, int64_t r, float* dst) {
  LC_CHECK(r >= 0 && r < w.n_out);
  dequantize_row_ref(w.type, w.row(r), dst, w.n_in);
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y,
            KernelScratch& scratch) {
  const WeightMatrix* wp = &w;
  matmul_group(&wp, &y, 1, x, n_tok, scratch);
}

void matmul_group(const WeightMatrix* const* w, float* const* y, int count, const float* x,
                  int64_t n_tok, KernelScratch& scratch) {
  LC_CHECK(count >= 0);
  if (count > kMaxGroup) {
    matmul_group(w, y, kMaxGroup, x, n_tok, scratch);
    matmul_group(w + kMaxGroup, y + kMaxGroup, count - kMaxGroup, x, n_tok, scratch);
    return;
  }
  if (n_tok <= 0 || count == 0) return;
  scratch.prepare();
  ThreadScratch& own = scratch.slot();  // the calling thread's buffers
  const int64_t n_in = w[0]->n_in;
  const KernelTable& k = kernels();
  MatmulInput in[kMaxGroup];
  bool any_q8 = false, any_bf16 = false;
  int64_t work = 0;
  for (int i = 0; i < count; ++i) {
    LC_CHECK(w[i]->n_in == n_in);
    in[i] = k.matmul_input(w[i]->type, n_tok);
    any_q8 = any_q8 || in[i] == MatmulInput::Q8;
    any_bf16 = any_bf16 || in[i] == MatmulInput::Bf16;
    work += w[i]->n_out * n_in * n_tok;
  }
  const bool big = work >= kParallelMinWork;
  // Prepares token rows [t0, t1) of the input in a form that rows of a matrix want.
  auto prepare = [&](auto&& row) {
    if (big && n_tok > 1)
      parallel_for(n_tok, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) row(t);
      });
    else
      for (int64_t t = 0; t < n_tok; ++t) row(t);
  };

  // The caller's buffers, also when workers fill them.
  ActQ8 act;
  if (any_q8) {
    LC_CHECK(n_in % kActBlock == 0);
    const int64_t nb = n_in / kActBlock;
    grow(own.act_q, n_tok * n_in);
    grow(own.act_d, n_tok * nb);
    grow(own.act_s, n_tok * nb);
    int8_t* aq = own.act_q.data();
    float* ad = own.act_d.data();
    float* as = own.act_s.data();
    prepare([&](int64_t t) {
      k.quantize_act(x + t * n_in, n_in, aq + t * n_in, ad + t * nb, as + t * nb);
    });
    act = ActQ8{aq, ad, as, n_in};
  }
  ActBf16 act_b;
  if (any_bf16) {
    const int64_t stride = (n_in + 1) / 2 * 2;
    grow(own.act_b, n_tok * stride);
    uint16_t* ab = own.act_b.data();
    prepare([&](int64_t t) { k.round_bf16(x + t * n_in, n_in, ab + t * stride); });
    act_b = ActBf16{ab, stride};
  }

  // Runs on whichever thread claims the rows, with that thread's buffers.
  auto rows = [&](int i, int64_t r0, int64_t r1) {
    ThreadScratch& sc = scratch.slot();
    if (in[i] != MatmulInput::Fallback)
      k.matmul_rows(*w[i], x, in[i] == MatmulInput::Q8 ? &act : nullptr,
                    in[i] == MatmulInput::Bf16 ? &act_b : nullptr, n_tok, r0, r1, y[i], sc.rows);
    else
      fallback_rows(k, *w[i], x, n_tok, r0, r1, y[i], sc.dequant);
  };
  // Waking threads costs microseconds: small products run on the calling thread.
  const int threads = num_threads();
  if (!big || threads == 1 || in_parallel_region()) {
    for (int i = 0; i < count; ++i) rows(i, 0, w[i]->n_out);
    return;
  }

  // Rows per task: the whole group's rows over n_tasks tasks, rounded up to the
  // row tile, at least kMinTaskWork of work.
  int64_t total_rows = 0;
  for (int i = 0; i < count; ++i) total_rows += w[i]->n_out;
  const int64_t n_tasks = threads * (n_tok == 1 ? kTasksPerThreadDecode : kTasksPerThreadBatch);
  int64_t per = (total_rows + n_tasks - 1) / n_tasks;
  per = std::max(per, (kMinTaskWork + n_in * n_tok - 1) / (n_in * n_tok));
  const int64_t align = n_tok == 1 ? kRowAlignDecode : kRowAlignBatch;
  per = (per + align - 1) / align * align;
  std::vector<MatmulTask>& tasks = own.tasks;
  tasks.clear();
  for (int i = 0; i < count; ++i)
    for (int64_t r = 0; r < w[i]->n_out; r += per)
      tasks.push_back(MatmulTask{i, r, std::min(w[i]->n_out, r + per)});
  const MatmulTask* tk = tasks.data();
  parallel_for_tasks(static_cast<int>(tasks.size()), [&](int t, int) {
    const MatmulTask& task = tk[t];
    rows(task.m, task.r0, task.r1);
  });
}

}  // namespace lc
