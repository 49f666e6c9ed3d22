// `longctx make-model` writes random-weight GGUFs that load, carry complete metadata and the
// tokenizer of the vocab file, and run; `longctx bench --json` reports the documented keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "core/gguf.h"
#include "engine/session.h"
#include "model/model.h"
#include "support/paths.h"

namespace lc {
namespace {

using test::longctx_binary;
using test::run_command;
using test::shared_path;

const std::string kVocab = shared_path("models/stories260K.gguf");  // 512 tokens

std::string make_model(const std::string& dir, const std::string& name, const std::string& args) {
  const std::string path = dir + "/" + name;
  std::string out;
  const int rc = run_command(
      longctx_binary() + " make-model --vocab " + kVocab + " -o " + path + " " + args, &out);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  return path;
}

const std::string kTiny =
    "--shape custom --layers 2 --dim 256 --heads 4 --kv-heads 2 --ffn 384 --ctx 1024";

// Greedy tokens after a short prompt; every logit must be finite and the logits not constant.
std::vector<int32_t> greedy(const std::shared_ptr<const Model>& m, int n) {
  SessionOptions so;
  so.rope = m->rope();
  Session s(m, so);
  const std::vector<int32_t> prompt = m->tokenizer().encode("Once upon a time", true);
  std::vector<int32_t> out;
  const std::vector<float>* lg = &s.eval(prompt);
  for (int i = 0; i < n; ++i) {
    for (float x : *lg) EXPECT_TRUE(std::isfinite(x));
    const auto [mn, mx] = std::minmax_element(lg->begin(), lg->end());
    EXPECT_GT(*mx - *mn, 1e-3f);
    const auto tok = static_cast<int32_t>(std::max_element(lg->begin(), lg->end()) - lg->begin());
    out.push_back(tok);
    lg = &s.eval(&tok, 1);
  }
  return out;
}

TEST(MakeModel, CustomShapeLoadsWithHparamsAndTokenizer) {
  const std::string dir = test::temp_dir();
  const std::string path = make_model(dir, "m.gguf", kTiny + " --type f32 --rope-base 50000");
  auto m = Model::load(path);
  const HParams& hp = m->hparams();
  EXPECT_EQ(hp.arch, "llama");
  EXPECT_EQ(hp.n_layer, 2);
  EXPECT_EQ(hp.n_embd, 256);
  EXPECT_EQ(hp.n_head, 4);
  EXPECT_EQ(hp.n_head_kv, 2);
  EXPECT_EQ(hp.head_dim, 64);
  EXPECT_EQ(hp.n_ff, 384);
  EXPECT_EQ(hp.n_vocab, 512);
  EXPECT_EQ(hp.n_ctx_train, 1024);
  EXPECT_FALSE(m->weights().tied_output);

  const GgufFile& f = m->gguf();
  EXPECT_EQ(f.get_int("general.file_type"), 0);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 64);
  EXPECT_EQ(f.get_int("llama.vocab_size"), 512);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.get_float("llama.rope.freq_base")), 50000.0f);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.get_float("llama.attention.layer_norm_rms_epsilon")),
                  1e-5f);
  EXPECT_TRUE(f.get_str("general.name").has_value());

  // Every tokenizer.* key of the vocab file, with the same value.
  auto src = GgufFile::open(kVocab);
  int n_tok_keys = 0;
  for (const auto& [k, v] : src->metadata()) {
    if (k.rfind("tokenizer.", 0) != 0) continue;
    ++n_tok_keys;
    const GgufValue* got = f.find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_EQ(got->to_string(1 << 20), v.to_string(1 << 20)) << k;
  }
  EXPECT_GE(n_tok_keys, 3);
  auto ref = Model::load(kVocab);
  const std::string text = "Once upon a time, there was a little dog.";
  EXPECT_EQ(m->tokenizer().encode(text, true), ref->tokenizer().encode(text, true));

  // Norms are F32 around 1, matrices scaled by 1/sqrt(fan_in).
  const GgufTensor* norm = f.tensor("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, TensorType::F32);
  const auto* nv = reinterpret_cast<const float*>(norm->data);
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(nv[i], 1.0f, 0.1f);
  const GgufTensor* wq = f.tensor("blk.1.attn_q.weight");
  ASSERT_NE(wq, nullptr);
  const auto* wv = reinterpret_cast<const float*>(wq->data);
  double sum2 = 0;
  for (int64_t i = 0; i < wq->n_elements(); ++i) sum2 += double{wv[i]} * wv[i];
  EXPECT_NEAR(std::sqrt(sum2 / static_cast<double>(wq->n_elements())), 1.0 / 16.0, 0.002);

  const auto toks = greedy(m, 6);
  EXPECT_EQ(toks.size(), 6u);
}

