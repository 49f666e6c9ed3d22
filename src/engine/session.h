// A session: one model, one KV memory, one RoPE setting, and the workspace of its forward steps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/memory_config.h"
#include "engine/session_spec.h"
#include "memory/kv_memory.h"
#include "model/model.h"

namespace lc {

class Session {
 public:
  Session(std::shared_ptr<const Model> model, SessionOptions opt);

  const Model& model() const { return *model_; }
  const SessionOptions& options() const { return opt_; }
  KvMemory& memory() { return *mem_; }
  const KvMemory& memory() const { return *mem_; }
  int64_t n_past() const { return mem_->n_past(); }
  // The tokens the memory holds, in order (n_past() of them).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  void reset() {
    mem_->reset();
    tokens_.clear();
    last_.clear();
  }
  // Forgets every token from position n on (n <= n_past()) when the memory can (see
  // KvMemory::truncate); false, changing nothing, when it cannot. last_logits() is empty
  // afterwards: feed at least one token before sampling. An lc::Error from the memory (a spilled
  // block that cannot be read back) leaves the session empty.
  bool truncate(int64_t n);
  // After the memory was restored (engine/session_state.h): the tokens it holds and the logits
  // after the last one (empty if unknown).
  void restore(std::vector<int32_t> tokens, std::vector<float> last_logits);

  // One forward step of n tokens (1 <= n; prompts are fed in chunks of at most options().batch);
  // the logits after the last one are in last_logits() afterwards.
  void feed(const int32_t* tokens, int64_t n);
  // How a prompt of n tokens is split into steps: chunks of options().batch, the last token in a
  // step of its own where the memory wants it (KvMemory::last_token_alone: InfLLM, streaming).
  // The size of the step that starts after `done` tokens.
  int64_t prefill_step_size(int64_t done, int64_t n) const;

  // Feeds tokens in chunks of options().batch (the last token in a step of its own where the
  // memory wants it, as InfLLM prefills) and returns the logits after the last one.
  // progress(done, total) is called after each chunk when given.
  const std::vector<float>& eval(const int32_t* tokens, int64_t n,
                                 const std::function<void(int64_t, int64_t)>& progress = {});
  const std::vector<float>& eval(const std::vector<int32_t>& tokens) {
    return eval(tokens.data(), static_cast<int64_t>(tokens.size()));
  }
  // Like eval, but hands the logits of every token to fn(index, logits).
  void eval_all(const int32_t* tokens, int64_t n,
                const std::function<void(int64_t, const float*)>& fn);

  const std::vector<float>& last_logits() const { return last_; }

  // Where the memory reports its searches (memory.trace_retrieval opens a file for it); a
  // caller may put its own in front (e.g. one that also records the needle's blocks).
  const std::shared_ptr<RetrievalTrace>& retrieval_trace() const { return trace_; }
  void set_retrieval_trace(std::shared_ptr<RetrievalTrace> trace);

  // Bytes of the session's working buffers (forward-step activations, kernel scratch, logits):
  // with memory().bytes_in_ram(), what the session holds besides the model.
  size_t workspace_bytes() const;

 private:
  void step(const int32_t* tokens, int64_t n, float* logits, bool all);

  std::shared_ptr<const Model> model_;
  SessionOptions opt_;
  std::unique_ptr<KvMemory> mem_;
  std::shared_ptr<RetrievalTrace> trace_;
  Workspace ws_;
  std::vector<float> last_, all_;
  std::vector<int32_t> tokens_;
  RopeTable table_;
  int64_t table_len_ = -1;
};

}  // namespace lc
