// Prefill matmul of the block integer types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q3_K, Q4_K, Q5_K, Q6_K,
// IQ4_NL, IQ4_XS) on AVX2: weight rows repacked into panels of 8 rows, then tiles of two panels (16
// rows) x up to kPanelTok16 tokens (a last single panel: 8 rows x kPanelTok tokens) accumulate
// whole blocks in integer lanes before any float work.
//
// Why: in the row-major tiles (simd_x86_matmul.h) every 32 elements of one (row, token) cost a
// sign, a VPMADDUBSW, a VPMADDWD, a convert, a scale and an FMA. In a panel the 32 elements of a
// block are spread over 8 registers, vector j holding elements [4j, 4j + 4) of the 8 rows (row i at
// bytes 4i..4i+3), so one block of 8 rows is 8 VPMADDUBSW per token against a broadcast dword of
// the token's activations, and the convert, scale and FMA are paid once per 8 rows.
//
// VPMADDUBSW multiplies unsigned by signed bytes. The panels keep the weights signed (the canonical
// q of simd_x86_matmul.h) and the activations are biased instead (xq + 128, unsigned), so each
// product pair is at most 2 * 255 * 32 = 16320 for |q| <= 32 (every type but Q8_0): two of them
// add in 16 bits before VPMADDWD widens them. The bias comes out through a per-row integer that
// starts the sum, -128 * (sum of the block's q). Q8_0's quants use the whole byte range (so do the
// IQ4 levels, which take the same path: full_range_quants): its panels
// hold |q| and q, and the quants' signs are moved onto the unbiased activations for every product
// (as the row-major tiles do; measured faster than 16-bit panels multiplied by VPMADDWD, which
// read twice the bytes). Q6_K and Q3_K have a scale per 16 elements: their two halves are summed
// apart.
//
// Two panels per tile: a broadcast dword of activations feeds both panels' products, and each
// weight vector loaded serves the tile's tokens. The empty asm statements on the running sums
// keep GCC from reassociating each chain of additions into a tree, which holds every product of
// a block live at once and spilled the accumulators (the 8-row tile ran at about 35% of the two
// VPMADDUBSW per cycle). Measured on Zen 3, one thread, 2048 x 2048, 512 tokens (GOP/s, best of
// interleaved runs): Q4_0 137-144 -> 194-210, Q4_K 140-145 -> 167-176, Q6_K 122-132 -> 146-163,
// Q8_0 95-100 -> 119-121.
//
// Numbers: per (row, token) the blocks are summed in order, each as
//   acc += d_a * (scale_w * idot) [+ min_w * s_a]     (Q6_K: d_a * (scale_lo * idot_lo + ...))
// with idot the exact integer product; which panel or tile a row lands in does not change its
// numbers, so any split of the rows gives the same results.
//
// Included by simd_avx2.cpp inside its anonymous namespace, after simd_x86_matmul.h.

constexpr int kPanelRows = 8;
constexpr int kPanelTok = 4;
constexpr int kPanelTok16 = 4;  // tokens of a 16-row tile
// Fewer tokens than this go through the row-major tiles: repacking costs about what a few tokens
// of products do.
constexpr int64_t kPanelMinTok = 8;

// Transposes 8 x 8 dwords: v[j] gets dword j of every v[i] (in lane i).
LC_TARGET inline void transpose8x8_epi32(__m256i (&v)[8]) {
  __m256i t[8], u[8];
#pragma GCC unroll 16
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int g = 0; g < 8; g += 4) {
    u[g] = _mm256_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm256_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm256_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm256_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
#pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x20);
    v[j + 4] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x31);
  }
}

