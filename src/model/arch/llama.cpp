// llama: Llama 1/2/3, Mistral, SmolLM, TinyLlama, and other files converted as "llama".
// Separate q/k/v projections (optional biases), SwiGLU FFN, adjacent rotary pairs.
#include "model/arch/arch.h"
#include "model/arch/tensor_loader.h"
#include "model/names.h"

namespace lc {

void load_llama_layer(const TensorLoader& ld, const HParams& hp, int il, LayerWeights& lw) {
  using namespace names;
  const int64_t d = hp.n_embd, dq = int64_t{hp.n_head} * hp.head_dim,
                dkv = int64_t{hp.n_head_kv} * hp.head_dim;
  lw.attn_norm = ld.vec(layer(il, kAttnNorm), d);
  if (ld.has(layer(il, kAttnQkv))) {  // fused [q; k; v] (phi3, unsplit internlm2)
    lw.wqkv = ld.matrix(layer(il, kAttnQkv), d, dq + 2 * dkv);
  } else {
    lw.wq = ld.matrix(layer(il, kAttnQ), d, dq);
    lw.wk = ld.matrix(layer(il, kAttnK), d, dkv);
    lw.wv = ld.matrix(layer(il, kAttnV), d, dkv);
    lw.bq = ld.vec_if(layer(il, kAttnQBias), dq);
    lw.bk = ld.vec_if(layer(il, kAttnKBias), dkv);
    lw.bv = ld.vec_if(layer(il, kAttnVBias), dkv);
  }
  lw.wo = ld.matrix(layer(il, kAttnOut), dq, d);
  lw.ffn_norm = ld.vec(layer(il, kFfnNorm), d);
  if (ld.has(layer(il, kFfnGate))) {
    lw.w_gate = ld.matrix(layer(il, kFfnGate), d, hp.n_ff);
    lw.w_up = ld.matrix(layer(il, kFfnUp), d, hp.n_ff);
  } else {  // fused [gate; up] (phi3)
    lw.w_gate_up = ld.matrix(layer(il, kFfnUp), d, 2 * int64_t{hp.n_ff});
  }
  lw.w_down = ld.matrix(layer(il, kFfnDown), hp.n_ff, d);
}

const ArchSpec& arch_llama() {
  static const ArchSpec spec{"llama", "Llama 1/2/3, Mistral, SmolLM, TinyLlama",
                             RopeLayout::Adjacent, load_llama_layer};
  return spec;
}

}  // namespace lc
