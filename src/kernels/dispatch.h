// Runtime choice of the CPU kernels: one table of entry points per instruction set, chosen once at
// start-up from cpuid and overridable with the environment variable LONGCTX_ISA.
//
// The oldest supported ISA is the x86-64 baseline (SSE2): the whole binary is compiled for it, the
// Scalar table runs everywhere, and the AVX2 / AVX-512 tables live in simd_avx2.cpp /
// simd_avx512.cpp / simd_avx512_bf16.cpp as functions compiled with __attribute__((target(...))),
// only ever called after the CPU has been checked. Nothing is compiled with -march.
//
//   Scalar      x86-64 baseline (portable C++; the compiler may use SSE2)
//   Avx2        AVX2 + FMA + F16C
//   Avx512      AVX-512 F/BW/VL/DQ + VNNI (plus AVX2, FMA, F16C)
//   Avx512Bf16  Avx512 + AVX512_BF16: the same table with a VDPBF16PS prefill kernel for F16 and
//               BF16 weights (simd_avx512_bf16.cpp)
//
// Entry points are coarse (a block of matmul rows, an attention tile, a whole row of an op), so
// the indirect call costs nothing measurable.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/quant_blocks.h"

namespace lc {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512", "avx512bf16"

// Activation rows quantized for the integer matmul kernels: blocks of 32 int8 with an f32 scale,
// d = max|x| / 127, q = round-to-nearest-even(x / d) (see quantize_act_ref).
inline constexpr int kActBlock = 32;
struct ActQ8 {
  const int8_t* q = nullptr;  // token t's row at q + t * n_in
  const float* d = nullptr;   // scale of each block; token t's at d + t * (n_in / 32)
  const float* s = nullptr;   // d * (sum of the block's q), same layout as d
  int64_t n_in = 0;
};

// Scalar definition of the activation quantizer that every table's quantize_act must match
// exactly. n is a multiple of 32; d and s get n / 32 entries.
void quantize_act_ref(const float* x, int64_t n, int8_t* q, float* d, float* s);

// Activation rows rounded to bf16 for the VDPBF16PS kernels: token t's row at b + t * stride, with
// stride = n_in rounded up to even and the padding element (odd n_in) 0.
struct ActBf16 {
  const uint16_t* b = nullptr;
  int64_t stride = 0;
};

// Scalar definition of the bf16 rounding that every table's round_bf16 must match exactly (the
// rounding of VCVTNEPS2BF16): round to nearest even; a subnormal becomes a zero of its sign, a NaN
// a quiet NaN with its sign and upper payload. round_bf16_ref writes dst[i] for i < n, and 0 to
// dst[n] when n is odd.
uint16_t bf16_round_ref(float x);
void round_bf16_ref(const float* x, int64_t n, uint16_t* dst);

// The form of the input matmul_rows wants for a matrix type and token count.
enum class MatmulInput {
  Fallback,  // no direct kernel: matmul.cpp dequantizes the rows itself
  F32,       // the f32 rows
  Q8,        // the f32 rows and ActQ8
  Bf16,      // the f32 rows and ActBf16
};

struct KernelTable {
  Isa isa;

  // --- matmul (see matmul.h for the contract) ---
  // Quantizes one activation row (same numbers as quantize_act_ref).
  void (*quantize_act)(const float* x, int64_t n, int8_t* q, float* d, float* s);
  // Rounds one activation row to bf16 (what round_bf16_ref writes). Null in the tables whose
  // matmul_input never asks for MatmulInput::Bf16.
  void (*round_bf16)(const float* x, int64_t n, uint16_t* dst);
  // Whether matmul_rows takes weights of type t directly for n_tok tokens, and in which form it
  // then wants the activations.
  MatmulInput (*matmul_input)(TensorType t, int64_t n_tok);
  // y[t, r] for rows r in [r0, r1) and every token t < n_tok (y rows are w.n_out apart). x is the
  // f32 input ([n_tok, n_in]); a / b the same rows quantized / rounded when matmul_input asked for
  // them (else null). sc: the running thread's buffers (kernels/scratch.h).
  void (*matmul_rows)(const WeightMatrix& w, const float* x, const ActQ8* a, const ActBf16* b,
                      int64_t n_tok, int64_t r0, int64_t r1, float* y, MatmulRowScratch& sc);

