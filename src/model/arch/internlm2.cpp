// internlm2: InternLM2 / InternLM2.5. GGUF conversion splits the fused wqkv into attn_q/k/v, so
// the layer reads like llama (adjacent rotary pairs); a still-fused attn_qkv is accepted too.
// Its long-context setting is dynamic NTK ("rope_scaling": {"type": "dynamic", "factor": 2.0} in
// config.json), which the GGUF format cannot express: pass --hf-config or --rope-scaling dynamic.
#include "model/arch/arch.h"
#include "model/arch/tensor_loader.h"
#include "model/names.h"

namespace lc {

namespace {

void load_layer(const TensorLoader& ld, const HParams& hp, int il, LayerWeights& lw) {
  using namespace names;
  const int64_t d = hp.n_embd, dq = int64_t{hp.n_head} * hp.head_dim,
                dkv = int64_t{hp.n_head_kv} * hp.head_dim;
  lw.attn_norm = ld.vec(layer(il, kAttnNorm), d);
  if (ld.has(layer(il, kAttnQkv))) {
    lw.wqkv = ld.matrix(layer(il, kAttnQkv), d, dq + 2 * dkv);
  } else {
    lw.wq = ld.matrix(layer(il, kAttnQ), d, dq);
    lw.wk = ld.matrix(layer(il, kAttnK), d, dkv);
    lw.wv = ld.matrix(layer(il, kAttnV), d, dkv);
  }
  lw.wo = ld.matrix(layer(il, kAttnOut), dq, d);
  lw.ffn_norm = ld.vec(layer(il, kFfnNorm), d);
  lw.w_gate = ld.matrix(layer(il, kFfnGate), d, hp.n_ff);
  lw.w_up = ld.matrix(layer(il, kFfnUp), d, hp.n_ff);
  lw.w_down = ld.matrix(layer(il, kFfnDown), hp.n_ff, d);
}

}  // namespace

const ArchSpec& arch_internlm2() {
  static const ArchSpec spec{"internlm2", "InternLM2, InternLM2.5", RopeLayout::Adjacent,
                             load_layer};
  return spec;
}

}  // namespace lc
