// The AVX2 kernel table (AVX2 + FMA + F16C). Every function here carries the target attribute
// (LC_TARGET) and is only reached after dispatch.cpp checked the CPU.
//
// Integer matmul: one token decodes the blocks straight into registers (simd_avx2_matvec.h); many
// tokens multiply panels of 8 repacked rows (simd_avx2_panel.h); rows outside whole panels and a
// few tokens use row-major tiles of weights unpacked to signed int8 (simd_x86_matmul.h). VPMADDUBSW
// wants u8 x s8, so there each product uses |w| and the activation with w's sign moved onto it (no
// overflow: 2 * 128 * 127 < 32768). Block results are scaled in f32.
#include "core/fp16.h"
#include "kernels/dispatch.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "core/error.h"
#include "kernels/quant_blocks.h"
#include "kernels/simd_avx2_util.h"
#include "kernels/simd_kv.h"

namespace lc {
namespace {

using namespace simd256;  // NOLINT(google-build-using-namespace): the shared helpers

// ---------------------------------------------------------------------------------------------
// Helpers.

LC_TARGET inline double hsum_pd(__m256d v) {
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  h = _mm_add_sd(h, _mm_unpackhi_pd(h, h));
  return _mm_cvtsd_f64(h);
}

// exp(x) to about 2 ulp: x = n ln2 + r, |r| <= ln2 / 2, degree-7 Taylor polynomial, 2^n built in
// the exponent bits. Below -87.3 the result is 0 (no subnormals), above 88.7 it is +inf; NaN
// stays NaN.
LC_TARGET inline __m256 exp256(__m256 x) {
  const __m256 xc = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(),
                       _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(std::numeric_limits<float>::infinity()),
                       _mm256_cmp_ps(x, _mm256_set1_ps(88.0f), _CMP_GT_OQ));
  return y;
}

// ---------------------------------------------------------------------------------------------
// Row ops.

LC_TARGET float vdot(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i < n; i += 8) {
    const __m256i m = lanes(n - i);
    s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s0);
  }
  return hsum(_mm256_add_ps(s0, s1));
}

LC_TARGET void axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i m = lanes(n - i);
    _mm256_maskstore_ps(
        y + i, m, _mm256_fmadd_ps(va, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
  }
}

// Columns of f32 or of half precision, 8 at a time.
LC_TARGET inline __m256 load_cols(const float* p) { return _mm256_loadu_ps(p); }
LC_TARGET inline __m256 load_cols(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float col_value(float x) { return x; }
inline float col_value(uint16_t x) { return fp16_to_f32(x); }

// Four accumulators of 8 columns stay in registers over all d dimensions; the last columns one
// by one.
template <typename T>
LC_TARGET void dot_columns_t(const T* const* rows, const float* q, int64_t d, int64_t n,
                             float* out) {
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t e = 0; e < d; ++e) {
      const __m256 qe = _mm256_set1_ps(q[e]);
      const T* r = rows[e] + c;
      a0 = _mm256_fmadd_ps(qe, load_cols(r), a0);
      a1 = _mm256_fmadd_ps(qe, load_cols(r + 8), a1);
      a2 = _mm256_fmadd_ps(qe, load_cols(r + 16), a2);
      a3 = _mm256_fmadd_ps(qe, load_cols(r + 24), a3);
    }
    _mm256_storeu_ps(out + c, a0);
    _mm256_storeu_ps(out + c + 8, a1);
    _mm256_storeu_ps(out + c + 16, a2);
    _mm256_storeu_ps(out + c + 24, a3);
  }
  for (; c < n; ++c) {
    float a = 0;
    for (int64_t e = 0; e < d; ++e) a += q[e] * col_value(rows[e][c]);
    out[c] = a;
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

// Four columns' 16 bytes widened to 16 bits and multiplied by the query quad x, pairs added
// (exact): [c, c, c+1, c+1 | c+2, c+2, c+3, c+3].
LC_TARGET inline __m256i quad_products(const uint8_t* p, __m256i x) {
  return _mm256_madd_epi16(
      _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), x);
}

