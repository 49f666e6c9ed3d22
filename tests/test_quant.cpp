// Reference (de)quantizers. Each dequantizer is checked on blocks whose bytes the test builds
// itself from the format definitions (byte offsets written out here, packing loops written the way
// ggml's quantizers lay the bits out), with expected values computed from the chosen quants and
// scales. Scales are powers of two so every expected value is exact. Then quantize -> dequantize
// error bounds for every quantizer, and fp16 / bf16 conversion edge cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/quant.h"
#include "kernels/quant_blocks.h"

namespace lc {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v & 0xff);
  b[at + 1] = static_cast<uint8_t>(v >> 8);
}

// fp16 bit patterns of a few exact values.
constexpr uint16_t kH_1 = 0x3C00, kH_0_5 = 0x3800, kH_0_25 = 0x3400, kH_2 = 0x4000, kH_m2 = 0xC000,
                   kH_m1_5 = 0xBE00, kH_0_125 = 0x3000, kH_3 = 0x4200;

std::vector<float> dequant(TensorType t, const Bytes& b, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n), std::nanf(""));
  dequantize_row_ref(t, b.data(), y.data(), n);
  return y;
}

void expect_same(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    ASSERT_EQ(static_cast<double>(got[k]), want[k]) << "element " << k;
  }
}

// ---------------------------------------------------------------------------------------------
// Simple formats: 32 weights per block.

TEST(Dequant, Q4_0) {
  // Block: fp16 d, 16 bytes; weight j is the low nibble of byte j, weight j+16 the high nibble;
  // value (q - 8) * d.
  Bytes b(2 * 18);
  std::vector<double> want(64);
  const uint16_t ds[2] = {kH_0_5, kH_m2};
  const double dv[2] = {0.5, -2.0};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = 18 * static_cast<size_t>(blk);
    put16(b, o, ds[blk]);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = (j * 7 + 3 + blk * 5) % 16;
    for (int j = 0; j < 16; ++j) b[o + 2 + j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
    for (int j = 0; j < 32; ++j) want[32 * blk + j] = (q[j] - 8) * dv[blk];
  }
  const auto y = dequant(TensorType::Q4_0, b, 64);
  expect_same(y, want);
  EXPECT_EQ(y[0], -2.5f);   // q = 3
  EXPECT_EQ(y[1], 1.0f);    // q = 10
  EXPECT_EQ(y[16], -2.5f);  // q = 115 % 16 = 3
}

TEST(Dequant, Q4_1) {
  // Block: fp16 d, fp16 m, 16 bytes of nibbles; value q * d + m.
  Bytes b(2 * 20);
  std::vector<double> want(64);
  const uint16_t ds[2] = {kH_0_25, kH_2}, ms[2] = {kH_m1_5, kH_1};
  const double dv[2] = {0.25, 2.0}, mv[2] = {-1.5, 1.0};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = 20 * static_cast<size_t>(blk);
    put16(b, o, ds[blk]);
    put16(b, o + 2, ms[blk]);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = (j * 5 + 1 + blk) % 16;
    for (int j = 0; j < 16; ++j) b[o + 4 + j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
    for (int j = 0; j < 32; ++j) want[32 * blk + j] = q[j] * dv[blk] + mv[blk];
  }
  const auto y = dequant(TensorType::Q4_1, b, 64);
  expect_same(y, want);
  EXPECT_EQ(y[0], -1.25f);  // 1 * 0.25 - 1.5
  EXPECT_EQ(y[3], -1.5f);   // q = (15 + 1) % 16 = 0
}

