// Prefill matmul of the block integer types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q3_K, Q4_K, Q5_K, Q6_K,
// IQ4_NL, IQ4_XS; Q2_K, with a min per 16 elements, goes through the row-major tiles) on
// AVX-512 VNNI: weight rows repacked into panels of 16 rows, then tiles of 1-2 panels x up to
// kPanelTok tokens accumulate whole blocks in integer lanes before any float work.
//
// Why: VPDPBUSD multiplies 64 byte pairs at once, and a 32-element block of one row is only half a
// register, so a row-major kernel pays a convert, a scale and an FMA for every VPDPBUSD. In a panel
// the 32 elements of a block are spread over 8 registers, each holding 4 consecutive elements of
// all 16 rows, so one block is 8 VPDPBUSD per (panel, token) into one int32 register (lane = row),
// against a broadcast dword of the token's quantized activations; the block's scale, the +128 bias
// and the mins then cost 2-3 float instructions for 16 rows.
//
// Panel layout (per 16 rows, the whole of K): for block b, 8 vectors of 64 bytes, vector j holding
// elements [32b + 4j, 32b + 4j + 4) of rows 0..15 (row i at bytes 4i..4i+3) as q + 128 (unsigned);
// then per block 16 f32 scales (and 16 f32 mins for the types that have them).
//
// Numbers: per (row, token) the blocks are summed in order, each as
//   acc += scale_w * (idot_u * d_a - 128 * s_a) [+ min_w * s_a]
// where idot_u is the exact integer product with the biased weights; which panel or tile a row
// lands in does not change its numbers, so any split of the rows gives the same results.
//
// Q6_K and Q3_K have a scale per 16 elements, half an activation block, and the activations' sums
// per 32 cannot remove a bias per 16. So their panels keep the weights signed (Q6_K: q - 32, in
// [-32, 31]; Q3_K: q - 4) and the tile biases the activations instead (xq + 128, unsigned): the
// bias is then a constant per row and half-block, -128 * (sum of the 16 q), which starts the
// integer sum, so that each half's int32 lane is the exact product sum q * xq. Per block the panel
// holds 16 f32 scales d * sc for each half (pd) and 16 int32 starting biases for each half (pb),
// and
//   acc += d_a * (scale_lo * idot_lo + scale_hi * idot_hi).
//
// Included by simd_avx512.cpp inside its anonymous namespace, after simd_x86_matmul.h.

constexpr int kPanelRows = 16;
constexpr int kPanelMax = 2;  // panels per tile
constexpr int kPanelTok = 4;
// Fewer tokens than this go through the row-major tiles: repacking costs about what a few tokens
// of products do.
constexpr int64_t kPanelMinTok = 8;

// A scale per 16 elements: Q6_K, and Q3_K, whose quants (q - 4) fit Q6_K's signed panels.
constexpr bool scales16(TensorType t) { return t == TensorType::Q6_K || t == TensorType::Q3_K; }

// The caller's buffers (kernels/scratch.h): q, s4, m32 the canonical rows of a chunk of K (16 x
// chunk, chunk / 4, chunk / 32), and per panel slot pq, pd, pm the packed panel.
using PanelScratch = MatmulRowScratch;
static_assert(kPanelMax <= MatmulRowScratch::kPanels);

// Rows [r, r + 16) of w into panel slot p.
LC_TARGET void pack_panel(const WeightMatrix& w, const QType& qt, int64_t r, PanelScratch& sc,
                          int p) {
  const int64_t n = w.n_in, nb = n / kActBlock;
  // The rows are unpacked to canonical form a chunk at a time (unpack_chunk), then gathered into
  // the panel.
  const bool per16 = scales16(w.type);
  const int64_t halves = per16 ? 2 : 1;
  sc.pq[p].resize(static_cast<size_t>(kPanelRows * n));
  sc.pd[p].resize(static_cast<size_t>(kPanelRows * nb * halves));
  if (qt.mins) sc.pm[p].resize(static_cast<size_t>(kPanelRows * nb));
  if (per16) sc.pb[p].resize(static_cast<size_t>(kPanelRows * nb * 2));
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t k0 = 0; k0 < n; k0 += kPackChunk) {
    const int64_t kc = std::min(kPackChunk, n - k0);
    unpack_chunk(w, qt, r, kPanelRows, k0, kc, sc);
    const __m512i rows = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(kc)));
    const __m512i s4rows = _mm512_srli_epi32(rows, 2);
    const __m512i mrows = _mm512_srli_epi32(rows, 5);
    for (int64_t bc = 0; bc < kc / kActBlock; ++bc) {
      const int64_t b = k0 / kActBlock + bc;
      uint8_t* dst = sc.pq[p].data() + b * 8 * 64;
      const int8_t* src = sc.q.data() + 32 * bc;
      if (per16) {
        // 128 * (sum of the half's 16 q) per row, from 4 bytes per lane at a time.
        __m512i sum[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        for (int j = 0; j < 8; ++j) {
          const __m512i v = _mm512_i32gather_epi32(rows, src + 4 * j, 1);
          _mm512_storeu_si512(dst + j * 64, v);
          sum[j / 4] = _mm512_dpbusd_epi32(sum[j / 4], flip, v);
        }
        for (int h = 0; h < 2; ++h) {
          _mm512_storeu_ps(&sc.pd[p][32 * b + 16 * h],
                           _mm512_i32gather_ps(s4rows, &sc.s4[8 * bc + 4 * h], 4));
          _mm512_storeu_si512(&sc.pb[p][32 * b + 16 * h],
                              _mm512_sub_epi32(_mm512_setzero_si512(), sum[h]));
        }
        continue;
      }
      for (int j = 0; j < 8; ++j) {
        const __m512i v = _mm512_i32gather_epi32(rows, src + 4 * j, 1);
        _mm512_storeu_si512(dst + j * 64, _mm512_xor_si512(v, flip));
      }
      _mm512_storeu_ps(&sc.pd[p][16 * b], _mm512_i32gather_ps(s4rows, &sc.s4[8 * bc], 4));
      if (qt.mins) _mm512_storeu_ps(&sc.pm[p][16 * b], _mm512_i32gather_ps(mrows, &sc.m32[bc], 4));
    }
  }
}

