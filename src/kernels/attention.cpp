#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/quant_blocks.h"

namespace lc {

namespace {

// Keys are processed in tiles of kTile at multiples of kTile; a work item is a block of kQBlock
// queries times one KV head (all the query heads that share it), so every K / V tile is read from
// memory once and then reused from cache by kQBlock x group (query, head) rows.
constexpr int64_t kTile = 128;
constexpr int64_t kQBlock = 8;
constexpr int64_t kParallelMinWork = 1 << 15;
constexpr int64_t kBlockMinQueries = 4;
constexpr int64_t kTransposeMinQueries = 32;
constexpr int64_t kTransposeMaxBytes = int64_t{32} << 20;
// Few queries (decode) against many keys: work items are (KV head, segment of keys) with their own
// partial softmax states, merged afterwards, so that all threads share the keys of every head
// (KV heads alone are too few items, e.g. 3 on 2 threads). The choice depends on the shapes only,
// never on the thread count, so results do not depend on it either.
constexpr int64_t kSplitMaxQueries = 4;
constexpr int64_t kSplitMinKeys = 4 * 128;
constexpr int64_t kSplitSegments = 8;  // per KV head (segments are whole tiles)

// Buffer v with at least n elements (grows only, so reused from call to call).
template <typename T>
T* grown(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

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

// Scores of keys [lo, lo + nt) of KV head hk against the `group` query heads at qg (head_dim
// apart), by the kernel of the span's storage type: s[g * kTile + j], maxima in tmax[g].
void span_scores(const KernelTable& kt, const float* qg, const KvSpan& kv, int64_t lo, int64_t nt,
                 int64_t hk, int64_t group, int64_t hd, float scale, float* s, float* tmax) {
  const int64_t off = lo * kv.stride + hk * hd;  // element offset of the first row's head
  switch (kv.type) {
    case KvType::F32:
      return kt.attn_scores(qg, hd, group, static_cast<const float*>(kv.k) + off, kv.stride, nt, hd,
                            scale, s, kTile, tmax);
    case KvType::F16:
      return kt.attn_scores_f16(qg, hd, group, static_cast<const uint16_t*>(kv.k) + off, kv.stride,
                                nt, hd, scale, s, kTile, tmax);
    case KvType::Q8_0:
      return kt.attn_scores_q8_0(qg, hd, group, static_cast<const BlockQ8_0*>(kv.k) + off / kQK,
                                 kv.stride / kQK, nt, hd, scale, s, kTile, tmax);
  }
}

// acc[g * hd + e] += sum_j p[g * kTile + j] * value (lo + j, head hk)[e] for g < group, j < nt.
void span_accum(const KernelTable& kt, const float* p, const KvSpan& kv, int64_t lo, int64_t nt,
                int64_t hk, int64_t group, int64_t hd, float* acc) {
  const int64_t off = lo * kv.stride + hk * hd;
  switch (kv.type) {
    case KvType::F32:
      return kt.attn_accum(p, kTile, group, static_cast<const float*>(kv.v) + off, kv.stride, nt,
                           hd, acc, hd);
    case KvType::F16:
      return kt.attn_accum_f16(p, kTile, group, static_cast<const uint16_t*>(kv.v) + off, kv.stride,
                               nt, hd, acc, hd);
    case KvType::Q8_0:
      return kt.attn_accum_q8_0(p, kTile, group, static_cast<const BlockQ8_0*>(kv.v) + off / kQK,
                                kv.stride / kQK, nt, hd, acc, hd);
  }
}

// Keys [lo, hi) (inside one tile) for the `group` query heads that share KV head hk, one query
// (qg: its first head of the group); running state of those heads in m[g], l[g], acc[g * hd].
void tile_update(const KernelTable& kt, const float* qg, const KvSpan& kv, int64_t lo, int64_t hi,
                 int64_t hk, int64_t group, int64_t hd, float scale, float* m, double* l,
                 float* acc, float* scores, float* tmax) {
  const int64_t nt = hi - lo;
  span_scores(kt, qg, kv, lo, nt, hk, group, hd, scale, scores, tmax);
  for (int64_t g = 0; g < group; ++g) {
    if (tmax[g] > m[g]) {
      const float c =
          m[g] == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m[g] - tmax[g]);
      float* a = acc + g * hd;
      for (int64_t e = 0; e < hd; ++e) a[e] *= c;
      l[g] *= c;
      m[g] = tmax[g];
    }
    float* sg = scores + g * kTile;
    l[g] += kt.exp_shift(sg, m[g], sg, nt);
  }
  span_accum(kt, scores, kv, lo, nt, hk, group, hd, acc);
}

// The span's keys as f32, transposed per KV head (see block_item), and for an f16 span its
// values as f32 rows (*vf, else null), in buffers of the calling thread's scratch slot that are
// reused from call to call. Pieces of keys are converted in parallel.
// Leading dimension of the transposed keys, and the floats transpose_keys writes. A score tile
// reads one cache line or two of every element's row; an odd number of 16-float lines between
// rows spreads those over all the L1 sets (with a power of two, e.g. 4,096 keys, they would all
// map to one set and evict each other between the tile's passes).
int64_t transposed_ld(const KvSpan& kv) {
  const int64_t lines = (kv.n + 15) / 16;
  return (lines | 1) * 16;
}
int64_t transposed_floats(const KvSpan& kv, const AttnDims& d) {
  return d.n_head_kv * d.head_dim * transposed_ld(kv) +
         (kv.type == KvType::F16 ? kv.n * kv.stride : 0);
}

const float* transpose_keys(const KernelTable& kt, const KvSpan& kv, const AttnDims& d, int64_t ld,
                            const float** vf, KernelScratch& scratch) {
  const int64_t hd = d.head_dim, nkv = d.n_head_kv;
  const bool f16 = kv.type == KvType::F16;
  const int64_t n_k = nkv * hd * ld, n_v = transposed_floats(kv, d) - n_k;
  // One buffer reserved once at the largest size this path takes: it never moves or shrinks, so
  // the allocator never sees a large block freed (which would raise its mapping threshold and
  // leave the KV cache's growing vectors on a fragmented heap); only what a call writes becomes
  // resident.
  std::vector<float>& buf = scratch.slot().keys_t;
  if (buf.capacity() == 0) buf.reserve(static_cast<size_t>(kTransposeMaxBytes) / sizeof(float));
  LC_CHECK(static_cast<size_t>(n_k + n_v) <= buf.capacity());
  float* out = grown(buf, n_k + n_v);
  float* vout = f16 ? out + n_k : nullptr;  // (the workers have buffers of their own)
  *vf = vout;
  constexpr int64_t kPiece = 256;
  const int64_t pieces = (kv.n + kPiece - 1) / kPiece;
  parallel_for(pieces * nkv, [&](int64_t t0, int64_t t1) {
    float* row = grown(scratch.slot().key_row, hd);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t h = t % nkv, j0 = t / nkv * kPiece, j1 = std::min(kv.n, j0 + kPiece);
      float* o = out + h * hd * ld;
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t off = j * kv.stride + h * hd;
        const float* src;
        if (f16) {
          kt.f16_to_f32(static_cast<const uint16_t*>(kv.k) + off, row, hd);
          kt.f16_to_f32(static_cast<const uint16_t*>(kv.v) + off, vout + off, hd);
          src = row;
        } else {
          src = static_cast<const float*>(kv.k) + off;
        }
        for (int64_t e = 0; e < hd; ++e) o[e * ld + j] = src[e];
      }
    }
  });
  return out;
}

