// internlm2: InternLM2 / InternLM2.5. GGUF conversion splits the fused wqkv into attn_q/k/v, so
// the layer reads like llama (adjacent rotary pairs); a still-fused attn_qkv is accepted too.
// Its long-context setting is dynamic NTK ("rope_scaling": {"type": "dynamic", "factor": 2.0} in
// config.json), which the GGUF format cannot express: set rope.hf_config or rope.scaling dynamic.
#include "model/arch/arch.h"

namespace lc {

const ArchSpec& arch_internlm2() {
  static const ArchSpec spec{"internlm2", "InternLM2, InternLM2.5", RopeLayout::Adjacent,
                             load_llama_layer};
  return spec;
}

}  // namespace lc
