// RoPE context extension as data: every method is turned into a per-pair inverse-frequency table
// plus an attention factor. Kernels only ever see a RopeTable.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernels/rotary.h"

namespace lc {

enum class RopeMethod { None, Linear, DynamicNtk, FixedNtk, Yarn, Llama3, LongRope };

const char* rope_method_name(RopeMethod m);

// Fully resolved RoPE settings of a model. `source` records where each parameter came from
// ("gguf:llama.rope.freq_base", "config.json:rope_scaling.factor", "default", or for an override
// the origin its front end recorded, see RopeOverrides::origin).
struct RopeSettings {
  RopeMethod method = RopeMethod::None;
  RopeLayout layout = RopeLayout::Adjacent;
  int dim = 0;            // rotary dimension (<= head_dim; partial rotary when smaller)
  int head_dim = 0;       // the model's head dimension (0 = unknown; used for validation)
  double base = 10000.0;  // theta
  double factor = 1.0;    // s (linear, dynamic, yarn, llama3; alpha for fixed NTK)
  int64_t orig_ctx = 0;   // L0: trained context (0 = unknown)
  int64_t max_pos = 0;    // max_position_embeddings (LongRoPE's s = max_pos / L0)
  // YaRN
  double beta_fast = 32.0, beta_slow = 1.0;
  // Share of the original frequency kept in YaRN's ramp (llama.cpp's yarn_ext_factor): 1 = YaRN,
  // 0 = plain linear interpolation.
  double ext_factor = 1.0;
  std::optional<double> attn_factor;  // explicit attention factor (YaRN, LongRoPE); else derived
  std::optional<double> mscale, mscale_all_dim;
  // llama.cpp's yarn_attn_factor: multiplies the attention factor (explicit or derived).
  double attn_mult = 1.0;
  // GGUF yarn_log_multiplier (DeepSeek-style softmax scaling, 0.1 * mscale_all_dim). Reported
  // only: it scales attention logits in the architecture, not the RoPE table.
  std::optional<double> yarn_log_mul;
  std::optional<bool> finetuned;  // GGUF rope.scaling.finetuned (informational)
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  // LongRoPE lists (dim/2 each) and llama3-style divisors from a `rope_freqs` tensor (dim/2).
  std::vector<float> long_factors, short_factors, freq_divisors;
  // LongRoPE: positions below n_hat keep the original frequencies and attention factor 1 (with
  // either list).
  int64_t n_hat = 0;
  // LongRoPE: the attention factor used with the short list (at or below orig_ctx); unset = the
  // one attention factor at every length (Hugging Face, llama.cpp).
  std::optional<double> short_attn_factor;
  std::map<std::string, std::string> source;
  // Set when a config.json was applied: its path, and whether it said "rope_scaling": null
  // explicitly (as opposed to leaving the key out).
  std::string hf_config;
  bool hf_rope_scaling_null = false;
};

// The table in effect for a sequence of seq_len tokens (dynamic NTK and LongRoPE depend on it).
RopeTable rope_table(const RopeSettings& s, int64_t seq_len);
// The attention factor m of the settings (explicit attn_factor, else derived from the method).
double rope_attn_factor(const RopeSettings& s);
// The attention factor the table for seq_len applies: LongRoPE's short_attn_factor (times
// attn_mult) at or below orig_ctx when set, else rope_attn_factor().
double rope_attn_factor_for(const RopeSettings& s, int64_t seq_len);
// True when rope_table() can differ between sequence lengths.
bool rope_depends_on_length(const RopeSettings& s);

}  // namespace lc
