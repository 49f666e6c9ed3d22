// RoPE methods turned into inverse-frequency tables (formulas: docs/algorithms.md section 2).
#include "model/rope/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace lc {

const char* rope_method_name(RopeMethod m) {
  switch (m) {
    case RopeMethod::None:
      return "none";
    case RopeMethod::Linear:
      return "linear";
    case RopeMethod::DynamicNtk:
      return "dynamic";
    case RopeMethod::FixedNtk:
      return "ntk";
    case RopeMethod::Yarn:
      return "yarn";
    case RopeMethod::Llama3:
      return "llama3";
    case RopeMethod::LongRope:
      return "longrope";
  }
  return "unknown";
}

namespace {

constexpr double kPi = std::numbers::pi;

// theta_i = base^(-2i/d) for i = 0..d/2-1, in double.
std::vector<double> base_inv_freq(double base, int dim) {
  std::vector<double> out(static_cast<size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i) out[i] = std::pow(base, -2.0 * i / dim);
  return out;
}

// base * x^(d/(d-2)): the NTK-aware base change.
double ntk_base(double base, double x, int dim) {
  if (dim <= 2) fail("RoPE: NTK scaling needs a rotary dimension > 2, got ", dim);
  return base * std::pow(x, static_cast<double>(dim) / (dim - 2));
}

double need_orig_ctx(const RopeSettings& s) {
  if (s.orig_ctx <= 0)
    fail("RoPE: method '", rope_method_name(s.method),
         "' needs the original (trained) context length, which is unknown");
  return static_cast<double>(s.orig_ctx);
}

// YaRN's mscale helper g(s, k) = 0.1 k ln s + 1 (1 when s <= 1).
double yarn_mscale(double s, double k) { return s <= 1.0 ? 1.0 : 0.1 * k * std::log(s) + 1.0; }

void yarn_apply(const RopeSettings& s, std::vector<double>& inv) {
  const int d = s.dim;
  const double l0 = need_orig_ctx(s);
  auto corr = [&](double r) {
    return d * std::log(l0 / (2.0 * kPi * r)) / (2.0 * std::log(s.base));
  };
  double low = std::max(std::floor(corr(s.beta_fast)), 0.0);
  double high = std::min(std::ceil(corr(s.beta_slow)), static_cast<double>(d - 1));
  if (low == high) high += 0.001;
  for (size_t i = 0; i < inv.size(); ++i) {
    double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    // mix: share of the original (extrapolated) frequency; ext_factor 0 = plain interpolation.
    double mix = (1.0 - ramp) * s.ext_factor;
    inv[i] = inv[i] / s.factor * (1.0 - mix) + inv[i] * mix;
  }
}

void llama3_apply(const RopeSettings& s, std::vector<double>& inv) {
  const double l0 = need_orig_ctx(s);
  const double lf = s.low_freq_factor, hf = s.high_freq_factor;
  const double low_wl = l0 / lf, high_wl = l0 / hf;
  for (double& t : inv) {
    double wl = 2.0 * kPi / t;
    if (wl < high_wl) continue;
    if (wl > low_wl) {
      t = t / s.factor;
    } else {
      double smooth = (l0 / wl - lf) / (hf - lf);
      t = (1.0 - smooth) * t / s.factor + smooth * t;
    }
  }
}

void check_list(const std::vector<float>& v, int dim, const char* what) {
  if (v.size() != static_cast<size_t>(dim / 2))
    fail("RoPE: ", what, " has ", v.size(), " entries, expected rotary dim / 2 = ", dim / 2);
}

double derived_attn_factor(const RopeSettings& s) {
  switch (s.method) {
    case RopeMethod::Yarn:
      // As in ggml: with ext_factor 0 YaRN is plain interpolation and gets no magnitude boost.
      if (s.ext_factor == 0.0) return 1.0;
      if (s.mscale && s.mscale_all_dim && *s.mscale != 0.0 && *s.mscale_all_dim != 0.0)
        return yarn_mscale(s.factor, *s.mscale) / yarn_mscale(s.factor, *s.mscale_all_dim);
      return yarn_mscale(s.factor, 1.0);
    case RopeMethod::LongRope: {
      double sc = s.factor;
      if (s.max_pos > 0 && s.orig_ctx > 0)
        sc = static_cast<double>(s.max_pos) / static_cast<double>(s.orig_ctx);
      if (sc <= 1.0 || s.orig_ctx <= 1) return 1.0;
      return std::sqrt(1.0 + std::log(sc) / std::log(static_cast<double>(s.orig_ctx)));
    }
    default:
      return 1.0;
  }
}

}  // namespace

