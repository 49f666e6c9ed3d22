// The LongRoPE factor search: genome operators keep the grid and monotonicity, the search is a
// function of its seed, resumes exactly from its log, never scores a genome twice, and improves
// on its seeds on a real model; factors files round-trip through GGUF and the rope.factors
// setting; the progressive rescale formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/gguf.h"
#include "engine/session_spec.h"
#include "eval/longrope_factors.h"
#include "eval/longrope_fitness.h"
#include "eval/longrope_genome.h"
#include "eval/longrope_search.h"
#include "model/model.h"
#include "model/rope/rope_config.h"
#include "support/paths.h"

namespace lc::eval {
namespace {

using test::shared_path;

GenomeBounds bounds(int hi, bool n_hat = false) {
  GenomeBounds b;
  b.lo = 100;
  b.hi = hi;
  b.search_n_hat = n_hat;
  return b;
}

TEST(LongRopeGenome, MutationKeepsGridBoundsAndMonotonicity) {
  std::mt19937_64 rng(7);
  const GenomeBounds b = bounds(1000, true);
  RopeGenome g = snap_genome({1.0, 1.0, 2.5, 8.0, 10.0, 10.0}, b);
  ASSERT_TRUE(genome_valid(g, b));
  int changed = 0;
  for (int i = 0; i < 2000; ++i) {
    RopeGenome c = mutate_genome(g, b, 0.3, rng);
    ASSERT_TRUE(genome_valid(c, b)) << c.key();
    if (!(c == g)) ++changed;
    g = c;
  }
  EXPECT_GT(changed, 1000);  // p 0.3 over 6 genes and n_hat: almost every draw changes something
}

TEST(LongRopeGenome, CrossoverTakesGenesFromTheParents) {
  std::mt19937_64 rng(3);
  const GenomeBounds b = bounds(900);
  const RopeGenome a = snap_genome({1.0, 2.0, 3.0, 4.0}, b);
  const RopeGenome p = snap_genome({1.5, 1.6, 8.0, 9.0}, b);
  int valid = 0, invalid = 0;
  for (int i = 0; i < 500; ++i) {
    const RopeGenome c = crossover_genomes(a, p, 0.5, rng);
    for (size_t k = 0; k < c.f.size(); ++k) EXPECT_TRUE(c.f[k] == a.f[k] || c.f[k] == p.f[k]);
    (genome_valid(c, b) ? valid : invalid)++;
  }
  // Taking p's 1.6 after a's 2.0 breaks monotonicity: some children are invalid, others are not.
  EXPECT_GT(valid, 0);
  EXPECT_GT(invalid, 0);
}

TEST(LongRopeGenome, SnapRoundsClampsAndMakesMonotone) {
  const GenomeBounds b = bounds(400);
  const RopeGenome g = snap_genome({0.5, 1.234, 1.1, 3.999, 7.0}, b);
  EXPECT_EQ(g.f, (std::vector<int>{100, 123, 123, 400, 400}));
  EXPECT_TRUE(genome_valid(g, b));
  EXPECT_FALSE(genome_valid(RopeGenome{{100, 150, 140}, 0}, b));
  EXPECT_FALSE(genome_valid(RopeGenome{{100, 150, 401}, 0}, b));
  EXPECT_FALSE(genome_valid(RopeGenome{{100, 150}, 4}, b));  // n_hat not searched
}

TEST(LongRopeGenome, ProgressiveRescaleFormula) {
  // lambda(L) = 1 + (lambda - 1)(L/L0 - 1)/(L'/L0 - 1): from 8x (4096 over 512) to 4x (2048).
  const std::vector<double> r = rescale_factors({1.0, 4.5, 8.0}, 512, 4096, 2048);
  EXPECT_NEAR(r[0], 1.0, 1e-12);
  EXPECT_NEAR(r[1], 1.0 + 3.5 * 3.0 / 7.0, 1e-12);
  EXPECT_NEAR(r[2], 1.0 + 7.0 * 3.0 / 7.0, 1e-12);
  const std::vector<double> up = rescale_factors({2.0}, 512, 1024, 4096);  // 2x -> 8x
  EXPECT_NEAR(up[0], 1.0 + 1.0 * 7.0, 1e-12);
  EXPECT_THROW(rescale_factors({2.0}, 512, 512, 4096), Error);
}

TEST(LongRopeGenome, SeedsAreTheMethodsFactors) {
  RopeSettings base = rope_defaults(32, RopeLayout::Adjacent);
  const auto pi = method_factors(base, RopeMethod::Linear, 8.0, 512, 4096);
  for (double f : pi) EXPECT_NEAR(f, 8.0, 1e-5);
  const auto ntk = method_factors(base, RopeMethod::FixedNtk, 8.0, 512, 4096);
  EXPECT_NEAR(ntk.front(), 1.0, 1e-6);
  EXPECT_NEAR(ntk.back(), 8.0, 1e-3);  // the lowest frequency gets the whole scale
  const auto yarn = method_factors(base, RopeMethod::Yarn, 8.0, 512, 4096);
  EXPECT_NEAR(yarn.front(), 1.0, 1e-6);
  EXPECT_NEAR(yarn.back(), 8.0, 1e-4);
  EXPECT_NEAR(longrope_attn_factor(4096, 512), std::sqrt(1 + std::log(8.0) / std::log(512.0)),
              1e-12);
}

// A fitness with a known optimum; counts how often each genome is scored on each document.
class SyntheticFitness : public RopeFitness {
 public:
  explicit SyntheticFitness(int64_t docs, int64_t fail_after = -1)
      : docs_(docs), fail_after_(fail_after) {}
  int64_t documents() const override { return docs_; }
  double score(const RopeGenome& g, int64_t doc) override {
    if (fail_after_ >= 0 && calls_ >= fail_after_) throw std::runtime_error("interrupted");
    ++calls_;
    ++seen_[g.key() + "#" + std::to_string(doc)];
    const std::vector<int> opt = {130, 220, 470, 610};
    double d = 0;
    for (size_t i = 0; i < g.f.size(); ++i) d += std::abs(g.f[i] - opt[i]) / 100.0;
    return 2.0 + d + 0.05 * static_cast<double>(doc);
  }
  int64_t calls_ = 0;
  std::map<std::string, int> seen_;

