// Hugging Face model folders: random-weight folders of every architecture give the logits of a
// float64 forward pass computed directly from the Hugging Face tensors (the rotary layout check)
// and the same logits as the GGUF `longctx convert` writes from them; config.json contradicting
// the weights is an error; tokenizer.json and tokenizer.model through the folder path; the
// rope_scaling null warning.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/error.h"
#include "core/gguf.h"
#include "engine/session.h"
#include "engine/session_spec.h"
#include "model/hf/hf_folder.h"
#include "model/model.h"
#include "model/rope/rope_config.h"
#include "support/hf_model.h"
#include "support/paths.h"

namespace lc {
namespace {

namespace fs = std::filesystem;
using test::HfModelSpec;

// Logits after each token, fed one at a time.
std::vector<std::vector<float>> run(const std::shared_ptr<const Model>& m,
                                    const std::vector<int32_t>& toks) {
  SessionOptions so;
  so.rope = m->rope();
  Session s(m, so);
  std::vector<std::vector<float>> out;
  for (int32_t t : toks) out.push_back(s.eval(&t, 1));
  return out;
}

// max |a - b| / max |b| over all positions.
template <typename A, typename B>
double rel_diff(const std::vector<std::vector<A>>& a, const std::vector<std::vector<B>>& b) {
  double num = 0, den = 0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t t = 0; t < std::min(a.size(), b.size()); ++t) {
    EXPECT_EQ(a[t].size(), b[t].size());
    for (size_t i = 0; i < std::min(a[t].size(), b[t].size()); ++i) {
      num = std::max(num, std::fabs(static_cast<double>(a[t][i]) - static_cast<double>(b[t][i])));
      den = std::max(den, std::fabs(static_cast<double>(b[t][i])));
    }
  }
  return num / den;
}

const std::vector<int32_t> kTokens = {5, 77, 260, 3, 140, 9, 290, 33, 12, 200};

std::string convert(const std::string& dir, const std::string& type, std::string* log = nullptr) {
  const std::string out = dir + "/../" + fs::path(dir).filename().string() + "-" + type + ".gguf";
  std::string text;
  const int rc = test::run_command(
      test::longctx_binary() + " convert " + dir + " -o " + out + " --type " + type, &text);
  EXPECT_EQ(rc, 0) << text;
  if (log) *log = text;
  return out;
}

class EveryArch : public ::testing::TestWithParam<const char*> {};

TEST_P(EveryArch, FolderMatchesReferenceAndConvertedGguf) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    HfModelSpec s;
    s.arch = GetParam();
    s.tied = tied;
    s.seed = tied ? 7 : 3;
    const std::string dir = test::temp_dir() + "/" + s.arch;
    const test::HfWeights w = test::write_hf_model(s, dir);

    auto m = Model::load(dir);
    EXPECT_EQ(m->hparams().n_layer, s.n_layer);
    EXPECT_EQ(m->hparams().n_vocab, s.n_vocab);
    EXPECT_EQ(m->weights().tied_output, tied);
    EXPECT_EQ(m->hf_config(), dir + "/config.json");
    const auto got = run(m, kTokens);
    const auto ref = test::hf_reference_logits(s, w, kTokens);
    EXPECT_LT(rel_diff(got, ref), 2e-5) << "folder vs float64 reference";

    auto g = Model::load(convert(dir, "f32"));
    EXPECT_EQ(g->hparams().arch, m->hparams().arch);
    EXPECT_EQ(g->tokenizer().n_vocab(), m->tokenizer().n_vocab());
    EXPECT_LT(rel_diff(run(g, kTokens), got), 1e-5) << "converted GGUF vs folder";
  }
}

INSTANTIATE_TEST_SUITE_P(HfFolder, EveryArch,
                         ::testing::Values("llama", "mistral", "qwen2", "internlm2", "phi3"));