// Rows [r, r + 8) of w into panel slot `slot` of sc: pq (per block 8 vectors of 32 bytes; Q8_0:
// then 8 more with the signed quants), pd (per block, per half for Q6_K, the 8 rows' scales), pm
// (mins), pb (per block and half, the 8 rows' integer starting sums).
LC_TARGET void pack_panel(const WeightMatrix& w, const QType& qt, int64_t r, int slot,
                          MatmulRowScratch& sc) {
  const int64_t n = w.n_in, nb = n / kActBlock;
  const bool q8 = full_range_quants(w.type);  // Q8_0's form
  // A scale per 16 elements (Q6_K, and Q3_K, whose quants fit Q6_K's range).
  const int halves = w.type == TensorType::Q6_K || w.type == TensorType::Q3_K ? 2 : 1;
  const int64_t vecs = q8 ? 16 : 8;  // vectors per block
  sc.pq[slot].resize(static_cast<size_t>(nb * vecs * 32));
  sc.pd[slot].resize(static_cast<size_t>(kPanelRows * nb * halves));
  if (qt.mins) sc.pm[slot].resize(static_cast<size_t>(kPanelRows * nb));
  sc.pb[slot].resize(static_cast<size_t>(kPanelRows * nb * 2));
  for (int64_t k0 = 0; k0 < n; k0 += kPackChunk) {
    const int64_t kc = std::min(kPackChunk, n - k0);
    unpack_chunk(w, qt, r, kPanelRows, k0, kc, sc);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t bc = 0; bc < kc / kActBlock; ++bc) {
      const int64_t b = k0 / kActBlock + bc;
      uint8_t* dst = sc.pq[slot].data() + b * vecs * 32;
      // The block's 32 quants of the 8 rows, transposed as 8 x 8 dwords: vector j gets dword j
      // (elements 4j..4j+3) of every row.
      __m256i v[8];
#pragma GCC unroll 16
      for (int i = 0; i < kPanelRows; ++i)
        v[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&sc.q[i * kc + 32 * bc]));
      transpose8x8_epi32(v);
      __m256i sum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 16
      for (int j = 0; j < 8; ++j) {
        if (q8) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j * 32), _mm256_abs_epi8(v[j]));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (8 + j) * 32), v[j]);
        } else {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j * 32), v[j]);
          sum[j / 4] = _mm256_add_epi32(
              sum[j / 4], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v[j]), ones16));
        }
      }
      // -128 * (sum of q) per row: of each half for Q6_K, of the block for the other types but
      // Q8_0 (whose activations are not biased).
      const __m256i zero = _mm256_setzero_si256();
      auto* pb = reinterpret_cast<__m256i*>(&sc.pb[slot][static_cast<size_t>(b * 2 * kPanelRows)]);
      if (halves == 2) {
        _mm256_storeu_si256(pb, _mm256_sub_epi32(zero, _mm256_slli_epi32(sum[0], 7)));
        _mm256_storeu_si256(pb + 1, _mm256_sub_epi32(zero, _mm256_slli_epi32(sum[1], 7)));
      } else {
        const __m256i all = _mm256_add_epi32(sum[0], sum[1]);
        _mm256_storeu_si256(pb, q8 ? zero : _mm256_sub_epi32(zero, _mm256_slli_epi32(all, 7)));
      }
#pragma GCC unroll 16
      for (int i = 0; i < kPanelRows; ++i) {
        for (int h = 0; h < halves; ++h)
          sc.pd[slot][static_cast<size_t>((b * halves + h) * kPanelRows + i)] =
              sc.s4[static_cast<size_t>(i * kc / 4 + 8 * bc + 4 * h)];
        if (qt.mins)
          sc.pm[slot][static_cast<size_t>(b * kPanelRows + i)] =
              sc.m32[static_cast<size_t>(i * kc / 32 + bc)];
      }
    }
  }
}

LC_TARGET inline __m256i bcast_dword(const uint8_t* p) {
  int32_t x;
  std::memcpy(&x, p, 4);
  return _mm256_set1_epi32(x);
}

