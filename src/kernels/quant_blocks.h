// Block layouts of the GGML quantized formats, byte for byte as stored in GGUF files.
//
// Half-precision fields are raw IEEE fp16 bits (convert with lc::fp16_to_f32 from core/fp16.h).
// Simple formats group QK = 32 weights per block; the K formats group QK_K = 256 weights per
// super-block, split into sub-blocks of 16 or 32 with their own (quantized) scales.
//
// Element order inside a block (what a dequantizer must produce):
//  - Q4_0/Q4_1: element j (0..15) is the low nibble of qs[j], element j + 16 its high nibble.
//  - Q5_0/Q5_1: as Q4, with bit 4 of element j taken from bit j of the little-endian u32 qh.
//  - Q8_0/Q8_1: element j is qs[j].
//  - Q2_K: element e uses 2 bits ((qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3),
//    scale byte scales[e / 16] (low nibble scale, high nibble min): x = d * sc * q - dmin * m.
//  - Q3_K: low 2 bits as Q2_K; the high bit is hmask[e % 32] bit (e / 32); q3 = low - (hbit ? 0 :
//  4);
//    16 signed 6-bit scales (value - 32) packed in 12 bytes: x = d * (sc - 32) * q3.
//  - Q4_K: 8 sub-blocks of 32 with 6-bit scale and min (packed in 12 bytes); element e is nibble
//    (e % 64 < 32 ? low : high) of qs[32 * (e / 64) + e % 32]: x = d * sc * q - dmin * m.
//  - Q5_K: as Q4_K plus bit 4 from qh[e % 32] bit (e / 32).
//  - Q6_K: ql low/high nibbles + 2 bits from qh, minus 32; int8 scale scales[e / 16].
//  - Q8_K: float d, int8 qs; bsums[k] = sum of qs[16k .. 16k + 15].
//  - IQ4_NL: nibbles in Q4_0's order, each an index into the 16 non-uniform levels kIq4Levels:
//    x = d * level.
//  - IQ4_XS: 8 sub-blocks of 32, each in IQ4_NL's order (16 bytes of qs each) with a 6-bit scale
//    (value - 32; low 4 bits in nibble s % 2 of scales_l[s / 2], high 2 bits in bits 2s of
//    scales_h): x = d * (sc - 32) * level.
#pragma once

#include <cstdint>
#include <cstring>

namespace lc {

inline constexpr int kQK = 32;           // weights per block of the simple formats
inline constexpr int kQK_K = 256;        // weights per super-block of the K formats
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales of Q3_K / Q4_K / Q5_K

struct BlockQ4_0 {
  uint16_t d;           // scale (fp16)
  uint8_t qs[kQK / 2];  // nibbles, value = (q - 8) * d
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ4_1 {
  uint16_t d;  // scale (fp16)
  uint16_t m;  // min (fp16), value = q * d + m
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

struct BlockQ5_0 {
  uint16_t d;     // scale (fp16), value = (q - 16) * d
  uint8_t qh[4];  // bit 4 of each of the 32 quants, little-endian u32
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

struct BlockQ5_1 {
  uint16_t d;  // scale (fp16)
  uint16_t m;  // min (fp16), value = q * d + m
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

struct BlockQ8_0 {
  uint16_t d;  // scale (fp16), value = q * d
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ8_1 {
  uint16_t d;  // scale (fp16)
  uint16_t s;  // d * sum(qs) (fp16)
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // per 16 weights: low nibble scale, high nibble min
  uint8_t qs[kQK_K / 4];       // 2-bit quants
  uint16_t d;                  // super-block scale for the scales (fp16)
  uint16_t dmin;               // super-block scale for the mins (fp16)
};
static_assert(sizeof(BlockQ2_K) == 84);

struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];      // high bit of each quant
  uint8_t qs[kQK_K / 4];         // low 2 bits
  uint8_t scales[kKScaleBytes];  // 16 6-bit scales (biased by 32)
  uint16_t d;                    // super-block scale (fp16)
};
static_assert(sizeof(BlockQ3_K) == 110);

struct BlockQ4_K {
  uint16_t d;                    // super-block scale for the scales (fp16)
  uint16_t dmin;                 // super-block scale for the mins (fp16)
  uint8_t scales[kKScaleBytes];  // 8 6-bit scales and 8 6-bit mins
  uint8_t qs[kQK_K / 2];         // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];  // bit 4 of each quant
  uint8_t qs[kQK_K / 2];  // low 4 bits
};
static_assert(sizeof(BlockQ5_K) == 176);

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // low 4 bits
  uint8_t qh[kQK_K / 4];      // high 2 bits
  int8_t scales[kQK_K / 16];  // 8-bit scales, one per 16 weights
  uint16_t d;                 // super-block scale (fp16)
};
static_assert(sizeof(BlockQ6_K) == 210);

struct BlockIQ4_NL {
  uint16_t d;  // scale (fp16)
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

struct BlockIQ4_XS {
  uint16_t d;                    // super-block scale (fp16)
  uint16_t scales_h;             // high 2 bits of the 8 sub-block scales
  uint8_t scales_l[kQK_K / 64];  // low 4 bits, two per byte
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// The 16 levels of IQ4_NL / IQ4_XS (a nibble indexes them).
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// Scale s (0..7) of an IQ4_XS super-block, still biased by 32 (0..63).
inline int iq4xs_scale(int s, uint16_t scales_h, const uint8_t* scales_l) {
  return ((scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((scales_h >> (2 * s)) & 3) << 4);
}

struct BlockQ8_K {
  float d;  // scale (f32)
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sums of qs in groups of 16
};
static_assert(sizeof(BlockQ8_K) == 292);

// Unpacks scale / min j (0..7) of a Q4_K / Q5_K super-block from its 12 packed bytes:
// bytes 0-3 hold scales 0-3 (low 6 bits) and the top 2 bits of scales 4-7, bytes 4-7 the same for
// the mins, bytes 8-11 the low 4 bits of scale (low nibble) and min (high nibble) 4-7.
inline void k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The same 8 scales and 8 mins four at a time, as the bytes of 32-bit words (byte j of sc[0] is
// scale j, of sc[1] scale 4 + j; likewise m), for the kernels that widen them in registers.
struct KScaleWords {
  uint32_t sc[2], m[2];
};
inline KScaleWords k_scale_words(const uint8_t* q) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, q, 4);
  std::memcpy(&u1, q + 4, 4);
  std::memcpy(&u2, q + 8, 4);
  return {{u0 & 0x3F3F3F3Fu, (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4)},
          {u1 & 0x3F3F3F3Fu, ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4)}};
}

// Unpacks the 16 6-bit scales of a Q3_K super-block (returned still biased by 32, 0..63):
// low 4 bits of scale j are the low (j < 8) or high (j >= 8) nibble of byte j % 8, the top 2 bits
// are bits 2 * (j / 4) of byte 8 + j % 4.
inline uint8_t q3k_scale(int j, const uint8_t* q) {
  const int lo = j < 8 ? (q[j] & 0xF) : (q[j - 8] >> 4);
  const int hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
  return static_cast<uint8_t>(lo | (hi << 4));
}

}  // namespace lc
