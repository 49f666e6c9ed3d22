#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/sampler.h"

namespace {

using lc::Sampler;
using lc::SamplerParams;
namespace sp = lc::sampling;

std::vector<float> random_logits(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// Logits whose softmax (temperature 1) is exactly the given probabilities.
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> v;
  for (double p : probs) v.push_back(p > 0 ? static_cast<float>(std::log(p)) : -INFINITY);
  return v;
}

std::vector<int32_t> ids_of(const std::vector<sp::Candidate>& c) {
  std::vector<int32_t> ids;
  for (const auto& x : c) ids.push_back(x.id);
  return ids;
}

std::string expect_error(const SamplerParams& p) {
  try {
    Sampler s(p, 10);
  } catch (const lc::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected lc::Error";
  return "";
}

TEST(SamplerParams, Validation) {
  SamplerParams p;
  p.top_p = 1.5f;
  EXPECT_EQ(expect_error(p), "sampling.top_p must be in (0, 1], got 1.5");
  p = {};
  p.top_p = 0.0f;
  EXPECT_NE(expect_error(p).find("sampling.top_p"), std::string::npos);
  p = {};
  p.min_p = -0.1f;
  EXPECT_NE(expect_error(p).find("sampling.min_p must be in [0, 1]"), std::string::npos);
  p = {};
  p.min_p = 1.1f;
  EXPECT_NE(expect_error(p).find("sampling.min_p"), std::string::npos);
  p = {};
  p.repeat_penalty = 0.0f;
  EXPECT_NE(expect_error(p).find("sampling.repeat_penalty"), std::string::npos);
  p = {};
  p.repeat_last_n = -1;
  EXPECT_NE(expect_error(p).find("sampling.repeat_last_n"), std::string::npos);
  p = {};
  p.temperature = std::nanf("");
  EXPECT_NE(expect_error(p).find("sampling.temperature"), std::string::npos);

  // Valid edge values.
  p = {};
  p.temperature = -1.0f;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.top_k = -5;
  EXPECT_NO_THROW(Sampler(p, 10));
  p.min_p = 1.0f;
  EXPECT_NO_THROW(Sampler(p, 10));
  EXPECT_THROW(Sampler(SamplerParams{}, 0), lc::Error);
}

TEST(Sampler, GreedyIsArgmax) {
  SamplerParams p;
  p.temperature = 0.0f;
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto logits = random_logits(1000, seed);
    Sampler s(p, 1000);
    int32_t want = 0;
    for (int32_t i = 1; i < 1000; ++i)
      if (logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(want)]) want = i;
    EXPECT_EQ(s.sample(logits.data()), want);
  }
  // Ties go to the lowest id; NaN is skipped; negative temperature is greedy too.
  std::vector<float> tie = {1.0f, 3.0f, std::nanf(""), 3.0f, 2.0f};
  p.temperature = -1.0f;
  Sampler s(p, 5);
  EXPECT_EQ(s.sample(tie.data()), 1);
  std::vector<float> nan_first = {std::nanf(""), -5.0f, -7.0f};
  EXPECT_EQ(sp::argmax(nan_first.data(), 3), 1);
}

TEST(Sampler, TopK1IsGreedyAtAnyTemperature) {
  for (float temp : {0.1f, 1.0f, 5.0f, 100.0f}) {
    SamplerParams p;
    p.temperature = temp;
    p.top_k = 1;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    Sampler s(p, 300);
    for (uint32_t seed = 0; seed < 20; ++seed) {
      auto logits = random_logits(300, 100 + seed);
      EXPECT_EQ(s.sample(logits.data()), sp::argmax(logits.data(), 300)) << "temp " << temp;
    }
  }
}

TEST(SamplingSteps, MakeCandidatesSortsAndDropsNonFinite) {
  std::vector<float> l = {0.5f, -INFINITY, 2.0f, std::nanf(""), 0.5f, INFINITY, -1.0f};
  auto c = sp::make_candidates(l.data(), 7);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{5, 2, 0, 4, 6}));
  EXPECT_TRUE(std::isfinite(c[0].logit));
  auto k = sp::make_candidates(l.data(), 7, 3);
  EXPECT_EQ(ids_of(k), (std::vector<int32_t>{5, 2, 0}));
}

