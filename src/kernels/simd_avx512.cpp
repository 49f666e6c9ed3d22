// The AVX-512 kernel table (F, BW, VL, DQ, VNNI). Every function here carries the target attribute
// (LC_TARGET) and is only reached after dispatch.cpp checked the CPU; nothing else in the binary
// is compiled for AVX-512.
//
// Integer matmul, activations quantized to int8 blocks of 32 (ActQ8), products by VPDPBUSD (u8 x
// s8), block results scaled and summed in f32:
//  - one token (decode): matvec_q decodes the GGUF blocks straight into registers, 4 rows at a
//    time, prefetching the next rows (the weights stream from DRAM once per token);
//  - several tokens (prefill): simd_x86_matmul.h unpacks 4 rows to signed int8 once per chunk and
//    qtile runs 4 rows x 4 tokens over them; the sign is flipped (^0x80) to make the weights
//    unsigned and the +128 bias leaves through each lane's start value, -128 * sum of its 4
//    activations.
#include "kernels/dispatch.h"

#if defined(__x86_64__)

// g++ 12's AVX-512 intrinsics pass _mm512_undefined_*() as the merge source of their unmasked
// forms, which -Wuninitialized reports once inlined (GCC bug 105593, fixed in 13): a false
// positive in the compiler's own headers, silenced for this file only.
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/simd_avx512_util.h"
#include "kernels/simd_kv.h"

namespace lc {
namespace {

using namespace simd512;  // NOLINT(google-build-using-namespace): the shared helpers

// ---------------------------------------------------------------------------------------------
// Helpers.

// exp(x) to about 2 ulp: x = n ln2 + r, |r| <= ln2 / 2, degree-7 Taylor polynomial, 2^n by scalef
// (which also gives the subnormal range and the overflow to +inf). NaN stays NaN; -inf gives 0.
LC_TARGET inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(100.0f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// ---------------------------------------------------------------------------------------------
// Row ops.

LC_TARGET float vdot(const float* a, const float* b, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
  }
  return hsum(_mm512_add_ps(s0, s1));
}

LC_TARGET void axpy(float a, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(
        y + i, m,
        _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// Columns of f32 or of half precision, 16 at a time (masked: the first m lanes).
LC_TARGET inline __m512 load_cols(const float* p) { return _mm512_loadu_ps(p); }
LC_TARGET inline __m512 load_cols(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
LC_TARGET inline __m512 load_cols(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
LC_TARGET inline __m512 load_cols(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

// Four accumulators of 16 columns stay in registers over all d dimensions.
template <typename T>
LC_TARGET void dot_columns_t(const T* const* rows, const float* q, int64_t d, int64_t n,
                             float* out) {
  int64_t c = 0;
  for (; c + 64 <= n; c += 64) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t e = 0; e < d; ++e) {
      const __m512 qe = _mm512_set1_ps(q[e]);
      const T* r = rows[e] + c;
      a0 = _mm512_fmadd_ps(qe, load_cols(r), a0);
      a1 = _mm512_fmadd_ps(qe, load_cols(r + 16), a1);
      a2 = _mm512_fmadd_ps(qe, load_cols(r + 32), a2);
      a3 = _mm512_fmadd_ps(qe, load_cols(r + 48), a3);
    }
    _mm512_storeu_ps(out + c, a0);
    _mm512_storeu_ps(out + c + 16, a1);
    _mm512_storeu_ps(out + c + 32, a2);
    _mm512_storeu_ps(out + c + 48, a3);
  }
  for (; c < n; c += 16) {
    const __mmask16 m = lanes(n - c);
    __m512 a = _mm512_setzero_ps();
    for (int64_t e = 0; e < d; ++e)
      a = _mm512_fmadd_ps(_mm512_set1_ps(q[e]), load_cols(rows[e] + c, m), a);
    _mm512_mask_storeu_ps(out + c, m, a);
  }
}

LC_TARGET void dot_columns(const float* const* rows, const float* q, int64_t d, int64_t n,
                           float* out) {
  dot_columns_t(rows, q, d, n, out);
}

LC_TARGET void dot_columns_f16(const uint16_t* const* rows, const float* q, int64_t d, int64_t n,
                               float* out) {
  dot_columns_t(rows, q, d, n, out);
}

// One VNNI instruction scores 16 columns on 4 k; four accumulators cover 64 columns (a tile).
LC_TARGET void dot_tiles_u8s8(const uint8_t* tiles, const int8_t* q, int64_t k4, int64_t tile_k4,
                              int64_t n_tiles, int32_t* out) {
  for (int64_t t = 0; t < n_tiles; ++t, out += 64) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    const uint8_t* a = tiles + t * tile_k4 * 256;
    for (int64_t g = 0; g < k4; ++g, a += 256) {
      int32_t quad;
      std::memcpy(&quad, q + 4 * g, 4);
      const __m512i x = _mm512_set1_epi32(quad);
      a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(a), x);
      a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(a + 64), x);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512(a + 128), x);
      a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512(a + 192), x);
    }
    _mm512_storeu_si512(out, a0);
    _mm512_storeu_si512(out + 16, a1);
    _mm512_storeu_si512(out + 32, a2);
    _mm512_storeu_si512(out + 48, a3);
  }
}

// Four rows at a time share the loads of q; one reduction per row.
LC_TARGET void dot_rows(const float* a, int64_t n, int64_t d, int64_t stride, const float* q,
                        float* out) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float* r = a + i * stride;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t e = 0; e < d; e += 16) {
      const __mmask16 m = lanes(d - e);
      const __m512 qe = _mm512_maskz_loadu_ps(m, q + e);
      s0 = _mm512_fmadd_ps(qe, _mm512_maskz_loadu_ps(m, r + e), s0);
      s1 = _mm512_fmadd_ps(qe, _mm512_maskz_loadu_ps(m, r + stride + e), s1);
      s2 = _mm512_fmadd_ps(qe, _mm512_maskz_loadu_ps(m, r + 2 * stride + e), s2);
      s3 = _mm512_fmadd_ps(qe, _mm512_maskz_loadu_ps(m, r + 3 * stride + e), s3);
    }
    out[i] = hsum(s0);
    out[i + 1] = hsum(s1);
    out[i + 2] = hsum(s2);
    out[i + 3] = hsum(s3);
  }
  for (; i < n; ++i) out[i] = vdot(a + i * stride, q, d);
}

#include "kernels/simd_x86_slices.h"

LC_TARGET void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(
        x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

LC_TARGET void f16_to_f32(const uint16_t* h, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i)));
  }
}

