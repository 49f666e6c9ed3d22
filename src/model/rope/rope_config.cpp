// RoPE settings from GGUF and CLI overrides, precedence and validation. config.json parsing is in
// rope_hf_config.cpp, the human-readable report in rope_report.cpp.
#include "model/rope/rope_config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "core/gguf.h"
#include "model/rope/rope_util.h"

namespace lc {

using rope_detail::num;

std::optional<RopeMethod> rope_method_from_name(std::string_view name) {
  if (name == "none" || name == "default") return RopeMethod::None;
  if (name == "linear") return RopeMethod::Linear;
  if (name == "yarn") return RopeMethod::Yarn;
  if (name == "dynamic") return RopeMethod::DynamicNtk;
  if (name == "ntk") return RopeMethod::FixedNtk;
  if (name == "llama3") return RopeMethod::Llama3;
  if (name == "longrope" || name == "su") return RopeMethod::LongRope;
  return std::nullopt;
}

const char* rope_method_choices() { return "none, linear, yarn, dynamic, ntk, llama3, longrope"; }

RopeSettings rope_defaults(int head_dim, RopeLayout layout) {
  RopeSettings s;
  s.layout = layout;
  s.dim = head_dim;
  s.head_dim = head_dim;
  for (const char* k :
       {"method",          "layout",           "dim",          "head_dim",         "base",
        "factor",          "orig_ctx",         "max_pos",      "beta_fast",        "beta_slow",
        "ext_factor",      "attn_factor",      "attn_mult",    "mscale",           "mscale_all_dim",
        "low_freq_factor", "high_freq_factor", "long_factors", "short_factors",    "freq_divisors",
        "yarn_log_mul",    "finetuned",        "n_hat",        "short_attn_factor"})
    s.source[k] = "default";
  return s;
}

namespace rope_detail {

// A higher-precedence source changed the method: parameters that belong to a method go back to
// their defaults (factor and context lengths are shared between methods and stay).
void reset_method_params(RopeSettings& s) {
  RopeSettings d;
  s.beta_fast = d.beta_fast;
  s.beta_slow = d.beta_slow;
  s.ext_factor = d.ext_factor;
  s.attn_factor.reset();
  s.attn_mult = d.attn_mult;
  s.mscale.reset();
  s.mscale_all_dim.reset();
  s.low_freq_factor = d.low_freq_factor;
  s.high_freq_factor = d.high_freq_factor;
  s.long_factors.clear();
  s.short_factors.clear();
  s.yarn_log_mul.reset();
  s.n_hat = 0;
  s.short_attn_factor.reset();
  for (const char* k :
       {"beta_fast", "beta_slow", "ext_factor", "attn_factor", "attn_mult", "mscale",
        "mscale_all_dim", "low_freq_factor", "high_freq_factor", "long_factors", "short_factors",
        "yarn_log_mul", "n_hat", "short_attn_factor"})
    s.source[k] = "default";
}

// llama3 scaling and a GGUF rope_freqs tensor encode the same thing: never apply both.
void drop_divisors_for_llama3(RopeSettings& s, const std::string& why) {
  if (s.method == RopeMethod::Llama3 && !s.freq_divisors.empty()) {
    s.freq_divisors.clear();
    s.source["freq_divisors"] = "dropped (" + why + " replaces " + s.source["freq_divisors"] + ")";
  }
}

void set_method(RopeSettings& s, RopeMethod m, const std::string& src) {
  if (m != s.method) reset_method_params(s);
  s.method = m;
  s.source["method"] = src;
  drop_divisors_for_llama3(s, src);
}

}  // namespace rope_detail

using rope_detail::set_method;

namespace {

std::vector<float> tensor_floats(const GgufFile& f, const GgufTensor& t, int dim) {
  if (t.ne.size() != 1 || t.n_elements() != dim / 2)
    fail("GGUF ", f.path(), ": tensor ", t.name, " has ", t.n_elements(),
         " elements, expected one per rotary pair (rope dimension ", dim, " / 2 = ", dim / 2, ")");
  std::vector<float> out(static_cast<size_t>(dim / 2));
  if (t.type == TensorType::F32) {
    std::memcpy(out.data(), t.data, out.size() * sizeof(float));
  } else if (t.type == TensorType::F16) {
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      out[i] = fp16_to_f32(h);
    }
  } else {
    fail("GGUF ", f.path(), ": tensor ", t.name, " has type ", tensor_type_info(t.type).name,
         ", expected F32 (or F16)");
  }
  for (size_t i = 0; i < out.size(); ++i)
    if (!(out[i] > 0.0f) || !std::isfinite(out[i]))
      fail("GGUF ", f.path(), ": tensor ", t.name, " entry ", i, " is ", out[i],
           ", expected a finite number > 0");
  return out;
}

const GgufTensor* find_tensor(const GgufFile& f, const std::string& base, std::string& name) {
  for (const std::string& n : {base + ".weight", base}) {
    if (const GgufTensor* t = f.tensor(n)) {
      name = n;
      return t;
    }
  }
  return nullptr;
}

}  // namespace