 private:
  int64_t docs_, fail_after_;
};

RopeSearchSettings small_settings(uint64_t seed) {
  RopeSearchSettings s;
  s.population = 12;
  s.parents = 6;
  s.mutations = 4;
  s.crossovers = 4;
  s.iterations = 6;
  s.seed = seed;
  return s;
}

std::vector<std::pair<std::string, RopeGenome>> seeds4(const GenomeBounds& b) {
  return {{"pi", snap_genome({8, 8, 8, 8}, b)}, {"ntk", snap_genome({1, 2, 4, 8}, b)}};
}

std::vector<std::string> keys(const RopeSearchResult& r) {
  std::vector<std::string> k;
  for (const auto& h : r.history) k.push_back(h.genome.key());
  return k;
}

TEST(LongRopeSearch, SameSeedSameSearchAndEveryCandidateNew) {
  const GenomeBounds b = bounds(1000);
  SyntheticFitness f1(2), f2(2), f3(2);
  const RopeSearchResult r1 = RopeSearch(small_settings(5), b, seeds4(b)).run(f1);
  const RopeSearchResult r2 = RopeSearch(small_settings(5), b, seeds4(b)).run(f2);
  const RopeSearchResult r3 = RopeSearch(small_settings(6), b, seeds4(b)).run(f3);
  EXPECT_EQ(keys(r1), keys(r2));
  EXPECT_EQ(r1.best.fitness, r2.best.fitness);
  EXPECT_NE(keys(r1), keys(r3));
  EXPECT_EQ(static_cast<int64_t>(r1.history.size()), 12 + 6 * 8);
  const std::vector<std::string> k = keys(r1);
  EXPECT_EQ(std::set<std::string>(k.begin(), k.end()).size(), k.size());
  for (const auto& h : r1.history) EXPECT_TRUE(genome_valid(h.genome, b)) << h.genome.key();
  // Never scored twice on one document.
  for (const auto& [key, n] : f1.seen_) EXPECT_EQ(n, 1) << key;
  EXPECT_LT(r1.best.fitness, r1.seed_best);
}

TEST(LongRopeSearch, RacingDropsCandidatesAfterOneDocument) {
  const GenomeBounds b = bounds(1000);
  SyntheticFitness f(3);
  const RopeSearchResult r = RopeSearch(small_settings(1), b, seeds4(b)).run(f);
  EXPECT_GT(r.raced_out, 0);
  for (const auto& h : r.history) {
    EXPECT_EQ(h.scores.size(), h.raced_out ? 1u : 3u);
    if (h.raced_out) {
      EXPECT_TRUE(std::isinf(h.fitness));
    }
  }
  EXPECT_EQ(f.calls_, r.document_scores);
  EXPECT_LT(r.document_scores, 3 * r.evaluations);
}

TEST(LongRopeSearch, ResumeContinuesExactlyWithoutReEvaluating) {
  const GenomeBounds b = bounds(1000);
  SyntheticFitness whole(2);
  const RopeSearchResult full = RopeSearch(small_settings(9), b, seeds4(b)).run(whole);

  // Interrupted after 50 document scores: the log holds what was done.
  RopeSearch first(small_settings(9), b, seeds4(b));
  nlohmann::json log;
  SyntheticFitness failing(2, 50);
  EXPECT_THROW(first.run(failing, [&](const RopeSearchResult& r) { log = first.log_json(r); }),
               std::runtime_error);
  const int64_t logged = static_cast<int64_t>(log.at("records").size());
  ASSERT_GT(logged, 10);

  RopeSearch second(small_settings(9), b, seeds4(b));
  second.load_log(nlohmann::json::parse(log.dump()));
  SyntheticFitness rest(2);
  const RopeSearchResult resumed = second.run(rest);
  EXPECT_EQ(keys(resumed), keys(full));
  EXPECT_EQ(resumed.best.genome, full.best.genome);
  EXPECT_EQ(resumed.cache_hits, logged);
  EXPECT_EQ(resumed.evaluations, static_cast<int64_t>(full.history.size()) - logged);
  for (const auto& [key, n] : rest.seen_)
    for (const auto& rec : log.at("records")) {
      RopeGenome g;
      g.f = rec.at("f").get<std::vector<int>>();
      EXPECT_NE(key.substr(0, key.find('#')), g.key()) << "a logged genome was scored again";
    }

  // A log of another search is refused.
  RopeSearch other(small_settings(10), b, seeds4(b));
  EXPECT_THROW(other.load_log(log), Error);
}

TEST(LongRopeSearch, BudgetStopsWithTheBestSoFar) {
  const GenomeBounds b = bounds(1000);
  RopeSearchSettings s = small_settings(2);
  s.budget_minutes = 1e-9;
  SyntheticFitness f(1);
  const RopeSearchResult r = RopeSearch(s, b, seeds4(b)).run(f);
  EXPECT_TRUE(r.stopped_by_budget);
  EXPECT_LT(static_cast<int64_t>(r.history.size()), 12 + 6 * 8);
}

// With n_hat searched, each iteration tries the best parent's factors with every n_hat candidate:
// a fitness whose optimum needs n_hat 64 finds it, every genome is new and valid, and the count
// stays within total_candidates().
TEST(LongRopeSearch, NHatStepTriesTheBestParentWithEveryCandidate) {
  class NHatFitness : public SyntheticFitness {
   public:
    NHatFitness() : SyntheticFitness(2) {}
    double score(const RopeGenome& g, int64_t doc) override {
      return SyntheticFitness::score(g, doc) + (g.n_hat == 64 ? 0.0 : 0.5);
    }
  };
  const GenomeBounds b = bounds(1000, true);
  NHatFitness f;
  RopeSearch search(small_settings(3), b, seeds4(b));
  const RopeSearchResult r = search.run(f);
  EXPECT_EQ(r.best.genome.n_hat, 64);
  EXPECT_LE(static_cast<int64_t>(r.history.size()), search.total_candidates());
  EXPECT_EQ(search.total_candidates(), 12 + 6 * (8 + 13));
  const std::vector<std::string> k = keys(r);
  EXPECT_EQ(std::set<std::string>(k.begin(), k.end()).size(), k.size());
  std::map<int64_t, std::set<std::vector<int>>> n_hat_tries;  // iteration -> factor vectors
  int64_t n_hat_step = 0;
  for (const auto& h : r.history) {
    EXPECT_TRUE(genome_valid(h.genome, b)) << h.genome.key();
    if (h.origin == "n_hat") {
      ++n_hat_step;
      n_hat_tries[h.iteration].insert(h.genome.f);
    }
  }
  EXPECT_GT(n_hat_step, 0);
  for (const auto& [it, fs] : n_hat_tries) EXPECT_EQ(fs.size(), 1u) << "iteration " << it;
  // Without n_hat searched there is no such step.
  SyntheticFitness plain(2);
  for (const auto& h :
       RopeSearch(small_settings(3), bounds(1000), seeds4(bounds(1000))).run(plain).history)
    EXPECT_NE(h.origin, "n_hat");
}

const std::string kStories = shared_path("models/stories260K.gguf");

TEST(LongRopeSearch, TinySearchOnStoriesImprovesOnTheSeeds) {
  // stories260K treated as trained on 128 tokens, extended 4x to 512: a real model, a real
  // perplexity fitness, seeds PI / NTK / YaRN.
  const auto model = Model::load(kStories);
  SessionSpec spec;
  spec.ctx_train = 128;
  SessionOptions opt = resolve_session(*model, spec);
  const int64_t l0 = 128, target = 512;
  const Tokenizer& tok = model->tokenizer();
  std::string text;
  for (int i = 0; i < 40; ++i)
    text +=
        "Once upon a time, there was a little girl named Lily. She liked to play outside with "
        "her dog. One day, she saw a big red ball in the park. ";
  RopeFitnessSetup st;
  st.model = model;
  st.session = opt;
  st.orig_ctx = l0;
  st.target = target;
  st.attn_factor = longrope_attn_factor(target, l0);
  PplFitness fit(st, fitness_windows(tok.encode(text, true), target, 1, tok.bos(), "text"));
  EXPECT_EQ(fit.first_scored(), 256);
  const GenomeBounds b = bounds(500);
  const RopeSettings& base = opt.rope;
  std::vector<std::pair<std::string, RopeGenome>> seeds = {
      {"pi", snap_genome(method_factors(base, RopeMethod::Linear, 4, l0, target), b)},
      {"ntk", snap_genome(method_factors(base, RopeMethod::FixedNtk, 4, l0, target), b)},
      {"yarn", snap_genome(method_factors(base, RopeMethod::Yarn, 4, l0, target), b)}};
  RopeSearchSettings s;
  s.population = 8;
  s.parents = 4;
  s.mutations = 3;
  s.crossovers = 3;
  s.iterations = 3;
  s.seed = 1;
  const RopeSearchResult r = RopeSearch(s, b, seeds).run(fit);
  EXPECT_EQ(r.evaluations, 8 + 3 * 6);
  EXPECT_LT(r.best.fitness, r.seed_best);
  EXPECT_TRUE(std::isfinite(r.best.fitness));
}

TEST(LongRopeFactors, GgufRoundTripsAndTheSettingReadsTheFile) {
  LongRopeFactors f;
  f.long_factors = {1.0f, 1.5f, 6.25f, 9.0f};
  f.short_factors = {1.0f, 1.0f, 1.1f, 1.2f};
  f.attn_factor = 1.1547;
  f.short_attn_factor = 1.0;
  f.orig_ctx = 512;
  f.target = 4096;
  f.n_hat = 12;
  const std::string dir = test::temp_dir();
  const std::string out = dir + "/ext.gguf";
  write_longrope_gguf(kStories, f, out);
  const auto g = GgufFile::open(out);
  EXPECT_EQ(g->get_str("llama.rope.scaling.type"), "longrope");
  EXPECT_EQ(g->get_int("llama.rope.scaling.original_context_length"), 512);
  EXPECT_EQ(g->get_int("llama.context_length"), 4096);
  ASSERT_NE(g->tensor("rope_factors_long.weight"), nullptr);
  const RopeSettings rs = rope_from_gguf(*g, "llama", 8, RopeLayout::Adjacent);
  EXPECT_EQ(rs.method, RopeMethod::LongRope);
  EXPECT_EQ(rs.long_factors, f.long_factors);
  EXPECT_EQ(rs.short_factors, f.short_factors);
  ASSERT_TRUE(rs.attn_factor.has_value());
  EXPECT_NEAR(*rs.attn_factor, f.attn_factor, 1e-6);
  EXPECT_EQ(rs.orig_ctx, 512);
  EXPECT_EQ(rs.n_hat, 12);
  ASSERT_TRUE(rs.short_attn_factor.has_value());
  EXPECT_NEAR(*rs.short_attn_factor, 1.0, 1e-7);
  EXPECT_EQ(g->get_int("longctx.rope.scaling.n_hat"), 12);
  // The model runs from the written file with the same table as the factors file gives.
  const auto m2 = Model::load(out);
  EXPECT_EQ(m2->hparams().n_layer, Model::load(kStories)->hparams().n_layer);

  const std::string fj = dir + "/factors.json";
  write_json_file(fj, longrope_factors_json(f));
  RopeSettings s = rope_defaults(8, RopeLayout::Adjacent);
  RopeOverrides o;
  o.factors_file = fj;
  rope_apply_overrides(s, o);
  EXPECT_EQ(s.method, RopeMethod::LongRope);
  EXPECT_EQ(s.long_factors, f.long_factors);
  EXPECT_EQ(s.short_factors, f.short_factors);
  EXPECT_EQ(s.orig_ctx, 512);
  EXPECT_NEAR(rope_attn_factor(s), f.attn_factor, 1e-9);
  EXPECT_EQ(s.n_hat, 12);
  EXPECT_EQ(rope_table(s, 4096), rope_table(rs, 4096));
  EXPECT_EQ(rope_table(s, 100), rope_table(rs, 100));
  EXPECT_EQ(rope_table(s, 4096).n_hat, 12);
  EXPECT_EQ(rope_table(s, 100).attn_factor, 1.0f);  // the short list's attention factor
  EXPECT_NEAR(rope_table(s, 4096).attn_factor, f.attn_factor, 1e-6);
  // The file itself round-trips every field.
  const LongRopeFactors back = read_longrope_factors(fj);
  EXPECT_EQ(back.n_hat, 12);
  EXPECT_EQ(back.short_attn_factor, f.short_attn_factor);
  EXPECT_EQ(back.long_factors, f.long_factors);
  EXPECT_EQ(back.short_factors, f.short_factors);
  EXPECT_NEAR(back.attn_factor, f.attn_factor, 1e-12);
  EXPECT_EQ(back.orig_ctx, 512);
  EXPECT_EQ(back.target, 4096);
  // Without short_attention_factor the attention factor applies at every length.
  nlohmann::json old = longrope_factors_json(f);
  old.erase("short_attention_factor");
  EXPECT_FALSE(longrope_factors_from_json(old, "old").short_attn_factor.has_value());
  old["n_hat"] = -1;
  EXPECT_THROW(longrope_factors_from_json(old, "bad"), Error);

  const nlohmann::json hf = longrope_hf_config(f);
  EXPECT_EQ(hf["rope_scaling"]["rope_type"], "longrope");
  EXPECT_EQ(hf["rope_scaling"]["original_max_position_embeddings"], 512);
  EXPECT_EQ(hf["rope_scaling"]["long_factor"].size(), 4u);
  EXPECT_EQ(hf["rope_scaling"]["short_mscale"], 1.0);
  EXPECT_NEAR(hf["rope_scaling"]["long_mscale"].get<double>(), f.attn_factor, 1e-12);
  EXPECT_EQ(hf["rope_scaling"]["n_hat"], 12);
  // The entry read back as a config.json gives the same tables.
  RopeSettings h = rope_defaults(8, RopeLayout::Adjacent);
  rope_apply_hf_config_text(h, hf.dump(), "config.json");
  EXPECT_EQ(h.n_hat, 12);
  EXPECT_EQ(rope_table(h, 4096), rope_table(rs, 4096));
  EXPECT_EQ(rope_table(h, 100), rope_table(rs, 100));

  LongRopeFactors bad = f;
  bad.long_factors.push_back(2.0f);
  bad.short_factors.push_back(2.0f);
  EXPECT_THROW(write_longrope_gguf(kStories, bad, dir + "/bad.gguf"), Error);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// A 1,500-token text sampled from stories260K (the CLI tests' search text).
int sample_text(const std::string& path, std::string* out) {
  return test::run_command(test::longctx_binary() + " sample-text -m " + kStories + " -o " + path +
                               " --tokens 1500 --seed 3 --max-doc 256",
                           out);
}

TEST(LongRopeCli, SearchResumeApplyAndRunTheWrittenModel) {
  const std::string dir = test::temp_dir();
  const std::string text = dir + "/t.txt", f = dir + "/f.json", gguf = dir + "/ext.gguf";
  std::string out;
  ASSERT_EQ(sample_text(text, &out), 0) << out;
  const std::string search = test::longctx_binary() + " rope-search -m " + kStories + " -f " +
                             text + " -t 2 --orig-ctx 128 --target 512 --population 4 " +
                             "--parents 2 --mutations 1 --crossovers 1 --iterations 2 " +
                             "--documents 2 --seed 4 -o " + f;
  ASSERT_EQ(test::run_command(search, &out), 0) << out;
  const nlohmann::json j = read_json(f);
  EXPECT_EQ(j["long_factor"].size(), 4u);
  EXPECT_EQ(j["original_max_position_embeddings"], 128);
  EXPECT_EQ(j["target_length"], 512);
  EXPECT_NEAR(j["attention_factor"].get<double>(), longrope_attn_factor(512, 128), 1e-9);
  EXPECT_EQ(j["search"]["evaluations"], 4 + 2 * 2);

  // Resumed from its own log: nothing is evaluated again, the same factors come out.
  out.clear();
  ASSERT_EQ(test::run_command(search + " --resume " + f + ".log.json", &out), 0) << out;
  EXPECT_NE(out.find("8 from the log"), std::string::npos) << out;
  const nlohmann::json again = read_json(f);
  EXPECT_EQ(again["long_factor"], j["long_factor"]);
  EXPECT_EQ(again["search"]["evaluations"], 8);

  out.clear();
  ASSERT_EQ(test::run_command(test::longctx_binary() + " rope-apply -m " + kStories +
                                  " --factors " + f + " -o " + gguf + " --hf-config-out -",
                              &out, false),
            0)
      << out;
  EXPECT_EQ(nlohmann::json::parse(out)["rope_scaling"]["rope_type"], "longrope");
  // The written model and --rope-factors on the original give the same perplexity.
  std::string a, b;
  const std::string ppl = " -f " + text + " -t 2 -c 512 --json";
  ASSERT_EQ(test::run_command(test::longctx_binary() + " ppl -m " + gguf + ppl, &a, false), 0);
  ASSERT_EQ(
      test::run_command(
          test::longctx_binary() + " ppl -m " + kStories + ppl + " --rope-factors " + f, &b, false),
      0);
  EXPECT_EQ(nlohmann::json::parse(a)["ppl"], nlohmann::json::parse(b)["ppl"]);
}

// --start-tokens: n_hat searched with the factors (from LongRoPE's candidates), recorded in the
// factors file and carried to the written model; without it n_hat stays 0.
TEST(LongRopeCli, StartTokensSearchesAndRecordsNHat) {
  const std::string dir = test::temp_dir();
  const std::string text = dir + "/t.txt", f = dir + "/f.json", gguf = dir + "/ext.gguf";
  std::string out;
  ASSERT_EQ(sample_text(text, &out), 0) << out;
  const std::string search = test::longctx_binary() + " rope-search -m " + kStories + " -f " +
                             text + " -t 2 --orig-ctx 128 --target 512 --population 8 " +
                             "--parents 4 --mutations 4 --crossovers 2 --iterations 2 " +
                             "--documents 1 --seed 4 --start-tokens -o " + f;
  ASSERT_EQ(test::run_command(search, &out), 0) << out;
  const nlohmann::json j = read_json(f);
  const auto& choices = longrope_n_hat_choices();
  const int64_t n_hat = j.at("n_hat").get<int64_t>();
  EXPECT_NE(std::find(choices.begin(), choices.end(), n_hat), choices.end()) << n_hat;
  EXPECT_NE(j["search"]["command"].get<std::string>().find("--start-tokens"), std::string::npos);
  EXPECT_EQ(j["short_attention_factor"], 1.0);
  // The search tried leading positions left unscaled (the log's genomes), and the best genome's
  // n_hat is the file's.
  const nlohmann::json log = read_json(f + ".log.json");
  std::set<int64_t> tried;
  double best = 1e300;
  int64_t best_n_hat = -1;
  for (const auto& rec : log.at("records")) {
    tried.insert(rec.at("n_hat").get<int64_t>());
    if (rec.contains("fitness") && rec["fitness"].get<double>() < best) {
      best = rec["fitness"].get<double>();
      best_n_hat = rec["n_hat"].get<int64_t>();
    }
  }
  EXPECT_GT(tried.size(), 1u);
  EXPECT_EQ(best_n_hat, n_hat);
  EXPECT_TRUE(log.at("bounds").at("search_n_hat").get<bool>());

  ASSERT_EQ(test::run_command(test::longctx_binary() + " rope-apply -m " + kStories +
                                  " --factors " + f + " -o " + gguf,
                              &out),
            0)
      << out;
  const RopeSettings rs = rope_from_gguf(*GgufFile::open(gguf), "llama", 8, RopeLayout::Adjacent);
  EXPECT_EQ(rs.n_hat, n_hat);

  // A --from file's n_hat seeds the search, on the candidates (10 -> 8).
  nlohmann::json from = j;
  from["n_hat"] = 10;
  const std::string ff = dir + "/from.json", f2 = dir + "/f2.json";
  write_json_file(ff, from);
  ASSERT_EQ(
      test::run_command(test::longctx_binary() + " rope-search -m " + kStories + " -f " + text +
                            " -t 2 --orig-ctx 128 --target 512 --population 4 " +
                            "--parents 2 --mutations 1 --crossovers 1 --iterations 1 " +
                            "--documents 1 --seed 4 --start-tokens --from " + ff + " -o " + f2,
                        &out),
      0)
      << out;
  const nlohmann::json seeds = read_json(f2 + ".log.json").at("seeds");
  bool seeded = false;
  for (const auto& sd : seeds)
    if (sd.at("name") == "from") seeded = sd.at("genome").at("n_hat") == 8;
  EXPECT_TRUE(seeded) << seeds.dump();
}

}  // namespace
}  // namespace lc::eval