// As the AVX2 one: VCVTPS2PH, and the scalar definition for the lanes holding a NaN.
LC_TARGET void f32_to_f16(const float* x, uint16_t* h, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm256_mask_storeu_epi16(h + i, m,
                             _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __mmask16 nan = _mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q);
    for (; nan != 0; nan = static_cast<__mmask16>(nan & (nan - 1))) {
      const int j = __builtin_ctz(nan);
      h[i + j] = f32_to_fp16(x[i + j]);
    }
  }
}

LC_TARGET void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(lanes(n - i), x + i);
    const __m512d lo = _mm512_cvtps_pd(lo256(v));
    const __m512d hi = _mm512_cvtps_pd(hi256(v));
    s0 = _mm512_fmadd_pd(lo, lo, s0);
    s1 = _mm512_fmadd_pd(hi, hi, s1);
  }
  const double ss = hsum_pd(_mm512_add_pd(s0, s1));
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  const __m512 vs = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
  }
}

LC_TARGET void silu_mul(float* a, const float* b, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, a + i);
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
    const __m512 s = _mm512_div_ps(v, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(a + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, b + i)));
  }
}

LC_TARGET double exp_shift(const float* x, float mx, float* y, int64_t n) {
  const __m512 vm = _mm512_set1_ps(mx);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 e =
        _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
    _mm512_mask_storeu_ps(y + i, m, e);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(lo256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(hi256(e)));
  }
  return hsum_pd(_mm512_add_pd(s0, s1));
}

LC_TARGET void softmax_inplace(float* x, int64_t n) {
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
  }
  const float mx = hmax(vmax);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  const double sum = exp_shift(x, mx, x, n);
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

// ---------------------------------------------------------------------------------------------
// Attention tiles.

// Rows ahead of use that the attention tiles prefetch: the rows of a long cache are far apart
// (often a multiple of 4 KiB), which hardware prefetchers do not follow, and a burst of prefetches
// for a whole tile overflows the miss buffers; a steady distance ahead keeps DRAM busy.
constexpr int64_t kAttnAhead = 24;

// Prefetches the lines of floats [0, n) of a row (never faults, also past the end of the cache).
LC_TARGET inline void prefetch_row(const float* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < n * 4; b += 64) _mm_prefetch(c + b, _MM_HINT_T0);
}

// H (<= 4) query heads against 4 keys at a time: 16 accumulators, head h and key kk in 4h + kk,
// so each key row is loaded once for all the heads.
template <int H>
LC_TARGET void scores_heads(const float* q, int64_t q_hs, const float* k, int64_t stride, int64_t n,
                            int64_t hd, float scale, float* s, int64_t ns, float* mx) {
  const int64_t nc = (hd + 15) / 16;
  const __mmask16 tail = lanes(hd - 16 * (nc - 1));
  const __m512 vs = _mm512_set1_ps(scale);
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  alignas(64) float r[16];
  for (int64_t j = 0; j < n; j += 4) {
    const int nk = static_cast<int>(std::min<int64_t>(4, n - j));
    if (stride != hd)  // rows back to back (a packed tile) need no help from software
      for (int kk = 0; kk < 4; ++kk) prefetch_row(k + (j + kAttnAhead + kk) * stride, hd);
    __m512 acc[16];
    for (int x = 0; x < 16; ++x) acc[x] = _mm512_setzero_ps();
    for (int64_t c = 0; c < nc; ++c) {
      const __mmask16 m = c == nc - 1 ? tail : static_cast<__mmask16>(0xFFFF);
      __m512 kv[4];
      for (int kk = 0; kk < 4; ++kk)
        kv[kk] = _mm512_maskz_loadu_ps(kk < nk ? m : 0, k + (j + kk) * stride + 16 * c);
      for (int h = 0; h < H; ++h) {
        const __m512 qv = _mm512_maskz_loadu_ps(m, q + h * q_hs + 16 * c);
        for (int kk = 0; kk < 4; ++kk)
          acc[4 * h + kk] = _mm512_fmadd_ps(qv, kv[kk], acc[4 * h + kk]);
      }
    }
    const __m512 sc = _mm512_mul_ps(reduce16(acc), vs);
    const __mmask16 valid = static_cast<__mmask16>(((1u << nk) - 1) * 0x1111u);
    vmax = _mm512_mask_max_ps(vmax, valid, vmax, sc);
    const __mmask8 mk = static_cast<__mmask8>((1u << nk) - 1);
    // Lanes 4h .. 4h + 3 are head h's scores of keys j .. j + 3.
    _mm_mask_storeu_ps(s + j, mk, _mm512_extractf32x4_ps(sc, 0));
    if constexpr (H > 1) _mm_mask_storeu_ps(s + ns + j, mk, _mm512_extractf32x4_ps(sc, 1));
    if constexpr (H > 2) _mm_mask_storeu_ps(s + 2 * ns + j, mk, _mm512_extractf32x4_ps(sc, 2));
    if constexpr (H > 3) _mm_mask_storeu_ps(s + 3 * ns + j, mk, _mm512_extractf32x4_ps(sc, 3));
  }
  _mm512_store_ps(r, vmax);
  for (int h = 0; h < H; ++h)
    mx[h] = std::max(std::max(r[4 * h], r[4 * h + 1]), std::max(r[4 * h + 2], r[4 * h + 3]));
}

LC_TARGET void attn_scores(const float* q, int64_t q_hs, int64_t n_heads, const float* k,
                           int64_t stride, int64_t n, int64_t hd, float scale, float* s, int64_t ns,
                           float* mx) {
  if (hd == 8) {
    for (int64_t h = 0; h < n_heads; ++h)
      mx[h] = scores_hd8(q + h * q_hs, k, stride, n, scale, s + h * ns);
    return;
  }
  for (int64_t h0 = 0; h0 < n_heads; h0 += 4) {
    const float* qh = q + h0 * q_hs;
    switch (std::min<int64_t>(4, n_heads - h0)) {
      case 1:
        scores_heads<1>(qh, q_hs, k, stride, n, hd, scale, s + h0 * ns, ns, mx + h0);
        break;
      case 2:
        scores_heads<2>(qh, q_hs, k, stride, n, hd, scale, s + h0 * ns, ns, mx + h0);
        break;
      case 3:
        scores_heads<3>(qh, q_hs, k, stride, n, hd, scale, s + h0 * ns, ns, mx + h0);
        break;
      default:
        scores_heads<4>(qh, q_hs, k, stride, n, hd, scale, s + h0 * ns, ns, mx + h0);
        break;
    }
  }
}