RopeSettings rope_from_gguf(const GgufFile& f, const std::string& arch, int head_dim,
                            RopeLayout layout) {
  RopeSettings s = rope_defaults(head_dim, layout);
  const std::string p = arch + ".";
  auto src = [&](const std::string& k) { return "gguf:" + p + k; };

  if (auto v = f.get_float(p + "rope.freq_base")) {
    s.base = *v;
    s.source["base"] = src("rope.freq_base");
  }
  if (auto v = f.get_int(p + "rope.dimension_count")) {
    if (*v <= 0 || *v % 2 != 0 || (head_dim > 0 && *v > head_dim))
      fail("GGUF ", f.path(), ": ", p, "rope.dimension_count = ", *v,
           ", expected an even number between 2 and the head dimension ", head_dim);
    s.dim = static_cast<int>(*v);
    s.source["dim"] = src("rope.dimension_count");
  }
  if (auto v = f.get_int(p + "context_length")) {
    s.max_pos = *v;
    s.orig_ctx = *v;
    s.source["max_pos"] = s.source["orig_ctx"] = src("context_length");
  }
  if (auto v = f.get_int(p + "rope.scaling.original_context_length")) {
    s.orig_ctx = *v;
    s.source["orig_ctx"] = src("rope.scaling.original_context_length");
  }

  // Factor: legacy rope.scale_linear, then rope.scaling.factor. As in llama.cpp, 0 means unset.
  std::string factor_src;
  for (const char* k : {"rope.scale_linear", "rope.scaling.factor"}) {
    if (auto v = f.get_float(p + k)) {
      if (*v < 0.0 || !std::isfinite(*v))
        fail("GGUF ", f.path(), ": ", p, k, " = ", num(*v), ", expected a scale factor > 0");
      if (*v > 0.0) {
        s.factor = *v;
        factor_src = src(k);
        s.source["factor"] = factor_src;
      }
    }
  }

  if (auto t = f.get_str(p + "rope.scaling.type")) {
    auto m = rope_method_from_name(*t);
    if (!m || *t == "default" || *t == "su")
      fail("GGUF ", f.path(), ": ", p, "rope.scaling.type = '", *t,
           "' is not a RoPE scaling type; expected one of ", rope_method_choices());
    s.method = *m;
    s.source["method"] = src("rope.scaling.type");
  } else if (!factor_src.empty() && s.factor != 1.0) {
    // llama.cpp's default type when only a factor is given is linear.
    s.method = RopeMethod::Linear;
    s.source["method"] = factor_src;
  }

  auto opt = [&](const char* k, std::optional<double>& dst, const char* key) {
    if (auto v = f.get_float(p + k)) {
      dst = *v;
      s.source[key] = src(k);
    }
  };
  auto val = [&](const char* k, double& dst, const char* key) {
    if (auto v = f.get_float(p + k)) {
      dst = *v;
      s.source[key] = src(k);
    }
  };
  // rope.scaling.attn_factor: for YaRN llama.cpp multiplies it into the derived 0.1 ln s + 1
  // (together with yarn_attn_factor); for other methods (Phi-3 LongRoPE) it is the factor itself.
  if (s.method != RopeMethod::Yarn) opt("rope.scaling.attn_factor", s.attn_factor, "attn_factor");
  val("rope.scaling.yarn_beta_fast", s.beta_fast, "beta_fast");
  val("rope.scaling.yarn_beta_slow", s.beta_slow, "beta_slow");
  val("rope.scaling.yarn_attn_factor", s.attn_mult, "attn_mult");
  if (s.method == RopeMethod::Yarn) {
    if (auto v = f.get_float(p + "rope.scaling.attn_factor")) {
      s.attn_mult *= *v;
      s.source["attn_mult"] = s.source["attn_mult"] == "default"
                                  ? src("rope.scaling.attn_factor")
                                  : s.source["attn_mult"] + " * " + src("rope.scaling.attn_factor");
    }
  }
  opt("rope.scaling.yarn_log_multiplier", s.yarn_log_mul, "yarn_log_mul");
  val("rope.scaling.low_freq_factor", s.low_freq_factor, "low_freq_factor");
  val("rope.scaling.high_freq_factor", s.high_freq_factor, "high_freq_factor");
  if (auto v = f.get_float(p + "rope.scaling.yarn_ext_factor")) {
    if (*v >= 0.0) {  // llama.cpp writes -1 for "automatic"
      s.ext_factor = *v;
      s.source["ext_factor"] = src("rope.scaling.yarn_ext_factor");
    }
  }
  if (auto v = f.get_bool(p + "rope.scaling.finetuned")) {
    s.finetuned = *v;
    s.source["finetuned"] = src("rope.scaling.finetuned");
  }

  std::string name;
  if (const GgufTensor* t = find_tensor(f, "rope_freqs", name)) {
    s.freq_divisors = tensor_floats(f, *t, s.dim);
    s.source["freq_divisors"] = "gguf:tensor " + name;
  }
  if (const GgufTensor* t = find_tensor(f, "rope_factors_long", name)) {
    s.long_factors = tensor_floats(f, *t, s.dim);
    s.source["long_factors"] = "gguf:tensor " + name;
  }
  if (const GgufTensor* t = find_tensor(f, "rope_factors_short", name)) {
    s.short_factors = tensor_floats(f, *t, s.dim);
    s.source["short_factors"] = "gguf:tensor " + name;
  }
  const bool no_scaling =
      s.method == RopeMethod::None || (s.method == RopeMethod::Linear && s.factor == 1.0);
  if (no_scaling && (!s.long_factors.empty() || !s.short_factors.empty())) {
    // llama.cpp uses the LongRoPE tensors whenever a (phi3) file has them.
    s.method = RopeMethod::LongRope;
    s.source["method"] =
        s.long_factors.empty() ? s.source["short_factors"] : s.source["long_factors"];
  }
  // LongRoPE's extras llama.cpp has no key for (written by rope-apply).
  if (auto v = f.get_int("longctx.rope.scaling.n_hat")) {
    s.n_hat = *v;
    s.source["n_hat"] = "gguf:longctx.rope.scaling.n_hat";
  }
  if (auto v = f.get_float("longctx.rope.scaling.short_attn_factor")) {
    s.short_attn_factor = *v;
    s.source["short_attn_factor"] = "gguf:longctx.rope.scaling.short_attn_factor";
  }
  if (s.method == RopeMethod::Llama3 && !s.freq_divisors.empty())
    fail("GGUF ", f.path(), ": ", p, "rope.scaling.type = 'llama3' together with ",
         s.source["freq_divisors"],
         ", which already holds the llama3 scaling; expected one of the two");
  return s;
}