// y[t + c, r + lane] for c < C over every block of the panel; au: the activations + 128 (n_in
// apart per token), used by every type but Q8_0 (kQ8), which reads a.q. G (2, 4 or 8) products of
// 4 bytes add in 16 bits before VPMADDWD widens them: 2 * 255 * max |q| * G / 2 must stay below
// 32768 (G = 8 for Q4_0, 4 for Q4_1, Q5_0 and Q4_K, 2 for the others; Q8_0 widens every product).
template <int C, bool kMins, bool kHalves, bool kQ8, int G>
LC_TARGET void panel_tile(const MatmulRowScratch& sc, const ActQ8& a, const uint8_t* au, int64_t t,
                          int64_t n_out, int64_t r, float* y) {
  const int64_t n = a.n_in, nb = n / kActBlock;
  constexpr int kVecs = kQ8 ? 16 : 8;
  constexpr int kHalf = kHalves ? 2 : 1;
  const uint8_t* pq = sc.pq[0].data();
  const float* pd = sc.pd[0].data();
  const float* pm = kMins ? sc.pm[0].data() : nullptr;
  const int32_t* pb = sc.pb[0].data();
  const uint8_t* aq[C];
  const float* ad[C];
  const float* as[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    aq[c] = kQ8 ? reinterpret_cast<const uint8_t*>(a.q + (t + c) * n) : au + (t + c) * n;
    ad[c] = a.d + (t + c) * nb;
    as[c] = a.s + (t + c) * nb;
  }
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* wb = pq + b * kVecs * 32;
    __m256 sum[C];
    for (int h = 0; h < kHalf; ++h) {
      __m256i dot[C];
      const __m256i bias =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + (2 * b + h) * kPanelRows));
      __m256i p16[C];
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) dot[c] = bias;
      constexpr int kJ = kHalves ? 4 : 8;
      if constexpr (kQ8) {
#pragma GCC unroll 16
        for (int j = 0; j < 8; j += 2) {
          const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + j * 32));
          const __m256i w1 =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + (j + 1) * 32));
          const __m256i s0 =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + (8 + j) * 32));
          const __m256i s1 =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + (9 + j) * 32));
#pragma GCC unroll 16
          for (int c = 0; c < C; ++c) {
            const __m256i p0 =
                _mm256_maddubs_epi16(w0, _mm256_sign_epi8(bcast_dword(aq[c] + 32 * b + 4 * j), s0));
            const __m256i p1 = _mm256_maddubs_epi16(
                w1, _mm256_sign_epi8(bcast_dword(aq[c] + 32 * b + 4 * j + 4), s1));
            dot[c] = _mm256_add_epi32(
                dot[c], _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones)));
            asm("" : "+x"(dot[c]));
          }
        }
      } else {
#pragma GCC unroll 16
        for (int j = kJ * h; j < kJ * h + kJ; j += 2) {
          const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + j * 32));
          const __m256i w1 =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + (j + 1) * 32));
#pragma GCC unroll 16
          for (int c = 0; c < C; ++c) {
            const __m256i p0 = _mm256_maddubs_epi16(bcast_dword(aq[c] + 32 * b + 4 * j), w0);
            const __m256i p1 = _mm256_maddubs_epi16(bcast_dword(aq[c] + 32 * b + 4 * j + 4), w1);
            const __m256i p = _mm256_add_epi16(p0, p1);
            // G / 2 pairs of products add in 16 bits before they are widened.
            p16[c] = j % G == 0 ? p : _mm256_add_epi16(p16[c], p);
            asm("" : "+x"(p16[c]));
            if ((j + 2) % G == 0)
              dot[c] = _mm256_add_epi32(dot[c], _mm256_madd_epi16(p16[c], ones));
          }
        }
      }
      const __m256 ws = _mm256_loadu_ps(pd + (b * kHalf + h) * kPanelRows);
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m256 f = _mm256_cvtepi32_ps(dot[c]);
        sum[c] = h == 0 ? _mm256_mul_ps(f, ws) : _mm256_fmadd_ps(f, ws, sum[c]);
      }
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      acc[c] = _mm256_fmadd_ps(sum[c], _mm256_broadcast_ss(ad[c] + b), acc[c]);
      if constexpr (kMins)
        acc[c] = _mm256_fmadd_ps(_mm256_loadu_ps(pm + b * kPanelRows),
                                 _mm256_broadcast_ss(as[c] + b), acc[c]);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(y + (t + c) * n_out + r, acc[c]);
}

