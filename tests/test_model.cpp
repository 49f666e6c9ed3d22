// Real-model goldens and tiny random-weight models of every architecture.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/generate.h"
#include "engine/session.h"
#include "kernels/dispatch.h"
#include "model/arch/arch.h"
#include "model/model.h"
#include "support/paths.h"
#include "support/tiny_model.h"

namespace lc {
namespace {

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// kv: the full memory's KV type (f32 by default here; sessions resolved from settings get
// default_kv_type, f16, and the goldens below hold for both).
std::string greedy(const std::shared_ptr<const Model>& m, const std::string& prompt, int n,
                   int64_t batch = 512, KvType kv = KvType::F32) {
  SessionOptions so;
  so.rope = m->rope();
  so.batch = batch;
  so.memory.kv_type = kv;
  Session s(m, so);
  GenerateOptions g;
  g.n_predict = n;
  g.sampling.temperature = 0;
  return generate(s, m->tokenizer().encode(prompt, true), g).text;
}

TEST(Golden, Stories260KGreedy) {
  auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  const auto j = load_json(test::shared_path("reference/stories260K-greedy.json"));
  for (const KvType kv : {KvType::F32, default_kv_type(MemoryPolicy::Full)}) {
    for (const auto& c : j["cases"]) {
      const std::string prompt = c["prompt"];
      const std::string expected = c["expected_text"];
      const std::string got = prompt + greedy(m, prompt, c["n_predict"], 512, kv);
      EXPECT_EQ(got, expected) << kv_type_name(kv);
    }
  }
}

TEST(Golden, Stories260KGreedyIndependentOfBatch) {
  auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  EXPECT_EQ(greedy(m, "Once upon a time, there was a", 40, 512),
            greedy(m, "Once upon a time, there was a", 40, 3));
}

TEST(Golden, PasskeyLlamaTinyGreedy) {
  for (const char* file :
       {"models/passkey-llama-tiny.gguf", "models/passkey-llama-tiny-f16.gguf"}) {
    auto m = Model::load(test::shared_path(file));
    const auto j = load_json(test::shared_path("reference/passkey-llama-tiny-greedy.json"));
    ASSERT_FALSE(j["cases"].empty());
    for (const KvType kv : {KvType::F32, default_kv_type(MemoryPolicy::Full)}) {
      for (const auto& c : j["cases"]) {
        const std::string expected = c["expected_text"];
        EXPECT_EQ(greedy(m, c["prompt"], c["n_predict"], 512, kv), expected)
            << file << " " << kv_type_name(kv);
      }
    }
  }
}

struct ArchCase {
  std::string arch;
  bool fused;
  TensorType type;
  bool tied;
};

class TinyArch : public ::testing::TestWithParam<ArchCase> {};

// Max |a - b| over the logits, relative to the largest |b|.
double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(a[i] - b[i])));
    den = std::max(den, static_cast<double>(std::fabs(b[i])));
  }
  return num / den;
}

TEST_P(TinyArch, RunsAndChunkedPrefillMatchesTokenByToken) {
  const ArchCase& c = GetParam();
  test::TinyModelSpec spec;
  spec.arch = c.arch;
  spec.fused = c.fused;
  spec.type = c.type;
  spec.tied_output = c.tied;
  const std::string path = test::temp_dir() + "/tiny.gguf";
  test::write_tiny_model(spec, path);
  auto m = Model::load(path);
  ASSERT_EQ(m->hparams().arch, c.arch);
  EXPECT_EQ(m->weights().tied_output, c.tied);
  EXPECT_EQ(m->rope().layout, find_arch(c.arch)->rope_layout);

  std::vector<int32_t> toks;
  for (int i = 0; i < 37; ++i) toks.push_back((i * 97 + 13) % 512);
  const int64_t nv = m->hparams().n_vocab;

  // Every kernel table: where one rounds the activations of a 16-token product to bf16 (F16 and
  // BF16 weights on Avx512Bf16) and decode does not, the two agree to bf16's precision only.
  const Isa saved = kernels().isa;
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    const bool bf16 = kernels().matmul_input(c.type, 16) == MatmulInput::Bf16;
    SessionOptions so;
    so.rope = m->rope();
    so.batch = 16;
    Session chunked(m, so);
    std::vector<std::vector<float>> a;
    chunked.eval_all(toks.data(), static_cast<int64_t>(toks.size()),
                     [&](int64_t, const float* l) { a.emplace_back(l, l + nv); });

    so.batch = 1;
    Session single(m, so);
    for (size_t i = 0; i < toks.size(); ++i) {
      const auto& l = single.eval(&toks[i], 1);
      for (float x : l) ASSERT_TRUE(std::isfinite(x));
      EXPECT_LT(max_rel_diff(a[i], l), bf16 ? 3e-2 : 1e-4) << isa_name(isa) << " token " << i;
    }
  }
  set_isa(saved);
}

