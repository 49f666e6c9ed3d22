// phi3: Phi-3 / Phi-3.5 mini. Fused q/k/v projection (attn_qkv = [q; k; v]), fused gate/up
// projection (ffn_up = [gate; up], 2*n_ff rows), rotary pairs split in halves (NeoX layout).
// LongRoPE factors come from the rope_factors_long/short tensors (see model/rope).
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
  if (ld.has(layer(il, kFfnGate))) {
    lw.w_gate = ld.matrix(layer(il, kFfnGate), d, hp.n_ff);
    lw.w_up = ld.matrix(layer(il, kFfnUp), d, hp.n_ff);
  } else {
    lw.w_gate_up = ld.matrix(layer(il, kFfnUp), d, 2 * int64_t{hp.n_ff});
  }
  lw.w_down = ld.matrix(layer(il, kFfnDown), hp.n_ff, d);
}

}  // namespace

const ArchSpec& arch_phi3() {
  static const ArchSpec spec{"phi3", "Phi-3, Phi-3.5 mini", RopeLayout::SplitHalf, load_layer};
  return spec;
}

}  // namespace lc