// The split path (see kSplitMaxQueries): one work item per segment of keys, each with partial
// states of every head, merged into st in segment order. Inside a segment the keys go by in
// sub-tiles of about kSweepBytes of K and V for all the KV heads, so that the rows are read from
// memory once, as a whole, and the other heads find them in cache.
constexpr int64_t kSweepBytes = 96 << 10;

// Rows [j0, j1) of K and V (contiguous) into L2.
inline void prefetch_rows(const KvSpan& kv, int64_t j0, int64_t j1) {
  if (j1 <= j0) return;
  const int64_t row = static_cast<int64_t>(kv_bytes(kv.type, kv.stride));
  const char* kp = static_cast<const char*>(kv.k) + j0 * row;
  const char* vp = static_cast<const char*>(kv.v) + j0 * row;
  const int64_t bytes = (j1 - j0) * row;
  for (int64_t b = 0; b < bytes; b += 64) {
    __builtin_prefetch(kp + b, 0, 2);
    __builtin_prefetch(vp + b, 0, 2);
  }
}

void accumulate_split(const float* q, int64_t q_stride, const KvSpan& kv, const AttnMask& mask,
                      const AttnDims& d, AttnState& st, KernelScratch& scratch) {
  const int64_t group = d.n_head / d.n_head_kv, hd = d.head_dim, n_q = st.n_q;
  const int64_t seg_len =
      std::max<int64_t>(1, (kv.n + kSplitSegments * kTile - 1) / (kSplitSegments * kTile)) * kTile;
  const int64_t n_seg = (kv.n + seg_len - 1) / seg_len;
  const int64_t row_bytes = 2 * static_cast<int64_t>(kv_bytes(kv.type, d.n_head_kv * hd));
  const int64_t sub = std::clamp<int64_t>(kSweepBytes / row_bytes / 4 * 4, 4, kTile);
  const int64_t rows = n_q * d.n_head;  // state rows of one item
  ThreadScratch& own = scratch.slot();  // the caller's: the partial states, shared by the items
  float* pm = grown(own.part_m, n_seg * rows);
  double* pl = grown(own.part_l, n_seg * rows);
  float* pacc = grown(own.part_acc, n_seg * rows * hd);
  const KernelTable& kt = kernels();
  auto item = [&](int it, int) {
    ThreadScratch& sc = scratch.slot();
    float* scores = grown(sc.scores, group * kTile);
    float* tmax = grown(sc.tmax, group);
    const int64_t s0 = it * seg_len, s1 = std::min(kv.n, s0 + seg_len);
    float* m = pm + it * rows;
    double* l = pl + it * rows;
    float* acc = pacc + it * rows * hd;
    std::fill(m, m + rows, -std::numeric_limits<float>::infinity());
    std::fill(l, l + rows, 0.0);
    std::fill(acc, acc + rows * hd, 0.0f);
    for (int64_t j0 = s0; j0 < s1; j0 += kTile)
      for (int64_t u0 = j0; u0 < std::min(s1, j0 + kTile); u0 += sub) {
        const int64_t u1 = std::min({s1, j0 + kTile, u0 + sub});
        // The next sub-tile's rows into L2 while this one is computed.
        prefetch_rows(kv, u1, std::min(s1, u1 + sub));
        for (int64_t hk = 0; hk < d.n_head_kv; ++hk)
          for (int64_t i = 0; i < n_q; ++i) {
            int64_t lo, hi;
            visible_range(mask, i, kv.n, lo, hi);
            lo = std::max(lo, u0);
            hi = std::min(hi, u1);
            if (lo >= hi) continue;
            const int64_t r = i * d.n_head + hk * group;
            tile_update(kt, q + i * q_stride + hk * group * hd, kv, lo, hi, hk, group, hd, d.scale,
                        m + r, l + r, acc + r * hd, scores, tmax);
          }
      }
  };
  if (n_q * d.n_head * kv.n * hd < kParallelMinWork)
    for (int it = 0; it < static_cast<int>(n_seg); ++it) item(it, static_cast<int>(n_seg));
  else
    parallel_for_tasks(static_cast<int>(n_seg), item);

  for (int64_t t = 0; t < rows; ++t) {
    float* acc = st.acc.data() + t * hd;
    for (int64_t sg = 0; sg < n_seg; ++sg) {
      const size_t r = static_cast<size_t>(sg * rows + t);
      const float m = pm[r];
      if (m == -std::numeric_limits<float>::infinity()) continue;
      if (m > st.m[t]) {
        const float c =
            st.m[t] == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(st.m[t] - m);
        for (int64_t e = 0; e < hd; ++e) acc[e] *= c;
        st.l[t] *= c;
        st.m[t] = m;
      }
      const float f = std::exp(m - st.m[t]);
      st.l[t] += pl[r] * f;
      const float* pa = pacc + static_cast<int64_t>(r) * hd;
      for (int64_t e = 0; e < hd; ++e) acc[e] += f * pa[e];
    }
  }
}

