// Passkey retrieval: haystack construction (lengths in the model's tokens, needle depth, both
// forms, chat template, custom filler, tokenizers where pieces do not concatenate), scoring, seeded
// keys, depth parsing, and `longctx eval passkey` end to end on passkey-llama-tiny.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/passkey.h"
#include "model/model.h"
#include "support/paths.h"

namespace lc::eval {
namespace {

using test::shared_path;

const std::string kTiny = shared_path("models/passkey-llama-tiny.gguf");

std::shared_ptr<const Model> load(const std::string& rel) {
  static std::map<std::string, std::shared_ptr<const Model>> cache;
  auto& m = cache[rel];
  if (!m) m = Model::load(shared_path(rel));
  return m;
}
const Tokenizer& tiny_tok() { return load("models/passkey-llama-tiny.gguf")->tokenizer(); }

std::string noise() { return std::string(passkey_noise_line()); }

// The landmark prompt as the reference builds it: lines joined with "\n" (or `sep`).
std::string landmark_text(const std::string& key, int64_t n, int64_t j,
                          const std::string& sep = "\n") {
  std::vector<std::string> lines;
  for (int64_t i = 0; i < j; ++i) lines.push_back(noise());
  lines.push_back(passkey_needle(key));
  for (int64_t i = j; i < n; ++i) lines.push_back(noise());
  lines.push_back("What is the pass key? The pass key is");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) out += (i ? sep : "") + lines[i];
  return out;
}

// InfiniteBench: noise*j + needle + noise*(N-j), noise and needle ending in "\n", in its prompt.
std::string infinitebench_context(const std::string& key, int64_t n, int64_t j) {
  std::string ctx;
  for (int64_t i = 0; i < j; ++i) ctx += noise() + "\n";
  ctx += passkey_needle(key) + "\n";
  for (int64_t i = j; i < n; ++i) ctx += noise() + "\n";
  return ctx;
}
std::string infinitebench_text(const std::string& key, int64_t n, int64_t j) {
  return std::string(passkey_intro()) + "\n\n" + infinitebench_context(key, n, j) + "\n\n" +
         "What is the pass key?";
}

// Checks shared by every built prompt.
void expect_consistent(const Tokenizer& tok, const PasskeyBuilder& b, const PasskeyPrompt& p,
                       int64_t target, double depth) {
  SCOPED_TRACE(::testing::Message() << "target " << target << " depth " << depth);
  const auto size = static_cast<int64_t>(p.ids.size());
  // within one filler unit of the target, never over it
  EXPECT_LE(size, target);
  EXPECT_LT(target - size, b.max_unit_tokens() + (p.assembled ? 0 : 2));
  // the ids are the tokenization of the text, BOS first
  EXPECT_EQ(p.ids, b.tokenize(p.text));
  ASSERT_FALSE(p.ids.empty());
  EXPECT_EQ(p.ids[0], tok.bos());
  // the needle's tokens decode to the needle
  ASSERT_GE(p.needle_pos, p.filler_pos);
  ASSERT_LE(p.needle_pos + p.needle_tokens, size);
  const std::vector<int32_t> needle_ids(p.ids.begin() + p.needle_pos,
                                        p.ids.begin() + p.needle_pos + p.needle_tokens);
  EXPECT_NE(tok.decode(needle_ids).find(passkey_needle(p.key)), std::string::npos)
      << tok.decode(needle_ids);
  // the needle sits at the requested depth of the filler, to within one unit
  if (p.assembled) {
    EXPECT_EQ(p.needle_pos, p.filler_pos + p.filler_before);
  }
  EXPECT_EQ(p.units_before, std::llround(depth * static_cast<double>(p.units)));
  EXPECT_NEAR(static_cast<double>(p.filler_before), depth * static_cast<double>(p.filler_tokens),
              static_cast<double>(b.max_unit_tokens()) + 2);
  // the key can be read back from the prompt
  const size_t at = p.text.find("The pass key is ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(first_digit_run(p.text.substr(at)), p.key);
  // one needle
  const std::string needle = passkey_needle(p.key);
  EXPECT_EQ(p.text.find(needle, p.text.find(needle) + 1), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Construction

TEST(PasskeyBuild, LandmarkMatchesTheReferencePrompts) {
  // The model's reference prompts: 8 noise lines, the needle after 0, 2, 4, 5, 7 and 8 of them.
  std::ifstream in(shared_path("reference/passkey-llama-tiny-greedy.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  const auto ref = nlohmann::json::parse(ss.str());
  const Tokenizer& tok = tiny_tok();
  PasskeyBuilder b(tok, {});
  const double depths[] = {0, 0.25, 0.5, 0.625, 0.875, 1};
  ASSERT_EQ(ref["cases"].size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const auto& c = ref["cases"][i];
    const std::string text = c["prompt"];
    const auto target = static_cast<int64_t>(tok.encode(text, true).size());
    const PasskeyPrompt p = b.build(target, depths[i], {c["key"], 0});
    EXPECT_EQ(p.text, text) << i;
    EXPECT_EQ(p.units, 8);
    EXPECT_TRUE(p.assembled);
    EXPECT_EQ(static_cast<int64_t>(p.ids.size()), target);
    expect_consistent(tok, b, p, target, depths[i]);
  }
}

TEST(PasskeyBuild, LandmarkLengthsAndDepths) {
  const Tokenizer& tok = tiny_tok();
  PasskeyBuilder b(tok, {});
  for (int64_t target : {200, 300, 512, 1000, 4096, 20000})
    for (double depth : {0.0, 0.1, 0.25, 0.5, 0.9, 1.0}) {
      const PasskeyPrompt p = b.build(target, depth, {"31337", 0});
      EXPECT_TRUE(p.assembled);
      EXPECT_EQ(p.text, landmark_text("31337", p.units, p.units_before));
      expect_consistent(tok, b, p, target, depth);
    }
}

TEST(PasskeyBuild, LandmarkJoinedBySpaces) {
  const Tokenizer& tok = tiny_tok();
  PasskeyConfig cfg;
  cfg.separator = " ";
  PasskeyBuilder b(tok, cfg);
  for (int64_t target : {200, 512, 3000})
    for (double depth : {0.0, 0.3, 1.0}) {
      const PasskeyPrompt p = b.build(target, depth, {"4711", 0});
      EXPECT_EQ(p.text, landmark_text("4711", p.units, p.units_before, " "));
      EXPECT_EQ(p.text.find('\n'), std::string::npos);
      expect_consistent(tok, b, p, target, depth);
    }
  PasskeyConfig bad;
  bad.separator = "x";
  EXPECT_THROW(PasskeyBuilder(tok, bad), Error);
}

TEST(PasskeyBuild, InfiniteBenchForm) {
  const Tokenizer& tok = tiny_tok();
  PasskeyBuilder b(tok, {PasskeyFormat::InfiniteBench, {}, std::nullopt});
  for (int64_t target : {300, 1000, 8192})
    for (double depth : {0.0, 0.4, 1.0}) {
      const PasskeyPrompt p = b.build(target, depth, {"04217", 0});
      EXPECT_EQ(p.text, infinitebench_text("04217", p.units, p.units_before));
      EXPECT_TRUE(p.assembled);
      expect_consistent(tok, b, p, target, depth);
    }
  // no room for even one unit
  const int64_t least = b.min_tokens("04217");
  const PasskeyPrompt p = b.build(least, 0.5, {"04217", 0});
  EXPECT_EQ(p.units, 0);
  EXPECT_EQ(p.text, infinitebench_text("04217", 0, 0));
  EXPECT_THROW(b.build(least - 1, 0.5, {"04217", 0}), Error);
}

TEST(PasskeyBuild, ChatTemplateWrapsTheInfiniteBenchText) {
  const auto m = load("models/vocab/ggml-vocab-phi-3.gguf");
  const Tokenizer& tok = m->tokenizer();
  PasskeyBuilder b(tok, {PasskeyFormat::InfiniteBench, {}, ChatFormat::Phi3});
  const PasskeyPrompt p = b.build(2000, 0.5, {"99001", 0});
  const std::string content = infinitebench_text("99001", p.units, p.units_before);
  EXPECT_EQ(p.text, apply_chat_template(ChatFormat::Phi3, {{"user", content}}, true));
  expect_consistent(tok, b, p, 2000, 0.5);
  // the template's markers are special tokens, not text
  const int32_t user = tok.find_token("<|user|>");
  ASSERT_GE(user, 0);
  EXPECT_NE(std::find(p.ids.begin(), p.ids.end(), user), p.ids.end());
}

TEST(PasskeyBuild, OtherTokenizers) {
  for (const char* v :
       {"models/vocab/ggml-vocab-llama-spm.gguf", "models/vocab/ggml-vocab-gpt-2.gguf"}) {
    SCOPED_TRACE(v);
    const auto m = load(v);
    const Tokenizer& tok = m->tokenizer();
    for (PasskeyFormat f : {PasskeyFormat::Landmark, PasskeyFormat::InfiniteBench}) {
      PasskeyBuilder b(tok, {f, {}, std::nullopt});
      const PasskeyPrompt p = b.build(3000, 0.3, {"12345", 0});
      if (tok.bos() >= 0 && tok.add_bos()) {
        expect_consistent(tok, b, p, 3000, 0.3);
      } else {
        EXPECT_LE(static_cast<int64_t>(p.ids.size()), 3000);
        EXPECT_EQ(p.ids, b.tokenize(p.text));
      }
      EXPECT_TRUE(p.assembled);
    }
  }
}

TEST(PasskeyBuild, CustomFiller) {
  const Tokenizer& tok = tiny_tok();
  const std::string story =
      "Once upon a time, there was a little dog named Max. Max liked to run in the park! "
      "\"Can I play with you,\" asked the cat.\nThe sun was warm and the sky was blue.\n\nOne "
      "day Max found a big red ball (it was round.) He was very happy";
  const std::vector<std::string> units = passkey_split_filler(story);
  ASSERT_EQ(units.size(), 6u);
  EXPECT_EQ(units[0], "\nOnce upon a time, there was a little dog named Max.");
  EXPECT_EQ(units[1], " Max liked to run in the park!");
  EXPECT_EQ(units[2], " \"Can I play with you,\" asked the cat.");
  EXPECT_EQ(units[3], "\nThe sun was warm and the sky was blue.");
  EXPECT_EQ(units[4], "\n\nOne day Max found a big red ball (it was round.)");
  EXPECT_EQ(units[5], " He was very happy");
  std::string joined;
  for (const auto& u : units) joined += u;
  EXPECT_EQ(joined, "\n" + story);

  PasskeyBuilder b(tok, {PasskeyFormat::Landmark, units, std::nullopt});
  EXPECT_EQ(b.n_units(), 6u);
  std::set<std::string> starts;
  for (size_t first = 0; first < units.size(); ++first)
    for (int64_t target : {150, 400, 3000})
      for (double depth : {0.0, 0.5, 1.0}) {
        const PasskeyPrompt p = b.build(target, depth, {"4711", first});
        EXPECT_TRUE(p.assembled) << p.text;
        expect_consistent(tok, b, p, target, depth);
        EXPECT_EQ(p.text.find("grass"), std::string::npos);
        const std::string first_text = units[first].substr(units[first].find_first_not_of(" \n"));
        if (depth > 0) {
          starts.insert(p.text.substr(0, 10));
          EXPECT_EQ(p.text.rfind(first_text, 0), 0u) << p.text;
        }
      }
  EXPECT_EQ(starts.size(), units.size());  // the draw picks where the filler starts
  EXPECT_THROW(passkey_split_filler(" \n\t "), Error);
  EXPECT_EQ(passkey_split_filler("one line"), std::vector<std::string>{"\none line"});
}

TEST(PasskeyBuild, PiecesThatDoNotConcatenateFallBackToTheWholeText) {
  // Units cut inside words: their separate tokenizations differ from the text's.
  const Tokenizer& tok = tiny_tok();
  PasskeyBuilder b(tok,
                   {PasskeyFormat::Landmark, {"\nThe gr", "een grass gr", "ows."}, std::nullopt});
  bool any_fallback = false;
  for (int64_t target : {300, 1000})
    for (double depth : {0.0, 0.5, 1.0}) {
      const PasskeyPrompt p = b.build(target, depth, {"777", 1});
      any_fallback = any_fallback || !p.assembled;
      EXPECT_EQ(p.ids, b.tokenize(p.text));
      EXPECT_LE(static_cast<int64_t>(p.ids.size()), target);
      // one more unit would not fit
      EXPECT_LT(target - static_cast<int64_t>(p.ids.size()), b.max_unit_tokens() + 2);
      const std::vector<int32_t> needle_ids(p.ids.begin() + p.needle_pos,
                                            p.ids.begin() + p.needle_pos + p.needle_tokens);
      EXPECT_NE(tok.decode(needle_ids).find(passkey_needle("777")), std::string::npos);
    }
  EXPECT_TRUE(any_fallback);
}

// ---------------------------------------------------------------------------------------------
// Scoring, seeds, depths

TEST(PasskeyScore, FirstRunOfDigits) {
  EXPECT_EQ(first_digit_run(" 12345."), "12345");
  EXPECT_EQ(first_digit_run("The key is 123 and 456"), "123");
  EXPECT_EQ(first_digit_run("no digits"), "");
  EXPECT_EQ(first_digit_run(""), "");
  EXPECT_EQ(first_digit_run("0042x"), "0042");
  EXPECT_TRUE(passkey_correct(" 12345.", "12345"));
  EXPECT_TRUE(passkey_correct("12345", "12345"));
  EXPECT_FALSE(passkey_correct(" 1234.", "12345"));   // too short
  EXPECT_FALSE(passkey_correct(" 123456", "12345"));  // too long
  EXPECT_FALSE(passkey_correct(" 7", "007"));         // leading zeros matter
  EXPECT_FALSE(passkey_correct(" 0007", "007"));
  EXPECT_TRUE(passkey_correct(" 007 is it", "007"));
  EXPECT_FALSE(passkey_correct(" none", "12345"));    // no digits
  EXPECT_FALSE(passkey_correct("", ""));              // no digits, even for an empty key
  EXPECT_FALSE(passkey_correct(" 1 2345", "12345"));  // later runs are ignored
  EXPECT_FALSE(passkey_correct(" 99, I mean 12345", "12345"));
}

TEST(PasskeySeed, ReproducibleAndIndependentOfOtherCells) {
  EXPECT_EQ(passkey_trial_seed(1, 1024, 0.5, 3), passkey_trial_seed(1, 1024, 0.5, 3));
  // 0.1 * 3 and 0.3 are the same depth
  EXPECT_EQ(passkey_trial_seed(1, 1024, 0.1 * 3, 0), passkey_trial_seed(1, 1024, 0.3, 0));
  std::set<uint64_t> seeds;
  for (uint64_t s : {0, 1})
    for (int64_t L : {1024, 4096})
      for (double d : {0.0, 0.5})
        for (int64_t t : {0, 1, 2}) seeds.insert(passkey_trial_seed(s, L, d, t));
  EXPECT_EQ(seeds.size(), 24u);

  // the draws depend on the trial seed only
  const PasskeyDraw a = passkey_draw(PasskeyFormat::Landmark, 7, 42);
  const PasskeyDraw b = passkey_draw(PasskeyFormat::Landmark, 7, 42);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.first_unit, b.first_unit);
  std::set<std::string> keys;
  bool leading_zero = false;
  for (uint64_t s = 0; s < 2000; ++s) {
    const PasskeyDraw ib = passkey_draw(PasskeyFormat::InfiniteBench, 1, s);
    ASSERT_EQ(ib.key.size(), 5u);
    for (char c : ib.key) ASSERT_TRUE(c >= '0' && c <= '9');
    leading_zero = leading_zero || ib.key[0] == '0';
    EXPECT_EQ(ib.first_unit, 0u);
    const PasskeyDraw lm = passkey_draw(PasskeyFormat::Landmark, 5, s);
    const long v = std::stol(lm.key);
    EXPECT_GE(v, 1);
    EXPECT_LE(v, 50000);
    EXPECT_EQ(std::to_string(v), lm.key);
    EXPECT_LT(lm.first_unit, 5u);
    keys.insert(lm.key);
  }
  EXPECT_TRUE(leading_zero);
  EXPECT_GT(keys.size(), 1900u);

  // the same draw gives the same prompt
  PasskeyBuilder builder(tiny_tok(), {});
  const PasskeyDraw d =
      passkey_draw(PasskeyFormat::Landmark, 1, passkey_trial_seed(9, 600, 0.5, 1));
  EXPECT_EQ(builder.build(600, 0.5, d).ids, builder.build(600, 0.5, d).ids);
}

TEST(PasskeyDepths, Parse) {
  EXPECT_EQ(parse_depths("0:1:0.25"), (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  const std::vector<double> tenth = parse_depths("0:1:0.1");
  ASSERT_EQ(tenth.size(), 11u);
  EXPECT_EQ(tenth[3], 0.3);
  EXPECT_EQ(tenth[10], 1.0);
  EXPECT_EQ(parse_depths("0.5"), std::vector<double>{0.5});
  EXPECT_EQ(parse_depths("0, 0.5,1"), (std::vector<double>{0, 0.5, 1}));
  EXPECT_EQ(parse_depths("0:0.5:0.2,1"), (std::vector<double>{0, 0.2, 0.4, 1}));
  for (const char* bad : {"", "x", "1.5", "-0.1", "0:1", "0:1:0", "1:0:0.1", "0.5,0.5", "0:1:x"})
    EXPECT_THROW(parse_depths(bad), Error) << bad;
}

TEST(PasskeyFormat, Names) {
  EXPECT_EQ(passkey_format_from_name("landmark"), PasskeyFormat::Landmark);
  EXPECT_EQ(passkey_format_from_name("infinitebench"), PasskeyFormat::InfiniteBench);
  EXPECT_EQ(passkey_format_name(PasskeyFormat::InfiniteBench), "infinitebench");
  EXPECT_THROW(passkey_format_from_name("ruler"), Error);
}

// ---------------------------------------------------------------------------------------------
// End to end

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(PasskeyCli, TinyModelFindsTheKeyInsideItsContext) {
  const std::string dir = test::temp_dir();
  const std::string json = dir + "/pk.json";
  const std::string cmd = test::longctx_binary() + " eval passkey -m " + kTiny +
                          " --lengths 300 --trials 2 --memory full -t 2";
  std::string out;
  ASSERT_EQ(test::run_command(cmd + " --depths 0,1 --seed 5 --json " + json, &out), 0) << out;
  EXPECT_NE(out.find("100%"), std::string::npos) << out;
  const auto j = read_json(json);
  EXPECT_EQ(j["settings"]["format"], "landmark");
  EXPECT_EQ(j["settings"]["trials"], 2);
  EXPECT_EQ(j["settings"]["memory"], "full (f16 KV)");  // the default KV type
  EXPECT_TRUE(j["machine"].contains("cpu"));
  ASSERT_EQ(j["cells"].size(), 2u);
  for (const auto& c : j["cells"]) {
    EXPECT_EQ(c["length"], 300);
    EXPECT_LE(c["tokens_max"].get<int64_t>(), 300);
    EXPECT_GT(c["tokens_min"].get<int64_t>(), 240);
    EXPECT_EQ(c["trials"], 2);
    EXPECT_EQ(c["correct"], 2) << c.dump(1);
    EXPECT_EQ(c["accuracy"], 1.0);
    ASSERT_EQ(c["answers"].size(), 2u);
    for (const auto& a : c["answers"]) {
      EXPECT_EQ(first_digit_run(a["answer"].get<std::string>()), a["key"].get<std::string>());
      EXPECT_TRUE(a["correct"].get<bool>());
    }
  }
  EXPECT_EQ(j["cells"][0]["depth"], 0.0);
  EXPECT_EQ(j["cells"][1]["depth"], 1.0);

  // Resume: the finished cells are kept, only the new depth runs.
  std::string out2;
  ASSERT_EQ(test::run_command(cmd + " --depths 0,0.5,1 --seed 5 --resume " + json, &out2), 0)
      << out2;
  EXPECT_NE(out2.find("2 of 3 cells already done"), std::string::npos) << out2;
  const auto j2 = read_json(json);
  ASSERT_EQ(j2["cells"].size(), 3u);
  EXPECT_EQ(j2["cells"][0]["answers"], j["cells"][0]["answers"]);
  EXPECT_EQ(j2["cells"][1]["depth"], 0.5);
  EXPECT_EQ(j2["cells"][2]["answers"], j["cells"][1]["answers"]);

  // Different settings are refused.
  std::string out3;
  EXPECT_NE(test::run_command(cmd + " --depths 0,1 --seed 6 --resume " + json, &out3), 0);
  EXPECT_NE(out3.find("seed"), std::string::npos) << out3;
}

TEST(PasskeyCli, ClearErrors) {
  const std::string base = test::longctx_binary() + " eval passkey -m " + kTiny + " -t 2";
  std::string out;
  EXPECT_NE(test::run_command(base + " --lengths 20", &out), 0);
  EXPECT_NE(out.find("too short"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(test::run_command(base + " --depths 0:2:0.5", &out), 0);
  EXPECT_NE(out.find("outside [0, 1]"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(test::run_command(base + " --format ruler", &out), 0);
  EXPECT_NE(out.find("infinitebench"), std::string::npos) << out;
}

}  // namespace
}  // namespace lc::eval
