// qwen2: Qwen1.5 / Qwen2 / Qwen2.5. Like llama with biases on q, k and v (required), and rotary
// pairs split in halves (NeoX layout).
#include "core/error.h"
#include "model/arch/arch.h"
#include "model/arch/tensor_loader.h"

namespace lc {

namespace {

// The llama layout, with the q/k/v biases required.
void load_layer(const TensorLoader& ld, const HParams& hp, int il, LayerWeights& lw) {
  load_llama_layer(ld, hp, il, lw);
  if (lw.bq.empty() || lw.bk.empty() || lw.bv.empty())
    fail(ld.path(), ": qwen2 layer ", il, " lacks its attn_q/attn_k/attn_v bias tensors");
}

}  // namespace

const ArchSpec& arch_qwen2() {
  static const ArchSpec spec{"qwen2", "Qwen1.5, Qwen2, Qwen2.5", RopeLayout::SplitHalf, load_layer};
  return spec;
}

}  // namespace lc
