// Where RoPE settings come from: GGUF, config.json, CLI overrides, precedence, validation and the
// diagnostics text.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "app/setting_flags.h"
#include "core/error.h"
#include "core/gguf.h"
#include "model/rope/rope_config.h"

namespace lc {
namespace {

namespace fs = std::filesystem;
using app::rope_flags_help;
using app::rope_parse_flag;

// A fresh temporary directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int n = 0;
    path_ = fs::temp_directory_path() /
            ("lc_rope_config_" + std::to_string(getpid()) + "_" + std::to_string(n++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = (path_ / name).string();
    std::ofstream(p) << text;
    return p;
  }

 private:
  fs::path path_;
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR_HAS(stmt, ...)                                                               \
  do {                                                                                            \
    const std::string msg_ = error_of([&] { stmt; });                                             \
    for (const std::string& part_ : std::initializer_list<std::string>{__VA_ARGS__})              \
      EXPECT_NE(msg_.find(part_), std::string::npos) << "missing '" << part_ << "' in: " << msg_; \
  } while (0)

bool has_line(const std::vector<std::string>& lines, const std::string& needle) {
  for (const auto& l : lines)
    if (l.find(needle) != std::string::npos) return true;
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::shared_ptr<GgufFile> open(const GgufWriter& w, const std::string& name = "test.gguf") {
  return GgufFile::from_bytes(w.to_bytes(), name);
}

GgufWriter llama_writer(uint32_t ctx = 4096, uint32_t dim = 64) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_str("llama"));
  w.set("llama.context_length", GgufValue::of_u32(ctx));
  w.set("llama.rope.dimension_count", GgufValue::of_u32(dim));
  w.set("llama.rope.freq_base", GgufValue::of_f32(10000.0f));
  return w;
}

std::vector<float> ones(size_t n, float v = 1.0f) { return std::vector<float>(n, v); }

std::string list_json(size_t n, double v) {
  std::string s = "[";
  for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v + 0.01 * i);
  return s + "]";
}

// ---------------------------------------------------------------------------------------------
// GGUF

TEST(RopeGguf, DeepseekCoderIsLinearX4) {
  auto f = GgufFile::open(std::string(LONGCTX_SHARED_DIR) +
                          "/models/vocab/ggml-vocab-deepseek-coder.gguf");
  RopeSettings s = rope_from_gguf(*f, "llama", 128, RopeLayout::Adjacent);
  EXPECT_EQ(s.method, RopeMethod::Linear);
  EXPECT_EQ(s.factor, 4.0);
  EXPECT_EQ(s.orig_ctx, 16384);
  EXPECT_EQ(s.max_pos, 16384);
  EXPECT_EQ(s.base, 100000.0);
  EXPECT_EQ(s.dim, 128);
  EXPECT_EQ(s.source["method"], "gguf:llama.rope.scaling.type");
  EXPECT_EQ(s.source["factor"], "gguf:llama.rope.scaling.factor");
  EXPECT_EQ(s.source["orig_ctx"], "gguf:llama.context_length");
  EXPECT_EQ(s.source["base"], "gguf:llama.rope.freq_base");
  EXPECT_EQ(s.source["dim"], "gguf:llama.rope.dimension_count");
  EXPECT_NO_THROW(rope_validate(s));
  EXPECT_EQ(rope_summary(s), "linear x4, original context 16384");
  auto d = rope_describe(s);
  EXPECT_EQ(d.at(0), "linear x4, original context 16384");
  EXPECT_TRUE(has_line(d, "factor: 4 (gguf:llama.rope.scaling.factor)")) << joined(d);
  EXPECT_TRUE(has_line(d, "freq_base: 100000 (gguf:llama.rope.freq_base)")) << joined(d);
  // Scaled already: no warning past the trained context.
  EXPECT_FALSE(rope_context_warning(s, 16384, 65536));
}

TEST(RopeGguf, Phi3VocabHasOriginalContextKey) {
  auto f = GgufFile::open(std::string(LONGCTX_SHARED_DIR) + "/models/vocab/ggml-vocab-phi-3.gguf");
  RopeSettings s = rope_from_gguf(*f, "phi3", 96, RopeLayout::SplitHalf);
  EXPECT_EQ(s.method, RopeMethod::None);
  EXPECT_EQ(s.dim, 96);
  EXPECT_EQ(s.layout, RopeLayout::SplitHalf);
  EXPECT_EQ(s.orig_ctx, 4096);
  EXPECT_EQ(s.source["orig_ctx"], "gguf:phi3.rope.scaling.original_context_length");
  EXPECT_EQ(s.source["factor"], "default");
  EXPECT_EQ(rope_summary(s), "none");
}

TEST(RopeGguf, DefaultsWhenKeysAreMissing) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_str("llama"));
  RopeSettings s = rope_from_gguf(*open(w), "llama", 8, RopeLayout::Adjacent);
  EXPECT_EQ(s.method, RopeMethod::None);
  EXPECT_EQ(s.base, 10000.0);
  EXPECT_EQ(s.dim, 8);
  EXPECT_EQ(s.orig_ctx, 0);
  for (const char* k : {"method", "base", "dim", "factor", "orig_ctx"})
    EXPECT_EQ(s.source[k], "default") << k;
}

