// The Scalar kernel table: portable C++ for the x86-64 baseline (and any other CPU). These are also
// the numbers the vector tables are tested against.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/fp16.h"
#include "kernels/dispatch.h"

namespace lc {

namespace {

float dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void dot_columns(const float* const* rows, const float* q, int64_t d, int64_t n, float* out) {
  for (int64_t c = 0; c < n; ++c) out[c] = 0.0f;
  for (int64_t e = 0; e < d; ++e) axpy(q[e], rows[e], out, n);
}

void dot_rows(const float* a, int64_t n, int64_t d, int64_t stride, const float* q, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = dot(a + i * stride, q, d);
}

void max_slice_dots(const float* a, int64_t n, int64_t d, int64_t slices, const float* q,
                    const float* off, float* out) {
  const int64_t w = d / slices;
  for (int64_t i = 0; i < n; ++i) {
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t h = 0; h < slices; ++h)
      best = std::max(best, dot(a + i * d + h * w, q + h * w, w) - (off ? off[h] : 0.0f));
    out[i] = best;
  }
}

void dot_columns_f16(const uint16_t* const* rows, const float* q, int64_t d, int64_t n,
                     float* out) {
  for (int64_t c = 0; c < n; ++c) out[c] = 0.0f;
  for (int64_t e = 0; e < d; ++e)
    for (int64_t c = 0; c < n; ++c) out[c] += q[e] * fp16_to_f32(rows[e][c]);
}

void dot_tiles_u8s8(const uint8_t* a, const int8_t* q, int64_t k4, int64_t tile_k4, int64_t n_tiles,
                    int32_t* out) {
  for (int64_t t = 0; t < n_tiles; ++t, a += tile_k4 * 256, out += 64)
    for (int64_t c = 0; c < 64; ++c) {
      int32_t s = 0;
      for (int64_t g = 0; g < k4; ++g)
        for (int64_t j = 0; j < 4; ++j) s += a[g * 256 + c * 4 + j] * q[g * 4 + j];
      out[c] = s;
    }
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void f16_to_f32(const uint16_t* h, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(h[i]);
}

void f32_to_f16(const float* x, uint16_t* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(x[i]);
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void silu_mul(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] / (1.0f + std::exp(-a[i])) * b[i];
}

void softmax_inplace(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

MatmulInput matmul_input(TensorType t, int64_t) {
  return t == TensorType::F32 ? MatmulInput::F32 : MatmulInput::Fallback;
}

// F32 weights only: one dot product per (row, token), rows outer so each row is read once.
void matmul_rows(const WeightMatrix& w, const float* x, const ActQ8*, const ActBf16*, int64_t n_tok,
                 int64_t r0, int64_t r1, float* y, MatmulRowScratch&) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* wr = reinterpret_cast<const float*>(w.row(r));
    for (int64_t t = 0; t < n_tok; ++t) y[t * w.n_out + r] = dot(x + t * w.n_in, wr, w.n_in);
  }
}

void attn_scores(const float* q, int64_t q_hs, int64_t n_heads, const float* k, int64_t stride,
                 int64_t n, int64_t hd, float scale, float* s, int64_t ns, float* mx) {
  for (int64_t h = 0; h < n_heads; ++h) {
    mx[h] = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      s[h * ns + j] = dot(q + h * q_hs, k + j * stride, hd) * scale;
      mx[h] = std::max(mx[h], s[h * ns + j]);
    }
  }
}

void attn_scores_kt(const float* q, int64_t q_hs, int64_t n_heads, const float* kt, int64_t ld,
                    int64_t n, int64_t hd, float scale, float* s, int64_t ns, float* mx) {
  for (int64_t h = 0; h < n_heads; ++h) {
    float* sh = s + h * ns;
    std::fill(sh, sh + n, 0.0f);
    for (int64_t e = 0; e < hd; ++e) {
      const float qe = q[h * q_hs + e];
      for (int64_t j = 0; j < n; ++j) sh[j] += qe * kt[e * ld + j];
    }
    mx[h] = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      sh[j] *= scale;
      mx[h] = std::max(mx[h], sh[j]);
    }
  }
}

double exp_shift(const float* x, float m, float* y, int64_t n) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    y[j] = std::exp(x[j] - m);
    sum += y[j];
  }
  return sum;
}

void attn_accum(const float* p, int64_t ns, int64_t n_heads, const float* v, int64_t stride,
                int64_t n, int64_t hd, float* acc, int64_t acc_hs) {
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t j = 0; j < n; ++j) axpy(p[h * ns + j], v + j * stride, acc + h * acc_hs, hd);
}

// Half-precision and Q8_0 rows: each key / value row of the tile is converted to f32 once (exact),
// then used as by the f32 tiles above.
void row_f16(const uint16_t* x, int64_t hd, float* y) {
  for (int64_t e = 0; e < hd; ++e) y[e] = fp16_to_f32(x[e]);
}

void row_q8_0(const BlockQ8_0* x, int64_t hd, float* y) {
  for (int64_t b = 0; b < hd / kQK; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int i = 0; i < kQK; ++i) y[b * kQK + i] = static_cast<float>(x[b].qs[i]) * d;
  }
}

// One converted row: on the stack (no allocation per call) unless the head is unusually large.
class RowBuffer {
 public:
  explicit RowBuffer(int64_t hd) {
    if (hd > kStack) heap_.resize(static_cast<size_t>(hd));
  }
  float* data() { return heap_.empty() ? stack_ : heap_.data(); }

 private:
  static constexpr int64_t kStack = 1024;
  float stack_[kStack];
  std::vector<float> heap_;
};

template <typename T, void (*Row)(const T*, int64_t, float*)>
void scores_conv(const float* q, int64_t q_hs, int64_t n_heads, const T* k, int64_t stride,
                 int64_t n, int64_t hd, float scale, float* s, int64_t ns, float* mx) {
  RowBuffer row(hd);
  for (int64_t h = 0; h < n_heads; ++h) mx[h] = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    Row(k + j * stride, hd, row.data());
    for (int64_t h = 0; h < n_heads; ++h) {
      s[h * ns + j] = dot(q + h * q_hs, row.data(), hd) * scale;
      mx[h] = std::max(mx[h], s[h * ns + j]);
    }
  }
}

template <typename T, void (*Row)(const T*, int64_t, float*)>
void accum_conv(const float* p, int64_t ns, int64_t n_heads, const T* v, int64_t stride, int64_t n,
                int64_t hd, float* acc, int64_t acc_hs) {
  RowBuffer row(hd);
  for (int64_t j = 0; j < n; ++j) {
    Row(v + j * stride, hd, row.data());
    for (int64_t h = 0; h < n_heads; ++h) axpy(p[h * ns + j], row.data(), acc + h * acc_hs, hd);
  }
}

const KernelTable kTable = {
    Isa::Scalar,
    quantize_act_ref,
    nullptr,
    matmul_input,
    matmul_rows,
    dot,
    axpy,
    dot_columns,
    dot_rows,
    max_slice_dots,
    dot_columns_f16,
    dot_tiles_u8s8,
    add_inplace,
    f16_to_f32,
    f32_to_f16,
    rmsnorm,
    silu_mul,
    softmax_inplace,
    attn_scores,
    attn_scores_kt,
    exp_shift,
    attn_accum,
    scores_conv<uint16_t, row_f16>,
    accum_conv<uint16_t, row_f16>,
    scores_conv<BlockQ8_0, row_q8_0>,
    accum_conv<BlockQ8_0, row_q8_0>,
};

}  // namespace

const KernelTable& scalar_kernel_table() { return kTable; }

}  // namespace lc
