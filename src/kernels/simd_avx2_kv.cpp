// AVX2 attention tiles over keys and values stored as F16 or Q8_0 (KvType): rows are converted to
// f32 in registers as they are loaded (F16: VCVTPH2PS; Q8_0: sign-extend, convert, times the
// block's scale; both exact), then used as by the f32 tiles of simd_avx2.cpp (one query head at a
// time, 8 keys per score step). Only reached through the AVX2 table once dispatch.cpp checked the
// CPU.
#include "kernels/simd_kv.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/simd_avx2_util.h"

namespace lc::kv_avx2 {
namespace {

using namespace simd256;  // NOLINT(google-build-using-namespace): the shared helpers

// Row loaders. A row (one head of one key) is `units` units of kW registers of 8 elements:
// load(j, u, out) converts unit u of row j; mask(u) gives the valid lanes of the unit's last
// register (the others are full).
struct F16Rows {
  static constexpr int kW = 1;
  const uint16_t* p;
  int64_t stride, units, tail_n;  // tail_n: elements of the last unit (1..8)
  F16Rows(const uint16_t* p_, int64_t stride_, int64_t hd)
      : p(p_), stride(stride_), units((hd + 7) / 8), tail_n(hd - 8 * ((hd + 7) / 8 - 1)) {}
  LC_TARGET __m256i mask(int64_t u) const {
    return u == units - 1 ? lanes(tail_n) : _mm256_set1_epi32(-1);
  }
  // For loops that take a row's whole units apart from its last, partial one.
  const uint16_t* row(int64_t j) const { return p + j * stride; }
  int64_t whole_units() const { return tail_n == 8 ? units : units - 1; }
  LC_TARGET static __m256 whole(const uint16_t* x, int64_t u) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 8 * u)));
  }
  LC_TARGET void load(int64_t j, int64_t u, __m256* out) const {
    const uint16_t* x = p + j * stride + 8 * u;
    if (u == units - 1 && tail_n < 8) {  // no masked 16-bit loads in AVX2
      alignas(16) uint16_t t[8] = {};
      std::memcpy(t, x, static_cast<size_t>(tail_n) * sizeof(uint16_t));
      out[0] = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
      return;
    }
    out[0] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
  }
};

struct F32Rows {
  static constexpr int kW = 1;
  const float* p;
  int64_t stride, units, tail_n;
  F32Rows(const float* p_, int64_t stride_, int64_t hd)
      : p(p_), stride(stride_), units((hd + 7) / 8), tail_n(hd - 8 * ((hd + 7) / 8 - 1)) {}
  LC_TARGET __m256i mask(int64_t u) const {
    return u == units - 1 ? lanes(tail_n) : _mm256_set1_epi32(-1);
  }
  const float* row(int64_t j) const { return p + j * stride; }
  int64_t whole_units() const { return tail_n == 8 ? units : units - 1; }
  LC_TARGET static __m256 whole(const float* x, int64_t u) { return _mm256_loadu_ps(x + 8 * u); }
  LC_TARGET void load(int64_t j, int64_t u, __m256* out) const {
    const float* x = p + j * stride + 8 * u;
    out[0] =
        u == units - 1 && tail_n < 8 ? _mm256_maskload_ps(x, lanes(tail_n)) : _mm256_loadu_ps(x);
  }
};

struct Q8Rows {
  static constexpr int kW = 4;
  const BlockQ8_0* p;
  int64_t stride, units;
  Q8Rows(const BlockQ8_0* p_, int64_t stride_, int64_t hd)
      : p(p_), stride(stride_), units(hd / kQK) {}
  LC_TARGET __m256i mask(int64_t) const { return _mm256_set1_epi32(-1); }
  LC_TARGET void load(int64_t j, int64_t u, __m256* out) const {
    const BlockQ8_0& b = p[j * stride + u];
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d));
    for (int w = 0; w < 4; ++w) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qs + 8 * w));
      out[w] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    }
  }
};

template <class Rows>
LC_TARGET inline __m256i reg_mask(const Rows& r, int64_t u, int w) {
  return w == Rows::kW - 1 ? r.mask(u) : _mm256_set1_epi32(-1);
}