// Transposed keys: R (<= 4) query rows x 64 keys (4 vectors of 16) per pass, 16 accumulators;
// per element of the head 4 key loads, R broadcasts and 4R FMAs, no horizontal sums.
template <int R, bool kTail>
LC_TARGET void scores_kt_rows(const float* q, int64_t q_hs, const float* kt, int64_t ld, int64_t j0,
                              int64_t nj, int64_t hd, __m512 vs, float* s, int64_t ns,
                              __m512* vmax) {
  __mmask16 m0 = 0xFFFF, m1 = 0xFFFF, m2 = 0xFFFF, m3 = 0xFFFF;
  if constexpr (kTail) {
    m0 = lanes(nj);
    m1 = lanes(std::max<int64_t>(0, nj - 16));
    m2 = lanes(std::max<int64_t>(0, nj - 32));
    m3 = lanes(std::max<int64_t>(0, nj - 48));
  }
  // Accumulators indexed by row only, with constant indices (see accum_rows64).
  __m512 a0[R], a1[R], a2[R], a3[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = a2[r] = a3[r] = _mm512_setzero_ps();
  for (int64_t e = 0; e < hd; ++e) {
    const float* kr = kt + e * ld + j0;
    __m512 k0, k1, k2, k3;
    if constexpr (kTail) {
      k0 = _mm512_maskz_loadu_ps(m0, kr);
      k1 = _mm512_maskz_loadu_ps(m1, kr + 16);
      k2 = _mm512_maskz_loadu_ps(m2, kr + 32);
      k3 = _mm512_maskz_loadu_ps(m3, kr + 48);
    } else {
      k0 = _mm512_loadu_ps(kr);
      k1 = _mm512_loadu_ps(kr + 16);
      k2 = _mm512_loadu_ps(kr + 32);
      k3 = _mm512_loadu_ps(kr + 48);
    }
#define LC_SCORE_ROW(r)                                \
  if constexpr (R > (r)) {                             \
    const __m512 qe = _mm512_set1_ps(q[(r)*q_hs + e]); \
    a0[r] = _mm512_fmadd_ps(qe, k0, a0[r]);            \
    a1[r] = _mm512_fmadd_ps(qe, k1, a1[r]);            \
    a2[r] = _mm512_fmadd_ps(qe, k2, a2[r]);            \
    a3[r] = _mm512_fmadd_ps(qe, k3, a3[r]);            \
  }
    LC_SCORE_ROW(0)
    LC_SCORE_ROW(1)
    LC_SCORE_ROW(2)
    LC_SCORE_ROW(3)
#undef LC_SCORE_ROW
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* sr = s + r * ns + j0;
    const __m512 c0 = _mm512_mul_ps(a0[r], vs), c1 = _mm512_mul_ps(a1[r], vs);
    const __m512 c2 = _mm512_mul_ps(a2[r], vs), c3 = _mm512_mul_ps(a3[r], vs);
    _mm512_mask_storeu_ps(sr, m0, c0);
    _mm512_mask_storeu_ps(sr + 16, m1, c1);
    _mm512_mask_storeu_ps(sr + 32, m2, c2);
    _mm512_mask_storeu_ps(sr + 48, m3, c3);
    __m512 mx = _mm512_mask_max_ps(vmax[r], m0, vmax[r], c0);
    mx = _mm512_mask_max_ps(mx, m1, mx, c1);
    mx = _mm512_mask_max_ps(mx, m2, mx, c2);
    vmax[r] = _mm512_mask_max_ps(mx, m3, mx, c3);
  }
}

template <int R>
LC_TARGET void scores_kt_group(const float* q, int64_t q_hs, const float* kt, int64_t ld, int64_t n,
                               int64_t hd, float scale, float* s, int64_t ns, float* mx) {
  const __m512 vs = _mm512_set1_ps(scale);
  __m512 vmax[4];
  for (int r = 0; r < 4; ++r) vmax[r] = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 64 <= n; j += 64)
    scores_kt_rows<R, false>(q, q_hs, kt, ld, j, 64, hd, vs, s, ns, vmax);
  if (j < n) scores_kt_rows<R, true>(q, q_hs, kt, ld, j, n - j, hd, vs, s, ns, vmax);
  for (int r = 0; r < R; ++r) mx[r] = _mm512_reduce_max_ps(vmax[r]);
}

LC_TARGET void attn_scores_kt(const float* q, int64_t q_hs, int64_t n_heads, const float* kt,
                              int64_t ld, int64_t n, int64_t hd, float scale, float* s, int64_t ns,
                              float* mx) {
  for (int64_t h0 = 0; h0 < n_heads; h0 += 4) {
    const float* qh = q + h0 * q_hs;
    float* sh = s + h0 * ns;
    switch (std::min<int64_t>(4, n_heads - h0)) {
      case 1:
        scores_kt_group<1>(qh, q_hs, kt, ld, n, hd, scale, sh, ns, mx + h0);
        break;
      case 2:
        scores_kt_group<2>(qh, q_hs, kt, ld, n, hd, scale, sh, ns, mx + h0);
        break;
      case 3:
        scores_kt_group<3>(qh, q_hs, kt, ld, n, hd, scale, sh, ns, mx + h0);
        break;
      default:
        scores_kt_group<4>(qh, q_hs, kt, ld, n, hd, scale, sh, ns, mx + h0);
        break;
    }
  }
}

