#include "eval/longrope_fitness.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "engine/session.h"
#include "eval/passkey.h"
#include "kernels/ops.h"

namespace lc::eval {

RopeSettings longrope_settings(const RopeSettings& base, const std::vector<float>& long_factors,
                               const std::vector<float>& short_factors, int64_t orig_ctx,
                               int64_t target, double attn_factor, double short_attn_factor,
                               int64_t n_hat) {
  RopeSettings s = base;
  s.method = RopeMethod::LongRope;
  s.long_factors = long_factors;
  s.short_factors = short_factors;
  s.freq_divisors.clear();
  s.orig_ctx = orig_ctx;
  s.max_pos = std::max(target, orig_ctx);
  s.factor = static_cast<double>(s.max_pos) / static_cast<double>(orig_ctx);
  s.attn_factor = attn_factor;
  s.short_attn_factor = short_attn_factor;
  s.n_hat = n_hat;
  s.attn_mult = 1.0;
  return s;
}

std::vector<std::vector<int32_t>> fitness_windows(const std::vector<int32_t>& tokens,
                                                  int64_t length, int64_t count, int32_t bos,
                                                  const std::string& setting) {
  const auto n = static_cast<int64_t>(tokens.size());
  if (length < 4 || n < length)
    fail_setting({setting}, "the text has ", n, " tokens, fewer than one document of ", length,
                 " tokens (the target length); give a longer text");
  std::vector<std::vector<int32_t>> out;
  for (int64_t w = 0; w < count && (w + 1) * length <= n; ++w) {
    out.emplace_back(tokens.begin() + w * length, tokens.begin() + (w + 1) * length);
    if (bos >= 0) out.back()[0] = bos;
  }
  return out;
}

namespace {

std::vector<float> ones(size_t n) { return std::vector<float>(n, 1.0f); }

// Runs `ids` with the genome's factors; calls fn(i, logits) for i >= first.
template <typename Fn>
void run_genome(const RopeFitnessSetup& st, const RopeGenome& g, const std::vector<int32_t>& ids,
                int64_t first, Fn&& fn) {
  const std::vector<float> f = g.factors();
  SessionOptions opt = st.session;
  if (st.short_list) {
    const std::vector<float> longf = st.other.empty() ? f : st.other;
    opt.rope = longrope_settings(st.session.rope, longf, f, st.orig_ctx, st.target, st.attn_factor,
                                 st.short_attn_factor, st.other_n_hat);
  } else {
    opt.rope = longrope_settings(st.session.rope, f, ones(f.size()), st.orig_ctx, st.target,
                                 st.attn_factor, st.short_attn_factor, g.n_hat);
  }
  Session s(st.model, opt);
  s.eval_all(ids.data(), static_cast<int64_t>(ids.size()), [&](int64_t i, const float* logits) {
    if (i >= first) fn(i, logits);
  });
}

}  // namespace

PplFitness::PplFitness(RopeFitnessSetup setup, std::vector<std::vector<int32_t>> windows)
    : st_(std::move(setup)), windows_(std::move(windows)) {
  LC_CHECK(!windows_.empty());
  first_ = st_.target > st_.orig_ctx ? std::max(st_.orig_ctx, st_.target / 2) : st_.target / 2;
}

double PplFitness::score(const RopeGenome& g, int64_t doc) {
  const std::vector<int32_t>& w = windows_.at(static_cast<size_t>(doc));
  const int64_t n = static_cast<int64_t>(w.size());
  const int64_t nv = st_.model->hparams().n_vocab;
  double nll = 0;
  int64_t count = 0;
  run_genome(st_, g, w, first_, [&](int64_t i, const float* logits) {
    if (i >= n - 1) return;
    nll -= static_cast<double>(logits[w[static_cast<size_t>(i + 1)]]) - log_sum_exp(logits, nv);
    ++count;
  });
  return count > 0 ? nll / static_cast<double>(count) : 0.0;
}

NeedleFitness::NeedleFitness(RopeFitnessSetup setup, const std::string& text, int64_t count,
                             uint64_t seed)
    : st_(std::move(setup)) {
  if (count < 1) fail_setting({"rope_search.documents"}, "rope_search.documents must be >= 1");
  PasskeyConfig cfg;
  cfg.format = PasskeyFormat::Landmark;
  cfg.filler = passkey_split_filler(text);
  cfg.separator = " ";
  PasskeyBuilder b(st_.model->tokenizer(), cfg);
  for (int64_t d = 0; d < count; ++d) {
    const double depth = count == 1 ? 0.5 : static_cast<double>(d) / static_cast<double>(count - 1);
    const uint64_t ts = passkey_trial_seed(seed, st_.target, depth, d);
    const PasskeyDraw draw = passkey_draw(cfg.format, b.n_units(), ts);
    const PasskeyPrompt p = b.build(st_.target - 8, depth, draw);
    Doc doc;
    doc.ids = b.tokenize(p.text + " " + p.key);
    size_t common = 0;
    while (common < p.ids.size() && common < doc.ids.size() && p.ids[common] == doc.ids[common])
      ++common;
    if (common == 0 || common >= doc.ids.size())
      fail("passkey document ", d, ": the answer does not tokenize after the prompt");
    doc.answer_pos = static_cast<int64_t>(common);
    docs_.push_back(std::move(doc));
  }
}

double NeedleFitness::score(const RopeGenome& g, int64_t doc) {
  const Doc& d = docs_.at(static_cast<size_t>(doc));
  const int64_t n = static_cast<int64_t>(d.ids.size());
  const int64_t nv = st_.model->hparams().n_vocab;
  double nll = 0;
  int64_t count = 0;
  run_genome(st_, g, d.ids, d.answer_pos - 1, [&](int64_t i, const float* logits) {
    if (i >= n - 1) return;
    nll -= static_cast<double>(logits[d.ids[static_cast<size_t>(i + 1)]]) - log_sum_exp(logits, nv);
    ++count;
  });
  return count > 0 ? nll / static_cast<double>(count) : 0.0;
}

}  // namespace lc::eval
