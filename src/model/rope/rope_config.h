// Where RoPE settings come from: GGUF metadata and tensors, a Hugging Face config.json, and
// overrides (the rope.* settings a front end fills). Precedence: overrides > config.json > GGUF >
// defaults; every parameter keeps its source in RopeSettings::source.
//
// Source strings: "default", "gguf:llama.rope.freq_base", "gguf:tensor rope_freqs.weight",
// "config.json:rope_scaling.factor", and for overrides the origin the front end recorded
// (RopeOverrides::origin, e.g. a command-line flag), else "setting:rope.scale".
// Keys of RopeSettings::source: method, layout, dim, head_dim, base, factor, orig_ctx, max_pos,
// beta_fast, beta_slow, ext_factor, attn_factor, attn_mult, mscale, mscale_all_dim,
// low_freq_factor, high_freq_factor, long_factors, short_factors, freq_divisors, yarn_log_mul,
// finetuned, n_hat, short_attn_factor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/rope/rope.h"

namespace lc {

class GgufFile;

// "none", "linear", "yarn", "dynamic", "ntk", "llama3", "longrope"; also HF's "default" (none)
// and legacy "su" (longrope). nullopt for anything else.
std::optional<RopeMethod> rope_method_from_name(std::string_view name);
// The names accepted on the command line, for messages: "none, linear, yarn, ...".
const char* rope_method_choices();

// Defaults: no scaling, base 10000, dim = head_dim; every source "default".
RopeSettings rope_defaults(int head_dim, RopeLayout layout);

// From GGUF metadata (llama.cpp key names, `arch` is general.architecture) and the tensors
// rope_freqs / rope_factors_long / rope_factors_short; LongRoPE's n_hat and short-list attention
// factor, which llama.cpp has no key for, from longctx.rope.scaling.n_hat and
// longctx.rope.scaling.short_attn_factor. orig_ctx falls back to
// {arch}.context_length (as llama.cpp does); max_pos is {arch}.context_length.
// lc::Error on unknown scaling types, bad values and factor tensors of the wrong length or type.
RopeSettings rope_from_gguf(const GgufFile& f, const std::string& arch, int head_dim,
                            RopeLayout layout);

// Applies a Hugging Face config.json on top of `s` (its values win). Reads rope_theta,
// max_position_embeddings, original_max_position_embeddings, partial_rotary_factor, head_dim /
// hidden_size / num_attention_heads and rope_scaling (legacy `type` or `rope_type`; null is
// recorded in s.hf_rope_scaling_null). `name` is used in messages and s.hf_config.
void rope_apply_hf_config_text(RopeSettings& s, const std::string& json_text,
                               const std::string& name);
void rope_apply_hf_config(RopeSettings& s, const std::string& path);  // reads the file

// LongRoPE factor lists from a JSON file: {"long_factor": [...], "short_factor": [...]}
// ("long" / "short" accepted too). Either list may be absent (empty vector).
// A file written by the factor search (FACTORS.json) also carries "attention_factor",
// "short_attention_factor", "original_max_position_embeddings", "target_length" and "n_hat".
struct RopeFactorLists {
  std::vector<float> long_factors, short_factors;
  std::optional<double> attn_factor, short_attn_factor;
  std::optional<int64_t> orig_ctx, max_pos, n_hat;
};
RopeFactorLists rope_read_factors_file(const std::string& path);
RopeFactorLists rope_parse_factors_json(const std::string& json_text, const std::string& name);

// Overrides of the model's RoPE settings, each a setting of its own (names in the comments).
struct RopeOverrides {
  std::optional<std::string> scaling;       // rope.scaling: none, linear, yarn, dynamic, ntk, ...
  std::optional<double> scale;              // rope.scale: context scale factor S
  std::optional<double> freq_base;          // rope.freq_base: theta
  std::optional<double> freq_scale;         // rope.freq_scale: 1 / S
  std::optional<int64_t> yarn_orig_ctx;     // rope.orig_ctx: original context (0 = the model's)
  std::optional<double> yarn_ext_factor;    // rope.ext_factor: YaRN extrapolation mix (-1 auto)
  std::optional<double> yarn_attn_factor;   // rope.attn_factor: multiplies the attention factor
  std::optional<double> yarn_beta_fast;     // rope.beta_fast
  std::optional<double> yarn_beta_slow;     // rope.beta_slow
  std::optional<std::string> factors_file;  // rope.factors: LongRoPE lists, a JSON file
  // Where a front end got each setting (e.g. "rope.scale" -> the command-line flag that set it);
  // recorded as the parameter's source. Settings without an entry are recorded as
  // "setting:rope.scale".
  std::map<std::string, std::string> origin;

  bool empty() const;
  std::string origin_of(const std::string& setting) const;
};

// Applies overrides on top of `s`; lc::Error naming the setting for a value out of range.
void rope_apply_overrides(RopeSettings& s, const RopeOverrides& o);

// lc::Error naming the parameter, its value, its source and what is expected, for: bad rotary
// dim, base <= 0, factor <= 0, a scaling method left with no factor, a method that needs the
// original context length without one (yarn, dynamic, llama3, longrope), beta_fast <= beta_slow,
// bad llama3 frequency factors, LongRoPE lists missing or of the wrong length, rope_freqs of the
// wrong length, rope_freqs together with llama3, attention factors <= 0.
void rope_validate(const RopeSettings& s);

// GGUF (when given), then config.json (when hf_config_path is not empty), then overrides;
// validated.
RopeSettings rope_resolve(const GgufFile* gguf, const std::string& arch, int head_dim,
                          RopeLayout layout, const std::string& hf_config_path,
                          const RopeOverrides& overrides);

// Diagnostics (rope_report.cpp).
// One line: "linear x4, original context 16384", "none", "yarn x4, original context 512, ...".
std::string rope_summary(const RopeSettings& s);
// The summary first, then each parameter that matters for the method with its source.
std::vector<std::string> rope_describe(const RopeSettings& s);
// A warning when requested_ctx > trained_ctx and nothing extends the context, naming the fix
// (the exact settings, or the config.json entry); nullopt when there is nothing to say.
// `name_settings` turns the fix's settings into a front end's words (default: "rope.scaling =
// yarn, rope.scale = 4, rope.orig_ctx = 512"); `config_setting` names how a config.json is given.
using SettingNamer =
    std::function<std::string(const std::vector<std::pair<std::string, std::string>>& settings)>;
std::string default_setting_names(const std::vector<std::pair<std::string, std::string>>& settings);
std::optional<std::string> rope_context_warning(
    const RopeSettings& s, int64_t trained_ctx, int64_t requested_ctx,
    const SettingNamer& name_settings = default_setting_names);

}  // namespace lc