TEST(SamplingSteps, TopK) {
  auto l = random_logits(50, 7);
  auto c = sp::make_candidates(l.data(), 50);
  auto full = c;
  sp::top_k(c, 5);
  ASSERT_EQ(c.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(c[i].id, full[i].id);
  // Partial sort gives the same as full sort + truncate.
  EXPECT_EQ(ids_of(sp::make_candidates(l.data(), 50, 5)), ids_of(c));
  auto d = full;
  sp::top_k(d, 0);
  EXPECT_EQ(d.size(), 50u);
  sp::top_k(d, 1000);
  EXPECT_EQ(d.size(), 50u);
}

TEST(SamplingSteps, SoftmaxSumsToOne) {
  auto l = logits_for({0.5, 0.3, 0.2});
  auto c = sp::make_candidates(l.data(), 3);
  sp::softmax(c);
  EXPECT_NEAR(c[0].p, 0.5, 1e-6);
  EXPECT_NEAR(c[1].p, 0.3, 1e-6);
  EXPECT_NEAR(c[2].p, 0.2, 1e-6);
}

TEST(SamplingSteps, TopPKeepsSmallestNucleus) {
  auto l = logits_for({0.1, 0.4, 0.05, 0.3, 0.15});
  auto run = [&](float p) {
    auto c = sp::make_candidates(l.data(), 5);
    sp::softmax(c);
    sp::top_p(c, p);
    return ids_of(c);
  };
  EXPECT_EQ(run(0.3f), (std::vector<int32_t>{1}));
  EXPECT_EQ(run(0.39f), (std::vector<int32_t>{1}));
  EXPECT_EQ(run(0.41f), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(run(0.65f), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(run(0.8f), (std::vector<int32_t>{1, 3, 4}));
  EXPECT_EQ(run(0.9f), (std::vector<int32_t>{1, 3, 4, 0}));
  EXPECT_EQ(run(0.99f), (std::vector<int32_t>{1, 3, 4, 0, 2}));
  EXPECT_EQ(run(1.0f), (std::vector<int32_t>{1, 3, 4, 0, 2}));
  EXPECT_EQ(run(1e-6f), (std::vector<int32_t>{1}));  // at least one
}

TEST(SamplingSteps, MinPDropsUnlikelyTokens) {
  auto l = logits_for({0.1, 0.4, 0.05, 0.3, 0.15});
  auto run = [&](float m) {
    auto c = sp::make_candidates(l.data(), 5);
    sp::softmax(c);
    sp::min_p(c, m);
    return ids_of(c);
  };
  EXPECT_EQ(run(0.0f), (std::vector<int32_t>{1, 3, 4, 0, 2}));
  EXPECT_EQ(run(0.1f), (std::vector<int32_t>{1, 3, 4, 0, 2}));  // threshold 0.04
  EXPECT_EQ(run(0.2f), (std::vector<int32_t>{1, 3, 4, 0}));     // threshold 0.08
  EXPECT_EQ(run(0.5f), (std::vector<int32_t>{1, 3}));           // threshold 0.2
  EXPECT_EQ(run(0.8f), (std::vector<int32_t>{1}));              // threshold 0.32
  EXPECT_EQ(run(1.0f), (std::vector<int32_t>{1}));
}

TEST(SamplingSteps, TemperatureSharpensAndFlattens) {
  auto l = logits_for({0.6, 0.3, 0.1});
  auto probs = [&](float t) {
    auto c = sp::make_candidates(l.data(), 3);
    sp::apply_temperature(c, t);
    sp::softmax(c);
    return c;
  };
  auto t1 = probs(1.0f);
  EXPECT_NEAR(t1[0].p, 0.6, 1e-6);
  auto cold = probs(0.5f);  // p^2 normalised: .36/.46
  EXPECT_NEAR(cold[0].p, 0.36 / 0.46, 1e-5);
  auto hot = probs(1e6f);
  EXPECT_NEAR(hot[0].p, 1.0 / 3.0, 1e-4);
  auto tiny = probs(1e-30f);  // no overflow to NaN
  EXPECT_FLOAT_EQ(tiny[0].p, 1.0f);
  EXPECT_FLOAT_EQ(tiny[1].p, 0.0f);
}

TEST(SamplingSteps, RepeatPenalty) {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f};
  std::vector<int32_t> recent = {0, 1, 0, 0, 99, -3};  // duplicates count once; bad ids ignored
  sp::apply_repeat_penalty(l.data(), 4, recent, 2.0f);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], -2.0f);
  EXPECT_FLOAT_EQ(l[2], 0.5f);
  EXPECT_FLOAT_EQ(l[3], 3.0f);
}

