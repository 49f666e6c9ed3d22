// The part of the x86 matmul kernels that AVX2 and AVX-512 share: unpacking GGUF blocks into a
// canonical int8 form, and the loops that cut a product into tiles. Written once, compiled once per
// ISA: simd_avx2.cpp and simd_avx512.cpp each include this file inside their own anonymous
// namespace, after defining
//   LC_TARGET                       the function attribute of their ISA (target("..."))
//   kQR, kQT, QTileFn, qtile_fn     integer tile: up to kQR rows x kQT tokens, see QTileFn
//   kFR, kFT, kKCF, FTileFn, ftile_fn<T>  f32 tile for F32 / F16 / BF16 weights, see FTileFn
//   vdot(a, b, n)                   f32 dot product
//   matvec_q(w, a, r0, r1, y)       optional fused single-token kernel (false: not available)
//   matmul_panel(w, a, n_tok, r0, r1, y, sc)  optional many-token kernel (false: not available)
//   matmul_f_panel<T>(w, x, n_tok, r0, r1, y, sc)  the same for F32 / F16 / BF16 weights
// and after including <immintrin.h>, <algorithm>, "kernels/dispatch.h", "kernels/quant_blocks.h".
// Every function here is internal to the including file, so the two copies never meet.
//
// Canonical form of a chunk of one weight row (n elements, a multiple of 32):
//   q[e]      signed int8 such that w[e] = scale(e) * q[e] + min(e / 32)
//   s4[e / 4] scale(e), one float per 4 elements (the granularity of a 32-bit integer dot lane)
//   m32[b]    min of 32-element block b (types with mins only: Q4_1, Q5_1, Q4_K, Q5_K), or of
//             16-element group b (Q2_K, whose mins change every 16 elements: QType::mins16)
// so that sum_e w[e] x[e] = sum_lanes s4 * idot(q, xq) * xd + sum_b m32[b] * xs[b] with the
// activations in ActQ8 form (for mins16, xs per 16 elements: activation_sums16). Q4_0 / Q5_0 /
// Q6_K / Q3_K store q - 8 / q - 16 / q - 32 / q - 4, Q8_0 and Q2_K store q, IQ4_NL / IQ4_XS the
// level a nibble indexes.
#ifndef LC_TARGET
#error "define LC_TARGET before including simd_x86_matmul.h"
#endif

LC_TARGET inline float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 32 bytes: byte e is 0x10 where bit e of `bits` is set, else 0.
LC_TARGET inline __m256i bit4_from_bits(uint32_t bits) {
  const __m256i sel = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                        0x0101010101010101LL, 0x0000000000000000LL);
  const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  __m256i x = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), sel);
  x = _mm256_cmpeq_epi8(_mm256_and_si256(x, mask), mask);
  return _mm256_and_si256(x, _mm256_set1_epi8(0x10));
}

// 16 packed bytes -> 32 nibbles: low nibbles first, then high nibbles (Q4_0 / Q4_1 / Q5 order).
LC_TARGET inline __m256i nibbles_32(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
}

LC_TARGET inline void store_q32(int8_t* q, __m256i v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v);
}
LC_TARGET inline void store_s8(float* s4, float v) { _mm256_storeu_ps(s4, _mm256_set1_ps(v)); }

// Unpacks blocks [b0, b0 + nb) of a row; outputs start at the chunk's first element.
using UnpackFn = void (*)(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                          float* m32);

LC_TARGET void unpack_q4_0(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float*) {
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ4_0);
    store_q32(q + 32 * b, _mm256_sub_epi8(nibbles_32(p + 2), _mm256_set1_epi8(8)));
    store_s8(s4 + 8 * b, h2f(p));
  }
}

LC_TARGET void unpack_q4_1(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float* m32) {
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ4_1);
    store_q32(q + 32 * b, nibbles_32(p + 4));
    store_s8(s4 + 8 * b, h2f(p));
    m32[b] = h2f(p + 2);
  }
}

