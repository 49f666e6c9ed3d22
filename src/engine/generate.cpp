#include "engine/generate.h"

#include <chrono>

#include "core/error.h"
#include "engine/stop_strings.h"

namespace lc {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerateResult generate(Session& s, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_text,
                        const std::function<void(int64_t, int64_t)>& on_prefill) {
  if (prompt.empty()) fail("the prompt is empty (and the model adds no BOS token)");
  if (opt.n_predict < 0) fail_setting({"n_predict"}, "n_predict must be >= 0, got ", opt.n_predict);
  const Tokenizer& tok = s.model().tokenizer();
  GenerateResult r;
  r.n_prompt = static_cast<int64_t>(prompt.size());
  r.stop_reason = "length";

  auto t0 = std::chrono::steady_clock::now();
  const std::vector<float>* logits =
      &s.eval(prompt.data(), static_cast<int64_t>(prompt.size()), on_prefill);
  r.prompt_seconds = seconds_since(t0);

  Sampler sampler(opt.sampling, s.model().hparams().n_vocab);
  for (int32_t id : prompt) sampler.accept(id);
  StreamDecoder dec(tok);
  StopStrings stops(opt.stop);
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    r.text += piece;
    if (on_text) on_text(piece);
  };

  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < opt.n_predict; ++i) {
    const int32_t id = sampler.sample(logits->data());
    sampler.accept(id);
    if (!opt.ignore_eos && tok.is_eog(id)) {
      r.stop_reason = "eog";
      break;
    }
    r.tokens.push_back(id);
    emit(stops.push(dec.push(id)));
    if (stops.stopped()) {
      r.stop_reason = "stop";
      break;
    }
    if (i + 1 < opt.n_predict) logits = &s.eval(&id, 1);
  }
  if (!stops.stopped()) emit(stops.push(dec.finish()));
  if (!stops.stopped()) emit(stops.finish());
  r.gen_seconds = seconds_since(t0);
  return r;
}

}  // namespace lc