TEST(HfFolder, HalfPrecisionAndShards) {
  for (const char* dtype : {"F16", "BF16"}) {
    SCOPED_TRACE(dtype);
    HfModelSpec s;
    s.arch = "qwen2";
    s.dtype = dtype;
    s.shards = 3;
    const std::string dir = test::temp_dir() + "/half";
    const test::HfWeights w = test::write_hf_model(s, dir);
    ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
    auto m = Model::load(dir);
    EXPECT_EQ(m->weights().layers[0].wk.type,
              std::string(dtype) == "F16" ? TensorType::F16 : TensorType::BF16);
    EXPECT_LT(rel_diff(run(m, kTokens), test::hf_reference_logits(s, w, kTokens)), 1e-3);
  }
}

// head_dim given in config.json and different from hidden_size / num_attention_heads (as in
// Mistral-Nemo): queries and the output projection are wider than the embedding.
TEST(HfFolder, ExplicitHeadDim) {
  for (const char* arch : {"mistral", "qwen2"}) {
    SCOPED_TRACE(arch);
    HfModelSpec s;
    s.arch = arch;
    s.head_dim = 24;
    const std::string dir = test::temp_dir() + "/hd";
    const test::HfWeights w = test::write_hf_model(s, dir);
    auto m = Model::load(dir);
    EXPECT_EQ(m->hparams().head_dim, 24);
    const auto got = run(m, kTokens);
    EXPECT_LT(rel_diff(got, test::hf_reference_logits(s, w, kTokens)), 2e-5);
    EXPECT_LT(rel_diff(run(Model::load(convert(dir, "f32")), kTokens), got), 1e-5);
  }
}

// A header whose length is not a multiple of the element sizes leaves every tensor unaligned in
// the mapping: the loader copies them (the kernels read aligned elements), and the logits are
// unchanged.
TEST(HfFolder, UnalignedTensorsAreCopied) {
  HfModelSpec s;
  const std::string dir = test::temp_dir() + "/unaligned";
  const test::HfWeights w = test::write_hf_model(s, dir);
  const std::string path = dir + "/model.safetensors";
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(k)]);
  bytes.insert(8 + n, " ");  // JSON allows trailing whitespace
  ++n;
  for (int k = 0; k < 8; ++k) bytes[static_cast<size_t>(k)] = static_cast<char>(n >> (8 * k));
  std::ofstream(path, std::ios::binary) << bytes;
  auto m = Model::load(dir);
  uint64_t total = 0;
  for (const GgufTensor& t : m->gguf().tensors()) total += t.nbytes;
  EXPECT_EQ(m->copied_bytes(), total);
  EXPECT_LT(rel_diff(run(m, kTokens), test::hf_reference_logits(s, w, kTokens)), 2e-5);
}

TEST(HfFolder, ConvertQuantizedTypesLoad) {
  HfModelSpec s;
  s.n_embd = 256;  // rows long enough for k-quants
  s.n_head = 4;
  s.n_ff = 256;
  const std::string dir = test::temp_dir() + "/q";
  const test::HfWeights w = test::write_hf_model(s, dir);
  const auto ref = test::hf_reference_logits(s, w, kTokens);
  for (const char* type : {"f16", "bf16", "q8_0", "q6_k", "q4_k", "q4_0"}) {
    SCOPED_TRACE(type);
    auto g = Model::load(convert(dir, type));
    const double d = rel_diff(run(g, kTokens), ref);
    // Quantized matrices (and the q8 activations their kernels use) move the logits a little.
    const std::string t = type;
    EXPECT_LT(d, t.rfind("q4", 0) == 0 ? 0.6 : t == "q6_k" ? 0.2 : 0.05);
  }
}

