#include "memory/full_memory.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace lc {

namespace {
// Stored keys re-rotated per pass when the table changes (bounds the f32 copy of f16 / q8_0 keys).
constexpr int64_t kRerotateRows = 256;

// The bytes the stored rows take. Not the vectors' capacity: growth doubles it, but the pages
// past the stored rows are never written and so never resident.
size_t rows_bytes(const std::vector<float>& a, const std::vector<uint16_t>& b,
                  const std::vector<BlockQ8_0>& c) {
  return a.size() * sizeof(float) + b.size() * sizeof(uint16_t) + c.size() * sizeof(BlockQ8_0);
}
}  // namespace

FullMemory::FullMemory(const MemoryDims& dims, int64_t max_tokens, KvType kv_type)
    : dims_(dims),
      max_tokens_(max_tokens),
      type_(kv_type),
      layers_(static_cast<size_t>(dims.n_layer)) {
  if (type_ == KvType::Q8_0 && dims.attn.head_dim % kQK != 0)
    fail_setting({"memory.kv_type"},
                 "memory.kv_type q8_0 needs a head dim that is a multiple of 32 (its blocks of 32 "
                 "values lie inside one head), but this model's head dim is ",
                 dims.attn.head_dim, "; use memory.kv_type f16");
}

void FullMemory::reset() {
  n_past_ = 0;
  saved_.clear();
  for (auto& l : layers_) {
    for (Rows* r : {&l.k, &l.v}) {
      r->f32.clear();
      r->f16.clear();
      r->q8.clear();
    }
    l.table = RopeTable{};
  }
}

size_t FullMemory::bytes_in_ram() const {
  size_t b = 0;
  for (const auto& l : layers_)
    b += rows_bytes(l.k.f32, l.k.f16, l.k.q8) + rows_bytes(l.v.f32, l.v.f16, l.v.q8);
  return b;
}

void* FullMemory::at(Rows& r, int64_t elem) const {
  switch (type_) {
    case KvType::F32:
      return r.f32.data() + elem;
    case KvType::F16:
      return r.f16.data() + elem;
    case KvType::Q8_0:
      return r.q8.data() + elem / kQK;
  }
  return nullptr;
}

void FullMemory::append(Rows& r, const float* x, int64_t n) const {
  int64_t old = 0;
  switch (type_) {
    case KvType::F32:
      old = static_cast<int64_t>(r.f32.size());
      r.f32.resize(static_cast<size_t>(old + n));
      break;
    case KvType::F16:
      old = static_cast<int64_t>(r.f16.size());
      r.f16.resize(static_cast<size_t>(old + n));
      break;
    case KvType::Q8_0:
      old = static_cast<int64_t>(r.q8.size()) * kQK;
      r.q8.resize(static_cast<size_t>((old + n) / kQK));
      break;
  }
  kv_from_f32(type_, x, at(r, old), n);
}

void FullMemory::rerotate(Layer& L, const RopeTable& delta) {
  const AttnDims& d = dims_.attn;
  const int64_t kv_w = d.n_head_kv * d.head_dim;
  if (type_ == KvType::F32) {
    rope_apply(delta, L.k.f32.data(), n_past_, kv_w, d.n_head_kv, d.head_dim, 0);
    return;
  }
  // Stored in f16 / q8_0: to f32, rotate, back (a pass of rows at a time).
  for (int64_t j0 = 0; j0 < n_past_; j0 += kRerotateRows) {
    const int64_t n = std::min(kRerotateRows, n_past_ - j0);
    scratch_.resize(static_cast<size_t>(n * kv_w));
    void* p = at(L.k, j0 * kv_w);
    kv_to_f32(type_, p, scratch_.data(), n * kv_w);
    rope_apply(delta, scratch_.data(), n, kv_w, d.n_head_kv, d.head_dim, j0);
    kv_from_f32(type_, scratch_.data(), p, n * kv_w);
  }
}