  // --- element-wise and row ops (see ops.h) ---
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // out[c] = sum_e q[e] * rows[e][c] for c < n, e < d (a matrix stored by column: one pass
  // scores n vectors of d floats laid out dimension by dimension).
  void (*dot_columns)(const float* const* rows, const float* q, int64_t d, int64_t n, float* out);
  // out[i] = dot(a + i * d, q) for i < n (rows of d floats, one after another).
  void (*dot_rows)(const float* a, int64_t n, int64_t d, int64_t stride, const float* q,
                   float* out);
  // out[i] = max over h < slices of dot(row i's h-th slice, q's h-th slice) - off[h] (ops.h).
  void (*max_slice_dots)(const float* a, int64_t n, int64_t d, int64_t slices, const float* q,
                         const float* off, float* out);
  // The same with the matrix in IEEE half precision.
  void (*dot_columns_f16)(const uint16_t* const* rows, const float* q, int64_t d, int64_t n,
                          float* out);
  // Integer column scores of byte tiles (ops.h: dot_tiles_u8s8).
  void (*dot_tiles_u8s8)(const uint8_t* a, const int8_t* q, int64_t k4, int64_t tile_k4,
                         int64_t n_tiles, int32_t* out);
  void (*add_inplace)(float* x, const float* y, int64_t n);
  // dst[i] = the IEEE half h[i] as f32 (exact) for i < n.
  void (*f16_to_f32)(const uint16_t* h, float* dst, int64_t n);
  // h[i] = x[i] rounded to an IEEE half as f32_to_fp16 (core/fp16.h) rounds it, for i < n: to
  // nearest even, overflow to infinity, a NaN to 0x7e00 with its sign.
  void (*f32_to_f16)(const float* x, uint16_t* h, int64_t n);
  void (*rmsnorm)(const float* x, const float* w, float* y, int64_t n, float eps);
  void (*silu_mul)(float* a, const float* b, int64_t n);
  void (*softmax_inplace)(float* x, int64_t n);

  // --- attention tiles (n_heads query heads that share one KV head, head_dim floats each) ---
  // s[h * ns + j] = scale * dot(q + h * q_hs, k + j * stride) for h < n_heads, j < n;
  // mx[h] = max_j s[h * ns + j] (-inf when n == 0).
  void (*attn_scores)(const float* q, int64_t q_hs, int64_t n_heads, const float* k, int64_t stride,
                      int64_t n, int64_t head_dim, float scale, float* s, int64_t ns, float* mx);
  // The same scores with the keys stored transposed (a prefill's tile, transposed once for all
  // its queries): key j's element e at kt[e * ld + j]. n_heads is any number of query rows.
  void (*attn_scores_kt)(const float* q, int64_t q_hs, int64_t n_heads, const float* kt, int64_t ld,
                         int64_t n, int64_t head_dim, float scale, float* s, int64_t ns, float* mx);
  // y[j] = exp(x[j] - m) for j < n; returns the sum of the y[j]. x[j] may be -inf (gives 0).
  double (*exp_shift)(const float* x, float m, float* y, int64_t n);
  // acc[h * acc_hs + e] += sum_j p[h * ns + j] * v[j * stride + e] for h < n_heads, e < head_dim.
  void (*attn_accum)(const float* p, int64_t ns, int64_t n_heads, const float* v, int64_t stride,
                     int64_t n, int64_t head_dim, float* acc, int64_t acc_hs);

  // --- the same two tiles over keys / values stored as KvType::F16 or Q8_0 (kv_type.h) ---
  // Numbers as if each row were first converted to f32 (exact for both types), then as above.
  // F16: k / v point at key 0's head, key j's at + j * stride (stride in elements).
  void (*attn_scores_f16)(const float* q, int64_t q_hs, int64_t n_heads, const uint16_t* k,
                          int64_t stride, int64_t n, int64_t head_dim, float scale, float* s,
                          int64_t ns, float* mx);
  void (*attn_accum_f16)(const float* p, int64_t ns, int64_t n_heads, const uint16_t* v,
                         int64_t stride, int64_t n, int64_t head_dim, float* acc, int64_t acc_hs);
  // Q8_0: head_dim a multiple of 32; k / v point at the first block of key 0's head, key j's at
  // + j * stride (stride in blocks).
  void (*attn_scores_q8_0)(const float* q, int64_t q_hs, int64_t n_heads, const BlockQ8_0* k,
                           int64_t stride, int64_t n, int64_t head_dim, float scale, float* s,
                           int64_t ns, float* mx);
  void (*attn_accum_q8_0)(const float* p, int64_t ns, int64_t n_heads, const BlockQ8_0* v,
                          int64_t stride, int64_t n, int64_t head_dim, float* acc, int64_t acc_hs);
};

// The table in use. Chosen on first call: LONGCTX_ISA=scalar|avx2|avx512|avx512bf16 if set
// (lc::Error if the value is unknown or the CPU lacks that ISA), else the best ISA the CPU
// supports.
const KernelTable& kernels();

// Whether this build and CPU can run `isa`.
bool isa_supported(Isa isa);
// Every supported ISA, oldest first (Scalar is always there).
std::vector<Isa> supported_isas();
// The table of `isa`; lc::Error when it is not supported.
const KernelTable& kernel_table(Isa isa);
// Switches the table in use (tests, benchmarks). Not thread-safe against running kernels.
void set_isa(Isa isa);
// Parses "scalar" / "avx2" / "avx512" / "avx512bf16"; lc::Error on anything else.
Isa parse_isa(const char* name);

// Per-ISA tables (defined in simd_scalar.cpp, simd_avx2.cpp, simd_avx512.cpp,
// simd_avx512_bf16.cpp). The AVX ones may only be used once isa_supported() said yes; they are null
// in builds for other architectures.
const KernelTable& scalar_kernel_table();
const KernelTable* avx2_kernel_table();
const KernelTable* avx512_kernel_table();
const KernelTable* avx512_bf16_kernel_table();

}  // namespace lc
