// Fitness of LongRoPE factor genomes on a model: the mean negative log-likelihood of fixed
// documents at the target length (positions beyond the original context scored), or the loss of
// the answer tokens of passkey documents (needle-driven). Both run the genome the way
// the rope.factors setting applies a factors file: LongRoPE with the genome as one list, the
// attention factor fixed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/session_spec.h"
#include "eval/longrope_search.h"
#include "model/model.h"

namespace lc::eval {

// What a genome stands for.
struct RopeFitnessSetup {
  std::shared_ptr<const Model> model;
  SessionOptions session;  // resolved; the RoPE settings are the base the factors scale
  int64_t orig_ctx = 0;    // L0
  int64_t target = 0;      // the length the documents have
  double attn_factor = 1.0;
  double short_attn_factor = 1.0;  // with the short list (at or below L0)
  // false: the genome is the long list (short list: ones, plain RoPE up to L0); true: the genome
  // is the short list, `other` the long list.
  bool short_list = false;
  std::vector<float> other;
  int64_t other_n_hat = 0;  // with short_list: the n_hat that goes with `other`
};

// The RoPE settings of a factors pair: LongRoPE with these lists, original context orig_ctx,
// max positions target, the attention factors given (short_attn_factor with the short list), the
// first n_hat positions unscaled.
RopeSettings longrope_settings(const RopeSettings& base, const std::vector<float>& long_factors,
                               const std::vector<float>& short_factors, int64_t orig_ctx,
                               int64_t target, double attn_factor, double short_attn_factor,
                               int64_t n_hat);

// `count` consecutive windows of `length` tokens of a tokenized text (BOS first when `bos` >= 0,
// as perplexity() does). lc::Error naming `setting` when the text is shorter than one window;
// fewer windows when it holds fewer.
std::vector<std::vector<int32_t>> fitness_windows(const std::vector<int32_t>& tokens,
                                                  int64_t length, int64_t count, int32_t bos,
                                                  const std::string& setting);

// Mean NLL of each window's tokens after position max(L0, length / 2) when the target is above
// L0, else over the second half of each window (as perplexity() scores it).
class PplFitness : public RopeFitness {
 public:
  PplFitness(RopeFitnessSetup setup, std::vector<std::vector<int32_t>> windows);
  int64_t documents() const override { return static_cast<int64_t>(windows_.size()); }
  double score(const RopeGenome& g, int64_t doc) override;
  int64_t first_scored() const { return first_; }

 private:
  RopeFitnessSetup st_;
  std::vector<std::vector<int32_t>> windows_;
  int64_t first_ = 0;
};

// Passkey documents (landmark form, the text's sentences as filler joined by spaces) of the
// target length, the needle at evenly spread depths; the fitness is the mean NLL of the answer
// tokens (" " + key) after the question.
class NeedleFitness : public RopeFitness {
 public:
  NeedleFitness(RopeFitnessSetup setup, const std::string& text, int64_t count, uint64_t seed);
  int64_t documents() const override { return static_cast<int64_t>(docs_.size()); }
  double score(const RopeGenome& g, int64_t doc) override;

 private:
  struct Doc {
    std::vector<int32_t> ids;  // prompt + answer
    int64_t answer_pos = 0;    // index of the first answer token
  };
  RopeFitnessSetup st_;
  std::vector<Doc> docs_;
};

}  // namespace lc::eval
