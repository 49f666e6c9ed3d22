// Small AVX-512 helpers shared by the AVX-512 kernel files (simd_avx512.cpp, simd_avx512_kv.cpp):
// lane masks, horizontal reductions and the transposed reduction of 16 score registers. Every
// function carries the AVX-512 target attribute (LC_TARGET): include this only from files whose
// code runs after dispatch.cpp checked the CPU.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#define LC_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

namespace lc::simd512 {

LC_TARGET inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// Halves and horizontal reductions.
LC_TARGET inline __m256 lo256(__m512 v) { return _mm512_extractf32x8_ps(v, 0); }
LC_TARGET inline __m256 hi256(__m512 v) { return _mm512_extractf32x8_ps(v, 1); }
LC_TARGET inline __m256 fold256(__m512 v) { return _mm256_add_ps(lo256(v), hi256(v)); }
LC_TARGET inline float hsum(__m512 v) {
  const __m256 a = fold256(v);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}
LC_TARGET inline float hmax(__m512 v) {
  const __m256 a = _mm256_max_ps(lo256(v), hi256(v));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}
LC_TARGET inline double hsum_pd(__m512d v) {
  const __m512 f = _mm512_castpd_ps(v);
  const __m256d a = _mm256_add_pd(_mm256_castps_pd(lo256(f)), _mm256_castps_pd(hi256(f)));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  h = _mm_add_sd(h, _mm_unpackhi_pd(h, h));
  return _mm_cvtsd_f64(h);
}
LC_TARGET inline int hsum_epi32(__m512i v) {
  const __m256i a =
      _mm256_add_epi32(_mm512_extracti32x8_epi32(v, 0), _mm512_extracti32x8_epi32(v, 1));
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  h = _mm_hadd_epi32(h, h);
  h = _mm_hadd_epi32(h, h);
  return _mm_cvtsi128_si32(h);
}

// u[m] holds two 8-lane partial sums: key 2m in its low half, key 2m + 1 in its high half.
// Returns the 16 totals in key order.
LC_TARGET inline __m512 reduce_pairs(const __m512* u) {
  __m512 w[4], z[2];
  for (int p = 0; p < 4; ++p) {
    const __m512 a = u[2 * p], b = u[2 * p + 1];
    w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  for (int p = 0; p < 2; ++p) {
    const __m512 a = w[2 * p], b = w[2 * p + 1];
    z[p] = _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // Lane 4c + e of r holds key c + 4e.
  const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(idx, r);
}

// Lane j of the result is the sum of the 16 lanes of v[j].
LC_TARGET inline __m512 reduce16(const __m512* v) {
  __m512 u[8];
  for (int p = 0; p < 8; ++p) {
    const __m512 a = v[2 * p], b = v[2 * p + 1];
    u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return reduce_pairs(u);
}

// Rows of 8 elements (head_dim 8) of f32 or half precision: two rows per register, or one.
LC_TARGET inline __m512 pair_rows(const float* a, const float* b) {
  return _mm512_insertf32x8(_mm512_zextps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1);
}
LC_TARGET inline __m512 pair_rows(const uint16_t* a, const uint16_t* b) {
  const __m256i x = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
  return _mm512_cvtph_ps(x);
}
LC_TARGET inline __m256 row8(const float* a) { return _mm256_loadu_ps(a); }
LC_TARGET inline __m256 row8(const uint16_t* a) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
}

// Attention tiles for head_dim 8, keys and values of f32 (T = float) or half precision
// (T = uint16_t). Scores: two keys per register, 16 keys per reduction; returns the maximum.
template <typename T>
LC_TARGET float scores_hd8(const float* q, const T* k, int64_t stride, int64_t n, float scale,
                           float* s) {
  const __m512 q2 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q));
  const __m512 vs = _mm512_set1_ps(scale);
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 u[8];
    for (int p = 0; p < 8; ++p)
      u[p] = _mm512_mul_ps(q2, pair_rows(k + (j + 2 * p) * stride, k + (j + 2 * p + 1) * stride));
    const __m512 r = _mm512_mul_ps(reduce_pairs(u), vs);
    _mm512_storeu_ps(s + j, r);
    vmax = _mm512_max_ps(vmax, r);
  }
  float mx = hmax(vmax);
  const __m256 q1 = _mm256_loadu_ps(q);
  for (; j < n; ++j) {
    const __m256 p = _mm256_mul_ps(q1, row8(k + j * stride));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(p), _mm256_extractf128_ps(p, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    s[j] = _mm_cvtss_f32(h) * scale;
    mx = std::max(mx, s[j]);
  }
  return mx;
}

// acc[e] += sum_j p[j] * v[j][e]: two value rows per register.
template <typename T>
LC_TARGET void accum_hd8(const float* p, const T* v, int64_t stride, int64_t n, float* acc) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m512 p01 = _mm512_insertf32x8(_mm512_set1_ps(p[j]), _mm256_set1_ps(p[j + 1]), 1);
    const __m512 p23 = _mm512_insertf32x8(_mm512_set1_ps(p[j + 2]), _mm256_set1_ps(p[j + 3]), 1);
    a0 = _mm512_fmadd_ps(p01, pair_rows(v + j * stride, v + (j + 1) * stride), a0);
    a1 = _mm512_fmadd_ps(p23, pair_rows(v + (j + 2) * stride, v + (j + 3) * stride), a1);
  }
  const __m512 a = _mm512_add_ps(a0, a1);
  __m256 r = _mm256_add_ps(lo256(a), hi256(a));
  for (; j < n; ++j) r = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), row8(v + j * stride), r);
  _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_loadu_ps(acc), r));
}