// 16 columns at a time; the two pairs of each column are added at the end.
LC_TARGET void dot_tiles_u8s8(const uint8_t* a, const int8_t* q, int64_t k4, int64_t tile_k4,
                              int64_t n_tiles, int32_t* out) {
  for (int64_t t = 0; t < n_tiles; ++t, a += tile_k4 * 256, out += 64)
    for (int64_t c = 0; c < 64; c += 16) {
      __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t g = 0; g < k4; ++g) {
        int32_t quad;
        std::memcpy(&quad, q + 4 * g, 4);
        const __m256i x = _mm256_cvtepi8_epi16(_mm_set1_epi32(quad));  // q0..q3, four times
        const uint8_t* p = a + g * 256 + c * 4;
        s0 = _mm256_add_epi32(s0, quad_products(p, x));
        s1 = _mm256_add_epi32(s1, quad_products(p + 16, x));
        s2 = _mm256_add_epi32(s2, quad_products(p + 32, x));
        s3 = _mm256_add_epi32(s3, quad_products(p + 48, x));
      }
      // hadd: [c, c+1, c+4, c+5 | c+2, c+3, c+6, c+7]; the permute puts the columns in order.
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c),
                          _mm256_permute4x64_epi64(_mm256_hadd_epi32(s0, s1), 0xD8));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c + 8),
                          _mm256_permute4x64_epi64(_mm256_hadd_epi32(s2, s3), 0xD8));
    }
}

LC_TARGET void dot_rows(const float* a, int64_t n, int64_t d, int64_t stride, const float* q,
                        float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = vdot(a + i * stride, q, d);
}

#include "kernels/simd_x86_slices.h"

LC_TARGET void add_inplace(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

LC_TARGET void f16_to_f32(const uint16_t* h, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(h[i]);
}

// VCVTPS2PH rounds to nearest even as f32_to_fp16 does; only a NaN keeps part of its payload
// there, so the (rare) vectors holding one are redone with the scalar definition.
LC_TARGET void f32_to_f16(const float* x, uint16_t* h, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i),
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0)
      for (int64_t j = i; j < i + 8; ++j) h[j] = f32_to_fp16(x[j]);
  }
  for (; i < n; ++i) h[i] = f32_to_fp16(x[i]);
}

LC_TARGET void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  double ss = hsum_pd(_mm256_add_pd(s0, s1));
  for (; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) y[i] = x[i] * scale * w[i];
}

LC_TARGET void silu_mul(float* a, const float* b, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {  // plain stores: see exp_shift
    const __m256 v = _mm256_loadu_ps(a + i);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), v));
    const __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, e));
    _mm256_storeu_ps(a + i, _mm256_mul_ps(s, _mm256_loadu_ps(b + i)));
  }
  if (i < n) {
    const __m256i m = lanes(n - i);
    const __m256 v = _mm256_maskload_ps(a + i, m);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), v));
    const __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, e));
    _mm256_maskstore_ps(a + i, m, _mm256_mul_ps(s, _mm256_maskload_ps(b + i, m)));
  }
}

LC_TARGET double exp_shift(const float* x, float mx, float* y, int64_t n) {
  const __m256 vm = _mm256_set1_ps(mx);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  // Whole vectors with plain loads and stores (a masked store costs several times a plain one on
  // AMD cores), the last part masked; the same sums either way.
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(y + i, e);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  if (i < n) {
    const __m256i m = lanes(n - i);
    const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(m),
                                   exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vm)));
    _mm256_maskstore_ps(y + i, m, e);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  return hsum_pd(_mm256_add_pd(s0, s1));
}

LC_TARGET void softmax_inplace(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  __m256 vmax = _mm256_set1_ps(mx);
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  mx = hmax(vmax);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  const double sum = exp_shift(x, mx, x, n);
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= static_cast<float>(1.0 / sum);
}

// ---------------------------------------------------------------------------------------------
// Attention tiles (those over rows of keys and values: simd_avx2_kv.cpp, for f32 too).

