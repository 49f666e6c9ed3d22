// Text generation: prompt prefill, then sample token by token until n_predict, an
// end-of-generation token or a stop string.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"

namespace lc {

struct GenerateOptions {
  int64_t n_predict = 128;
  SamplerParams sampling;
  std::vector<std::string> stop;  // stop strings (not included in the output)
  bool ignore_eos = false;
};

struct GenerateResult {
  std::string text;             // the continuation, without the prompt
  std::vector<int32_t> tokens;  // ids of the continuation
  int64_t n_prompt = 0;
  double prompt_seconds = 0, gen_seconds = 0;
  std::string stop_reason;  // "length", "eog", "stop"

  double prompt_tok_s() const { return prompt_seconds > 0 ? n_prompt / prompt_seconds : 0; }
  double gen_tok_s() const {
    return gen_seconds > 0 ? static_cast<double>(tokens.size()) / gen_seconds : 0;
  }
};

// Runs the prompt through the session (appending to what it holds) and generates. on_text receives
// the text as it becomes safe to show (whole UTF-8 characters, stop strings held back).
// on_prefill(done, total) reports prompt progress.
GenerateResult generate(Session& s, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_text = {},
                        const std::function<void(int64_t, int64_t)>& on_prefill = {});

}  // namespace lc
