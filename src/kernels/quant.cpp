// Scalar reference (de)quantizers of the GGML block formats (layouts in kernels/quant_blocks.h).
// Written for clarity, not speed: every block is copied into its struct, so `src` / `dst` need no
// particular alignment.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/quant_blocks.h"

namespace lc {

namespace {

float h2f(uint16_t h) { return fp16_to_f32(h); }

template <typename B>
B load_block(const void* src, int64_t i) {
  B b;
  std::memcpy(&b, static_cast<const uint8_t*>(src) + i * static_cast<int64_t>(sizeof(B)),
              sizeof(B));
  return b;
}

template <typename B>
void store_block(void* dst, int64_t i, const B& b) {
  std::memcpy(static_cast<uint8_t*>(dst) + i * static_cast<int64_t>(sizeof(B)), &b, sizeof(B));
}

// ---------------------------------------------------------------------------------------------
// Dequantizers: one block of the format into its kQK or kQK_K floats.

void deq_q4_0(const BlockQ4_0& b, float* y) {
  const float d = h2f(b.d);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((b.qs[j] & 0xF) - 8) * d;
    y[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
  }
}

void deq_q4_1(const BlockQ4_1& b, float* y) {
  const float d = h2f(b.d), m = h2f(b.m);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(b.qs[j] & 0xF) * d + m;
    y[j + kQK / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
  }
}

uint32_t load_qh(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

void deq_q5_0(const BlockQ5_0& b, float* y) {
  const float d = h2f(b.d);
  const uint32_t qh = load_qh(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + kQK / 2] = static_cast<float>(hi - 16) * d;
  }
}

void deq_q5_1(const BlockQ5_1& b, float* y) {
  const float d = h2f(b.d), m = h2f(b.m);
  const uint32_t qh = load_qh(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + kQK / 2] = static_cast<float>(hi) * d + m;
  }
}

void deq_q8_0(const BlockQ8_0& b, float* y) {
  const float d = h2f(b.d);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

void deq_q2_k(const BlockQ2_K& b, float* y) {
  const float d = h2f(b.d), dmin = h2f(b.dmin);
  for (int e = 0; e < kQK_K; ++e) {
    const int q = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const uint8_t sm = b.scales[e / 16];
    y[e] = d * static_cast<float>(sm & 0xF) * static_cast<float>(q) -
           dmin * static_cast<float>(sm >> 4);
  }
}

void deq_q3_k(const BlockQ3_K& b, float* y) {
  const float d = h2f(b.d);
  for (int e = 0; e < kQK_K; ++e) {
    const int lo = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const int hbit = (b.hmask[e % 32] >> (e / 32)) & 1;
    const int q = lo - (hbit ? 0 : 4);
    const int sc = static_cast<int>(q3k_scale(e / 16, b.scales)) - 32;
    y[e] = d * static_cast<float>(sc) * static_cast<float>(q);
  }
}

void deq_q4_k(const BlockQ4_K& b, float* y) {
  const float d = h2f(b.d), dmin = h2f(b.dmin);
  for (int s = 0; s < kQK_K / 32; ++s) {
    uint8_t sc, m;
    k_scale_min(s, b.scales, &sc, &m);
    const float ds = d * sc, ms = dmin * m;
    const uint8_t* q = b.qs + 32 * (s / 2);
    const int shift = (s % 2) * 4;
    for (int l = 0; l < 32; ++l)
      y[32 * s + l] = ds * static_cast<float>((q[l] >> shift) & 0xF) - ms;
  }
}

void deq_q5_k(const BlockQ5_K& b, float* y) {
  const float d = h2f(b.d), dmin = h2f(b.dmin);
  for (int s = 0; s < kQK_K / 32; ++s) {
    uint8_t sc, m;
    k_scale_min(s, b.scales, &sc, &m);
    const float ds = d * sc, ms = dmin * m;
    const uint8_t* q = b.qs + 32 * (s / 2);
    const int shift = (s % 2) * 4;
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0xF) | (((b.qh[l] >> s) & 1) << 4);
      y[32 * s + l] = ds * static_cast<float>(v) - ms;
    }
  }
}

void deq_q6_k(const BlockQ6_K& b, float* y) {
  const float d = h2f(b.d);
  for (int e = 0; e < kQK_K; ++e) {
    const int half = e / 128, quarter = (e % 128) / 32, l = e % 32;
    const uint8_t lbyte = b.ql[64 * half + 32 * (quarter & 1) + l];
    const int lo = quarter >= 2 ? (lbyte >> 4) : (lbyte & 0xF);
    const int hi = (b.qh[32 * half + l] >> (2 * quarter)) & 3;
    const int q = (lo | (hi << 4)) - 32;
    y[e] = d * static_cast<float>(b.scales[e / 16]) * static_cast<float>(q);
  }
}

