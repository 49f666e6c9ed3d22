// RoPE settings from a Hugging Face config.json and LongRoPE factor files (JSON).
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/rope/rope_config.h"
#include "model/rope/rope_util.h"

namespace lc {

using json = nlohmann::json;
using rope_detail::num;

namespace {

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", what, " ", path);
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) fail("cannot read ", what, " ", path);
  return os.str();
}

json parse_json(const std::string& text, const std::string& name) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(name, ": not valid JSON (", e.what(), ")");
  }
}

std::string shown(const json& v) {
  std::string d = v.dump();
  return d.size() > 60 ? d.substr(0, 57) + "..." : d;
}

// Absent or null -> nullopt; a number -> its value; anything else is an error naming the key.
std::optional<double> get_num(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number() || !std::isfinite(it->get<double>()))
    fail(where, key, " = ", shown(*it), " is not a number");
  return it->get<double>();
}

std::optional<int64_t> get_int(const json& obj, const char* key, const std::string& where) {
  auto d = get_num(obj, key, where);
  if (!d) return std::nullopt;
  if (*d != std::floor(*d) || std::fabs(*d) > 9.0e15)
    fail(where, key, " = ", num(*d), " is not an integer");
  return static_cast<int64_t>(*d);
}

std::vector<float> get_list(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_array()) fail(where, key, " = ", shown(*it), " is not a list of numbers");
  std::vector<float> out;
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    if (!e.is_number()) fail(where, key, "[", i, "] = ", shown(e), " is not a number");
    out.push_back(e.get<float>());
  }
  return out;
}

void apply_rope_scaling(RopeSettings& s, const json& rs, const std::string& name) {
  const std::string where = name + ": rope_scaling.";
  auto src = [](const std::string& k) { return "config.json:rope_scaling." + k; };
  std::string type_key = rs.contains("rope_type") ? "rope_type" : "type";
  auto it = rs.find(type_key);
  if (it == rs.end())
    fail(name, ": rope_scaling has neither \"rope_type\" nor \"type\"; expected one of default, ",
         "linear, dynamic, yarn, llama3, longrope");
  if (!it->is_string())
    fail(where, type_key, " = ", shown(*it),
         " is not a string; expected one of default, linear, dynamic, yarn, llama3, longrope");
  const std::string type = it->get<std::string>();
  auto m = rope_method_from_name(type);
  if (!m || type == "none")
    fail(where, type_key, " = \"", type,
         "\" is not a known RoPE scaling type; expected one of default, linear, dynamic, yarn, "
         "llama3, longrope (legacy: su)");

  // The block describes the scaling completely: parameters of another source do not leak in.
  if (*m != s.method) {
    s.factor = 1.0;
    s.source["factor"] = "default";
  }
  rope_detail::set_method(s, *m, src(type_key));

  auto set_d = [&](const char* key, double& dst, const char* skey) {
    if (auto v = get_num(rs, key, where)) {
      dst = *v;
      s.source[skey] = src(key);
    }
  };
  auto set_o = [&](const char* key, std::optional<double>& dst, const char* skey) {
    if (auto v = get_num(rs, key, where)) {
      dst = *v;
      s.source[skey] = src(key);
    }
  };
  set_d("factor", s.factor, "factor");
  if (auto v = get_int(rs, "original_max_position_embeddings", where)) {
    s.orig_ctx = *v;
    s.source["orig_ctx"] = src("original_max_position_embeddings");
  }
  set_d("beta_fast", s.beta_fast, "beta_fast");
  set_d("beta_slow", s.beta_slow, "beta_slow");
  // vLLM / MLX LongRoPE: long_mscale and short_mscale, the attention factor of each list.
  set_o("long_mscale", s.attn_factor, "attn_factor");
  set_o("attention_factor", s.attn_factor, "attn_factor");
  set_o("short_mscale", s.short_attn_factor, "short_attn_factor");
  if (auto v = get_int(rs, "n_hat", where)) {
    s.n_hat = *v;
    s.source["n_hat"] = src("n_hat");
  }
  set_o("mscale", s.mscale, "mscale");
  set_o("mscale_all_dim", s.mscale_all_dim, "mscale_all_dim");
  set_d("low_freq_factor", s.low_freq_factor, "low_freq_factor");
  set_d("high_freq_factor", s.high_freq_factor, "high_freq_factor");
  auto lf = get_list(rs, "long_factor", where);
  if (!lf.empty()) {
    s.long_factors = std::move(lf);
    s.source["long_factors"] = src("long_factor");
  }
  auto sf = get_list(rs, "short_factor", where);
  if (!sf.empty()) {
    s.short_factors = std::move(sf);
    s.source["short_factors"] = src("short_factor");
  }
}

}  // namespace

