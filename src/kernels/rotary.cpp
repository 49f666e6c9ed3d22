#include "kernels/rotary.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace lc {

void rope_cos_sin(const RopeTable& t, double pos, float* cos_out, float* sin_out) {
  const int half = t.dim / 2;
  for (int i = 0; i < half; ++i) {
    const double a = pos * static_cast<double>(t.inv_freq[static_cast<size_t>(i)]);
    cos_out[i] = static_cast<float>(std::cos(a)) * t.attn_factor;
    sin_out[i] = static_cast<float>(std::sin(a)) * t.attn_factor;
  }
}

void rope_rotate(const RopeTable& t, const float* cs, const float* sn, float* x, int64_t n_vec,
                 int64_t head_dim, int64_t stride) {
  const int half = t.dim / 2;
  for (int64_t v = 0; v < n_vec; ++v) {
    float* h = x + v * stride;
    if (t.layout == RopeLayout::Adjacent) {
      for (int i = 0; i < half; ++i) {
        const float a = h[2 * i], b = h[2 * i + 1];
        h[2 * i] = a * cs[i] - b * sn[i];
        h[2 * i + 1] = a * sn[i] + b * cs[i];
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float a = h[i], b = h[i + half];
        h[i] = a * cs[i] - b * sn[i];
        h[i + half] = a * sn[i] + b * cs[i];
      }
    }
    (void)head_dim;
  }
}

void rope_apply(const RopeTable& t, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
                int64_t head_dim, int64_t pos0, int64_t pos_step) {
  LC_CHECK(t.dim <= head_dim && t.dim % 2 == 0 &&
           static_cast<int64_t>(t.inv_freq.size()) == t.dim / 2);
  // Each token's angles and rotation are its own: tokens split over the pool (prefill) give the
  // same numbers as one after another.
  // cos / sin of one position on the stack (no allocation per call) unless the rotary dimension
  // is unusually large.
  constexpr int kStackPairs = 256;
  auto run = [&](int64_t t0, int64_t t1) {
    float cs_stack[kStackPairs], sn_stack[kStackPairs];
    std::vector<float> heap;
    float* cs = cs_stack;
    float* sn = sn_stack;
    if (t.dim / 2 > kStackPairs) {
      heap.resize(static_cast<size_t>(t.dim));
      cs = heap.data();
      sn = cs + t.dim / 2;
    }
    for (int64_t tok = t0; tok < t1; ++tok) {
      rope_cos_sin(t, static_cast<double>(pos0 + tok * pos_step), cs, sn);
      rope_rotate(t, cs, sn, x + tok * row_stride, n_heads, head_dim, head_dim);
    }
  };
  constexpr int64_t kParallelMin = 1 << 14;  // rotated elements
  if (n_tok > 1 && n_tok * n_heads * t.dim >= kParallelMin)
    parallel_for(n_tok, run);
  else
    run(0, n_tok);
}

}  // namespace lc