// y[t + c, r + 16 i + lane] for c < C, i < R, over every block of the panels.
template <int R, int C, bool kMins>
LC_TARGET void panel_tile(const PanelScratch& sc, const ActQ8& a, int64_t t, int64_t n_out,
                          int64_t r, float* y) {
  const int64_t n = a.n_in, nb = n / kActBlock;
  const uint8_t* pq[R];
  const float* pd[R];
  const float* pm[R];
  for (int i = 0; i < R; ++i) {
    pq[i] = sc.pq[i].data();
    pd[i] = sc.pd[i].data();
    pm[i] = kMins ? sc.pm[i].data() : nullptr;
  }
  const int8_t* aq[C];
  const float* ad[C];
  const float* as[C];
  for (int c = 0; c < C; ++c) {
    aq[c] = a.q + (t + c) * n;
    ad[c] = a.d + (t + c) * nb;
    as[c] = a.s + (t + c) * nb;
  }
  __m512 acc[R][C];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) acc[i][c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i dot[R][C];
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < C; ++c) dot[i][c] = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) {
      __m512i wv[R];
      for (int i = 0; i < R; ++i) wv[i] = _mm512_loadu_si512(pq[i] + (8 * b + j) * 64);
      for (int c = 0; c < C; ++c) {
        int32_t x;
        std::memcpy(&x, aq[c] + 32 * b + 4 * j, 4);
        const __m512i av = _mm512_set1_epi32(x);
        for (int i = 0; i < R; ++i) dot[i][c] = _mm512_dpbusd_epi32(dot[i][c], wv[i], av);
      }
    }
    for (int c = 0; c < C; ++c) {
      const __m512 da = _mm512_set1_ps(ad[c][b]);
      const __m512 nbias = _mm512_set1_ps(-128.0f * as[c][b]);
      for (int i = 0; i < R; ++i) {
        const __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][c]), da, nbias);
        acc[i][c] = _mm512_fmadd_ps(v, _mm512_loadu_ps(pd[i] + 16 * b), acc[i][c]);
        if constexpr (kMins)
          acc[i][c] =
              _mm512_fmadd_ps(_mm512_loadu_ps(pm[i] + 16 * b), _mm512_set1_ps(as[c][b]), acc[i][c]);
      }
    }
  }
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < R; ++i) _mm512_storeu_ps(y + (t + c) * n_out + r + 16 * i, acc[i][c]);
}

