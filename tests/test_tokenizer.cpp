// Tokenizers: llama.cpp's test-tokenizer-0 goldens for four vocabularies (SentencePiece and
// byte-level BPE), special tokens, decoding, streaming, and error reporting.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "model/tokenizer/pretokenize.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_impl.h"
#include "support/paths.h"

namespace {

using lc::GgufFile;
using lc::GgufValue;
using lc::GgufWriter;
using lc::StreamDecoder;
using lc::Tokenizer;
using lc::test::shared_path;

using Ids = std::vector<int32_t>;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Golden {
  std::string text;
  Ids ids;
};

// NAME.gguf.inp holds the inputs, each followed by "\n__ggml_vocab_test__\n"; NAME.gguf.out one
// line of ids per input (as llama.cpp's test-tokenizer-0 reads them).
std::vector<Golden> load_goldens(const std::string& gguf_path) {
  const std::string inp = read_file(gguf_path + ".inp");
  const std::string out = read_file(gguf_path + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Golden> g;
  size_t pos = 0, m;
  while ((m = inp.find(sep, pos)) != std::string::npos) {
    g.push_back({inp.substr(pos, m - pos), {}});
    pos = m + sep.size();
  }
  EXPECT_EQ(pos, inp.size()) << "text after the last separator in " << gguf_path << ".inp";
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    EXPECT_LT(i, g.size()) << "more output lines than inputs in " << gguf_path << ".out";
    if (i >= g.size()) break;
    std::istringstream ls(line);
    int32_t id;
    while (ls >> id) g[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, g.size()) << "inputs and output lines differ in number for " << gguf_path;
  return g;
}

std::string vocab_path(const std::string& name) {
  return shared_path("models/vocab/ggml-vocab-" + name + ".gguf");
}

struct Loaded {
  std::shared_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string& path) {
  Loaded l;
  l.file = GgufFile::open(path);
  l.tok = Tokenizer::from_gguf(*l.file);
  return l;
}

Loaded from_writer(const GgufWriter& w, const std::string& name = "synthetic.gguf") {
  Loaded l;
  l.file = GgufFile::from_bytes(w.to_bytes(), name);
  l.tok = Tokenizer::from_gguf(*l.file);
  return l;
}

// llama.cpp's decoding clean-up for GPT-2 style vocabularies, applied to the goldens' inputs: the
// only such pattern there is " ?" (the test below checks the clean-up rules themselves).
std::string expected_roundtrip(const std::string& name, std::string s) {
  if (name != "gpt-2") return s;
  for (size_t p; (p = s.find(" ?")) != std::string::npos;) s.erase(p, 1);
  return s;
}

class VocabGoldens : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabGoldens, EncodeMatchesLlamaCppAndDecodeRoundTrips) {
  const std::string name = GetParam();
  const Loaded l = load(vocab_path(name));
  const std::vector<Golden> goldens = load_goldens(vocab_path(name));
  ASSERT_EQ(goldens.size(), 46u);
  for (size_t i = 0; i < goldens.size(); ++i) {
    const Golden& g = goldens[i];
    SCOPED_TRACE("case " + std::to_string(i) + ": \"" + g.text + "\"");
    const Ids ids = l.tok->encode(g.text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, g.ids);
    EXPECT_EQ(l.tok->decode(ids), expected_roundtrip(name, g.text));
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, VocabGoldens,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-coder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(Tokenizer, MetadataOfTheVocabFiles) {
  const Loaded spm = load(vocab_path("llama-spm"));
  EXPECT_EQ(spm.tok->model_name(), "llama");
  EXPECT_EQ(spm.tok->n_vocab(), 32000);
  EXPECT_EQ(spm.tok->bos(), 1);
  EXPECT_EQ(spm.tok->eos(), 2);
  EXPECT_EQ(spm.tok->unk(), 0);
  EXPECT_TRUE(spm.tok->add_bos());
  EXPECT_FALSE(spm.tok->add_eos());
  EXPECT_EQ(spm.tok->eog_ids(), Ids({2}));
  EXPECT_EQ(spm.tok->attr(0), lc::TokenAttr::Unknown);
  EXPECT_EQ(spm.tok->attr(1), lc::TokenAttr::Control);
  EXPECT_EQ(spm.tok->attr(3), lc::TokenAttr::Byte);
  EXPECT_EQ(spm.tok->find_token("<0x0A>"), 13);
  EXPECT_EQ(spm.tok->find_token("no such token"), -1);
  EXPECT_EQ(spm.tok->chat_template(), "");

  const Loaded phi = load(vocab_path("phi-3"));
  EXPECT_EQ(phi.tok->eos(), 32000);  // <|endoftext|>
  EXPECT_EQ(phi.tok->eot(), 32007);  // <|end|>, found by its text
  EXPECT_EQ(phi.tok->eog_ids(), Ids({32000, 32007}));
  EXPECT_TRUE(phi.tok->is_eog(32007));
  EXPECT_FALSE(phi.tok->is_eog(2));  // "</s>" is a user-defined token in this vocabulary
  EXPECT_NE(phi.tok->chat_template().find("<|user|>"), std::string::npos);

  const Loaded gpt2 = load(vocab_path("gpt-2"));
  EXPECT_EQ(gpt2.tok->model_name(), "gpt2");
  EXPECT_EQ(gpt2.tok->pre_name(), "gpt-2");
  EXPECT_FALSE(gpt2.tok->add_bos());  // no add_bos_token key: BPE default
  EXPECT_EQ(gpt2.tok->eog_ids(), Ids({50256}));
  EXPECT_EQ(gpt2.tok->encode("Hello", true), gpt2.tok->encode("Hello", false));

  const Loaded ds = load(vocab_path("deepseek-coder"));
  EXPECT_EQ(ds.tok->pre_name(), "deepseek-coder");
  EXPECT_TRUE(ds.tok->add_bos());  // the file says so
  const Ids with_bos = ds.tok->encode("Hello", true);
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), 32013);
  EXPECT_EQ(Ids(with_bos.begin() + 1, with_bos.end()), ds.tok->encode("Hello", false));
}

TEST(Tokenizer, Stories260KOnceUponATime) {
  const Loaded l = load(shared_path("models/stories260K.gguf"));
  EXPECT_EQ(l.tok->n_vocab(), 512);
  EXPECT_EQ(l.tok->pre_name(), "default");
  EXPECT_EQ(l.tok->pad(), -1);  // the file writes 0xFFFFFFFF for "none"
  const Ids ids = l.tok->encode("Once upon a time", true);
  // "▁Once" "▁upon" "▁a" "▁time" after BOS.
  EXPECT_EQ(ids, Ids({1, 403, 407, 261, 378}));
  EXPECT_EQ(l.tok->decode(ids), "Once upon a time");
  EXPECT_EQ(l.tok->decode(ids, /*special=*/true), "<s> Once upon a time");
  EXPECT_EQ(l.tok->token_to_piece(403), " Once");
  EXPECT_EQ(l.tok->token_to_piece(1), "");
  EXPECT_EQ(l.tok->token_to_piece(1, true), "<s>");
  EXPECT_THROW(l.tok->token_to_piece(512), lc::Error);
  EXPECT_THROW(l.tok->token_to_piece(-1), lc::Error);
}

// Long texts are merged in pieces cut where no merge can cross; the ids must equal those of
// merging the whole text at once, for every cut position the chunk size leads to.
TEST(Tokenizer, SpmLongTextsCutOnlyWhereNoMergeCrosses) {
  const std::string pieces[] = {"Once upon a time",
                                ", there was",
                                " a little",
                                "\n\n",
                                "  ",
                                "dog.",
                                " \u00e9t\u00e9 ",
                                "\xF0\x9F\x98\x80",
                                "ab",
                                "\t",
                                "The grass is green.",
                                " 1234 ",
                                "don't",
                                "\u4e2d\u6587"};
  std::string text;
  uint32_t x = 12345;
  while (text.size() < 60000) {
    x = x * 1664525u + 1013904223u;
    text += pieces[(x >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
  }
  for (const char* name : {"models/vocab/ggml-vocab-llama-spm.gguf", "models/stories260K.gguf"}) {
    const auto f = GgufFile::open(shared_path(name));
    const auto whole = lc::tok::make_spm_tokenizer(*f, 0)->encode(text, true);
    ASSERT_GT(whole.size(), 5000u) << name;
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{100}, size_t{4096}}) {
      const auto cut = lc::tok::make_spm_tokenizer(*f, chunk)->encode(text, true);
      EXPECT_EQ(cut, whole) << name << " chunk " << chunk;
    }
  }
}

TEST(Tokenizer, ByteFallbackAndStreaming) {
  const Loaded l = load(shared_path("models/stories260K.gguf"));
  const Tokenizer& tok = *l.tok;
  // "é" is a token of this vocabulary; "😀" is not and falls back to its four bytes.
  const Ids ids = tok.encode("é😀", false);
  ASSERT_EQ(ids, Ids({410, 485, 243, 162, 155, 131}));
  EXPECT_EQ(tok.token_to_piece(243), "\xF0");
  EXPECT_EQ(tok.decode(ids), "é😀");

  StreamDecoder sd(tok);
  EXPECT_EQ(sd.push(410), " ");
  EXPECT_EQ(sd.push(485), "é");
  EXPECT_EQ(sd.push(243), "");  // F0: first of four bytes
  EXPECT_EQ(sd.push(162), "");
  EXPECT_EQ(sd.push(155), "");
  EXPECT_EQ(sd.push(131), "😀");
  EXPECT_EQ(sd.finish(), "");

  // "é" (C3 A9) as two byte tokens.
  const int32_t c3 = tok.find_token("<0xC3>"), a9 = tok.find_token("<0xA9>");
  ASSERT_GE(c3, 0);
  ASSERT_GE(a9, 0);
  StreamDecoder sd2(tok);
  EXPECT_EQ(sd2.push(c3), "");
  EXPECT_EQ(sd2.push(a9), "é");
  // A character cut short: finish() flushes it as U+FFFD.
  EXPECT_EQ(sd2.push(243), "");
  EXPECT_EQ(sd2.push(162), "");
  EXPECT_EQ(sd2.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(sd2.finish(), "");
  // A lead byte followed by something that cannot continue it is emitted at once as U+FFFD.
  StreamDecoder sd3(tok);
  EXPECT_EQ(sd3.push(c3), "");
  EXPECT_EQ(sd3.push(403), "\xEF\xBF\xBD Once");
}

TEST(Tokenizer, Utf8CompletePrefix) {
  using lc::utf8_complete_prefix;
  EXPECT_EQ(utf8_complete_prefix(""), 0u);
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("a\xC3"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xC3\xA9"), 3u);
  EXPECT_EQ(utf8_complete_prefix("\xE2\x82"), 0u);
  EXPECT_EQ(utf8_complete_prefix("\xE2\x82\xAC"), 3u);
  EXPECT_EQ(utf8_complete_prefix("x\xF0\x9F\x98"), 1u);
  EXPECT_EQ(utf8_complete_prefix("x\xF0\x9F\x98\x80"), 5u);
  // Invalid bytes are not held back (they can never complete).
  EXPECT_EQ(utf8_complete_prefix("\x80"), 1u);
  EXPECT_EQ(utf8_complete_prefix("\xC3("), 2u);
  EXPECT_EQ(utf8_complete_prefix("\xE0\x80"), 2u);  // E0 80 is never valid (overlong)
  EXPECT_EQ(utf8_complete_prefix("\xF5"), 1u);
}

TEST(Tokenizer, SpecialTokensInText) {
  const Loaded gpt2 = load(vocab_path("gpt-2"));
  EXPECT_EQ(gpt2.tok->encode("<|endoftext|>", false, true), Ids({50256}));
  const Ids plain = gpt2.tok->encode("<|endoftext|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  for (int32_t id : plain) EXPECT_NE(id, 50256);
  const Ids mixed = gpt2.tok->encode("a<|endoftext|>b", false, true);
  EXPECT_EQ(mixed, Ids({64, 50256, 65}));
  EXPECT_EQ(gpt2.tok->decode(mixed), "ab");
  EXPECT_EQ(gpt2.tok->decode(mixed, true), "a<|endoftext|>b");

  // Phi-3 (SentencePiece): after a special token the text gets the space prefix again.
  const Loaded phi = load(vocab_path("phi-3"));
  const Ids chat = phi.tok->encode("<|user|>Hi<|end|>", false, true);
  ASSERT_EQ(chat.size(), 3u);
  EXPECT_EQ(chat[0], 32010);
  EXPECT_EQ(chat[1], phi.tok->encode("Hi", false)[0]);
  EXPECT_EQ(chat[2], 32007);
  // llama.cpp drops the whitespace after Phi-3's special tokens (keyed on general.name); its
  // tokenization of this chat turn is [1, 32010, 317, 21554, 13, 17628, 32007, 32001].
  EXPECT_EQ(phi.tok->encode("<|user|>\nSYS\nHI<|end|>\n<|assistant|>\n", true, true),
            Ids({1, 32010, 317, 21554, 13, 17628, 32007, 32001}));
  const Ids no_parse = phi.tok->encode("<|user|>", false, false);
  for (int32_t id : no_parse) EXPECT_NE(id, 32010);

  // deepseek-coder's user-defined tokens are recognised even without parse_special (as in
  // Hugging Face tokenizers and llama.cpp); its control tokens only with it.
  const Loaded ds = load(vocab_path("deepseek-coder"));
  EXPECT_EQ(ds.tok->encode("ü", false, false), Ids({32009}));
  EXPECT_EQ(ds.tok->encode("<｜begin▁of▁sentence｜>", false, true), Ids({32013}));
  EXPECT_NE(ds.tok->encode("<｜begin▁of▁sentence｜>", false, false), Ids({32013}));
}

TEST(Tokenizer, Gpt2DecodeCleansSpacesLikeLlamaCpp) {
  const Loaded l = load(vocab_path("gpt-2"));
  const std::string in = "a , b . c ? d ! e ' f ' g 's h 'm i 're j 've k 't l 'd m 'll";
  EXPECT_EQ(l.tok->decode(l.tok->encode(in, false)),
            "a, b. c? d! e'f'g's h'm i're j've k 't l 'd m 'll");
  // deepseek-coder turns the clean-up off.
  const Loaded ds = load(vocab_path("deepseek-coder"));
  EXPECT_EQ(ds.tok->decode(ds.tok->encode("x , y 's", false)), "x , y 's");
}

// ---- synthetic vocabularies -------------------------------------------------------------

GgufWriter spm_writer(const std::vector<std::string>& toks, const std::vector<float>& scores,
                      const std::vector<int32_t>& types) {
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::of_str("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::of_strs(toks));
  w.set("tokenizer.ggml.scores", GgufValue::of_f32s(scores));
  w.set("tokenizer.ggml.token_type", GgufValue::of_i32s(types));
  return w;
}

TEST(Tokenizer, SpmMergesByScoreAndFallsBackToUnk) {
  // 0 <unk>, 1 <s>, 2 </s>, then pieces; no byte tokens.
  const std::vector<std::string> toks = {"<unk>", "<s>", "</s>", "▁",  "a",   "b",
                                         "c",     "ab",  "bc",   "▁a", "<x>", "<x><y>"};
  std::vector<float> scores = {0, 0, 0, -1, -2, -2, -2, -1.5f, -1.0f, -3, 0, 0};
  const std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4, 3};
  {
    const Loaded l = from_writer(spm_writer(toks, scores, types));
    // "▁abc": "bc" (-1.0) merges before "ab" (-1.5), which is then gone; "▁a" (-3) comes last.
    EXPECT_EQ(l.tok->encode("abc", false), Ids({9, 8}));
    EXPECT_EQ(l.tok->encode("abc", true), Ids({1, 9, 8}));
    // "é" has neither a token nor byte tokens: <unk>.
    EXPECT_EQ(l.tok->encode("aé", false), Ids({9, 0}));
    EXPECT_EQ(l.tok->decode({9, 0}), "a");
    EXPECT_EQ(l.tok->decode({9, 0}, true), "a<unk>");
  }
  scores[7] = -0.5f;  // now "ab" wins
  {
    const Loaded l = from_writer(spm_writer(toks, scores, types));
    EXPECT_EQ(l.tok->encode("abc", false), Ids({3, 7, 6}));
    // Special texts: the longest is taken first; user-defined "<x>" is found without
    // parse_special, control "<x><y>" only with it.
    EXPECT_EQ(l.tok->encode("<x><y>", false, true), Ids({11}));
    const Ids plain = l.tok->encode("<x><y>", false, false);
    ASSERT_FALSE(plain.empty());
    EXPECT_EQ(plain[0], 10);
    for (int32_t id : plain) EXPECT_NE(id, 11);
    // Whitespace after a special token stays (it is dropped only for Phi-3, below).
    EXPECT_EQ(l.tok->encode("<x><y> a", false, true), Ids({11, 3, 9}));
  }
  {
    GgufWriter w = spm_writer(toks, scores, types);
    w.set("general.name", GgufValue::of_str("Phi-3-mini-4k-instruct"));
    const Loaded l = from_writer(w);
    EXPECT_EQ(l.tok->encode("<x><y> a", false, true), Ids({11, 9}));
  }
  {
    GgufWriter w = spm_writer(toks, scores, types);
    w.set("tokenizer.ggml.add_space_prefix", GgufValue::of_bool(false));
    w.set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(false));
    w.set("tokenizer.ggml.add_eos_token", GgufValue::of_bool(true));
    const Loaded l = from_writer(w);
    EXPECT_EQ(l.tok->encode("abc", true), Ids({7, 6, 2}));
    EXPECT_EQ(l.tok->decode({3, 9}), "  a");  // no prefix space to remove
  }
}

TEST(Tokenizer, EndOfGenerationSet) {
  GgufWriter w = spm_writer({"<unk>", "<s>", "</s>", "<|eot_id|>", "<|im_end|>", "<|eom_id|>", "x"},
                            {0, 0, 0, 0, 0, 0, 0}, {2, 3, 3, 3, 4, 3, 1});
  w.set("tokenizer.ggml.eom_token_id", GgufValue::of_u32(5));
  const Loaded l = from_writer(w);
  EXPECT_EQ(l.tok->eos(), 2);  // SentencePiece default
  EXPECT_EQ(l.tok->eot(), 3);  // found by its text
  EXPECT_EQ(l.tok->eom(), 5);
  // "<|im_end|>" is user-defined here, not a control token: not an end of generation.
  EXPECT_EQ(l.tok->eog_ids(), Ids({2, 3, 5}));
  EXPECT_FALSE(l.tok->is_eog(4));
  EXPECT_FALSE(l.tok->is_eog(6));

  w.set("tokenizer.ggml.eot_token_id", GgufValue::of_u32(6));  // the key wins over the text
  w.set("tokenizer.ggml.eos_token_id", GgufValue::of_u32(4));
  const Loaded k = from_writer(w);
  EXPECT_EQ(k.tok->eot(), 6);
  EXPECT_EQ(k.tok->eog_ids(), Ids({2, 3, 4, 5, 6}));  // "</s>" still counts: a control token
}

GgufWriter bpe_writer(const std::string& pre) {
  // Byte-level: the GPT-2 mapping leaves printable ASCII as it is.
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::of_str("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::of_str(pre));
  w.set("tokenizer.ggml.tokens",
        GgufValue::of_strs({"a", "b", "c", "ab", "abc", "<|end|>", "1", "2", "12"}));
  w.set("tokenizer.ggml.token_type", GgufValue::of_i32s({1, 1, 1, 1, 1, 3, 1, 1, 1}));
  w.set("tokenizer.ggml.merges", GgufValue::of_strs({"a b", "1 2"}));
  return w;
}

TEST(Tokenizer, BpeMergesAndPreTokenizerFamilies) {
  {
    GgufWriter w = bpe_writer("gpt-2");
    const Loaded l = from_writer(w);
    EXPECT_EQ(l.tok->encode("abc", false), Ids({3, 2}));  // only "a b" merges
    EXPECT_EQ(l.tok->encode("12", false), Ids({8}));
    EXPECT_EQ(l.tok->eog_ids(), Ids({5}));  // "<|end|>" is a control token
    EXPECT_FALSE(l.tok->add_bos());
  }
  {
    // llama3 pre-tokenizer: a word that is a token is taken whole (ignore_merges), and BOS is
    // added unless the file says otherwise.
    GgufWriter w = bpe_writer("llama-bpe");
    w.set("tokenizer.ggml.bos_token_id", GgufValue::of_u32(5));
    const Loaded l = from_writer(w);
    EXPECT_EQ(l.tok->pre_name(), "llama-bpe");
    EXPECT_EQ(l.tok->encode("abc", false), Ids({4}));
    EXPECT_EQ(l.tok->encode("abc", true), Ids({5, 4}));
  }
  {
    // smollm: every digit is its own word, so "12" cannot merge.
    GgufWriter w = bpe_writer("smollm");
    const Loaded l = from_writer(w);
    EXPECT_EQ(l.tok->encode("12", false), Ids({6, 7}));
  }
}

TEST(Tokenizer, PreTokenizerSplits) {
  const auto split = [](const std::string& pre, const std::string& text) {
    lc::PreTokenizer p(lc::pretokenizer_info(pre).regexes);
    std::vector<std::string> out;
    for (std::string_view w : p.split(text)) out.emplace_back(w);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split("gpt-2", "Hello world's 12345  x"),
            V({"Hello", " world", "'s", " 12345", " ", " x"}));
  EXPECT_EQ(split("llama3", "Hello world 12345\n\n x"),
            V({"Hello", " world", " ", "123", "45", "\n\n", " x"}));
  EXPECT_EQ(split("qwen2", "ab 123"), V({"ab", " ", "1", "2", "3"}));
  EXPECT_EQ(split("smollm", "abc 123 def"), V({"abc", " ", "1", "2", "3", " def"}));
  EXPECT_EQ(split("deepseek-coder", "foo(x1)\n"), V({"foo", "(", "x", "1", ")", "\n"}));
  EXPECT_EQ(split("deepseek-llm", "Hello 世界 42!"), V({"Hello", " ", "世界", " ", "42", "!"}));
  EXPECT_EQ(split("default", "it's"), V({"it", "'", "s"}));
  EXPECT_TRUE(split("gpt-2", "").empty());
}

// SmolLM2's tokenizer.json turned into GGUF metadata the way convert_hf_to_gguf.py does (vocab in
// id order, merges, added tokens as control tokens, pre "smollm").
TEST(Tokenizer, SmolLM2MatchesHuggingFaceTokenizer) {
  const auto j = nlohmann::json::parse(
      read_file(shared_path("models/vocab/smollm2-135m-instruct/tokenizer.json")));
  const auto& vocab = j.at("model").at("vocab");
  std::vector<std::string> toks(vocab.size());
  std::vector<int32_t> types(vocab.size(), 1);
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    toks.at(it.value().get<size_t>()) = it.key();
  for (const auto& a : j.at("added_tokens"))
    types.at(a.at("id").get<size_t>()) = a.at("special").get<bool>() ? 3 : 4;
  std::vector<std::string> merges;
  for (const auto& m : j.at("model").at("merges")) merges.push_back(m.get<std::string>());
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::of_str("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::of_str("smollm"));
  w.set("tokenizer.ggml.tokens", GgufValue::of_strs(toks));
  w.set("tokenizer.ggml.token_type", GgufValue::of_i32s(types));
  w.set("tokenizer.ggml.merges", GgufValue::of_strs(merges));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::of_u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::of_u32(2));
  const Loaded l = from_writer(w, "smollm2.gguf");
  EXPECT_EQ(l.tok->eog_ids(), Ids({0, 2}));  // <|endoftext|>, <|im_end|>

  // Expected ids from Hugging Face's tokenizers.js with this tokenizer.json.
  const std::vector<Golden> cases = {
      {"Führer", {54, 46991, 16863}},
      {"  ", {256}},
      {"   ", {333}},
      {" Hello, world!", {38699, 28, 905, 17}},
      {" this is 🦙.cpp", {451, 314, 15107, 116, 243, 30, 35392}},
      {"w048 7tuijk dsdfhu", {103, 32, 36, 40, 216, 39, 24961, 47112, 21554, 3492, 15995}},
      {"нещо на Български",
       {8831, 6643, 46438, 6485, 40610, 5470, 235, 156, 228, 12681, 29441, 6511, 9175, 39511,
        7872}},
      {"    Hello\n    Hello", {333, 38699, 472, 38699}},
      {"3333333", {35, 35, 35, 35, 35, 35, 35}},
      {"Hello world 12345 and 3.14",
       {19556, 905, 216, 33, 34, 35, 36, 37, 284, 216, 35, 30, 33, 36}},
      {"I've 2 cats, they're 10 years old!",
       {57, 3543, 216, 34, 7680, 28, 502, 2316, 216, 33, 32, 929, 1573, 17}},
      {"  indented\n\tcode(x) == 42;",
       {216, 641, 6574, 198, 197, 4635, 24, 104, 25, 1758, 216, 36, 34, 43}},
      // "½" is a number (Unicode No): the Rust tokenizers' Digits pre-tokenizer (char::is_numeric)
      // and llama.cpp (\p{N}) make it a word of its own: "Ġ" "Â½". tokenizers.js only isolates
      // ASCII digits here and gives "ĠÂ" "½" (3351 138) instead.
      {"ied 4 ½ months", {885, 216, 36, 216, 16738, 2704}},
  };
  for (const Golden& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(l.tok->encode(c.text, false), c.ids);
    EXPECT_EQ(l.tok->decode(c.ids), c.text);
  }
  EXPECT_EQ(l.tok->encode("<|im_start|>user", false, true)[0], 1);
}

TEST(Tokenizer, ErrorsNameTheProblem) {
  const auto message = [](const GgufWriter& w) {
    try {
      from_writer(w);
    } catch (const lc::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::of_str("bert"));
    w.set("tokenizer.ggml.tokens", GgufValue::of_strs({"a"}));
    const std::string m = message(w);
    EXPECT_NE(m.find("unknown tokenizer model 'bert'"), std::string::npos) << m;
    EXPECT_NE(m.find("tokenizer.ggml.model"), std::string::npos) << m;
  }
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::of_str("llama"));
    EXPECT_NE(message(w).find("missing tokenizer.ggml.model"), std::string::npos) << message(w);
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::of_str("llama"));
    EXPECT_NE(message(w).find("tokenizer.ggml.tokens"), std::string::npos) << message(w);
  }
  {
    GgufWriter w = spm_writer({"a", "b"}, {0, 0}, {1});
    EXPECT_NE(message(w).find("tokenizer.ggml.token_type has 1 entries"), std::string::npos)
        << message(w);
  }
  {
    GgufWriter w = spm_writer({"a", "b"}, {0}, {1, 1});
    EXPECT_NE(message(w).find("tokenizer.ggml.scores"), std::string::npos) << message(w);
  }
  {
    GgufWriter w = spm_writer({"a", "b"}, {0, 0}, {1, 9});
    EXPECT_NE(message(w).find("tokenizer.ggml.token_type[1] = 9"), std::string::npos) << message(w);
  }
  {
    GgufWriter w = bpe_writer("no-such-pre");
    const std::string m = message(w);
    EXPECT_NE(m.find("unknown pre-tokenizer 'no-such-pre'"), std::string::npos) << m;
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::of_str("gpt2"));
    w.set("tokenizer.ggml.pre", GgufValue::of_str("gpt-2"));
    w.set("tokenizer.ggml.tokens", GgufValue::of_strs({"a"}));
    EXPECT_NE(message(w).find("missing tokenizer.ggml.merges"), std::string::npos) << message(w);
  }
  {
    GgufWriter w = bpe_writer("gpt-2");
    w.set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(true));
    EXPECT_NE(message(w).find("tokenizer.ggml.bos_token_id"), std::string::npos) << message(w);
  }
}

}  // namespace