// head_dim 8: two keys per register.
// H (<= 4) heads x C (<= 2) chunks of 16 dims of acc in registers while every key goes past, so
// each value row is loaded once for all the heads.
template <int H, int C>
LC_TARGET void accum_heads(const float* p, int64_t ns, const float* v, int64_t stride, int64_t n,
                           float* acc, int64_t acc_hs, __mmask16 last) {
  __m512 a[H][C];
  __mmask16 m[C];
  for (int c = 0; c < C; ++c) m[c] = c == C - 1 ? last : static_cast<__mmask16>(0xFFFF);
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) a[h][c] = _mm512_maskz_loadu_ps(m[c], acc + h * acc_hs + 16 * c);
  const bool ahead = stride != 16 * C;  // not for rows back to back (a packed tile)
  for (int64_t j = 0; j < n; ++j) {
    if (ahead) prefetch_row(v + (j + kAttnAhead) * stride, 16 * C);
    __m512 vv[C];
    for (int c = 0; c < C; ++c) vv[c] = _mm512_maskz_loadu_ps(m[c], v + j * stride + 16 * c);
    for (int h = 0; h < H; ++h) {
      const __m512 pj = _mm512_set1_ps(p[h * ns + j]);
      for (int c = 0; c < C; ++c) a[h][c] = _mm512_fmadd_ps(pj, vv[c], a[h][c]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(acc + h * acc_hs + 16 * c, m[c], a[h][c]);
}

// f32 value rows for accum_rows64: 64 values from row j, prefetching kAttnAhead rows ahead
// unless the rows are back to back (a packed tile, which the hardware prefetcher follows).
struct F32Rows64 {
  const float* v;
  int64_t stride;
  LC_TARGET void operator()(int64_t j, __m512* out) const {
    if (stride != 64) prefetch_row(v + (j + kAttnAhead) * stride, 64);
    const float* vj = v + j * stride;
    out[0] = _mm512_loadu_ps(vj);
    out[1] = _mm512_loadu_ps(vj + 16);
    out[2] = _mm512_loadu_ps(vj + 32);
    out[3] = _mm512_loadu_ps(vj + 48);
  }
};

template <int H>
LC_TARGET void accum_dims(const float* p, int64_t ns, const float* v, int64_t stride, int64_t n,
                          int64_t hd, float* acc, int64_t acc_hs) {
  for (int64_t e = 0; e < hd;) {
    const int64_t left = hd - e;
    if (left >= 64) {  // 4 heads x 64 dims: 16 accumulators, 4 loads and 16 FMAs per value row
      accum_rows64<H>(p, ns, n, acc + e, acc_hs, F32Rows64{v + e, stride});
      e += 64;
      continue;
    }
    const __mmask16 last = lanes(left > 16 ? left - 16 : left);
    if (left > 16)
      accum_heads<H, 2>(p, ns, v + e, stride, n, acc + e, acc_hs, last);
    else
      accum_heads<H, 1>(p, ns, v + e, stride, n, acc + e, acc_hs, last);
    e += 32;
  }
}

LC_TARGET void attn_accum(const float* p, int64_t ns, int64_t n_heads, const float* v,
                          int64_t stride, int64_t n, int64_t hd, float* acc, int64_t acc_hs) {
  if (hd == 8) {
    for (int64_t h = 0; h < n_heads; ++h) accum_hd8(p + h * ns, v, stride, n, acc + h * acc_hs);
    return;
  }
  for (int64_t h0 = 0; h0 < n_heads; h0 += 4) {
    const float* ph = p + h0 * ns;
    float* ah = acc + h0 * acc_hs;
    switch (std::min<int64_t>(4, n_heads - h0)) {
      case 1:
        accum_dims<1>(ph, ns, v, stride, n, hd, ah, acc_hs);
        break;
      case 2:
        accum_dims<2>(ph, ns, v, stride, n, hd, ah, acc_hs);
        break;
      case 3:
        accum_dims<3>(ph, ns, v, stride, n, hd, ah, acc_hs);
        break;
      default:
        accum_dims<4>(ph, ns, v, stride, n, hd, ah, acc_hs);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Matmul.

LC_TARGET void quantize_act(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  for (int64_t b = 0; b < n / kActBlock; ++b) {
    const float* xb = x + b * kActBlock;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const float amax = hmax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i i0 =
        _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(v0, vid), hi), lo));
    const __m512i i1 =
        _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(v1, vid), hi), lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kActBlock), _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kActBlock + 16), _mm512_cvtepi32_epi8(i1));
    d[b] = db;
    s[b] = db * static_cast<float>(hsum_epi32(_mm512_add_epi32(i0, i1)));
  }
}

constexpr int kQR = 4, kQT = 4;

// out[i * kQT + j] = sum over elements [k0, k0 + kn) of unpacked row i (wq[i], ws[i], chunk
// relative) times activation row t + j (absolute offsets into a).
using QTileFn = void (*)(const int8_t* const* wq, const float* const* ws, const ActQ8& a, int64_t t,
                         int64_t k0, int64_t kn, float* out);

// One step of 64 elements (kTail: the last 32 of a chunk whose length is an odd multiple of 32).
template <int R, int T, bool kTail>
LC_TARGET inline void qstep(__m512 (&acc)[R][T], const int8_t* const* wq, const float* const* ws,
                            const ActQ8& a, int64_t t, int64_t k0, int64_t i) {
  const __mmask64 mb = kTail ? 0xFFFFFFFFull : ~0ull;
  const __mmask16 ml = kTail ? 0xFF : 0xFFFF;
  const __mmask8 md = kTail ? 1 : 3;
  const __m512i zero = _mm512_setzero_si512(), flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i didx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const int64_t nb32 = a.n_in / kActBlock;
  __m512i at[T], nc[T];
  __m512 da[T];
  for (int j = 0; j < T; ++j) {
    at[j] = _mm512_maskz_loadu_epi8(mb, a.q + (t + j) * a.n_in + k0 + i);
    nc[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, flip, at[j]));
    const float* dp = a.d + (t + j) * nb32 + (k0 + i) / kActBlock;
    da[j] = _mm512_permutexvar_ps(didx, _mm512_zextps128_ps512(_mm_maskz_loadu_ps(md, dp)));
  }
  for (int r = 0; r < R; ++r) {
    const __m512i w = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mb, wq[r] + i), flip);
    const __m512 s = _mm512_maskz_loadu_ps(ml, ws[r] + i / 4);
    for (int j = 0; j < T; ++j) {
      const __m512i dot = _mm512_dpbusd_epi32(nc[j], w, at[j]);
      acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(s, da[j]), acc[r][j]);
    }
  }
}

template <int R, int T>
LC_TARGET void qtile(const int8_t* const* wq, const float* const* ws, const ActQ8& a, int64_t t,
                     int64_t k0, int64_t kn, float* out) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < T; ++j) acc[r][j] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= kn; i += 64) qstep<R, T, false>(acc, wq, ws, a, t, k0, i);
  if (i < kn) qstep<R, T, true>(acc, wq, ws, a, t, k0, i);
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < T; ++j) out[r * kQT + j] = hsum(acc[r][j]);
}

template <int R>
constexpr QTileFn kQRow[kQT] = {qtile<R, 1>, qtile<R, 2>, qtile<R, 3>, qtile<R, 4>};

QTileFn qtile_fn(int nr, int nt) {
  switch (nr) {
    case 1:
      return kQRow<1>[nt - 1];
    case 2:
      return kQRow<2>[nt - 1];
    case 3:
      return kQRow<3>[nt - 1];
    default:
      return kQRow<4>[nt - 1];
  }
}

constexpr int kFR = 4, kFT = 4;
constexpr int64_t kKCF = 1024;  // f32-path K chunk: partial sums are reduced at its multiples

// out[i * kFT + j] = dot of weight row r + i with activation row t + j (x rows n_in apart) over
// elements [k0, k0 + kn), reduced to a scalar at every multiple of kKCF (so that any split of a
// row into chunks gives the same numbers).
using FTileFn = void (*)(const WeightMatrix& w, int64_t r, const float* x, int64_t t, int64_t k0,
                         int64_t kn, float* out);

// 16 weights from element i of a row (m: lanes to load, the rest read as 0).
template <TensorType TY>
LC_TARGET inline __m512 wload(const uint8_t* row, int64_t i, __mmask16 m) {
  if constexpr (TY == TensorType::F32) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + i);
  } else if constexpr (TY == TensorType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * i));
  } else {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  }
}

