// Token sampler: llama.cpp-style chain of repetition penalty, top-k, top-p, min-p and temperature,
// then a draw from a seeded std::mt19937_64.
//
// Exact order of Sampler::sample(logits):
//   1. Copy the logits; for each DISTINCT token among the last repeat_last_n accepted tokens,
//      logit > 0 -> logit / repeat_penalty, else logit * repeat_penalty (skipped when penalty == 1
//      or repeat_last_n == 0).
//   1b. Presence and frequency penalties (OpenAI's): for each distinct token among the same last
//      repeat_last_n accepted tokens, seen c times, logit -= c * frequency_penalty +
//      presence_penalty (skipped when both are 0 or repeat_last_n == 0).
//   2. temperature <= 0: return the argmax (ties -> lowest id). The RNG is not used.
//   3. Candidates = all tokens whose logit is not NaN or -inf, sorted by logit descending (ties ->
//      lowest id first).
//   4. top_k (k > 0 and k < count): keep the first k.
//   5. softmax over the candidates' logits (temperature 1).
//   6. top_p (< 1): keep the shortest prefix whose cumulative probability >= top_p (at least 1).
//   7. min_p (> 0): drop candidates with p < min_p * p_max (the first candidate always stays).
//   8. Divide the logits by temperature (after subtracting the largest) and softmax again.
//   9. Draw: u = (rng() >> 11) * 2^-53 (one 64-bit output of the RNG per sampled token); return the
//      first candidate (in the sorted order) whose cumulative probability exceeds u * sum(p); the
//      last candidate if rounding leaves none.
// softmax uses float exp() of (logit - max) and sums in double. The same seed, the same logits and
// the same accepted tokens give the same tokens on any platform with the same exp().
//
// The caller decides what counts as history: sample() does not accept its result; call accept()
// for every token that should count for the repetition penalty (typically the prompt too).
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace lc {

struct SamplerParams {
  float temperature = 0.8f;        // <= 0: greedy
  int top_k = 40;                  // <= 0: disabled
  float top_p = 0.95f;             // (0, 1]; 1: disabled
  float min_p = 0.05f;             // [0, 1]; 0: disabled
  float repeat_penalty = 1.0f;     // > 0; 1: disabled
  int repeat_last_n = 64;          // >= 0; 0: disabled
  float presence_penalty = 0.0f;   // finite; 0: disabled
  float frequency_penalty = 0.0f;  // finite; 0: disabled
  uint64_t seed = 0x5EED0F10C0C7E5A1ull;
};

// Throws lc::Error naming the setting when a parameter is out of range, e.g.
// "sampling.top_p must be in (0, 1], got 1.5".
void validate(const SamplerParams& p);

namespace sampling {

struct Candidate {
  int32_t id;
  float logit;
  float p;  // probability, filled by softmax()
};

// Step 1 on a full logit array (in place). Each distinct token of `recent` is penalised once;
// tokens outside [0, n_vocab) are ignored.
void apply_repeat_penalty(float* logits, int32_t n_vocab, std::span<const int32_t> recent,
                          float penalty);

// Step 1b on a full logit array (in place): each distinct token of `recent`, seen c times there,
// loses c * frequency + presence. Tokens outside [0, n_vocab) are ignored.
void apply_presence_frequency(float* logits, int32_t n_vocab, std::span<const int32_t> recent,
                              float presence, float frequency);

// Index of the largest logit, ties -> lowest id; NaN is never chosen. Throws lc::Error when every
// logit is NaN.
int32_t argmax(const float* logits, int32_t n_vocab);

// Step 3: candidates for all tokens with a logit that is neither NaN nor -inf (+inf becomes the
// largest finite float), sorted by logit descending, ties by id ascending; p is left 0.
// keep > 0 returns only the first `keep` of that order (same result as top_k(c, keep), faster).
std::vector<Candidate> make_candidates(const float* logits, int32_t n_vocab, int keep = 0);

// The filters below expect candidates sorted as make_candidates() leaves them and keep that order.
void top_k(std::vector<Candidate>& c, int k);        // k <= 0: no-op
void softmax(std::vector<Candidate>& c);             // p from logit (max-subtracted)
void top_p(std::vector<Candidate>& c, float p);      // needs p filled; p >= 1: no-op
void min_p(std::vector<Candidate>& c, float min_p);  // needs p filled; min_p <= 0: no-op
// logit = (logit - max_logit) / temperature: the same distribution as logit / temperature, but the
// shift keeps tiny temperatures from overflowing. temperature must be > 0.
void apply_temperature(std::vector<Candidate>& c, float temperature);

// Step 9: draws one candidate by its p using one output of rng.
int32_t draw(const std::vector<Candidate>& c, std::mt19937_64& rng);

}  // namespace sampling

class Sampler {
 public:
  // Validates p (see validate()) and n_vocab > 0.
  Sampler(SamplerParams p, int32_t n_vocab);

  // Samples a token from n_vocab logits (see the order above). Does not call accept().
  int32_t sample(const float* logits);

  // Adds a token to the repetition-penalty history (the last repeat_last_n are kept).
  // Throws lc::Error for a token outside [0, n_vocab).
  void accept(int32_t token);

  // Clears the history and reseeds the RNG with params().seed.
  void reset();

  const SamplerParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  SamplerParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  std::deque<int32_t> history_;
  std::vector<int32_t> history_buf_;  // scratch copy of history_ for the penalty
  std::vector<float> logits_;         // scratch copy of the logits
};

}  // namespace lc