TEST(Dequant, Q5_0) {
  // Block: fp16 d, u32 qh (bit j = bit 4 of weight j), 16 bytes of low nibbles as Q4_0;
  // value (q - 16) * d.
  Bytes b(2 * 22);
  std::vector<double> want(64);
  const uint16_t ds[2] = {kH_0_125, kH_3};
  const double dv[2] = {0.125, 3.0};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = 22 * static_cast<size_t>(blk);
    put16(b, o, ds[blk]);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = (j * 11 + 5 + 3 * blk) % 32;
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      b[o + 6 + j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
      qh |= static_cast<uint32_t>((q[j] & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; ++k) b[o + 2 + k] = static_cast<uint8_t>(qh >> (8 * k));
    for (int j = 0; j < 32; ++j) want[32 * blk + j] = (q[j] - 16) * dv[blk];
  }
  const auto y = dequant(TensorType::Q5_0, b, 64);
  expect_same(y, want);
  EXPECT_EQ(y[0], -1.375f);  // q = 5: (5 - 16) / 8
  EXPECT_EQ(y[1], 0.0f);     // q = 16
}

TEST(Dequant, Q5_1) {
  // Block: fp16 d, fp16 m, u32 qh, 16 bytes; value q * d + m.
  Bytes b(2 * 24);
  std::vector<double> want(64);
  const uint16_t ds[2] = {kH_0_5, kH_0_25}, ms[2] = {kH_2, kH_m2};
  const double dv[2] = {0.5, 0.25}, mv[2] = {2.0, -2.0};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = 24 * static_cast<size_t>(blk);
    put16(b, o, ds[blk]);
    put16(b, o + 2, ms[blk]);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = (j * 13 + 2 + 7 * blk) % 32;
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      b[o + 8 + j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
      qh |= static_cast<uint32_t>((q[j] & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; ++k) b[o + 4 + k] = static_cast<uint8_t>(qh >> (8 * k));
    for (int j = 0; j < 32; ++j) want[32 * blk + j] = q[j] * dv[blk] + mv[blk];
  }
  const auto y = dequant(TensorType::Q5_1, b, 64);
  expect_same(y, want);
  EXPECT_EQ(y[2], 16.0f);  // q = 28: 28 * 0.5 + 2
}

TEST(Dequant, Q8_0) {
  // Block: fp16 d, 32 int8; value q * d.
  Bytes b(2 * 34);
  std::vector<double> want(64);
  const uint16_t ds[2] = {kH_0_25, kH_m1_5};
  const double dv[2] = {0.25, -1.5};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = 34 * static_cast<size_t>(blk);
    put16(b, o, ds[blk]);
    for (int j = 0; j < 32; ++j) {
      const int q = (j * 37 + 11 * blk) % 256 - 128;
      b[o + 2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
      want[32 * blk + j] = q * dv[blk];
    }
  }
  const auto y = dequant(TensorType::Q8_0, b, 64);
  expect_same(y, want);
  EXPECT_EQ(y[0], -32.0f);  // q = -128
}

// ---------------------------------------------------------------------------------------------
// K formats: 256 weights per super-block.

TEST(Dequant, Q2_K) {
  // Block (84 bytes): scales[16] @0 (low nibble scale, high nibble min), qs[64] @16,
  // fp16 d @80, fp16 dmin @82. The 256 weights go in two halves of 128; in a half, byte l of the
  // 32 holds weights l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7. Sub-block of 16 weights k
  // uses scales[k]: value d * (sc & 15) * q - dmin * (sc >> 4).
  Bytes b(84);
  int q[256];
  for (int e = 0; e < 256; ++e) q[e] = (e + e / 4 + e / 64) % 4;
  uint8_t sc[16];
  for (int k = 0; k < 16; ++k)
    sc[k] = static_cast<uint8_t>((k * 7 + 1) % 16 | (((k * 5 + 3) % 16) << 4));
  std::memcpy(b.data(), sc, 16);
  for (int n = 0; n < 2; ++n) {
    for (int l = 0; l < 32; ++l) {
      b[16 + 32 * n + l] =
          static_cast<uint8_t>(q[128 * n + l] | (q[128 * n + l + 32] << 2) |
                               (q[128 * n + l + 64] << 4) | (q[128 * n + l + 96] << 6));
    }
  }
  put16(b, 80, kH_0_5);
  put16(b, 82, kH_0_25);
  std::vector<double> want(256);
  // Walk the weights the way the format's dequantizer does: half, shift, two groups of 16.
  int e = 0, is = 0;
  for (int n = 0; n < 2; ++n) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int g = 0; g < 2; ++g, ++is) {
        const double dl = 0.5 * (sc[is] & 15), ml = 0.25 * (sc[is] >> 4);
        for (int l = 0; l < 16; ++l, ++e) {
          const int qq = (b[16 + 32 * n + 16 * g + l] >> shift) & 3;
          ASSERT_EQ(qq, q[e]);
          want[e] = dl * qq - ml;
        }
      }
    }
  }
  const auto y = dequant(TensorType::Q2_K, b, 256);
  expect_same(y, want);
  EXPECT_EQ(y[0], 0.5 * 1 * 0 - 0.25 * 3);  // sc[0] = 1 | 3 << 4, q[0] = 0
}