// The same for the panels with a scale per 16 (Q6_K, Q3_K; see the top of the file).
template <int R, int C>
LC_TARGET void panel_tile_q6k(const PanelScratch& sc, const ActQ8& a, int64_t t, int64_t n_out,
                              int64_t r, float* y) {
  const int64_t n = a.n_in, nb = n / kActBlock;
  const uint8_t* pq[R];
  const float* pd[R];
  const int32_t* pb[R];
  for (int i = 0; i < R; ++i) {
    pq[i] = sc.pq[i].data();
    pd[i] = sc.pd[i].data();
    pb[i] = sc.pb[i].data();
  }
  const int8_t* aq[C];
  const float* ad[C];
  for (int c = 0; c < C; ++c) {
    aq[c] = a.q + (t + c) * n;
    ad[c] = a.d + (t + c) * nb;
  }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[R][C];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) acc[i][c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512 sum[R][C];
    for (int h = 0; h < 2; ++h) {
      __m512i dot[R][C];
      for (int i = 0; i < R; ++i) {
        const __m512i bias = _mm512_loadu_si512(pb[i] + 32 * b + 16 * h);
        for (int c = 0; c < C; ++c) dot[i][c] = bias;
      }
      for (int j = 4 * h; j < 4 * h + 4; ++j) {
        __m512i wv[R];
        for (int i = 0; i < R; ++i) wv[i] = _mm512_loadu_si512(pq[i] + (8 * b + j) * 64);
        for (int c = 0; c < C; ++c) {
          int32_t x;
          std::memcpy(&x, aq[c] + 32 * b + 4 * j, 4);
          const __m512i av = _mm512_xor_si512(_mm512_set1_epi32(x), flip);
          for (int i = 0; i < R; ++i) dot[i][c] = _mm512_dpbusd_epi32(dot[i][c], av, wv[i]);
        }
      }
      for (int i = 0; i < R; ++i) {
        const __m512 ws = _mm512_loadu_ps(pd[i] + 32 * b + 16 * h);
        for (int c = 0; c < C; ++c) {
          const __m512 f = _mm512_cvtepi32_ps(dot[i][c]);
          sum[i][c] = h == 0 ? _mm512_mul_ps(f, ws) : _mm512_fmadd_ps(f, ws, sum[i][c]);
        }
      }
    }
    for (int c = 0; c < C; ++c) {
      const __m512 da = _mm512_set1_ps(ad[c][b]);
      for (int i = 0; i < R; ++i) acc[i][c] = _mm512_fmadd_ps(sum[i][c], da, acc[i][c]);
    }
  }
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < R; ++i) _mm512_storeu_ps(y + (t + c) * n_out + r + 16 * i, acc[i][c]);
}

using PanelTileFn = void (*)(const PanelScratch&, const ActQ8&, int64_t, int64_t, int64_t, float*);

template <int R, bool kMins, int... C>
constexpr std::array<PanelTileFn, sizeof...(C)> panel_tiles(std::integer_sequence<int, C...>) {
  return {panel_tile<R, C + 1, kMins>...};
}
template <int R, bool kMins>
constexpr auto kPanelTiles = panel_tiles<R, kMins>(std::make_integer_sequence<int, kPanelTok>());

template <int R, int... C>
constexpr std::array<PanelTileFn, sizeof...(C)> panel_tiles_q6k(std::integer_sequence<int, C...>) {
  return {panel_tile_q6k<R, C + 1>...};
}
template <int R>
constexpr auto kPanelTilesQ6k = panel_tiles_q6k<R>(std::make_integer_sequence<int, kPanelTok>());

PanelTileFn panel_tile_fn(int r, int c, const QType& qt, TensorType t) {
  static_assert(kPanelMax == 2, "panel_tile_fn knows tiles of 1 and 2 panels");
  if (scales16(t)) return r == 2 ? kPanelTilesQ6k<2>[c - 1] : kPanelTilesQ6k<1>[c - 1];
  if (r == 2) return qt.mins ? kPanelTiles<2, true>[c - 1] : kPanelTiles<2, false>[c - 1];
  return qt.mins ? kPanelTiles<1, true>[c - 1] : kPanelTiles<1, false>[c - 1];
}

// Rows [r0, r1) of a product with n_tok tokens; false when the panel kernel does not apply (too
// few tokens, or a type without a canonical form). Rows past the last whole panel of
// the matrix (and any row before the first panel boundary of the range) go through the row-major
// tiles, so that a row's numbers depend only on its index.
LC_TARGET bool matmul_panel(const WeightMatrix& w, const ActQ8& a, int64_t n_tok, int64_t r0,
                            int64_t r1, float* y, MatmulRowScratch& sc) {
  const QType qt = qtype_of(w.type);
  if (n_tok < kPanelMinTok || qt.unpack == nullptr || qt.mins16 || w.n_in % kActBlock != 0)
    return false;
  int64_t a0, a1;
  panel_span(r0, r1, w.n_out, kPanelRows, &a0, &a1);
  if (a0 > r0) matmul_q_rows(w, qt, a, n_tok, r0, a0, y, sc);
  for (int64_t r = a0; r < a1;) {
    const int np = static_cast<int>(std::min<int64_t>(kPanelMax, (a1 - r) / kPanelRows));
    for (int p = 0; p < np; ++p) pack_panel(w, qt, r + p * kPanelRows, sc, p);
    for (int64_t t = 0; t < n_tok; t += kPanelTok) {
      const int c = static_cast<int>(std::min<int64_t>(kPanelTok, n_tok - t));
      panel_tile_fn(np, c, qt, w.type)(sc, a, t, w.n_out, r, y);
    }
    r += np * kPanelRows;
  }
  if (r1 > a1) matmul_q_rows(w, qt, a, n_tok, a1, r1, y, sc);
  return true;
}
