// Element-wise and row operations of the forward pass (fp32).
#pragma once

#include <cstdint>

namespace lc {

// y = x / rms(x) * w, row of n.
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);
// a[i] = silu(a[i]) * b[i]
void silu_mul(float* a, const float* b, int64_t n);
// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t n);
// In-place softmax of a row; returns nothing, handles -inf entries.
void softmax_inplace(float* x, int64_t n);
// Dot product with fp32 accumulation in several lanes.
float dot_f32(const float* a, const float* b, int64_t n);
// y += a * x
void axpy(float a, const float* x, float* y, int64_t n);
// out[c] = sum_e q[e] * rows[e][c] for c < n, e < d.
void dot_columns(const float* const* rows, const float* q, int64_t d, int64_t n, float* out);
// out[i] = dot(a + i * stride, q) over d elements, for i < n (stride >= d: rows of a matrix, or
// a slice of each).
void dot_rows(const float* a, int64_t n, int64_t d, int64_t stride, const float* q, float* out);
// Rows of d floats one after another, each split in `slices` equal slices of w = d / slices
// (slices divides d): out[i] = max over h of (sum_{e < w} a[i*d + h*w + e] * q[h*w + e] - off[h])
// for i < n; off null: zeros. (Per-head scores of block representatives, combined by their
// maximum: memory/block_index.h.) One pass over each row.
void max_slice_dots(const float* a, int64_t n, int64_t d, int64_t slices, const float* q,
                    const float* off, float* out);
void dot_columns_f16(const uint16_t* const* rows, const float* q, int64_t d, int64_t n, float* out);
// Integer scores of the columns of byte tiles: out[c] = sum_k a(c, k) * q[k] for c < 64 * n_tiles,
// k < 4 * k4, exact in int32. a holds unsigned bytes in tiles of 64 columns; tile t holds columns
// 64t..64t+63 as [tile_k4][64][4] (four consecutive k of one column together), so that
// a(c, k) = a[(c / 64) * tile_k4 * 256 + (k / 4) * 256 + (c % 64) * 4 + k % 4]. q: 4 * k4 signed
// bytes. k4 < tile_k4 scores the first k4 groups of each tile (a + g * 256: groups g.. of a tile
// matrix, a slice of its rows).
void dot_tiles_u8s8(const uint8_t* a, const int8_t* q, int64_t k4, int64_t tile_k4, int64_t n_tiles,
                    int32_t* out);
// log-sum-exp of a row (numerically stable).
double log_sum_exp(const float* x, int64_t n);

}  // namespace lc