TEST(RopeGguf, YarnKeys) {
  GgufWriter w = llama_writer(131072, 128);
  w.set("llama.rope.scaling.type", GgufValue::of_str("yarn"));
  w.set("llama.rope.scaling.factor", GgufValue::of_f32(4.0f));
  w.set("llama.rope.scaling.original_context_length", GgufValue::of_u32(32768));
  w.set("llama.rope.scaling.attn_factor", GgufValue::of_f32(1.5f));
  w.set("llama.rope.scaling.yarn_beta_fast", GgufValue::of_f32(16.0f));
  w.set("llama.rope.scaling.yarn_beta_slow", GgufValue::of_f32(2.0f));
  w.set("llama.rope.scaling.yarn_ext_factor", GgufValue::of_f32(0.5f));
  w.set("llama.rope.scaling.yarn_attn_factor", GgufValue::of_f32(2.0f));
  w.set("llama.rope.scaling.yarn_log_multiplier", GgufValue::of_f32(0.0707f));
  w.set("llama.rope.scaling.finetuned", GgufValue::of_bool(true));
  RopeSettings s = rope_from_gguf(*open(w), "llama", 128, RopeLayout::Adjacent);
  EXPECT_EQ(s.method, RopeMethod::Yarn);
  EXPECT_EQ(s.factor, 4.0);
  EXPECT_EQ(s.orig_ctx, 32768);
  EXPECT_EQ(s.max_pos, 131072);
  EXPECT_EQ(s.source["orig_ctx"], "gguf:llama.rope.scaling.original_context_length");
  EXPECT_EQ(s.source["max_pos"], "gguf:llama.context_length");
  EXPECT_EQ(s.beta_fast, 16.0);
  EXPECT_EQ(s.beta_slow, 2.0);
  EXPECT_EQ(s.ext_factor, 0.5);
  EXPECT_EQ(s.source["ext_factor"], "gguf:llama.rope.scaling.yarn_ext_factor");
  // llama.cpp: for YaRN both attn_factor keys multiply the derived 0.1 ln s + 1.
  EXPECT_FALSE(s.attn_factor);
  EXPECT_EQ(s.attn_mult, 3.0);
  EXPECT_EQ(s.source["attn_mult"],
            "gguf:llama.rope.scaling.yarn_attn_factor * gguf:llama.rope.scaling.attn_factor");
  EXPECT_NEAR(rope_attn_factor(s), 3.0 * (0.1 * std::log(4.0) + 1), 1e-6);  // any ext_factor != 0
  ASSERT_TRUE(s.yarn_log_mul);
  ASSERT_TRUE(s.finetuned);
  EXPECT_TRUE(*s.finetuned);
  EXPECT_NO_THROW(rope_validate(s));
  auto d = rope_describe(s);
  EXPECT_TRUE(has_line(d, "beta_fast: 16 (gguf:llama.rope.scaling.yarn_beta_fast)")) << joined(d);
  EXPECT_TRUE(has_line(d, "yarn_log_multiplier")) << joined(d);
  EXPECT_TRUE(has_line(d, "finetuned with this scaling: yes")) << joined(d);
  EXPECT_EQ(rope_summary(s), "yarn x4, original context 32768, attention factor 3.415888308");
}

TEST(RopeGguf, LegacyScaleLinearAndTypeDefaults) {
  GgufWriter w = llama_writer();
  w.set("llama.rope.scale_linear", GgufValue::of_f32(2.0f));
  RopeSettings s = rope_from_gguf(*open(w), "llama", 64, RopeLayout::Adjacent);
  EXPECT_EQ(s.method, RopeMethod::Linear);
  EXPECT_EQ(s.factor, 2.0);
  EXPECT_EQ(s.source["factor"], "gguf:llama.rope.scale_linear");
  EXPECT_EQ(s.source["method"], "gguf:llama.rope.scale_linear");

  // A factor of 0 means "not set" in llama.cpp files.
  GgufWriter z = llama_writer();
  z.set("llama.rope.scaling.factor", GgufValue::of_f32(0.0f));
  RopeSettings sz = rope_from_gguf(*open(z), "llama", 64, RopeLayout::Adjacent);
  EXPECT_EQ(sz.method, RopeMethod::None);
  EXPECT_EQ(sz.factor, 1.0);

  // "none" with a factor stays none.
  GgufWriter n = llama_writer();
  n.set("llama.rope.scaling.type", GgufValue::of_str("none"));
  n.set("llama.rope.scaling.factor", GgufValue::of_f32(1.0f));
  EXPECT_EQ(rope_from_gguf(*open(n), "llama", 64, RopeLayout::Adjacent).method, RopeMethod::None);

  // Extra types accepted: dynamic, ntk, llama3.
  for (const char* t : {"dynamic", "ntk", "llama3", "longrope", "linear"}) {
    GgufWriter x = llama_writer();
    x.set("llama.rope.scaling.type", GgufValue::of_str(t));
    EXPECT_STREQ(
        rope_method_name(rope_from_gguf(*open(x), "llama", 64, RopeLayout::Adjacent).method), t);
  }
}

TEST(RopeGguf, Tensors) {
  GgufWriter w = llama_writer(131072, 96);
  w.set("llama.rope.scaling.original_context_length", GgufValue::of_u32(4096));
  w.set("llama.rope.scaling.attn_factor", GgufValue::of_f32(1.19f));
  w.add_tensor_f32("rope_factors_long.weight", {48}, ones(48, 3.0f));
  w.add_tensor_f32("rope_factors_short.weight", {48}, ones(48, 1.5f));
  RopeSettings s = rope_from_gguf(*open(w), "llama", 96, RopeLayout::SplitHalf);
  EXPECT_EQ(s.method, RopeMethod::LongRope);  // lists alone select LongRoPE, as in llama.cpp
  EXPECT_EQ(s.source["method"], "gguf:tensor rope_factors_long.weight");
  EXPECT_EQ(s.long_factors, ones(48, 3.0f));
  EXPECT_EQ(s.short_factors, ones(48, 1.5f));
  EXPECT_EQ(s.source["short_factors"], "gguf:tensor rope_factors_short.weight");
  EXPECT_NO_THROW(rope_validate(s));
  EXPECT_NEAR(rope_table(s, 5000).inv_freq[0], 1.0 / 3.0, 1e-7);
  EXPECT_NEAR(rope_table(s, 4096).inv_freq[0], 1.0 / 1.5, 1e-7);

  // A "linear" type with factor 1 (llama.cpp's default type) does not hide the lists.
  w.set("llama.rope.scaling.type", GgufValue::of_str("linear"));
  EXPECT_EQ(rope_from_gguf(*open(w), "llama", 96, RopeLayout::SplitHalf).method,
            RopeMethod::LongRope);

  GgufWriter r = llama_writer(131072, 128);
  std::vector<float> div(64);
  for (int i = 0; i < 64; ++i) div[i] = 1.0f + i * 0.125f;
  r.add_tensor_f32("rope_freqs.weight", {64}, div);
  RopeSettings sr = rope_from_gguf(*open(r), "llama", 128, RopeLayout::Adjacent);
  EXPECT_EQ(sr.method, RopeMethod::None);
  EXPECT_EQ(sr.freq_divisors, div);
  EXPECT_EQ(sr.source["freq_divisors"], "gguf:tensor rope_freqs.weight");
  EXPECT_NEAR(rope_table(sr, 1).inv_freq[63], std::pow(1e4, -126.0 / 128) / div[63], 1e-12);
  EXPECT_TRUE(
      has_line(rope_describe(sr), "rope_freqs: 64 divisors (gguf:tensor rope_freqs.weight)"));
}