// One (query block, KV head) item with all its rows at once: the kQBlock x group query rows are
// gathered into one matrix and meet each tile of keys in one scores call and one accumulate call,
// with the tile's keys and values converted to f32 once for all of them (f16 spans). Rows whose
// visible range does not cover the tile's union have their other scores set to -inf (exp 0).
// The numbers per (query, head) are those of tile_update, up to the order of float sums.
// kt_all (may be null): the span's keys transposed, KV head h's element e of key j at
// kt_all[(h * head_dim + e) * ld + j]; v_all (may be null): an f16 span's values as f32, laid out
// as the span.
void block_item(const KernelTable& kt, const float* q, int64_t q_stride, const KvSpan& kv,
                const AttnMask& mask, const AttnDims& d, AttnState& st, int64_t qb, int64_t hk,
                const float* kt_all, int64_t ld, const float* v_all, ThreadScratch& sc) {
  const int64_t group = d.n_head / d.n_head_kv, hd = d.head_dim;
  const int64_t i0 = qb * kQBlock, i1 = std::min(st.n_q, i0 + kQBlock), nq = i1 - i0;
  const int64_t rows = nq * group;
  float* qbuf = grown(sc.blk_q, rows * hd);
  float* acc = grown(sc.blk_acc, rows * hd);
  float* sbuf = grown(sc.blk_s, rows * kTile);
  float* mx = grown(sc.blk_mx, rows);
  float* m = grown(sc.blk_m, rows);
  double* l = grown(sc.blk_l, rows);
  int64_t* vlo = grown(sc.blk_lo, nq);
  int64_t* vhi = grown(sc.blk_hi, nq);
  int64_t first = kv.n, last = 0;  // union of the block's visible ranges
  for (int64_t i = 0; i < nq; ++i) {
    visible_range(mask, i0 + i, kv.n, vlo[i], vhi[i]);
    if (vlo[i] >= vhi[i]) continue;
    first = std::min(first, vlo[i]);
    last = std::max(last, vhi[i]);
    for (int64_t g = 0; g < group; ++g) {
      const int64_t r = i * group + g, t = (i0 + i) * d.n_head + hk * group + g;
      std::copy_n(q + (i0 + i) * q_stride + (hk * group + g) * hd, hd, &qbuf[r * hd]);
      std::copy_n(&st.acc[t * hd], hd, &acc[r * hd]);
      m[r] = st.m[t];
      l[r] = st.l[t];
    }
  }
  if (first >= last) return;
  // f16 tiles converted here only when the call did not convert the whole span (kt_all, v_all).
  const bool f16 = kv.type == KvType::F16 && v_all == nullptr;
  float* kbuf = f16 ? grown(sc.blk_k, kTile * hd) : nullptr;
  float* vbuf = f16 ? grown(sc.blk_v, kTile * hd) : nullptr;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t j0 = first / kTile * kTile; j0 < last; j0 += kTile) {
    const int64_t lo = std::max(first, j0), hi = std::min(last, j0 + kTile), nt = hi - lo;
    const float* kp;
    const float* vp;
    int64_t stride;
    const int64_t off = lo * kv.stride + hk * hd;
    if (f16) {
      for (int64_t j = 0; j < nt; ++j) {
        kt.f16_to_f32(static_cast<const uint16_t*>(kv.k) + off + j * kv.stride, &kbuf[j * hd], hd);
        kt.f16_to_f32(static_cast<const uint16_t*>(kv.v) + off + j * kv.stride, &vbuf[j * hd], hd);
      }
      kp = kbuf;
      vp = vbuf;
      stride = hd;
    } else {
      kp = kt_all ? nullptr : static_cast<const float*>(kv.k) + off;
      vp = (v_all ? v_all : static_cast<const float*>(kv.v)) + off;
      stride = kv.stride;
    }
    if (kt_all)
      kt.attn_scores_kt(qbuf, hd, rows, kt_all + hk * hd * ld + lo, ld, nt, hd, d.scale, sbuf,
                        kTile, mx);
    else
      kt.attn_scores(qbuf, hd, rows, kp, stride, nt, hd, d.scale, sbuf, kTile, mx);
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t a = std::max(vlo[i], lo) - lo, b = std::min(vhi[i], hi) - lo;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t r = i * group + g;
        float* sr = &sbuf[r * kTile];
        if (a >= b) {  // nothing visible in this tile: no weight, no change of state
          std::fill(sr, sr + nt, 0.0f);
          continue;
        }
        float tmax = mx[r];
        if (a > 0 || b < nt) {
          std::fill(sr, sr + a, kNegInf);
          std::fill(sr + b, sr + nt, kNegInf);
          tmax = *std::max_element(sr + a, sr + b);
        }
        if (tmax > m[r]) {
          const float c = m[r] == kNegInf ? 0.0f : std::exp(m[r] - tmax);
          float* ar = &acc[r * hd];
          for (int64_t e = 0; e < hd; ++e) ar[e] *= c;
          l[r] *= c;
          m[r] = tmax;
        }
        l[r] += kt.exp_shift(sr, m[r], sr, nt);
      }
    }
    kt.attn_accum(sbuf, kTile, rows, vp, stride, nt, hd, acc, hd);
  }
  for (int64_t i = 0; i < nq; ++i) {
    if (vlo[i] >= vhi[i]) continue;
    for (int64_t g = 0; g < group; ++g) {
      const int64_t r = i * group + g, t = (i0 + i) * d.n_head + hk * group + g;
      std::copy_n(&acc[r * hd], hd, &st.acc[t * hd]);
      st.m[t] = m[r];
      st.l[t] = l[r];
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
                          const AttnDims& d, AttnState& st, KernelScratch& scratch) {
  LC_CHECK(st.n_head == d.n_head && st.head_dim == d.head_dim);
  LC_CHECK(d.n_head % d.n_head_kv == 0);
  if (kv.n <= 0) return;
  if (kv.type == KvType::Q8_0) LC_CHECK(d.head_dim % kQK == 0 && kv.stride % kQK == 0);
  scratch.prepare();
  const int64_t group = d.n_head / d.n_head_kv;
  const int64_t hd = d.head_dim;
  if (st.n_q <= kSplitMaxQueries && kv.n >= kSplitMinKeys) {
    accumulate_split(q, q_stride, kv, mask, d, st, scratch);
    return;
  }
  const int64_t n_qb = (st.n_q + kQBlock - 1) / kQBlock;
  const KernelTable& kt = kernels();
  auto run = [&](int64_t w0, int64_t w1) {
    ThreadScratch& sc = scratch.slot();
    float* scores = grown(sc.scores, group * kTile);
    float* tmax = grown(sc.tmax, group);
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
        for (int64_t hk = hk0; hk < hk1; ++hk) {
          for (int64_t i = i0; i < i1; ++i) {
            int64_t lo, hi;
            visible_range(mask, i, kv.n, lo, hi);
            lo = std::max(lo, j0);
            hi = std::min(hi, j0 + kTile);
            if (lo >= hi) continue;
            const int64_t t0 = i * d.n_head + hk * group;  // state row of the group's first head
            tile_update(kt, q + i * q_stride + hk * group * hd, kv, lo, hi, hk, group, hd, d.scale,
                        st.m.data() + t0, st.l.data() + t0, st.acc.data() + t0 * hd, scores, tmax);
          }
        }
      }
    }
  };
  // Waking threads costs microseconds: small problems run on the calling thread. Otherwise every
  // (query block, KV head) is a task claimed dynamically, the last query blocks first: under a
  // causal mask they see the most keys, and equal contiguous shares would leave the thread with
  // the first queries idle for most of the region.
  const int64_t n_items = n_qb * d.n_head_kv;
  // Blocks of queries meet each tile together (block_item) when there are enough of them to
  // share the tile; q8_0 spans keep the per-query tiles.
  const bool block = st.n_q >= kBlockMinQueries && kv.type != KvType::Q8_0;
  // With enough queries to share them, the keys are transposed once for the whole call (every
  // query block then scores a tile without horizontal sums), while that copy stays small.
  const float* kt_all = nullptr;
  const float* v_all = nullptr;
  int64_t ld = 0;
  if (block && st.n_q >= kTransposeMinQueries &&
      transposed_floats(kv, d) * static_cast<int64_t>(sizeof(float)) <= kTransposeMaxBytes &&
      st.n_q * d.n_head * kv.n * hd >= kParallelMinWork) {
    ld = transposed_ld(kv);
    kt_all = transpose_keys(kt, kv, d, ld, &v_all, scratch);
  }
  if (st.n_q * d.n_head * kv.n * hd < kParallelMinWork)
    run(0, n_items);
  else
    parallel_for_tasks(static_cast<int>(n_items), [&](int t, int) {
      const int64_t it = n_items - 1 - t;
      if (block)
        block_item(kt, q, q_stride, kv, mask, d, st, it / d.n_head_kv, it % d.n_head_kv, kt_all, ld,
                   v_all, scratch.slot());
      else
        run(it, it + 1);
    });
}

