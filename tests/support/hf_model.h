// Tiny random-weight Hugging Face model folders (config.json, safetensors written with the
// project's SafetensorsWriter, a small byte-level tokenizer.json), and a float64 reference
// forward pass computed directly from the Hugging Face tensors (rotate-half RoPE, the
// checkpoints' own q/k layout), for checking the folder loader and `convert`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lc::test {

struct HfModelSpec {
  std::string arch = "llama";  // llama, mistral, qwen2, internlm2, phi3
  int n_layer = 2;
  int n_embd = 64;
  int n_head = 4;
  int n_head_kv = 2;
  int n_ff = 96;
  int head_dim = 0;   // 0: n_embd / n_head (else written as config.json's head_dim)
  int n_vocab = 300;  // 256 byte tokens + merges + specials (the tokenizer's size)
  int64_t max_pos = 256;
  double theta = 10000.0;
  std::string dtype = "F32";  // F32, F16, BF16
  bool tied = false;
  int shards = 1;            // > 1: model-0000k-of-0000n.safetensors + index.json
  std::string rope_scaling;  // raw JSON for "rope_scaling" ("null", "{...}"); empty: absent
  unsigned seed = 1;
};

// Weights in the Hugging Face form (separate q/k/v and gate/up, rows = output features), with
// the values as stored (rounded to the dtype).
struct HfLayer {
  std::vector<float> attn_norm, q, k, v, bq, bk, bv, o, ffn_norm, gate, up, down;
};
struct HfWeights {
  std::vector<float> embed, norm, lm_head;  // lm_head empty when tied
  std::vector<HfLayer> layers;
};

// Writes the folder (created if needed) and returns the weights it holds.
HfWeights write_hf_model(const HfModelSpec& spec, const std::string& dir);

// Logits [tokens.size()][n_vocab] of a float64 forward pass over the tokens.
std::vector<std::vector<double>> hf_reference_logits(const HfModelSpec& spec, const HfWeights& w,
                                                     const std::vector<int32_t>& tokens);

// Writes a byte-level BPE tokenizer.json of spec.n_vocab tokens (256 bytes, merges, specials).
void write_tiny_tokenizer_json(const HfModelSpec& spec, const std::string& dir);

}  // namespace lc::test