double rope_attn_factor(const RopeSettings& s) {
  return (s.attn_factor ? *s.attn_factor : derived_attn_factor(s)) * s.attn_mult;
}

double rope_attn_factor_for(const RopeSettings& s, int64_t seq_len) {
  if (s.method == RopeMethod::LongRope && s.short_attn_factor && s.orig_ctx > 0 &&
      seq_len <= s.orig_ctx)
    return *s.short_attn_factor * s.attn_mult;
  return rope_attn_factor(s);
}

RopeTable rope_table(const RopeSettings& s, int64_t seq_len) {
  if (s.dim <= 0 || s.dim % 2 != 0)
    fail("RoPE: rotary dimension must be a positive even number, got ", s.dim);
  if (!(s.base > 0.0)) fail("RoPE: freq_base must be > 0, got ", s.base);
  if (!(s.factor > 0.0)) fail("RoPE: scaling factor must be > 0, got ", s.factor);

  std::vector<double> inv = base_inv_freq(s.base, s.dim);
  switch (s.method) {
    case RopeMethod::None:
      break;
    case RopeMethod::Linear:
      for (double& t : inv) t /= s.factor;
      break;
    case RopeMethod::DynamicNtk: {
      const double l0 = need_orig_ctx(s);
      const double len = std::max(static_cast<double>(seq_len), l0);
      if (len > l0)
        inv = base_inv_freq(ntk_base(s.base, s.factor * len / l0 - (s.factor - 1.0), s.dim), s.dim);
      break;
    }
    case RopeMethod::FixedNtk:
      inv = base_inv_freq(ntk_base(s.base, s.factor, s.dim), s.dim);
      break;
    case RopeMethod::Yarn:
      yarn_apply(s, inv);
      break;
    case RopeMethod::Llama3:
      llama3_apply(s, inv);
      break;
    case RopeMethod::LongRope: {
      const double l0 = need_orig_ctx(s);
      const bool use_long = static_cast<double>(seq_len) > l0;
      const std::vector<float>& f = use_long ? s.long_factors : s.short_factors;
      check_list(f, s.dim, use_long ? "LongRoPE long_factor" : "LongRoPE short_factor");
      for (size_t i = 0; i < inv.size(); ++i) {
        if (!(f[i] > 0.0f)) fail("RoPE: LongRoPE factor ", i, " must be > 0, got ", f[i]);
        inv[i] /= f[i];
      }
      break;
    }
  }
  if (!s.freq_divisors.empty()) {
    check_list(s.freq_divisors, s.dim, "rope_freqs");
    for (size_t i = 0; i < inv.size(); ++i) {
      if (!(s.freq_divisors[i] > 0.0f))
        fail("RoPE: rope_freqs entry ", i, " must be > 0, got ", s.freq_divisors[i]);
      inv[i] /= s.freq_divisors[i];
    }
  }

  RopeTable t;
  t.inv_freq.assign(inv.begin(), inv.end());
  t.attn_factor = static_cast<float>(rope_attn_factor_for(s, seq_len));
  t.dim = s.dim;
  t.layout = s.layout;
  if (s.method == RopeMethod::LongRope && s.n_hat > 0) {
    // The leading positions: the model's own frequencies, no attention factor.
    const std::vector<double> orig = base_inv_freq(s.base, s.dim);
    t.n_hat = s.n_hat;
    t.start_inv_freq.assign(orig.begin(), orig.end());
    t.start_attn_factor = 1.0f;
  }
  return t;
}

bool rope_depends_on_length(const RopeSettings& s) {
  switch (s.method) {
    case RopeMethod::DynamicNtk:
      return true;
    case RopeMethod::LongRope:
      return s.long_factors != s.short_factors ||
             (s.short_attn_factor && *s.short_attn_factor != rope_attn_factor(s) / s.attn_mult);
    default:
      return false;
  }
}

}  // namespace lc