void rope_apply_hf_config_text(RopeSettings& s, const std::string& json_text,
                               const std::string& name) {
  const json j = parse_json(json_text, name);
  if (!j.is_object()) fail(name, ": expected a JSON object (a Hugging Face config.json)");
  const std::string where = name + ": ";
  s.hf_config = name;
  s.hf_rope_scaling_null = false;

  if (auto v = get_num(j, "rope_theta", where)) {
    s.base = *v;
    s.source["base"] = "config.json:rope_theta";
  }
  // Trained context: top-level original_max_position_embeddings (Phi-3), else
  // max_position_embeddings; rope_scaling.original_max_position_embeddings wins (below).
  if (auto v = get_int(j, "max_position_embeddings", where)) {
    s.max_pos = *v;
    s.orig_ctx = *v;
    s.source["max_pos"] = s.source["orig_ctx"] = "config.json:max_position_embeddings";
  }
  if (auto v = get_int(j, "original_max_position_embeddings", where)) {
    s.orig_ctx = *v;
    s.source["orig_ctx"] = "config.json:original_max_position_embeddings";
  }

  // Head and rotary dimensions.
  std::optional<int64_t> hd;
  std::string hd_src;
  if (auto v = get_int(j, "head_dim", where)) {
    hd = *v;
    hd_src = "config.json:head_dim";
  } else {
    auto hidden = get_int(j, "hidden_size", where);
    auto heads = get_int(j, "num_attention_heads", where);
    if (hidden && heads && *heads > 0 && *hidden % *heads == 0) {
      hd = *hidden / *heads;
      hd_src = "config.json:hidden_size/num_attention_heads";
    }
  }
  if (hd) {
    if (*hd <= 0) fail(where, "head dimension ", *hd, " (", hd_src, ") is invalid");
    if (s.head_dim > 0 && *hd != s.head_dim)
      fail(where, "head dimension ", *hd, " (", hd_src, ") does not match the model's head ",
           "dimension ", s.head_dim, " (from ", s.source["head_dim"], "); wrong config.json?");
    s.head_dim = static_cast<int>(*hd);
    s.source["head_dim"] = hd_src;
    // Full rotary unless something (the GGUF's rope.dimension_count) already said otherwise.
    if (s.dim <= 0 || s.source["dim"] == "default") {
      s.dim = s.head_dim;
      s.source["dim"] = hd_src;
    }
  }
  if (auto prf = get_num(j, "partial_rotary_factor", where)) {
    if (!(*prf > 0.0 && *prf <= 1.0))
      fail(where, "partial_rotary_factor = ", num(*prf), " is invalid; expected 0 < value <= 1");
    if (s.head_dim <= 0)
      fail(where, "partial_rotary_factor is set but the head dimension is unknown; expected ",
           "head_dim or hidden_size and num_attention_heads");
    s.dim = static_cast<int>(s.head_dim * *prf);
    s.source["dim"] = "config.json:partial_rotary_factor";
  }

  auto it = j.find("rope_scaling");
  if (it == j.end()) return;  // not specified: lower-precedence settings stay
  if (it->is_null()) {
    s.hf_rope_scaling_null = true;
    if (s.method != RopeMethod::None) {
      s.factor = 1.0;
      s.source["factor"] = "config.json:rope_scaling (null)";
    }
    rope_detail::set_method(s, RopeMethod::None, "config.json:rope_scaling (null)");
    return;
  }
  if (!it->is_object())
    fail(where, "rope_scaling = ", shown(*it), " is not an object; expected null or ",
         "{\"rope_type\": ..., \"factor\": ...}");
  apply_rope_scaling(s, *it, name);
}

void rope_apply_hf_config(RopeSettings& s, const std::string& path) {
  rope_apply_hf_config_text(s, read_text(path, "config.json"), path);
}

RopeFactorLists rope_parse_factors_json(const std::string& json_text, const std::string& name) {
  const json j = parse_json(json_text, name);
  if (!j.is_object())
    fail(name, ": expected a JSON object with \"long_factor\" and \"short_factor\" lists");
  const std::string where = name + ": ";
  RopeFactorLists l;
  // A whole config.json or its rope_scaling block works too.
  const json* obj = &j;
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) obj = &j["rope_scaling"];
  for (const char* k : {"long_factor", "long"}) {
    if (l.long_factors.empty()) l.long_factors = get_list(*obj, k, where);
  }
  for (const char* k : {"short_factor", "short"}) {
    if (l.short_factors.empty()) l.short_factors = get_list(*obj, k, where);
  }
  // A factors file the factor search wrote also says which attention factor and lengths the
  // lists were found for.
  auto number = [&](const char* k) -> std::optional<double> {
    for (const json* o : {obj, &j}) {
      auto it = o->find(k);
      if (it == o->end() || it->is_null()) continue;
      if (!it->is_number()) fail(where, k, " = ", it->dump(), " is not a number");
      return it->get<double>();
    }
    return std::nullopt;
  };
  l.attn_factor = number("attention_factor");
  if (!l.attn_factor) l.attn_factor = number("long_mscale");
  l.short_attn_factor = number("short_attention_factor");
  if (!l.short_attn_factor) l.short_attn_factor = number("short_mscale");
  if (auto v = number("n_hat")) l.n_hat = static_cast<int64_t>(*v);
  if (auto v = number("original_max_position_embeddings")) l.orig_ctx = static_cast<int64_t>(*v);
  if (auto v = number("target_length")) l.max_pos = static_cast<int64_t>(*v);
  return l;
}

RopeFactorLists rope_read_factors_file(const std::string& path) {
  return rope_parse_factors_json(read_text(path, "RoPE factors file"), path);
}

}  // namespace lc
