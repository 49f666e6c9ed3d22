#include "kernels/kv_type.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/quant.h"
#include "kernels/quant_blocks.h"

namespace lc {

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32:
      return "f32";
    case KvType::F16:
      return "f16";
    case KvType::Q8_0:
      return "q8_0";
  }
  return "?";
}

KvType kv_type_from_name(const std::string& name) {
  std::string s = name;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0})
    if (s == kv_type_name(t)) return t;
  fail_setting({"memory.kv_type"}, "memory.kv_type '", name,
               "' is unknown: expected f32, f16 or q8_0");
}

int64_t kv_type_block(KvType t) { return t == KvType::Q8_0 ? kQK : 1; }

size_t kv_type_block_bytes(KvType t) {
  switch (t) {
    case KvType::F32:
      return sizeof(float);
    case KvType::F16:
      return sizeof(uint16_t);
    case KvType::Q8_0:
      return sizeof(BlockQ8_0);
  }
  return 0;
}

size_t kv_bytes(KvType t, int64_t n) {
  LC_CHECK(n >= 0 && n % kv_type_block(t) == 0);
  return static_cast<size_t>(n / kv_type_block(t)) * kv_type_block_bytes(t);
}

void kv_from_f32(KvType t, const float* src, void* dst, int64_t n) {
  LC_CHECK(n % kv_type_block(t) == 0);
  // Long rows (a prefill's keys or values) in pieces over the pool; every element (Q8_0: block)
  // is converted on its own, so the pieces give the same bytes.
  constexpr int64_t kParallelMin = 1 << 16, kPiece = 1 << 13;  // elements, multiples of 32
  if (t != KvType::F32 && n >= kParallelMin) {
    const int64_t pieces = (n + kPiece - 1) / kPiece;
    const size_t piece_bytes = kv_bytes(t, kPiece);
    parallel_for(pieces, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p)
        kv_from_f32(t, src + p * kPiece, static_cast<uint8_t*>(dst) + p * piece_bytes,
                    std::min(kPiece, n - p * kPiece));
    });
    return;
  }
  switch (t) {
    case KvType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case KvType::F16:
      kernels().f32_to_f16(src, static_cast<uint16_t*>(dst), n);
      return;
    case KvType::Q8_0:
      quantize_row_ref(TensorType::Q8_0, src, dst, n);
      return;
  }
}

void kv_to_f32(KvType t, const void* src, float* dst, int64_t n) {
  LC_CHECK(n % kv_type_block(t) == 0);
  switch (t) {
    case KvType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case KvType::F16: {
      kernels().f16_to_f32(static_cast<const uint16_t*>(src), dst, n);
      return;
    }
    case KvType::Q8_0:
      dequantize_row_ref(TensorType::Q8_0, src, dst, n);
      return;
  }
}

}  // namespace lc
