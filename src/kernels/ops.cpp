// The row ops dispatch to the kernel table chosen at start-up (kernels/dispatch.h).
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/dispatch.h"

namespace lc {

float dot_f32(const float* a, const float* b, int64_t n) { return kernels().dot_f32(a, b, n); }

void axpy(float a, const float* x, float* y, int64_t n) { kernels().axpy(a, x, y, n); }
void dot_columns(const float* const* rows, const float* q, int64_t d, int64_t n, float* out) {
  kernels().dot_columns(rows, q, d, n, out);
}
void dot_rows(const float* a, int64_t n, int64_t d, int64_t stride, const float* q, float* out) {
  kernels().dot_rows(a, n, d, stride, q, out);
}
void max_slice_dots(const float* a, int64_t n, int64_t d, int64_t slices, const float* q,
                    const float* off, float* out) {
  kernels().max_slice_dots(a, n, d, slices, q, off, out);
}
void dot_tiles_u8s8(const uint8_t* a, const int8_t* q, int64_t k4, int64_t tile_k4, int64_t n_tiles,
                    int32_t* out) {
  kernels().dot_tiles_u8s8(a, q, k4, tile_k4, n_tiles, out);
}

void dot_columns_f16(const uint16_t* const* rows, const float* q, int64_t d, int64_t n,
                     float* out) {
  kernels().dot_columns_f16(rows, q, d, n, out);
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  kernels().rmsnorm(x, w, y, n, eps);
}

void silu_mul(float* a, const float* b, int64_t n) { kernels().silu_mul(a, b, n); }

void add_inplace(float* x, const float* y, int64_t n) { kernels().add_inplace(x, y, n); }

void softmax_inplace(float* x, int64_t n) { kernels().softmax_inplace(x, n); }

// Kept scalar and in double: perplexity needs it exact more than fast.
double log_sum_exp(const float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  return mx + std::log(sum);
}

}  // namespace lc
