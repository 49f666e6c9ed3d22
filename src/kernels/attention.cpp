#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"

namespace lc {

namespace {

// Keys are processed in tiles of kTile at multiples of kTile; a work item is a block of kQBlock
// queries times one KV head (all the query heads that share it), so every K / V tile is read from
// memory once and then reused from cache by kQBlock x group (query, head) rows.
constexpr int64_t kTile = 128;
constexpr int64_t kQBlock = 8;
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

// Asks for floats [off, off + n) of the K and V rows of tokens [j0, j1) ahead of use. Token rows
// are often a multiple of 4 KiB apart, and hardware prefetchers do not cross 4 KiB pages.
inline void prefetch_rows(const KvSpan& kv, int64_t j0, int64_t j1, int64_t off, int64_t n) {
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  for (int64_t j = j0; j < j1; ++j) {
    const char* k = reinterpret_cast<const char*>(kv.k + j * kv.stride + off);
    const char* v = reinterpret_cast<const char*>(kv.v + j * kv.stride + off);
    for (int64_t b = 0; b < bytes; b += 64) {
      __builtin_prefetch(k + b, 0, 2);
      __builtin_prefetch(v + b, 0, 2);
    }
  }
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
  const int64_t n_qb = (st.n_q + kQBlock - 1) / kQBlock;
  const KernelTable& kt = kernels();
  auto run = [&](int64_t w0, int64_t w1) {
    std::vector<float> scores(static_cast<size_t>(group * kTile)), tmax(static_cast<size_t>(group));
    // Items w0..w1 are (query block, KV head) pairs, KV heads fastest: per query block, every tile
    // of keys is done for all of this task's KV heads before the next tile, so that the token
    // rows of K and V (all heads side by side) are read close together in time.
    for (int64_t qb = w0 / d.n_head_kv; qb * d.n_head_kv < w1; ++qb) {
      const int64_t hk0 = std::max(w0, qb * d.n_head_kv) - qb * d.n_head_kv;
      const int64_t hk1 = std::min(w1, (qb + 1) * d.n_head_kv) - qb * d.n_head_kv;
      const int64_t i0 = qb * kQBlock, i1 = std::min(st.n_q, i0 + kQBlock);
      int64_t first = kv.n, last = 0;  // union of the block's visible ranges
      for (int64_t i = i0; i < i1; ++i) {
        int64_t lo, hi;
        visible_range(mask, i, kv.n, lo, hi);
        if (lo >= hi) continue;
        first = std::min(first, lo);
        last = std::max(last, hi);
      }
      for (int64_t j0 = first / kTile * kTile; j0 < last; j0 += kTile) {
        prefetch_rows(kv, j0 + kTile, std::min(last, j0 + 2 * kTile), hk0 * hd, (hk1 - hk0) * hd);
        for (int64_t hk = hk0; hk < hk1; ++hk) {
          for (int64_t i = i0; i < i1; ++i) {
            int64_t lo, hi;
            visible_range(mask, i, kv.n, lo, hi);
            lo = std::max(lo, j0);
            hi = std::min(hi, j0 + kTile);
            if (lo >= hi) continue;
            const int64_t nt = hi - lo, off = lo * kv.stride + hk * hd;
            const int64_t t0 = i * d.n_head + hk * group;  // state row of the group's first head
            kt.attn_scores(q + i * q_stride + hk * group * hd, hd, group, kv.k + off, kv.stride, nt,
                           hd, d.scale, scores.data(), kTile, tmax.data());
            for (int64_t g = 0; g < group; ++g) {
              const size_t t = static_cast<size_t>(t0 + g);
              float& m = st.m[t];
              double& l = st.l[t];
              if (tmax[g] > m) {
                const float c =
                    m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m - tmax[g]);
                float* acc = st.acc.data() + (t0 + g) * hd;
                for (int64_t e = 0; e < hd; ++e) acc[e] *= c;
                l *= c;
                m = tmax[g];
              }
              float* sg = scores.data() + g * kTile;
              l += kt.exp_shift(sg, m, sg, nt);
            }
            kt.attn_accum(scores.data(), kTile, group, kv.v + off, kv.stride, nt, hd,
                          st.acc.data() + t0 * hd, hd);
          }
        }
      }
    }
  };
  // Waking threads costs microseconds: small problems run on the calling thread.
  if (st.n_q * d.n_head * kv.n * hd < kParallelMinWork)
    run(0, n_qb * d.n_head_kv);
  else
    parallel_for(n_qb * d.n_head_kv, run);
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
  const KernelTable& kt = kernels();
  // Parallel over KV heads, so that each task owns the probs columns of its query heads.
  parallel_for(d.n_head_kv, [&](int64_t g0, int64_t g1) {
    std::vector<float> scores(static_cast<size_t>(group * kTile)), tmax(static_cast<size_t>(group));
    for (int64_t hk = g0; hk < g1; ++hk) {
      for (int64_t i = 0; i < st.n_q; ++i) {
        int64_t lo, hi;
        visible_range(mask, i, kv.n, lo, hi);
        const int64_t t0 = i * d.n_head + hk * group;
        for (int64_t j0 = lo; j0 < hi; j0 += kTile) {
          const int64_t nt = std::min(kTile, hi - j0), off = j0 * kv.stride + hk * hd;
          kt.attn_scores(q + i * q_stride + hk * group * hd, hd, group, kv.k + off, kv.stride, nt,
                         hd, d.scale, scores.data(), kTile, tmax.data());
          for (int64_t g = 0; g < group; ++g) {
            const size_t t = static_cast<size_t>(t0 + g);
            if (st.l[t] <= 0) continue;
            const double inv = 1.0 / st.l[t];
            float* sg = scores.data() + g * kTile;
            kt.exp_shift(sg, st.m[t], sg, nt);
            for (int64_t j = 0; j < nt; ++j)
              probs[(j0 + j) * d.n_head + t0 % d.n_head + g] += static_cast<float>(sg[j] * inv);
          }
        }
      }
    }
  });
}

}  // namespace lc
