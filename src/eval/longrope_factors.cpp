#include "eval/longrope_factors.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_stream_writer.h"

namespace lc::eval {

namespace {

// Factors as short decimals (1.41, not the float's 1.409999966621399).
nlohmann::json factor_list(const std::vector<float>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (float x : v) a.push_back(std::round(static_cast<double>(x) * 1e6) / 1e6);
  return a;
}

}  // namespace

nlohmann::json longrope_factors_json(const LongRopeFactors& f) {
  nlohmann::json j;
  j["rope_type"] = "longrope";
  j["long_factor"] = factor_list(f.long_factors);
  j["short_factor"] = factor_list(f.short_factors);
  j["attention_factor"] = f.attn_factor;
  if (f.short_attn_factor) j["short_attention_factor"] = *f.short_attn_factor;
  j["original_max_position_embeddings"] = f.orig_ctx;
  j["target_length"] = f.target;
  j["n_hat"] = f.n_hat;
  if (!f.search.is_null()) j["search"] = f.search;
  return j;
}

LongRopeFactors longrope_factors_from_json(const nlohmann::json& j, const std::string& name) {
  LongRopeFactors f;
  try {
    f.long_factors = j.at("long_factor").get<std::vector<float>>();
    f.short_factors = j.value("short_factor", std::vector<float>{});
    f.attn_factor = j.value("attention_factor", 1.0);
    if (j.contains("short_attention_factor") && !j["short_attention_factor"].is_null())
      f.short_attn_factor = j["short_attention_factor"].get<double>();
    f.orig_ctx = j.at("original_max_position_embeddings").get<int64_t>();
    f.target = j.value("target_length", int64_t{0});
    f.n_hat = j.value("n_hat", int64_t{0});
    if (j.contains("search")) f.search = j["search"];
  } catch (const nlohmann::json::exception& e) {
    fail(name, ": not a LongRoPE factors file (", e.what(),
         "); expected \"long_factor\", \"original_max_position_embeddings\" and optionally "
         "\"short_factor\", \"attention_factor\", \"target_length\"");
  }
  if (f.long_factors.empty()) fail(name, ": \"long_factor\" is empty");
  if (f.short_factors.empty()) f.short_factors.assign(f.long_factors.size(), 1.0f);
  if (f.short_factors.size() != f.long_factors.size())
    fail(name, ": \"short_factor\" has ", f.short_factors.size(), " entries, \"long_factor\" ",
         f.long_factors.size());
  for (float v : f.long_factors)
    if (!(v > 0.0f) || !std::isfinite(v)) fail(name, ": factor ", v, " is not a positive number");
  for (float v : f.short_factors)
    if (!(v > 0.0f) || !std::isfinite(v)) fail(name, ": factor ", v, " is not a positive number");
  if (f.orig_ctx <= 0)
    fail(name, ": original_max_position_embeddings = ", f.orig_ctx, ", expected > 0");
  if (!(f.attn_factor > 0.0)) fail(name, ": attention_factor = ", f.attn_factor, ", expected > 0");
  if (f.short_attn_factor && !(*f.short_attn_factor > 0.0))
    fail(name, ": short_attention_factor = ", *f.short_attn_factor, ", expected > 0");
  if (f.n_hat < 0) fail(name, ": n_hat = ", f.n_hat, ", expected >= 0");
  if (f.target <= 0) f.target = f.orig_ctx;
  return f;
}

LongRopeFactors read_longrope_factors(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read the factors file ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
  return longrope_factors_from_json(j, path);
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) fail("cannot write ", path);
    out << j.dump(1) << "\n";
    if (!out.flush()) fail("cannot write ", path);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot write ", path, ": ", ec.message());
}

nlohmann::json longrope_hf_config(const LongRopeFactors& f) {
  nlohmann::json rs;
  rs["rope_type"] = "longrope";
  rs["long_factor"] = factor_list(f.long_factors);
  rs["short_factor"] = factor_list(f.short_factors);
  rs["factor"] = static_cast<double>(f.target) / static_cast<double>(f.orig_ctx);
  rs["original_max_position_embeddings"] = f.orig_ctx;
  rs["attention_factor"] = f.attn_factor;
  if (f.short_attn_factor) {
    rs["long_mscale"] = f.attn_factor;
    rs["short_mscale"] = *f.short_attn_factor;
  }
  if (f.n_hat > 0) rs["n_hat"] = f.n_hat;
  return {{"rope_scaling", rs}, {"max_position_embeddings", f.target}};
}