// Packs 16 6-bit values (0..63) the way Q3_K stores its scales in 12 bytes.
void pack_q3k_scales(const int* s, uint8_t* out) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const int l = s[j];
    if (j < 8) {
      out[j] = static_cast<uint8_t>(l & 0xF);
    } else {
      out[j - 8] = static_cast<uint8_t>(out[j - 8] | ((l & 0xF) << 4));
    }
    out[8 + j % 4] = static_cast<uint8_t>(out[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
  }
}

TEST(Dequant, Q3_K) {
  // Block (110 bytes): hmask[32] @0, qs[64] @32, scales[12] @96, fp16 d @108. Each weight is a
  // 3-bit L in 0..7 stored as L & 3 in qs (layout as Q2_K) and L >> 2 in hmask: weight e sets bit
  // e / 32 of hmask[e % 32]. Value d * (scale - 32) * (L - 4), scale 6 bits per 16 weights.
  Bytes b(110);
  int L[256];
  for (int e = 0; e < 256; ++e) L[e] = (e * 3 + e / 32) % 8;
  int s[16];
  for (int k = 0; k < 16; ++k) s[k] = (k * 23 + 9) % 64;
  s[3] = 0;   // -32
  s[4] = 63;  // +31
  int m = 0, hm = 1;
  int low[256];
  for (int e = 0; e < 256; ++e) {
    low[e] = L[e];
    if (low[e] > 3) {
      b[static_cast<size_t>(m)] = static_cast<uint8_t>(b[static_cast<size_t>(m)] | hm);
      low[e] -= 4;
    }
    if (++m == 32) {
      m = 0;
      hm <<= 1;
    }
  }
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      b[32 + n / 4 + l] = static_cast<uint8_t>(low[n + l] | (low[n + l + 32] << 2) |
                                               (low[n + l + 64] << 4) | (low[n + l + 96] << 6));
    }
  }
  pack_q3k_scales(s, b.data() + 96);
  put16(b, 108, kH_0_25);
  std::vector<double> want(256);
  for (int e = 0; e < 256; ++e) want[e] = 0.25 * (s[e / 16] - 32) * (L[e] - 4);
  const auto y = dequant(TensorType::Q3_K, b, 256);
  expect_same(y, want);
  EXPECT_EQ(y[48], 0.25 * -32 * ((48 * 3 + 1) % 8 - 4));
}

// Packs 8 6-bit scales and 8 6-bit mins the way Q4_K / Q5_K store them in 12 bytes.
void pack_k4_scales(const int* sc, const int* mn, uint8_t* out) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = static_cast<uint8_t>(sc[j]);
      out[j + 4] = static_cast<uint8_t>(mn[j]);
    } else {
      out[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      out[j - 4] = static_cast<uint8_t>(out[j - 4] | ((sc[j] >> 4) << 6));
      out[j] = static_cast<uint8_t>(out[j] | ((mn[j] >> 4) << 6));
    }
  }
}

TEST(Dequant, KScaleWordsMatchKScaleMin) {
  // The four-at-a-time unpacking the x86 matvec kernels use, against the per-index definition.
  std::mt19937 rng(41);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 200; ++trial) {
    uint8_t q[12];
    for (auto& b : q) b = static_cast<uint8_t>(byte(rng));
    const KScaleWords kw = k_scale_words(q);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      k_scale_min(j, q, &sc, &m);
      EXPECT_EQ((kw.sc[j / 4] >> (8 * (j % 4))) & 0xFF, sc) << "scale " << j;
      EXPECT_EQ((kw.m[j / 4] >> (8 * (j % 4))) & 0xFF, m) << "min " << j;
    }
  }
}