LC_TARGET void unpack_q5_0(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float*) {
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ5_0);
    uint32_t qh;
    std::memcpy(&qh, p + 2, 4);
    const __m256i v = _mm256_or_si256(nibbles_32(p + 6), bit4_from_bits(qh));
    store_q32(q + 32 * b, _mm256_sub_epi8(v, _mm256_set1_epi8(16)));
    store_s8(s4 + 8 * b, h2f(p));
  }
}

LC_TARGET void unpack_q5_1(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float* m32) {
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ5_1);
    uint32_t qh;
    std::memcpy(&qh, p + 4, 4);
    store_q32(q + 32 * b, _mm256_or_si256(nibbles_32(p + 8), bit4_from_bits(qh)));
    store_s8(s4 + 8 * b, h2f(p));
    m32[b] = h2f(p + 2);
  }
}

LC_TARGET void unpack_q8_0(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float*) {
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ8_0);
    store_q32(q + 32 * b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2)));
    store_s8(s4 + 8 * b, h2f(p));
  }
}

// Q4_K / Q5_K: 8 sub-blocks of 32; the 32 bytes qs[32p .. 32p + 31] hold sub-block 2p in their low
// nibbles and 2p + 1 in their high nibbles; Q5_K takes bit 4 of sub-block s from bit s of qh[l].
template <bool kQ5>
LC_TARGET void unpack_qk45(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float* m32) {
  constexpr size_t kSize = kQ5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  constexpr int kQs = kQ5 ? 4 + kKScaleBytes + kQK_K / 8 : 4 + kKScaleBytes;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * kSize;
    const float d = h2f(p), dmin = h2f(p + 2);
    const uint8_t* scales = p + 4;
    const uint8_t* qs = p + kQs;
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kQ5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4 + 12));
    int8_t* qb = q + kQK_K * b;
    for (int pr = 0; pr < 4; ++pr) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * pr));
      __m256i lo = _mm256_and_si256(v, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      if constexpr (kQ5) {
        const __m256i bl = _mm256_set1_epi8(static_cast<char>(1 << (2 * pr)));
        const __m256i bh = _mm256_set1_epi8(static_cast<char>(1 << (2 * pr + 1)));
        const __m256i b4 = _mm256_set1_epi8(0x10);
        lo = _mm256_or_si256(lo,
                             _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), b4));
        hi = _mm256_or_si256(hi,
                             _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), b4));
      }
      store_q32(qb + 64 * pr, lo);
      store_q32(qb + 64 * pr + 32, hi);
    }
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      k_scale_min(s, scales, &sc, &m);
      store_s8(s4 + 64 * b + 8 * s, d * sc);
      m32[8 * b + s] = -(dmin * m);
    }
  }
}

// Q6_K: element 128h + 32k + l takes its low 4 bits from ql[64h + 32(k & 1) + l] (low nibble for
// k < 2, high for k >= 2) and bits 4-5 from bits 2k of qh[32h + l]; scale per 16 elements.
LC_TARGET void unpack_q6_k(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float*) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
  const __m256i off = _mm256_set1_epi8(32);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ6_K);
    const uint8_t* ql = p;
    const uint8_t* qhp = p + kQK_K / 2;
    const auto* scales = reinterpret_cast<const int8_t*>(p + kQK_K / 2 + kQK_K / 4);
    const float d = h2f(p + kQK_K / 2 + kQK_K / 4 + kQK_K / 16);
    int8_t* qb = q + kQK_K * b;
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qhp + 32 * h));
      const __m256i low[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                              _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                              _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
      const __m256i high[4] = {_mm256_and_si256(qh, m2),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 4), m2),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 6), m2)};
      for (int k = 0; k < 4; ++k) {
        const __m256i v = _mm256_or_si256(low[k], _mm256_slli_epi16(high[k], 4));
        store_q32(qb + 128 * h + 32 * k, _mm256_sub_epi8(v, off));
      }
    }
    for (int j = 0; j < 16; ++j)
      _mm_storeu_ps(s4 + 64 * b + 4 * j, _mm_set1_ps(d * static_cast<float>(scales[j])));
  }
}

