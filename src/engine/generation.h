// A generation a caller advances step by step: the prompt in prefill chunks, then one token per
// step, until n_predict, an end-of-generation token, a stop string, or cancel().
//
//   Generation g(session, prompt_tokens, options);
//   while (g.step()) show(g.new_text(), g.progress());
//   const GenerateResult& r = g.result();
//
// Cancelling (from any thread) takes effect between two steps: a cancelled prefill keeps the
// chunks it finished (the session holds them and can continue from there), a cancelled decode
// keeps the tokens generated so far. The memory is never left half-updated.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/stop_strings.h"

namespace lc {

struct GenerateOptions {
  int64_t n_predict = 128;  // n_predict: most tokens to generate
  SamplerParams sampling;
  std::vector<std::string> stop;  // stop strings (not included in the output)
  bool ignore_eos = false;
  // Log-probabilities of each generated token and of the `logprobs` most likely ones (0..20);
  // -1 = none. From the model's logits (log-softmax), before temperature and the other samplers.
  int logprobs = -1;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

struct GenerateResult {
  std::string text;                    // the continuation, without the prompt
  std::vector<int32_t> tokens;         // ids of the continuation
  std::vector<TokenLogprob> logprobs;  // one per token, when GenerateOptions::logprobs >= 0
  int64_t n_prompt = 0;
  double prompt_seconds = 0, gen_seconds = 0;
  std::string stop_reason;  // "length", "eog", "stop", "cancelled"

  double prompt_tok_s() const { return prompt_seconds > 0 ? n_prompt / prompt_seconds : 0; }
  double gen_tok_s() const {
    return gen_seconds > 0 ? static_cast<double>(tokens.size()) / gen_seconds : 0;
  }
};

struct GenerationProgress {
  int64_t prompt_done = 0, prompt_total = 0;  // prompt tokens prefilled so far, of all
  int64_t generated = 0;                      // tokens generated so far
  int64_t blocks_read = 0;  // memory blocks read back from disk since the generation started
  bool prefilling() const { return prompt_done < prompt_total; }
};

class Generation {
 public:
  // The prompt is appended to what the session already holds; the sampler's penalties count the
  // session's last tokens as well as the prompt's, so a continued session samples as one that
  // was given the whole text at once. lc::Error for an empty prompt or
  // options out of range (naming the setting).
  Generation(Session& s, std::vector<int32_t> prompt, const GenerateOptions& opt);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Runs one step: a prefill chunk, or one generated token. Returns false (and runs nothing) once
  // the generation is over.
  bool step();
  bool done() const { return done_; }

  // Asks the generation to stop before its next step; callable from any thread.
  void cancel() { cancel_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancel_.load(std::memory_order_relaxed); }

  GenerationProgress progress() const;
  // Text the last step made safe to show (whole UTF-8 characters, stop strings held back), and
  // the token it generated (-1 for a prefill step or when it generated none).
  const std::string& new_text() const { return new_text_; }
  int32_t new_token() const { return new_token_; }
  // The log-probabilities of new_token() (when asked for and it generated one), else null.
  const TokenLogprob* new_logprob() const {
    return new_token_ >= 0 && opt_.logprobs >= 0 ? &r_.logprobs.back() : nullptr;
  }
  // The result so far; complete once done().
  const GenerateResult& result() const { return r_; }

 private:
  void prefill_step();
  void decode_step();
  void finish(const char* reason);
  void emit(const std::string& piece);
  TokenLogprob logprob_of(int32_t id) const;

  Session& s_;
  std::vector<int32_t> prompt_;
  GenerateOptions opt_;
  GenerateResult r_;
  Sampler sampler_;
  std::unique_ptr<StreamDecoder> dec_;
  StopStrings stops_;
  std::atomic<bool> cancel_{false};
  int64_t prompt_done_ = 0, blocks_read0_ = 0;
  bool done_ = false;
  std::string new_text_;
  int32_t new_token_ = -1;
  std::chrono::steady_clock::time_point t_prompt_, t_gen_;
};

}  // namespace lc