template <TensorType TY, int R, int T>
LC_TARGET void ftile(const WeightMatrix& w, int64_t r, const float* x, int64_t t, int64_t k0,
                     int64_t kn, float* out) {
  constexpr int64_t kElem = TY == TensorType::F32 ? 4 : 2;
  const int64_t n = w.n_in;
  const size_t ahead = R * w.row_bytes;
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = w.row(r + i);
    for (int j = 0; j < T; ++j) out[i * kFT + j] = 0.0f;
  }
  for (int64_t c0 = k0; c0 < k0 + kn; c0 += kKCF) {
    const int64_t c1 = std::min(k0 + kn, c0 + kKCF);
    __m512 acc[R][T];
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t e = c0; e < c1; e += 16) {
      const __mmask16 m = lanes(c1 - e);
      __m512 xv[T];
      for (int j = 0; j < T; ++j) xv[j] = _mm512_maskz_loadu_ps(m, x + (t + j) * n + e);
      for (int i = 0; i < R; ++i) {
        // The same place in the next group of rows, into L2 (never faults past the end).
        _mm_prefetch(reinterpret_cast<const char*>(rows[i] + ahead) + e * kElem, _MM_HINT_T1);
        const __m512 wv = wload<TY>(rows[i], e, m);
        for (int j = 0; j < T; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
      }
    }
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < T; ++j) out[i * kFT + j] += hsum(acc[i][j]);
  }
}

template <TensorType TY, int R>
constexpr FTileFn kFRow[kFT] = {ftile<TY, R, 1>, ftile<TY, R, 2>, ftile<TY, R, 3>, ftile<TY, R, 4>};

template <TensorType TY>
FTileFn ftile_fn(int nr, int nt) {
  switch (nr) {
    case 1:
      return kFRow<TY, 1>[nt - 1];
    case 2:
      return kFRow<TY, 2>[nt - 1];
    case 3:
      return kFRow<TY, 3>[nt - 1];
    default:
      return kFRow<TY, 4>[nt - 1];
  }
}

// ---------------------------------------------------------------------------------------------
// Fused matvec (decode, one token): blocks decoded straight into registers, no scratch copy.
// A unit is what one decode step reads: 4 blocks of 32 for the simple formats, one super-block of
// 256 for the K formats, as kSteps vectors of 64 unsigned quants w = q + kOff with per-lane f32
// scales (weight scale times activation scale), plus the mins of the formats that have them. The
// offset comes out through the activation sums: sum (w - kOff) a = sum w a - kOff * sum a.

template <TensorType TY>
struct Dec;
template <>
struct Dec<TensorType::Q4_0> {
  static constexpr int kUnit = 128, kSteps = 2, kOff = 8, kBlk = 32, kBytes = 18, kQs = 2;
  static constexpr bool kMins = false;
};
template <>
struct Dec<TensorType::Q4_1> {
  static constexpr int kUnit = 128, kSteps = 2, kOff = 0, kBlk = 32, kBytes = 20, kQs = 4;
  static constexpr bool kMins = true;
};
template <>
struct Dec<TensorType::Q5_0> {
  static constexpr int kUnit = 128, kSteps = 2, kOff = 16, kBlk = 32, kBytes = 22, kQs = 6;
  static constexpr bool kMins = false;
};
template <>
struct Dec<TensorType::Q5_1> {
  static constexpr int kUnit = 128, kSteps = 2, kOff = 0, kBlk = 32, kBytes = 24, kQs = 8;
  static constexpr bool kMins = true;
};
template <>
struct Dec<TensorType::Q8_0> {
  static constexpr int kUnit = 128, kSteps = 2, kOff = 128, kBlk = 32, kBytes = 34, kQs = 2;
  static constexpr bool kMins = false;
};
template <>
struct Dec<TensorType::Q4_K> {
  static constexpr int kUnit = 256, kSteps = 4, kOff = 0, kBlk = 256, kBytes = 144, kQs = 16;
  static constexpr bool kMins = true;
};
template <>
struct Dec<TensorType::Q5_K> {
  static constexpr int kUnit = 256, kSteps = 4, kOff = 0, kBlk = 256, kBytes = 176, kQs = 48;
  static constexpr bool kMins = true;
};
template <>
struct Dec<TensorType::Q6_K> {
  static constexpr int kUnit = 256, kSteps = 4, kOff = 32, kBlk = 256, kBytes = 210;
  static constexpr bool kMins = false;
};
// IQ4_NL: Q4_0's layout, each nibble taken to its level (signed bytes of nearly the whole range,
// so biased by 128 as Q8_0's are).
template <>
struct Dec<TensorType::IQ4_NL> {
  static constexpr int kUnit = 128, kSteps = 2, kOff = 128, kBlk = 32, kBytes = 18, kQs = 2;
  static constexpr bool kMins = false;
};
// Q3_K: q + 4 in [0, 7], a scale per 16 elements.
template <>
struct Dec<TensorType::Q3_K> {
  static constexpr int kUnit = 256, kSteps = 4, kOff = 4, kBlk = 256, kBytes = 110;
  static constexpr bool kMins = false;
};
// Q2_K: q in [0, 3], a scale and a min per 16 elements (the mins go through the activations' lane
// sums in matvec_unit, not through kMins, which is per block of 32).
template <>
struct Dec<TensorType::Q2_K> {
  static constexpr int kUnit = 256, kSteps = 4, kOff = 0, kBlk = 256, kBytes = 84;
  static constexpr bool kMins = false;
};
// IQ4_XS: IQ4_NL's levels, blocks of 32 with a 6-bit scale each in super-blocks of 256.
template <>
struct Dec<TensorType::IQ4_XS> {
  static constexpr int kUnit = 256, kSteps = 4, kOff = 128, kBlk = 256, kBytes = 136;
  static constexpr bool kMins = false;
};

// The IQ4 levels in every 128-bit lane (VPSHUFB takes a nibble to its level).
LC_TARGET inline __m512i iq4_levels512() {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels)));
}

LC_TARGET inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
LC_TARGET inline uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Lanes 0-7 get v[2s], lanes 8-15 get v[2s + 1] (v: up to 16 floats).
LC_TARGET inline __m512 lanes_pair(__m512 v, int s) {
  const __m512i idx = _mm512_add_epi32(
      _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_set1_epi32(2 * s));
  return _mm512_permutexvar_ps(idx, v);
}