// Q3_K: element 128h + 32j + l takes bits 2j, 2j + 1 of qs[32h + l] as its low bits and bit
// 4h + j of hmask[l] as bit 2 (clear: minus 4); a 6-bit scale (biased by 32) per 16 elements.
LC_TARGET void unpack_q3_k(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float*) {
  const __m256i m2 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ3_K);
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const uint8_t* qs = p + kQK_K / 8;
    const uint8_t* scales = qs + kQK_K / 4;
    const float d = h2f(scales + kKScaleBytes);
    int8_t* qb = q + kQK_K * b;
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h));
      for (int j = 0; j < 4; ++j) {
        const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m2);
        const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << (4 * h + j)));
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
        store_q32(qb + 128 * h + 32 * j, _mm256_sub_epi8(lo, _mm256_andnot_si256(set, four)));
      }
    }
    for (int j = 0; j < 16; ++j)
      _mm_storeu_ps(
          s4 + 64 * b + 4 * j,
          _mm_set1_ps(d * static_cast<float>(static_cast<int>(q3k_scale(j, scales)) - 32)));
  }
}

// Q2_K: element 128h + 32j + l takes bits 2j, 2j + 1 of qs[32h + l]; per 16 elements a 4-bit
// scale (low nibble) and a 4-bit min (high nibble): w = d * sc * q - dmin * m. One min per 16
// elements in m32 (QType::mins16).
LC_TARGET void unpack_q2_k(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                           float* m16) {
  const __m256i m2 = _mm256_set1_epi8(3);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockQ2_K);
    const uint8_t* qs = p + kQK_K / 16;
    const float d = h2f(qs + kQK_K / 4), dmin = h2f(qs + kQK_K / 4 + 2);
    int8_t* qb = q + kQK_K * b;
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h));
      for (int j = 0; j < 4; ++j)
        store_q32(qb + 128 * h + 32 * j, _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m2));
    }
    for (int j = 0; j < 16; ++j) {
      _mm_storeu_ps(s4 + 64 * b + 4 * j, _mm_set1_ps(d * static_cast<float>(p[j] & 0xF)));
      m16[16 * b + j] = -(dmin * static_cast<float>(p[j] >> 4));
    }
  }
}

// The 16 scales of the Q3_K super-block at blk, less their bias of 32, as bytes: the low nibbles of
// scale bytes 0-7 hold scales 0-7, their high nibbles 8-15; bits 2k of scale bytes 8-11 are bits
// 4-5 of scales 4k .. 4k + 3. Computed in registers from one load (the 4 bytes before the scales
// are the block's last quants): words built in memory and read back as a vector stall the load.
LC_TARGET inline __m128i q3k_scales16(const uint8_t* blk) {
  const __m128i x = _mm_srli_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 92)), 4);
  const __m128i m4 = _mm_set1_epi8(0x0F);
  // Dwords: scale bytes 0-3 and 4-7 (low nibbles), then the same (high nibbles).
  const __m128i lo =
      _mm_unpacklo_epi64(_mm_and_si128(x, m4), _mm_and_si128(_mm_srli_epi16(x, 4), m4));
  const __m128i t = _mm_shuffle_epi32(x, 0xAA);  // scale bytes 8-11 in every dword
  const __m128i hi = _mm_slli_epi32(
      _mm_and_si128(_mm_srlv_epi32(t, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3)), 4);
  return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}

// The IQ4 levels in both 128-bit lanes (VPSHUFB takes a nibble to its level).
LC_TARGET inline __m256i iq4_levels() {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels)));
}

LC_TARGET void unpack_iq4_nl(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                             float*) {
  const __m256i levels = iq4_levels();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockIQ4_NL);
    store_q32(q + 32 * b, _mm256_shuffle_epi8(levels, nibbles_32(p + 2)));
    store_s8(s4 + 8 * b, h2f(p));
  }
}

LC_TARGET void unpack_iq4_xs(const uint8_t* row, int64_t b0, int64_t nb, int8_t* q, float* s4,
                             float*) {
  const __m256i levels = iq4_levels();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = row + (b0 + b) * sizeof(BlockIQ4_XS);
    const float d = h2f(p);
    uint16_t sh;
    std::memcpy(&sh, p + 2, 2);
    for (int s = 0; s < 8; ++s) {
      store_q32(q + kQK_K * b + 32 * s, _mm256_shuffle_epi8(levels, nibbles_32(p + 8 + 16 * s)));
      store_s8(s4 + 64 * b + 8 * s, d * static_cast<float>(iq4xs_scale(s, sh, p + 4) - 32));
    }
  }
}

