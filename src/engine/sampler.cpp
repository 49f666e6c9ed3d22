#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace lc {

void validate(const SamplerParams& p) {
  if (std::isnan(p.temperature))
    fail_setting({"sampling.temperature"}, "sampling.temperature must be a number, got ",
                 p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    fail_setting({"sampling.top_p"}, "sampling.top_p must be in (0, 1], got ", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    fail_setting({"sampling.min_p"}, "sampling.min_p must be in [0, 1], got ", p.min_p);
  if (!(p.repeat_penalty > 0.0f && std::isfinite(p.repeat_penalty)))
    fail_setting({"sampling.repeat_penalty"},
                 "sampling.repeat_penalty must be a finite number > 0, got ", p.repeat_penalty);
  if (p.repeat_last_n < 0)
    fail_setting({"sampling.repeat_last_n"}, "sampling.repeat_last_n must be >= 0, got ",
                 p.repeat_last_n);
  if (!std::isfinite(p.presence_penalty))
    fail_setting({"sampling.presence_penalty"},
                 "sampling.presence_penalty must be a finite number, got ", p.presence_penalty);
  if (!std::isfinite(p.frequency_penalty))
    fail_setting({"sampling.frequency_penalty"},
                 "sampling.frequency_penalty must be a finite number, got ", p.frequency_penalty);
}

namespace sampling {
namespace {

// Sort order of candidates: logit descending, ties by id ascending (a strict total order).
bool before(const Candidate& a, const Candidate& b) {
  if (a.logit != b.logit) return a.logit > b.logit;
  return a.id < b.id;
}

}  // namespace

void apply_repeat_penalty(float* logits, int32_t n_vocab, std::span<const int32_t> recent,
                          float penalty) {
  if (penalty == 1.0f || recent.empty()) return;
  std::vector<int32_t> ids(recent.begin(), recent.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab) continue;
    float& l = logits[id];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

void apply_presence_frequency(float* logits, int32_t n_vocab, std::span<const int32_t> recent,
                              float presence, float frequency) {
  if ((presence == 0.0f && frequency == 0.0f) || recent.empty()) return;
  std::vector<int32_t> ids(recent.begin(), recent.end());
  std::sort(ids.begin(), ids.end());
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    const int32_t id = ids[i];
    if (id >= 0 && id < n_vocab) logits[id] -= static_cast<float>(j - i) * frequency + presence;
    i = j;
  }
}

int32_t argmax(const float* logits, int32_t n_vocab) {
  int32_t best = -1;
  for (int32_t i = 0; i < n_vocab; ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = i;
  }
  if (best < 0) fail("sampler: every logit is NaN (broken model weights or numerical overflow)");
  return best;
}

std::vector<Candidate> make_candidates(const float* logits, int32_t n_vocab, int keep) {
  std::vector<Candidate> c;
  c.reserve(static_cast<size_t>(n_vocab));
  constexpr float kMax = std::numeric_limits<float>::max();
  for (int32_t i = 0; i < n_vocab; ++i) {
    float l = logits[i];
    if (std::isnan(l) || l == -std::numeric_limits<float>::infinity()) continue;
    c.push_back({i, std::min(l, kMax), 0.0f});
  }
  if (keep > 0 && static_cast<size_t>(keep) < c.size()) {
    std::partial_sort(c.begin(), c.begin() + keep, c.end(), before);
    c.resize(static_cast<size_t>(keep));
  } else {
    std::sort(c.begin(), c.end(), before);
  }
  return c;
}

void top_k(std::vector<Candidate>& c, int k) {
  if (k > 0 && static_cast<size_t>(k) < c.size()) c.resize(static_cast<size_t>(k));
}

void softmax(std::vector<Candidate>& c) {
  if (c.empty()) return;
  float mx = c[0].logit;
  for (const Candidate& x : c) mx = std::max(mx, x.logit);
  double sum = 0.0;
  for (Candidate& x : c) {
    x.p = std::exp(x.logit - mx);
    sum += x.p;
  }
  for (Candidate& x : c) x.p = static_cast<float>(x.p / sum);
}

void top_p(std::vector<Candidate>& c, float p) {
  if (p >= 1.0f || c.empty()) return;
  double cum = 0.0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) {
      c.resize(i + 1);
      return;
    }
  }
}

void min_p(std::vector<Candidate>& c, float min_p) {
  if (min_p <= 0.0f || c.empty()) return;
  float p_max = c[0].p;
  for (const Candidate& x : c) p_max = std::max(p_max, x.p);
  const float threshold = min_p * p_max;
  size_t n = 1;  // the first (most likely) candidate always stays
  for (size_t i = 1; i < c.size(); ++i)
    if (c[i].p >= threshold) c[n++] = c[i];
  c.resize(n);
}

void apply_temperature(std::vector<Candidate>& c, float temperature) {
  LC_CHECK(temperature > 0.0f);
  if (c.empty()) return;
  float mx = c[0].logit;
  for (const Candidate& x : c) mx = std::max(mx, x.logit);
  for (Candidate& x : c) x.logit = (x.logit - mx) / temperature;
}

int32_t draw(const std::vector<Candidate>& c, std::mt19937_64& rng) {
  LC_CHECK(!c.empty());
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  double total = 0.0;
  for (const Candidate& x : c) total += x.p;
  const double target = u * total;
  double cum = 0.0;
  for (const Candidate& x : c) {
    cum += x.p;
    if (cum > target) return x.id;
  }
  return c.back().id;
}

}  // namespace sampling

Sampler::Sampler(SamplerParams p, int32_t n_vocab) : params_(p), n_vocab_(n_vocab), rng_(p.seed) {
  validate(params_);
  if (n_vocab <= 0) fail("sampler: vocabulary size must be > 0, got ", n_vocab);
}

void Sampler::reset() {
  history_.clear();
  rng_.seed(params_.seed);
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= n_vocab_)
    fail("sampler: token id ", token, " is outside the vocabulary [0, ", n_vocab_, ")");
  if (params_.repeat_last_n <= 0) return;
  history_.push_back(token);
  while (history_.size() > static_cast<size_t>(params_.repeat_last_n)) history_.pop_front();
}

int32_t Sampler::sample(const float* logits) {
  const float* l = logits;
  const bool presence_frequency =
      params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
  if ((params_.repeat_penalty != 1.0f || presence_frequency) && !history_.empty()) {
    logits_.assign(logits, logits + n_vocab_);
    history_buf_.assign(history_.begin(), history_.end());
    sampling::apply_repeat_penalty(logits_.data(), n_vocab_, history_buf_, params_.repeat_penalty);
    sampling::apply_presence_frequency(logits_.data(), n_vocab_, history_buf_,
                                       params_.presence_penalty, params_.frequency_penalty);
    l = logits_.data();
  }

  if (params_.temperature <= 0.0f) return sampling::argmax(l, n_vocab_);

  std::vector<sampling::Candidate> c = sampling::make_candidates(l, n_vocab_, params_.top_k);
  if (c.empty()) fail("sampler: every logit is NaN or -inf; nothing can be sampled");
  sampling::softmax(c);
  sampling::top_p(c, params_.top_p);
  sampling::min_p(c, params_.min_p);
  sampling::apply_temperature(c, params_.temperature);
  sampling::softmax(c);
  return sampling::draw(c, rng_);
}

}  // namespace lc