void attention_finish(const AttnState& st, float* out, int64_t out_stride) {
  const int64_t hd = st.head_dim;
  // Query i's heads: acc / l.
  auto rows = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t h = 0; h < st.n_head; ++h) {
        const size_t t = static_cast<size_t>(i * st.n_head + h);
        float* o = out + i * out_stride + h * hd;
        const double l = st.l[t];
        const float inv = l > 0 ? static_cast<float>(1.0 / l) : 0.0f;
        const float* acc = st.acc.data() + static_cast<int64_t>(t) * hd;
        for (int64_t e = 0; e < hd; ++e) o[e] = acc[e] * inv;
      }
  };
  if (st.n_q > 1 && st.n_q * st.n_head * hd >= kParallelMinWork)
    parallel_for(st.n_q, rows);
  else
    rows(0, st.n_q);
}

namespace {

// attention_key_mass with the span's keys transposed (kt_all, as in block_item): one work item per
// (tile of keys, KV head) owns those keys' probs entries for the group's heads; the queries come
// by in blocks of kQBlock x group rows, each meeting the tile in one scores call.
void key_mass_tiles(const KernelTable& kt, const float* q, int64_t q_stride, const KvSpan& kv,
                    const AttnMask& mask, const AttnDims& d, const AttnState& st, float* probs,
                    const float* kt_all, int64_t ld, KernelScratch& scratch) {
  const int64_t group = d.n_head / d.n_head_kv, hd = d.head_dim;
  const int64_t n_tiles = (kv.n + kTile - 1) / kTile, n_items = n_tiles * d.n_head_kv;
  parallel_for_tasks(static_cast<int>(n_items), [&](int it, int) {
    const int64_t hk = it % d.n_head_kv, j0 = it / d.n_head_kv * kTile;
    const int64_t nt = std::min(kTile, kv.n - j0);
    ThreadScratch& sc = scratch.slot();
    float* qbuf = grown(sc.mass_q, kQBlock * group * hd);
    float* sbuf = grown(sc.mass_s, kQBlock * group * kTile);
    float* mx = grown(sc.mass_mx, kQBlock * group);
    double* sum = grown(sc.mass_sum, group * kTile);
    std::fill_n(sum, group * kTile, 0.0);
    int64_t lo[kQBlock], hi[kQBlock];
    for (int64_t i0 = 0; i0 < st.n_q; i0 += kQBlock) {
      const int64_t nq = std::min(kQBlock, st.n_q - i0);
      bool any = false;
      for (int64_t i = 0; i < nq; ++i) {
        visible_range(mask, i0 + i, kv.n, lo[i], hi[i]);
        lo[i] = std::max(lo[i], j0) - j0;
        hi[i] = std::min(hi[i], j0 + nt) - j0;
        any = any || lo[i] < hi[i];
      }
      if (!any) continue;
      for (int64_t i = 0; i < nq; ++i)
        std::copy_n(q + (i0 + i) * q_stride + hk * group * hd, group * hd, &qbuf[i * group * hd]);
      kt.attn_scores_kt(qbuf, hd, nq * group, kt_all + hk * hd * ld + j0, ld, nt, hd, d.scale, sbuf,
                        kTile, mx);
      for (int64_t i = 0; i < nq; ++i) {
        if (lo[i] >= hi[i]) continue;
        for (int64_t g = 0; g < group; ++g) {
          const size_t t = static_cast<size_t>((i0 + i) * d.n_head + hk * group + g);
          if (st.l[t] <= 0) continue;
          const double inv = 1.0 / st.l[t];
          float* sr = &sbuf[(i * group + g) * kTile];
          kt.exp_shift(sr + lo[i], st.m[t], sr + lo[i], hi[i] - lo[i]);
          double* sg = &sum[g * kTile];
          for (int64_t j = lo[i]; j < hi[i]; ++j) sg[j] += sr[j] * inv;
        }
      }
    }
    for (int64_t j = 0; j < nt; ++j)
      for (int64_t g = 0; g < group; ++g)
        probs[(j0 + j) * d.n_head + hk * group + g] += static_cast<float>(sum[g * kTile + j]);
  });
}

}  // namespace

