// Full attention: every key and value is kept; keys are stored rotated at their absolute
// positions. When the RoPE table changes between steps (dynamic NTK, LongRoPE short->long), the
// stored keys are re-rotated to the new table so that every key is always consistent with it.
#pragma once

#include <vector>

#include "memory/kv_memory.h"

namespace lc {

class FullMemory final : public KvMemory {
 public:
  // max_tokens: a hard limit on stored tokens (0 = unlimited); exceeding it is an lc::Error.
  FullMemory(const MemoryDims& dims, int64_t max_tokens);

  std::string name() const override { return "full"; }
  void attend(int layer, const MemoryStep& step, float* q, const float* k, const float* v,
              float* out) override;
  void commit(const MemoryStep& step) override;
  void reset() override;
  int64_t n_past() const override { return n_past_; }
  size_t bytes_in_ram() const override;

 private:
  struct Layer {
    std::vector<float> k, v;  // [n_past, n_head_kv*head_dim]
    RopeTable table;          // table the stored keys are rotated with
  };
  MemoryDims dims_;
  int64_t max_tokens_;
  int64_t n_past_ = 0;
  std::vector<Layer> layers_;
  AttnState state_;
};

}  // namespace lc
