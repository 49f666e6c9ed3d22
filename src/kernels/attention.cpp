#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace lc {

namespace {

constexpr int64_t kTile = 128;
constexpr int64_t kParallelMinWork = 1 << 15;

// Visible key range [lo, hi) for query i (complement masks use [0, hi)).
inline void visible_range(const AttnMask& m, int64_t i, int64_t n, int64_t& lo, int64_t& hi) {
  if (m.complement) {
    lo = 0;
    hi = std::min<int64_t>(n, i + m.diag - m.window + 1);
  } else {
    hi = std::min<int64_t>(n, i + m.diag + 1);
    lo = m.window > 0 ? std::max<int64_t>(0, i + m.diag - m.window + 1) : 0;
  }
  if (hi < lo) hi = lo;
}

}  // namespace

void AttnState::reset(int64_t n_q_, int64_t n_head_, int64_t head_dim_) {
  n_q = n_q_;
  n_head = n_head_;
  head_dim = head_dim_;
  const size_t nh = static_cast<size_t>(n_q * n_head);
  m.assign(nh, -std::numeric_limits<float>::infinity());
  l.assign(nh, 0.0);
  acc.assign(nh * static_cast<size_t>(head_dim), 0.0f);
}

void attention_accumulate(const float* q, int64_t q_stride, const KvSpan& kv, const AttnMask& mask,
                          const AttnDims& d, AttnState& st) {
  LC_CHECK(st.n_head == d.n_head && st.head_dim == d.head_dim);
  LC_CHECK(d.n_head % d.n_head_kv == 0);
  if (kv.n <= 0) return;
  const int64_t group = d.n_head / d.n_head_kv;
  const int64_t hd = d.head_dim;
  auto run = [&](int64_t t0, int64_t t1) {
    float scores[kTile];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / d.n_head, h = t % d.n_head, hk = h / group;
      int64_t lo, hi;
      visible_range(mask, i, kv.n, lo, hi);
      if (lo >= hi) continue;
      const float* qi = q + i * q_stride + h * hd;
      float& m = st.m[static_cast<size_t>(t)];
      double& l = st.l[static_cast<size_t>(t)];
      float* acc = st.acc.data() + t * hd;
      for (int64_t j0 = lo; j0 < hi; j0 += kTile) {
        const int64_t nt = std::min(kTile, hi - j0);
        float tmax = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < nt; ++j) {
          scores[j] = dot_f32(qi, kv.k + (j0 + j) * kv.stride + hk * hd, hd) * d.scale;
          tmax = std::max(tmax, scores[j]);
        }
        if (tmax > m) {
          const float c = m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m - tmax);
          for (int64_t e = 0; e < hd; ++e) acc[e] *= c;
          l *= c;
          m = tmax;
        }
        for (int64_t j = 0; j < nt; ++j) {
          const float p = std::exp(scores[j] - m);
          l += p;
          axpy(p, kv.v + (j0 + j) * kv.stride + hk * hd, acc, hd);
        }
      }
    }
  };
  // Waking threads costs microseconds: small problems run on the calling thread.
  if (st.n_q * d.n_head * kv.n * hd < kParallelMinWork)
    run(0, st.n_q * d.n_head);
  else
    parallel_for(st.n_q * d.n_head, run);
}

void attention_finish(const AttnState& st, float* out, int64_t out_stride) {
  const int64_t hd = st.head_dim;
  for (int64_t i = 0; i < st.n_q; ++i)
    for (int64_t h = 0; h < st.n_head; ++h) {
      const size_t t = static_cast<size_t>(i * st.n_head + h);
      float* o = out + i * out_stride + h * hd;
      const double l = st.l[t];
      const float inv = l > 0 ? static_cast<float>(1.0 / l) : 0.0f;
      const float* acc = st.acc.data() + static_cast<int64_t>(t) * hd;
      for (int64_t e = 0; e < hd; ++e) o[e] = acc[e] * inv;
    }
}

void attention_key_mass(const float* q, int64_t q_stride, const KvSpan& kv, const AttnMask& mask,
                        const AttnDims& d, const AttnState& st, float* probs) {
  const int64_t group = d.n_head / d.n_head_kv;
  const int64_t hd = d.head_dim;
  // Parallel over heads so that each task owns its probs column.
  parallel_for(d.n_head, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t hk = h / group;
      for (int64_t i = 0; i < st.n_q; ++i) {
        const size_t t = static_cast<size_t>(i * d.n_head + h);
        if (st.l[t] <= 0) continue;
        int64_t lo, hi;
        visible_range(mask, i, kv.n, lo, hi);
        const float* qi = q + i * q_stride + h * hd;
        const double inv = 1.0 / st.l[t];
        for (int64_t j = lo; j < hi; ++j) {
          const float s = dot_f32(qi, kv.k + j * kv.stride + hk * hd, hd) * d.scale;
          probs[j * d.n_head + h] += static_cast<float>(std::exp(s - st.m[t]) * inv);
        }
      }
    }
  });
}

}  // namespace lc
