#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "kernels/quant.h"

namespace lc {

namespace {
constexpr int64_t kParallelMinWork = 1 << 16;
}

void weight_row(const WeightMatrix& w, int64_t r, float* dst) {
  LC_CHECK(r >= 0 && r < w.n_out);
  dequantize_row_ref(w.type, w.row(r), dst, w.n_in);
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  auto rows = [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> buf;
    if (w.type != TensorType::F32) buf.resize(static_cast<size_t>(n_in));
    // Rows in small groups so each dequantized row is reused across all tokens.
    for (int64_t r = r0; r < r1; ++r) {
      const float* wr;
      if (w.type == TensorType::F32) {
        wr = reinterpret_cast<const float*>(w.row(r));
      } else {
        dequantize_row_ref(w.type, w.row(r), buf.data(), n_in);
        wr = buf.data();
      }
      for (int64_t t = 0; t < n_tok; ++t) y[t * n_out + r] = dot_f32(x + t * n_in, wr, n_in);
    }
  };
  // Waking threads costs microseconds: small products run on the calling thread.
  if (n_in * n_out * n_tok < kParallelMinWork)
    rows(0, n_out);
  else
    parallel_for(n_out, rows);
}

}  // namespace lc
