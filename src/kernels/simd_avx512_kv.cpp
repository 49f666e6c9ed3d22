// AVX-512 attention tiles over keys and values stored as F16 or Q8_0 (KvType): rows are converted
// to f32 in registers as they are loaded (F16: VCVTPH2PS; Q8_0: sign-extend, convert, times the
// block's scale; both exact), then used as by the f32 tiles of simd_avx512.cpp: scores take 4 keys
// x up to 4 query heads per step (each key row loaded and converted once for all the heads), value
// accumulation keeps up to 4 heads x 32 (F16) or 64 (Q8_0) dims of the accumulators in registers
// while the rows go past. Only reached through the AVX-512 table once dispatch.cpp checked the CPU.
#include "kernels/simd_kv.h"

#if defined(__x86_64__)

// See simd_avx512.cpp: g++ 12's AVX-512 headers trip -Wuninitialized (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/simd_avx512_util.h"

namespace lc::kv_avx512 {
namespace {

using namespace simd512;  // NOLINT(google-build-using-namespace): the shared helpers

// Rows ahead of use that the tiles prefetch (see kAttnAhead in simd_avx512.cpp).
constexpr int64_t kAhead = 24;

// Prefetches the lines of bytes [0, n) at p (never faults, also past the end of the cache).
LC_TARGET inline void prefetch(const void* p, int64_t n) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < n; b += 64) _mm_prefetch(c + b, _MM_HINT_T0);
  _mm_prefetch(c + n - 1, _MM_HINT_T0);
}

// Row loaders. A row (one head of one key) is `units` units of kW registers of 16 elements:
// load(j, u, out) converts unit u of row j, mask(u) gives the valid lanes of the unit's last
// register (the others are full), addr / unit_bytes locate the stored bytes.
struct F16Rows {
  static constexpr int kW = 1;
  const uint16_t* p;
  int64_t stride, units;
  __mmask16 tail;
  LC_TARGET F16Rows(const uint16_t* p_, int64_t stride_, int64_t hd)
      : p(p_),
        stride(stride_),
        units((hd + 15) / 16),
        tail(lanes(hd - 16 * ((hd + 15) / 16 - 1))) {}
  LC_TARGET __mmask16 mask(int64_t u) const {
    return u == units - 1 ? tail : static_cast<__mmask16>(0xFFFF);
  }
  LC_TARGET const void* addr(int64_t j, int64_t u) const { return p + j * stride + 16 * u; }
  static constexpr int64_t unit_bytes = 32;
  LC_TARGET void load(int64_t j, int64_t u, __m512* out) const {
    out[0] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(u), p + j * stride + 16 * u));
  }
};

struct Q8Rows {
  static constexpr int kW = 2;
  const BlockQ8_0* p;
  int64_t stride, units;
  LC_TARGET Q8Rows(const BlockQ8_0* p_, int64_t stride_, int64_t hd)
      : p(p_), stride(stride_), units(hd / kQK) {}
  LC_TARGET __mmask16 mask(int64_t) const { return static_cast<__mmask16>(0xFFFF); }
  LC_TARGET const void* addr(int64_t j, int64_t u) const { return p + j * stride + u; }
  static constexpr int64_t unit_bytes = sizeof(BlockQ8_0);
  LC_TARGET void load(int64_t j, int64_t u, __m512* out) const {
    const BlockQ8_0& b = p[j * stride + u];
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(b.d));
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16));
    out[0] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)));
    out[1] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)));
  }
};

// Mask of register w of a unit.
template <class Rows>
LC_TARGET inline __mmask16 reg_mask(const Rows& r, int64_t u, int w) {
  return w == Rows::kW - 1 ? r.mask(u) : static_cast<__mmask16>(0xFFFF);
}