using PanelTileFn = void (*)(const MatmulRowScratch&, const ActQ8&, const uint8_t*, int64_t,
                             int64_t, int64_t, float*);

template <bool kMins, bool kHalves, bool kQ8, int G, int... C>
constexpr std::array<PanelTileFn, sizeof...(C)> panel_tiles(std::integer_sequence<int, C...>) {
  return {panel_tile<C + 1, kMins, kHalves, kQ8, G>...};
}
template <bool kMins, bool kHalves, bool kQ8, int G>
constexpr auto kPanelTiles =
    panel_tiles<kMins, kHalves, kQ8, G>(std::make_integer_sequence<int, kPanelTok>());

PanelTileFn panel_tile_fn(int c, TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
      return kPanelTiles<false, false, false, 8>[c - 1];
    case TensorType::Q5_0:
      return kPanelTiles<false, false, false, 4>[c - 1];
    case TensorType::Q4_1:
    case TensorType::Q4_K:
      return kPanelTiles<true, false, false, 4>[c - 1];
    case TensorType::Q5_1:
    case TensorType::Q5_K:
      return kPanelTiles<true, false, false, 2>[c - 1];
    case TensorType::Q6_K:
    case TensorType::Q3_K:
      return kPanelTiles<false, true, false, 2>[c - 1];
    default:
      LC_CHECK(full_range_quants(t));
      return kPanelTiles<false, false, true, 1>[c - 1];
  }
}

// y[t + c, r + i] for c < C, i < 16: the panels in slots 0 and 1 (rows r..r+7 and r+8..r+15),
// every type but Q8_0. Each broadcast of 4 activation bytes feeds both panels' products, so a
// block of 16 rows costs 8 broadcasts per token where two 8-row tiles cost 16; the weight vectors
// are loaded once per C tokens. The integer sums and the float work per (row, token) are those
// of panel_tile, so the two give the same numbers.
template <int C, bool kMins, bool kHalves, int G>
LC_TARGET void panel_tile16(const MatmulRowScratch& sc, const ActQ8& a, const uint8_t* au,
                            int64_t t, int64_t n_out, int64_t r, float* y) {
  const int64_t n = a.n_in, nb = n / kActBlock;
  constexpr int kHalf = kHalves ? 2 : 1;
  constexpr int kJ = kHalves ? 4 : 8;
  const uint8_t* pq[2] = {sc.pq[0].data(), sc.pq[1].data()};
  const float* pd[2] = {sc.pd[0].data(), sc.pd[1].data()};
  const float* pm[2] = {kMins ? sc.pm[0].data() : nullptr, kMins ? sc.pm[1].data() : nullptr};
  const int32_t* pb[2] = {sc.pb[0].data(), sc.pb[1].data()};
  const uint8_t* aq[C];
  const float* ad[C];
  const float* as[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    aq[c] = au + (t + c) * n;
    ad[c] = a.d + (t + c) * nb;
    as[c] = a.s + (t + c) * nb;
  }
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[C][2];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) acc[c][0] = acc[c][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256 sum[C][2];
#pragma GCC unroll 2
    for (int h = 0; h < kHalf; ++h) {
      __m256i dot[C][2], p16[C][2];
#pragma GCC unroll 16
      for (int j = kJ * h; j < kJ * h + kJ; ++j) {
        const __m256i w0 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pq[0] + (b * 8 + j) * 32));
        const __m256i w1 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pq[1] + (b * 8 + j) * 32));
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
          const __m256i x = bcast_dword(aq[c] + 32 * b + 4 * j);
          const __m256i p0 = _mm256_maddubs_epi16(x, w0);
          const __m256i p1 = _mm256_maddubs_epi16(x, w1);
          // G vectors of products add in 16 bits before they are widened.
          p16[c][0] = j % G == 0 ? p0 : _mm256_add_epi16(p16[c][0], p0);
          p16[c][1] = j % G == 0 ? p1 : _mm256_add_epi16(p16[c][1], p1);
          asm("" : "+x"(p16[c][0]), "+x"(p16[c][1]));
          if ((j + 1) % G == 0) {
#pragma GCC unroll 2
            for (int v = 0; v < 2; ++v) {
              const __m256i wide = _mm256_madd_epi16(p16[c][v], ones);
              dot[c][v] = (j + 1 - kJ * h) == G ? wide : _mm256_add_epi32(dot[c][v], wide);
            }
          }
        }
      }
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        const __m256i bias =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb[v] + (2 * b + h) * kPanelRows));
        const __m256 ws = _mm256_loadu_ps(pd[v] + (b * kHalf + h) * kPanelRows);
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
          const __m256 f = _mm256_cvtepi32_ps(_mm256_add_epi32(bias, dot[c][v]));
          sum[c][v] = h == 0 ? _mm256_mul_ps(f, ws) : _mm256_fmadd_ps(f, ws, sum[c][v]);
        }
      }
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const __m256 d = _mm256_broadcast_ss(ad[c] + b);
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        acc[c][v] = _mm256_fmadd_ps(sum[c][v], d, acc[c][v]);
        if constexpr (kMins)
          acc[c][v] = _mm256_fmadd_ps(_mm256_loadu_ps(pm[v] + b * kPanelRows),
                                      _mm256_broadcast_ss(as[c] + b), acc[c][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    _mm256_storeu_ps(y + (t + c) * n_out + r, acc[c][0]);
    _mm256_storeu_ps(y + (t + c) * n_out + r + kPanelRows, acc[c][1]);
  }
}