void deq_iq4_nl(const BlockIQ4_NL& b, float* y) {
  const float d = h2f(b.d);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>(kIq4Levels[b.qs[j] & 0xF]);
    y[j + kQK / 2] = d * static_cast<float>(kIq4Levels[b.qs[j] >> 4]);
  }
}

void deq_iq4_xs(const BlockIQ4_XS& b, float* y) {
  const float d = h2f(b.d);
  for (int s = 0; s < kQK_K / 32; ++s) {
    const float dl = d * static_cast<float>(iq4xs_scale(s, b.scales_h, b.scales_l) - 32);
    const uint8_t* q = b.qs + 16 * s;
    for (int j = 0; j < 16; ++j) {
      y[32 * s + j] = dl * static_cast<float>(kIq4Levels[q[j] & 0xF]);
      y[32 * s + j + 16] = dl * static_cast<float>(kIq4Levels[q[j] >> 4]);
    }
  }
}

void deq_q8_k(const BlockQ8_K& b, float* y) {
  for (int j = 0; j < kQK_K; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
}

template <typename B, void (*F)(const B&, float*), int N>
void deq_blocks(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / N; ++i) F(load_block<B>(src, i), dst + i * N);
}

// ---------------------------------------------------------------------------------------------
// Quantizers.

int nearest(float x) { return static_cast<int>(std::lround(x)); }

// The element of largest magnitude, with its sign (0 for an all-zero block).
float signed_absmax(const float* x, int n) {
  float amax = 0, vmax = 0;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      vmax = x[j];
    }
  }
  return vmax;
}

BlockQ4_0 quant_q4_0(const float* x) {
  BlockQ4_0 b{};
  const float vmax = signed_absmax(x, kQK);
  const float d = vmax / -8.0f;  // vmax maps to -8, the whole block to [-8, 8] -> clamp to 7
  b.d = f32_to_fp16(d);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = std::clamp(nearest(x[j] * id) + 8, 0, 15);
    const int q1 = std::clamp(nearest(x[j + kQK / 2] * id) + 8, 0, 15);
    b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
  return b;
}

BlockQ4_1 quant_q4_1(const float* x) {
  BlockQ4_1 b{};
  const float lo = *std::min_element(x, x + kQK), hi = *std::max_element(x, x + kQK);
  const float d = (hi - lo) / 15.0f;
  b.d = f32_to_fp16(d);
  b.m = f32_to_fp16(lo);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = std::clamp(nearest((x[j] - lo) * id), 0, 15);
    const int q1 = std::clamp(nearest((x[j + kQK / 2] - lo) * id), 0, 15);
    b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
  return b;
}

void store_qh(uint8_t* qh, uint32_t v) {
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(v >> (8 * k));
}

BlockQ5_0 quant_q5_0(const float* x) {
  BlockQ5_0 b{};
  const float vmax = signed_absmax(x, kQK);
  const float d = vmax / -16.0f;
  b.d = f32_to_fp16(d);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = std::clamp(nearest(x[j] * id) + 16, 0, 31);
    const int q1 = std::clamp(nearest(x[j + kQK / 2] * id) + 16, 0, 31);
    b.qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
    qh |= static_cast<uint32_t>(q0 >> 4) << j;
    qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
  }
  store_qh(b.qh, qh);
  return b;
}

BlockQ5_1 quant_q5_1(const float* x) {
  BlockQ5_1 b{};
  const float lo = *std::min_element(x, x + kQK), hi = *std::max_element(x, x + kQK);
  const float d = (hi - lo) / 31.0f;
  b.d = f32_to_fp16(d);
  b.m = f32_to_fp16(lo);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = std::clamp(nearest((x[j] - lo) * id), 0, 31);
    const int q1 = std::clamp(nearest((x[j + kQK / 2] - lo) * id), 0, 31);
    b.qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
    qh |= static_cast<uint32_t>(q0 >> 4) << j;
    qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
  }
  store_qh(b.qh, qh);
  return b;
}

BlockQ8_0 quant_q8_0(const float* x) {
  BlockQ8_0 b{};
  float amax = 0;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  b.d = f32_to_fp16(d);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j)
    b.qs[j] = static_cast<int8_t>(std::clamp(nearest(x[j] * id), -127, 127));
  return b;
}