TEST(Dequant, Q4_K) {
  // Block (144 bytes): fp16 d @0, fp16 dmin @2, scales[12] @4, qs[128] @16. Four chunks of 64
  // weights, each 32 bytes: weight l of the chunk is the low nibble of byte l, weight l+32 the
  // high nibble. Sub-block of 32 weights k: value d * sc[k] * q - dmin * mn[k].
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant);
    Bytes b(2 * 144);
    std::vector<double> want(512);
    for (int blk = 0; blk < 2; ++blk) {
      const size_t o = 144 * static_cast<size_t>(blk);
      int q[256], sc[8], mn[8];
      for (int e = 0; e < 256; ++e) q[e] = (e * 7 + e / 16 + blk) % 16;
      for (int k = 0; k < 8; ++k) {
        sc[k] = variant == 0 ? (k * 19 + 5 + blk) % 64 : 63 - k;  // variant 1: high bits set
        mn[k] = variant == 0 ? (k * 29 + 3 + blk) % 64 : 48 + k;
      }
      put16(b, o, blk ? kH_0_125 : kH_0_5);
      put16(b, o + 2, blk ? kH_0_5 : kH_0_25);
      pack_k4_scales(sc, mn, b.data() + o + 4);
      for (int n = 0; n < 256; n += 64) {
        for (int l = 0; l < 32; ++l) {
          b[o + 16 + n / 2 + l] = static_cast<uint8_t>(q[n + l] | (q[n + l + 32] << 4));
        }
      }
      const double d = blk ? 0.125 : 0.5, dmin = blk ? 0.5 : 0.25;
      for (int e = 0; e < 256; ++e) want[256 * blk + e] = d * sc[e / 32] * q[e] - dmin * mn[e / 32];
    }
    expect_same(dequant(TensorType::Q4_K, b, 512), want);
  }
}

TEST(Dequant, Q5_K) {
  // Block (176 bytes): fp16 d @0, fp16 dmin @2, scales[12] @4, qh[32] @16, qs[128] @48. Low
  // nibbles as Q4_K; bit 4 of weight e is bit e / 32 of qh[e % 32].
  Bytes b(176);
  int q[256], sc[8], mn[8];
  for (int e = 0; e < 256; ++e) q[e] = (e * 11 + e / 32 + 5) % 32;
  for (int k = 0; k < 8; ++k) {
    sc[k] = (k * 37 + 17) % 64;
    mn[k] = (k * 13 + 40) % 64;
  }
  put16(b, 0, kH_0_25);
  put16(b, 2, kH_0_125);
  pack_k4_scales(sc, mn, b.data() + 4);
  int m1 = 1, m2 = 2;
  for (int n = 0; n < 256; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = q[n + j], l2 = q[n + j + 32];
      if (l1 > 15) {
        l1 -= 16;
        b[16 + j] = static_cast<uint8_t>(b[16 + j] | m1);
      }
      if (l2 > 15) {
        l2 -= 16;
        b[16 + j] = static_cast<uint8_t>(b[16 + j] | m2);
      }
      b[48 + n / 2 + j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
    m1 <<= 2;
    m2 <<= 2;
  }
  std::vector<double> want(256);
  for (int e = 0; e < 256; ++e) want[e] = 0.25 * sc[e / 32] * q[e] - 0.125 * mn[e / 32];
  expect_same(dequant(TensorType::Q5_K, b, 256), want);
}

TEST(Dequant, Q6_K) {
  // Block (210 bytes): ql[128] @0, qh[64] @128, int8 scales[16] @192, fp16 d @208. Each weight
  // is 6 bits L (value L - 32). Per half of 128 weights (64 ql bytes, 32 qh bytes): ql[l] holds
  // weights l (low) and l+64 (high), ql[l+32] weights l+32 and l+96; qh[l] holds the top 2 bits
  // of weights l, l+32, l+64, l+96. Value d * scale[e / 16] * (L - 32).
  Bytes b(210);
  int L[256], sc[16];
  for (int e = 0; e < 256; ++e) L[e] = (e * 13 + e / 64 + 7) % 64;
  for (int k = 0; k < 16; ++k) sc[k] = (k * 41 + 3) % 256 - 128;
  for (int n = 0; n < 2; ++n) {
    const int* Lh = L + 128 * n;
    uint8_t* ql = b.data() + 64 * n;
    uint8_t* qh = b.data() + 128 + 32 * n;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                   ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
    }
  }
  for (int k = 0; k < 16; ++k) b[192 + k] = static_cast<uint8_t>(static_cast<int8_t>(sc[k]));
  put16(b, 208, kH_0_125);
  std::vector<double> want(256);
  for (int e = 0; e < 256; ++e) want[e] = 0.125 * sc[e / 16] * (L[e] - 32);
  const auto y = dequant(TensorType::Q6_K, b, 256);
  expect_same(y, want);
  EXPECT_EQ(y[0], 0.125 * -125 * (7 - 32));
}

