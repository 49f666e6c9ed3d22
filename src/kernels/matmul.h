// Products with weight matrices stored in any GGUF tensor type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor_type.h"
#include "kernels/scratch.h"

namespace lc {

// A weight matrix of n_out rows, each n_in elements of `type`, rows contiguous (GGUF layout:
// ne[0] = n_in, ne[1] = n_out).
struct WeightMatrix {
  TensorType type = TensorType::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;

  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

// y[t, o] = sum_i x[t, i] * W[o, i] for t < n_tok (x rows of n_in, y rows of n_out), fp32
// accumulation. Parallel over output rows. Buffers come from `scratch` (kernels/scratch.h).
// Integer weight types take the activations quantized to int8 blocks (dispatch.h: ActQ8). F16 and
// BF16 weights take them in f32, except on the Avx512Bf16 table for 16 tokens or more, where the
// activations and F16 weights are rounded to bf16 first (dispatch.h: bf16_round_ref) and products
// summed in f32 by VDPBF16PS. Either way a (row, token) result does not depend on how the rows are
// cut into tasks or threads; on the bf16 path it does not depend on the other tokens either.
void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y, KernelScratch& scratch);

// Several products with the same input in one parallel region: y[i] = w[i] x for i < count (every
// w[i] has x's n_in; types may differ). The input is quantized once for all the matrices that want
// it, and the rows of all the matrices are cut into tasks claimed dynamically by the pool's threads
// (a thread held up by another process costs the others one small task, not half the work).
// Results are the same numbers matmul() gives for each matrix alone.
void matmul_group(const WeightMatrix* const* w, float* const* y, int count, const float* x,
                  int64_t n_tok, KernelScratch& scratch);

// Dequantizes row r of w into dst (n_in floats).
void weight_row(const WeightMatrix& w, int64_t r, float* dst);

}  // namespace lc