// One query head against 8 keys at a time (8 accumulators), then one key at a time.
template <class Rows>
LC_TARGET float scores1(const float* q, const Rows& r, int64_t n, float scale, float* s) {
  constexpr int W = Rows::kW;
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc[8];
    for (int jj = 0; jj < 8; ++jj) acc[jj] = _mm256_setzero_ps();
    for (int64_t u = 0; u < r.units; ++u) {
      __m256 qv[W];
      for (int w = 0; w < W; ++w)
        qv[w] = _mm256_maskload_ps(q + 8 * (W * u + w), reg_mask(r, u, w));
      for (int jj = 0; jj < 8; ++jj) {
        __m256 kv[W];
        r.load(j + jj, u, kv);
        for (int w = 0; w < W; ++w) acc[jj] = _mm256_fmadd_ps(qv[w], kv[w], acc[jj]);
      }
    }
    const __m256 res = _mm256_mul_ps(reduce8(acc), vs);
    _mm256_storeu_ps(s + j, res);
    vmax = _mm256_max_ps(vmax, res);
  }
  float mx = hmax(vmax);
  for (; j < n; ++j) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t u = 0; u < r.units; ++u) {
      __m256 kv[W];
      r.load(j, u, kv);
      for (int w = 0; w < W; ++w)
        acc =
            _mm256_fmadd_ps(_mm256_maskload_ps(q + 8 * (W * u + w), reg_mask(r, u, w)), kv[w], acc);
    }
    s[j] = hsum(acc) * scale;
    mx = std::max(mx, s[j]);
  }
  return mx;
}

// G query heads (kW == 1 rows) against 4 keys at a time (reduce4's width): every key register
// loaded serves the G heads (G * 4 accumulators, G query registers). Per (head, key) the same sums
// as scores1.
template <int G, class Rows>
LC_TARGET void scores_group(const float* q, int64_t q_hs, const Rows& r, int64_t n, float scale,
                            float* s, int64_t ns, float* mx) {
  static_assert(Rows::kW == 1);
  constexpr int KJ = 4;
  const __m128 vs = _mm_set1_ps(scale);
  const int64_t uw = r.whole_units();
  int64_t j = 0;
  for (; j + KJ <= n; j += KJ) {
    __m256 acc[G][KJ];
#pragma GCC unroll 16
    for (int h = 0; h < G; ++h)
#pragma GCC unroll 16
      for (int jj = 0; jj < KJ; ++jj) acc[h][jj] = _mm256_setzero_ps();
    decltype(r.row(0)) rows[KJ];
#pragma GCC unroll 16
    for (int jj = 0; jj < KJ; ++jj) rows[jj] = r.row(j + jj);
    for (int64_t u = 0; u < uw; ++u) {
      __m256 qv[G];
#pragma GCC unroll 4
      for (int h = 0; h < G; ++h) qv[h] = _mm256_loadu_ps(q + h * q_hs + 8 * u);
#pragma GCC unroll 16
      for (int jj = 0; jj < KJ; ++jj) {
        const __m256 kv = Rows::whole(rows[jj], u);
#pragma GCC unroll 4
        for (int h = 0; h < G; ++h) acc[h][jj] = _mm256_fmadd_ps(qv[h], kv, acc[h][jj]);
      }
    }
    if (uw < r.units) {  // the partial last unit
      const __m256i m = r.mask(uw);
      __m256 qv[G];
#pragma GCC unroll 4
      for (int h = 0; h < G; ++h) qv[h] = _mm256_maskload_ps(q + h * q_hs + 8 * uw, m);
#pragma GCC unroll 16
      for (int jj = 0; jj < KJ; ++jj) {
        __m256 kv;
        r.load(j + jj, uw, &kv);
#pragma GCC unroll 4
        for (int h = 0; h < G; ++h) acc[h][jj] = _mm256_fmadd_ps(qv[h], kv, acc[h][jj]);
      }
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; ++h) _mm_storeu_ps(s + h * ns + j, _mm_mul_ps(reduce4(acc[h]), vs));
  }
  // The maxima in a pass of their own over the stored scores (keeps the loop above to the
  // accumulators and the query registers).
  for (int h = 0; h < G; ++h) {
    const float* sh = s + h * ns;
    __m256 v8 = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    int64_t k = 0;
    for (; k + 8 <= j; k += 8) v8 = _mm256_max_ps(v8, _mm256_loadu_ps(sh + k));
    float m = hmax(v8);
    for (; k < j; ++k) m = std::max(m, sh[k]);
    for (k = j; k < n; ++k) {  // the last keys one at a time, as scores1 does
      __m256 acc = _mm256_setzero_ps();
      for (int64_t u = 0; u < r.units; ++u) {
        __m256 kv;
        r.load(k, u, &kv);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + h * q_hs + 8 * u, r.mask(u)), kv, acc);
      }
      s[h * ns + k] = hsum(acc) * scale;
      m = std::max(m, s[h * ns + k]);
    }
    mx[h] = m;
  }
}

