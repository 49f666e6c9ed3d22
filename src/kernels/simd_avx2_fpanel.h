// Prefill matmul of F32 / F16 / BF16 weights on AVX2: outer products on packed panels.
//
// Why: the row-major tile (ftile) computes dot products: each 8 elements of a (row, token) pair
// cost an FMA plus a share of the loads and conversions of both operands, and a horizontal sum
// ends every pair. Here the rows are packed, a chunk of K at a time, into panels of 16 rows stored
// element-major (element k of the 16 rows in two vectors, converted to f32 once per chunk of
// tokens), and a microkernel keeps a tile of 16 rows x 6 tokens in 12 accumulators: per element
// two panel loads and six broadcast activations feed 12 FMAs. On Zen 3 the microkernel alone runs
// at about 90% of the FMA peak with its data in L1, against 55-75% for the row-major tile; a
// 2048 x 8192 F16 product of 96-512 tokens on 2 threads goes from 103-106 to 112-124 GFLOP/s
// (the packing and the output's read-modify-write per K chunk take the rest). Below kFpMinTok
// tokens the row-major tile is as fast or faster (packing 16 rows costs what a few dozen tokens
// of products do), so fewer tokens keep it.
//
// Blocking: tokens in chunks of kFpTokChunk (their K chunk, kFpTokChunk x kFpK floats, stays in
// L2), K in equal chunks of at most kFpK (a packed panel, 16 x kFpK floats, goes past every token
// group of the chunk).
//
// Numbers: per (row, token) each K chunk is summed in order in one lane (element by element), the
// chunks' sums are added to the output in the order of K; rows are independent lanes, so neither
// the row split nor the token grouping changes a result. They differ in rounding from the row-major
// tile's, which products of fewer tokens use (decode, short prompts).
//
// Included by simd_avx2.cpp inside its anonymous namespace, after simd_avx2_panel.h (whose 8 x 8
// transpose it uses).

constexpr int kFpRows = 16;  // rows per panel: two vectors
constexpr int kFpTok = 6;    // tokens per microkernel call
constexpr int64_t kFpK = 512;
constexpr int64_t kFpTokChunk = 96;
constexpr int64_t kFpMinTok = 64;

// Panel p[k * 16 + i] = w[r + i][k0 + k] for k < kn, rows i >= nr
// (lanes never stored) a copy of row nr - 1.
template <TensorType TY>
LC_TARGET void pack_fpanel(const WeightMatrix& w, int64_t r, int nr, int64_t k0, int64_t kn,
                           float* p) {
  const uint8_t* rows[kFpRows];
  for (int i = 0; i < kFpRows; ++i) rows[i] = w.row(r + std::min(i, nr - 1));
  int64_t k = 0;
  for (; k + 8 <= kn; k += 8) {
#pragma GCC unroll 2
    for (int h = 0; h < kFpRows; h += 8) {
      __m256i v[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) v[i] = _mm256_castps_si256(wload<TY>(rows[h + i], k0 + k));
      transpose8x8_epi32(v);
#pragma GCC unroll 8
      for (int e = 0; e < 8; ++e)
        _mm256_store_si256(reinterpret_cast<__m256i*>(p + (k + e) * kFpRows + h), v[e]);
    }
  }
  for (; k < kn; ++k)
    for (int i = 0; i < kFpRows; ++i) p[k * kFpRows + i] = welem<TY>(rows[i], k0 + k);
}

// out[j * 16 + i] = sum over k < kn of p[k * 16 + i] * x[j * n + k], for T tokens.
template <int T>
LC_TARGET void fp_kernel(const float* p, const float* x, int64_t n, int64_t kn, float* out) {
  __m256 acc[T][2];
#pragma GCC unroll 16
  for (int j = 0; j < T; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kn; ++k) {
    const __m256 a0 = _mm256_load_ps(p + k * kFpRows);
    const __m256 a1 = _mm256_load_ps(p + k * kFpRows + 8);
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) {
      const __m256 b = _mm256_broadcast_ss(x + j * n + k);
      acc[j][0] = _mm256_fmadd_ps(a0, b, acc[j][0]);
      acc[j][1] = _mm256_fmadd_ps(a1, b, acc[j][1]);
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < T; ++j) {
    _mm256_storeu_ps(out + j * kFpRows, acc[j][0]);
    _mm256_storeu_ps(out + j * kFpRows + 8, acc[j][1]);
  }
}

using FpKernelFn = void (*)(const float*, const float*, int64_t, int64_t, float*);
constexpr FpKernelFn kFpKernels[kFpTok] = {fp_kernel<1>, fp_kernel<2>, fp_kernel<3>,
                                           fp_kernel<4>, fp_kernel<5>, fp_kernel<6>};

template <TensorType TY>
LC_TARGET bool matmul_f_panel(const WeightMatrix& w, const float* x, int64_t n_tok, int64_t r0,
                              int64_t r1, float* y, MatmulRowScratch& sc) {
  if (n_tok < kFpMinTok) return false;
  const int64_t n = w.n_in;
  // K in equal chunks of at most kFpK (a multiple of 8), so that no chunk is a short remainder.
  const int64_t n_chunks = (n + kFpK - 1) / kFpK;
  const int64_t kc = ((n + n_chunks - 1) / n_chunks + 7) / 8 * 8;
  float* p = static_cast<float*>(sc.tile.get(static_cast<size_t>(kFpRows * kFpK) * sizeof(float)));
  alignas(32) float out[kFpTok * kFpRows];
  for (int64_t t0 = 0; t0 < n_tok; t0 += kFpTokChunk) {
    const int64_t tc = std::min(kFpTokChunk, n_tok - t0);
    for (int64_t k0 = 0; k0 < n; k0 += kc) {
      const int64_t kn = std::min(kc, n - k0);
      for (int64_t r = r0; r < r1; r += kFpRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kFpRows, r1 - r));
        pack_fpanel<TY>(w, r, nr, k0, kn, p);
        for (int64_t t = t0; t < t0 + tc; t += kFpTok) {
          const int nt = static_cast<int>(std::min<int64_t>(kFpTok, t0 + tc - t));
          kFpKernels[nt - 1](p, x + t * n + k0, n, kn, out);
          for (int j = 0; j < nt; ++j) {
            float* yr = y + (t + j) * w.n_out + r;
            const float* o = out + j * kFpRows;
            if (nr == kFpRows) {
              __m256 lo = _mm256_load_ps(o), hi = _mm256_load_ps(o + 8);
              if (k0 != 0) {
                lo = _mm256_add_ps(_mm256_loadu_ps(yr), lo);
                hi = _mm256_add_ps(_mm256_loadu_ps(yr + 8), hi);
              }
              _mm256_storeu_ps(yr, lo);
              _mm256_storeu_ps(yr + 8, hi);
            } else {
              for (int i = 0; i < nr; ++i) yr[i] = k0 == 0 ? o[i] : yr[i] + o[i];
            }
          }
        }
      }
    }
  }
  return true;
}
