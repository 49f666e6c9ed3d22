// Tiny random-weight models of each supported architecture, written with the project's own GGUF
// writer (tokenizer metadata copied from stories260K.gguf).
#pragma once

#include <string>

#include "core/tensor_type.h"

namespace lc::test {

struct TinyModelSpec {
  std::string arch = "llama";  // llama, qwen2, phi3, internlm2
  int n_layer = 2;
  int n_embd = 64;
  int n_head = 4;
  int n_head_kv = 2;
  int n_ff = 96;
  int64_t n_ctx = 256;
  TensorType type = TensorType::F32;  // type of the weight matrices
  bool tied_output = false;
  bool fused = false;  // phi3/internlm2: fused attn_qkv (phi3 also fused gate/up)
  unsigned seed = 1;
};

// Writes the model to `path`.
void write_tiny_model(const TinyModelSpec& spec, const std::string& path);

}  // namespace lc::test