// Q4_K: per sub-block of 32, the range [min(0, lo), hi] in 15 steps; the 8 scales and 8 (negated)
// mins are then quantized to 6 bits against the super-block's d and dmin, and the weights are
// quantized against the quantized scales.
BlockQ4_K quant_q4_k(const float* x) {
  BlockQ4_K b{};
  float lo[8], hi[8];
  float max_scale = 0, max_min = 0;
  for (int s = 0; s < 8; ++s) {
    const float* xs = x + 32 * s;
    lo[s] = std::min(0.0f, *std::min_element(xs, xs + 32));
    hi[s] = std::max(0.0f, *std::max_element(xs, xs + 32));
    max_scale = std::max(max_scale, (hi[s] - lo[s]) / 15.0f);
    max_min = std::max(max_min, -lo[s]);
  }
  b.d = f32_to_fp16(max_scale / 63.0f);
  b.dmin = f32_to_fp16(max_min / 63.0f);
  const float d = h2f(b.d), dmin = h2f(b.dmin);
  uint8_t sc[8], m[8];
  for (int s = 0; s < 8; ++s) {
    // Quantize the min first, then the scale that spans [-dmin * m, hi] in 15 steps.
    m[s] = static_cast<uint8_t>(dmin > 0 ? std::clamp(nearest(-lo[s] / dmin), 0, 63) : 0);
    const float span = hi[s] + dmin * m[s];
    sc[s] = static_cast<uint8_t>(d > 0 ? std::clamp(nearest(span / 15.0f / d), 0, 63) : 0);
  }
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
  for (int s = 0; s < 8; ++s) {
    const float ds = d * sc[s], ms = dmin * m[s];
    const float id = ds > 0 ? 1.0f / ds : 0.0f;
    uint8_t* q = b.qs + 32 * (s / 2);
    const int shift = (s % 2) * 4;
    for (int l = 0; l < 32; ++l) {
      const int v = std::clamp(nearest((x[32 * s + l] + ms) * id), 0, 15);
      q[l] = static_cast<uint8_t>(q[l] | (v << shift));
    }
  }
  return b;
}

// Q6_K: per sub-block of 16, the signed absmax maps to -32; the 16 scales are quantized to int8
// against d = max |scale| / 127, and the weights against the quantized scales.
BlockQ6_K quant_q6_k(const float* x) {
  BlockQ6_K b{};
  float scale[16];
  float amax = 0;
  for (int s = 0; s < 16; ++s) {
    scale[s] = signed_absmax(x + 16 * s, 16) / -32.0f;
    amax = std::max(amax, std::fabs(scale[s]));
  }
  b.d = f32_to_fp16(amax / 127.0f);
  const float d = h2f(b.d);
  for (int s = 0; s < 16; ++s) {
    b.scales[s] = static_cast<int8_t>(d > 0 ? std::clamp(nearest(scale[s] / d), -127, 127) : 0);
  }
  for (int e = 0; e < kQK_K; ++e) {
    const float ds = d * b.scales[e / 16];
    const int q = ds != 0 ? std::clamp(nearest(x[e] / ds), -32, 31) + 32 : 32;
    const int half = e / 128, quarter = (e % 128) / 32, l = e % 32;
    uint8_t& lbyte = b.ql[64 * half + 32 * (quarter & 1) + l];
    lbyte = static_cast<uint8_t>(lbyte | ((q & 0xF) << (quarter >= 2 ? 4 : 0)));
    uint8_t& hbyte = b.qh[32 * half + l];
    hbyte = static_cast<uint8_t>(hbyte | ((q >> 4) << (2 * quarter)));
  }
  return b;
}

BlockQ8_K quant_q8_k(const float* x) {
  BlockQ8_K b{};
  float amax = 0;
  for (int j = 0; j < kQK_K; ++j) amax = std::max(amax, std::fabs(x[j]));
  b.d = amax / 127.0f;
  const float id = amax > 0 ? 127.0f / amax : 0.0f;
  for (int j = 0; j < kQK_K; ++j) {
    b.qs[j] = static_cast<int8_t>(std::clamp(nearest(x[j] * id), -127, 127));
  }
  for (int k = 0; k < kQK_K / 16; ++k) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += b.qs[16 * k + j];
    b.bsums[k] = static_cast<int16_t>(sum);
  }
  return b;
}

template <typename B, B (*F)(const float*), int N>
void quant_blocks(const float* src, void* dst, int64_t n) {
  for (int64_t i = 0; i < n / N; ++i) store_block(dst, i, F(src + i * N));
}