TEST(SamplingSteps, PresenceAndFrequencyPenalties) {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f};
  std::vector<int32_t> recent = {0, 1,  0,
                                 0, 99, -3};  // token 0 three times, 1 once; bad ids ignored
  sp::apply_presence_frequency(l.data(), 4, recent, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(l[0], 2.0f - 3 * 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(l[1], -1.0f - 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(l[2], 0.5f);
  EXPECT_FLOAT_EQ(l[3], 3.0f);
  // Negative penalties raise the logits of seen tokens.
  std::vector<float> m = {0.0f, 0.0f};
  std::vector<int32_t> twice = {1, 1};
  sp::apply_presence_frequency(m.data(), 2, twice, -1.0f, -0.5f);
  EXPECT_FLOAT_EQ(m[0], 0.0f);
  EXPECT_FLOAT_EQ(m[1], 2.0f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesChangeArgmax) {
  SamplerParams p;
  p.temperature = 0.0f;
  p.repeat_last_n = 4;
  p.frequency_penalty = 0.3f;
  std::vector<float> l = {3.0f, 2.5f, -0.5f};
  Sampler s(p, 3);
  s.accept(0);  // 3.0 - 0.3 = 2.7 > 2.5
  EXPECT_EQ(s.sample(l.data()), 0);
  s.accept(0);  // 3.0 - 0.6 = 2.4 < 2.5
  EXPECT_EQ(s.sample(l.data()), 1);
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 0.6f;  // once seen, 3.0 - 0.6 = 2.4 < 2.5 however often
  Sampler q(p, 3);
  EXPECT_EQ(q.sample(l.data()), 0);
  q.accept(0);
  EXPECT_EQ(q.sample(l.data()), 1);
  EXPECT_FLOAT_EQ(l[0], 3.0f);  // the input logits are not modified
  p.presence_penalty = std::numeric_limits<float>::infinity();
  EXPECT_THROW(lc::validate(p), lc::Error);
}

// Draws many tokens with a fixed seed and compares frequencies to the expected distribution.
std::map<int32_t, double> frequencies(const SamplerParams& p, const std::vector<float>& logits,
                                      int n_draws) {
  Sampler s(p, static_cast<int32_t>(logits.size()));
  std::map<int32_t, double> f;
  for (int i = 0; i < n_draws; ++i) f[s.sample(logits.data())] += 1.0 / n_draws;
  return f;
}

void expect_distribution(const std::map<int32_t, double>& got,
                         const std::map<int32_t, double>& want, const std::string& what) {
  for (auto [id, f] : got) EXPECT_TRUE(want.count(id)) << what << ": token " << id << " drawn";
  for (auto [id, p] : want) {
    double g = got.count(id) ? got.at(id) : 0.0;
    EXPECT_NEAR(g, p, 0.015) << what << ": token " << id;
  }
}

TEST(Sampler, DrawFrequenciesMatchFilteredDistribution) {
  const auto logits = logits_for({0.1, 0.4, 0.05, 0.3, 0.15});
  const int n = 40000;
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  expect_distribution(frequencies(p, logits, n),
                      {{0, 0.1}, {1, 0.4}, {2, 0.05}, {3, 0.3}, {4, 0.15}}, "unfiltered");

  p.top_p = 0.65f;  // keeps {1, 3}
  expect_distribution(frequencies(p, logits, n), {{1, 0.4 / 0.7}, {3, 0.3 / 0.7}}, "top-p 0.65");

  p.top_p = 1.0f;
  p.min_p = 0.3f;  // threshold 0.12 keeps {1, 3, 4}
  expect_distribution(frequencies(p, logits, n),
                      {{1, 0.4 / 0.85}, {3, 0.3 / 0.85}, {4, 0.15 / 0.85}}, "min-p 0.3");

  p.min_p = 0.0f;
  p.top_k = 2;
  expect_distribution(frequencies(p, logits, n), {{1, 0.4 / 0.7}, {3, 0.3 / 0.7}}, "top-k 2");

  // Temperature 0.5 after top-k 2: p^2 renormalised.
  p.temperature = 0.5f;
  expect_distribution(frequencies(p, logits, n), {{1, 0.16 / 0.25}, {3, 0.09 / 0.25}},
                      "top-k 2, temp 0.5");
}

TEST(Sampler, RepetitionPenaltyChangesArgmax) {
  SamplerParams p;
  p.temperature = 0.0f;
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 2;
  std::vector<float> l = {3.0f, 2.5f, -0.5f, -0.6f};
  Sampler s(p, 4);
  EXPECT_EQ(s.sample(l.data()), 0);
  s.accept(0);  // 3.0 / 1.5 = 2.0 < 2.5
  EXPECT_EQ(s.sample(l.data()), 1);
  s.accept(1);  // both penalised: 2.0 vs 2.5/1.5
  EXPECT_EQ(s.sample(l.data()), 0);
  s.accept(2);  // window of 2: token 0 no longer penalised
  s.accept(3);
  EXPECT_EQ(s.sample(l.data()), 0);
  // Negative logits are multiplied: -0.5 * 1.5 = -0.75 < -0.6.
  std::vector<float> neg = {-0.5f, -0.6f};
  Sampler n(p, 2);
  n.accept(0);
  EXPECT_EQ(n.sample(neg.data()), 1);
  n.reset();
  EXPECT_EQ(n.sample(neg.data()), 0);
  // The input logits are not modified.
  EXPECT_FLOAT_EQ(neg[0], -0.5f);
  EXPECT_THROW(n.accept(2), lc::Error);
  EXPECT_THROW(n.accept(-1), lc::Error);
}

std::vector<int32_t> run_sequence(const SamplerParams& p, int steps) {
  const int n_vocab = 200;
  Sampler s(p, n_vocab);
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    auto l = random_logits(n_vocab, 1000 + static_cast<uint32_t>(i) % 7);
    int32_t t = s.sample(l.data());
    s.accept(t);
    out.push_back(t);
  }
  return out;
}

TEST(Sampler, ReproducibleWithSeed) {
  SamplerParams p;
  p.temperature = 1.5f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.1f;
  p.seed = 1234;
  auto a = run_sequence(p, 200);
  auto b = run_sequence(p, 200);
  EXPECT_EQ(a, b);
  p.seed = 1235;
  auto c = run_sequence(p, 200);
  EXPECT_NE(a, c);
  // Enough randomness that the sequence is not constant.
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 20u);

  // reset() restarts the same stream.
  p.seed = 1234;
  Sampler s(p, 200);
  auto l = random_logits(200, 5);
  std::vector<int32_t> first, second;
  for (int i = 0; i < 50; ++i) first.push_back(s.sample(l.data()));
  s.reset();
  for (int i = 0; i < 50; ++i) second.push_back(s.sample(l.data()));
  EXPECT_EQ(first, second);
}

TEST(Sampler, DefaultParamsSampleFromLikelyTokens) {
  Sampler s(SamplerParams{}, 1000);
  auto l = random_logits(1000, 42);
  auto top = sp::make_candidates(l.data(), 1000, 40);
  std::set<int32_t> allowed;
  for (auto& c : top) allowed.insert(c.id);
  for (int i = 0; i < 500; ++i) EXPECT_TRUE(allowed.count(s.sample(l.data())));
}

TEST(Sampler, AllLogitsInvalidIsAnError) {
  std::vector<float> l = {-INFINITY, std::nanf(""), -INFINITY};
  Sampler s(SamplerParams{}, 3);
  EXPECT_THROW(s.sample(l.data()), lc::Error);
  std::vector<float> nans = {std::nanf(""), std::nanf("")};
  SamplerParams g;
  g.temperature = 0.0f;
  Sampler gs(g, 2);
  EXPECT_THROW(gs.sample(nans.data()), lc::Error);
}

}  // namespace