TEST(RopeGguf, Errors) {
  GgufWriter bad_type = llama_writer();
  bad_type.set("llama.rope.scaling.type", GgufValue::of_str("cubic"));
  EXPECT_ERROR_HAS(rope_from_gguf(*open(bad_type), "llama", 64, RopeLayout::Adjacent), "test.gguf",
                   "llama.rope.scaling.type = 'cubic'", "expected one of none, linear");

  GgufWriter short_list = llama_writer(131072, 96);
  short_list.add_tensor_f32("rope_factors_long.weight", {40}, ones(40));
  EXPECT_ERROR_HAS(rope_from_gguf(*open(short_list), "llama", 96, RopeLayout::Adjacent),
                   "rope_factors_long.weight has 40 elements", "(rope dimension 96 / 2 = 48)");

  GgufWriter zero = llama_writer();
  std::vector<float> z = ones(32);
  z[5] = 0.0f;
  zero.add_tensor_f32("rope_freqs.weight", {32}, z);
  EXPECT_ERROR_HAS(rope_from_gguf(*open(zero), "llama", 64, RopeLayout::Adjacent),
                   "rope_freqs.weight entry 5 is 0", "expected a finite number > 0");

  GgufWriter both = llama_writer();
  both.set("llama.rope.scaling.type", GgufValue::of_str("llama3"));
  both.add_tensor_f32("rope_freqs.weight", {32}, ones(32, 2.0f));
  EXPECT_ERROR_HAS(rope_from_gguf(*open(both), "llama", 64, RopeLayout::Adjacent),
                   "'llama3' together with gguf:tensor rope_freqs.weight");

  GgufWriter dim = llama_writer(4096, 96);
  EXPECT_ERROR_HAS(rope_from_gguf(*open(dim), "llama", 64, RopeLayout::Adjacent),
                   "llama.rope.dimension_count = 96", "head dimension 64");

  GgufWriter neg = llama_writer();
  neg.set("llama.rope.scaling.factor", GgufValue::of_f32(-2.0f));
  EXPECT_ERROR_HAS(rope_from_gguf(*open(neg), "llama", 64, RopeLayout::Adjacent),
                   "llama.rope.scaling.factor = -2", "expected a scale factor > 0");

  GgufWriter wrong_kind = llama_writer();
  wrong_kind.set("llama.rope.scaling.type", GgufValue::of_u32(3));
  EXPECT_THROW(rope_from_gguf(*open(wrong_kind), "llama", 64, RopeLayout::Adjacent), Error);
}

// ---------------------------------------------------------------------------------------------
// config.json

RopeSettings from_config(const std::string& json, int head_dim = 64) {
  RopeSettings s = rope_defaults(head_dim, RopeLayout::Adjacent);
  rope_apply_hf_config_text(s, json, "config.json");
  return s;
}

TEST(RopeHfConfig, LegacyTypeKey) {
  RopeSettings s = from_config(R"({"rope_theta": 100000, "max_position_embeddings": 16384,
      "hidden_size": 4096, "num_attention_heads": 32,
      "rope_scaling": {"type": "linear", "factor": 4.0}})",
                               128);
  EXPECT_EQ(s.method, RopeMethod::Linear);
  EXPECT_EQ(s.factor, 4.0);
  EXPECT_EQ(s.base, 1e5);
  EXPECT_EQ(s.orig_ctx, 16384);
  EXPECT_EQ(s.dim, 128);
  EXPECT_EQ(s.source["method"], "config.json:rope_scaling.type");
  EXPECT_EQ(s.source["factor"], "config.json:rope_scaling.factor");
  EXPECT_EQ(s.source["base"], "config.json:rope_theta");
  EXPECT_EQ(s.source["orig_ctx"], "config.json:max_position_embeddings");
  EXPECT_EQ(s.source["head_dim"], "config.json:hidden_size/num_attention_heads");
  EXPECT_EQ(s.hf_config, "config.json");
  EXPECT_FALSE(s.hf_rope_scaling_null);
}

TEST(RopeHfConfig, RopeTypeKeyWinsOverType) {
  RopeSettings s = from_config(
      R"({"max_position_embeddings": 4096,
          "rope_scaling": {"rope_type": "dynamic", "type": "linear", "factor": 2.0}})");
  EXPECT_EQ(s.method, RopeMethod::DynamicNtk);
  EXPECT_EQ(s.source["method"], "config.json:rope_scaling.rope_type");
  RopeSettings d = from_config(R"({"rope_scaling": {"rope_type": "default"}})");
  EXPECT_EQ(d.method, RopeMethod::None);
}

TEST(RopeHfConfig, NullIsRecordedAndMissingKeepsLowerSource) {
  RopeSettings s = from_config(R"({"max_position_embeddings": 32768, "rope_scaling": null})");
  EXPECT_TRUE(s.hf_rope_scaling_null);
  EXPECT_EQ(s.method, RopeMethod::None);
  EXPECT_EQ(s.source["method"], "config.json:rope_scaling (null)");
  EXPECT_TRUE(has_line(rope_describe(s), "rope_scaling is null in config.json"));

  // null replaces a GGUF scaling; a missing key keeps it.
  auto f = GgufFile::open(std::string(LONGCTX_SHARED_DIR) +
                          "/models/vocab/ggml-vocab-deepseek-coder.gguf");
  RopeSettings g = rope_from_gguf(*f, "llama", 128, RopeLayout::Adjacent);
  rope_apply_hf_config_text(g, R"({"rope_scaling": null})", "config.json");
  EXPECT_EQ(g.method, RopeMethod::None);
  EXPECT_EQ(g.factor, 1.0);
  RopeSettings m = rope_from_gguf(*f, "llama", 128, RopeLayout::Adjacent);
  rope_apply_hf_config_text(m, R"({"rope_theta": 100000})", "config.json");
  EXPECT_FALSE(m.hf_rope_scaling_null);
  EXPECT_EQ(m.method, RopeMethod::Linear);
  EXPECT_EQ(m.factor, 4.0);
  EXPECT_EQ(m.source["method"], "gguf:llama.rope.scaling.type");
  EXPECT_EQ(m.source["base"], "config.json:rope_theta");
}

