// matmul(): prepares the input the kernel table wants (f32 rows, or rows quantized to ActQ8 for
// the integer kernels), then splits the output rows over the thread pool. Types a table has no
// kernel for are dequantized row by row with the reference dequantizer.
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

// Rows [r0, r1) of a type without a direct kernel: dequantize a few rows, dot with every token.
void fallback_rows(const KernelTable& k, const WeightMatrix& w, const float* x, int64_t n_tok,
                   int64_t r0, int64_t r1, float* y) {
  thread_local std::vector<float> buf;
  const int64_t n_in = w.n_in;
  buf.resize(static_cast<size_t>(kFallbackRows * n_in));
  for (int64_t r = r0; r < r1; r += kFallbackRows) {
    const int64_t nr = std::min(kFallbackRows, r1 - r);
    for (int64_t i = 0; i < nr; ++i) dequantize_row_ref(w.type, w.row(r + i), &buf[i * n_in], n_in);
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t i = 0; i < nr; ++i)
        y[t * w.n_out + r + i] = k.dot_f32(x + t * n_in, &buf[i * n_in], n_in);
  }
}

// Activation rows quantized once per call, shared read-only by every thread.
struct ActBuffers {
  std::vector<int8_t> q;
  std::vector<float> d, s;
};

}  // namespace

void weight_row(const WeightMatrix& w, int64_t r, float* dst) {
  LC_CHECK(r >= 0 && r < w.n_out);
  dequantize_row_ref(w.type, w.row(r), dst, w.n_in);
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  if (n_tok <= 0 || n_out <= 0) return;
  const KernelTable& k = kernels();
  bool quantized_input = false;
  const bool direct = k.has_matmul(w.type, &quantized_input);
  const bool big = n_in * n_out * n_tok >= kParallelMinWork;

  ActQ8 act;
  if (direct && quantized_input) {
    LC_CHECK(n_in % kActBlock == 0);
    thread_local ActBuffers tl_buf;
    ActBuffers& buf = tl_buf;  // the caller's buffers, also when workers fill them
    const int64_t nb = n_in / kActBlock;
    buf.q.resize(static_cast<size_t>(n_tok * n_in));
    buf.d.resize(static_cast<size_t>(n_tok * nb));
    buf.s.resize(static_cast<size_t>(n_tok * nb));
    auto quant = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        k.quantize_act(x + t * n_in, n_in, &buf.q[t * n_in], &buf.d[t * nb], &buf.s[t * nb]);
    };
    if (big && n_tok > 1)
      parallel_for(n_tok, quant);
    else
      quant(0, n_tok);
    act = ActQ8{buf.q.data(), buf.d.data(), buf.s.data(), n_in};
  }

  auto rows = [&](int64_t r0, int64_t r1) {
    if (direct)
      k.matmul_rows(w, x, quantized_input ? &act : nullptr, n_tok, r0, r1, y);
    else
      fallback_rows(k, w, x, n_tok, r0, r1, y);
  };
  // Waking threads costs microseconds: small products run on the calling thread.
  if (!big)
    rows(0, n_out);
  else
    parallel_for(n_out, rows);
}

}  // namespace lc