TEST(MakeModel, EveryTypeLoadsAndRuns) {
  const std::string dir = test::temp_dir();
  for (const std::string type : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k"}) {
    SCOPED_TRACE(type);
    const std::string path = make_model(dir, type + ".gguf", kTiny + " --type " + type);
    auto m = Model::load(path);
    const GgufFile& f = m->gguf();
    const TensorType want = *tensor_type_from_name(type);
    EXPECT_EQ(f.tensor("token_embd.weight")->type, want);
    EXPECT_EQ(f.tensor("blk.0.attn_q.weight")->type, want);
    EXPECT_EQ(f.tensor("blk.0.ffn_gate.weight")->type, want);
    // ffn_down has rows of 384: not a multiple of the 256-element q4_k block.
    EXPECT_EQ(f.tensor("blk.0.ffn_down.weight")->type, type == "q4_k" ? TensorType::Q8_0 : want);
    EXPECT_EQ(f.tensor("output_norm.weight")->type, TensorType::F32);
    const int64_t ftype = *f.get_int("general.file_type");
    const std::map<std::string, int64_t> expect_ftype = {{"f32", 0},  {"f16", 1},  {"bf16", 32},
                                                         {"q8_0", 7}, {"q4_0", 2}, {"q4_k", 14}};
    EXPECT_EQ(ftype, expect_ftype.at(type));
    EXPECT_EQ(greedy(m, 4).size(), 4u);
  }
}

TEST(MakeModel, SameSeedSameFileOtherSeedOtherWeights) {
  const std::string dir = test::temp_dir();
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string a = make_model(dir, "a.gguf", kTiny + " --type q8_0 --seed 5");
  const std::string b = make_model(dir, "b.gguf", kTiny + " --type q8_0 --seed 5 -t 1");
  const std::string c = make_model(dir, "c.gguf", kTiny + " --type q8_0 --seed 6");
  EXPECT_EQ(slurp(a), slurp(b));  // independent of the thread count
  const std::string ca = slurp(a), cc = slurp(c);
  EXPECT_EQ(ca.size(), cc.size());
  EXPECT_NE(ca.substr(ca.size() / 2), cc.substr(cc.size() / 2));
}

TEST(MakeModel, NamedShapesKeepTheirHparams) {
  const std::string dir = test::temp_dir();
  // --layers 1 keeps the files small; every other figure is the named model's.
  {
    auto m =
        Model::load(make_model(dir, "smol.gguf", "--shape smollm2-135m --layers 1 --type q4_0"));
    const HParams& hp = m->hparams();
    EXPECT_EQ(hp.arch, "llama");
    EXPECT_EQ(hp.n_layer, 1);
    EXPECT_EQ(hp.n_embd, 576);
    EXPECT_EQ(hp.n_head, 9);
    EXPECT_EQ(hp.n_head_kv, 3);
    EXPECT_EQ(hp.n_ff, 1536);
    EXPECT_EQ(hp.n_ctx_train, 8192);
    EXPECT_TRUE(m->weights().tied_output);
    EXPECT_FLOAT_EQ(static_cast<float>(*m->gguf().get_float("llama.rope.freq_base")), 1e5f);
    EXPECT_EQ(greedy(m, 2).size(), 2u);
  }
  {
    auto m = Model::load(make_model(dir, "qwen.gguf", "--shape qwen2-0.5b --layers 1 --type q8_0"));
    const HParams& hp = m->hparams();
    EXPECT_EQ(hp.arch, "qwen2");
    EXPECT_EQ(hp.n_embd, 896);
    EXPECT_EQ(hp.n_head, 14);
    EXPECT_EQ(hp.n_head_kv, 2);
    EXPECT_EQ(hp.n_ff, 4864);
    EXPECT_EQ(hp.n_ctx_train, 32768);
    EXPECT_NEAR(hp.norm_eps, 1e-6f, 1e-9f);
    EXPECT_TRUE(m->weights().tied_output);
    EXPECT_EQ(m->weights().layers[0].bq.size(), 896u);
    EXPECT_EQ(greedy(m, 2).size(), 2u);
  }
}