// U units of one head's acc (from unit u0) in registers while every row goes past.
template <int U, class Rows>
LC_TARGET void accum_units(const float* p, const Rows& r, int64_t u0, int64_t n, float* acc) {
  constexpr int W = Rows::kW * U;
  __m256 a[W];
  __m256i m[W];
  float* base = acc + 8 * Rows::kW * u0;
  for (int i = 0; i < W; ++i) {
    m[i] = reg_mask(r, u0 + i / Rows::kW, i % Rows::kW);
    a[i] = _mm256_maskload_ps(base + 8 * i, m[i]);
  }
  for (int64_t j = 0; j < n; ++j) {
    const __m256 pj = _mm256_set1_ps(p[j]);
    __m256 vv[W];
    for (int u = 0; u < U; ++u) r.load(j, u0 + u, vv + u * Rows::kW);
    for (int i = 0; i < W; ++i) a[i] = _mm256_fmadd_ps(pj, vv[i], a[i]);
  }
  for (int i = 0; i < W; ++i) _mm256_maskstore_ps(base + 8 * i, m[i], a[i]);
}

// Up to 32 dims of acc per pass (4 registers).
template <class Rows>
LC_TARGET void accum1(const float* p, const Rows& r, int64_t n, float* acc) {
  constexpr int64_t per_pass = 4 / Rows::kW;
  for (int64_t u0 = 0; u0 < r.units; u0 += per_pass) {
    if constexpr (per_pass == 1) {
      accum_units<1>(p, r, u0, n, acc);
    } else {
      switch (std::min(per_pass, r.units - u0)) {
        case 1:
          accum_units<1>(p, r, u0, n, acc);
          break;
        case 2:
          accum_units<2>(p, r, u0, n, acc);
          break;
        case 3:
          accum_units<3>(p, r, u0, n, acc);
          break;
        default:
          accum_units<4>(p, r, u0, n, acc);
          break;
      }
    }
  }
}

// Rows of one register per unit (f32, f16): heads in groups of up to 3 that share every key load
// (decode: the query heads of a KV head; blocks of queries: their rows); Q8_0 rows (4 registers
// per unit): one head at a time.
template <class Rows>
LC_TARGET void scores_all(const float* q, int64_t q_hs, int64_t n_heads, const Rows& r, int64_t n,
                          float scale, float* s, int64_t ns, float* mx) {
  if constexpr (Rows::kW == 1) {
    int64_t h = 0;
    for (; h + 3 <= n_heads; h += 3)
      scores_group<3>(q + h * q_hs, q_hs, r, n, scale, s + h * ns, ns, mx + h);
    if (n_heads - h == 2) scores_group<2>(q + h * q_hs, q_hs, r, n, scale, s + h * ns, ns, mx + h);
    if (n_heads - h == 1) mx[h] = scores1(q + h * q_hs, r, n, scale, s + h * ns);
  } else {
    for (int64_t h = 0; h < n_heads; ++h) mx[h] = scores1(q + h * q_hs, r, n, scale, s + h * ns);
  }
}

// H heads x U whole units of acc (from unit u0) in registers while every row goes past: each value
// register loaded serves the H heads. Per (head, element) the same sums as accum_units.
template <int H, int U, class Rows>
LC_TARGET void accum_group(const float* p, int64_t ns, const Rows& r, int64_t u0, int64_t n,
                           float* acc, int64_t acc_hs) {
  __m256 a[H][U];
#pragma GCC unroll 4
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) a[h][u] = _mm256_loadu_ps(acc + h * acc_hs + 8 * (u0 + u));
  for (int64_t j = 0; j < n; ++j) {
    const auto* row = r.row(j);
    __m256 vv[U];
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) vv[u] = Rows::whole(row, u0 + u);
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h) {
      const __m256 pj = _mm256_broadcast_ss(p + h * ns + j);
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) a[h][u] = _mm256_fmadd_ps(pj, vv[u], a[h][u]);
    }
  }
#pragma GCC unroll 4
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) _mm256_storeu_ps(acc + h * acc_hs + 8 * (u0 + u), a[h][u]);
}