TEST(RopeHfConfig, Phi3LongRope) {
  const std::string cfg = R"({"hidden_size": 3072, "num_attention_heads": 32,
      "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
      "rope_theta": 10000.0,
      "rope_scaling": {"type": "longrope", "long_factor": )" +
                          list_json(48, 1.0) + R"(, "short_factor": )" + list_json(48, 1.05) + "}}";
  RopeSettings s = from_config(cfg, 96);
  EXPECT_EQ(s.method, RopeMethod::LongRope);
  EXPECT_EQ(s.orig_ctx, 4096);
  EXPECT_EQ(s.max_pos, 131072);
  EXPECT_EQ(s.source["orig_ctx"], "config.json:original_max_position_embeddings");
  EXPECT_EQ(s.source["long_factors"], "config.json:rope_scaling.long_factor");
  ASSERT_EQ(s.long_factors.size(), 48u);
  EXPECT_FLOAT_EQ(s.long_factors[47], 1.47f);
  EXPECT_FLOAT_EQ(s.short_factors[0], 1.05f);
  EXPECT_NO_THROW(rope_validate(s));
  EXPECT_NEAR(rope_table(s, 100).attn_factor, 1.1902380714, 1e-6);

  // Legacy "su".
  std::string su = cfg;
  su.replace(su.find("\"longrope\""), 10, "\"su\"");
  EXPECT_EQ(from_config(su, 96).method, RopeMethod::LongRope);

  // Wrong length: reported by validation with the key, the count and the expectation.
  const std::string bad = R"({"hidden_size": 3072, "num_attention_heads": 32,
      "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
      "rope_scaling": {"type": "longrope", "long_factor": )" +
                          list_json(47, 1.0) + R"(, "short_factor": )" + list_json(48, 1.0) + "}}";
  RopeSettings b = from_config(bad, 96);
  EXPECT_ERROR_HAS(rope_validate(b), "LongRoPE long_factor", "config.json:rope_scaling.long_factor",
                   "has 47 entries", "rotary dimension 96 / 2 = 48");
  // A list entry that is not a number.
  EXPECT_ERROR_HAS(
      from_config(R"({"rope_scaling": {"type": "longrope", "long_factor": [1, "x"]}})"),
      "rope_scaling.long_factor[1] = \"x\" is not a number");
  // Only one list.
  RopeSettings one = from_config(R"({"max_position_embeddings": 4096,
      "rope_scaling": {"type": "longrope", "long_factor": )" +
                                 list_json(32, 1.0) + "}}");
  EXPECT_ERROR_HAS(rope_validate(one), "needs both factor lists", "short_factor is missing");
}

TEST(RopeHfConfig, Llama31) {
  RopeSettings s = from_config(R"({"hidden_size": 4096, "num_attention_heads": 32,
      "max_position_embeddings": 131072, "rope_theta": 500000.0,
      "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"}})",
                               128);
  EXPECT_EQ(s.method, RopeMethod::Llama3);
  EXPECT_EQ(s.factor, 8.0);
  EXPECT_EQ(s.orig_ctx, 8192);
  EXPECT_EQ(s.max_pos, 131072);
  EXPECT_EQ(s.base, 5e5);
  EXPECT_EQ(s.low_freq_factor, 1.0);
  EXPECT_EQ(s.high_freq_factor, 4.0);
  EXPECT_EQ(s.source["orig_ctx"], "config.json:rope_scaling.original_max_position_embeddings");
  EXPECT_EQ(s.source["high_freq_factor"], "config.json:rope_scaling.high_freq_factor");
  EXPECT_NO_THROW(rope_validate(s));
  EXPECT_EQ(rope_summary(s), "llama3 x8, original context 8192");
}

TEST(RopeHfConfig, Llama3ReplacesGgufRopeFreqs) {
  GgufWriter r = llama_writer(131072, 128);
  r.add_tensor_f32("rope_freqs.weight", {64}, ones(64, 2.0f));
  RopeSettings s = rope_from_gguf(*open(r), "llama", 128, RopeLayout::Adjacent);
  rope_apply_hf_config_text(s, R"({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
      "original_max_position_embeddings": 8192}})",
                            "config.json");
  EXPECT_TRUE(s.freq_divisors.empty());  // never both
  EXPECT_NE(s.source["freq_divisors"].find("dropped"), std::string::npos);
  EXPECT_TRUE(has_line(rope_describe(s), "rope_freqs: dropped"));
  EXPECT_NO_THROW(rope_validate(s));
}

TEST(RopeHfConfig, InternLM2Dynamic) {
  RopeSettings s = from_config(R"({"hidden_size": 4096, "num_attention_heads": 32,
      "max_position_embeddings": 32768, "rope_theta": 1000000,
      "rope_scaling": {"type": "dynamic", "factor": 2.0}})",
                               128);
  EXPECT_EQ(s.method, RopeMethod::DynamicNtk);
  EXPECT_EQ(s.factor, 2.0);
  EXPECT_EQ(s.orig_ctx, 32768);
  EXPECT_NO_THROW(rope_validate(s));
  EXPECT_TRUE(rope_depends_on_length(s));
  EXPECT_EQ(rope_table(s, 32768), rope_table(s, 100));
  EXPECT_NE(rope_table(s, 65536), rope_table(s, 100));
}

TEST(RopeHfConfig, YarnWithMscale) {
  RopeSettings s = from_config(R"({"head_dim": 64, "max_position_embeddings": 163840,
      "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                       "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.5}})");
  EXPECT_EQ(s.method, RopeMethod::Yarn);
  EXPECT_EQ(s.orig_ctx, 4096);
  EXPECT_EQ(s.source["mscale"], "config.json:rope_scaling.mscale");
  const double want = (0.1 * std::log(40.0) + 1) / (0.05 * std::log(40.0) + 1);
  EXPECT_NEAR(rope_table(s, 1).attn_factor, want, 1e-6);
  RopeSettings q = from_config(R"({"max_position_embeddings": 32768,
      "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "attention_factor": 1.2,
                       "original_max_position_embeddings": 32768}})");
  EXPECT_NEAR(rope_table(q, 1).attn_factor, 1.2, 1e-6);
  EXPECT_EQ(q.source["attn_factor"], "config.json:rope_scaling.attention_factor");
}