// 32 packed bytes -> 64 nibbles [low nibbles, high nibbles] (K formats' sub-block pairs).
LC_TARGET inline __m512i nibbles_lohi(__m256i v) {
  const __m512i z = _mm512_inserti64x4(_mm512_zextsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
  return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

// Word indices (into the 64 16-bit words at the start of a unit of 4 blocks of W words whose
// quants start at word H) that collect the 4 blocks' 16-byte quants into one vector.
template <int W, int H>
constexpr std::array<uint16_t, 32> qs_words() {
  std::array<uint16_t, 32> v{};
  for (int k = 0; k < 32; ++k) v[k] = static_cast<uint16_t>(W * (k / 8) + H + k % 8);
  return v;
}
// ... and the header words: d (and m) of each block, then (Q5) the two words of each block's qh.
template <int W, bool kMin, int QH>
constexpr std::array<uint16_t, 32> head_words() {
  std::array<uint16_t, 32> v{};
  for (int j = 0; j < 4; ++j) {
    if (kMin) {
      v[2 * j] = static_cast<uint16_t>(W * j);
      v[2 * j + 1] = static_cast<uint16_t>(W * j + 1);
    } else {
      v[j] = static_cast<uint16_t>(W * j);
    }
    if (QH > 0) {
      v[8 + 2 * j] = static_cast<uint16_t>(W * j + QH);
      v[8 + 2 * j + 1] = static_cast<uint16_t>(W * j + QH + 1);
    }
  }
  return v;
}

constexpr std::array<uint16_t, 32> q8_words(int first_block) {
  std::array<uint16_t, 32> v{};
  const int base = first_block == 0 ? 0 : 32;
  for (int k = 0; k < 32; ++k)
    v[k] = static_cast<uint16_t>(17 * (first_block + k / 16) + 1 + k % 16 - base);
  return v;
}

template <TensorType TY>
struct SimpleIdx {
  using D = Dec<TY>;
  static constexpr bool kQ5 = TY == TensorType::Q5_0 || TY == TensorType::Q5_1;
  alignas(64) static constexpr std::array<uint16_t, 32> qs = qs_words<D::kBytes / 2, D::kQs / 2>();
  alignas(64) static constexpr std::array<uint16_t, 32> head = head_words < D::kBytes / 2, D::kMins,
                                                        kQ5 ? D::kQs / 2 - 2 : 0 > ();
  // Q8_0: blocks 0-1 (words from 0) and 2-3 (words from 32) of 16 quant words each.
  alignas(64) static constexpr std::array<uint16_t, 32> q8a = q8_words(0);
  alignas(64) static constexpr std::array<uint16_t, 32> q8b = q8_words(2);
};

LC_TARGET inline __mmask32 words_mask(int n) {
  return n >= 32 ? ~__mmask32{0} : n <= 0 ? __mmask32{0} : (__mmask32{1} << n) - 1;
}

// Simple formats: the nb (<= 4) blocks at p (kPart: the last unit of a row, nb < 4, nothing past
// its blocks is read), da4 their activation scales.
template <TensorType TY, bool kPart>
LC_TARGET inline void dec_simple(const uint8_t* p, int nb, __m128 da4, __m512i* w, __m512* ws,
                                 __m128* mins) {
  using D = Dec<TY>;
  using I = SimpleIdx<TY>;
  constexpr int B = D::kBytes;
  const int words = (kPart ? nb : 4) * B / 2;
  const __m512i z0 = kPart ? _mm512_maskz_loadu_epi16(words_mask(words), p) : _mm512_loadu_si512(p);
  const __m512i z1 = _mm512_maskz_loadu_epi16(words_mask(words - 32), p + 64);
  const __m512i head = _mm512_permutex2var_epi16(z0, _mm512_load_si512(I::head.data()), z1);
  __m128 d4;
  if constexpr (D::kMins) {
    const __m256 dm = _mm256_cvtph_ps(_mm512_castsi512_si128(head));  // d0 m0 d1 m1 ...
    const __m256 sorted = _mm256_permutevar8x32_ps(dm, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    d4 = _mm256_castps256_ps128(sorted);
    *mins = _mm256_extractf128_ps(sorted, 1);
  } else {
    d4 = _mm_cvtph_ps(_mm512_castsi512_si128(head));
    (void)mins;
  }
  const __m512 s16 = _mm512_zextps128_ps512(_mm_mul_ps(d4, da4));
  ws[0] = lanes_pair(s16, 0);
  ws[1] = lanes_pair(s16, 1);

  if constexpr (TY == TensorType::Q8_0) {
    // Quants at words 1..16, 18..33 (from z0, z1) and 35..50, 52..67 (from z1, z2).
    const __m512i z2 = _mm512_maskz_loadu_epi16(words_mask(words - 64), p + 128);
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    w[0] =
        _mm512_xor_si512(_mm512_permutex2var_epi16(z0, _mm512_load_si512(I::q8a.data()), z1), flip);
    w[1] =
        _mm512_xor_si512(_mm512_permutex2var_epi16(z1, _mm512_load_si512(I::q8b.data()), z2), flip);
  } else {
    const __m512i x = _mm512_permutex2var_epi16(z0, _mm512_load_si512(I::qs.data()), z1);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_and_si512(x, m4);                        // lo A, lo B, lo C, lo D
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);  // hi A, hi B, hi C, hi D
    // Element order of a block is its low nibbles, then its high nibbles.
    w[0] = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi);
    w[1] = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi);
    if constexpr (I::kQ5) {
      const __m128i qh = _mm512_extracti32x4_epi32(head, 1);  // qh of blocks 0..3
      const __m512i b4 = _mm512_set1_epi8(16);
      w[0] = _mm512_mask_add_epi8(w[0], static_cast<uint64_t>(_mm_cvtsi128_si64(qh)), w[0], b4);
      w[1] = _mm512_mask_add_epi8(w[1], static_cast<uint64_t>(_mm_extract_epi64(qh, 1)), w[1], b4);
    }
    if constexpr (TY == TensorType::IQ4_NL) {
      const __m512i levels = iq4_levels512(), flip = _mm512_set1_epi8(static_cast<char>(0x80));
      for (int s = 0; s < 2; ++s) w[s] = _mm512_xor_si512(_mm512_shuffle_epi8(levels, w[s]), flip);
    }
  }
}

// 8 unsigned bytes (lo: 0-3, hi: 4-7) as floats.
LC_TARGET inline __m256 bytes8(uint32_t lo, uint32_t hi) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, static_cast<int>(hi), static_cast<int>(lo))));
}

// Step s of a super-block: lane j covers elements 64s + 4j..: sub-block of 16 number 4s + j / 4.
// v16 (one value per sub-block of 16) to the lanes of step s.
LC_TARGET inline __m512 per16_lanes(__m512 v16, int s) {
  const __m512i quarter = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(_mm512_add_epi32(quarter, _mm512_set1_epi32(4 * s)), v16);
}

