// qwen2: Qwen1.5 / Qwen2 / Qwen2.5. Like llama with biases on q, k and v (required), and rotary
// pairs split in halves (NeoX layout).
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
  lw.wq = ld.matrix(layer(il, kAttnQ), d, dq);
  lw.wk = ld.matrix(layer(il, kAttnK), d, dkv);
  lw.wv = ld.matrix(layer(il, kAttnV), d, dkv);
  lw.bq = ld.vec(layer(il, kAttnQBias), dq);
  lw.bk = ld.vec(layer(il, kAttnKBias), dkv);
  lw.bv = ld.vec(layer(il, kAttnVBias), dkv);
  lw.wo = ld.matrix(layer(il, kAttnOut), dq, d);
  lw.ffn_norm = ld.vec(layer(il, kFfnNorm), d);
  lw.w_gate = ld.matrix(layer(il, kFfnGate), d, hp.n_ff);
  lw.w_up = ld.matrix(layer(il, kFfnUp), d, hp.n_ff);
  lw.w_down = ld.matrix(layer(il, kFfnDown), hp.n_ff, d);
}

}  // namespace

const ArchSpec& arch_qwen2() {
  static const ArchSpec spec{"qwen2", "Qwen1.5, Qwen2, Qwen2.5", RopeLayout::SplitHalf, load_layer};
  return spec;
}

}  // namespace lc
