#include "engine/session.h"

#include <algorithm>

#include "core/error.h"
#include "engine/retrieval_trace_file.h"

namespace lc {

Session::Session(std::shared_ptr<const Model> model, SessionOptions opt)
    : model_(std::move(model)), opt_(std::move(opt)) {
  if (!model_->has_weights()) fail(model_->gguf().path(), ": the file has no weights to run");
  if (opt_.batch <= 0) fail("batch size must be positive, got ", opt_.batch);
  if (opt_.rope.dim <= 0 || opt_.rope.dim > model_->hparams().head_dim || opt_.rope.dim % 2)
    fail("rotary dimension ", opt_.rope.dim, " must be even and in 2..",
         model_->hparams().head_dim);
  mem_ = make_memory(model_->memory_dims(), opt_.memory);
  if (!opt_.memory.trace_path.empty())
    set_retrieval_trace(std::make_shared<RetrievalTraceFile>(opt_.memory.trace_path));
}

void Session::set_retrieval_trace(std::shared_ptr<RetrievalTrace> trace) {
  trace_ = std::move(trace);
  mem_->set_retrieval_trace(trace_);
}

void Session::step(const int32_t* tokens, int64_t n, float* logits, bool all) {
  MemoryStep st;
  st.pos0 = mem_->n_past();
  st.n = n;
  int64_t len = st.pos0 + n;
  if (mem_->max_distance() > 0) len = std::min(len, mem_->max_distance());
  if (table_len_ < 0 || (rope_depends_on_length(opt_.rope) && table_len_ != len)) {
    table_ = rope_table(opt_.rope, len);
    table_len_ = len;
  }
  st.rope = &table_;
  model_->forward(*mem_, st, tokens, ws_, logits, all);
  tokens_.insert(tokens_.end(), tokens, tokens + n);
}

bool Session::truncate(int64_t n) {
  LC_CHECK(n >= 0 && n <= n_past());
  if (n == n_past()) return true;
  try {
    if (!mem_->truncate(n)) return false;
  } catch (...) {
    reset();  // the memory reset itself (an I/O error): so do the tokens
    throw;
  }
  tokens_.resize(static_cast<size_t>(n));
  last_.clear();
  table_len_ = -1;
  return true;
}

void Session::restore(std::vector<int32_t> tokens, std::vector<float> last_logits) {
  LC_CHECK(static_cast<int64_t>(tokens.size()) == mem_->n_past());
  LC_CHECK(last_logits.empty() ||
           static_cast<int64_t>(last_logits.size()) == model_->hparams().n_vocab);
  tokens_ = std::move(tokens);
  last_ = std::move(last_logits);
  table_len_ = -1;
}

size_t Session::workspace_bytes() const {
  return ws_.bytes() + (last_.capacity() + all_.capacity()) * sizeof(float);
}

void Session::feed(const int32_t* tokens, int64_t n) {
  LC_CHECK(n >= 1);
  last_.resize(static_cast<size_t>(model_->hparams().n_vocab));
  step(tokens, n, last_.data(), false);
}

int64_t Session::prefill_step_size(int64_t done, int64_t n) const {
  // As InfLLM's reference does: everything but the last token in chunks, then the last token
  // alone, so that the step whose logits are returned retrieves memory blocks with its own query
  // rather than with the sum over a whole execution block. Full attention sees the same keys
  // either way: the last token goes with the chunk before it, sparing a forward pass that reads
  // every weight for one token (and the output matrix of the chunk, whose logits are not kept).
  const int64_t head = n > 1 && mem_->last_token_alone() ? n - 1 : n;
  if (done < head) return std::min(opt_.batch, head - done);
  return done < n ? 1 : 0;
}

const std::vector<float>& Session::eval(const int32_t* tokens, int64_t n,
                                        const std::function<void(int64_t, int64_t)>& progress) {
  last_.resize(static_cast<size_t>(model_->hparams().n_vocab));
  for (int64_t done = 0, m; (m = prefill_step_size(done, n)) > 0; done += m) {
    feed(tokens + done, m);
    if (progress) progress(done + m, n);
  }
  return last_;
}

void Session::eval_all(const int32_t* tokens, int64_t n,
                       const std::function<void(int64_t, const float*)>& fn) {
  const int64_t nv = model_->hparams().n_vocab;
  for (int64_t i = 0; i < n; i += opt_.batch) {
    const int64_t m = std::min(opt_.batch, n - i);
    all_.resize(static_cast<size_t>(m * nv));
    step(tokens + i, m, all_.data(), true);
    for (int64_t j = 0; j < m; ++j) fn(i + j, all_.data() + j * nv);
    last_.assign(all_.end() - nv, all_.end());
  }
}

}  // namespace lc
