// Products with weight matrices stored in any GGUF tensor type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor_type.h"

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
// accumulation. Parallel over output rows.
void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y);

// Dequantizes row r of w into dst (n_in floats).
void weight_row(const WeightMatrix& w, int64_t r, float* dst);

}  // namespace lc