// Q2_K / Q3_K: element 128h + 32j + l takes bits 2j, 2j + 1 of qs[32h + l] (Q3_K: plus bit 4h + j
// of hmask[l] as bit 2). Step s holds j = 2 (s % 2) and the next one of half h = s / 2.
template <bool kQ3>
LC_TARGET inline __m512i q23k_step(const uint8_t* qs, __m512i hm, int s) {
  const int h = s / 2, j = 2 * (s % 2);
  const __m512i v =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h)));
  const __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(2 * j)),
                                        _mm256_set1_epi16(static_cast<int16_t>(2 * j + 2)), 1);
  const __m512i lo = _mm512_and_si512(_mm512_srlv_epi16(v, sh), _mm512_set1_epi8(3));
  if constexpr (!kQ3) {
    (void)hm;
    return lo;
  } else {
    const __m512i sel =
        _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << (4 * h + j))),
                           _mm256_set1_epi8(static_cast<char>(1 << (4 * h + j + 1))), 1);
    return _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(hm, sel), lo, _mm512_set1_epi8(4));
  }
}

LC_TARGET inline __m128i q3k_scales16(const uint8_t* blk);  // simd_x86_matmul.h

// K formats: one super-block at p, da8 the activation scales of its 8 blocks of 32. Q2_K also
// gives wm, each lane's -(dmin * m) (its mins per 16 elements).
template <TensorType TY>
LC_TARGET inline void dec_k(const uint8_t* p, __m256 da8, __m512i* w, __m512* ws, __m256* mins,
                            __m512* wm) {
  using D = Dec<TY>;
  const __m512 da16 = _mm512_zextps256_ps512(da8);
  if constexpr (TY == TensorType::Q4_K || TY == TensorType::Q5_K) {
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(load32(p))));
    const KScaleWords kw = k_scale_words(p + 4);
    // Weight scale d * sc (as the reference rounds it), times the activation scale.
    const __m256 sc =
        _mm256_mul_ps(_mm256_mul_ps(bytes8(kw.sc[0], kw.sc[1]), _mm256_broadcastss_ps(dd)), da8);
    // x = d * sc * q - dmin * m: the mins enter as -(dmin * m).
    *mins = _mm256_sub_ps(
        _mm256_setzero_ps(),
        _mm256_mul_ps(bytes8(kw.m[0], kw.m[1]), _mm256_broadcastss_ps(_mm_movehdup_ps(dd))));
    __m512i qh = _mm512_setzero_si512();
    if constexpr (TY == TensorType::Q5_K)
      qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
    const __m512 sc16 = _mm512_zextps256_ps512(sc);
    for (int s = 0; s < 4; ++s) {
      w[s] =
          nibbles_lohi(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + D::kQs + 32 * s)));
      if constexpr (TY == TensorType::Q5_K) {
        const __m512i sel =
            _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << (2 * s))),
                               _mm256_set1_epi8(static_cast<char>(1 << (2 * s + 1))), 1);
        w[s] =
            _mm512_mask_add_epi8(w[s], _mm512_test_epi8_mask(qh, sel), w[s], _mm512_set1_epi8(16));
      }
      ws[s] = lanes_pair(sc16, s);
    }
  } else if constexpr (TY == TensorType::Q3_K || TY == TensorType::Q2_K) {
    constexpr bool kQ3 = TY == TensorType::Q3_K;
    __m512 sc;
    __m512i hm = _mm512_setzero_si512();
    if constexpr (kQ3) {
      hm = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q3k_scales16(p))),
                         _mm512_set1_ps(_cvtsh_ss(load16(p + 108))));
      (void)wm;
    } else {
      const __m512i sb = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      const __m512i m4 = _mm512_set1_epi32(0x0F);
      sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(sb, m4)),
                         _mm512_set1_ps(_cvtsh_ss(load16(p + 80))));
      const __m512 mn = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(sb, 4)),
                                      _mm512_set1_ps(-_cvtsh_ss(load16(p + 82))));
      for (int s = 0; s < 4; ++s) wm[s] = per16_lanes(mn, s);
    }
    const uint8_t* qs = kQ3 ? p + 32 : p + 16;
    for (int s = 0; s < 4; ++s) {
      w[s] = q23k_step<kQ3>(qs, hm, s);
      ws[s] = _mm512_mul_ps(per16_lanes(sc, s), lanes_pair(da16, s));
    }
    (void)mins;
  } else if constexpr (TY == TensorType::IQ4_XS) {
    // The 8 scales (iq4xs_scale, less 32) times d and the blocks' activation scales.
    const __m256i ls = _mm256_or_si256(
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(load32(p + 4))),
                                           _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                         _mm256_set1_epi32(0xF)),
        _mm256_slli_epi32(
            _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(load16(p + 2)),
                                               _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                             _mm256_set1_epi32(3)),
            4));
    const __m512 sc16 = _mm512_zextps256_ps512(
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))),
                      _mm256_mul_ps(da8, _mm256_set1_ps(_cvtsh_ss(load16(p))))));
    const __m512i levels = iq4_levels512(), flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int s = 0; s < 4; ++s) {
      // Blocks 2s and 2s + 1: [lo 2s, lo 2s+1, hi 2s, hi 2s+1] to the elements' order.
      const __m512i z =
          nibbles_lohi(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8 + 32 * s)));
      const __m512i e = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
      w[s] = _mm512_xor_si512(_mm512_shuffle_epi8(levels, e), flip);
      ws[s] = lanes_pair(sc16, s);
    }
    (void)mins;
    (void)wm;
  } else {
    static_assert(TY == TensorType::Q6_K);
    (void)wm;
    const float d = _cvtsh_ss(load16(p + 208));
    const __m512 sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                        reinterpret_cast<const __m128i*>(p + 192)))),
                                    _mm512_set1_ps(d));
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
    const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i sh45 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    for (int h = 0; h < 2; ++h) {
      const __m512i l = _mm512_loadu_si512(p + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 128 + 32 * h)));
      const __m512i h01 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh01), m2), 4);
      const __m512i h45 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh45), m2), 4);
      w[2 * h] = _mm512_or_si512(_mm512_and_si512(l, m4), h01);
      w[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), h45);
    }
    for (int s = 0; s < 4; ++s) ws[s] = _mm512_mul_ps(per16_lanes(sc, s), lanes_pair(da16, s));
    (void)mins;
  }
}

