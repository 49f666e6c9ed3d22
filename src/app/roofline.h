// Roofline figures for `longctx bench`: this machine's limits (DRAM read bandwidth, the fp32 matmul
// peak of our own kernel) and what a model's forward passes cost against them (weight bytes read
// per decoded token, floating-point operations of a prefill).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "engine/memory_config.h"
#include "model/model.h"

namespace lc::app {

struct MachineLimits {
  double dram_gb_s = 0;       // median parallel read bandwidth, 1e9 bytes/s
  double matmul_gflop_s = 0;  // median fp32 matmul() throughput, 1e9 flop/s
  // The same for the weight type of a model's layer matrices (quantized types use other kernels,
  // which may beat fp32); 0 when not measured.
  TensorType model_type = TensorType::F32;
  double model_type_gflop_s = 0;
  int threads = 0;
  size_t dram_bytes = 0;  // size of the buffer read
  int64_t mm_n_in = 0, mm_n_out = 0, mm_n_tok = 0;
};

// Reads a `bytes` buffer with every thread of the pool, `repeats` times (after one warm-up pass);
// returns the median bandwidth in GB/s.
double measure_dram_read_gb_s(size_t bytes, int repeats);
// matmul() of a random matrix of `type` (n_out rows of n_in) with n_tok tokens, `repeats` times
// after one warm-up; returns the median GFLOP/s (2 * n_in * n_out * n_tok per call).
double measure_matmul_gflop_s(int64_t n_in, int64_t n_out, int64_t n_tok, int repeats,
                              TensorType type = TensorType::F32);
// Both, with the standard sizes (a 4096 x 4096 matrix, 64 tokens), the matmul for F32 and, unless
// it is F32, for `model_type`; `log` gets progress lines.
MachineLimits measure_limits(size_t dram_bytes, int repeats, TensorType model_type,
                             const std::function<void(const std::string&)>& log = {});
// The type holding most of the model's layer matrix elements.
TensorType main_weight_type(const Model& m);

// Bytes of weight tensors one decoded token reads: every layer tensor, the output norm and the
// output matrix; token_embd only for its one row unless it doubles as the output matrix.
uint64_t decode_weight_bytes(const Model& m);
// Weights multiplied per token inside the layers (the matrix elements of all layers).
int64_t layer_matmul_params(const Model& m);
// The most keys one query attends to under the memory policy (0 = every earlier token).
int64_t attention_key_cap(const MemoryConfig& c);
// Floating-point operations of a prefill of n tokens after n_past, evaluated in chunks of `batch`
// (logits only for each chunk's last token): 2 * layer params * n, the output head per chunk, and
// attention (QK^T and AV: 4 * n_head * head_dim per attended key per layer, causal, capped).
double prefill_flops(const Model& m, int64_t n, int64_t batch, int64_t key_cap);

}  // namespace lc::app