TEST(RopeHfConfig, HeadDimAndPartialRotary) {
  RopeSettings s = from_config(R"({"hidden_size": 2560, "num_attention_heads": 32,
      "partial_rotary_factor": 0.4})",
                               80);
  EXPECT_EQ(s.head_dim, 80);
  EXPECT_EQ(s.dim, 32);
  EXPECT_EQ(s.source["dim"], "config.json:partial_rotary_factor");
  EXPECT_EQ(rope_table(s, 1).inv_freq.size(), 16u);
  EXPECT_ERROR_HAS(from_config(R"({"head_dim": 128})", 64), "head dimension 128",
                   "config.json:head_dim", "model's head dimension 64");
  EXPECT_ERROR_HAS(from_config(R"({"partial_rotary_factor": 1.5})"), "partial_rotary_factor = 1.5",
                   "expected 0 < value <= 1");
}

TEST(RopeHfConfig, Errors) {
  EXPECT_ERROR_HAS(from_config("{not json"), "config.json: not valid JSON");
  EXPECT_ERROR_HAS(from_config("[1, 2]"), "expected a JSON object");
  EXPECT_ERROR_HAS(from_config(R"({"rope_scaling": {"type": "cubic", "factor": 2}})"),
                   "rope_scaling.type = \"cubic\"", "expected one of default, linear, dynamic");
  EXPECT_ERROR_HAS(from_config(R"({"rope_scaling": {"factor": 2}})"),
                   "neither \"rope_type\" nor \"type\"");
  EXPECT_ERROR_HAS(from_config(R"({"rope_scaling": {"type": "linear", "factor": "four"}})"),
                   "rope_scaling.factor = \"four\" is not a number");
  EXPECT_ERROR_HAS(from_config(R"({"rope_scaling": 4})"), "rope_scaling = 4 is not an object");
  EXPECT_ERROR_HAS(from_config(R"({"max_position_embeddings": 4096.5})"),
                   "max_position_embeddings = 4096.5 is not an integer");
  RopeSettings s = rope_defaults(64, RopeLayout::Adjacent);
  EXPECT_ERROR_HAS(rope_apply_hf_config(s, "/nonexistent/config.json"),
                   "cannot open config.json /nonexistent/config.json");
}

// ---------------------------------------------------------------------------------------------
// CLI overrides and precedence

TEST(RopeOverrides, ParseFlags) {
  RopeOverrides o;
  EXPECT_TRUE(o.empty());
  EXPECT_TRUE(rope_parse_flag(o, "--rope-scaling", "yarn"));
  EXPECT_TRUE(rope_parse_flag(o, "--rope-scale", "4"));
  EXPECT_TRUE(rope_parse_flag(o, "--rope-freq-base", "500000"));
  EXPECT_TRUE(rope_parse_flag(o, "--yarn-orig-ctx", "512"));
  EXPECT_TRUE(rope_parse_flag(o, "--yarn-ext-factor", "-1"));
  EXPECT_TRUE(rope_parse_flag(o, "--yarn-attn-factor", "1.0"));
  EXPECT_TRUE(rope_parse_flag(o, "--yarn-beta-fast", "16"));
  EXPECT_TRUE(rope_parse_flag(o, "--yarn-beta-slow", "2"));
  EXPECT_TRUE(rope_parse_flag(o, "--rope-factors", "f.json"));
  EXPECT_FALSE(rope_parse_flag(o, "--threads", "4"));
  EXPECT_FALSE(o.empty());
  EXPECT_EQ(*o.scaling, "yarn");
  EXPECT_EQ(*o.scale, 4.0);
  EXPECT_EQ(*o.yarn_orig_ctx, 512);
  EXPECT_NE(std::string(rope_flags_help()).find("--yarn-orig-ctx"), std::string::npos);

  EXPECT_ERROR_HAS(rope_parse_flag(o, "--rope-scaling", "cubic"), "--rope-scaling 'cubic'",
                   "expected one of none, linear, yarn, dynamic, ntk, llama3, longrope");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--rope-scale", "abc"), "--rope-scale 'abc'",
                   "expected a number");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--rope-scale", "0"), "--rope-scale '0'", "> 0");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--rope-scale", "4x"), "expected a number");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--rope-freq-scale", "-1"), "--rope-freq-scale '-1'");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--rope-freq-base", "0"), "--rope-freq-base '0'");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--yarn-orig-ctx", "5.5"), "--yarn-orig-ctx '5.5'",
                   "expected an integer");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--yarn-orig-ctx", "-3"), "expected a context length >= 0");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--yarn-ext-factor", "-0.5"), "expected a number >= 0");
  EXPECT_ERROR_HAS(rope_parse_flag(o, "--yarn-attn-factor", "0"), "--yarn-attn-factor '0'");
}

TEST(RopeOverrides, ScaleAloneMeansLinearAndFreqScaleIsInverse) {
  RopeSettings s = rope_defaults(64, RopeLayout::Adjacent);
  RopeOverrides o;
  o.freq_scale = 0.25;
  rope_apply_overrides(s, o);
  EXPECT_EQ(s.method, RopeMethod::Linear);
  EXPECT_EQ(s.factor, 4.0);
  EXPECT_EQ(s.source["factor"], "setting:rope.freq_scale");
  EXPECT_EQ(s.source["method"], "setting:rope.freq_scale");
  RopeOverrides c;
  c.scale = 2;
  c.freq_scale = 0.25;
  EXPECT_ERROR_HAS(rope_apply_overrides(s, c),
                   "rope.scale = 2 and rope.freq_scale = 0.25 disagree");
  c.freq_scale = 0.5;
  EXPECT_NO_THROW(rope_apply_overrides(s, c));
  EXPECT_EQ(s.factor, 2.0);
}