// One unit of R rows against the token: acc (per-lane dots) and macc (mins times block sums).
// kPart: the last unit of a simple format with nb < 4 blocks.
template <TensorType TY, int R, bool kPart>
LC_TARGET inline void matvec_unit(__m512 (&acc)[R], __m256 (&macc)[R], const uint8_t* const* rows,
                                  const ActQ8& a, int64_t u, int nb, int64_t ahead) {
  using D = Dec<TY>;
  constexpr bool kSimple = D::kBlk == 32;
  const int64_t e0 = u * D::kUnit;
  const int n_el = kPart ? nb * 32 : D::kUnit;
  __m512i at[D::kSteps], nc[D::kSteps];
  for (int s = 0; s < D::kSteps; ++s) {
    const int left = n_el - 64 * s;
    const __mmask64 mb = left >= 64 ? ~0ull : left <= 0 ? 0ull : (1ull << left) - 1;
    at[s] = _mm512_maskz_loadu_epi8(mb, a.q + e0 + 64 * s);
    nc[s] = _mm512_setzero_si512();
    if constexpr (D::kOff != 0)
      nc[s] = _mm512_sub_epi32(
          nc[s], _mm512_dpbusd_epi32(nc[s], _mm512_set1_epi8(static_cast<char>(D::kOff)), at[s]));
  }
  const __mmask8 mblk = static_cast<__mmask8>((1u << (n_el / 32)) - 1);
  const __m256 da8 = _mm256_maskz_loadu_ps(mblk, a.d + e0 / kActBlock);
  __m256 sa = _mm256_setzero_ps();
  if constexpr (D::kMins) sa = _mm256_maskz_loadu_ps(mblk, a.s + e0 / kActBlock);
  // Q2_K's mins per 16: each lane's activation sum times its block's scale, for all the rows.
  constexpr bool kMins16 = TY == TensorType::Q2_K;
  __m512 lsum[D::kSteps];
  if constexpr (kMins16) {
    const __m512 da16 = _mm512_zextps256_ps512(da8);
    for (int s = 0; s < D::kSteps; ++s)
      lsum[s] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                                     _mm512_set1_epi8(1), at[s])),
                              lanes_pair(da16, s));
  }
  for (int i = 0; i < R; ++i) {
    __m512i wq[D::kSteps];
    __m512 ws[D::kSteps], wm[D::kSteps];
    const uint8_t* p = rows[i] + e0 / D::kBlk * D::kBytes;
    // The same place in the next group of rows, into L2 (prefetch never faults past the end).
    const char* pf = reinterpret_cast<const char*>(p) + ahead;
    for (int c = 0; c < D::kUnit / D::kBlk * D::kBytes; c += 64) _mm_prefetch(pf + c, _MM_HINT_T1);
    if constexpr (kSimple) {
      __m128 mn = _mm_setzero_ps();
      dec_simple<TY, kPart>(p, nb, _mm256_castps256_ps128(da8), wq, ws, &mn);
      if constexpr (D::kMins) macc[i] = _mm256_fmadd_ps(_mm256_zextps128_ps256(mn), sa, macc[i]);
    } else {
      __m256 mn = _mm256_setzero_ps();
      dec_k<TY>(p, da8, wq, ws, &mn, wm);
      if constexpr (D::kMins) macc[i] = _mm256_fmadd_ps(mn, sa, macc[i]);
    }
    for (int s = 0; s < D::kSteps; ++s) {
      if (kPart && 64 * s >= n_el) break;
      const __m512i dot = _mm512_dpbusd_epi32(nc[s], wq[s], at[s]);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), ws[s], acc[i]);
      if constexpr (kMins16) acc[i] = _mm512_fmadd_ps(lsum[s], wm[s], acc[i]);
    }
  }
}

LC_TARGET inline float hsum256(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

constexpr int kMatvecRows = 4;
constexpr int64_t kMatvecAhead = 6144;

template <TensorType TY, int R>
LC_TARGET void matvec_tile(const WeightMatrix& w, int64_t r, const ActQ8& a, float* y) {
  using D = Dec<TY>;
  const uint8_t* rows[R];
  __m512 acc[R];
  __m256 macc[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = w.row(r + i);
    acc[i] = _mm512_setzero_ps();
    macc[i] = _mm256_setzero_ps();
  }
  const int64_t nu = w.n_in / D::kUnit;
  // Prefetch distance: whole tiles, at least kMatvecAhead bytes (short rows would otherwise ask
  // for the next tile only about one DRAM latency before it is used).
  const int64_t tile = static_cast<int64_t>(R * w.row_bytes);
  const int64_t ahead = tile * std::max<int64_t>(1, (kMatvecAhead + tile - 1) / tile);
  for (int64_t u = 0; u < nu; ++u) matvec_unit<TY, R, false>(acc, macc, rows, a, u, 0, ahead);
  if constexpr (D::kBlk == 32) {
    const int rest = static_cast<int>(w.n_in % D::kUnit / 32);
    if (rest != 0) matvec_unit<TY, R, true>(acc, macc, rows, a, nu, rest, ahead);
  }
  for (int i = 0; i < R; ++i) y[r + i] = hsum(acc[i]) + (D::kMins ? hsum256(macc[i]) : 0.0f);
}

#define LC_MATVEC_K23_IQ4  // simd_x86_matvec.h takes Q2_K, Q3_K, IQ4_NL and IQ4_XS too
#include "kernels/simd_x86_matvec.h"

// Many tokens, 32-element-block types: simd_avx512_panel.h.
LC_TARGET bool matmul_panel(const WeightMatrix& w, const ActQ8& a, int64_t n_tok, int64_t r0,
                            int64_t r1, float* y, MatmulRowScratch& sc);
// F32 / F16 / BF16 weights: the row-major tile for every token count (the many-token BF16
// kernels of simd_avx512_bf16.cpp take over where the CPU has AVX512_BF16).
template <TensorType>
LC_TARGET bool matmul_f_panel(const WeightMatrix&, const float*, int64_t, int64_t, int64_t, float*,
                              MatmulRowScratch&) {
  return false;
}

#include "kernels/simd_x86_matmul.h"
// After the shared part: uses its unpackers and row-major tiles.
#include "kernels/simd_avx512_panel.h"

const KernelTable kTable = {
    Isa::Avx512,
    quantize_act,
    nullptr,
    matmul_input,
    matmul_rows,
    vdot,
    axpy,
    dot_columns,
    dot_rows,
    max_slice_dots,
    dot_columns_f16,
    dot_tiles_u8s8,
    add_inplace,
    f16_to_f32,
    f32_to_f16,
    rmsnorm,
    silu_mul,
    softmax_inplace,
    attn_scores,
    attn_scores_kt,
    exp_shift,
    attn_accum,
    kv_avx512::attn_scores_f16,
    kv_avx512::attn_accum_f16,
    kv_avx512::attn_scores_q8_0,
    kv_avx512::attn_accum_q8_0,
};

}  // namespace

const KernelTable* avx512_kernel_table() { return &kTable; }

}  // namespace lc

#else  // not x86-64

namespace lc {
const KernelTable* avx512_kernel_table() { return nullptr; }
}  // namespace lc

#endif