struct QType {
  UnpackFn unpack = nullptr;
  int64_t block = 0;  // elements per block
  bool mins = false;
  int64_t bytes = 0;    // bytes per block
  bool mins16 = false;  // a min per 16 elements (Q2_K): only the row-major tiles take it
};

// Canonical quants over the whole signed byte range (the others fit in |q| <= 32).
inline bool full_range_quants(TensorType t) {
  return t == TensorType::Q8_0 || t == TensorType::IQ4_NL || t == TensorType::IQ4_XS;
}

QType qtype_of(TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
      return {unpack_q4_0, kQK, false, sizeof(BlockQ4_0)};
    case TensorType::Q4_1:
      return {unpack_q4_1, kQK, true, sizeof(BlockQ4_1)};
    case TensorType::Q5_0:
      return {unpack_q5_0, kQK, false, sizeof(BlockQ5_0)};
    case TensorType::Q5_1:
      return {unpack_q5_1, kQK, true, sizeof(BlockQ5_1)};
    case TensorType::Q8_0:
      return {unpack_q8_0, kQK, false, sizeof(BlockQ8_0)};
    case TensorType::Q4_K:
      return {unpack_qk45<false>, kQK_K, true, sizeof(BlockQ4_K)};
    case TensorType::Q5_K:
      return {unpack_qk45<true>, kQK_K, true, sizeof(BlockQ5_K)};
    case TensorType::Q6_K:
      return {unpack_q6_k, kQK_K, false, sizeof(BlockQ6_K)};
    case TensorType::Q3_K:
      return {unpack_q3_k, kQK_K, false, sizeof(BlockQ3_K)};
    case TensorType::Q2_K:
      return {unpack_q2_k, kQK_K, true, sizeof(BlockQ2_K), true};
    case TensorType::IQ4_NL:
      return {unpack_iq4_nl, kQK, false, sizeof(BlockIQ4_NL)};
    case TensorType::IQ4_XS:
      return {unpack_iq4_xs, kQK_K, false, sizeof(BlockIQ4_XS)};
    default:
      return {};
  }
}

// Chunking: K in pieces of kKC elements (the unpacked rows of a tile stay in L1), tokens in pieces
// of kTC (their quantized activations stay in L2 while every row of the thread goes past).
constexpr int64_t kKC = 2048;  // multiple of 256
constexpr int64_t kTC = 32;

struct alignas(64) QScratch {
  int8_t q[kQR][kKC];
  float s4[kQR][kKC / 4];
  float m32[kQR][kKC / 16];  // per 32 elements, or per 16 (QType::mins16)
};

// Per 16 elements of each token's row, the activations' sum d * sum(q) (the mins of QType::mins16
// multiply these; ActQ8 has them per 32 only).
LC_TARGET void activation_sums16(const ActQ8& a, int64_t n_tok, std::vector<float>& out) {
  const int64_t n = a.n_in, ng = n / 16;
  out.resize(static_cast<size_t>(n_tok * ng));
  const __m128i ones = _mm_set1_epi8(1);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t g = 0; g < ng; ++g) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.q + t * n + 16 * g));
      // 16-bit pair sums of the bytes (VPMADDUBSW with ones), widened and added across lanes.
      const __m128i s16 = _mm_maddubs_epi16(ones, v);
      const __m128i s32 = _mm_madd_epi16(s16, _mm_set1_epi16(1));
      const __m128i s2 = _mm_add_epi32(s32, _mm_shuffle_epi32(s32, 0x4E));
      const __m128i s1 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0xB1));
      out[static_cast<size_t>(t * ng + g)] =
          a.d[t * (n / kActBlock) + g / 2] * static_cast<float>(_mm_cvtsi128_si32(s1));
    }
}

