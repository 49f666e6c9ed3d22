// The AVX-512 table with AVX512_BF16 (Isa::Avx512Bf16): the Avx512 table of simd_avx512.cpp, plus
// a prefill kernel for F16 and BF16 weights on VDPBF16PS. Every function here carries the target
// attribute (LC_TARGET_BF16) and is only reached after dispatch.cpp checked the CPU (CPUID leaf 7
// subleaf 1, EAX bit 5); on AVX-512 CPUs without it the Avx512 table runs the f32 FMA tiles.
//
// Many tokens (n_tok >= kBf16MinTok): matmul.cpp rounds the activations to bf16 once per product
// (ActBf16, round to nearest even), and the rows are cut into blocks of up to 4 panels of 16 rows.
// A panel holds, for each pair of elements (2q, 2q + 1), one vector of 16 dwords: the pair of row i
// in dword i. VDPBF16PS of that vector with a token's pair broadcast to every dword adds both
// products to 16 f32 lanes, one per row, so a tile of 4 panels x 6 tokens keeps 24 accumulators in
// registers and each step loads 4 panel vectors and 6 broadcasts for 24 dot instructions (a
// row-major tile loads one vector per row and per token for each dot, and needs a horizontal sum at
// the end).
//
// Panels are packed per call, a chunk of kChunkPairs pairs at a time (64-byte row loads transposed
// in registers), rather than once at load: packing reads each weight once per product while the
// products read it n_tok times (4% of a 512-token SmolLM2 F16 prefill, one thread), it costs no
// memory, where panels made at load would be a second copy of every matrix, and the F16 rows that
// decode reads stay the only copy. The chunk of a 64-row block (128 KiB) stays in L2 while every
// token tile goes past it.
//
// F16 weights are rounded to bf16 in the packing (f16 -> f32 exactly, then the rounding of the
// activations) rather than multiplied in f32 from f32 panels or converted on the fly: on this
// kind of CPU (Zen 5) VDPBF16PS does twice the multiply-adds per second of an f32 FMA, and the
// tile runs near that peak, so an f32 kernel could at best be half as fast. The rounding (3
// mantissa bits of the weights) left the perplexity of a trained F16 model unchanged to 4
// decimals (docs/speed.md: "F16 and BF16 prefill"). Decode (few tokens) keeps the f32 tiles and
// the exact F16 weights.
//
// Numbers: each (row, token) lane adds the pairs in order over the whole row, its running sum kept
// in y between chunks (exact), so which panel, block, tile or task a row or token lands in does not
// change its result: any split of the rows gives the same numbers.
#include "kernels/dispatch.h"

#if defined(__x86_64__)

// See simd_avx512.cpp: g++ 12's AVX-512 headers trip -Wuninitialized (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/simd_avx512_util.h"

#define LC_TARGET_BF16                                                            \
  __attribute__((                                                                 \
      target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,avx2,fma," \
             "f16c")))

namespace lc {
namespace {

using simd512::lanes;

constexpr int kPanelRows = 16;
constexpr int kBlockPanels = 4;  // panels per row block (64 rows)
constexpr int kTileTok = 6;      // tokens per tile: 4 x 6 accumulators + 4 panel vectors + 1
// Pairs per chunk at most (64 rows x 1024 elements x 2 bytes = 128 KiB, in L2); a row is cut into
// equal chunks, so that no short chunk pays a tile's loads and stores for a few steps.
constexpr int64_t kChunkPairs = 512;
// Fewer tokens go through the f32 tiles of the Avx512 table, which keep the exact f32 numbers of
// decode: packing costs about what a few tokens of products do (Llama-3.2-1B BF16, one thread:
// 8 tokens 1.3x faster in the f32 tiles, 16 tokens 1.18x faster in the panels).
constexpr int64_t kBf16MinTok = 16;

LC_TARGET_BF16 void round_bf16(const float* x, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; i += 32) {
    const __m512 a = _mm512_maskz_loadu_ps(lanes(n - i), x + i);
    const __m512 b =
        n - i > 16 ? _mm512_maskz_loadu_ps(lanes(n - i - 16), x + i + 16) : _mm512_setzero_ps();
    const __m512i v = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));
    const int64_t left = std::min<int64_t>(32, (n - i + 1) / 2 * 2);
    const __mmask32 m = left >= 32 ? ~__mmask32{0} : (__mmask32{1} << left) - 1;
    _mm512_mask_storeu_epi16(dst + i, m, v);
  }
}

// 16 pairs (dwords) of F16 weights -> the same pairs rounded to bf16.
LC_TARGET_BF16 inline __m512i f16_pairs_to_bf16(__m512i g) {
  const __m512 lo = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
  const __m512 hi = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
  // Low half: the 16 rounded lo, high half: the 16 rounded hi; interleave them into pairs.
  const __m512i v = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, v);
}

