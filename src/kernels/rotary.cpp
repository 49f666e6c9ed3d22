#include "kernels/rotary.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace lc {

void rope_cos_sin(const RopeTable& t, double pos, float* cos_out, float* sin_out) {
  const int half = t.dim / 2;
  const bool start = pos < static_cast<double>(t.n_hat);
  const float* inv = start ? t.start_inv_freq.data() : t.inv_freq.data();
  const float m = start ? t.start_attn_factor : t.attn_factor;
  for (int i = 0; i < half; ++i) {
    const double a = pos * static_cast<double>(inv[i]);
    cos_out[i] = static_cast<float>(std::cos(a)) * m;
    sin_out[i] = static_cast<float>(std::sin(a)) * m;
  }
}

float rope_attn_factor_at(const RopeTable& t, double pos) {
  return pos < static_cast<double>(t.n_hat) ? t.start_attn_factor : t.attn_factor;
}

RopeTable rope_delta(const RopeTable& from, const RopeTable& to) {
  LC_CHECK(from.inv_freq.size() == to.inv_freq.size() && from.n_hat == to.n_hat &&
           from.start_inv_freq.size() == to.start_inv_freq.size());
  RopeTable d = to;
  for (size_t i = 0; i < d.inv_freq.size(); ++i) d.inv_freq[i] -= from.inv_freq[i];
  for (size_t i = 0; i < d.start_inv_freq.size(); ++i)
    d.start_inv_freq[i] -= from.start_inv_freq[i];
  d.attn_factor = to.attn_factor / from.attn_factor;
  d.start_attn_factor = to.start_attn_factor / from.start_attn_factor;
  return d;
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
  LC_CHECK(t.n_hat <= 0 || static_cast<int64_t>(t.start_inv_freq.size()) == t.dim / 2);
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

void RopeAngles::fill(const RopeTable& t, int64_t pos0_, int64_t n_) {
  if (n_ == n && pos0_ == pos0 && t == table) return;
  const int64_t half = t.dim / 2;
  table = t;
  pos0 = pos0_;
  n = n_;
  cs.resize(static_cast<size_t>(n * half));
  sn.resize(static_cast<size_t>(n * half));
  for (int64_t i = 0; i < n; ++i)
    rope_cos_sin(t, static_cast<double>(pos0 + i), cs.data() + i * half, sn.data() + i * half);
}

void rope_apply(const RopeAngles& a, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
                int64_t head_dim) {
  const RopeTable& t = a.table;
  LC_CHECK(t.dim <= head_dim && t.dim % 2 == 0 && n_tok <= a.n);
  const int64_t half = t.dim / 2;
  auto run = [&](int64_t t0, int64_t t1) {
    for (int64_t tok = t0; tok < t1; ++tok)
      rope_rotate(t, a.cs.data() + tok * half, a.sn.data() + tok * half, x + tok * row_stride,
                  n_heads, head_dim, head_dim);
  };
  constexpr int64_t kParallelMin = 1 << 14;  // rotated elements (as rope_apply above)
  if (n_tok > 1 && n_tok * n_heads * t.dim >= kParallelMin)
    parallel_for(n_tok, run);
  else
    run(0, n_tok);
}

}  // namespace lc
