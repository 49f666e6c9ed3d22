// A LongRoPE factors file (FACTORS.json, as the factor search writes it) and the places it goes:
// the rope_scaling entry of a Hugging Face config.json, and a GGUF whose metadata and
// rope_factors_long / rope_factors_short tensors carry it in llama.cpp's form.
//
// FACTORS.json: {"rope_type": "longrope", "long_factor": [...], "short_factor": [...],
//   "attention_factor": m, "short_attention_factor": 1, "original_max_position_embeddings": L0,
//   "target_length": L', "n_hat": 0, "search": {...}}. The rope.factors setting reads the lists,
// both attention factors, n_hat and the original context from it. Without
// "short_attention_factor" the attention factor applies at every length (as in Hugging Face).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace lc::eval {

struct LongRopeFactors {
  std::vector<float> long_factors, short_factors;
  double attn_factor = 1.0;
  std::optional<double> short_attn_factor;  // with the short list; unset = attn_factor
  int64_t orig_ctx = 0;                     // L0
  int64_t target = 0;                       // L'
  int64_t n_hat = 0;
  nlohmann::json search;  // the search's record (command, seed, fitness, evaluations, minutes)
};

nlohmann::json longrope_factors_json(const LongRopeFactors& f);
// lc::Error naming `name` when a field is missing or wrong.
LongRopeFactors longrope_factors_from_json(const nlohmann::json& j, const std::string& name);
LongRopeFactors read_longrope_factors(const std::string& path);
// Writes the file (whole, or not at all); lc::Error when it cannot be written.
void write_json_file(const std::string& path, const nlohmann::json& j);

// {"rope_scaling": {"rope_type": "longrope", "long_factor", "short_factor", "factor",
//  "original_max_position_embeddings", "attention_factor", and with a short-list attention factor
//  "long_mscale" / "short_mscale" (vLLM's and MLX's names), with n_hat > 0 "n_hat" (read by
//  longctx only)}, "max_position_embeddings": L'}.
nlohmann::json longrope_hf_config(const LongRopeFactors& f);

// Copies the GGUF `in_path` to `out_path` with the factors: {arch}.rope.scaling.type = longrope,
// .rope.scaling.attn_factor, .rope.scaling.original_context_length, {arch}.context_length = the
// target, tensors rope_factors_long.weight / rope_factors_short.weight (F32, rotary dim / 2);
// what llama.cpp has no key for in longctx.rope.scaling.n_hat (when > 0) and
// longctx.rope.scaling.short_attn_factor (when set); earlier rope scaling keys and rope_freqs /
// rope factor tensors are dropped. lc::Error when a
// list's length is not the model's rotary dim / 2.
void write_longrope_gguf(const std::string& in_path, const LongRopeFactors& f,
                         const std::string& out_path);

}  // namespace lc::eval