TEST(MakeModel, BadInputsFailWithAMessage) {
  const std::string dir = test::temp_dir();
  const std::string base =
      longctx_binary() + " make-model --vocab " + kVocab + " -o " + dir + "/x.gguf ";
  std::string out;
  EXPECT_EQ(run_command(base + kTiny + " --type q5_k", &out), 1);
  EXPECT_NE(out.find("--type"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(base + "--shape gpt5", &out), 1);
  EXPECT_NE(out.find("--shape"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(base + "--shape custom --layers 2 --dim 250 --heads 4 --ffn 64", &out), 1);
  EXPECT_NE(out.find("multiple of --heads"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(base + kTiny + " --vocab-size 100", &out), 1);
  EXPECT_NE(out.find("--vocab-size"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(longctx_binary() + " make-model " + kTiny + " -o " + dir +
                            "/x.gguf --vocab " + dir + "/no-such-vocab.gguf",
                        &out),
            1);
  EXPECT_NE(out.find("no-such-vocab.gguf"), std::string::npos) << out;
  std::ifstream none(dir + "/x.gguf");
  EXPECT_FALSE(none.good());
}

TEST(Bench, JsonHasTheDocumentedKeys) {
  const std::string dir = test::temp_dir();
  const std::string path = make_model(dir, "b.gguf", kTiny + " --type q8_0");
  std::string out;
  ASSERT_EQ(
      run_command(longctx_binary() + " bench -m " + path + " -p 16,48 -n 4 --repeat 2 -b 32 --json",
                  &out, false),
      0)
      << out;
  const auto j = nlohmann::json::parse(out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["n_prompt"], 16);
  EXPECT_EQ(j[1]["n_prompt"], 48);
  for (const auto& r : j) {
    EXPECT_EQ(r["n_gen"], 4);
    for (const char* k :
         {"prefill_tok_s", "decode_tok_s", "decode_gb_s", "prefill_gflop_s", "peak_rss_mb"}) {
      ASSERT_TRUE(r.contains(k)) << k;
      EXPECT_GT(r[k].get<double>(), 0) << k;
    }
    // GB/s is the weight bytes per token times tokens per second.
    EXPECT_NEAR(
        r["decode_gb_s"].get<double>(),
        r["weight_mb_per_token"].get<double>() * 1048576.0 * r["decode_tok_s"].get<double>() / 1e9,
        1e-6 * r["decode_gb_s"].get<double>());
  }
}

TEST(Bench, RooflineAloneAndWithAModel) {
  std::string out;
  ASSERT_EQ(
      run_command(longctx_binary() + " bench --roofline --roofline-mib 32 --json", &out, false), 0)
      << out;
  const auto lim = nlohmann::json::parse(out);
  EXPECT_GT(lim["dram_gb_s"].get<double>(), 0.1);
  EXPECT_GT(lim["matmul_gflop_s"].get<double>(), 0.01);

  const std::string dir = test::temp_dir();
  const std::string path = make_model(dir, "r.gguf", kTiny + " --type f16");
  out.clear();
  ASSERT_EQ(run_command(longctx_binary() + " bench -m " + path +
                            " -p 8 -n 2 --repeat 1 --roofline --roofline-mib 32",
                        &out, false),
            0)
      << out;
  EXPECT_NE(out.find("of DRAM read bandwidth"), std::string::npos) << out;
  EXPECT_NE(out.find("of the f16 matmul peak"), std::string::npos) << out;
  EXPECT_NE(out.find("f16 matmul"), std::string::npos) << out;

  out.clear();
  ASSERT_EQ(run_command(longctx_binary() + " bench -m " + path +
                            " -p 8 -n 2 --repeat 1 --roofline --roofline-mib 32 --json",
                        &out, false),
            0)
      << out;
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["roofline"]["matmul_type"], "f16");
  EXPECT_GT(j[0]["roofline"]["matmul_type_gflop_s"].get<double>(), 0.01);
  EXPECT_NEAR(j[0]["decode_frac_of_dram"].get<double>(),
              j[0]["decode_gb_s"].get<double>() / j[0]["roofline"]["dram_gb_s"].get<double>(),
              1e-9);
  EXPECT_GT(j[0]["prefill_frac_of_matmul"].get<double>(), 0);

  out.clear();
  EXPECT_EQ(run_command(longctx_binary() + " bench -p 8", &out), 1);
  EXPECT_NE(out.find("-m"), std::string::npos) << out;
}

}  // namespace
}  // namespace lc
