// Tiled attention with an online softmax: keys/values come in spans (pieces of a KV memory), each
// with its own mask, and partial results are merged by running max / log-sum-exp, so no N x N
// matrix is ever formed and several pieces share one softmax.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/kv_type.h"
#include "kernels/scratch.h"

namespace lc {

struct AttnDims {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;  // logit scale, usually 1/sqrt(head_dim)
};

// Keys and values of n tokens stored as `type` (kv_type.h); token j's head h starts at element
// j * stride + h * head_dim of k (and of v). For Q8_0, head_dim and stride are multiples of 32 (the
// blocks lie inside a head) and element e is in block e / 32 of k.
struct KvSpan {
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t n = 0;
  int64_t stride = 0;  // in elements
  KvType type = KvType::F32;
};

// Key j is visible to query i iff  j <= i + diag  and (window <= 0 or j > i + diag - window).
// With `complement`, visibility is inverted for keys inside [0, n): j <= i + diag - window.
struct AttnMask {
  int64_t diag = std::numeric_limits<int64_t>::max() / 4;  // default: every key visible
  int64_t window = 0;
  bool complement = false;
};

// Running softmax state for n_q queries x n_head heads.
struct AttnState {
  int64_t n_q = 0, n_head = 0, head_dim = 0;
  std::vector<float> m;    // running max logit
  std::vector<double> l;   // running sum of exp(logit - m)
  std::vector<float> acc;  // running weighted sum of values
  void reset(int64_t n_q_, int64_t n_head_, int64_t head_dim_);
};

// Adds one span's contribution for queries q (row i at q + i * q_stride, heads head_dim apart).
// Buffers come from `scratch` (kernels/scratch.h).
void attention_accumulate(const float* q, int64_t q_stride, const KvSpan& kv, const AttnMask& mask,
                          const AttnDims& d, AttnState& st, KernelScratch& scratch);

// out row i at out + i * out_stride; queries that saw no key get zeros.
void attention_finish(const AttnState& st, float* out, int64_t out_stride);

// Probability mass that each key of `kv` receives from each query head, given a finished state
// (second pass, used to score tokens): probs[j * n_head + h] += sum_i p(i, h, j).
void attention_key_mass(const float* q, int64_t q_stride, const KvSpan& kv, const AttnMask& mask,
                        const AttnDims& d, const AttnState& st, float* probs,
                        KernelScratch& scratch);

}  // namespace lc
