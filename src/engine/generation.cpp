#include "engine/generation.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace lc {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Generation::Generation(Session& s, std::vector<int32_t> prompt, const GenerateOptions& opt)
    : s_(s),
      prompt_(std::move(prompt)),
      opt_(opt),
      sampler_(opt.sampling, s.model().hparams().n_vocab),
      dec_(std::make_unique<StreamDecoder>(s.model().tokenizer())),
      stops_(opt.stop) {
  if (prompt_.empty()) fail("the prompt is empty (and the model adds no BOS token)");
  if (opt_.n_predict < 0)
    fail_setting({"n_predict"}, "n_predict must be >= 0, got ", opt_.n_predict);
  if (opt_.logprobs < -1 || opt_.logprobs > 20)
    fail_setting({"logprobs"}, "logprobs must be in 0..20 (or -1 for none), got ", opt_.logprobs);
  r_.n_prompt = static_cast<int64_t>(prompt_.size());
  r_.stop_reason = "length";
  // The penalties look back over the context the model sees: what the session already holds
  // (its last repeat_last_n tokens), then the prompt.
  const std::vector<int32_t>& held = s_.tokens();
  const size_t look_back = static_cast<size_t>(std::max(0, opt_.sampling.repeat_last_n));
  for (size_t i = held.size() - std::min(look_back, held.size()); i < held.size(); ++i)
    sampler_.accept(held[i]);
  for (int32_t id : prompt_) sampler_.accept(id);
  blocks_read0_ = s_.memory().blocks_read_from_disk();
}

Generation::~Generation() = default;

GenerationProgress Generation::progress() const {
  GenerationProgress p;
  p.prompt_done = prompt_done_;
  p.prompt_total = static_cast<int64_t>(prompt_.size());
  p.generated = static_cast<int64_t>(r_.tokens.size());
  p.blocks_read = s_.memory().blocks_read_from_disk() - blocks_read0_;
  return p;
}

bool Generation::step() {
  new_text_.clear();
  new_token_ = -1;
  if (done_) return false;
  if (cancelled()) {
    if (prompt_done_ < r_.n_prompt)
      r_.prompt_seconds = prompt_done_ > 0 ? seconds_since(t_prompt_) : 0;
    finish("cancelled");
    return true;
  }
  if (prompt_done_ < r_.n_prompt)
    prefill_step();
  else
    decode_step();
  return true;
}

void Generation::prefill_step() {
  if (prompt_done_ == 0) t_prompt_ = std::chrono::steady_clock::now();
  const int64_t n = s_.prefill_step_size(prompt_done_, r_.n_prompt);
  LC_CHECK(n > 0);
  s_.feed(prompt_.data() + prompt_done_, n);
  prompt_done_ += n;
  if (prompt_done_ == r_.n_prompt) {
    r_.prompt_seconds = seconds_since(t_prompt_);
    t_gen_ = std::chrono::steady_clock::now();
    if (opt_.n_predict == 0) finish("length");
  }
}

void Generation::decode_step() {
  const int32_t id = sampler_.sample(s_.last_logits().data());
  sampler_.accept(id);
  if (!opt_.ignore_eos && s_.model().tokenizer().is_eog(id)) {
    finish("eog");
    return;
  }
  r_.tokens.push_back(id);
  if (opt_.logprobs >= 0) r_.logprobs.push_back(logprob_of(id));
  new_token_ = id;
  emit(stops_.push(dec_->push(id)));
  if (stops_.stopped()) {
    finish("stop");
    return;
  }
  if (static_cast<int64_t>(r_.tokens.size()) < opt_.n_predict)
    s_.feed(&id, 1);
  else
    finish("length");
}

TokenLogprob Generation::logprob_of(int32_t id) const {
  const std::vector<float>& x = s_.last_logits();
  const float mx = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (float v : x) sum += std::exp(static_cast<double>(v - mx));
  const float norm = mx + static_cast<float>(std::log(sum));
  TokenLogprob t;
  t.id = id;
  t.logprob = x[static_cast<size_t>(id)] - norm;
  const size_t k = std::min(static_cast<size_t>(opt_.logprobs), x.size());
  std::vector<int32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](int32_t a, int32_t b) { return x[a] != x[b] ? x[a] > x[b] : a < b; });
  for (size_t i = 0; i < k; ++i)
    t.top.emplace_back(order[i], x[static_cast<size_t>(order[i])] - norm);
  return t;
}

void Generation::emit(const std::string& piece) {
  if (piece.empty()) return;
  r_.text += piece;
  new_text_ += piece;
}

void Generation::finish(const char* reason) {
  r_.stop_reason = reason;
  if (!stops_.stopped()) emit(stops_.push(dec_->finish()));
  if (!stops_.stopped()) emit(stops_.finish());
  if (prompt_done_ == r_.n_prompt) r_.gen_seconds = seconds_since(t_gen_);
  done_ = true;
}

}  // namespace lc