// v[i] = 16 dwords of row i -> v[k] = dword k of the 16 rows (a 16 x 16 transpose).
LC_TARGET_BF16 inline void transpose16(__m512i (&v)[16]) {
  // Per group of 4 rows: r[4g + c] holds, in 128-bit lane L, dword 4L + c of rows 4g..4g + 3.
  __m512i r[16];
  for (int g = 0; g < 4; ++g) {
    const __m512i lo01 = _mm512_unpacklo_epi32(v[4 * g], v[4 * g + 1]);
    const __m512i hi01 = _mm512_unpackhi_epi32(v[4 * g], v[4 * g + 1]);
    const __m512i lo23 = _mm512_unpacklo_epi32(v[4 * g + 2], v[4 * g + 3]);
    const __m512i hi23 = _mm512_unpackhi_epi32(v[4 * g + 2], v[4 * g + 3]);
    r[4 * g] = _mm512_unpacklo_epi64(lo01, lo23);
    r[4 * g + 1] = _mm512_unpackhi_epi64(lo01, lo23);
    r[4 * g + 2] = _mm512_unpacklo_epi64(hi01, hi23);
    r[4 * g + 3] = _mm512_unpackhi_epi64(hi01, hi23);
  }
  // Then the 128-bit lanes: dword k = 4L + c gathers lane L of r[c], r[c + 4], r[c + 8], r[c + 12].
  __m512i t[16];
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm512_shuffle_i32x4(r[c], r[c + 4], 0x88);
    t[c + 4] = _mm512_shuffle_i32x4(r[c], r[c + 4], 0xdd);
    t[c + 8] = _mm512_shuffle_i32x4(r[c + 8], r[c + 12], 0x88);
    t[c + 12] = _mm512_shuffle_i32x4(r[c + 8], r[c + 12], 0xdd);
  }
  for (int c = 0; c < 4; ++c) {
    v[c] = _mm512_shuffle_i32x4(t[c], t[c + 8], 0x88);
    v[c + 8] = _mm512_shuffle_i32x4(t[c], t[c + 8], 0xdd);
    v[c + 4] = _mm512_shuffle_i32x4(t[c + 4], t[c + 12], 0x88);
    v[c + 12] = _mm512_shuffle_i32x4(t[c + 4], t[c + 12], 0xdd);
  }
}

// Pairs [p0, p0 + np) of rows [r, r + nr) (nr <= 64) into buf: pair q of panel p at
// buf + (q * n_panels + p) * 16, rows past nr as 0. An odd n_in's last pair has 0 as its second
// element. Rows are read 16 pairs (64 bytes) at a time and transposed in registers.
template <TensorType TY>
LC_TARGET_BF16 void pack(const WeightMatrix& w, int64_t r, int nr, int64_t p0, int64_t np,
                         uint32_t* buf) {
  const int n_panels = (nr + kPanelRows - 1) / kPanelRows;
  // Pairs whose both elements lie in the row (an odd n_in's last pair is built element-wise).
  const int64_t full = std::min(np, w.n_in / 2 - p0);
  for (int p = 0; p < n_panels; ++p) {
    const int rows = std::min(kPanelRows, nr - p * kPanelRows);
    const uint8_t* base = w.row(r + p * kPanelRows) + 4 * p0;
    for (int64_t q = 0; q < full; q += 16) {
      const int64_t nq = std::min<int64_t>(16, full - q);
      const __mmask16 m = lanes(nq);
      __m512i v[16];
      for (int i = 0; i < kPanelRows; ++i)
        v[i] = i < rows ? _mm512_maskz_loadu_epi32(
                              m, base + static_cast<size_t>(i) * w.row_bytes + 4 * q)
                        : _mm512_setzero_si512();
      transpose16(v);
      for (int k = 0; k < nq; ++k) {
        __m512i g = v[k];
        if constexpr (TY == TensorType::F16) g = f16_pairs_to_bf16(g);
        _mm512_store_si512(buf + ((q + k) * n_panels + p) * kPanelRows, g);
      }
    }
    for (int64_t q = full; q < np; ++q) {
      alignas(64) uint32_t v[kPanelRows] = {};
      for (int i = 0; i < rows; ++i) {
        uint16_t e;
        std::memcpy(&e, base + static_cast<size_t>(i) * w.row_bytes + 4 * q, 2);
        v[i] = e;
      }
      __m512i g = _mm512_load_si512(v);
      if constexpr (TY == TensorType::F16) g = f16_pairs_to_bf16(g);
      _mm512_store_si512(buf + (q * n_panels + p) * kPanelRows, g);
    }
  }
}

