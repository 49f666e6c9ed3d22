// Fused single-token matvec (decode) of the block integer types on AVX2: every block is decoded
// straight into registers and multiplied with the token's quantized activations, with no scratch
// copy of the unpacked row (the row-major tiles of simd_x86_matmul.h write and read one back, which
// costs more than the product itself when there is only one token).
//
// A block's 32 quants become one vector of bytes w = q + kOff (unsigned); VPMADDUBSW multiplies
// them with the signed activations into 16-bit pair sums (no saturation: 2 * 63 * 127 < 32768) and
// VPMADDWD with ones adds pairs into 8 int32 lanes of 4 elements each. The offset comes out through
// the activations' lane sums, computed once per block for all the rows of a tile:
//   sum (w - kOff) a = sum w a - kOff * sum a.
// Q8_0 quants are signed bytes of the whole range: there the product uses |w| and the activation
// with w's sign moved onto it (2 * 128 * 127 < 32768). The lanes are converted to f32 and scaled by
// the weight scale times the activation scale; the formats with mins add min * (d_a * sum q_a) per
// block of 32.
//
// Numbers per (row, token) do not depend on which rows share a tile, so any split of the rows
// between tasks gives the same results.
//
// Included by simd_avx2.cpp inside its anonymous namespace, after simd_x86_matmul.h (whose
// unpacking helpers it uses).

constexpr int kMatvecRows = 4;
// The same place in the rows of the tile this many bytes ahead (whole tiles) goes into L2.
constexpr int64_t kMatvecAhead = 4096;

template <TensorType TY>
struct Mv;
template <>
struct Mv<TensorType::Q4_0> {
  static constexpr int kBlk = 32, kBytes = 18, kOff = 8;
  static constexpr bool kMins = false;
};
template <>
struct Mv<TensorType::Q4_1> {
  static constexpr int kBlk = 32, kBytes = 20, kOff = 0;
  static constexpr bool kMins = true;
};
template <>
struct Mv<TensorType::Q5_0> {
  static constexpr int kBlk = 32, kBytes = 22, kOff = 16;
  static constexpr bool kMins = false;
};
template <>
struct Mv<TensorType::Q5_1> {
  static constexpr int kBlk = 32, kBytes = 24, kOff = 0;
  static constexpr bool kMins = true;
};
template <>
struct Mv<TensorType::Q8_0> {
  static constexpr int kBlk = 32, kBytes = 34, kOff = 0;
  static constexpr bool kMins = false;
};
template <>
struct Mv<TensorType::Q4_K> {
  static constexpr int kBlk = 256, kBytes = 144, kOff = 0;
  static constexpr bool kMins = true;
};
template <>
struct Mv<TensorType::Q5_K> {
  static constexpr int kBlk = 256, kBytes = 176, kOff = 0;
  static constexpr bool kMins = true;
};
template <>
struct Mv<TensorType::IQ4_NL> {
  static constexpr int kBlk = 32, kBytes = 18, kOff = 0;
  static constexpr bool kMins = false;
};
template <>
struct Mv<TensorType::IQ4_XS> {
  static constexpr int kBlk = 256, kBytes = 136, kOff = 0;
  static constexpr bool kMins = false;
};
template <>
struct Mv<TensorType::Q2_K> {
  static constexpr int kBlk = 256, kBytes = 84, kOff = 0;
  static constexpr bool kMins = true;
};
template <>
struct Mv<TensorType::Q3_K> {
  static constexpr int kBlk = 256, kBytes = 110, kOff = 4;
  static constexpr bool kMins = false;
};
template <>
struct Mv<TensorType::Q6_K> {
  static constexpr int kBlk = 256, kBytes = 210, kOff = 32;
  static constexpr bool kMins = false;
};

// 8 int32 lanes: sums of 4 products of unsigned w and signed a.
LC_TARGET inline __m256i dot_u8s8(__m256i w, __m256i a) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1));
}

