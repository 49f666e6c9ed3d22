// Element types of stored keys and values (the KV cache) and row conversions to and from f32.
//
// F32 and F16 rows are arrays of elements. Q8_0 rows are arrays of GGUF Q8_0 blocks (32 int8 and
// an fp16 scale, value = d * q; see quant_blocks.h), one block per 32 consecutive elements, so a
// row of n elements is n / 32 blocks; element offsets and strides are then multiples of 32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lc {

enum class KvType : uint8_t { F32, F16, Q8_0 };

const char* kv_type_name(KvType t);  // "f32", "f16", "q8_0"
// Parses "f32" / "f16" / "q8_0" (any case); lc::Error naming the setting memory.kv_type
// and the value otherwise.
KvType kv_type_from_name(const std::string& name);

// Elements per storage unit (1, or 32 for a Q8_0 block) and bytes per unit.
int64_t kv_type_block(KvType t);
size_t kv_type_block_bytes(KvType t);
// Bytes of n elements (n a multiple of kv_type_block(t)).
size_t kv_bytes(KvType t, int64_t n);

// Converts n elements (a multiple of kv_type_block(t)): f32 -> t rounds to nearest (F16: IEEE
// round-to-nearest-even; Q8_0: d = max|x| / 127 as GGUF's reference quantizer), t -> f32 is exact.
void kv_from_f32(KvType t, const float* src, void* dst, int64_t n);
void kv_to_f32(KvType t, const void* src, float* dst, int64_t n);

}  // namespace lc
