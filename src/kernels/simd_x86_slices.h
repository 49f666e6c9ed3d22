// Per-slice dot products of rows combined by their maximum (ops.h: max_slice_dots), shared by
// AVX2 and AVX-512 (256-bit vectors: the rows are short, a slice is a few registers). Included by
// simd_avx2.cpp and simd_avx512.cpp inside their anonymous namespaces, after their vdot, with
// LC_TARGET defined.
#ifndef LC_TARGET
#error "define LC_TARGET before including simd_x86_slices.h"
#endif

// Slices of whole vectors (up to 8): one accumulator per slice, the 8 sums in one reduction (hadd
// tree), then the maximum less the offsets; other shapes one dot product at a time.
LC_TARGET void max_slice_dots(const float* a, int64_t n, int64_t d, int64_t slices, const float* q,
                              const float* off, float* out) {
  const int64_t w = d / slices;
  if (w % 8 != 0 || slices > 8) {
    for (int64_t i = 0; i < n; ++i) {
      float best = -std::numeric_limits<float>::infinity();
      for (int64_t h = 0; h < slices; ++h)
        best = std::max(best, vdot(a + i * d + h * w, q + h * w, w) - (off ? off[h] : 0.0f));
      out[i] = best;
    }
    return;
  }
  // Lanes past the slices subtract +inf: they never win the maximum.
  alignas(32) float o[8];
  for (int64_t h = 0; h < 8; ++h)
    o[h] = h < slices ? (off ? off[h] : 0.0f) : std::numeric_limits<float>::infinity();
  const __m256 offv = _mm256_load_ps(o);
  __m256 acc[8];
  for (int64_t h = slices; h < 8; ++h) acc[h] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; ++i) {
    const float* r = a + i * d;
    for (int64_t h = 0; h < slices; ++h) {
      const float* rh = r + h * w;
      const float* qh = q + h * w;
      __m256 s = _mm256_mul_ps(_mm256_loadu_ps(qh), _mm256_loadu_ps(rh));
      for (int64_t e = 8; e < w; e += 8)
        s = _mm256_fmadd_ps(_mm256_loadu_ps(qh + e), _mm256_loadu_ps(rh + e), s);
      acc[h] = s;
    }
    const __m256 h01 = _mm256_hadd_ps(acc[0], acc[1]), h23 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 h45 = _mm256_hadd_ps(acc[4], acc[5]), h67 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 x = _mm256_hadd_ps(h01, h23), y = _mm256_hadd_ps(h45, h67);
    const __m256 sums =
        _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
    const __m256 v = _mm256_sub_ps(sums, offv);
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    out[i] = _mm_cvtss_f32(m);
  }
}
