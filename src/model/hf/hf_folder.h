// Hugging Face model folders as a weight source: config.json, model.safetensors (or shards with
// model.safetensors.index.json) and tokenizer.json / tokenizer.model, presented to the model
// loader as the same container a GGUF file gives (metadata in llama.cpp's key names, tensors in
// GGUF names and layouts). Weights are memory-mapped; only tensors whose layout differs are
// transformed, once, at load: the q/k projections of llama, mistral and internlm2 (Hugging Face
// keeps each head's rotary pairs split in halves, the GGUF llama layout interleaves them, so
// their rows are permuted as llama.cpp's converter does) and InternLM2's fused wqkv (split into
// q, k and v). Tensors not aligned to their element size are copied as well.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/gguf.h"

namespace lc {

// What config.json says, in the loader's terms.
struct HfConfig {
  std::string path;     // config.json
  std::string hf_arch;  // "LlamaForCausalLM", ...
  std::string arch;     // GGUF architecture: llama, qwen2, internlm2, phi3
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
  int64_t n_vocab = 0;  // vocab_size (0 when absent)
  int64_t max_pos = 0;  // max_position_embeddings: the trained context
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t rope_dim = 0;   // head_dim x partial_rotary_factor
  bool tied = false;      // tie_word_embeddings
  bool qkv_bias = false;  // q/k/v projections have biases
  int64_t bos_id = -1, eos_id = -1;
};

// Reads and checks config.json (lc::Error naming the file and key for anything missing, of the
// wrong type, out of range or unsupported).
HfConfig read_hf_config(const std::string& path);

struct HfFolder {
  std::shared_ptr<GgufFile> container;
  HfConfig config;
  std::string tokenizer_source;  // the tokenizer file read: tokenizer.json or tokenizer.model
  uint64_t copied_bytes = 0;     // tensor bytes transformed or copied at load
};

// True when `path` is a directory (the model loader then treats it as a Hugging Face folder).
bool is_model_folder(const std::string& path);
// Opens and validates the folder: config.json against the tensors (every expected tensor present
// with the shape the config implies, no tensor left unused), dtypes F32/F16/BF16. A folder without
// weights (config.json with vocab_size, and tokenizer files) gives a container without tensors,
// as a tokenizer-only GGUF does.
HfFolder open_hf_folder(const std::string& dir);

// Tokenizer metadata (tokenizer.* keys in llama.cpp's names) from the folder's tokenizer.json,
// else tokenizer.model, with tokenizer_config.json and generation_config.json; `n_vocab` rows of
// the embedding (the token list is padded to it). Appends to `kv`; returns the file used
// (lc::Error when the folder has neither).
std::string hf_tokenizer_metadata(const std::string& dir, const HfConfig& cfg, int64_t n_vocab,
                                  std::vector<std::pair<std::string, GgufValue>>& kv);
// The same from a SentencePiece tokenizer.model (hf_spm.cpp).
void spm_tokenizer_metadata(const std::string& path, int64_t n_vocab,
                            std::vector<std::pair<std::string, GgufValue>>& kv);

}  // namespace lc