TEST(RopeOverrides, YarnFlagsOnPlainModel) {
  // The passkey model's documented fix: --rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 512.
  auto f = GgufFile::open(std::string(LONGCTX_SHARED_DIR) + "/models/passkey-llama-tiny.gguf");
  RopeOverrides o;
  rope_parse_flag(o, "--rope-scaling", "yarn");
  rope_parse_flag(o, "--rope-scale", "4");
  rope_parse_flag(o, "--yarn-orig-ctx", "512");
  RopeSettings s = rope_resolve(f.get(), "llama", 32, RopeLayout::Adjacent, "", o);
  EXPECT_EQ(s.method, RopeMethod::Yarn);
  EXPECT_EQ(s.factor, 4.0);
  EXPECT_EQ(s.orig_ctx, 512);
  EXPECT_EQ(s.source["method"], "cli:--rope-scaling");
  EXPECT_EQ(s.source["factor"], "cli:--rope-scale");
  EXPECT_EQ(s.source["orig_ctx"], "cli:--yarn-orig-ctx");
  EXPECT_EQ(s.source["base"], "gguf:llama.rope.freq_base");
  EXPECT_EQ(rope_summary(s), "yarn x4, original context 512, attention factor 1.138629436");
  // Without --yarn-orig-ctx the file's context length is used (as in llama.cpp).
  RopeOverrides p;
  rope_parse_flag(p, "--rope-scaling", "yarn");
  rope_parse_flag(p, "--rope-scale", "4");
  RopeSettings t = rope_resolve(f.get(), "llama", 32, RopeLayout::Adjacent, "", p);
  EXPECT_EQ(t.orig_ctx, 512);
  EXPECT_EQ(t.source["orig_ctx"], "gguf:llama.context_length");
}