// Transposed keys: R (<= 4) query rows x 16 keys (2 vectors of 8) per pass over the head's
// elements, so that each key vector loaded serves every row; the last keys of the tile masked.
template <int R>
LC_TARGET void scores_kt_rows(const float* q, int64_t q_hs, const float* kt, int64_t ld, int64_t n,
                              int64_t hd, float scale, float* s, int64_t ns, float* mx) {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 vmax[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) vmax[r] = ninf;
  for (int64_t j = 0; j < n; j += 16) {
    const bool whole = j + 16 <= n;
    const __m256i m0 = lanes(n - j), m1 = lanes(n - j - 8);
    __m256 a[R][2];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = _mm256_setzero_ps();
    for (int64_t e = 0; e < hd; ++e) {
      const float* kr = kt + e * ld + j;
      const __m256 k0 = whole ? _mm256_loadu_ps(kr) : _mm256_maskload_ps(kr, m0);
      const __m256 k1 = whole ? _mm256_loadu_ps(kr + 8) : _mm256_maskload_ps(kr + 8, m1);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m256 qe = _mm256_broadcast_ss(q + r * q_hs + e);
        a[r][0] = _mm256_fmadd_ps(qe, k0, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(qe, k1, a[r][1]);
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 v0 = _mm256_mul_ps(a[r][0], vs), v1 = _mm256_mul_ps(a[r][1], vs);
      float* sr = s + r * ns + j;
      if (whole) {
        _mm256_storeu_ps(sr, v0);
        _mm256_storeu_ps(sr + 8, v1);
        vmax[r] = _mm256_max_ps(vmax[r], _mm256_max_ps(v0, v1));
      } else {
        _mm256_maskstore_ps(sr, m0, v0);
        _mm256_maskstore_ps(sr + 8, m1, v1);
        vmax[r] = _mm256_max_ps(vmax[r], _mm256_blendv_ps(ninf, v0, _mm256_castsi256_ps(m0)));
        vmax[r] = _mm256_max_ps(vmax[r], _mm256_blendv_ps(ninf, v1, _mm256_castsi256_ps(m1)));
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) mx[r] = hmax(vmax[r]);
}

using ScoresKtFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, int64_t, float,
                            float*, int64_t, float*);
constexpr ScoresKtFn kScoresKt[4] = {scores_kt_rows<1>, scores_kt_rows<2>, scores_kt_rows<3>,
                                     scores_kt_rows<4>};

LC_TARGET void attn_scores_kt(const float* q, int64_t q_hs, int64_t n_heads, const float* kt,
                              int64_t ld, int64_t n, int64_t hd, float scale, float* s, int64_t ns,
                              float* mx) {
  for (int64_t h0 = 0; h0 < n_heads; h0 += 4)
    kScoresKt[std::min<int64_t>(4, n_heads - h0) - 1](q + h0 * q_hs, q_hs, kt, ld, n, hd, scale,
                                                      s + h0 * ns, ns, mx + h0);
}

// ---------------------------------------------------------------------------------------------
// Matmul.

LC_TARGET void quantize_act(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < n / kActBlock; ++b) {
    const float* xb = x + b * kActBlock;
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
#pragma GCC unroll 16
    for (int c = 0; c < 4; ++c) {
      v[c] = _mm256_loadu_ps(xb + 8 * c);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[c]));
    }
    const float db = hmax(amax) / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i iv[4];
#pragma GCC unroll 16
    for (int c = 0; c < 4; ++c)
      iv[c] = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v[c], vid), hi), lo));
    const __m256i sum4 =
        _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum4), _mm256_extracti128_si256(sum4, 1));
    s4 = _mm_hadd_epi32(s4, s4);
    s4 = _mm_hadd_epi32(s4, s4);
    // packs work per 128-bit lane: the permute restores element order.
    const __m256i p16 = _mm256_packs_epi32(iv[0], iv[1]), p16b = _mm256_packs_epi32(iv[2], iv[3]);
    const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16, p16b), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kActBlock), p8);
    d[b] = db;
    s[b] = db * static_cast<float>(_mm_cvtsi128_si32(s4));
  }
}

constexpr int kQR = 4, kQT = 2;

// out[i * kQT + j] = sum over elements [k0, k0 + kn) of unpacked row i (wq[i], ws[i], chunk
// relative) times activation row t + j (absolute offsets into a).
using QTileFn = void (*)(const int8_t* const* wq, const float* const* ws, const ActQ8& a, int64_t t,
                         int64_t k0, int64_t kn, float* out);

template <int R, int T>
LC_TARGET void qtile(const int8_t* const* wq, const float* const* ws, const ActQ8& a, int64_t t,
                     int64_t k0, int64_t kn, float* out) {
  const int64_t nb32 = a.n_in / kActBlock;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R][T];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) acc[r][j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < kn; i += 32) {
    __m256i at[T];
    __m256 da[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) {
      at[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + (t + j) * a.n_in + k0 + i));
      da[j] = _mm256_broadcast_ss(a.d + (t + j) * nb32 + (k0 + i) / kActBlock);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq[r] + i));
      const __m256i aw = _mm256_abs_epi8(w);
      const __m256 s = _mm256_loadu_ps(ws[r] + i / 4);
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) {
        const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(at[j], w));
        const __m256i dot = _mm256_madd_epi16(p16, ones);
        acc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(s, da[j]), acc[r][j]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) out[r * kQT + j] = hsum(acc[r][j]);
}

template <int R>
constexpr QTileFn kQRow[kQT] = {qtile<R, 1>, qtile<R, 2>};

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

constexpr int kFR = 4, kFT = 3;
constexpr int64_t kKCF = 1024;  // f32-path K chunk: partial sums are reduced at its multiples

