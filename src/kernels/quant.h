// Block formats of the GGUF quantized types and their scalar reference (de)quantizers.
// The reference dequantizers define the numbers every fast kernel is tested against.
#pragma once

#include <cstdint>

#include "core/tensor_type.h"

namespace lc {

// Dequantizes n elements (a multiple of the type's block size) starting at a block boundary.
// Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
void dequantize_row_ref(TensorType t, const void* src, float* dst, int64_t n);

// Quantizes n floats into blocks of type t (round-to-nearest as the format defines it).
// Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K, Q8_K.
bool can_quantize(TensorType t);
void quantize_row_ref(TensorType t, const float* src, void* dst, int64_t n);

}  // namespace lc