TEST(Dequant, Q8_K) {
  // Block (292 bytes): f32 d @0, int8 qs[256] @4, int16 bsums[16] @260 (unused here).
  Bytes b(292);
  const float d = 0.0625f;
  std::memcpy(b.data(), &d, 4);
  std::vector<double> want(256);
  for (int e = 0; e < 256; ++e) {
    const int q = (e * 29 + 1) % 255 - 127;
    b[4 + static_cast<size_t>(e)] = static_cast<uint8_t>(static_cast<int8_t>(q));
    want[e] = 0.0625 * q;
  }
  expect_same(dequant(TensorType::Q8_K, b, 256), want);
}

// The IQ4 levels, as GGUF files use them (independent of the engine's table).
constexpr int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                             1,    13,   25,  38,  53,  69,  89,  113};

TEST(Dequant, IQ4_NL) {
  // Block: fp16 d, 16 bytes in Q4_0's order; value d * level[nibble].
  Bytes b(2 * 18);
  std::vector<double> want(64);
  const uint16_t ds[2] = {kH_0_25, kH_m1_5};
  const double dv[2] = {0.25, -1.5};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = 18 * static_cast<size_t>(blk);
    put16(b, o, ds[blk]);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = (j * 5 + 1 + blk * 3) % 16;
    for (int j = 0; j < 16; ++j) b[o + 2 + j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
    for (int j = 0; j < 32; ++j) want[32 * blk + j] = kLevels[q[j]] * dv[blk];
  }
  const auto y = dequant(TensorType::IQ4_NL, b, 64);
  expect_same(y, want);
  EXPECT_EQ(y[0], -26.0f);  // level[1] = -104, d = 0.25
}

