// Every GGUF metadata key and tensor name the model layer reads, in one place.
#pragma once

#include <string>

namespace lc::names {

// Metadata keys. Architecture-specific keys are prefixed with the architecture: key(arch, kFoo).
inline constexpr const char* kArchitecture = "general.architecture";
inline constexpr const char* kModelName = "general.name";
inline constexpr const char* kFileType = "general.file_type";
inline constexpr const char* kContextLength = "context_length";
inline constexpr const char* kEmbeddingLength = "embedding_length";
inline constexpr const char* kBlockCount = "block_count";
inline constexpr const char* kFeedForwardLength = "feed_forward_length";
inline constexpr const char* kHeadCount = "attention.head_count";
inline constexpr const char* kHeadCountKv = "attention.head_count_kv";
inline constexpr const char* kKeyLength = "attention.key_length";
inline constexpr const char* kValueLength = "attention.value_length";
inline constexpr const char* kRmsEps = "attention.layer_norm_rms_epsilon";
inline constexpr const char* kVocabSize = "vocab_size";
inline constexpr const char* kRopeDimCount = "rope.dimension_count";

inline std::string key(const std::string& arch, const char* suffix) { return arch + "." + suffix; }

// Tensor names (per-layer names take the layer index: layer(i, kAttnQ) = "blk.<i>.attn_q.weight").
inline constexpr const char* kTokEmbd = "token_embd.weight";
inline constexpr const char* kOutputNorm = "output_norm.weight";
inline constexpr const char* kOutput = "output.weight";
inline constexpr const char* kAttnNorm = "attn_norm.weight";
inline constexpr const char* kAttnQ = "attn_q.weight";
inline constexpr const char* kAttnK = "attn_k.weight";
inline constexpr const char* kAttnV = "attn_v.weight";
inline constexpr const char* kAttnQkv = "attn_qkv.weight";
inline constexpr const char* kAttnQBias = "attn_q.bias";
inline constexpr const char* kAttnKBias = "attn_k.bias";
inline constexpr const char* kAttnVBias = "attn_v.bias";
inline constexpr const char* kAttnOut = "attn_output.weight";
inline constexpr const char* kFfnNorm = "ffn_norm.weight";
inline constexpr const char* kFfnGate = "ffn_gate.weight";
inline constexpr const char* kFfnUp = "ffn_up.weight";
inline constexpr const char* kFfnDown = "ffn_down.weight";

inline std::string layer(int i, const char* suffix) {
  return "blk." + std::to_string(i) + "." + suffix;
}

}  // namespace lc::names