void attention_key_mass(const float* q, int64_t q_stride, const KvSpan& kv, const AttnMask& mask,
                        const AttnDims& d, const AttnState& st, float* probs,
                        KernelScratch& scratch) {
  const int64_t group = d.n_head / d.n_head_kv;
  const int64_t hd = d.head_dim;
  if (kv.type == KvType::Q8_0) LC_CHECK(hd % kQK == 0 && kv.stride % kQK == 0);
  const KernelTable& kt = kernels();
  scratch.prepare();
  // Many queries: keys transposed once, items per (tile of keys, KV head) (see attention_accumulate
  // for the conditions).
  if (kv.type != KvType::Q8_0 && st.n_q >= kTransposeMinQueries &&
      transposed_floats(kv, d) * static_cast<int64_t>(sizeof(float)) <= kTransposeMaxBytes &&
      st.n_q * d.n_head * kv.n * hd >= kParallelMinWork) {
    const float* v_all = nullptr;
    const int64_t ld = transposed_ld(kv);
    const float* kt_all = transpose_keys(kt, kv, d, ld, &v_all, scratch);
    key_mass_tiles(kt, q, q_stride, kv, mask, d, st, probs, kt_all, ld, scratch);
    return;
  }
  // Otherwise parallel over KV heads, so that each task owns the probs columns of its query heads.
  parallel_for(d.n_head_kv, [&](int64_t g0, int64_t g1) {
    ThreadScratch& sc = scratch.slot();
    float* scores = grown(sc.scores, group * kTile);
    float* tmax = grown(sc.tmax, group);
    for (int64_t hk = g0; hk < g1; ++hk) {
      for (int64_t i = 0; i < st.n_q; ++i) {
        int64_t lo, hi;
        visible_range(mask, i, kv.n, lo, hi);
        const int64_t t0 = i * d.n_head + hk * group;
        for (int64_t j0 = lo; j0 < hi; j0 += kTile) {
          const int64_t nt = std::min(kTile, hi - j0);
          span_scores(kt, q + i * q_stride + hk * group * hd, kv, j0, nt, hk, group, hd, d.scale,
                      scores, tmax);
          for (int64_t g = 0; g < group; ++g) {
            const size_t t = static_cast<size_t>(t0 + g);
            if (st.l[t] <= 0) continue;
            const double inv = 1.0 / st.l[t];
            float* sg = scores + g * kTile;
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
