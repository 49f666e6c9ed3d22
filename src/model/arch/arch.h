// Architecture registry: each supported family describes how its GGUF file maps onto the shared
// decoder (tensor names, fused projections, biases, rotary layout). One file per architecture.
#pragma once

#include <string>
#include <vector>

#include "kernels/rotary.h"
#include "model/model.h"

namespace lc {

class TensorLoader;

struct ArchSpec {
  const char* name;         // general.architecture value
  const char* description;  // families it covers
  RopeLayout rope_layout;
  // Maps the layer's tensors into `lw` (the loader validates shapes and names missing tensors).
  void (*load_layer)(const TensorLoader& ld, const HParams& hp, int il, LayerWeights& lw);
};

const ArchSpec* find_arch(const std::string& name);  // nullptr if unsupported
std::vector<std::string> supported_archs();

// The llama layer layout (separate q/k/v with optional biases, SwiGLU); other families reuse it.
void load_llama_layer(const TensorLoader& ld, const HParams& hp, int il, LayerWeights& lw);

const ArchSpec& arch_llama();
const ArchSpec& arch_qwen2();
const ArchSpec& arch_phi3();
const ArchSpec& arch_internlm2();

}  // namespace lc