// H heads: whole units in passes of up to 4 that fit the 16 registers with their H * U
// accumulators and U value registers (H = 3: 3 units), a partial last unit per head.
template <int H, class Rows>
LC_TARGET void accum_heads(const float* p, int64_t ns, const Rows& r, int64_t n, float* acc,
                           int64_t acc_hs) {
  constexpr int64_t per_pass = 15 / (H + 1) > 4 ? 4 : 15 / (H + 1);
  const int64_t uw = r.whole_units();
  for (int64_t u0 = 0; u0 < uw; u0 += per_pass) {
    switch (std::min(per_pass, uw - u0)) {
      case 1:
        accum_group<H, 1>(p, ns, r, u0, n, acc, acc_hs);
        break;
      case 2:
        accum_group<H, 2>(p, ns, r, u0, n, acc, acc_hs);
        break;
      case 3:
        if constexpr (per_pass >= 3) accum_group<H, 3>(p, ns, r, u0, n, acc, acc_hs);
        break;
      default:
        if constexpr (per_pass >= 4) accum_group<H, 4>(p, ns, r, u0, n, acc, acc_hs);
        break;
    }
  }
  if (uw < r.units)
    for (int h = 0; h < H; ++h) accum_units<1>(p + h * ns, r, uw, n, acc + h * acc_hs);
}

// Rows of one register per unit: heads in groups of up to 3 that share every value load; Q8_0
// rows: one head at a time.
template <class Rows>
LC_TARGET void accum_all(const float* p, int64_t ns, int64_t n_heads, const Rows& r, int64_t n,
                         float* acc, int64_t acc_hs) {
  if constexpr (Rows::kW == 1) {
    int64_t h = 0;
    for (; h + 3 <= n_heads; h += 3) accum_heads<3>(p + h * ns, ns, r, n, acc + h * acc_hs, acc_hs);
    if (n_heads - h == 2) accum_heads<2>(p + h * ns, ns, r, n, acc + h * acc_hs, acc_hs);
    if (n_heads - h == 1) accum_heads<1>(p + h * ns, ns, r, n, acc + h * acc_hs, acc_hs);
  } else {
    for (int64_t h = 0; h < n_heads; ++h) accum1(p + h * ns, r, n, acc + h * acc_hs);
  }
}

}  // namespace

LC_TARGET void attn_scores_f16(const float* q, int64_t q_hs, int64_t n_heads, const uint16_t* k,
                               int64_t stride, int64_t n, int64_t hd, float scale, float* s,
                               int64_t ns, float* mx) {
  scores_all(q, q_hs, n_heads, F16Rows(k, stride, hd), n, scale, s, ns, mx);
}

LC_TARGET void attn_scores_f32(const float* q, int64_t q_hs, int64_t n_heads, const float* k,
                               int64_t stride, int64_t n, int64_t hd, float scale, float* s,
                               int64_t ns, float* mx) {
  scores_all(q, q_hs, n_heads, F32Rows(k, stride, hd), n, scale, s, ns, mx);
}

LC_TARGET void attn_accum_f32(const float* p, int64_t ns, int64_t n_heads, const float* v,
                              int64_t stride, int64_t n, int64_t hd, float* acc, int64_t acc_hs) {
  accum_all(p, ns, n_heads, F32Rows(v, stride, hd), n, acc, acc_hs);
}

LC_TARGET void attn_accum_f16(const float* p, int64_t ns, int64_t n_heads, const uint16_t* v,
                              int64_t stride, int64_t n, int64_t hd, float* acc, int64_t acc_hs) {
  accum_all(p, ns, n_heads, F16Rows(v, stride, hd), n, acc, acc_hs);
}

LC_TARGET void attn_scores_q8_0(const float* q, int64_t q_hs, int64_t n_heads, const BlockQ8_0* k,
                                int64_t stride, int64_t n, int64_t hd, float scale, float* s,
                                int64_t ns, float* mx) {
  scores_all(q, q_hs, n_heads, Q8Rows(k, stride, hd), n, scale, s, ns, mx);
}

LC_TARGET void attn_accum_q8_0(const float* p, int64_t ns, int64_t n_heads, const BlockQ8_0* v,
                               int64_t stride, int64_t n, int64_t hd, float* acc, int64_t acc_hs) {
  accum_all(p, ns, n_heads, Q8Rows(v, stride, hd), n, acc, acc_hs);
}

}  // namespace lc::kv_avx2

#endif