TEST(Dequant, IQ4_XS) {
  // Super-block (136 bytes): fp16 d @0, u16 scales_h @2, scales_l[4] @4, qs[128] @8. Sub-block s
  // (32 weights) has a 6-bit scale: low 4 bits in nibble s % 2 of scales_l[s / 2], high 2 bits in
  // bits 2s of scales_h; its 16 bytes qs[16s ..] in Q4_0's order; value d * (scale - 32) * level.
  Bytes b(136);
  put16(b, 0, kH_0_125);
  int sc[8];
  for (int s = 0; s < 8; ++s) sc[s] = (s * 19 + 5) % 64;
  sc[2] = 0;   // -32
  sc[5] = 63;  // +31
  uint16_t sh = 0;
  for (int s = 0; s < 8; ++s) {
    b[4 + s / 2] = static_cast<uint8_t>(b[4 + s / 2] | ((sc[s] & 0xF) << (4 * (s % 2))));
    sh = static_cast<uint16_t>(sh | ((sc[s] >> 4) << (2 * s)));
  }
  put16(b, 2, sh);
  std::vector<double> want(256);
  for (int s = 0; s < 8; ++s) {
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = (j * 11 + s * 7 + 2) % 16;
    for (int j = 0; j < 16; ++j) b[8 + 16 * s + j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
    for (int j = 0; j < 32; ++j) want[32 * s + j] = 0.125 * (sc[s] - 32) * kLevels[q[j]];
  }
  expect_same(dequant(TensorType::IQ4_XS, b, 256), want);
}

TEST(Dequant, FloatFormats) {
  const float xs[5] = {1.0f, -0.0f, 3.5f, 1e-8f, -65504.0f};
  Bytes f32(20);
  std::memcpy(f32.data(), xs, 20);
  const auto y32 = dequant(TensorType::F32, f32, 5);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(std::memcmp(&y32[k], &xs[k], 4), 0);

  Bytes h(10);
  const uint16_t hv[5] = {0x3C00, 0x8000, 0x4300, 0x0001, 0xFBFF};  // 1, -0, 3.5, 2^-24, -65504
  for (int k = 0; k < 5; ++k) put16(h, 2 * static_cast<size_t>(k), hv[k]);
  const auto yh = dequant(TensorType::F16, h, 5);
  EXPECT_EQ(yh[0], 1.0f);
  EXPECT_TRUE(std::signbit(yh[1]) && yh[1] == 0.0f);
  EXPECT_EQ(yh[2], 3.5f);
  EXPECT_EQ(yh[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(yh[4], -65504.0f);

  Bytes bf(6);
  put16(bf, 0, 0x3F80);  // 1
  put16(bf, 2, 0xC0A0);  // -5
  put16(bf, 4, 0x0001);  // smallest bf16 subnormal, 2^-133
  const auto yb = dequant(TensorType::BF16, bf, 3);
  EXPECT_EQ(yb[0], 1.0f);
  EXPECT_EQ(yb[1], -5.0f);
  EXPECT_EQ(yb[2], std::ldexp(1.0f, -133));
}

TEST(Dequant, RejectsBadRequests) {
  Bytes b(1024);
  std::vector<float> y(256);
  EXPECT_THROW(dequantize_row_ref(TensorType::Q4_0, b.data(), y.data(), 33), Error);
  EXPECT_THROW(dequantize_row_ref(TensorType::Q4_K, b.data(), y.data(), 128), Error);
  EXPECT_THROW(dequantize_row_ref(TensorType::I32, b.data(), y.data(), 4), Error);
  EXPECT_THROW(dequantize_row_ref(TensorType::Q8_1, b.data(), y.data(), 32), Error);
  EXPECT_THROW(quantize_row_ref(TensorType::Q2_K, y.data(), b.data(), 256), Error);
  EXPECT_THROW(quantize_row_ref(TensorType::Q8_0, y.data(), b.data(), 31), Error);
  EXPECT_FALSE(can_quantize(TensorType::Q3_K));
  EXPECT_FALSE(can_quantize(TensorType::I8));
  EXPECT_TRUE(can_quantize(TensorType::Q6_K));
}

// ---------------------------------------------------------------------------------------------
// Quantize -> dequantize

std::vector<float> round_trip(TensorType t, const std::vector<float>& x) {
  const TensorTypeInfo& ti = tensor_type_info(t);
  Bytes q(static_cast<size_t>(row_bytes(ti, static_cast<int64_t>(x.size()))), 0xAB);
  quantize_row_ref(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  return dequant(t, q, static_cast<int64_t>(x.size()));
}

std::vector<float> test_data(int kind, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x(n);
  for (size_t k = 0; k < n; ++k) {
    switch (kind) {
      case 0:  // uniform
        x[k] = uni(rng);
        break;
      case 1:  // gaussian with occasional outliers
        x[k] = gauss(rng) * 0.02f * ((rng() % 97 == 0) ? 20.0f : 1.0f);
        break;
      case 2:  // all positive, offset
        x[k] = 3.0f + uni(rng);
        break;
      default:  // scale varying strongly from block to block
        x[k] = uni(rng) * std::ldexp(1.0f, static_cast<int>((k / 32) % 12) - 6);
        break;
    }
  }
  return x;
}

// Worst error allowed for element k of x, per type, from the format's step size.
double allowed_error(TensorType t, const std::vector<float>& x, size_t k) {
  const int64_t bs = tensor_type_info(t).block_size;
  const size_t b0 = k / static_cast<size_t>(bs) * static_cast<size_t>(bs);
  double amax = 0, lo = 1e30, hi = -1e30;
  for (size_t j = b0; j < b0 + static_cast<size_t>(bs); ++j) {
    amax = std::max(amax, std::fabs(static_cast<double>(x[j])));
    lo = std::min(lo, static_cast<double>(x[j]));
    hi = std::max(hi, static_cast<double>(x[j]));
  }
  const double h = std::ldexp(1.0, -11);  // fp16 relative rounding of stored scales
  const double xa = std::fabs(static_cast<double>(x[k]));
  switch (t) {
    case TensorType::F32:
      return 0;
    case TensorType::F16:  // half an ulp: relative for normals, 2^-25 absolute for subnormals
      return std::max(xa * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
    case TensorType::BF16:
      return xa * std::ldexp(1.0, -8);
    case TensorType::Q8_0:
      return amax / 127 * 0.5 + amax * 2 * h;
    case TensorType::Q4_0:  // step amax / 8; the far end of the range may clamp by one step
      return amax / 8 * (1 + 2 * h);
    case TensorType::Q5_0:
      return amax / 16 * (1 + 2 * h);
    case TensorType::Q4_1:
      return (hi - lo) / 15 * 0.5 + (hi - lo) * 2 * h + std::fabs(lo) * h;
    case TensorType::Q5_1:
      return (hi - lo) / 31 * 0.5 + (hi - lo) * 2 * h + std::fabs(lo) * h;
    case TensorType::Q8_K:
      return amax / 127 * 0.5 * (1 + 1e-5);
    case TensorType::Q6_K:  // 16-weight sub-blocks, step <= amax / 32 (one step at the clamped
                            // end), plus the int8 rounding of the sub-block scales
      return amax / 32 + amax / 127 + amax * 2 * h;
    case TensorType::Q4_K:  // 32-weight sub-blocks, 4-bit steps, 6-bit scales and mins
      return (hi - std::min(lo, 0.0)) / 15 * 1.0 + (std::max(hi, 0.0) - std::min(lo, 0.0)) / 63;
    default:
      return -1;
  }
}

TEST(QuantRoundTrip, ErrorBoundsForEveryQuantizer) {
  const TensorType types[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16,
                              TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                              TensorType::Q5_1, TensorType::Q8_0, TensorType::Q4_K,
                              TensorType::Q6_K, TensorType::Q8_K};
  // RMS error / RMS value on uniform data: about step / sqrt(12) / (range / sqrt(3)).
  // Uniform [-1, 1]: Q4_0 step 1/8 -> 0.0625, Q4_1 2/15 -> 0.067, Q5_0 1/16 -> 0.031, Q5_1 2/31 ->
  // 0.032, Q8_0 / Q8_K 1/127 -> 0.004, Q4_K ~2/15 -> 0.067, Q6_K 1/32 -> 0.016.
  const double max_rel_rms[] = {0, 3e-4, 3e-3, 0.075, 0.08, 0.04, 0.04, 0.005, 0.085, 0.02, 0.005};
  const size_t n = 256 * 8;
  for (size_t ti = 0; ti < std::size(types); ++ti) {
    const TensorType t = types[ti];
    SCOPED_TRACE(tensor_type_info(t).name);
    ASSERT_TRUE(can_quantize(t));
    for (int kind = 0; kind < 4; ++kind) {
      SCOPED_TRACE(kind);
      const std::vector<float> x = test_data(kind, n, 17 + static_cast<uint32_t>(kind));
      const std::vector<float> y = round_trip(t, x);
      double se = 0, sx = 0;
      for (size_t k = 0; k < n; ++k) {
        const double err = std::fabs(static_cast<double>(y[k]) - x[k]);
        ASSERT_LE(err, allowed_error(t, x, k) + 1e-12)
            << "element " << k << " x=" << x[k] << " y=" << y[k];
        se += err * err;
        sx += static_cast<double>(x[k]) * x[k];
      }
      if (kind == 0) {
        EXPECT_LE(std::sqrt(se / sx), max_rel_rms[ti]);
      }
    }
    // All zeros stay zeros; a constant block stays close.
    const std::vector<float> zeros(256, 0.0f);
    for (float v : round_trip(t, zeros)) ASSERT_EQ(v, 0.0f);
    const std::vector<float> flat(256, 0.7f);
    for (float v : round_trip(t, flat)) ASSERT_NEAR(v, 0.7f, 0.7 * 0.07);
  }
}

TEST(QuantRoundTrip, ExactlyRepresentableInputs) {
  // Weights that are already k * d with d a power of two come back unchanged.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>((j * 7) % 16 - 8) * 0.25f;  // -2 .. 1.75
  EXPECT_EQ(round_trip(TensorType::Q4_0, x), x);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>((j * 11) % 32) * 0.5f - 3.0f;
  EXPECT_EQ(round_trip(TensorType::Q5_1, x), x);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>((j * 37) % 255 - 127) * 0.5f;
  x[3] = 63.5f;  // amax 63.5 -> d = 0.5
  EXPECT_EQ(round_trip(TensorType::Q8_0, x), x);
  std::vector<float> xk(256);
  for (int e = 0; e < 256; ++e) xk[e] = static_cast<float>((e * 29) % 255 - 127);
  xk[7] = -127.0f;  // amax 127 -> d = 1
  EXPECT_EQ(round_trip(TensorType::Q8_K, xk), xk);
}

TEST(QuantRoundTrip, BlockContents) {
  // Q8_0 stores d = amax / 127 as fp16 and the rounded quants.
  std::vector<float> x(32, 0.0f);
  x[0] = 2.54f;
  x[1] = -1.0f;
  x[2] = 0.031f;  // 1.55 steps -> 2
  Bytes q(34);
  quantize_row_ref(TensorType::Q8_0, x.data(), q.data(), 32);
  uint16_t d;
  std::memcpy(&d, q.data(), 2);
  EXPECT_EQ(d, f32_to_fp16(2.54f / 127));
  EXPECT_EQ(static_cast<int8_t>(q[2]), 127);
  EXPECT_EQ(static_cast<int8_t>(q[3]), -50);
  EXPECT_EQ(static_cast<int8_t>(q[4]), 2);

  // Q8_K: bsums are the sums of each 16 quants.
  std::vector<float> xk = test_data(0, 256, 5);
  Bytes k(292);
  quantize_row_ref(TensorType::Q8_K, xk.data(), k.data(), 256);
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += static_cast<int8_t>(k[4 + 16 * static_cast<size_t>(g) + j]);
    int16_t bs;
    std::memcpy(&bs, k.data() + 260 + 2 * g, 2);
    EXPECT_EQ(bs, sum);
  }

  // Q4_0: the element of largest magnitude maps to quant 0 (value -8 d) exactly.
  std::vector<float> x4 = test_data(0, 32, 9);
  x4[5] = 1.5f;
  Bytes q4(18);
  quantize_row_ref(TensorType::Q4_0, x4.data(), q4.data(), 32);
  EXPECT_EQ(q4[2 + 5] & 0xF, 0);
  std::memcpy(&d, q4.data(), 2);
  EXPECT_EQ(d, f32_to_fp16(1.5f / -8));
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16 conversions

TEST(Fp16, DecodeEdgeCases) {
  EXPECT_EQ(fp16_to_f32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(fp16_to_f32(0x8000)));
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));         // smallest subnormal
  EXPECT_EQ(fp16_to_f32(0x03FF), 1023 * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(fp16_to_f32(0x0400), std::ldexp(1.0f, -14));         // smallest normal
  EXPECT_EQ(fp16_to_f32(0x8200), -std::ldexp(1.0f, -15));
  EXPECT_EQ(fp16_to_f32(0x3C01), 1.0f + std::ldexp(1.0f, -10));
  EXPECT_EQ(fp16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fp16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7E00)));
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7C01)));
  EXPECT_TRUE(std::isnan(fp16_to_f32(0xFFFF)));
}