LC_TARGET void matmul_q_rows(const WeightMatrix& w, const QType& qt, const ActQ8& a, int64_t n_tok,
                             int64_t r0, int64_t r1, float* y, MatmulRowScratch& rs) {
  QScratch& sc = *::new (rs.tile.get(sizeof(QScratch))) QScratch;  // trivial: nothing written
  const int64_t n = w.n_in;
  // The mins' group and the activation sums they multiply (per 32 in ActQ8, per 16 computed here).
  const int64_t mg = qt.mins16 ? 16 : kActBlock, nbm = n / mg;
  if (qt.mins16) activation_sums16(a, n_tok, rs.act16);
  const float* asum = qt.mins16 ? rs.act16.data() : a.s;
  const int8_t* wq[kQR];
  const float* ws[kQR];
  for (int i = 0; i < kQR; ++i) {
    wq[i] = sc.q[i];
    ws[i] = sc.s4[i];
  }
  for (int64_t t0 = 0; t0 < n_tok; t0 += kTC) {
    const int64_t tc = std::min(kTC, n_tok - t0);
    for (int64_t r = r0; r < r1; r += kQR) {
      const int nr = static_cast<int>(std::min<int64_t>(kQR, r1 - r));
      float sum[kQR][kTC] = {};
      for (int64_t k0 = 0; k0 < n; k0 += kKC) {
        const int64_t kn = std::min(kKC, n - k0);
        for (int i = 0; i < nr; ++i) {
          const uint8_t* row = w.row(r + i);
          qt.unpack(row, k0 / qt.block, kn / qt.block, sc.q[i], sc.s4[i], sc.m32[i]);
          // The same chunk of the next group of rows, into L2 (never faults past the end).
          const int64_t b0 = k0 / qt.block * qt.bytes, b1 = (k0 + kn) / qt.block * qt.bytes;
          for (int64_t b = b0; b < b1; b += 64)
            _mm_prefetch(reinterpret_cast<const char*>(row + kQR * w.row_bytes + b), _MM_HINT_T1);
        }
        for (int64_t t = 0; t < tc; t += kQT) {
          const int nt = static_cast<int>(std::min<int64_t>(kQT, tc - t));
          float out[kQR * kQT];
          qtile_fn(nr, nt)(wq, ws, a, t0 + t, k0, kn, out);
          for (int i = 0; i < nr; ++i)
            for (int j = 0; j < nt; ++j) {
              float v = out[i * kQT + j];
              if (qt.mins) v += vdot(sc.m32[i], asum + (t0 + t + j) * nbm + k0 / mg, kn / mg);
              sum[i][t + j] += v;
            }
        }
      }
      for (int i = 0; i < nr; ++i)
        for (int64_t j = 0; j < tc; ++j) y[(t0 + j) * w.n_out + r + i] = sum[i][j];
    }
  }
}

// Rows [r, r + rows) of w over elements [k0, k0 + kc) in canonical form into sc (q, s4, m32; row i
// at i * kc, i * kc / 4, i * kc / 32). The panel packers unpack a chunk of kPackChunk elements at a
// time, so that this scratch stays small whatever the row length.
constexpr int64_t kPackChunk = 512;  // a multiple of every block size (32, 256)
LC_TARGET void unpack_chunk(const WeightMatrix& w, const QType& qt, int64_t r, int rows, int64_t k0,
                            int64_t kc, MatmulRowScratch& sc) {
  sc.q.resize(static_cast<size_t>(rows * kc));
  sc.s4.resize(static_cast<size_t>(rows * kc / 4));
  sc.m32.resize(static_cast<size_t>(rows * kc / 32));
  for (int i = 0; i < rows; ++i)
    qt.unpack(w.row(r + i), k0 / qt.block, kc / qt.block, &sc.q[i * kc], &sc.s4[i * kc / 4],
              &sc.m32[i * kc / 32]);
}

// The part [*a0, *a1) of rows [r0, r1) that lies in whole panels of `rows` rows of a matrix of
// n_out rows (for the panel kernels; the rest goes through the row-major tiles, so that a row's
// numbers depend only on its index, not on how the rows were cut into tasks).
inline void panel_span(int64_t r0, int64_t r1, int64_t n_out, int64_t rows, int64_t* a0,
                       int64_t* a1) {
  *a0 = std::min(r1, (r0 + rows - 1) / rows * rows);
  *a1 = std::max(*a0, std::min(r1, n_out / rows * rows));
}

