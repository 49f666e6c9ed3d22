// A loaded model: hyper-parameters, weights (pointing into the mapped GGUF or safetensors files),
// tokenizer and default RoPE settings. Immutable after load; forward() takes the caller's memory
// and workspace, so one Model serves many sessions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "kernels/matmul.h"
#include "memory/kv_memory.h"
#include "model/rope/rope.h"
#include "model/tokenizer/tokenizer.h"

namespace lc {

struct HParams {
  std::string arch;
  std::string name;
  int n_layer = 0;
  int n_embd = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_vocab = 0;
  float norm_eps = 1e-5f;
  int64_t n_ctx_train = 0;  // {arch}.context_length as the file states it
};

// A vector weight (norm scale or bias), converted to f32 at load.
using VecWeight = std::vector<float>;

struct LayerWeights {
  VecWeight attn_norm, ffn_norm;
  WeightMatrix wq, wk, wv;  // separate projections, or
  WeightMatrix wqkv;        // fused [q; k; v] (phi3)
  VecWeight bq, bk, bv;     // optional biases (qwen2)
  WeightMatrix wo;
  WeightMatrix w_gate, w_up;  // separate, or
  WeightMatrix w_gate_up;     // fused [gate; up] (phi3)
  WeightMatrix w_down;
};

struct ModelWeights {
  WeightMatrix tok_embd;
  VecWeight output_norm;
  WeightMatrix output;  // tok_embd when tied
  bool tied_output = false;
  std::vector<LayerWeights> layers;
};

// Scratch buffers of one forward step, owned by the caller and reused across steps: the step's
// activations and the kernels' scratch (also handed to the KV memory through MemoryStep).
struct Workspace {
  std::vector<float> x, h, q, k, v, att, ffn_a, ffn_b, qkv;
  KernelScratch kernels;
  // Bytes held by the buffers (they only grow).
  size_t bytes() const;
};

class Model {
 public:
  // Loads and validates a GGUF model, or a Hugging Face model folder when `path` is a directory
  // (model/hf/hf_folder.h). Tokenizer-only files (no tensors) load with has_weights() == false,
  // enough for `info` and `tokenize`.
  static std::shared_ptr<const Model> load(const std::string& path);

  const HParams& hparams() const { return hp_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  // The weights' container: the GGUF file, or a Hugging Face folder in GGUF names.
  const GgufFile& gguf() const { return *file_; }
  // The folder's config.json when the model is a Hugging Face folder, else "". Sessions apply
  // it as the RoPE configuration (rope.hf_config) unless another one is set.
  const std::string& hf_config() const { return hf_config_; }
  // Tensor bytes transformed or copied at load (the rest is mapped from the files).
  uint64_t copied_bytes() const { return copied_bytes_; }
  const ModelWeights& weights() const { return w_; }
  bool has_weights() const { return has_weights_; }
  // RoPE settings from the file (method, base, factors...); sessions may override them.
  const RopeSettings& rope() const { return rope_; }
  MemoryDims memory_dims() const;

  // Runs n tokens (absolute positions step.pos0 ..) through every layer, storing their keys and
  // values in `mem` (whose kernels use ws.kernels unless step.scratch names another). Writes logits
  // for every token (all_logits, [n, n_vocab]) or only the last one ([n_vocab]).
  void forward(KvMemory& mem, const MemoryStep& step, const int32_t* tokens, Workspace& ws,
               float* logits, bool all_logits) const;

 private:
  Model() = default;

  std::shared_ptr<GgufFile> file_;
  std::string hf_config_;
  uint64_t copied_bytes_ = 0;
  HParams hp_;
  ModelWeights w_;
  bool has_weights_ = false;
  RopeSettings rope_;
  std::unique_ptr<Tokenizer> tok_;
};

}  // namespace lc