// H (<= 4) query heads against 4 keys at a time: 16 accumulators, head h and key kk in 4h + kk.
template <int H, class Rows>
LC_TARGET void scores_heads(const float* q, int64_t q_hs, const Rows& r, int64_t n, float scale,
                            float* s, int64_t ns, float* mx) {
  constexpr int W = Rows::kW;
  const __m512 vs = _mm512_set1_ps(scale);
  const int64_t row_bytes = r.units * Rows::unit_bytes;
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  alignas(64) float res[16];
  for (int64_t j = 0; j < n; j += 4) {
    const int nk = static_cast<int>(std::min<int64_t>(4, n - j));
    for (int kk = 0; kk < 4; ++kk) prefetch(r.addr(j + kAhead + kk, 0), row_bytes);
    __m512 acc[16];
#pragma GCC unroll 16
    for (int x = 0; x < 16; ++x) acc[x] = _mm512_setzero_ps();
    for (int64_t u = 0; u < r.units; ++u) {
      __m512 kv[4][W];
#pragma GCC unroll 4
      for (int kk = 0; kk < 4; ++kk) {
        if (kk < nk)
          r.load(j + kk, u, kv[kk]);
        else
          for (int w = 0; w < W; ++w) kv[kk][w] = _mm512_setzero_ps();
      }
#pragma GCC unroll 4
      for (int h = 0; h < H; ++h)
#pragma GCC unroll 2
        for (int w = 0; w < W; ++w) {
          const __m512 qv =
              _mm512_maskz_loadu_ps(reg_mask(r, u, w), q + h * q_hs + 16 * (W * u + w));
#pragma GCC unroll 4
          for (int kk = 0; kk < 4; ++kk)
            acc[4 * h + kk] = _mm512_fmadd_ps(qv, kv[kk][w], acc[4 * h + kk]);
        }
    }
    const __m512 sc = _mm512_mul_ps(reduce16(acc), vs);
    const __mmask16 valid = static_cast<__mmask16>(((1u << nk) - 1) * 0x1111u);
    vmax = _mm512_mask_max_ps(vmax, valid, vmax, sc);
    _mm512_store_ps(res, sc);
    for (int h = 0; h < H; ++h)
      for (int kk = 0; kk < nk; ++kk) s[h * ns + j + kk] = res[4 * h + kk];
  }
  _mm512_store_ps(res, vmax);
  for (int h = 0; h < H; ++h)
    mx[h] =
        std::max(std::max(res[4 * h], res[4 * h + 1]), std::max(res[4 * h + 2], res[4 * h + 3]));
}

template <class Rows>
LC_TARGET void scores_all(const float* q, int64_t q_hs, int64_t n_heads, const Rows& r, int64_t n,
                          float scale, float* s, int64_t ns, float* mx) {
  for (int64_t h0 = 0; h0 < n_heads; h0 += 4) {
    const float* qh = q + h0 * q_hs;
    switch (std::min<int64_t>(4, n_heads - h0)) {
      case 1:
        scores_heads<1>(qh, q_hs, r, n, scale, s + h0 * ns, ns, mx + h0);
        break;
      case 2:
        scores_heads<2>(qh, q_hs, r, n, scale, s + h0 * ns, ns, mx + h0);
        break;
      case 3:
        scores_heads<3>(qh, q_hs, r, n, scale, s + h0 * ns, ns, mx + h0);
        break;
      default:
        scores_heads<4>(qh, q_hs, r, n, scale, s + h0 * ns, ns, mx + h0);
        break;
    }
  }
}