// One tile: rows [r, r + nr) of the block (P panels, nr > 16 * (P - 1)) x tokens [t, t + T), over
// the pairs of one chunk (np of them, starting at pair p0). The running sums live in y; `first`
// starts them at 0.
template <int P, int T>
LC_TARGET_BF16 void tile(const uint32_t* panel, int64_t np, const ActBf16& b, int64_t t, int64_t p0,
                         float* y, int64_t n_out, int64_t r, int nr, bool first) {
  __mmask16 m[P];
  __m512 acc[P][T];
  for (int p = 0; p < P; ++p) m[p] = lanes(nr - p * kPanelRows);
  if (first) {
    for (int p = 0; p < P; ++p)
      for (int j = 0; j < T; ++j) acc[p][j] = _mm512_setzero_ps();
  } else {
    for (int p = 0; p < P; ++p)
      for (int j = 0; j < T; ++j)
        acc[p][j] = _mm512_maskz_loadu_ps(m[p], y + (t + j) * n_out + r + p * kPanelRows);
  }
  const uint16_t* xp[T];
  for (int j = 0; j < T; ++j) xp[j] = b.b + (t + j) * b.stride + 2 * p0;
  for (int64_t q = 0; q < np; ++q) {
    __m512bh wv[P];
    for (int p = 0; p < P; ++p)
      wv[p] = reinterpret_cast<__m512bh>(_mm512_load_si512(panel + (q * P + p) * kPanelRows));
    for (int j = 0; j < T; ++j) {
      int pair;
      std::memcpy(&pair, xp[j] + 2 * q, 4);
      const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
      for (int p = 0; p < P; ++p) acc[p][j] = _mm512_dpbf16_ps(acc[p][j], wv[p], xv);
    }
  }
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < T; ++j)
      _mm512_mask_storeu_ps(y + (t + j) * n_out + r + p * kPanelRows, m[p], acc[p][j]);
}

using TileFn = void (*)(const uint32_t* panel, int64_t np, const ActBf16& b, int64_t t, int64_t p0,
                        float* y, int64_t n_out, int64_t r, int nr, bool first);

template <int P>
constexpr TileFn kTileRow[kTileTok] = {tile<P, 1>, tile<P, 2>, tile<P, 3>,
                                       tile<P, 4>, tile<P, 5>, tile<P, 6>};
constexpr const TileFn* kTiles[kBlockPanels] = {kTileRow<1>, kTileRow<2>, kTileRow<3>, kTileRow<4>};

template <TensorType TY>
LC_TARGET_BF16 void matmul_bf16_rows(const WeightMatrix& w, const ActBf16& b, int64_t n_tok,
                                     int64_t r0, int64_t r1, float* y, MatmulRowScratch& sc) {
  constexpr int64_t kBlockRows = kBlockPanels * kPanelRows;
  auto* buf = static_cast<uint32_t*>(sc.tile.get(kChunkPairs * kBlockRows * sizeof(uint32_t)));
  const int64_t n_pairs = (w.n_in + 1) / 2;
  const int64_t n_chunks = (n_pairs + kChunkPairs - 1) / kChunkPairs;
  const int64_t chunk = (n_pairs + n_chunks - 1) / n_chunks;
  for (int64_t r = r0; r < r1; r += kBlockRows) {
    const int nr = static_cast<int>(std::min(kBlockRows, r1 - r));
    const int n_panels = (nr + kPanelRows - 1) / kPanelRows;
    const TileFn* tiles = kTiles[n_panels - 1];
    for (int64_t p0 = 0; p0 < n_pairs; p0 += chunk) {
      const int64_t np = std::min(chunk, n_pairs - p0);
      pack<TY>(w, r, nr, p0, np, buf);
      for (int64_t t = 0; t < n_tok; t += kTileTok) {
        const int nt = static_cast<int>(std::min<int64_t>(kTileTok, n_tok - t));
        tiles[nt - 1](buf, np, b, t, p0, y, w.n_out, r, nr, p0 == 0);
      }
    }
  }
}

MatmulInput matmul_input(TensorType t, int64_t n_tok) {
  if ((t == TensorType::F16 || t == TensorType::BF16) && n_tok >= kBf16MinTok)
    return MatmulInput::Bf16;
  return avx512_kernel_table()->matmul_input(t, n_tok);
}

void matmul_rows(const WeightMatrix& w, const float* x, const ActQ8* a, const ActBf16* b,
                 int64_t n_tok, int64_t r0, int64_t r1, float* y, MatmulRowScratch& sc) {
  if (b == nullptr) return avx512_kernel_table()->matmul_rows(w, x, a, b, n_tok, r0, r1, y, sc);
  switch (w.type) {
    case TensorType::F16:
      return matmul_bf16_rows<TensorType::F16>(w, *b, n_tok, r0, r1, y, sc);
    case TensorType::BF16:
      return matmul_bf16_rows<TensorType::BF16>(w, *b, n_tok, r0, r1, y, sc);
    default:
      fail("the bf16 matmul takes F16 or BF16 weights, not ", tensor_type_info(w.type).name);
  }
}

KernelTable make_table() {
  KernelTable t = *avx512_kernel_table();
  t.isa = Isa::Avx512Bf16;
  t.round_bf16 = round_bf16;
  t.matmul_input = matmul_input;
  t.matmul_rows = matmul_rows;
  return t;
}

}  // namespace

const KernelTable* avx512_bf16_kernel_table() {
  static const KernelTable table = make_table();
  return &table;
}

}  // namespace lc

#else  // not x86-64

namespace lc {
const KernelTable* avx512_bf16_kernel_table() { return nullptr; }
}  // namespace lc

#endif