// kOff times the lane sums of the activations a (zero when there is no offset).
template <int kOff>
LC_TARGET inline __m256i offset_lanes(__m256i a) {
  if constexpr (kOff == 0) {
    return _mm256_setzero_si256();
  } else {
    return dot_u8s8(_mm256_set1_epi8(static_cast<char>(kOff)), a);
  }
}

// Simple formats (blocks of 32): block b of the R rows against the token.
template <TensorType TY, int R>
LC_TARGET inline void mv_block32(__m256 (&acc)[R], float (&macc)[R], const uint8_t* const* rows,
                                 const ActQ8& a, int64_t b, int64_t ahead) {
  using M = Mv<TY>;
  const __m256i at = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + 32 * b));
  const __m256i off = offset_lanes<M::kOff>(at);
  const float da = a.d[b];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    const uint8_t* p = rows[i] + b * M::kBytes;
    _mm_prefetch(reinterpret_cast<const char*>(p) + ahead, _MM_HINT_T1);
    __m256i dot;
    if constexpr (TY == TensorType::Q8_0 || TY == TensorType::IQ4_NL) {
      __m256i w;
      if constexpr (TY == TensorType::Q8_0)
        w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
      else
        w = _mm256_shuffle_epi8(iq4_levels(), nibbles_32(p + 2));
      dot = dot_u8s8(_mm256_abs_epi8(w), _mm256_sign_epi8(at, w));
    } else {
      __m256i w;
      if constexpr (TY == TensorType::Q4_0) {
        w = nibbles_32(p + 2);
      } else if constexpr (TY == TensorType::Q4_1) {
        w = nibbles_32(p + 4);
      } else if constexpr (TY == TensorType::Q5_0) {
        uint32_t qh;
        std::memcpy(&qh, p + 2, 4);
        w = _mm256_or_si256(nibbles_32(p + 6), bit4_from_bits(qh));
      } else {
        static_assert(TY == TensorType::Q5_1);
        uint32_t qh;
        std::memcpy(&qh, p + 4, 4);
        w = _mm256_or_si256(nibbles_32(p + 8), bit4_from_bits(qh));
      }
      dot = _mm256_sub_epi32(dot_u8s8(w, at), off);
    }
    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(h2f(p) * da), acc[i]);
    if constexpr (M::kMins) macc[i] += h2f(p + 2) * a.s[b];
  }
}

// The cache lines of a block `ahead` bytes further on, into L2.
template <int kBytes>
LC_TARGET inline void prefetch_ahead(const uint8_t* p, int64_t ahead) {
  for (int c = 0; c < kBytes; c += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p) + ahead + c, _MM_HINT_T1);
}

// 8 unsigned bytes (lo: 0-3, hi: 4-7) as floats.
LC_TARGET inline __m256 mv_bytes8(uint32_t lo, uint32_t hi) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, static_cast<int>(hi), static_cast<int>(lo))));
}

// Q4_K / Q5_K: super-block u (256 elements) of the R rows against the token.
template <TensorType TY, int R>
LC_TARGET inline void mv_qk45(__m256 (&acc)[R], __m256 (&macc)[R], const uint8_t* const* rows,
                              const ActQ8& a, int64_t u, int64_t ahead) {
  using M = Mv<TY>;
  constexpr bool kQ5 = TY == TensorType::Q5_K;
  constexpr int kQs = kQ5 ? 48 : 16;
  const __m256 da8 = _mm256_loadu_ps(a.d + 8 * u);
  const __m256 sa8 = _mm256_loadu_ps(a.s + 8 * u);
  const int8_t* aq = a.q + 256 * u;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    const uint8_t* p = rows[i] + u * M::kBytes;
    prefetch_ahead<M::kBytes>(p, ahead);
    const KScaleWords kw = k_scale_words(p + 4);
    // Weight scale d * sc (as the reference rounds it) times the activation scale; the mins enter
    // as -(dmin * m).
    alignas(32) float sc[8];
    _mm256_store_ps(
        sc,
        _mm256_mul_ps(_mm256_mul_ps(mv_bytes8(kw.sc[0], kw.sc[1]), _mm256_set1_ps(h2f(p))), da8));
    const __m256 mins =
        _mm256_sub_ps(_mm256_setzero_ps(),
                      _mm256_mul_ps(mv_bytes8(kw.m[0], kw.m[1]), _mm256_set1_ps(h2f(p + 2))));
    macc[i] = _mm256_fmadd_ps(mins, sa8, macc[i]);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kQ5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16));
    for (int pr = 0; pr < 4; ++pr) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kQs + 32 * pr));
      __m256i lo = _mm256_and_si256(v, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      if constexpr (kQ5) {
        const __m256i one = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(
            lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * pr), one), 4));
        hi = _mm256_or_si256(
            hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * pr + 1), one), 4));
      }
      const __m256i alo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 64 * pr));
      const __m256i ahi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 64 * pr + 32));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(lo, alo)),
                               _mm256_broadcast_ss(&sc[2 * pr]), acc[i]);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(hi, ahi)),
                               _mm256_broadcast_ss(&sc[2 * pr + 1]), acc[i]);
    }
  }
}