// Q8_0 on 16 rows: the signs of each panel's quants move onto a copy of the broadcast activations
// (the quants use the whole byte range; see panel_tile), and every pair of products is widened.
template <int C>
LC_TARGET void panel_tile16_q8(const MatmulRowScratch& sc, const ActQ8& a, const uint8_t*,
                               int64_t t, int64_t n_out, int64_t r, float* y) {
  const int64_t n = a.n_in, nb = n / kActBlock;
  const uint8_t* pq[2] = {sc.pq[0].data(), sc.pq[1].data()};
  const float* pd[2] = {sc.pd[0].data(), sc.pd[1].data()};
  const uint8_t* aq[C];
  const float* ad[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    aq[c] = reinterpret_cast<const uint8_t*>(a.q + (t + c) * n);
    ad[c] = a.d + (t + c) * nb;
  }
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[C][2];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) acc[c][0] = acc[c][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i dot[C][2];
#pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) {
      __m256i wa[2], ws[2];
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        wa[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pq[v] + (b * 16 + j) * 32));
        ws[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pq[v] + (b * 16 + 8 + j) * 32));
      }
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m256i x = bcast_dword(aq[c] + 32 * b + 4 * j);
#pragma GCC unroll 2
        for (int v = 0; v < 2; ++v) {
          const __m256i p =
              _mm256_madd_epi16(_mm256_maddubs_epi16(wa[v], _mm256_sign_epi8(x, ws[v])), ones);
          dot[c][v] = j == 0 ? p : _mm256_add_epi32(dot[c][v], p);
          asm("" : "+x"(dot[c][v]));
        }
      }
    }
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      const __m256 ws = _mm256_loadu_ps(pd[v] + b * kPanelRows);
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c)
        acc[c][v] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(dot[c][v]), ws),
                                    _mm256_broadcast_ss(ad[c] + b), acc[c][v]);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    _mm256_storeu_ps(y + (t + c) * n_out + r, acc[c][0]);
    _mm256_storeu_ps(y + (t + c) * n_out + r + kPanelRows, acc[c][1]);
  }
}