bool RopeOverrides::empty() const {
  return !scaling && !scale && !freq_base && !freq_scale && !yarn_orig_ctx && !yarn_ext_factor &&
         !yarn_attn_factor && !yarn_beta_fast && !yarn_beta_slow && !factors_file;
}

std::string RopeOverrides::origin_of(const std::string& setting) const {
  auto it = origin.find(setting);
  return it != origin.end() ? it->second : "setting:" + setting;
}

void rope_apply_overrides(RopeSettings& s, const RopeOverrides& o) {
  if (o.scaling) {
    auto m = rope_method_from_name(*o.scaling);
    if (!m)
      fail_setting({"rope.scaling"}, "rope.scaling '", *o.scaling, "': expected one of ",
                   rope_method_choices());
    set_method(s, *m, o.origin_of("rope.scaling"));
  }
  if (o.scale && o.freq_scale && std::fabs(*o.scale * *o.freq_scale - 1.0) > 1e-6)
    fail_setting({"rope.scale", "rope.freq_scale"}, "rope.scale = ", num(*o.scale),
                 " and rope.freq_scale = ", num(*o.freq_scale),
                 " disagree (rope.freq_scale is 1 / rope.scale); give only one");
  std::optional<double> factor;
  std::string factor_src;
  if (o.freq_scale) {
    if (!(*o.freq_scale > 0.0))
      fail_setting({"rope.freq_scale"}, "rope.freq_scale = ", num(*o.freq_scale),
                   ": expected a frequency scale > 0 (1 / the factor)");
    factor = 1.0 / *o.freq_scale;
    factor_src = o.origin_of("rope.freq_scale");
  }
  if (o.scale) {
    if (!(*o.scale > 0.0))
      fail_setting({"rope.scale"}, "rope.scale = ", num(*o.scale),
                   ": expected a scale factor > 0 (e.g. 4)");
    factor = *o.scale;
    factor_src = o.origin_of("rope.scale");
  }
  if (factor) {
    s.factor = *factor;
    s.source["factor"] = factor_src;
    // A scale alone means linear interpolation (as in llama.cpp).
    if (!o.scaling && s.method == RopeMethod::None && *factor != 1.0)
      set_method(s, RopeMethod::Linear, factor_src);
  }
  if (o.freq_base) {
    if (!(*o.freq_base > 0.0))
      fail_setting({"rope.freq_base"}, "rope.freq_base = ", num(*o.freq_base),
                   ": expected a base > 0 (e.g. 10000)");
    s.base = *o.freq_base;
    s.source["base"] = o.origin_of("rope.freq_base");
  }
  if (o.yarn_orig_ctx && *o.yarn_orig_ctx < 0)
    fail_setting({"rope.orig_ctx"}, "rope.orig_ctx = ", *o.yarn_orig_ctx,
                 ": expected a context length >= 0 (0 = the model's)");
  if (o.yarn_orig_ctx && *o.yarn_orig_ctx > 0) {  // 0 = keep the model's (llama.cpp)
    s.orig_ctx = *o.yarn_orig_ctx;
    s.source["orig_ctx"] = o.origin_of("rope.orig_ctx");
  }
  if (o.yarn_ext_factor && *o.yarn_ext_factor < 0.0 && *o.yarn_ext_factor != -1.0)
    fail_setting({"rope.ext_factor"}, "rope.ext_factor = ", num(*o.yarn_ext_factor),
                 ": expected a number >= 0, or -1 for automatic");
  if (o.yarn_ext_factor && *o.yarn_ext_factor >= 0.0) {  // -1 = automatic
    s.ext_factor = *o.yarn_ext_factor;
    s.source["ext_factor"] = o.origin_of("rope.ext_factor");
  }
  if (o.yarn_attn_factor) {
    if (!(*o.yarn_attn_factor > 0.0))
      fail_setting({"rope.attn_factor"}, "rope.attn_factor = ", num(*o.yarn_attn_factor),
                   ": expected a number > 0");
    s.attn_mult = *o.yarn_attn_factor;
    s.source["attn_mult"] = o.origin_of("rope.attn_factor");
  }
  if (o.yarn_beta_fast) {
    s.beta_fast = *o.yarn_beta_fast;
    s.source["beta_fast"] = o.origin_of("rope.beta_fast");
  }
  if (o.yarn_beta_slow) {
    s.beta_slow = *o.yarn_beta_slow;
    s.source["beta_slow"] = o.origin_of("rope.beta_slow");
  }
  if (o.factors_file) {
    if (o.factors_file->empty())
      fail_setting({"rope.factors"}, "rope.factors: expected a JSON file name");
    RopeFactorLists l = rope_read_factors_file(*o.factors_file);
    if (l.long_factors.empty() && l.short_factors.empty())
      fail_setting({"rope.factors"}, "rope.factors ", *o.factors_file,
                   ": no factor list found; expected \"long_factor\" and/or \"short_factor\" "
                   "arrays");
    if (!o.scaling && s.method != RopeMethod::LongRope)
      set_method(s, RopeMethod::LongRope, o.origin_of("rope.factors"));
    const std::string src = o.origin_of("rope.factors") + " " + *o.factors_file;
    if (!l.long_factors.empty()) {
      s.long_factors = l.long_factors;
      s.source["long_factors"] = src;
    }
    if (!l.short_factors.empty()) {
      s.short_factors = l.short_factors;
      s.source["short_factors"] = src;
    }
    // A searched list for a model without LongRoPE: plain RoPE within the original context.
    if (s.short_factors.empty() && !s.long_factors.empty()) {
      s.short_factors.assign(s.long_factors.size(), 1.0f);
      s.source["short_factors"] = "default (ones: plain RoPE up to the original context)";
    }
    if (s.long_factors.empty() && !s.short_factors.empty())
      fail_setting({"rope.factors"}, "rope.factors ", *o.factors_file,
                   ": has only a short factor list; expected a \"long_factor\" list as well");
    if (l.attn_factor) {
      if (!(*l.attn_factor > 0.0))
        fail_setting({"rope.factors"}, "rope.factors ", *o.factors_file,
                     ": attention_factor = ", num(*l.attn_factor), ", expected > 0");
      s.attn_factor = *l.attn_factor;
      s.source["attn_factor"] = src;
    }
    if (l.short_attn_factor) {
      if (!(*l.short_attn_factor > 0.0))
        fail_setting({"rope.factors"}, "rope.factors ", *o.factors_file,
                     ": short_attention_factor = ", num(*l.short_attn_factor), ", expected > 0");
      s.short_attn_factor = *l.short_attn_factor;
      s.source["short_attn_factor"] = src;
    }
    if (l.n_hat) {
      if (*l.n_hat < 0)
        fail_setting({"rope.factors"}, "rope.factors ", *o.factors_file, ": n_hat = ", *l.n_hat,
                     ", expected >= 0");
      s.n_hat = *l.n_hat;
      s.source["n_hat"] = src;
    }
    if (l.orig_ctx && *l.orig_ctx > 0 && !(o.yarn_orig_ctx && *o.yarn_orig_ctx > 0)) {
      s.orig_ctx = *l.orig_ctx;
      s.source["orig_ctx"] = src;
    }
    if (l.max_pos && *l.max_pos > 0) {
      s.max_pos = *l.max_pos;
      s.source["max_pos"] = src;
    }
  }
}