// out[i * kFT + j] = dot of weight row r + i with activation row t + j (x rows n_in apart) over
// elements [k0, k0 + kn), reduced to a scalar at every multiple of kKCF (so that any split of a
// row into chunks gives the same numbers).
using FTileFn = void (*)(const WeightMatrix& w, int64_t r, const float* x, int64_t t, int64_t k0,
                         int64_t kn, float* out);

constexpr int64_t kFtileAhead = 4096;
template <TensorType TY>
constexpr int64_t kWBytes = TY == TensorType::F32 ? 4 : 2;

// 8 weights from element i of a row.
template <TensorType TY>
LC_TARGET inline __m256 wload(const uint8_t* row, int64_t i) {
  if constexpr (TY == TensorType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  } else if constexpr (TY == TensorType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  } else {
    const __m256i h =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
  }
}

template <TensorType TY>
LC_TARGET inline float welem(const uint8_t* row, int64_t i) {
  if constexpr (TY == TensorType::F32) {
    return reinterpret_cast<const float*>(row)[i];
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    if constexpr (TY == TensorType::F16) return _cvtsh_ss(h);
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
}

template <TensorType TY, int R, int T>
LC_TARGET void ftile(const WeightMatrix& w, int64_t r, const float* x, int64_t t, int64_t k0,
                     int64_t kn, float* out) {
  const int64_t n = w.n_in;
  const uint8_t* rows[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    rows[i] = w.row(r + i);
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) out[i * kFT + j] = 0.0f;
  }
  const int64_t tile = static_cast<int64_t>(R * w.row_bytes);
  const int64_t ahead = tile * std::max<int64_t>(1, (kFtileAhead + tile - 1) / tile);
  for (int64_t c0 = k0; c0 < k0 + kn; c0 += kKCF) {
    const int64_t c1 = std::min(k0 + kn, c0 + kKCF);
    __m256 acc[R][T];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    int64_t e = c0;
    for (; e + 8 <= c1; e += 8) {
      __m256 xv[T];
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) xv[j] = _mm256_loadu_ps(x + (t + j) * n + e);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        // One token (decode) is bound by the weights' reads: the same place in the rows of a
        // tile kFtileAhead bytes on (whole tiles) goes into L2.
        if constexpr (T == 1)
          _mm_prefetch(reinterpret_cast<const char*>(rows[i] + e * kWBytes<TY>) + ahead,
                       _MM_HINT_T1);
        const __m256 wv = wload<TY>(rows[i], e);
#pragma GCC unroll 16
        for (int j = 0; j < T; ++j) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) {
        float v = hsum(acc[i][j]);
        for (int64_t k = e; k < c1; ++k) v += welem<TY>(rows[i], k) * x[(t + j) * n + k];
        out[i * kFT + j] += v;
      }
  }
}

template <TensorType TY, int R>
constexpr FTileFn kFRow[kFT] = {ftile<TY, R, 1>, ftile<TY, R, 2>, ftile<TY, R, 3>};

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

// Single token: simd_avx2_matvec.h (after the shared part, whose unpacking helpers it uses).
LC_TARGET bool matvec_q(const WeightMatrix& w, const ActQ8& a, int64_t r0, int64_t r1, float* y);
// Many tokens: simd_avx2_panel.h.
LC_TARGET bool matmul_panel(const WeightMatrix& w, const ActQ8& a, int64_t n_tok, int64_t r0,
                            int64_t r1, float* y, MatmulRowScratch& sc);
// Many tokens of F32 / F16 / BF16 weights: simd_avx2_fpanel.h.
template <TensorType TY>
LC_TARGET bool matmul_f_panel(const WeightMatrix& w, const float* x, int64_t n_tok, int64_t r0,
                              int64_t r1, float* y, MatmulRowScratch& sc);

#include "kernels/simd_x86_matmul.h"

// After the shared part: they use its unpackers and row-major tiles.
#include "kernels/simd_avx2_matvec.h"
#include "kernels/simd_avx2_panel.h"
//
#include "kernels/simd_avx2_fpanel.h"

const KernelTable kTable = {
    Isa::Avx2,
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
    kv_avx2::attn_scores_f32,
    attn_scores_kt,
    exp_shift,
    kv_avx2::attn_accum_f32,
    kv_avx2::attn_scores_f16,
    kv_avx2::attn_accum_f16,
    kv_avx2::attn_scores_q8_0,
    kv_avx2::attn_accum_q8_0,
};

}  // namespace

const KernelTable* avx2_kernel_table() { return &kTable; }

}  // namespace lc

#else  // not x86-64

namespace lc {
const KernelTable* avx2_kernel_table() { return nullptr; }
}  // namespace lc

#endif
