// phi3: Phi-3 / Phi-3.5 mini. Fused q/k/v projection (attn_qkv = [q; k; v]), fused gate/up
// projection (ffn_up = [gate; up], 2*n_ff rows) — both layouts the shared llama loader reads —
// and rotary pairs split in halves (NeoX layout). LongRoPE factors come from the
// rope_factors_long/short tensors (see model/rope).
#include "model/arch/arch.h"

namespace lc {

const ArchSpec& arch_phi3() {
  static const ArchSpec spec{"phi3", "Phi-3, Phi-3.5 mini", RopeLayout::SplitHalf,
                             load_llama_layer};
  return spec;
}

}  // namespace lc