namespace {

// "7 (from gguf:llama.rope.dimension_count)", with the config.json path when it came from there.
std::string from(const RopeSettings& s, const std::string& key) {
  auto it = s.source.find(key);
  std::string src = it == s.source.end() ? "default" : it->second;
  if (src.rfind("config.json:", 0) == 0 && !s.hf_config.empty()) src += " in " + s.hf_config;
  return "from " + src;
}

void check_list(const RopeSettings& s, const std::vector<float>& v, const std::string& key,
                const char* what) {
  if (v.size() != static_cast<size_t>(s.dim / 2))
    fail("RoPE ", what, " (", from(s, key), ") has ", v.size(),
         " entries; expected one per rotary pair: rotary dimension ", s.dim, " / 2 = ", s.dim / 2);
  for (size_t i = 0; i < v.size(); ++i)
    if (!(v[i] > 0.0f) || !std::isfinite(v[i]))
      fail("RoPE ", what, " (", from(s, key), ") entry ", i, " is ", num(v[i]),
           "; expected a finite number > 0");
}

bool uses_factor(RopeMethod m) {
  return m == RopeMethod::Linear || m == RopeMethod::Yarn || m == RopeMethod::Llama3 ||
         m == RopeMethod::FixedNtk || m == RopeMethod::DynamicNtk;
}

}  // namespace