// H (<= 4) heads x U units of acc (from unit u0) in registers while every row goes past.
template <int H, int U, class Rows>
LC_TARGET void accum_heads(const float* p, int64_t ns, const Rows& r, int64_t u0, int64_t n,
                           float* acc, int64_t acc_hs) {
  constexpr int W = Rows::kW * U;
  __m512 a[H][W];
  __mmask16 m[W];
  for (int i = 0; i < W; ++i) m[i] = reg_mask(r, u0 + i / Rows::kW, i % Rows::kW);
  float* base = acc + 16 * Rows::kW * u0;
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < W; ++i) a[h][i] = _mm512_maskz_loadu_ps(m[i], base + h * acc_hs + 16 * i);
  for (int64_t j = 0; j < n; ++j) {
    prefetch(r.addr(j + kAhead, u0), U * Rows::unit_bytes);
    __m512 vv[W];
    for (int u = 0; u < U; ++u) r.load(j, u0 + u, vv + u * Rows::kW);
    for (int h = 0; h < H; ++h) {
      const __m512 pj = _mm512_set1_ps(p[h * ns + j]);
      for (int i = 0; i < W; ++i) a[h][i] = _mm512_fmadd_ps(pj, vv[i], a[h][i]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < W; ++i) _mm512_mask_storeu_ps(base + h * acc_hs + 16 * i, m[i], a[h][i]);
}

// Units [u0, u0 + 4 / kW) of each row as 64 values for accum_rows64, prefetching ahead.
template <class Rows>
struct Units64 {
  const Rows& r;
  int64_t u0;
  LC_TARGET void operator()(int64_t j, __m512* out) const {
    constexpr int U = 4 / Rows::kW;
    prefetch(r.addr(j + kAhead, u0), U * Rows::unit_bytes);
    for (int u = 0; u < U; ++u) r.load(j, u0 + u, out + u * Rows::kW);
  }
};

template <int H, class Rows>
LC_TARGET void accum_units(const float* p, int64_t ns, const Rows& r, int64_t n, float* acc,
                           int64_t acc_hs) {
  constexpr int64_t U64 = 4 / Rows::kW;  // units of 64 elements
  int64_t u0 = 0;
  // Whole 64-element pieces (the last unit of a row may be partial: not in these).
  for (; u0 + U64 <= r.units && r.mask(u0 + U64 - 1) == static_cast<__mmask16>(0xFFFF); u0 += U64)
    accum_rows64<H>(p, ns, n, acc + 16 * Rows::kW * u0, acc_hs, Units64<Rows>{r, u0});
  for (; u0 < r.units; u0 += 2) {
    if (r.units - u0 >= 2)
      accum_heads<H, 2>(p, ns, r, u0, n, acc, acc_hs);
    else
      accum_heads<H, 1>(p, ns, r, u0, n, acc, acc_hs);
  }
}

template <class Rows>
LC_TARGET void accum_all(const float* p, int64_t ns, int64_t n_heads, const Rows& r, int64_t n,
                         float* acc, int64_t acc_hs) {
  for (int64_t h0 = 0; h0 < n_heads; h0 += 4) {
    const float* ph = p + h0 * ns;
    float* ah = acc + h0 * acc_hs;
    switch (std::min<int64_t>(4, n_heads - h0)) {
      case 1:
        accum_units<1>(ph, ns, r, n, ah, acc_hs);
        break;
      case 2:
        accum_units<2>(ph, ns, r, n, ah, acc_hs);
        break;
      case 3:
        accum_units<3>(ph, ns, r, n, ah, acc_hs);
        break;
      default:
        accum_units<4>(ph, ns, r, n, ah, acc_hs);
        break;
    }
  }
}

}  // namespace

LC_TARGET void attn_scores_f16(const float* q, int64_t q_hs, int64_t n_heads, const uint16_t* k,
                               int64_t stride, int64_t n, int64_t hd, float scale, float* s,
                               int64_t ns, float* mx) {
  if (hd == 8) {
    for (int64_t h = 0; h < n_heads; ++h)
      mx[h] = scores_hd8(q + h * q_hs, k, stride, n, scale, s + h * ns);
    return;
  }
  scores_all(q, q_hs, n_heads, F16Rows(k, stride, hd), n, scale, s, ns, mx);
}

LC_TARGET void attn_accum_f16(const float* p, int64_t ns, int64_t n_heads, const uint16_t* v,
                              int64_t stride, int64_t n, int64_t hd, float* acc, int64_t acc_hs) {
  if (hd == 8) {
    for (int64_t h = 0; h < n_heads; ++h) accum_hd8(p + h * ns, v, stride, n, acc + h * acc_hs);
    return;
  }
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

}  // namespace lc::kv_avx512

#endif
