#include "memory/full_memory.h"

#include "core/error.h"

namespace lc {

FullMemory::FullMemory(const MemoryDims& dims, int64_t max_tokens)
    : dims_(dims), max_tokens_(max_tokens), layers_(static_cast<size_t>(dims.n_layer)) {}

void FullMemory::reset() {
  n_past_ = 0;
  for (auto& l : layers_) {
    l.k.clear();
    l.v.clear();
    l.table = RopeTable{};
  }
}

size_t FullMemory::bytes_in_ram() const {
  size_t b = 0;
  for (const auto& l : layers_) b += (l.k.capacity() + l.v.capacity()) * sizeof(float);
  return b;
}

void FullMemory::attend(int layer, const MemoryStep& step, float* q, const float* k, const float* v,
                        float* out) {
  LC_CHECK(layer >= 0 && layer < dims_.n_layer && step.rope != nullptr);
  LC_CHECK(step.pos0 == n_past_);
  if (max_tokens_ > 0 && n_past_ + step.n > max_tokens_)
    fail("context full: ", n_past_ + step.n, " tokens exceed the full-attention limit of ",
         max_tokens_, " (raise --ctx, or use --memory streaming|infllm)");
  const AttnDims& d = dims_.attn;
  const int64_t kv_w = d.n_head_kv * d.head_dim, q_w = d.n_head * d.head_dim;
  Layer& L = layers_[static_cast<size_t>(layer)];
  const RopeTable& rt = *step.rope;

  // Re-rotate cached keys when the table changed: rotating by the angle difference and rescaling
  // by the ratio of attention factors is the same as rotating the unrotated key with the new table.
  if (n_past_ > 0 && !(L.table == rt)) {
    LC_CHECK(L.table.inv_freq.size() == rt.inv_freq.size());
    RopeTable delta = rt;
    for (size_t i = 0; i < delta.inv_freq.size(); ++i) delta.inv_freq[i] -= L.table.inv_freq[i];
    delta.attn_factor = rt.attn_factor / L.table.attn_factor;
    rope_apply(delta, L.k.data(), n_past_, kv_w, d.n_head_kv, d.head_dim, 0);
  }
  L.table = rt;

  const size_t old = L.k.size();
  L.k.insert(L.k.end(), k, k + step.n * kv_w);
  L.v.insert(L.v.end(), v, v + step.n * kv_w);
  rope_apply(rt, L.k.data() + old, step.n, kv_w, d.n_head_kv, d.head_dim, step.pos0);
  rope_apply(rt, q, step.n, q_w, d.n_head, d.head_dim, step.pos0);

  KvSpan span{L.k.data(), L.v.data(), n_past_ + step.n, kv_w};
  AttnMask mask;
  mask.diag = n_past_;  // query i (absolute n_past + i) sees keys 0..n_past + i
  state_.reset(step.n, d.n_head, d.head_dim);
  attention_accumulate(q, q_w, span, mask, d, state_);
  attention_finish(state_, out, q_w);
}

void FullMemory::commit(const MemoryStep& step) { n_past_ += step.n; }

}  // namespace lc