void FullMemory::attend(int layer, const MemoryStep& step, float* q, const float* k, const float* v,
                        float* out) {
  LC_CHECK(layer >= 0 && layer < dims_.n_layer && step.rope != nullptr);
  LC_CHECK(step.pos0 == n_past_);
  if (max_tokens_ > 0 && n_past_ + step.n > max_tokens_)
    fail_setting({"memory.max_ctx"}, "context full: ", n_past_ + step.n,
                 " tokens exceed the full-attention limit of ", max_tokens_,
                 " (raise memory.max_ctx, or use memory.policy streaming or infllm)");
  const AttnDims& d = dims_.attn;
  const int64_t kv_w = d.n_head_kv * d.head_dim, q_w = d.n_head * d.head_dim;
  Layer& L = layers_[static_cast<size_t>(layer)];
  const RopeTable& rt = *step.rope;

  // Re-rotate cached keys when the table changed: rotating by the angle difference and rescaling
  // by the ratio of attention factors is the same as rotating the unrotated key with the new table
  // (positions below n_hat by their own tables' difference).
  if (n_past_ > 0 && !(L.table == rt)) {
    if (L.table.n_hat != rt.n_hat || L.table.inv_freq.size() != rt.inv_freq.size())
      fail("the cached keys were rotated with ", L.table.inv_freq.size(),
           " frequency pairs and n_hat ", L.table.n_hat, ", this step's RoPE table has ",
           rt.inv_freq.size(), " and n_hat ", rt.n_hat, "; reset the memory");
    rerotate(L, rope_delta(L.table, rt));
    saved_.clear();  // the stored keys changed: every row is written again at the next save
  }
  L.table = rt;

  // New keys are rotated in f32, then stored in the memory's type.
  // The angles of this step's positions are computed at the first layer and reused by the others.
  angles_.fill(rt, step.pos0, step.n);
  scratch_.assign(k, k + step.n * kv_w);
  rope_apply(angles_, scratch_.data(), step.n, kv_w, d.n_head_kv, d.head_dim);
  append(L.k, scratch_.data(), step.n * kv_w);
  append(L.v, v, step.n * kv_w);
  rope_apply(angles_, q, step.n, q_w, d.n_head, d.head_dim);

  KvSpan span{at(L.k, 0), at(L.v, 0), n_past_ + step.n, kv_w, type_};
  AttnMask mask;
  mask.diag = n_past_;  // query i (absolute n_past + i) sees keys 0..n_past + i
  state_.reset(step.n, d.n_head, d.head_dim);
  attention_accumulate(q, q_w, span, mask, d, state_, kernel_scratch(step));
  attention_finish(state_, out, q_w);
}

void FullMemory::commit(const MemoryStep& step) { n_past_ += step.n; }

}  // namespace lc

namespace lc {

namespace {
const char* kKind = "full";
}

void FullMemory::save_state(MemorySave& out) {
  put_memory_tag(out.head, kKind, dims_);
  out.head.put<uint8_t>(static_cast<uint8_t>(type_));
  out.head.put(n_past_);
  for (const Layer& L : layers_) put_table(out.head, L.table);
  const int64_t kv_w = dims_.attn.n_head_kv * dims_.attn.head_dim;
  const size_t row_bytes = 2 * layers_.size() * kv_bytes(type_, kv_w);
  saved_.save(out, n_past_, Segments::items_per_segment(row_bytes), [&](int64_t r0, int64_t r1) {
    ByteWriter w;
    for (Layer& L : layers_)
      for (Rows* r : {&L.k, &L.v}) w.raw(at(*r, r0 * kv_w), kv_bytes(type_, (r1 - r0) * kv_w));
    return std::move(w.bytes());
  });
}

void FullMemory::load_state(MemoryLoad& in) {
  LC_CHECK(n_past_ == 0);
  try {
    check_memory_tag(in.head, kKind, dims_);
    const uint8_t type = in.head.get<uint8_t>();
    if (type != static_cast<uint8_t>(type_))
      fail(in.head.what(), ": the state holds keys and values as ",
           type <= 2 ? kv_type_name(static_cast<KvType>(type)) : "?", ", this session as ",
           kv_type_name(type_), " (memory.kv_type)");
    const int64_t n = in.head.get<int64_t>();
    in.head.expect(n >= 0 && (max_tokens_ == 0 || n <= max_tokens_), "token count");
    for (Layer& L : layers_) L.table = get_table(in.head);
    const int64_t kv_w = dims_.attn.n_head_kv * dims_.attn.head_dim;
    saved_.load(in, n, [&](int64_t r0, int64_t r1, const std::vector<uint8_t>& bytes) {
      const size_t rows = kv_bytes(type_, (r1 - r0) * kv_w);
      in.head.expect(bytes.size() == rows * 2 * layers_.size(), "segment size");
      const uint8_t* p = bytes.data();
      for (Layer& L : layers_)
        for (Rows* r : {&L.k, &L.v}) {
          const int64_t old = r0 * kv_w;
          switch (type_) {
            case KvType::F32:
              r->f32.resize(static_cast<size_t>(old + (r1 - r0) * kv_w));
              break;
            case KvType::F16:
              r->f16.resize(static_cast<size_t>(old + (r1 - r0) * kv_w));
              break;
            case KvType::Q8_0:
              r->q8.resize(static_cast<size_t>((old + (r1 - r0) * kv_w) / kQK));
              break;
          }
          std::memcpy(at(*r, old), p, rows);
          p += rows;
        }
    });
    n_past_ = n;
  } catch (...) {
    reset();
    throw;
  }
}

bool FullMemory::truncate(int64_t n) {
  LC_CHECK(n >= 0 && n <= n_past_);
  const int64_t kv_w = dims_.attn.n_head_kv * dims_.attn.head_dim;
  for (Layer& L : layers_)
    for (Rows* r : {&L.k, &L.v}) {
      r->f32.resize(type_ == KvType::F32 ? static_cast<size_t>(n * kv_w) : 0);
      r->f16.resize(type_ == KvType::F16 ? static_cast<size_t>(n * kv_w) : 0);
      r->q8.resize(type_ == KvType::Q8_0 ? static_cast<size_t>(n * kv_w / kQK) : 0);
    }
  n_past_ = n;
  saved_.truncate(n);
  return true;
}

}  // namespace lc
