// Perplexity computed the way llama.cpp's perplexity tool does, so figures are comparable:
// the token stream (with BOS first when the model adds one) is cut into consecutive
// non-overlapping windows of ctx tokens; each window starts from an empty memory, its first token
// is replaced by BOS when the model adds BOS, and only the second half of each window is scored
// (positions ctx/2 .. ctx-2 predicting the next token).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/session.h"

namespace lc {

struct PplOptions {
  int64_t ctx = 512;
  int64_t max_windows = 0;  // 0 = all
  // progress(windows_done, windows_total, tokens_per_s)
  std::function<void(int64_t, int64_t, double)> progress;
};

struct PplResult {
  double ppl = 0;
  double stderr_ppl = 0;  // standard error of ppl (delta method, as llama.cpp prints)
  double mean_nll = 0;
  int64_t windows = 0;
  int64_t tokens_scored = 0;
  double tokens_per_s = 0;  // tokens processed (ctx per window) per second
  std::vector<double> window_ppl;
};

// tokens: the whole tokenized text (BOS already prepended when the model adds one).
PplResult perplexity(Session& s, const std::vector<int32_t>& tokens, const PplOptions& opt);

}  // namespace lc
