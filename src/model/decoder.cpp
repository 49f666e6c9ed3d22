// The shared decoder forward pass of every LLaMA-family architecture:
//   x = embed(tokens)
//   per layer: x += Wo * attn(rope(Wq*norm(x)), rope(Wk*norm(x)), Wv*norm(x))
//              x += Wdown * (silu(Wgate*norm(x)) * Wup*norm(x))
//   logits = Wout * norm(x)
// Attention (and RoPE) happens inside the KV memory the caller passes in.
#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/model.h"

namespace lc {

namespace {

void grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

void add_bias(float* y, const VecWeight& b, int64_t n_tok, int64_t width) {
  if (b.empty()) return;
  for (int64_t t = 0; t < n_tok; ++t) add_inplace(y + t * width, b.data(), width);
}

// Row-wise work over n tokens: split over the pool when there are enough rows to pay for it
// (prefill), on the calling thread otherwise (decode).
template <typename Fn>
void per_token(int64_t n, int64_t width, const Fn& fn) {
  constexpr int64_t kMinParallel = 1 << 15;  // elements
  if (n < 2 || n * width < kMinParallel) {
    for (int64_t t = 0; t < n; ++t) fn(t);
    return;
  }
  parallel_for(n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) fn(t);
  });
}

// Copies columns [c0, c0 + w) of a [n, width] matrix into a dense [n, w] one.
void split_cols(const float* src, int64_t n, int64_t width, int64_t c0, int64_t w, float* dst) {
  for (int64_t t = 0; t < n; ++t) std::copy_n(src + t * width + c0, w, dst + t * w);
}

}  // namespace

size_t Workspace::bytes() const {
  size_t n = 0;
  for (const std::vector<float>* v : {&x, &h, &q, &k, &v, &att, &ffn_a, &ffn_b, &qkv})
    n += v->capacity() * sizeof(float);
  return n + kernels.bytes();
}

void Model::forward(KvMemory& mem, const MemoryStep& step_in, const int32_t* tokens, Workspace& ws,
                    float* logits, bool all_logits) const {
  LC_CHECK(has_weights_);
  MemoryStep step = step_in;
  if (step.scratch == nullptr) step.scratch = &ws.kernels;
  KernelScratch& ks = ws.kernels;
  const int64_t n = step.n, d = hp_.n_embd, hd = hp_.head_dim;
  const int64_t dq = hp_.n_head * hd, dkv = hp_.n_head_kv * hd, ff = hp_.n_ff;
  if (n <= 0) return;
  grow(ws.x, n * d);
  grow(ws.h, n * d);
  grow(ws.q, n * dq);
  grow(ws.k, n * dkv);
  grow(ws.v, n * dkv);
  grow(ws.att, n * dq);
  // Gate and up side by side only for a fused gate_up weight; separate ones write up alone (the
  // vectors are zero-filled when they grow, so every element asked for becomes resident).
  bool fused = false;
  for (const LayerWeights& L : w_.layers) fused = fused || L.w_gate_up.data != nullptr;
  grow(ws.ffn_a, n * (fused ? 2 : 1) * ff);
  grow(ws.ffn_b, n * ff);

  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= hp_.n_vocab)
      fail("token id ", id, " is out of range (vocabulary has ", hp_.n_vocab, " tokens)");
    weight_row(w_.tok_embd, id, ws.x.data() + t * d);
  }

  for (int il = 0; il < hp_.n_layer; ++il) {
    const LayerWeights& L = w_.layers[static_cast<size_t>(il)];
    per_token(n, d, [&](int64_t t) {
      rmsnorm(ws.x.data() + t * d, L.attn_norm.data(), ws.h.data() + t * d, d, hp_.norm_eps);
    });
    if (L.wqkv.data) {
      const int64_t w3 = dq + 2 * dkv;
      grow(ws.qkv, n * w3);
      matmul(L.wqkv, ws.h.data(), n, ws.qkv.data(), ks);
      split_cols(ws.qkv.data(), n, w3, 0, dq, ws.q.data());
      split_cols(ws.qkv.data(), n, w3, dq, dkv, ws.k.data());
      split_cols(ws.qkv.data(), n, w3, dq + dkv, dkv, ws.v.data());
    } else {
      const WeightMatrix* m[3] = {&L.wq, &L.wk, &L.wv};
      float* y[3] = {ws.q.data(), ws.k.data(), ws.v.data()};
      matmul_group(m, y, 3, ws.h.data(), n, ks);
    }
    add_bias(ws.q.data(), L.bq, n, dq);
    add_bias(ws.k.data(), L.bk, n, dkv);
    add_bias(ws.v.data(), L.bv, n, dkv);

    mem.attend(il, step, ws.q.data(), ws.k.data(), ws.v.data(), ws.att.data());
    matmul(L.wo, ws.att.data(), n, ws.h.data(), ks);
    per_token(n, d, [&](int64_t t) { add_inplace(ws.x.data() + t * d, ws.h.data() + t * d, d); });

    per_token(n, d, [&](int64_t t) {
      rmsnorm(ws.x.data() + t * d, L.ffn_norm.data(), ws.h.data() + t * d, d, hp_.norm_eps);
    });
    if (L.w_gate_up.data) {
      matmul(L.w_gate_up, ws.h.data(), n, ws.ffn_a.data(), ks);
      per_token(n, ff, [&](int64_t t) {
        float* row = ws.ffn_a.data() + t * 2 * ff;
        silu_mul(row, row + ff, ff);
        std::copy_n(row, ff, ws.ffn_b.data() + t * ff);
      });
    } else {
      const WeightMatrix* m[2] = {&L.w_gate, &L.w_up};
      float* y[2] = {ws.ffn_b.data(), ws.ffn_a.data()};
      matmul_group(m, y, 2, ws.h.data(), n, ks);
      per_token(n, ff, [&](int64_t t) {
        silu_mul(ws.ffn_b.data() + t * ff, ws.ffn_a.data() + t * ff, ff);
      });
    }
    matmul(L.w_down, ws.ffn_b.data(), n, ws.h.data(), ks);
    per_token(n, d, [&](int64_t t) { add_inplace(ws.x.data() + t * d, ws.h.data() + t * d, d); });
  }
  mem.commit(step);

  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t n_out = n - first;
  for (int64_t t = first; t < n; ++t)
    rmsnorm(ws.x.data() + t * d, w_.output_norm.data(), ws.h.data() + (t - first) * d, d,
            hp_.norm_eps);
  matmul(w_.output, ws.h.data(), n_out, logits, ks);
}

}  // namespace lc
