// GGML tensor element types as stored in GGUF files: id, name, block size and bytes per block.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lc {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct TensorTypeInfo {
  TensorType type;
  std::string_view name;
  int64_t block_size;  // elements per block
  int64_t type_size;   // bytes per block
};

// nullopt for an id this engine does not know.
std::optional<TensorTypeInfo> tensor_type_info(uint32_t id);
const TensorTypeInfo& tensor_type_info(TensorType t);
std::optional<TensorType> tensor_type_from_name(std::string_view name);  // "q8_0", "F16", ...

// Bytes needed for a row of n elements (n must be a multiple of the block size).
inline int64_t row_bytes(const TensorTypeInfo& ti, int64_t n) {
  return n / ti.block_size * ti.type_size;
}

// llama.cpp's general.file_type (llama_ftype) of a file whose matrices are mostly `t` (Q4_K: its
// Q4_K_S, every matrix Q4_K where its rows allow); lc::Error for a type with none.
uint32_t llama_file_type(TensorType t);

}  // namespace lc
