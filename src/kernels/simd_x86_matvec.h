// The single-token entry of the x86 kernel tables, shared by AVX2 and AVX-512: rows in tiles of
// kMatvecRows (the rest one at a time) through the including file's matvec_tile<TY, R>. Included by
// simd_avx2_matvec.h and simd_avx512.cpp inside their anonymous namespaces, after matvec_tile and
// kMatvecRows, with LC_TARGET defined.
#ifndef LC_TARGET
#error "define LC_TARGET before including simd_x86_matvec.h"
#endif

template <TensorType TY>
LC_TARGET void matvec_rows(const WeightMatrix& w, const ActQ8& a, int64_t r0, int64_t r1,
                           float* y) {
  constexpr int kR = kMatvecRows;
  int64_t r = r0;
  for (; r + kR <= r1; r += kR) matvec_tile<TY, kR>(w, r, a, y);
  for (; r < r1; ++r) matvec_tile<TY, 1>(w, r, a, y);
}

// y[r] for r in [r0, r1) and a single token; false for types without a fused kernel.
LC_TARGET bool matvec_q(const WeightMatrix& w, const ActQ8& a, int64_t r0, int64_t r1, float* y) {
  switch (w.type) {
    case TensorType::Q4_0:
      return matvec_rows<TensorType::Q4_0>(w, a, r0, r1, y), true;
    case TensorType::Q4_1:
      return matvec_rows<TensorType::Q4_1>(w, a, r0, r1, y), true;
    case TensorType::Q5_0:
      return matvec_rows<TensorType::Q5_0>(w, a, r0, r1, y), true;
    case TensorType::Q5_1:
      return matvec_rows<TensorType::Q5_1>(w, a, r0, r1, y), true;
    case TensorType::Q8_0:
      return matvec_rows<TensorType::Q8_0>(w, a, r0, r1, y), true;
    case TensorType::Q4_K:
      return matvec_rows<TensorType::Q4_K>(w, a, r0, r1, y), true;
    case TensorType::Q5_K:
      return matvec_rows<TensorType::Q5_K>(w, a, r0, r1, y), true;
    case TensorType::Q6_K:
      return matvec_rows<TensorType::Q6_K>(w, a, r0, r1, y), true;
// The including file has fused kernels for these (else the row-major tiles take them).
#ifdef LC_MATVEC_K23_IQ4
    case TensorType::Q2_K:
      return matvec_rows<TensorType::Q2_K>(w, a, r0, r1, y), true;
    case TensorType::Q3_K:
      return matvec_rows<TensorType::Q3_K>(w, a, r0, r1, y), true;
    case TensorType::IQ4_NL:
      return matvec_rows<TensorType::IQ4_NL>(w, a, r0, r1, y), true;
    case TensorType::IQ4_XS:
      return matvec_rows<TensorType::IQ4_XS>(w, a, r0, r1, y), true;
#endif
    default:
      return false;
  }
}