namespace {

bool dropped_key(const std::string& key, const std::string& p) {
  return key.rfind(p + "rope.scaling.", 0) == 0 || key.rfind("longctx.rope.scaling.", 0) == 0 ||
         key == p + "rope.scale_linear" || key == p + "context_length";
}

bool dropped_tensor(const std::string& name) {
  for (const char* t : {"rope_freqs", "rope_factors_long", "rope_factors_short"})
    if (name == t || name == std::string(t) + ".weight") return true;
  return false;
}

int64_t rotary_dim(const GgufFile& in, const std::string& p) {
  if (auto v = in.get_int(p + "rope.dimension_count")) return *v;
  if (auto v = in.get_int(p + "attention.key_length")) return *v;
  const auto embd = in.get_int(p + "embedding_length");
  const auto heads = in.get_int(p + "attention.head_count");
  if (!embd || !heads || *heads <= 0)
    fail(in.path(), ": cannot tell the rotary dimension (no ", p, "rope.dimension_count, ", p,
         "embedding_length or ", p, "attention.head_count)");
  return *embd / *heads;
}

}  // namespace

void write_longrope_gguf(const std::string& in_path, const LongRopeFactors& f,
                         const std::string& out_path) {
  const auto in = GgufFile::open(in_path);
  const auto arch = in->get_str("general.architecture");
  if (!arch) fail(in_path, ": no general.architecture");
  const std::string p = *arch + ".";
  const int64_t pairs = rotary_dim(*in, p) / 2;
  if (static_cast<int64_t>(f.long_factors.size()) != pairs ||
      static_cast<int64_t>(f.short_factors.size()) != pairs)
    fail("the factor lists have ", f.long_factors.size(), " / ", f.short_factors.size(),
         " entries; the model ", in_path, " has ", pairs, " rotary frequency pairs");
  if (std::filesystem::exists(out_path) &&
      std::filesystem::equivalent(std::filesystem::path(in_path), std::filesystem::path(out_path)))
    fail("the output GGUF ", out_path, " is the input file; write to another file");

  GgufStreamWriter w;
  w.set_alignment(in->alignment());
  for (const auto& [key, v] : in->metadata()) {
    if (key == "general.alignment" || dropped_key(key, p)) continue;
    w.set(key, v);
  }
  w.set(p + "context_length", GgufValue::of_u32(static_cast<uint32_t>(f.target)));
  w.set(p + "rope.scaling.type", GgufValue::of_str("longrope"));
  w.set(p + "rope.scaling.attn_factor", GgufValue::of_f32(static_cast<float>(f.attn_factor)));
  w.set(p + "rope.scaling.original_context_length",
        GgufValue::of_u32(static_cast<uint32_t>(f.orig_ctx)));
  // llama.cpp has no key for these; it ignores them (n_hat 0, one attention factor).
  if (f.n_hat > 0)
    w.set("longctx.rope.scaling.n_hat", GgufValue::of_u32(static_cast<uint32_t>(f.n_hat)));
  if (f.short_attn_factor)
    w.set("longctx.rope.scaling.short_attn_factor",
          GgufValue::of_f32(static_cast<float>(*f.short_attn_factor)));
  std::vector<const GgufTensor*> kept;
  for (const GgufTensor& t : in->tensors()) {
    if (dropped_tensor(t.name)) continue;
    w.add_tensor_info(t.name, t.ne, t.type);
    kept.push_back(&t);
  }
  w.add_tensor_info("rope_factors_long.weight", {pairs}, TensorType::F32);
  w.add_tensor_info("rope_factors_short.weight", {pairs}, TensorType::F32);
  w.begin(out_path);
  for (const GgufTensor* t : kept) w.write(t->data, static_cast<size_t>(t->nbytes));
  w.write(f.long_factors.data(), f.long_factors.size() * sizeof(float));
  w.write(f.short_factors.data(), f.short_factors.size() * sizeof(float));
  w.finish();
}

}  // namespace lc::eval