template <bool kMins, bool kHalves, int G, int... C>
constexpr std::array<PanelTileFn, sizeof...(C)> panel_tiles16(std::integer_sequence<int, C...>) {
  return {panel_tile16<C + 1, kMins, kHalves, G>...};
}
template <bool kMins, bool kHalves, int G>
constexpr auto kPanelTiles16 =
    panel_tiles16<kMins, kHalves, G>(std::make_integer_sequence<int, kPanelTok16>());

template <int... C>
constexpr std::array<PanelTileFn, sizeof...(C)> panel_tiles16_q8(std::integer_sequence<int, C...>) {
  return {panel_tile16_q8<C + 1>...};
}
constexpr auto kPanelTiles16Q8 = panel_tiles16_q8(std::make_integer_sequence<int, kPanelTok16>());

PanelTileFn panel_tile16_fn(int c, TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
      return kPanelTiles16<false, false, 8>[c - 1];
    case TensorType::Q5_0:
      return kPanelTiles16<false, false, 4>[c - 1];
    case TensorType::Q4_1:
    case TensorType::Q4_K:
      return kPanelTiles16<true, false, 4>[c - 1];
    case TensorType::Q5_1:
    case TensorType::Q5_K:
      return kPanelTiles16<true, false, 2>[c - 1];
    case TensorType::Q6_K:
    case TensorType::Q3_K:
      return kPanelTiles16<false, true, 2>[c - 1];
    default:
      LC_CHECK(full_range_quants(t));
      return kPanelTiles16Q8[c - 1];
  }
}

// Rows [r0, r1) of a product with n_tok tokens; false when the panel kernel does not apply (too
// few tokens, or a type without a canonical form). Rows past the last whole panel of the matrix
// (and any row before the first panel boundary of the range) go through the row-major tiles, so
// that a row's numbers depend only on its index.
LC_TARGET bool matmul_panel(const WeightMatrix& w, const ActQ8& a, int64_t n_tok, int64_t r0,
                            int64_t r1, float* y, MatmulRowScratch& sc) {
  const QType qt = qtype_of(w.type);
  if (n_tok < kPanelMinTok || qt.unpack == nullptr || qt.mins16 || w.n_in % kActBlock != 0)
    return false;
  int64_t a0, a1;
  panel_span(r0, r1, w.n_out, kPanelRows, &a0, &a1);
  if (a0 > r0) matmul_q_rows(w, qt, a, n_tok, r0, a0, y, sc);
  if (a1 > a0) {
    // The activations + 128, as unsigned bytes (every type but Q8_0 multiplies these).
    const int64_t total = n_tok * a.n_in;
    uint8_t* au = nullptr;
    if (!full_range_quants(w.type)) {
      sc.act_u.resize(static_cast<size_t>(total));
      au = sc.act_u.data();
      const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
      for (int64_t e = 0; e < total; e += 32)  // n_in is a multiple of 32
        _mm256_storeu_si256(
            reinterpret_cast<__m256i*>(au + e),
            _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + e)), flip));
    }
    int64_t r = a0;
    {
      for (; r + 2 * kPanelRows <= a1; r += 2 * kPanelRows) {
        pack_panel(w, qt, r, 0, sc);
        pack_panel(w, qt, r + kPanelRows, 1, sc);
        for (int64_t t = 0; t < n_tok; t += kPanelTok16) {
          const int c = static_cast<int>(std::min<int64_t>(kPanelTok16, n_tok - t));
          panel_tile16_fn(c, w.type)(sc, a, au, t, w.n_out, r, y);
        }
      }
    }
    for (; r < a1; r += kPanelRows) {
      pack_panel(w, qt, r, 0, sc);
      for (int64_t t = 0; t < n_tok; t += kPanelTok) {
        const int c = static_cast<int>(std::min<int64_t>(kPanelTok, n_tok - t));
        panel_tile_fn(c, w.type)(sc, a, au, t, w.n_out, r, y);
      }
    }
  }
  if (r1 > a1) matmul_q_rows(w, qt, a, n_tok, a1, r1, y, sc);
  return true;
}