// Q6_K: super-block u of the R rows against the token. Element 128h + 32k + l takes its low 4 bits
// from ql[64h + 32(k & 1) + l] (low nibble for k < 2, high for k >= 2) and bits 4-5 from bits 2k
// of qh[32h + l]; a scale per 16 elements, so lanes 0-3 of a block of 32 take one and lanes 4-7
// the next.
template <int R>
LC_TARGET inline void mv_q6k(__m256 (&acc)[R], const uint8_t* const* rows, const ActQ8& a,
                             int64_t u, int64_t ahead) {
  using M = Mv<TensorType::Q6_K>;
  const int8_t* aq = a.q + 256 * u;
  // 32 times the activations' lane sums, per block of 32, for all the rows.
  alignas(32) int32_t off[8][8];
  for (int k = 0; k < 8; ++k)
    _mm256_store_si256(
        reinterpret_cast<__m256i*>(off[k]),
        offset_lanes<M::kOff>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 32 * k))));
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    const uint8_t* p = rows[i] + u * M::kBytes;
    prefetch_ahead<M::kBytes>(p, ahead);
    const float d = h2f(p + 208);
    const __m128i sb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 192));
    // Scales of sub-blocks 0-7 and 8-15 as f32, times d.
    const __m256 sc[2] = {
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sb)), _mm256_set1_ps(d)),
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sb, 8))),
                      _mm256_set1_ps(d))};
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 128 + 32 * h));
      const __m256i low[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                              _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                              _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
      for (int k = 0; k < 4; ++k) {
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m2);
        const __m256i w = _mm256_or_si256(low[k], _mm256_slli_epi16(high, 4));
        const int blk = 4 * h + k;
        const __m256i at = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 32 * blk));
        const __m256i dot = _mm256_sub_epi32(
            dot_u8s8(w, at), _mm256_load_si256(reinterpret_cast<const __m256i*>(off[blk])));
        // Lanes 0-3: scale 2k (of this half), lanes 4-7: scale 2k + 1.
        const __m256 s =
            _mm256_permutevar8x32_ps(sc[h], _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1,
                                                              2 * k + 1, 2 * k + 1, 2 * k + 1));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot),
                                 _mm256_mul_ps(s, _mm256_broadcast_ss(a.d + 8 * u + blk)), acc[i]);
      }
    }
  }
}