std::string load_error(const std::string& dir) {
  try {
    Model::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

void edit_config(const std::string& dir, const std::string& from, const std::string& to) {
  std::ifstream in(dir + "/config.json");
  std::string t((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t at = t.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  t.replace(at, from.size(), to);
  std::ofstream(dir + "/config.json") << t;
}

TEST(HfFolder, ConfigContradictingTheWeightsIsAnError) {
  struct Case {
    const char* from;
    const char* to;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"\"num_hidden_layers\": 2",
       "\"num_hidden_layers\": 1",
       {"model.layers.1.", "not part of", "disagree"}},
      {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", {"missing tensor 'model.layers.2."}},
      {"\"hidden_size\": 64", "\"hidden_size\": 32", {"has shape", "[300, 64]", "disagree"}},
      {"\"num_key_value_heads\": 2",
       "\"num_key_value_heads\": 4",
       {"self_attn.k_proj.weight", "has shape [32, 64]", "implies [64, 64]"}},
      {"\"intermediate_size\": 96", "\"intermediate_size\": 64", {"mlp.gate_proj.weight"}},
      {"\"vocab_size\": 300", "\"vocab_size\": 320", {"300 rows", "vocab_size 320"}},
      {"\"LlamaForCausalLM\"", "\"GPT2LMHeadModel\"", {"GPT2LMHeadModel", "not supported"}},
      {"\"num_attention_heads\": 4", "\"num_attention_heads\": 3", {"multiple"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.to);
    HfModelSpec s;
    const std::string dir = test::temp_dir() + "/bad";
    test::write_hf_model(s, dir);
    edit_config(dir, c.from, c.to);
    const std::string msg = load_error(dir);
    for (const std::string& e : c.expect) EXPECT_NE(msg.find(e), std::string::npos) << msg;
  }
  {  // A truncated weight file: an error naming the file and a tensor, from the CLI too.
    HfModelSpec s;
    const std::string dir = test::temp_dir() + "/truncated";
    test::write_hf_model(s, dir);
    fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") / 2);
    const std::string msg = load_error(dir);
    EXPECT_NE(msg.find(dir + "/model.safetensors: tensor '"), std::string::npos) << msg;
    EXPECT_NE(msg.find("outside the data section"), std::string::npos) << msg;
    std::string out;
    EXPECT_EQ(test::run_command(test::longctx_binary() + " info -m " + dir, &out), 1) << out;
    EXPECT_NE(out.find("error: "), std::string::npos) << out;
  }
  HfModelSpec s;
  s.shards = 2;
  const std::string dir = test::temp_dir() + "/noshard";
  test::write_hf_model(s, dir);
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  const std::string msg = load_error(dir);
  EXPECT_NE(msg.find("model-00002-of-00002.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
}

TEST(HfFolder, ValuesOfTheWrongJsonTypeAreErrors) {
  HfModelSpec s;
  const std::string dir = test::temp_dir() + "/types";
  test::write_hf_model(s, dir);
  edit_config(dir, "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": \"no\"");
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("tie_word_embeddings"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not true or false"), std::string::npos) << msg;
  edit_config(dir, "\"tie_word_embeddings\": \"no\"", "\"tie_word_embeddings\": false");
  std::ifstream in(dir + "/tokenizer.json");
  nlohmann::json tj = nlohmann::json::parse(in);
  tj["model"]["byte_fallback"] = "yes";
  std::ofstream(dir + "/tokenizer.json") << tj.dump();
  msg = load_error(dir);
  EXPECT_NE(msg.find("wrong type"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
}

TEST(HfFolder, CommandsAcceptAFolder) {
  HfModelSpec s;
  const std::string dir = test::temp_dir() + "/cli";
  test::write_hf_model(s, dir);
  std::string out;
  EXPECT_EQ(test::run_command(test::longctx_binary() + " info -v -m " + dir, &out), 0) << out;
  EXPECT_NE(out.find("Hugging Face"), std::string::npos) << out;
  EXPECT_NE(out.find("peak RSS"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(
      test::run_command(
          test::longctx_binary() + " generate -m " + dir + " -p 'hello world' -n 4 --temp 0", &out),
      0)
      << out;
}

// SmolLM2's tokenizer.json through the folder path: the ids Hugging Face's tokenizers give.
TEST(HfFolder, SmolLM2TokenizerJsonMatchesGoldens) {
  // The shared folder holds config.json and tokenizer.json only: a tokenizer-only model.
  const std::string dir = test::shared_path("models/vocab/smollm2-135m-instruct");
  auto m = Model::load(dir);
  EXPECT_FALSE(m->has_weights());
  EXPECT_EQ(m->hparams().n_ctx_train, 8192);
  const Tokenizer* tok = &m->tokenizer();
  EXPECT_EQ(tok->pre_name(), "smollm");
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_EQ(tok->eog_ids(), (std::vector<int32_t>{0, 2}));
  struct Golden {
    std::string text;
    std::vector<int32_t> ids;
  };
  // Expected ids from Hugging Face's tokenizers with this tokenizer.json (as in test_tokenizer).
  const std::vector<Golden> cases = {
      {"Führer", {54, 46991, 16863}},
      {"  ", {256}},
      {" Hello, world!", {38699, 28, 905, 17}},
      {" this is 🦙.cpp", {451, 314, 15107, 116, 243, 30, 35392}},
      {"    Hello\n    Hello", {333, 38699, 472, 38699}},
      {"3333333", {35, 35, 35, 35, 35, 35, 35}},
      {"Hello world 12345 and 3.14",
       {19556, 905, 216, 33, 34, 35, 36, 37, 284, 216, 35, 30, 33, 36}},
      {"I've 2 cats, they're 10 years old!",
       {57, 3543, 216, 34, 7680, 28, 502, 2316, 216, 33, 32, 929, 1573, 17}},
  };
  for (const Golden& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(tok->encode(c.text, false), c.ids);
    EXPECT_EQ(tok->decode(c.ids), c.text);
  }
  EXPECT_EQ(tok->encode("<|im_start|>user", false, true)[0], 1);
  std::string out;
  EXPECT_EQ(
      test::run_command(test::longctx_binary() + " tokenize --json -m " + dir + " 'Hello world!'",
                        &out, false),
      0)
      << out;
  EXPECT_NE(out.find("[19556,905,17]"), std::string::npos) << out;
}

// A SentencePiece model trained here, read through tokenizer.model: the same ids as
// libsentencepiece gives, and text round-trips.
TEST(HfFolder, SentencePieceModelRoundTrips) {
  const std::string dir = test::temp_dir();
  {
    std::ofstream corpus(dir + "/corpus.txt");
    const char* lines[] = {"the quick brown fox jumps over the lazy dog",
                           "long context models read far past their training length",
                           "rotary position embeddings scale with the context",
                           "a small model trained for a test of the reader"};
    for (int r = 0; r < 50; ++r)
      for (const char* l : lines) corpus << l << " " << r << "\n";
  }
  const auto st = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir + "/corpus.txt --model_prefix=" + dir +
      "/tokenizer --vocab_size=400 --model_type=bpe --byte_fallback=true "
      "--character_coverage=1.0 --remove_extra_whitespaces=false --minloglevel=2");
  ASSERT_TRUE(st.ok()) << st.ToString();
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/tokenizer.model").ok());

  std::vector<std::pair<std::string, GgufValue>> kv;
  spm_tokenizer_metadata(dir + "/tokenizer.model", sp.GetPieceSize() + 8, kv);
  auto f = GgufFile::assemble("spm", std::move(kv), {}, nullptr);
  auto tok = Tokenizer::from_gguf(*f);
  EXPECT_EQ(tok->model_name(), "llama");
  EXPECT_EQ(tok->n_vocab(), sp.GetPieceSize() + 8);
  EXPECT_EQ(tok->bos(), sp.bos_id());
  EXPECT_EQ(tok->eos(), sp.eos_id());
  for (const std::string text :
       {"the lazy fox", "context models 42", "Zebra ünïcode ✓!", "two  spaces", "rotary"}) {
    SCOPED_TRACE(text);
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(text, &want).ok());
    EXPECT_EQ(tok->encode(text, false), std::vector<int32_t>(want.begin(), want.end()));
    EXPECT_EQ(tok->decode(tok->encode(text, false)), text);
  }
  // The same file as a folder's tokenizer.model (no tokenizer.json).
  HfModelSpec s;
  s.n_vocab = sp.GetPieceSize() + 8;
  const std::string mdir = dir + "/model";
  test::write_hf_model(s, mdir);
  fs::remove(mdir + "/tokenizer.json");
  fs::copy_file(dir + "/tokenizer.model", mdir + "/tokenizer.model");
  // tokenizer_config.json's added_tokens_decoder names a control token past the pieces.
  const int32_t im_end = sp.GetPieceSize() + 3;
  std::ofstream(mdir + "/tokenizer_config.json")
      << R"({"added_tokens_decoder": {")" << im_end
      << R"(": {"content": "<|im_end|>", "special": true}}, "eos_token": "<|im_end|>"})";
  auto m = Model::load(mdir);
  EXPECT_EQ(m->tokenizer().model_name(), "llama");
  EXPECT_EQ(m->tokenizer().decode(m->tokenizer().encode("the lazy fox", false)), "the lazy fox");
  EXPECT_EQ(m->tokenizer().encode("<|im_end|>", false, true), std::vector<int32_t>{im_end});
  EXPECT_EQ(m->tokenizer().eos(), im_end);
  EXPECT_EQ(m->tokenizer().attr(im_end), TokenAttr::Control);
}

// A byte-fallback BPE tokenizer.json (as Llama-2, Mistral and Phi-3 ship them), made here from
// the SentencePiece model the way Hugging Face's converter does (vocab in id order, a merge for
// every split of a piece into two pieces, ordered by the merged piece's id): the same ids as
// libsentencepiece. tokenizer_config.json and generation_config.json set the special tokens.
TEST(HfFolder, ByteFallbackTokenizerJsonAndTokenizerConfig) {
  const std::string dir = test::temp_dir();
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int r = 0; r < 40; ++r)
      corpus << "models read long documents and answer questions " << r << "\n"
             << "the rotary embedding of position p turns each pair\n";
  }
  ASSERT_TRUE(sentencepiece::SentencePieceTrainer::Train(
                  "--input=" + dir + "/corpus.txt --model_prefix=" + dir +
                  "/sp --vocab_size=360 --model_type=bpe --byte_fallback=true "
                  "--character_coverage=1.0 --remove_extra_whitespaces=false --minloglevel=2")
                  .ok());
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/sp.model").ok());
  const int n = sp.GetPieceSize();
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  std::map<std::string, int> ids;
  for (int i = 0; i < n; ++i) {
    vocab[sp.IdToPiece(i)] = i;
    ids[sp.IdToPiece(i)] = i;
    if (sp.IsControl(i) || sp.IsUnknown(i))
      added.push_back({{"id", i}, {"content", sp.IdToPiece(i)}, {"special", true}});
  }
  std::vector<std::tuple<int, int, std::string>> merges;
  for (int i = 0; i < n; ++i) {
    const std::string p = sp.IdToPiece(i);
    if (sp.IsControl(i) || sp.IsUnknown(i) || sp.IsByte(i)) continue;
    for (size_t k = 1; k < p.size(); ++k) {
      if ((static_cast<unsigned char>(p[k]) & 0xC0) == 0x80) continue;  // inside a character
      auto l = ids.find(p.substr(0, k)), r = ids.find(p.substr(k));
      if (l != ids.end() && r != ids.end())
        merges.emplace_back(i, l->second, l->first + " " + r->first);
    }
  }
  std::sort(merges.begin(), merges.end());
  nlohmann::json mj = nlohmann::json::array();
  for (const auto& m : merges) mj.push_back(std::get<2>(m));
  const nlohmann::json tj = {
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", mj},
        {"byte_fallback", true},
        {"unk_token", "<unk>"}}}};
  HfModelSpec s;
  s.n_vocab = n;
  const std::string mdir = dir + "/model";
  test::write_hf_model(s, mdir);
  std::ofstream(mdir + "/tokenizer.json") << tj.dump();
  std::ofstream(mdir + "/tokenizer_config.json")
      << R"({"add_bos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "</s>",
            "chat_template": "{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}"})";
  std::ofstream(mdir + "/generation_config.json") << R"({"eos_token_id": [2, 7]})";
  auto m = Model::load(mdir);
  const Tokenizer& tok = m->tokenizer();
  EXPECT_EQ(tok.model_name(), "llama");
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.bos(), sp.bos_id());
  EXPECT_EQ(tok.eos(), sp.eos_id());
  EXPECT_EQ(tok.eot(), 7);
  EXPECT_TRUE(tok.is_eog(7));
  EXPECT_NE(tok.chat_template().find("[INST]"), std::string::npos);
  for (const std::string text :
       {"models answer", "the rotary pair 12", "Ünïcode ✓ bytes", "a  b"}) {
    SCOPED_TRACE(text);
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(text, &want).ok());
    want.insert(want.begin(), sp.bos_id());
    EXPECT_EQ(tok.encode(text, true), std::vector<int32_t>(want.begin(), want.end()));
    EXPECT_EQ(tok.decode(tok.encode(text, false)), text);
  }
  // Without tokenizer_config.json, BOS is added when the post-processor puts it first.
  fs::remove(mdir + "/tokenizer_config.json");
  EXPECT_FALSE(Model::load(mdir)->tokenizer().add_bos());
  nlohmann::json with_post = tj;
  with_post["post_processor"] = {{"type", "TemplateProcessing"},
                                 {"single",
                                  {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                   {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  std::ofstream(mdir + "/tokenizer.json") << with_post.dump();
  auto mp = Model::load(mdir);
  EXPECT_TRUE(mp->tokenizer().add_bos());
  EXPECT_EQ(mp->tokenizer().encode("models", true).front(), sp.bos_id());
}

// The pre-tokenizer family is recognised from tokenizer.json's pre_tokenizer section.
TEST(HfFolder, PreTokenizerFamilies) {
  const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const std::string qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const auto split = [](const std::string& re) {
    return nlohmann::json{
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  };
  struct Case {
    nlohmann::json pre;
    std::string want;  // pre name, or a piece of the error
  };
  const std::vector<Case> cases = {
      {split(llama3), "llama3"},
      {split(qwen2), "qwen2"},
      {{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}, "gpt-2"},
      {split("\\w+"), "tokenizer.json"},  // no llama.cpp family: its own regex
      {{{"type", "Whitespace"}}, "error: has a \"Whitespace\" step"},
      {{{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Removed"}},
          {{"type", "ByteLevel"}, {"use_regex", false}}}}},
       "error: only behavior Isolated"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.want);
    HfModelSpec s;
    const std::string dir = test::temp_dir() + "/pre";
    test::write_hf_model(s, dir);
    std::ifstream in(dir + "/tokenizer.json");
    nlohmann::json tj = nlohmann::json::parse(in);
    tj["pre_tokenizer"] = c.pre;
    std::ofstream(dir + "/tokenizer.json") << tj.dump();
    if (c.want.rfind("error: ", 0) == 0) {
      const std::string msg = load_error(dir);
      EXPECT_NE(msg.find(c.want.substr(7)), std::string::npos) << msg;
      EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
    } else {
      auto m = Model::load(dir);
      EXPECT_EQ(m->tokenizer().pre_name(), c.want);
      if (c.want == "tokenizer.json") {
        // "ab", " ", "ba": merged words, the space a byte token.
        EXPECT_EQ(m->tokenizer().encode("ab ba", false), (std::vector<int32_t>{257, 32, 282}));
      }
    }
  }
}

// InternLM2 ships "rope_scaling": null; run past max_position_embeddings, the warning says so and
// names the fix.
TEST(HfFolder, RopeScalingNullWarnsPastTheTrainedContext) {
  HfModelSpec s;
  s.arch = "internlm2";
  s.max_pos = 64;
  s.rope_scaling = "null";
  const std::string dir = test::temp_dir() + "/internlm2";
  test::write_hf_model(s, dir);
  auto m = Model::load(dir);
  const SessionOptions o = resolve_session(*m, SessionSpec{});
  EXPECT_TRUE(o.rope.hf_rope_scaling_null);
  EXPECT_EQ(o.trained_ctx, 64);
  const auto w = rope_context_warning(o.rope, o.trained_ctx, 200);
  ASSERT_TRUE(w.has_value());
  EXPECT_NE(w->find("rope_scaling is null"), std::string::npos) << *w;
  EXPECT_NE(w->find(dir + "/config.json"), std::string::npos) << *w;
  EXPECT_NE(w->find("\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4.0}"),
            std::string::npos)
      << *w;
  EXPECT_FALSE(rope_context_warning(o.rope, o.trained_ctx, 64).has_value());

  // The command line says it too.
  std::string out;
  EXPECT_EQ(
      test::run_command(
          test::longctx_binary() + " generate -m " + dir + " -p 'hello' -n 80 --temp 0", &out),
      0)
      << out;
  EXPECT_NE(out.find("rope_scaling is null"), std::string::npos) << out;
  EXPECT_NE(out.find("Fix:"), std::string::npos) << out;

  // A dynamic rope_scaling in config.json is applied from the folder.
  HfModelSpec d = s;
  d.rope_scaling = R"({"type": "dynamic", "factor": 4.0})";
  const std::string ddir = test::temp_dir() + "/internlm2-dynamic";
  test::write_hf_model(d, ddir);
  auto dm = Model::load(ddir);
  EXPECT_EQ(dm->rope().method, RopeMethod::DynamicNtk);
  EXPECT_EQ(dm->rope().factor, 4.0);
  std::string log;
  convert(ddir, "f32", &log);
  EXPECT_NE(log.find("no GGUF form"), std::string::npos) << log;
  log.clear();
  convert(dir, "f32", &log);
  EXPECT_NE(log.find("\"rope_scaling\": null"), std::string::npos) << log;
}

TEST(HfFolder, ConvertCarriesRopeScaling) {
  struct Case {
    const char* json;
    RopeMethod method;
    const char* arch = "llama";
  };
  const std::vector<Case> cases = {
      {R"({"rope_type": "linear", "factor": 2.0})", RopeMethod::Linear},
      {R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})",
       RopeMethod::Yarn},
      {R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
          "attention_factor": 1.5, "beta_fast": 16})",
       RopeMethod::Yarn},
      {R"({"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64,
          "mscale": 1.0, "mscale_all_dim": 0.5})",
       RopeMethod::Yarn},
      {R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64})",
       RopeMethod::Llama3},
      {R"({"type": "longrope", "long_factor": [1, 1.5, 2, 3, 4, 6, 8, 9],
          "short_factor": [1, 1, 1, 1.1, 1.2, 1.3, 1.4, 1.5], "original_max_position_embeddings": 64})",
       RopeMethod::LongRope, "phi3"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    HfModelSpec s;
    s.arch = c.arch;
    s.rope_scaling = c.json;
    const std::string dir = test::temp_dir() + "/rs";
    const test::HfWeights w = test::write_hf_model(s, dir);
    auto m = Model::load(dir);
    EXPECT_EQ(m->rope().method, c.method);
    auto g = Model::load(convert(dir, "f32"));
    // The GGUF's own RoPE settings give the same table (llama3 as rope_freqs divisors).
    const RopeTable a = rope_table(m->rope(), 100), b = rope_table(g->rope(), 100);
    ASSERT_EQ(a.inv_freq.size(), b.inv_freq.size());
    for (size_t i = 0; i < a.inv_freq.size(); ++i)
      EXPECT_NEAR(a.inv_freq[i], b.inv_freq[i], 1e-6 * a.inv_freq[i]);
    EXPECT_NEAR(a.attn_factor, b.attn_factor, 1e-6);
  }
}

}  // namespace
}  // namespace lc
