#include "engine/perplexity.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "kernels/ops.h"

namespace lc {

PplResult perplexity(Session& s, const std::vector<int32_t>& tokens, const PplOptions& opt) {
  const int64_t ctx = opt.ctx;
  if (ctx < 4) fail_setting({"ppl.ctx"}, "ppl.ctx (the window) must be at least 4, got ", ctx);
  const int64_t n_tok = static_cast<int64_t>(tokens.size());
  int64_t n_win = n_tok / ctx;
  if (n_win == 0)
    fail_setting({"ppl.ctx"}, "the text has ", n_tok, " tokens, fewer than one window of ppl.ctx ",
                 ctx);
  if (opt.max_windows > 0 && n_win > opt.max_windows) n_win = opt.max_windows;

  const Tokenizer& tok = s.model().tokenizer();
  const bool add_bos = tok.add_bos() && tok.bos() >= 0;
  const int64_t first = ctx / 2;
  const int64_t nv = s.model().hparams().n_vocab;

  PplResult r;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<int32_t> win(static_cast<size_t>(ctx));
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t w = 0; w < n_win; ++w) {
    const int32_t* src = tokens.data() + w * ctx;
    win.assign(src, src + ctx);
    if (add_bos) win[0] = tok.bos();
    s.reset();
    double wnll = 0;
    int64_t wcount = 0;
    s.eval_all(win.data(), ctx, [&](int64_t i, const float* logits) {
      if (i < first || i >= ctx - 1) return;
      const int32_t target = src[i + 1];
      LC_CHECK(target >= 0 && target < nv);
      const double lp = static_cast<double>(logits[target]) - log_sum_exp(logits, nv);
      nll -= lp;
      nll2 += lp * lp;
      wnll -= lp;
      ++count;
      ++wcount;
    });
    r.window_ppl.push_back(std::exp(wnll / static_cast<double>(wcount)));
    if (opt.progress) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      opt.progress(w + 1, n_win, secs > 0 ? static_cast<double>((w + 1) * ctx) / secs : 0);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.windows = n_win;
  r.tokens_scored = count;
  r.mean_nll = nll / static_cast<double>(count);
  r.ppl = std::exp(r.mean_nll);
  double var = nll2 / static_cast<double>(count) - r.mean_nll * r.mean_nll;
  r.stderr_ppl =
      (var > 0 && count > 1) ? r.ppl * std::sqrt(var / static_cast<double>(count - 1)) : 0.0;
  r.tokens_per_s = secs > 0 ? static_cast<double>(n_win * ctx) / secs : 0;
  return r;
}

}  // namespace lc