// Q2_K / Q3_K (super-blocks of 256, a scale per 16 elements): element 128h + 32j + l takes bits 2j,
// 2j + 1 of qs[32h + l]; Q3_K adds bit 4h + j of hmask[l] as bit 2 (its quants are w - 4), Q2_K
// subtracts dmin times a 4-bit min per 16 elements. The 16-bit pair sums are multiplied by the
// integer sub-block scales in VPMADDWD (lanes 0-3 of a block of 32 by one, lanes 4-7 by the next;
// at most 2 * 1016 * 32 for Q3_K), so that a block costs one conversion and one FMA by d times the
// block's activation scale.
template <TensorType TY, int R>
LC_TARGET inline void mv_q23k(__m256 (&acc)[R], __m256 (&macc)[R], const uint8_t* const* rows,
                              const ActQ8& a, int64_t u, int64_t ahead) {
  using M = Mv<TY>;
  constexpr bool kQ3 = TY == TensorType::Q3_K;
  const int8_t* aq = a.q + 256 * u;
  const __m256 da8 = _mm256_loadu_ps(a.d + 8 * u);
  // Per block of 32, for all the rows: Q3_K: 4 times the activations' pair sums (the offset);
  // Q2_K: the activations' sums per 16 elements times the block's scale, for the mins, in the order
  // (blocks 0-3 first halves, blocks 0-3 second halves), then the same for blocks 4-7.
  __m256i at[8], off[8];
  __m256 a16[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int k = 0; k < 8; ++k) {
    at[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 32 * k));
    if constexpr (kQ3) {
      off[k] = _mm256_maddubs_epi16(_mm256_set1_epi8(M::kOff), at[k]);
    } else {
      off[k] = dot_u8s8(_mm256_set1_epi8(1), at[k]);  // lane sums of 4
    }
  }
  if constexpr (!kQ3) {
    for (int g = 0; g < 2; ++g) {
      const __m256i s4 = _mm256_hadd_epi32(_mm256_hadd_epi32(off[4 * g], off[4 * g + 1]),
                                           _mm256_hadd_epi32(off[4 * g + 2], off[4 * g + 3]));
      const __m256 da =
          _mm256_permutevar8x32_ps(da8, _mm256_setr_epi32(4 * g, 4 * g + 1, 4 * g + 2, 4 * g + 3,
                                                          4 * g, 4 * g + 1, 4 * g + 2, 4 * g + 3));
      a16[g] = _mm256_mul_ps(_mm256_cvtepi32_ps(s4), da);
    }
  }
  const __m256i m2 = _mm256_set1_epi8(3), b2 = _mm256_set1_epi8(4);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    const uint8_t* p = rows[i] + u * M::kBytes;
    prefetch_ahead<M::kBytes>(p, ahead);
    const uint8_t* qs = kQ3 ? p + 32 : p + 16;
    __m256i s16w;  // the 16 scales as 16-bit words
    __m256i hm = _mm256_setzero_si256();
    float d;
    if constexpr (kQ3) {
      d = h2f(p + 108);
      s16w = _mm256_cvtepi8_epi16(q3k_scales16(p));
      hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    } else {
      d = h2f(p + 80);
      const __m128i sb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      s16w = _mm256_cvtepu8_epi16(_mm_and_si128(sb, _mm_set1_epi8(0x0F)));
      // -(dmin * m) times the activation sums of each 16 elements (mins in a16's order).
      const __m128i hi =
          _mm_shuffle_epi8(_mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(0x0F)),
                           _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15));
      const __m256 nd = _mm256_set1_ps(-h2f(p + 82));
      macc[i] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), nd),
                                a16[0], macc[i]);
      macc[i] = _mm256_fmadd_ps(
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), nd),
          a16[1], macc[i]);
    }
    // d times each block's activation scale.
    alignas(32) float f[8];
    _mm256_store_ps(f, _mm256_mul_ps(da8, _mm256_set1_ps(d)));
    // Scales 0-7 in both 128-bit lanes, then 8-15.
    const __m256i sh[2] = {_mm256_permute2x128_si256(s16w, s16w, 0x00),
                           _mm256_permute2x128_si256(s16w, s16w, 0x11)};
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h));
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        __m256i w = _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m2);
        if constexpr (kQ3) {
          // Bit 4h + j of hmask to bit 2.
          const int n = 4 * h + j;
          const __m256i hb = n >= 2 ? _mm256_srli_epi16(hm, n - 2) : _mm256_slli_epi16(hm, 2 - n);
          w = _mm256_or_si256(w, _mm256_and_si256(hb, b2));
        }
        const int blk = 4 * h + j;
        __m256i p16 = _mm256_maddubs_epi16(w, at[blk]);
        if constexpr (kQ3) p16 = _mm256_sub_epi16(p16, off[blk]);
        // Words 2j, 2j + 1 of the lane: scale 2 blk for the low 16 elements, 2 blk + 1 for the
        // rest.
        const __m256i pick =
            _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>((4 * j + 3) << 8 | (4 * j + 2))),
                             _mm_set1_epi16(static_cast<int16_t>((4 * j + 1) << 8 | 4 * j)));
        const __m256i dot = _mm256_madd_epi16(p16, _mm256_shuffle_epi8(sh[h], pick));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(&f[blk]), acc[i]);
      }
    }
  }
}

