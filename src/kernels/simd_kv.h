// The AVX2 and AVX-512 attention tiles over keys / values stored as F16 or Q8_0 (the KernelTable
// entries attn_scores_f16, attn_accum_f16, attn_scores_q8_0, attn_accum_q8_0; contracts in
// dispatch.h). Defined, with their target attributes, in simd_avx2_kv.cpp and simd_avx512_kv.cpp
// (x86-64 builds only); only reached through the tables of simd_avx2.cpp and simd_avx512.cpp,
// once dispatch.cpp checked the CPU.
#pragma once

#include <cstdint>

#include "kernels/quant_blocks.h"

namespace lc::kv_avx2 {
// Also the f32 tiles of the AVX2 table (the same heads-sharing loops over f32 rows).
void attn_scores_f32(const float* q, int64_t q_hs, int64_t n_heads, const float* k, int64_t stride,
                     int64_t n, int64_t hd, float scale, float* s, int64_t ns, float* mx);
void attn_accum_f32(const float* p, int64_t ns, int64_t n_heads, const float* v, int64_t stride,
                    int64_t n, int64_t hd, float* acc, int64_t acc_hs);
void attn_scores_f16(const float* q, int64_t q_hs, int64_t n_heads, const uint16_t* k,
                     int64_t stride, int64_t n, int64_t hd, float scale, float* s, int64_t ns,
                     float* mx);
void attn_accum_f16(const float* p, int64_t ns, int64_t n_heads, const uint16_t* v, int64_t stride,
                    int64_t n, int64_t hd, float* acc, int64_t acc_hs);
void attn_scores_q8_0(const float* q, int64_t q_hs, int64_t n_heads, const BlockQ8_0* k,
                      int64_t stride, int64_t n, int64_t hd, float scale, float* s, int64_t ns,
                      float* mx);
void attn_accum_q8_0(const float* p, int64_t ns, int64_t n_heads, const BlockQ8_0* v,
                     int64_t stride, int64_t n, int64_t hd, float* acc, int64_t acc_hs);
}  // namespace lc::kv_avx2

namespace lc::kv_avx512 {
void attn_scores_f16(const float* q, int64_t q_hs, int64_t n_heads, const uint16_t* k,
                     int64_t stride, int64_t n, int64_t hd, float scale, float* s, int64_t ns,
                     float* mx);
void attn_accum_f16(const float* p, int64_t ns, int64_t n_heads, const uint16_t* v, int64_t stride,
                    int64_t n, int64_t hd, float* acc, int64_t acc_hs);
void attn_scores_q8_0(const float* q, int64_t q_hs, int64_t n_heads, const BlockQ8_0* k,
                      int64_t stride, int64_t n, int64_t hd, float scale, float* s, int64_t ns,
                      float* mx);
void attn_accum_q8_0(const float* p, int64_t ns, int64_t n_heads, const BlockQ8_0* v,
                     int64_t stride, int64_t n, int64_t hd, float* acc, int64_t acc_hs);
}  // namespace lc::kv_avx512