INSTANTIATE_TEST_SUITE_P(Archs, TinyArch,
                         ::testing::Values(ArchCase{"llama", false, TensorType::F32, false},
                                           ArchCase{"llama", false, TensorType::F16, true},
                                           ArchCase{"llama", false, TensorType::Q8_0, false},
                                           ArchCase{"llama", false, TensorType::Q4_0, false},
                                           ArchCase{"qwen2", false, TensorType::F32, false},
                                           ArchCase{"qwen2", false, TensorType::BF16, true},
                                           ArchCase{"phi3", true, TensorType::F32, false},
                                           ArchCase{"phi3", false, TensorType::F16, false},
                                           ArchCase{"internlm2", false, TensorType::F32, false},
                                           ArchCase{"internlm2", true, TensorType::Q8_0, false}),
                         [](const auto& info) {
                           const ArchCase& c = info.param;
                           return c.arch + (c.fused ? "_fused_" : "_") +
                                  std::string(tensor_type_info(c.type).name) +
                                  (c.tied ? "_tied" : "");
                         });

TEST(ModelLoad, TokenizerOnlyFileLoadsWithoutWeights) {
  auto m = Model::load(test::shared_path("models/vocab/ggml-vocab-gpt-2.gguf"));
  EXPECT_FALSE(m->has_weights());
  EXPECT_EQ(m->tokenizer().n_vocab(), 50257);
  SessionOptions so;
  EXPECT_THROW(Session(m, so), Error);
}

TEST(ModelLoad, MissingTensorIsNamed) {
  // A model whose layer 1 lacks attn_k: write it by dropping the tensor.
  test::TinyModelSpec spec;
  const std::string dir = test::temp_dir();
  test::write_tiny_model(spec, dir + "/ok.gguf");
  auto src = GgufFile::open(dir + "/ok.gguf");
  GgufWriter w;
  for (const auto& [k, v] : src->metadata()) w.set(k, v);
  for (const auto& t : src->tensors())
    if (t.name != "blk.1.attn_k.weight") w.add_tensor(t.name, t.ne, t.type, t.data, t.nbytes);
  w.write(dir + "/bad.gguf");
  try {
    Model::load(dir + "/bad.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor 'blk.1.attn_k.weight'"), std::string::npos)
        << e.what();
  }
}

TEST(ModelLoad, UnsupportedArchitectureIsNamed) {
  test::TinyModelSpec spec;
  const std::string dir = test::temp_dir();
  test::write_tiny_model(spec, dir + "/ok.gguf");
  auto src = GgufFile::open(dir + "/ok.gguf");
  GgufWriter w;
  for (const auto& [k, v] : src->metadata())
    w.set(k, k == "general.architecture" ? GgufValue::of_str("mamba") : v);
  for (const auto& t : src->tensors()) w.add_tensor(t.name, t.ne, t.type, t.data, t.nbytes);
  w.write(dir + "/bad.gguf");
  try {
    Model::load(dir + "/bad.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported architecture 'mamba'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lc
