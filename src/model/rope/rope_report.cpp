// Human-readable RoPE diagnostics: a one-line summary, a per-parameter description with sources,
// and the warning for a context longer than the trained one.
#include <cmath>

#include "model/rope/rope_config.h"
#include "model/rope/rope_util.h"

namespace lc {

using rope_detail::num;

namespace {

std::string src_plain(const RopeSettings& s, const std::string& key) {
  auto it = s.source.find(key);
  std::string v = it == s.source.end() ? "default" : it->second;
  if (v.rfind("config.json:", 0) == 0 && !s.hf_config.empty()) v += " in " + s.hf_config;
  return v;
}

std::string src(const RopeSettings& s, const std::string& key) {
  return " (" + src_plain(s, key) + ")";
}

bool has_factor(RopeMethod m) {
  return m == RopeMethod::Linear || m == RopeMethod::Yarn || m == RopeMethod::Llama3 ||
         m == RopeMethod::DynamicNtk;
}

std::string attn_line(const RopeSettings& s) {
  const double m = rope_attn_factor(s);
  std::string how;
  if (s.attn_factor) {
    how = src(s, "attn_factor");
  } else if (s.method == RopeMethod::Yarn) {
    if (s.ext_factor == 0.0)
      how = " (ext_factor 0: none)";
    else if (s.mscale && s.mscale_all_dim && *s.mscale != 0.0 && *s.mscale_all_dim != 0.0)
      how = " (derived: (0.1*" + num(*s.mscale) + "*ln s + 1) / (0.1*" + num(*s.mscale_all_dim) +
            "*ln s + 1))";
    else
      how = " (derived: 0.1*ln s + 1)";
  } else if (s.method == RopeMethod::LongRope) {
    how = " (derived: sqrt(1 + ln(max_pos/L0) / ln L0))";
  } else {
    how = " (default)";
  }
  std::string line = "attention factor (multiplies cos and sin): " + num(m) + how;
  if (s.attn_mult != 1.0)
    line += ", including x" + num(s.attn_mult) + " yarn_attn_factor" + src(s, "attn_mult");
  return line;
}

}  // namespace

std::string rope_summary(const RopeSettings& s) {
  std::string out = rope_method_name(s.method);
  if (has_factor(s.method)) out += " x" + num(s.factor);
  if (s.method == RopeMethod::FixedNtk) out += " alpha " + num(s.factor);
  if (s.method != RopeMethod::None && s.orig_ctx > 0)
    out += ", original context " + std::to_string(s.orig_ctx);
  if (s.method == RopeMethod::LongRope && s.max_pos > 0)
    out += ", max positions " + std::to_string(s.max_pos);
  if (!s.freq_divisors.empty()) out += ", rope_freqs divisors";
  const double m = rope_attn_factor(s);
  if (m != 1.0) out += ", attention factor " + num(m);
  if (s.method == RopeMethod::LongRope && s.short_attn_factor)
    out += " (" + num(*s.short_attn_factor * s.attn_mult) + " with the short list)";
  if (s.method == RopeMethod::LongRope && s.n_hat > 0)
    out += ", first " + std::to_string(s.n_hat) + " positions unscaled";
  return out;
}

std::vector<std::string> rope_describe(const RopeSettings& s) {
  std::vector<std::string> out;
  out.push_back(rope_summary(s));
  out.push_back(std::string("method: ") + rope_method_name(s.method) + src(s, "method"));
  if (s.hf_rope_scaling_null)
    out.push_back("config.json: rope_scaling is null in " + s.hf_config + " (no scaling)");
  out.push_back("rotary dim: " + std::to_string(s.dim) +
                (s.head_dim > 0 ? " of head dim " + std::to_string(s.head_dim) : "") +
                src(s, "dim"));
  out.push_back(std::string("layout: ") + (s.layout == RopeLayout::Adjacent
                                               ? "adjacent pairs (x[2i], x[2i+1])"
                                               : "split halves (x[i], x[i+d/2], NEOX)"));
  out.push_back("freq_base: " + num(s.base) + src(s, "base"));
  if (has_factor(s.method)) out.push_back("factor: " + num(s.factor) + src(s, "factor"));
  if (s.method == RopeMethod::FixedNtk) out.push_back("alpha: " + num(s.factor) + src(s, "factor"));
  if (s.orig_ctx > 0)
    out.push_back("original context: " + std::to_string(s.orig_ctx) + src(s, "orig_ctx"));
  if (s.max_pos > 0)
    out.push_back("max positions: " + std::to_string(s.max_pos) + src(s, "max_pos"));
  switch (s.method) {
    case RopeMethod::Yarn:
      out.push_back("beta_fast: " + num(s.beta_fast) + src(s, "beta_fast"));
      out.push_back("beta_slow: " + num(s.beta_slow) + src(s, "beta_slow"));
      if (s.ext_factor != 1.0)
        out.push_back("ext_factor: " + num(s.ext_factor) + src(s, "ext_factor"));
      if (s.mscale) out.push_back("mscale: " + num(*s.mscale) + src(s, "mscale"));
      if (s.mscale_all_dim)
        out.push_back("mscale_all_dim: " + num(*s.mscale_all_dim) + src(s, "mscale_all_dim"));
      break;
    case RopeMethod::Llama3:
      out.push_back("low_freq_factor: " + num(s.low_freq_factor) + src(s, "low_freq_factor"));
      out.push_back("high_freq_factor: " + num(s.high_freq_factor) + src(s, "high_freq_factor"));
      break;
    case RopeMethod::DynamicNtk:
      out.push_back("dynamic NTK: base grows with the sequence length beyond the original context");
      break;
    case RopeMethod::LongRope:
      out.push_back("long_factor: " + std::to_string(s.long_factors.size()) + " entries" +
                    src(s, "long_factors") +
                    ", used when the sequence exceeds the original context");
      out.push_back("short_factor: " + std::to_string(s.short_factors.size()) + " entries" +
                    src(s, "short_factors"));
      if (s.short_attn_factor)
        out.push_back("attention factor with the short list: " + num(*s.short_attn_factor) +
                      src(s, "short_attn_factor"));
      if (s.n_hat > 0)
        out.push_back("n_hat: " + std::to_string(s.n_hat) + src(s, "n_hat") +
                      " (positions below it keep the original frequencies, attention factor 1)");
      break;
    default:
      break;
  }
  if (!s.freq_divisors.empty())
    out.push_back("rope_freqs: " + std::to_string(s.freq_divisors.size()) + " divisors" +
                  src(s, "freq_divisors"));
  else if (s.source.count("freq_divisors") && s.source.at("freq_divisors").rfind("dropped", 0) == 0)
    out.push_back("rope_freqs: " + s.source.at("freq_divisors"));
  out.push_back(attn_line(s));
  if (s.yarn_log_mul)
    out.push_back("yarn_log_multiplier: " + num(*s.yarn_log_mul) + src(s, "yarn_log_mul") +
                  " (scales attention logits in the architecture, not the RoPE table)");
  if (s.finetuned)
    out.push_back(std::string("finetuned with this scaling: ") + (*s.finetuned ? "yes" : "no") +
                  src(s, "finetuned"));
  return out;
}

std::string default_setting_names(
    const std::vector<std::pair<std::string, std::string>>& settings) {
  std::string out;
  for (const auto& [k, v] : settings)
    out += (out.empty() ? "" : ", ") + k + (v.empty() ? "" : " = " + v);
  return out;
}

std::optional<std::string> rope_context_warning(const RopeSettings& s, int64_t trained_ctx,
                                                int64_t requested_ctx,
                                                const SettingNamer& name_settings) {
  if (trained_ctx <= 0 || requested_ctx <= trained_ctx || s.method != RopeMethod::None)
    return std::nullopt;
  const int64_t f = std::max<int64_t>(2, (requested_ctx + trained_ctx - 1) / trained_ctx);
  const std::string fs = std::to_string(f);
  const std::string flags = name_settings({{"rope.scaling", "yarn"},
                                           {"rope.scale", fs},
                                           {"rope.orig_ctx", std::to_string(trained_ctx)}});
  const std::string config = name_settings({{"rope.hf_config", ""}});
  const std::string entry = "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": " + fs + ".0}";
  const std::string head = "requested context " + std::to_string(requested_ctx) +
                           " is longer than the trained context " + std::to_string(trained_ctx);
  if (s.hf_rope_scaling_null)
    return head + ", and rope_scaling is null in config.json (" + s.hf_config +
           "), so RoPE is not scaled and positions past " + std::to_string(trained_ctx) +
           " are extrapolated (output degrades). Fix: set " + entry + " in config.json, or pass " +
           flags;
  return head + " and no RoPE scaling is set (method none, from " + src_plain(s, "method") +
         "); positions past " + std::to_string(trained_ctx) +
         " are extrapolated (output degrades). Fix: pass " + flags + ", or put " + entry +
         " in config.json (" + config + ")";
}

}  // namespace lc