void check_n(TensorType t, int64_t n) {
  const TensorTypeInfo& ti = tensor_type_info(t);
  if (n < 0 || n % ti.block_size != 0) {
    fail("row of ", n, " elements is not a multiple of the ", ti.name, " block size ",
         ti.block_size);
  }
}

}  // namespace

void dequantize_row_ref(TensorType t, const void* src, float* dst, int64_t n) {
  check_n(t, n);
  switch (t) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::F16:
    case TensorType::BF16: {
      const auto* p = static_cast<const uint8_t*>(src);
      for (int64_t j = 0; j < n; ++j) {
        uint16_t h;
        std::memcpy(&h, p + 2 * j, 2);
        dst[j] = t == TensorType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    }
    case TensorType::Q4_0:
      return deq_blocks<BlockQ4_0, deq_q4_0, kQK>(src, dst, n);
    case TensorType::Q4_1:
      return deq_blocks<BlockQ4_1, deq_q4_1, kQK>(src, dst, n);
    case TensorType::Q5_0:
      return deq_blocks<BlockQ5_0, deq_q5_0, kQK>(src, dst, n);
    case TensorType::Q5_1:
      return deq_blocks<BlockQ5_1, deq_q5_1, kQK>(src, dst, n);
    case TensorType::Q8_0:
      return deq_blocks<BlockQ8_0, deq_q8_0, kQK>(src, dst, n);
    case TensorType::Q2_K:
      return deq_blocks<BlockQ2_K, deq_q2_k, kQK_K>(src, dst, n);
    case TensorType::Q3_K:
      return deq_blocks<BlockQ3_K, deq_q3_k, kQK_K>(src, dst, n);
    case TensorType::Q4_K:
      return deq_blocks<BlockQ4_K, deq_q4_k, kQK_K>(src, dst, n);
    case TensorType::Q5_K:
      return deq_blocks<BlockQ5_K, deq_q5_k, kQK_K>(src, dst, n);
    case TensorType::Q6_K:
      return deq_blocks<BlockQ6_K, deq_q6_k, kQK_K>(src, dst, n);
    case TensorType::Q8_K:
      return deq_blocks<BlockQ8_K, deq_q8_k, kQK_K>(src, dst, n);
    case TensorType::IQ4_NL:
      return deq_blocks<BlockIQ4_NL, deq_iq4_nl, kQK>(src, dst, n);
    case TensorType::IQ4_XS:
      return deq_blocks<BlockIQ4_XS, deq_iq4_xs, kQK_K>(src, dst, n);
    default:
      fail("cannot dequantize tensor type ", tensor_type_info(t).name,
           ": this engine does not support it");
  }
}

bool can_quantize(TensorType t) {
  switch (t) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::Q8_0:
    case TensorType::Q4_K:
    case TensorType::Q6_K:
    case TensorType::Q8_K:
      return true;
    default:
      return false;
  }
}

void quantize_row_ref(TensorType t, const float* src, void* dst, int64_t n) {
  check_n(t, n);
  switch (t) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::F16:
    case TensorType::BF16: {
      auto* p = static_cast<uint8_t*>(dst);
      for (int64_t j = 0; j < n; ++j) {
        const uint16_t h = t == TensorType::F16 ? f32_to_fp16(src[j]) : f32_to_bf16(src[j]);
        std::memcpy(p + 2 * j, &h, 2);
      }
      return;
    }
    case TensorType::Q4_0:
      return quant_blocks<BlockQ4_0, quant_q4_0, kQK>(src, dst, n);
    case TensorType::Q4_1:
      return quant_blocks<BlockQ4_1, quant_q4_1, kQK>(src, dst, n);
    case TensorType::Q5_0:
      return quant_blocks<BlockQ5_0, quant_q5_0, kQK>(src, dst, n);
    case TensorType::Q5_1:
      return quant_blocks<BlockQ5_1, quant_q5_1, kQK>(src, dst, n);
    case TensorType::Q8_0:
      return quant_blocks<BlockQ8_0, quant_q8_0, kQK>(src, dst, n);
    case TensorType::Q4_K:
      return quant_blocks<BlockQ4_K, quant_q4_k, kQK_K>(src, dst, n);
    case TensorType::Q6_K:
      return quant_blocks<BlockQ6_K, quant_q6_k, kQK_K>(src, dst, n);
    case TensorType::Q8_K:
      return quant_blocks<BlockQ8_K, quant_q8_k, kQK_K>(src, dst, n);
    default:
      fail("cannot quantize to tensor type ", tensor_type_info(t).name,
           ": this engine does not support it");
  }
}

}  // namespace lc