constexpr int64_t kTCF = 64;  // tokens per chunk of the f32 path

// Few tokens (decode): whole rows, read once and contiguously. Many tokens: tokens in chunks of
// kTCF, K in chunks of kKCF so the tile's rows stay in L1 while every token group goes past.
// Both give the same numbers for a (row, token): ftile reduces at the same kKCF boundaries.
template <TensorType TY>
LC_TARGET void matmul_f_rows(const WeightMatrix& w, const float* x, int64_t n_tok, int64_t r0,
                             int64_t r1, float* y) {
  const int64_t n = w.n_in;
  float out[kFR * kFT];
  if (n_tok <= kFT) {
    for (int64_t r = r0; r < r1; r += kFR) {
      const int nr = static_cast<int>(std::min<int64_t>(kFR, r1 - r));
      ftile_fn<TY>(nr, static_cast<int>(n_tok))(w, r, x, 0, 0, n, out);
      for (int i = 0; i < nr; ++i)
        for (int j = 0; j < n_tok; ++j) y[j * w.n_out + r + i] = out[i * kFT + j];
    }
    return;
  }
  for (int64_t t0 = 0; t0 < n_tok; t0 += kTCF) {
    const int64_t tc = std::min(kTCF, n_tok - t0);
    for (int64_t r = r0; r < r1; r += kFR) {
      const int nr = static_cast<int>(std::min<int64_t>(kFR, r1 - r));
      float sum[kFR][kTCF] = {};
      for (int64_t k0 = 0; k0 < n; k0 += kKCF) {
        const int64_t kn = std::min(kKCF, n - k0);
        for (int64_t t = 0; t < tc; t += kFT) {
          const int nt = static_cast<int>(std::min<int64_t>(kFT, tc - t));
          ftile_fn<TY>(nr, nt)(w, r, x, t0 + t, k0, kn, out);
          for (int i = 0; i < nr; ++i)
            for (int j = 0; j < nt; ++j) sum[i][t + j] += out[i * kFT + j];
        }
      }
      for (int i = 0; i < nr; ++i)
        for (int64_t j = 0; j < tc; ++j) y[(t0 + j) * w.n_out + r + i] = sum[i][j];
    }
  }
}

MatmulInput matmul_input(TensorType t, int64_t) {
  if (qtype_of(t).unpack != nullptr) return MatmulInput::Q8;
  const bool f = t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
  return f ? MatmulInput::F32 : MatmulInput::Fallback;
}

LC_TARGET void matmul_rows(const WeightMatrix& w, const float* x, const ActQ8* a, const ActBf16*,
                           int64_t n_tok, int64_t r0, int64_t r1, float* y, MatmulRowScratch& sc) {
  switch (w.type) {
    case TensorType::F32:
      if (matmul_f_panel<TensorType::F32>(w, x, n_tok, r0, r1, y, sc)) return;
      return matmul_f_rows<TensorType::F32>(w, x, n_tok, r0, r1, y);
    case TensorType::F16:
      if (matmul_f_panel<TensorType::F16>(w, x, n_tok, r0, r1, y, sc)) return;
      return matmul_f_rows<TensorType::F16>(w, x, n_tok, r0, r1, y);
    case TensorType::BF16:
      if (matmul_f_panel<TensorType::BF16>(w, x, n_tok, r0, r1, y, sc)) return;
      return matmul_f_rows<TensorType::BF16>(w, x, n_tok, r0, r1, y);
    default: {
      const QType qt = qtype_of(w.type);
      LC_CHECK(qt.unpack != nullptr && a != nullptr && w.n_in % qt.block == 0);
      if (n_tok == 1 && matvec_q(w, *a, r0, r1, y)) return;
      if (matmul_panel(w, *a, n_tok, r0, r1, y, sc)) return;
      return matmul_q_rows(w, qt, *a, n_tok, r0, r1, y, sc);
    }
  }
}