TEST(Fp16, EncodeRoundingAndSpecials) {
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7BFF);  // below the halfway point to 65536
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7C00);  // halfway rounds to even = overflow to inf
  EXPECT_EQ(f32_to_fp16(1e6f), 0x7C00);
  EXPECT_EQ(f32_to_fp16(-1e6f), 0xFC00);
  EXPECT_EQ(f32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
  const uint16_t nan = f32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  // A NaN whose payload sits only in the low mantissa bits must not become infinity.
  EXPECT_NE(f32_to_fp16(f32_from_bits(0x7F800001u)) & 0x03FF, 0);
  // Ties to even in the normal range: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  // Subnormals: 2^-24 is the smallest; 2^-25 is halfway to zero (ties to even -> 0).
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_fp16(1.5f * std::ldexp(1.0f, -25)), 0x0001);
  EXPECT_EQ(f32_to_fp16(3 * std::ldexp(1.0f, -25)), 0x0002);  // 1.5 ulp -> even 2
  EXPECT_EQ(f32_to_fp16(5 * std::ldexp(1.0f, -25)), 0x0002);  // 2.5 ulp -> even 2
  EXPECT_EQ(f32_to_fp16(-std::ldexp(1.0f, -14)), 0x8400);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);  // rounds up
  EXPECT_EQ(f32_to_fp16(1e-10f), 0x0000);
  EXPECT_EQ(f32_to_fp16(-1e-10f), 0x8000);
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_fp16(f), h) << std::hex << h;
  }
}

TEST(Bf16, ConversionEdgeCases) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3F808000u)), 0x3F80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3F808001u)), 0x3F81);  // above the tie
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x7F7FFFFFu)), 0x7F80);  // max float rounds to inf
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x00010000u)), 0x0001);    // subnormal kept
  const uint16_t nan = f32_to_bf16(f32_from_bits(0x7F800001u));  // payload only in low bits
  EXPECT_TRUE(std::isnan(bf16_to_f32(nan)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
  }
}

}  // namespace
}  // namespace lc