// IQ4_XS: super-block u of the R rows against the token: 8 blocks of 32 in IQ4_NL's form, each with
// its own scale (d * (sc - 32) times the block's activation scale, one FMA per block).
template <int R>
LC_TARGET inline void mv_iq4xs(__m256 (&acc)[R], const uint8_t* const* rows, const ActQ8& a,
                               int64_t u, int64_t ahead) {
  using M = Mv<TensorType::IQ4_XS>;
  const __m256 da8 = _mm256_loadu_ps(a.d + 8 * u);
  const int8_t* aq = a.q + 256 * u;
  const __m256i levels = iq4_levels();
  const __m256i lo_shift = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i hi_shift = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    const uint8_t* p = rows[i] + u * M::kBytes;
    prefetch_ahead<M::kBytes>(p, ahead);
    uint16_t sh;
    uint32_t sl;
    std::memcpy(&sh, p + 2, 2);
    std::memcpy(&sl, p + 4, 4);
    // The 8 scales (iq4xs_scale, less 32) times d and the blocks' activation scales.
    const __m256i ls = _mm256_or_si256(
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(sl)), lo_shift),
                         _mm256_set1_epi32(0xF)),
        _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(sh), hi_shift),
                                           _mm256_set1_epi32(3)),
                          4));
    alignas(32) float f[8];
    _mm256_store_ps(f,
                    _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))),
                                  _mm256_mul_ps(da8, _mm256_set1_ps(h2f(p)))));
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      const __m256i w = _mm256_shuffle_epi8(levels, nibbles_32(p + 8 + 16 * s));
      const __m256i at = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 32 * s));
      const __m256i dot = dot_u8s8(_mm256_abs_epi8(w), _mm256_sign_epi8(at, w));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(&f[s]), acc[i]);
    }
  }
}

template <TensorType TY, int R>
LC_TARGET void matvec_tile(const WeightMatrix& w, int64_t r, const ActQ8& a, float* y) {
  using M = Mv<TY>;
  const uint8_t* rows[R];
  __m256 acc[R], macc8[R];
  float macc[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    rows[i] = w.row(r + i);
    acc[i] = _mm256_setzero_ps();
    macc8[i] = _mm256_setzero_ps();
    macc[i] = 0.0f;
  }
  const int64_t tile = static_cast<int64_t>(R * w.row_bytes);
  const int64_t ahead = tile * std::max<int64_t>(1, (kMatvecAhead + tile - 1) / tile);
  const int64_t nb = w.n_in / M::kBlk;
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (TY == TensorType::Q4_K || TY == TensorType::Q5_K) {
      mv_qk45<TY, R>(acc, macc8, rows, a, b, ahead);
    } else if constexpr (TY == TensorType::Q6_K) {
      mv_q6k<R>(acc, rows, a, b, ahead);
    } else if constexpr (TY == TensorType::Q2_K || TY == TensorType::Q3_K) {
      mv_q23k<TY, R>(acc, macc8, rows, a, b, ahead);
    } else if constexpr (TY == TensorType::IQ4_XS) {
      mv_iq4xs<R>(acc, rows, a, b, ahead);
    } else {
      mv_block32<TY, R>(acc, macc, rows, a, b, ahead);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) y[r + i] = hsum(acc[i]) + hsum(macc8[i]) + macc[i];
}

#define LC_MATVEC_K23_IQ4  // simd_x86_matvec.h takes Q2_K, Q3_K, IQ4_NL and IQ4_XS too
#include "kernels/simd_x86_matvec.h"
