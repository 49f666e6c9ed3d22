// Small AVX2 helpers shared by the AVX2 kernel files (simd_avx2.cpp, simd_avx2_kv.cpp): lane
// masks, horizontal reductions and the transposed reduction of 8 registers. Every function carries
// the AVX2 target attribute (LC_TARGET): include this only from files whose code runs after
// dispatch.cpp checked the CPU.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#define LC_TARGET __attribute__((target("avx2,fma,f16c")))

namespace lc::simd256 {

// Lane mask for the first n (< 8 taken as is, >= 8 all) of 8 floats, for maskload / maskstore.
LC_TARGET inline __m256i lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(n, 8))), idx);
}

LC_TARGET inline float hsum(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

LC_TARGET inline float hmax(__m256 v) {
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// Lane j of the result is the sum of the 8 lanes of v[j].
LC_TARGET inline __m256 reduce8(const __m256* v) {
  const __m256 h01 = _mm256_hadd_ps(v[0], v[1]), h23 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 h45 = _mm256_hadd_ps(v[4], v[5]), h67 = _mm256_hadd_ps(v[6], v[7]);
  const __m256 a = _mm256_hadd_ps(h01, h23), b = _mm256_hadd_ps(h45, h67);
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

// Lane j of the result is the sum of the 8 lanes of v[j] (the additions of reduce8).
LC_TARGET inline __m128 reduce4(const __m256* v) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  return _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
}

}  // namespace lc::simd256
