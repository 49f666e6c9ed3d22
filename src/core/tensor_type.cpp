// The table of GGML tensor types: block size (elements per block) and bytes per block, as ggml
// defines the formats (QK = 32 for the simple quantized types, QK_K = 256 for the K types).
#include "core/tensor_type.h"

#include <array>
#include <cctype>

#include "core/error.h"

namespace lc {

namespace {

constexpr std::array<TensorTypeInfo, 22> kTypes = {{
    {TensorType::F32, "f32", 1, 4},
    {TensorType::F16, "f16", 1, 2},
    {TensorType::Q4_0, "q4_0", 32, 2 + 16},
    {TensorType::Q4_1, "q4_1", 32, 2 + 2 + 16},
    {TensorType::Q5_0, "q5_0", 32, 2 + 4 + 16},
    {TensorType::Q5_1, "q5_1", 32, 2 + 2 + 4 + 16},
    {TensorType::Q8_0, "q8_0", 32, 2 + 32},
    {TensorType::Q8_1, "q8_1", 32, 2 + 2 + 32},
    {TensorType::Q2_K, "q2_K", 256, 16 + 64 + 2 + 2},
    {TensorType::Q3_K, "q3_K", 256, 32 + 64 + 12 + 2},
    {TensorType::Q4_K, "q4_K", 256, 2 + 2 + 12 + 128},
    {TensorType::Q5_K, "q5_K", 256, 2 + 2 + 12 + 32 + 128},
    {TensorType::Q6_K, "q6_K", 256, 128 + 64 + 16 + 2},
    {TensorType::Q8_K, "q8_K", 256, 4 + 256 + 2 * 16},
    {TensorType::IQ4_NL, "iq4_nl", 32, 2 + 16},
    {TensorType::IQ4_XS, "iq4_xs", 256, 2 + 2 + 4 + 128},
    {TensorType::I8, "i8", 1, 1},
    {TensorType::I16, "i16", 1, 2},
    {TensorType::I32, "i32", 1, 4},
    {TensorType::I64, "i64", 1, 8},
    {TensorType::F64, "f64", 1, 8},
    {TensorType::BF16, "bf16", 1, 2},
}};

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

std::optional<TensorTypeInfo> tensor_type_info(uint32_t id) {
  for (const TensorTypeInfo& ti : kTypes) {
    if (static_cast<uint32_t>(ti.type) == id) return ti;
  }
  return std::nullopt;
}

const TensorTypeInfo& tensor_type_info(TensorType t) {
  for (const TensorTypeInfo& ti : kTypes) {
    if (ti.type == t) return ti;
  }
  throw InternalError(cat("tensor_type_info: unknown tensor type id ", static_cast<uint32_t>(t)));
}

std::optional<TensorType> tensor_type_from_name(std::string_view name) {
  for (const TensorTypeInfo& ti : kTypes) {
    if (iequal(ti.name, name)) return ti.type;
  }
  return std::nullopt;
}

uint32_t llama_file_type(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return 0;
    case TensorType::F16:
      return 1;
    case TensorType::Q4_0:
      return 2;
    case TensorType::Q8_0:
      return 7;
    case TensorType::Q4_K:
      return 14;
    case TensorType::Q6_K:
      return 18;
    case TensorType::BF16:
      return 32;
    default:
      break;
  }
  fail("no llama.cpp file type for tensor type ", static_cast<int>(t));
}

}  // namespace lc