void rope_validate(const RopeSettings& s) {
  const std::string m = rope_method_name(s.method);
  if (s.dim <= 0 || s.dim % 2 != 0)
    fail("RoPE rotary dimension ", s.dim, " (", from(s, "dim"),
         ") is invalid; expected a positive even number");
  if (s.head_dim > 0 && s.dim > s.head_dim)
    fail("RoPE rotary dimension ", s.dim, " (", from(s, "dim"),
         ") is larger than the head dimension ", s.head_dim, " (", from(s, "head_dim"), ")");
  if (!(s.base > 0.0) || !std::isfinite(s.base))
    fail("RoPE freq_base ", num(s.base), " (", from(s, "base"),
         ") is invalid; expected a number > 0");
  if (!(s.factor > 0.0) || !std::isfinite(s.factor))
    fail("RoPE scaling factor ", num(s.factor), " (", from(s, "factor"),
         ") is invalid; expected a number > 0");
  if (uses_factor(s.method) && s.source.count("factor") && s.source.at("factor") == "default")
    fail("RoPE scaling '", m, "' (", from(s, "method"),
         ") has no factor; expected the setting rope.scale or rope_scaling.factor in config.json");
  if ((s.method == RopeMethod::DynamicNtk || s.method == RopeMethod::FixedNtk) && s.dim <= 2)
    fail("RoPE scaling '", m, "' needs a rotary dimension > 2, got ", s.dim, " (", from(s, "dim"),
         ")");
  if (s.orig_ctx < 0)
    fail("RoPE original context length ", s.orig_ctx, " (", from(s, "orig_ctx"),
         ") is invalid; expected a number > 0");
  const bool needs_l0 = s.method == RopeMethod::Yarn || s.method == RopeMethod::DynamicNtk ||
                        s.method == RopeMethod::Llama3 || s.method == RopeMethod::LongRope;
  if (needs_l0 && s.orig_ctx <= 1)
    fail("RoPE scaling '", m, "' (", from(s, "method"), ") needs the original training context ",
         "length, which is ", s.orig_ctx == 0 ? "unknown" : "1",
         "; expected the setting rope.orig_ctx, original_max_position_embeddings or "
         "max_position_embeddings in config.json, or rope.scaling.original_context_length / "
         "context_length in the GGUF");
  if (s.method == RopeMethod::Yarn) {
    if (!(s.beta_slow > 0.0))
      fail("YaRN beta_slow ", num(s.beta_slow), " (", from(s, "beta_slow"),
           ") is invalid; expected a number > 0 (default 1)");
    if (!(s.beta_fast > s.beta_slow))
      fail("YaRN beta_fast ", num(s.beta_fast), " (", from(s, "beta_fast"),
           ") must be greater than beta_slow ", num(s.beta_slow), " (", from(s, "beta_slow"),
           "); defaults are 32 and 1");
    if (!(s.ext_factor >= 0.0))
      fail("YaRN ext_factor ", num(s.ext_factor), " (", from(s, "ext_factor"),
           ") is invalid; expected a number >= 0");
    for (const auto& [key, v] :
         {std::pair{"mscale", s.mscale}, {"mscale_all_dim", s.mscale_all_dim}})
      if (v && (*v < 0.0 || !std::isfinite(*v)))
        fail("YaRN ", key, " ", num(*v), " (", from(s, key),
             ") is invalid; expected a number >= 0");
  }
  if (s.method == RopeMethod::Llama3) {
    if (!(s.low_freq_factor > 0.0))
      fail("llama3 low_freq_factor ", num(s.low_freq_factor), " (", from(s, "low_freq_factor"),
           ") is invalid; expected a number > 0 (Llama 3.1: 1)");
    if (!(s.high_freq_factor > s.low_freq_factor))
      fail("llama3 high_freq_factor ", num(s.high_freq_factor), " (", from(s, "high_freq_factor"),
           ") must be greater than low_freq_factor ", num(s.low_freq_factor), " (",
           from(s, "low_freq_factor"), "); Llama 3.1 uses 4 and 1");
    if (!s.freq_divisors.empty())
      fail("RoPE scaling 'llama3' (", from(s, "method"), ") together with rope_freqs (",
           from(s, "freq_divisors"), "), which already holds the llama3 scaling; expected one");
  }
  if (s.method == RopeMethod::LongRope) {
    if (s.long_factors.empty() || s.short_factors.empty())
      fail("RoPE scaling 'longrope' (", from(s, "method"), ") needs both factor lists; ",
           s.long_factors.empty() ? "long_factor" : "short_factor",
           " is missing (expected rope_scaling.long_factor / short_factor in config.json, the "
           "GGUF tensors rope_factors_long / rope_factors_short, or the setting rope.factors)");
    check_list(s, s.long_factors, "long_factors", "LongRoPE long_factor");
    check_list(s, s.short_factors, "short_factors", "LongRoPE short_factor");
  } else if (!s.long_factors.empty() || !s.short_factors.empty()) {
    fail("LongRoPE factor lists (",
         from(s, s.long_factors.empty() ? "short_factors" : "long_factors"),
         ") are set but the RoPE scaling is '", m, "' (", from(s, "method"),
         "); expected scaling 'longrope' or no factor lists");
  }
  if (!s.freq_divisors.empty()) check_list(s, s.freq_divisors, "freq_divisors", "rope_freqs");
  if (s.n_hat < 0)
    fail("LongRoPE n_hat ", s.n_hat, " (", from(s, "n_hat"), ") is invalid; expected >= 0");
  if (s.n_hat > 0 && s.method != RopeMethod::LongRope)
    fail("LongRoPE n_hat ", s.n_hat, " (", from(s, "n_hat"), ") is set but the RoPE scaling is '",
         m, "' (", from(s, "method"), "); expected scaling 'longrope'");
  if (s.short_attn_factor &&
      (!(*s.short_attn_factor > 0.0) || !std::isfinite(*s.short_attn_factor)))
    fail("LongRoPE short-list attention factor ", num(*s.short_attn_factor), " (",
         from(s, "short_attn_factor"), ") is invalid; expected a number > 0");
  if (s.attn_factor && (!(*s.attn_factor > 0.0) || !std::isfinite(*s.attn_factor)))
    fail("RoPE attention factor ", num(*s.attn_factor), " (", from(s, "attn_factor"),
         ") is invalid; expected a number > 0");
  if (!(s.attn_mult > 0.0) || !std::isfinite(s.attn_mult))
    fail("RoPE attention factor multiplier ", num(s.attn_mult), " (", from(s, "attn_mult"),
         ") is invalid; expected a number > 0");
  if (s.max_pos < 0)
    fail("RoPE max_position_embeddings ", s.max_pos, " (", from(s, "max_pos"),
         ") is invalid; expected a number >= 0");
}

RopeSettings rope_resolve(const GgufFile* gguf, const std::string& arch, int head_dim,
                          RopeLayout layout, const std::string& hf_config_path,
                          const RopeOverrides& overrides) {
  RopeSettings s =
      gguf ? rope_from_gguf(*gguf, arch, head_dim, layout) : rope_defaults(head_dim, layout);
  if (!hf_config_path.empty()) rope_apply_hf_config(s, hf_config_path);
  rope_apply_overrides(s, overrides);
  rope_validate(s);
  return s;
}

}  // namespace lc