TEST(RopeOverrides, PrecedenceCliOverConfigOverGguf) {
  TempDir dir;
  GgufWriter w = llama_writer(8192, 64);
  w.set("llama.rope.scaling.type", GgufValue::of_str("yarn"));
  w.set("llama.rope.scaling.factor", GgufValue::of_f32(2.0f));
  w.set("llama.rope.scaling.original_context_length", GgufValue::of_u32(4096));
  w.set("llama.rope.scaling.yarn_beta_fast", GgufValue::of_f32(24.0f));
  auto f = open(w);
  const std::string cfg = dir.write("config.json", R"({"rope_theta": 500000,
      "max_position_embeddings": 8192,
      "rope_scaling": {"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 2048}})");

  // GGUF only.
  RopeSettings g = rope_resolve(f.get(), "llama", 64, RopeLayout::Adjacent, "", {});
  EXPECT_EQ(g.factor, 2.0);
  EXPECT_EQ(g.beta_fast, 24.0);
  EXPECT_EQ(g.source["factor"], "gguf:llama.rope.scaling.factor");

  // config.json over GGUF; same method, so GGUF parameters config.json does not set stay.
  RopeSettings c = rope_resolve(f.get(), "llama", 64, RopeLayout::Adjacent, cfg, {});
  EXPECT_EQ(c.factor, 8.0);
  EXPECT_EQ(c.base, 5e5);
  EXPECT_EQ(c.orig_ctx, 2048);
  EXPECT_EQ(c.beta_fast, 24.0);
  EXPECT_EQ(c.source["factor"], "config.json:rope_scaling.factor");
  EXPECT_EQ(c.source["base"], "config.json:rope_theta");
  EXPECT_EQ(c.source["beta_fast"], "gguf:llama.rope.scaling.yarn_beta_fast");
  EXPECT_EQ(c.hf_config, cfg);

  // CLI over both.
  RopeOverrides o;
  o.scale = 16;
  o.yarn_beta_fast = 40;
  o.freq_base = 1e6;
  RopeSettings x = rope_resolve(f.get(), "llama", 64, RopeLayout::Adjacent, cfg, o);
  EXPECT_EQ(x.factor, 16.0);
  EXPECT_EQ(x.beta_fast, 40.0);
  EXPECT_EQ(x.base, 1e6);
  EXPECT_EQ(x.orig_ctx, 2048);
  EXPECT_EQ(x.method, RopeMethod::Yarn);
  EXPECT_EQ(x.source["factor"], "setting:rope.scale");
  EXPECT_EQ(x.source["base"], "setting:rope.freq_base");
  EXPECT_EQ(x.source["orig_ctx"], "config.json:rope_scaling.original_max_position_embeddings");
  EXPECT_EQ(x.source["method"], "config.json:rope_scaling.type");
  auto d = rope_describe(x);
  EXPECT_TRUE(has_line(d,
                       "original context: 2048 (config.json:rope_scaling."
                       "original_max_position_embeddings in " +
                           cfg + ")"))
      << joined(d);
  EXPECT_TRUE(has_line(d, "factor: 16 (setting:rope.scale)")) << joined(d);

  // A method change drops the other method's parameters (beta_fast back to its default).
  RopeOverrides lin;
  lin.scaling = "linear";
  RopeSettings l = rope_resolve(f.get(), "llama", 64, RopeLayout::Adjacent, cfg, lin);
  EXPECT_EQ(l.method, RopeMethod::Linear);
  EXPECT_EQ(l.factor, 8.0);  // kept: shared between methods, as llama.cpp keeps the model's
  EXPECT_EQ(l.beta_fast, 32.0);
  EXPECT_EQ(l.source["beta_fast"], "default");
}

TEST(RopeOverrides, FactorsFile) {
  TempDir dir;
  const std::string both =
      dir.write("f.json", "{\"long_factor\": " + list_json(16, 2.0) +
                              ", \"short_factor\": " + list_json(16, 1.0) + "}");
  const std::string short_keys = dir.write(
      "g.json", "{\"long\": " + list_json(16, 3.0) + ", \"short\": " + list_json(16, 1.5) + "}");
  const std::string only_long =
      dir.write("h.json", "{\"long_factor\": " + list_json(16, 4.0) + "}");
  const std::string none = dir.write("i.json", "{\"other\": 1}");
  const std::string wrong = dir.write("j.json", "{\"long_factor\": " + list_json(15, 4.0) + "}");

  RopeFactorLists l = rope_read_factors_file(short_keys);
  ASSERT_EQ(l.long_factors.size(), 16u);
  EXPECT_FLOAT_EQ(l.long_factors[0], 3.0f);
  EXPECT_FLOAT_EQ(l.short_factors[0], 1.5f);

  GgufWriter w = llama_writer(2048, 32);
  w.set("llama.rope.scaling.original_context_length", GgufValue::of_u32(512));
  auto f = open(w);
  RopeOverrides o;
  o.factors_file = both;
  RopeSettings s = rope_resolve(f.get(), "llama", 32, RopeLayout::Adjacent, "", o);
  EXPECT_EQ(s.method, RopeMethod::LongRope);
  EXPECT_EQ(s.source["method"], "setting:rope.factors");
  EXPECT_EQ(s.source["long_factors"], "setting:rope.factors " + both);
  EXPECT_FLOAT_EQ(s.long_factors[1], 2.01f);
  EXPECT_NEAR(rope_table(s, 513).inv_freq[1], std::pow(1e4, -2.0 / 32) / 2.01, 1e-7);

  o.factors_file = only_long;
  RopeSettings t = rope_resolve(f.get(), "llama", 32, RopeLayout::Adjacent, "", o);
  EXPECT_EQ(t.short_factors, ones(16));
  EXPECT_NE(t.source["short_factors"].find("ones"), std::string::npos);
  // Within the original context: plain RoPE.
  EXPECT_EQ(rope_table(t, 512).inv_freq,
            rope_table(rope_defaults(32, RopeLayout::Adjacent), 1).inv_freq);
  EXPECT_NE(rope_table(t, 513).inv_freq[0], 1.0f);

  o.factors_file = none;
  EXPECT_ERROR_HAS(rope_resolve(f.get(), "llama", 32, RopeLayout::Adjacent, "", o),
                   "rope.factors " + none, "no factor list found");
  o.factors_file = wrong;
  EXPECT_ERROR_HAS(rope_resolve(f.get(), "llama", 32, RopeLayout::Adjacent, "", o),
                   "LongRoPE long_factor (from setting:rope.factors", "has 15 entries", "16");
  o.factors_file = dir.write("bad.json", "{");
  EXPECT_ERROR_HAS(rope_resolve(f.get(), "llama", 32, RopeLayout::Adjacent, "", o),
                   "bad.json: not valid JSON");
}

TEST(RopeOverrides, CliLlama3DropsRopeFreqs) {
  GgufWriter r = llama_writer(8192, 64);
  r.add_tensor_f32("rope_freqs.weight", {32}, ones(32, 2.0f));
  RopeOverrides o;
  o.scaling = "llama3";
  o.scale = 8;
  RopeSettings s = rope_resolve(open(r).get(), "llama", 64, RopeLayout::Adjacent, "", o);
  EXPECT_TRUE(s.freq_divisors.empty());
  EXPECT_EQ(s.source["freq_divisors"],
            "dropped (setting:rope.scaling replaces gguf:tensor rope_freqs.weight)");
  // Another method keeps the model's rope_freqs (applied on top, as llama.cpp does).
  o.scaling = "linear";
  RopeSettings t = rope_resolve(open(r).get(), "llama", 64, RopeLayout::Adjacent, "", o);
  EXPECT_EQ(t.freq_divisors.size(), 32u);
}

// ---------------------------------------------------------------------------------------------
// Validation messages

RopeSettings valid(RopeMethod m) {
  RopeSettings s = rope_defaults(64, RopeLayout::Adjacent);
  s.method = m;
  s.source["method"] = "cli:--rope-scaling";
  s.factor = 4;
  s.source["factor"] = "cli:--rope-scale";
  s.orig_ctx = 2048;
  s.source["orig_ctx"] = "cli:--yarn-orig-ctx";
  if (m == RopeMethod::LongRope) {
    s.long_factors = ones(32, 2);
    s.short_factors = ones(32);
  }
  return s;
}

TEST(RopeValidate, EveryMethodValid) {
  for (RopeMethod m :
       {RopeMethod::None, RopeMethod::Linear, RopeMethod::DynamicNtk, RopeMethod::FixedNtk,
        RopeMethod::Yarn, RopeMethod::Llama3, RopeMethod::LongRope})
    EXPECT_NO_THROW(rope_validate(valid(m))) << rope_method_name(m);
}

TEST(RopeValidate, Messages) {
  RopeSettings s = valid(RopeMethod::Linear);
  s.dim = 63;
  s.source["dim"] = "gguf:llama.rope.dimension_count";
  EXPECT_ERROR_HAS(rope_validate(s), "rotary dimension 63", "gguf:llama.rope.dimension_count",
                   "expected a positive even number");
  s = valid(RopeMethod::Linear);
  s.dim = 128;
  EXPECT_ERROR_HAS(rope_validate(s), "rotary dimension 128", "larger than the head dimension 64");

  s = valid(RopeMethod::Linear);
  s.base = 0;
  s.source["base"] = "config.json:rope_theta";
  s.hf_config = "/m/config.json";
  EXPECT_ERROR_HAS(rope_validate(s), "freq_base 0", "config.json:rope_theta in /m/config.json",
                   "expected a number > 0");

  s = valid(RopeMethod::Linear);
  s.factor = -2;
  EXPECT_ERROR_HAS(rope_validate(s), "scaling factor -2", "cli:--rope-scale",
                   "expected a number > 0");

  for (RopeMethod m : {RopeMethod::Linear, RopeMethod::Yarn, RopeMethod::DynamicNtk,
                       RopeMethod::FixedNtk, RopeMethod::Llama3}) {
    s = valid(m);
    s.factor = 1;
    s.source["factor"] = "default";
    EXPECT_ERROR_HAS(rope_validate(s), "has no factor", "rope.scale", "rope_scaling.factor");
  }

  for (RopeMethod m :
       {RopeMethod::Yarn, RopeMethod::DynamicNtk, RopeMethod::Llama3, RopeMethod::LongRope}) {
    s = valid(m);
    s.orig_ctx = 0;
    EXPECT_ERROR_HAS(
        rope_validate(s), (std::string("RoPE scaling '") + rope_method_name(m) + "'").c_str(),
        "needs the original training context length, which is unknown", "rope.orig_ctx");
  }
  s = valid(RopeMethod::Linear);
  s.orig_ctx = 0;
  EXPECT_NO_THROW(rope_validate(s));  // linear does not need it

  s = valid(RopeMethod::Yarn);
  s.beta_fast = 1;
  s.source["beta_fast"] = "cli:--yarn-beta-fast";
  EXPECT_ERROR_HAS(rope_validate(s), "YaRN beta_fast 1 (from cli:--yarn-beta-fast)",
                   "must be greater than beta_slow 1");
  s = valid(RopeMethod::Yarn);
  s.beta_slow = 0;
  EXPECT_ERROR_HAS(rope_validate(s), "YaRN beta_slow 0", "expected a number > 0");
  s = valid(RopeMethod::Yarn);
  s.ext_factor = -1;
  EXPECT_ERROR_HAS(rope_validate(s), "YaRN ext_factor -1", "expected a number >= 0");

  s = valid(RopeMethod::Llama3);
  s.high_freq_factor = 1;
  EXPECT_ERROR_HAS(rope_validate(s), "llama3 high_freq_factor 1",
                   "must be greater than low_freq_factor 1");
  s = valid(RopeMethod::Llama3);
  s.low_freq_factor = 0;
  EXPECT_ERROR_HAS(rope_validate(s), "llama3 low_freq_factor 0", "expected a number > 0");
  s = valid(RopeMethod::Llama3);
  s.freq_divisors = ones(32);
  s.source["freq_divisors"] = "gguf:tensor rope_freqs.weight";
  EXPECT_ERROR_HAS(rope_validate(s),
                   "together with rope_freqs (from gguf:tensor rope_freqs.weight)");

  s = valid(RopeMethod::LongRope);
  s.short_factors = ones(31);
  s.source["short_factors"] = "gguf:tensor rope_factors_short.weight";
  EXPECT_ERROR_HAS(rope_validate(s), "LongRoPE short_factor (from gguf:tensor rope_factors_short",
                   "has 31 entries", "rotary dimension 64 / 2 = 32");
  s = valid(RopeMethod::LongRope);
  s.long_factors[7] = -1;
  EXPECT_ERROR_HAS(rope_validate(s), "LongRoPE long_factor", "entry 7 is -1");
  s = valid(RopeMethod::LongRope);
  s.long_factors.clear();
  EXPECT_ERROR_HAS(rope_validate(s), "needs both factor lists", "long_factor is missing");
  s = valid(RopeMethod::Yarn);
  s.long_factors = ones(32);
  EXPECT_ERROR_HAS(rope_validate(s), "LongRoPE factor lists", "RoPE scaling is 'yarn'");

  s = valid(RopeMethod::None);
  s.freq_divisors = ones(5);
  EXPECT_ERROR_HAS(rope_validate(s), "rope_freqs", "has 5 entries");

  s = valid(RopeMethod::Yarn);
  s.attn_factor = 0;
  EXPECT_ERROR_HAS(rope_validate(s), "attention factor 0", "expected a number > 0");
  s = valid(RopeMethod::Yarn);
  s.attn_mult = -1;
  EXPECT_ERROR_HAS(rope_validate(s), "attention factor multiplier -1");
  s = valid(RopeMethod::FixedNtk);
  s.dim = 2;
  s.head_dim = 2;
  EXPECT_ERROR_HAS(rope_validate(s), "'ntk' needs a rotary dimension > 2");
}

// ---------------------------------------------------------------------------------------------
// Warning text

TEST(RopeWarning, NoScalingBeyondTrainedContext) {
  RopeSettings s = rope_defaults(32, RopeLayout::Adjacent);
  EXPECT_FALSE(rope_context_warning(s, 512, 512));
  EXPECT_FALSE(rope_context_warning(s, 512, 100));
  auto w = rope_context_warning(s, 512, 2048, app::setting_flags_text);
  ASSERT_TRUE(w);
  EXPECT_NE(w->find("requested context 2048 is longer than the trained context 512"),
            std::string::npos)
      << *w;
  EXPECT_NE(w->find("--rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 512"), std::string::npos)
      << *w;
  EXPECT_NE(w->find("\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4.0}"),
            std::string::npos)
      << *w;
  // Rounded up: 1.5x -> 2.
  auto w2 = rope_context_warning(s, 1000, 1500, app::setting_flags_text);
  ASSERT_TRUE(w2);
  EXPECT_NE(w2->find("--rope-scale 2 --yarn-orig-ctx 1000"), std::string::npos) << *w2;
  // Without a front end's names, the warning names the settings.
  auto ws = rope_context_warning(s, 512, 2048);
  ASSERT_TRUE(ws);
  EXPECT_NE(ws->find("rope.scaling = yarn, rope.scale = 4, rope.orig_ctx = 512"), std::string::npos)
      << *ws;
  EXPECT_EQ(ws->find("--"), std::string::npos) << *ws;
  // Scaled: nothing to say.
  RopeSettings y = valid(RopeMethod::Yarn);
  EXPECT_FALSE(rope_context_warning(y, 512, 2048));
}

TEST(RopeWarning, ConfigJsonRopeScalingNull) {
  RopeSettings s = rope_defaults(128, RopeLayout::Adjacent);
  rope_apply_hf_config_text(s, R"({"max_position_embeddings": 32768, "rope_scaling": null})",
                            "/models/internlm2/config.json");
  auto w = rope_context_warning(s, 32768, 65536);
  ASSERT_TRUE(w);
  EXPECT_NE(w->find("rope_scaling is null in config.json (/models/internlm2/config.json)"),
            std::string::npos)
      << *w;
  EXPECT_NE(w->find("\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}"),
            std::string::npos)
      << *w;
  // A config.json without the key gets the generic message.
  RopeSettings m = rope_defaults(128, RopeLayout::Adjacent);
  rope_apply_hf_config_text(m, R"({"max_position_embeddings": 32768})", "config.json");
  auto wm = rope_context_warning(m, 32768, 65536);
  ASSERT_TRUE(wm);
  EXPECT_EQ(wm->find("is null"), std::string::npos) << *wm;
  EXPECT_NE(wm->find("no RoPE scaling is set"), std::string::npos) << *wm;
}

TEST(RopeDescribe, ListsMethodParameters) {
  RopeSettings s = valid(RopeMethod::LongRope);
  s.max_pos = 8192;
  auto d = rope_describe(s);
  std::ostringstream m;
  m.precision(10);
  m << std::sqrt(1 + std::log(4.0) / std::log(2048.0));
  EXPECT_EQ(d[0],
            "longrope, original context 2048, max positions 8192, attention factor " + m.str());
  EXPECT_TRUE(has_line(d, "method: longrope (cli:--rope-scaling)")) << joined(d);
  EXPECT_TRUE(has_line(d, "long_factor: 32 entries")) << joined(d);
  EXPECT_TRUE(has_line(d, "derived: sqrt(1 + ln(max_pos/L0) / ln L0)")) << joined(d);
  EXPECT_TRUE(has_line(d, "layout: adjacent pairs")) << joined(d);
  RopeSettings n = rope_defaults(64, RopeLayout::SplitHalf);
  auto dn = rope_describe(n);
  EXPECT_EQ(dn[0], "none");
  EXPECT_TRUE(has_line(dn, "split halves")) << joined(dn);
  EXPECT_TRUE(has_line(dn, "attention factor (multiplies cos and sin): 1 (default)")) << joined(dn);
}

}  // namespace
}  // namespace lc