// acc[h * acc_hs + e] += sum_j p[h * ns + j] * row_j[e] for e < 64, h < H (<= 4): 16 accumulators
// in registers, 4 row registers and 16 FMAs per row. load(j, v) puts row j's 64 values in v[0..3]
// (converting and prefetching as its storage wants). The accumulators are arrays indexed by the
// head only, with constant indices: a two-dimensional array of them, or one indexed in a loop the
// compiler does not unroll, was written back to memory at every row (g++ 12).
template <int H, class Load>
LC_TARGET inline void accum_rows64(const float* p, int64_t ns, int64_t n, float* acc,
                                   int64_t acc_hs, const Load& load) {
  __m512 a0[H], a1[H], a2[H], a3[H];
#pragma GCC unroll 4
  for (int h = 0; h < H; ++h) {
    const float* ah = acc + h * acc_hs;
    a0[h] = _mm512_loadu_ps(ah);
    a1[h] = _mm512_loadu_ps(ah + 16);
    a2[h] = _mm512_loadu_ps(ah + 32);
    a3[h] = _mm512_loadu_ps(ah + 48);
  }
  for (int64_t j = 0; j < n; ++j) {
    __m512 v[4];
    load(j, v);
    const __m512 v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
#define LC_ACCUM_HEAD(h)                             \
  if constexpr (H > (h)) {                           \
    const __m512 pj = _mm512_set1_ps(p[(h)*ns + j]); \
    a0[h] = _mm512_fmadd_ps(pj, v0, a0[h]);          \
    a1[h] = _mm512_fmadd_ps(pj, v1, a1[h]);          \
    a2[h] = _mm512_fmadd_ps(pj, v2, a2[h]);          \
    a3[h] = _mm512_fmadd_ps(pj, v3, a3[h]);          \
  }
    LC_ACCUM_HEAD(0)
    LC_ACCUM_HEAD(1)
    LC_ACCUM_HEAD(2)
    LC_ACCUM_HEAD(3)
#undef LC_ACCUM_HEAD
  }
#pragma GCC unroll 4
  for (int h = 0; h < H; ++h) {
    float* ah = acc + h * acc_hs;
    _mm512_storeu_ps(ah, a0[h]);
    _mm512_storeu_ps(ah + 16, a1[h]);
    _mm512_storeu_ps(ah + 32, a2[h]);
    _mm512_storeu_ps(ah + 48, a3[h]);
  }
}

}  // namespace lc::simd512
