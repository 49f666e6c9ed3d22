#include "memory/context_memory.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <tuple>

#include "core/error.h"
#include "kernels/kv_type.h"
#include "kernels/ops.h"

namespace lc {

namespace {

double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct ContextMemory::Layer {
  // Remainder: tokens that are not sinks and not in a block yet, oldest first; rows [off, off + n)
  // of the vectors, absolute positions [pos0, pos0 + n). Always includes the local window.
  std::vector<float> k, v, k_rot, score;  // k/v unrotated, k_rot at absolute positions
  int64_t off = 0, n = 0, pos0 = 0;
  // Sinks, unrotated (and, for StreamingLLM, rotated at positions 0..n_init-1).
  std::vector<float> ik, iv, ik_rot;
  int64_t n_init = 0;
  RopeTable table;
  bool has_table = false;
  std::unique_ptr<BlockStore> store;
  std::unique_ptr<BlockRetrieval> retrieval;
  std::vector<int64_t> selected;
  std::vector<BlockView> views;  // of the selected blocks, pinned in store until the next step
  // Single-token steps at positions below it choose among the candidates the last search kept.
  int64_t reuse_until = 0;
};

// Candidates a decoding step's search keeps for the steps after it (memory.retrieval_interval):
// this many times topk.
constexpr int64_t kPoolPerTopk = 4;

namespace {

// Representatives a search typically scores: one that proves its result exact scores about 550
// at 1M tokens of natural text (docs/memory.md); the budget (2048 by default) caps the rarer long
// ones. The index's pages are given RAM for this many, not for the cap: a larger share would
// leave the blocks too little.
constexpr int64_t kTypicalScored = 512;

// Bytes of blocks one decoding step reads in a layer (the topk blocks), and of the index's
// representatives a search typically scores.
struct StepBytes {
  size_t blocks = 0, scored = 0;
};
StepBytes step_bytes(const ContextMemoryOptions& o, const MemoryDims& dims) {
  const size_t block =
      2 * static_cast<size_t>(o.block_size * dims.attn.n_head_kv * dims.attn.head_dim) *
      sizeof(float);
  StepBytes b;
  b.blocks = static_cast<size_t>(o.topk) * block;
  const int64_t scored =
      o.index_budget > 0 ? std::min(o.index_budget, kTypicalScored) : kTypicalScored;
  b.scored = static_cast<size_t>(scored) *
             static_cast<size_t>(dims.attn.n_head * dims.attn.head_dim) * sizeof(float);
  return b;
}

// Room for `rows` rows of w floats in one of the remainder's vectors. Capacity doubles as
// std::vector's would, but not past most_rows rows (what the remainder can hold: form_blocks
// compacts it), so that the window's vectors do not end up with twice the room they use.
void reserve_rows(std::vector<float>& vec, int64_t rows, int64_t w, int64_t most_rows) {
  const size_t need = static_cast<size_t>(rows * w);
  if (vec.capacity() >= need) return;
  vec.reserve(std::max(need, std::min(2 * vec.capacity(), static_cast<size_t>(most_rows * w))));
}

// All layers' RAM that keeps one decoding step off the disk.
size_t one_step_bytes(const ContextMemoryOptions& o, const MemoryDims& dims) {
  const StepBytes b = step_bytes(o, dims);
  return static_cast<size_t>(dims.n_layer) * std::max(b.blocks + b.blocks / 2, 3 * b.scored);
}

}  // namespace

BudgetShare share_budget(size_t mem_budget, const ContextMemoryOptions& o, const MemoryDims& dims) {
  if (mem_budget == 0) return {};
  const size_t per_layer = std::max<size_t>(2, mem_budget / static_cast<size_t>(dims.n_layer));
  const StepBytes b = step_bytes(o, dims);
  const double pages_part =
      static_cast<double>(b.scored) / static_cast<double>(std::max<size_t>(1, b.scored + b.blocks));
  BudgetShare s;
  s.pages = std::clamp<size_t>(static_cast<size_t>(static_cast<double>(per_layer) * pages_part), 1,
                               per_layer - 1);
  s.blocks = per_layer - s.pages;
  return s;
}

size_t default_mem_budget(const ContextMemoryOptions& o, const MemoryDims& dims) {
  return std::max<size_t>(size_t{64} << 20, 2 * one_step_bytes(o, dims));
}

std::string budget_warning(const ContextMemoryOptions& o, const MemoryDims& dims) {
  if (!o.infllm || o.store.mem_budget == 0) return "";
  const BudgetShare s = share_budget(o.store.mem_budget, o, dims);
  const size_t block =
      2 * static_cast<size_t>(o.block_size * dims.attn.n_head_kv * dims.attn.head_dim) *
      sizeof(float);
  const StepBytes sb = step_bytes(o, dims);
  const size_t step = sb.blocks, scored = sb.scored;
  const size_t need = one_step_bytes(o, dims);
  if (s.blocks >= step && s.pages >= scored) return "";
  const size_t b = o.store.mem_budget;
  return cat("memory.mem_budget ", b >= (size_t{1} << 20) ? b >> 20 : b >> 10,
             b >= (size_t{1} << 20) ? " MiB" : " KiB", " holds ", s.blocks / block, " of the ",
             o.topk, " blocks each layer reads per step and ", s.pages >> 10, " of the ",
             scored >> 10,
             " KiB of representatives a search typically scores: decoding will read them "
             "back from disk at every step; about ",
             (need >> 20) + 1, " MiB keeps one step in RAM");
}

void validate_context_memory(const ContextMemoryOptions& o, int64_t /*trained_ctx*/) {
  if (o.n_local <= 0)
    fail_setting({"memory.n_local"}, "memory.n_local must be positive, got ", o.n_local);
  if (o.n_init < 0) fail_setting({"memory.n_init"}, "memory.n_init must be >= 0, got ", o.n_init);
  if (o.exec_block <= 0)
    fail_setting({"memory.exec_block"}, "memory.exec_block must be positive, got ", o.exec_block);
  if (o.exec_block > o.n_local)
    fail_setting({"memory.exec_block", "memory.n_local"}, "memory.exec_block = ", o.exec_block,
                 " must be <= memory.n_local = ", o.n_local,
                 " (a query block may not be longer than the local window)");
  if (o.infllm) {
    if (o.block_size <= 0)
      fail_setting({"memory.block_size"}, "memory.block_size must be positive, got ", o.block_size);
    if (o.topk < 0) fail_setting({"memory.topk"}, "memory.topk must be >= 0, got ", o.topk);
    if (o.repr_topk <= 0 || o.repr_topk > o.block_size)
      fail_setting({"memory.repr_topk", "memory.block_size"}, "memory.repr_topk = ", o.repr_topk,
                   " must be in 1..memory.block_size (", o.block_size, ")");
    if (o.index_group <= 0)
      fail_setting({"memory.index_group"}, "memory.index_group must be positive, got ",
                   o.index_group);
    if (o.index_clusters <= 0)
      fail_setting({"memory.index_clusters"}, "memory.index_clusters must be positive, got ",
                   o.index_clusters);
    if (o.index_budget < 0)
      fail_setting({"memory.index_budget"}, "memory.index_budget must be >= 0, got ",
                   o.index_budget);
    if (o.neighbors < 0)
      fail_setting({"memory.neighbors"}, "memory.neighbors must be >= 0, got ", o.neighbors);
    if (o.retrieval_interval < 1)
      fail_setting({"memory.retrieval_interval"}, "memory.retrieval_interval must be >= 1, got ",
                   o.retrieval_interval);
    if (o.index_max_groups < 0)
      fail_setting({"memory.index_probe"}, "memory.index_probe must be >= 0, got ",
                   o.index_max_groups);
  }
}

ContextMemory::ContextMemory(const MemoryDims& dims, const ContextMemoryOptions& opt)
    : dims_(dims), opt_(opt) {
  validate_context_memory(opt_, 0);
  opt_.store.tokens_per_block = opt_.block_size;
  opt_.store.row_floats = dims_.attn.n_head_kv * dims_.attn.head_dim;
  if (opt_.store.mem_budget > 0) {
    // Per layer, shared between the index's pages of representatives and the blocks.
    const BudgetShare share = share_budget(opt_.store.mem_budget, opt_, dims_);
    index_budget_bytes_ = share.pages;
    opt_.store.mem_budget = share.blocks;
  }
  for (int l = 0; l < dims_.n_layer; ++l) layers_.push_back(std::make_unique<Layer>());
  reset();
}

ContextMemory::~ContextMemory() = default;

void ContextMemory::reset() {
  n_past_ = 0;
  saved_.clear();
  reset_stats();
  for (auto& L : layers_) {
    *L = Layer{};
    if (opt_.infllm) {
      L->store = std::make_unique<BlockStore>(opt_.store);
      BlockIndexOptions io;
      io.dim = dims_.attn.n_head * dims_.attn.head_dim;
      io.group_size = opt_.index_group;
      io.max_groups = opt_.index_max_groups;
      io.max_clusters = opt_.index_clusters;
      io.max_scored = opt_.index_budget;
      io.exact = opt_.exact_retrieval;
      io.pages = opt_.store;
      io.pages.mem_budget = index_budget_bytes_;
      BlockRetrievalOptions ro;
      ro.n_head = dims_.attn.n_head;
      ro.head_dim = dims_.attn.head_dim;
      ro.topk = opt_.topk;
      ro.head_score = opt_.head_score;
      ro.neighbors = opt_.neighbors;
      ro.pool = kPoolPerTopk * opt_.topk;
      ro.block_size = opt_.block_size;
      ro.first_pos = opt_.n_init;
      ro.measure_recall = opt_.measure_recall;
      L->retrieval = std::make_unique<BlockRetrieval>(io, ro);
    }
  }
}

size_t ContextMemory::bytes_in_ram() const {
  size_t b = 0;
  for (const auto& L : layers_) {
    b += (L->k.capacity() + L->v.capacity() + L->k_rot.capacity() + L->score.capacity() +
          L->ik.capacity() + L->iv.capacity() + L->ik_rot.capacity()) *
         sizeof(float);
    if (L->store) b += L->store->bytes_in_ram();
    if (L->retrieval) b += L->retrieval->index().bytes_in_ram();
  }
  return b;
}

ContextMemory::LayerStats ContextMemory::stats(int layer) const {
  const Layer& L = *layers_.at(static_cast<size_t>(layer));
  LayerStats s;
  s.n_init = L.n_init;
  s.n_remainder = L.n;
  s.n_blocks = L.retrieval ? L.retrieval->size() : 0;
  s.last_selected = L.selected;
  return s;
}

std::vector<float> ContextMemory::block_repr(int layer, int64_t id) const {
  return layers_.at(static_cast<size_t>(layer))->retrieval->index().repr(id);
}

const BlockStore& ContextMemory::store(int layer) const {
  LC_CHECK(opt_.infllm);
  return *layers_.at(static_cast<size_t>(layer))->store;
}

void ContextMemory::rerotate(Layer& L, const RopeTable& rt) {
  const AttnDims& d = dims_.attn;
  const int64_t kvw = d.n_head_kv * d.head_dim;
  std::copy_n(L.k.data() + L.off * kvw, L.n * kvw, L.k_rot.data() + L.off * kvw);
  rope_apply(rt, L.k_rot.data() + L.off * kvw, L.n, kvw, d.n_head_kv, d.head_dim, L.pos0);
  if (!opt_.infllm) {
    L.ik_rot = L.ik;
    rope_apply(rt, L.ik_rot.data(), L.n_init, kvw, d.n_head_kv, d.head_dim, 0);
  }
  L.table = rt;
  L.has_table = true;
}

void ContextMemory::attend(int layer, const MemoryStep& step, float* q, const float* k,
                           const float* v, float* out) {
  LC_CHECK(layer >= 0 && layer < dims_.n_layer && step.rope != nullptr);
  LC_CHECK(step.pos0 == n_past_);
  Layer& L = *layers_[static_cast<size_t>(layer)];
  if (!L.has_table || !(L.table == *step.rope)) rerotate(L, *step.rope);
  const int64_t qw = dims_.attn.n_head * dims_.attn.head_dim;
  const int64_t kvw = dims_.attn.n_head_kv * dims_.attn.head_dim;
  for (int64_t t0 = 0; t0 < step.n; t0 += opt_.exec_block) {
    const int64_t m = std::min(opt_.exec_block, step.n - t0);
    attend_block(L, layer, step, t0, m, q + t0 * qw, k + t0 * kvw, v + t0 * kvw, out + t0 * qw);
    if (opt_.infllm && layer + 1 < dims_.n_layer) {
      // The next layer tends to want what it wanted last step: read it ahead while we compute.
      Layer& next = *layers_[static_cast<size_t>(layer + 1)];
      if (!next.selected.empty()) next.store->prefetch(next.selected);
    }
  }
}

void ContextMemory::attend_block(Layer& L, int layer, const MemoryStep& step, int64_t t0, int64_t n,
                                 float* q, const float* k, const float* v, float* out) {
  const AttnDims& d = dims_.attn;
  const int64_t hd = d.head_dim, kvw = d.n_head_kv * hd, qw = d.n_head * hd;
  const int64_t pos0 = step.pos0 + t0;
  const RopeTable& rt = *step.rope;
  KernelScratch& ks = kernel_scratch(step);

  // 1. The new tokens join the remainder (unrotated, and rotated at their absolute positions).
  const size_t end = static_cast<size_t>((L.off + L.n) * kvw);
  // The live rows stay under n_local + block_size + n_init before a step and the dead prefix
  // under a quarter of them (form_blocks); a step adds up to exec_block rows.
  const int64_t rows = L.off + L.n + n;
  const int64_t most = (opt_.n_local + opt_.block_size + opt_.n_init) * 5 / 4 + opt_.exec_block;
  for (auto* vec : {&L.k, &L.v, &L.k_rot}) reserve_rows(*vec, rows, kvw, most);
  if (opt_.infllm) reserve_rows(L.score, rows, d.n_head, most);
  L.k.resize(end);
  L.v.resize(end);
  L.k_rot.resize(end);
  L.k.insert(L.k.end(), k, k + n * kvw);
  L.v.insert(L.v.end(), v, v + n * kvw);
  L.k_rot.insert(L.k_rot.end(), k, k + n * kvw);
  rope_apply(rt, L.k_rot.data() + end, n, kvw, d.n_head_kv, hd, pos0);
  if (opt_.infllm) L.score.resize(static_cast<size_t>((L.off + L.n + n) * d.n_head), 0.0f);
  if (L.n == 0) L.pos0 = pos0;
  L.n += n;

  // 2. Queries: local (absolute positions) and global (one fixed angle).
  q_loc_.assign(q, q + n * qw);
  rope_apply(rt, q_loc_.data(), n, qw, d.n_head, hd, pos0);
  q_glob_.assign(q, q + n * qw);
  const int64_t glob_pos = opt_.infllm ? opt_.n_local - 1 : opt_.n_init + opt_.n_local - 1;
  rope_apply(rt, q_glob_.data(), n, qw, d.n_head, hd, glob_pos, 0);
  // Unrotated keys stand at position 0 and lack the factor a rotation there applies.
  const float key_factor = rope_attn_factor_at(rt, 0.0);
  if (opt_.infllm && key_factor != 1.0f)
    for (auto& x : q_glob_) x *= key_factor;

  state_.reset(n, d.n_head, hd);
  const KvSpan rem_rot{L.k_rot.data() + L.off * kvw, L.v.data() + L.off * kvw, L.n, kvw};
  AttnMask local;
  local.diag = L.n - n;
  local.window = opt_.n_local;
  attention_accumulate(q_loc_.data(), qw, rem_rot, local, d, state_, ks);

  if (opt_.infllm) {
    // 3. Retrieval: the blocks this execution block's queries attend (block_retrieval.h): from a
    // search of the index, or, for a decoding step within memory.retrieval_interval of the last
    // one that searched, from the candidates that search kept, scored again for this query.
    const double t_search = now_us();
    if (n == 1 && pos0 < L.reuse_until &&
        L.retrieval->reselect(q_glob_.data(), L.selected, trace_.get(), layer, pos0)) {
      ++reused_;
    } else {
      const bool keep = n == 1 && opt_.retrieval_interval > 1;
      L.retrieval->select(q_glob_.data(), n, L.selected, counters_, trace_.get(), layer, pos0,
                          keep);
      L.reuse_until = keep ? pos0 + opt_.retrieval_interval : 0;
    }
    search_us_ += now_us() - t_search;
    const double t_fetch = now_us();
    pin_selected(L);
    fetch_us_ += now_us() - t_fetch;
    for (const BlockView& bv : L.views)
      attention_accumulate(q_glob_.data(), qw, KvSpan{bv.k, bv.v, bv.n, kvw}, AttnMask{}, d, state_,
                           ks);
    // 4. Sinks and the remainder tokens outside every query's window, all at distance n_local-1.
    attention_accumulate(q_glob_.data(), qw, KvSpan{L.ik.data(), L.iv.data(), L.n_init, kvw},
                         AttnMask{}, d, state_, ks);
    AttnMask far = local;
    far.complement = true;
    const KvSpan rem{L.k.data() + L.off * kvw, L.v.data() + L.off * kvw, L.n, kvw};
    attention_accumulate(q_glob_.data(), qw, rem, far, d, state_, ks);
  } else {
    attention_accumulate(q_glob_.data(), qw, KvSpan{L.ik_rot.data(), L.iv.data(), L.n_init, kvw},
                         AttnMask{}, d, state_, ks);
  }
  attention_finish(state_, out, qw);

  if (opt_.infllm) {
    // 5. Representative scores: local attention mass each remainder token received.
    mass_.assign(static_cast<size_t>(L.n * d.n_head), 0.0f);
    attention_key_mass(q_loc_.data(), qw, rem_rot, local, d, state_, mass_.data(), ks);
    float* sc = L.score.data() + L.off * d.n_head;
    for (size_t i = 0; i < mass_.size(); ++i) sc[i] += mass_[i];
  }
  ++layer_steps_;
  const double t_form = now_us();
  form_blocks(L);
  form_us_ += now_us() - t_form;
}

void ContextMemory::pin_selected(Layer& L) {
  L.store->pin_into(L.selected.data(), static_cast<int64_t>(L.selected.size()), false, L.views);
}

void ContextMemory::form_blocks(Layer& L) {
  const AttnDims& d = dims_.attn;
  const int64_t hd = d.head_dim, kvw = d.n_head_kv * hd, group = d.n_head / d.n_head_kv;
  auto pop = [&](int64_t c) {
    L.off += c;
    L.n -= c;
    L.pos0 += c;
  };
  // Sinks: the first tokens to leave the local window.
  if (L.n > opt_.n_local && L.n_init < opt_.n_init) {
    const int64_t c = std::min(opt_.n_init - L.n_init, L.n - opt_.n_local);
    const float* k = L.k.data() + L.off * kvw;
    const float* v = L.v.data() + L.off * kvw;
    L.ik.insert(L.ik.end(), k, k + c * kvw);
    L.iv.insert(L.iv.end(), v, v + c * kvw);
    if (!opt_.infllm) {
      L.ik_rot.insert(L.ik_rot.end(), k, k + c * kvw);
      rope_apply(L.table, L.ik_rot.data() + L.n_init * kvw, c, kvw, d.n_head_kv, hd, L.n_init);
    }
    L.n_init += c;
    pop(c);
  }
  if (opt_.infllm) {
    std::vector<float> repr(static_cast<size_t>(d.n_head * hd));
    std::vector<int64_t> order(static_cast<size_t>(opt_.block_size));
    while (L.n - opt_.block_size >= opt_.n_local) {
      const float* k = L.k.data() + L.off * kvw;
      const float* sc = L.score.data() + L.off * d.n_head;
      // Per head: average of the repr_topk keys with the highest accumulated score.
      for (int64_t h = 0; h < d.n_head; ++h) {
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + opt_.repr_topk, order.end(),
                          [&](int64_t a, int64_t b) {
                            const float sa = sc[a * d.n_head + h], sb = sc[b * d.n_head + h];
                            return sa != sb ? sa > sb : a < b;
                          });
        float* r = repr.data() + h * hd;
        std::fill(r, r + hd, 0.0f);
        for (int64_t j = 0; j < opt_.repr_topk; ++j)
          for (int64_t e = 0; e < hd; ++e) r[e] += k[order[j] * kvw + (h / group) * hd + e];
        for (int64_t e = 0; e < hd; ++e) r[e] /= static_cast<float>(opt_.repr_topk);
      }
      L.store->add(k, L.v.data() + L.off * kvw, opt_.block_size);
      L.retrieval->add(repr.data());
      pop(opt_.block_size);
    }
  } else if (L.n > opt_.n_local) {
    pop(L.n - opt_.n_local);  // StreamingLLM forgets what leaves the window
  }
  // Compact once the dead prefix reaches a quarter of the live part (moving the live rows every
  // quarter of a window's tokens costs far less than attending them).
  if (L.off > 0 && 4 * L.off >= L.n) {
    auto shift = [&](std::vector<float>& vec, int64_t w) {
      std::memmove(vec.data(), vec.data() + L.off * w, static_cast<size_t>(L.n * w) * 4);
      vec.resize(static_cast<size_t>(L.n * w));
    };
    shift(L.k, kvw);
    shift(L.v, kvw);
    shift(L.k_rot, kvw);
    if (opt_.infllm) shift(L.score, d.n_head);
    L.off = 0;
  }
}

std::string ContextMemory::stats_line() const {
  const Layer& L = *layers_[0];
  std::string s = cat(name(), ": ", n_past_, " tokens; layer 0: ", L.n_init, " sinks, ", L.n,
                      " in window/remainder");
  if (opt_.infllm) {
    const BlockIndex& index = L.retrieval->index();
    const BlockStore& pages = index.page_store();
    s +=
        cat(", ", index.size(), " blocks (", L.store->bytes_in_ram() >> 20, " MiB in RAM, ",
            L.store->bytes_on_disk() >> 20, " MiB spilled, ", L.store->reads_from_disk(),
            " reads from disk), index ", index.clusters(), " clusters (largest ",
            index.largest_cluster(), ", ", index.bytes_in_ram() >> 10, " KiB in RAM, ",
            pages.bytes_on_disk() >> 10, " KiB spilled, ", pages.reads_from_disk(), " page reads)");
    if (reads0_ >= 0) {
      const auto [reads, page_reads] = disk_reads();
      s += cat("; since the stats were reset, all layers: ", reads - reads0_, " block reads and ",
               page_reads - page_reads0_, " page reads");
      if (opt_.retrieval_interval > 1)
        s += cat(", ", reused_, " layer steps chose among an earlier search's candidates");
    }
    const int64_t searches = counters_.searches;
    if (searches > 0) {
      s += cat("; all layers: ", searches, " searches, ", counters_.scored / searches,
               " representatives scored and ", counters_.bounds / searches,
               " cluster scores per search");
      // The timers run at every layer step (a search, or a re-rank of kept candidates).
      const double steps = static_cast<double>(std::max<int64_t>(1, layer_steps_));
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "; us per layer step: search %.2f, block fetch %.2f, block forming %.2f",
                    search_us_ / steps, fetch_us_ / steps, form_us_ / steps);
      s += buf;
    }
    if (counters_.recall_total > 0) s += cat(", recall vs exact ", recall());
  }
  return s;
}

std::pair<int64_t, int64_t> ContextMemory::disk_reads() const {
  int64_t blocks = 0, pages = 0;
  for (const auto& L : layers_) {
    blocks += L->store->reads_from_disk();
    pages += L->retrieval->index().page_store().reads_from_disk();
  }
  return {blocks, pages};
}

void ContextMemory::commit(const MemoryStep& step) { n_past_ += step.n; }

void ContextMemory::reset_stats() {
  counters_ = RetrievalCounters{};
  search_us_ = fetch_us_ = form_us_ = 0;
  reused_ = layer_steps_ = 0;
  reads0_ = page_reads0_ = -1;
  if (opt_.infllm && !layers_.empty() && layers_[0]->store && n_past_ > 0) {
    std::tie(reads0_, page_reads0_) = disk_reads();
  }
}

int64_t ContextMemory::blocks_read_from_disk() const {
  int64_t n = 0;
  for (const auto& L : layers_)
    if (L->store) n += L->store->reads_from_disk();
  return n;
}

}  // namespace lc

namespace lc {

size_t ContextMemory::bytes_on_disk() const {
  size_t b = 0;
  for (const auto& L : layers_) {
    if (L->store) b += L->store->bytes_on_disk();
    if (L->retrieval) b += L->retrieval->index().page_store().bytes_on_disk();
  }
  return b;
}

namespace {

KvType kv_of(SpillType t) {
  return t == SpillType::F32 ? KvType::F32 : t == SpillType::F16 ? KvType::F16 : KvType::Q8_0;
}

}  // namespace

void ContextMemory::save_state(MemorySave& out) {
  const AttnDims& d = dims_.attn;
  const int64_t kvw = d.n_head_kv * d.head_dim, qw = d.n_head * d.head_dim;
  put_memory_tag(out.head, name(), dims_);
  out.head.put(opt_.block_size);
  out.head.put(n_past_);
  ByteWriter win;
  for (const auto& Lp : layers_) {
    const Layer& L = *Lp;
    out.head.put(L.n_init);
    out.head.put(L.n);
    out.head.put(L.pos0);
    out.head.put<uint8_t>(L.has_table);
    if (L.has_table) put_table(out.head, L.table);
    win.array(L.k.data() + L.off * kvw, static_cast<size_t>(L.n * kvw));
    win.array(L.v.data() + L.off * kvw, static_cast<size_t>(L.n * kvw));
    if (opt_.infllm)
      win.array(L.score.data() + L.off * d.n_head, static_cast<size_t>(L.n * d.n_head));
    win.array(L.ik);
    win.array(L.iv);
  }
  const std::string wkey = out.store.put(out.ns, win.bytes());
  out.head.str(wkey);
  out.refs.push_back(wkey);
  if (!opt_.infllm) return;
  const int64_t nb = layers_[0]->retrieval->size();
  std::vector<float> kv;
  std::vector<uint8_t> enc;
  // A block in a segment: per layer its length, keys and values, and its representative.
  const size_t block_bytes = layers_.size() * (sizeof(int64_t) +
                                               kv_bytes(kv_of(layers_[0]->store->value_type()),
                                                        2 * opt_.block_size * kvw) +
                                               static_cast<size_t>(qw) * sizeof(float));
  const int64_t per_segment = Segments::items_per_segment(block_bytes);
  // The representatives are read from the index's pages for whole segments at once (a pass over
  // every page each time): blocks [r0, r1) of every layer, up to 64 MiB of them.
  const int64_t fit =
      static_cast<int64_t>((size_t{64} << 20) / (layers_.size() * qw * sizeof(float)));
  const int64_t per_pass = std::max<int64_t>(1, fit / per_segment) * per_segment;
  std::vector<std::vector<float>> reprs(layers_.size());
  int64_t r0 = 0, r1 = 0;
  saved_.save(out, nb, per_segment, [&](int64_t b0, int64_t b1) {
    if (b0 < r0 || b1 > r1) {
      r0 = b0;
      r1 = std::min(nb, std::max(b1, b0 + per_pass));
      for (size_t l = 0; l < layers_.size(); ++l)
        reprs[l] = layers_[l]->retrieval->index().reprs(r0, r1);
    }
    ByteWriter w;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& L = *layers_[l];
      LC_CHECK(L.retrieval->size() == nb);
      const KvType t = kv_of(L.store->value_type());
      w.put<uint8_t>(static_cast<uint8_t>(t));
      for (int64_t b = b0; b < b1; ++b) {
        L.store->read(b, kv);
        const int64_t n = static_cast<int64_t>(kv.size()) / (2 * kvw);
        w.put<int64_t>(n);
        enc.resize(kv_bytes(t, 2 * n * kvw));
        kv_from_f32(t, kv.data(), enc.data(), 2 * n * kvw);
        w.raw(enc.data(), enc.size());
        w.raw(reprs[l].data() + (b - r0) * qw, static_cast<size_t>(qw) * sizeof(float));
      }
    }
    return std::move(w.bytes());
  });
  // Last: the candidates the decoding steps to come choose from without searching
  // (memory.retrieval_interval); a state without them (written before they were saved) searches
  // at its next step.
  for (const auto& Lp : layers_) {
    out.head.put(Lp->reuse_until);
    out.head.array(Lp->retrieval->pool());
  }
}

void ContextMemory::load_state(MemoryLoad& in) {
  LC_CHECK(n_past_ == 0);
  const AttnDims& d = dims_.attn;
  const int64_t kvw = d.n_head_kv * d.head_dim, qw = d.n_head * d.head_dim;
  ByteReader& h = in.head;
  try {
    check_memory_tag(h, name(), dims_);
    const int64_t bs = h.get<int64_t>();
    if (bs != opt_.block_size)
      fail(h.what(), ": the state was saved with memory.block_size = ", bs, ", this session has ",
           opt_.block_size);
    const int64_t n_past = h.get<int64_t>();
    h.expect(n_past >= 0, "token count");
    for (auto& Lp : layers_) {
      Layer& L = *Lp;
      L.n_init = h.get<int64_t>();
      L.n = h.get<int64_t>();
      L.pos0 = h.get<int64_t>();
      h.expect(L.n_init >= 0 && L.n_init <= opt_.n_init && L.n >= 0 && L.pos0 >= 0 &&
                   L.pos0 + L.n == n_past && L.n_init <= L.pos0,
               "window");
      L.has_table = h.get<uint8_t>() != 0;
      if (L.has_table) {
        L.table = get_table(h);
        h.expect(L.table.dim <= d.head_dim, "RoPE dimension");
      }
      h.expect(L.has_table || n_past == 0, "RoPE table");
    }
    const std::vector<uint8_t> wbytes = in.store.get(h.str(256));
    ByteReader w(wbytes.data(), wbytes.size(), h.what() + " (window)");
    for (auto& Lp : layers_) {
      Layer& L = *Lp;
      const size_t rem = static_cast<size_t>(L.n * kvw), init = static_cast<size_t>(L.n_init * kvw);
      L.k = w.array<float>(rem);
      L.v = w.array<float>(rem);
      w.expect(L.k.size() == rem && L.v.size() == rem, "window size");
      if (opt_.infllm) {
        L.score = w.array<float>(static_cast<size_t>(L.n * d.n_head));
        w.expect(L.score.size() == static_cast<size_t>(L.n * d.n_head), "score size");
      }
      L.ik = w.array<float>(init);
      L.iv = w.array<float>(init);
      w.expect(L.ik.size() == init && L.iv.size() == init, "sink size");
      L.off = 0;
      L.k_rot = L.k;
      if (L.has_table) {
        rope_apply(L.table, L.k_rot.data(), L.n, kvw, d.n_head_kv, d.head_dim, L.pos0);
        if (!opt_.infllm) {
          L.ik_rot = L.ik;
          rope_apply(L.table, L.ik_rot.data(), L.n_init, kvw, d.n_head_kv, d.head_dim, 0);
        }
      }
    }
    w.expect(w.done(), "window length");
    if (opt_.infllm) {
      const int64_t nb = (layers_[0]->pos0 - layers_[0]->n_init) / opt_.block_size;
      for (const auto& Lp : layers_)
        h.expect(Lp->n_init + nb * opt_.block_size == Lp->pos0, "block count");
      std::vector<float> kv;
      saved_.load(in, nb, [&](int64_t b0, int64_t b1, const std::vector<uint8_t>& bytes) {
        ByteReader r(bytes.data(), bytes.size(), h.what() + " (blocks)");
        for (auto& Lp : layers_) {
          Layer& L = *Lp;
          const uint8_t tb = r.get<uint8_t>();
          r.expect(tb <= 2, "element type");
          const KvType t = static_cast<KvType>(tb);
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t n = r.get<int64_t>();
            r.expect(n == opt_.block_size, "block length");
            std::vector<uint8_t> enc(kv_bytes(t, 2 * n * kvw));
            r.raw(enc.data(), enc.size());
            kv.resize(static_cast<size_t>(2 * n * kvw));
            kv_to_f32(t, enc.data(), kv.data(), 2 * n * kvw);
            std::vector<float> repr(static_cast<size_t>(qw));
            r.raw(repr.data(), repr.size() * sizeof(float));
            L.store->add(kv.data(), kv.data() + n * kvw, n);
            L.retrieval->add(repr.data());
          }
        }
        r.expect(r.done(), "segment length");
      });
      if (!h.done())
        for (auto& Lp : layers_) {
          Layer& L = *Lp;
          L.reuse_until = h.get<int64_t>();
          std::vector<int64_t> pool = h.array<int64_t>(static_cast<size_t>(nb));
          h.expect(L.reuse_until <= n_past - 1 + opt_.retrieval_interval, "reused selection");
          for (int64_t b : pool) h.expect(b >= 0 && b < nb, "candidate block");
          L.retrieval->set_pool(std::move(pool));
        }
    } else {
      h.expect(saved_.saved() == 0, "blocks");
    }
    n_past_ = n_past;
  } catch (...) {
    reset();
    throw;
  }
}

namespace {

// How many sinks and blocks a memory holds after reading t tokens (form_blocks runs after every
// execution block, so this depends on t alone): sinks are the first tokens to leave the local
// window, and once they are all there a block forms whenever the remainder holds block_size tokens
// beyond the window.
struct Shape {
  int64_t sinks = 0, blocks = 0;
};
Shape shape_at(const ContextMemoryOptions& o, int64_t t) {
  Shape sh;
  sh.sinks = std::min(o.n_init, std::max<int64_t>(0, t - o.n_local));
  const int64_t r = t - sh.sinks;
  if (o.infllm && r >= o.n_local) sh.blocks = (r - o.n_local) / o.block_size;
  return sh;
}

}  // namespace

bool ContextMemory::truncate(int64_t n) {
  LC_CHECK(n >= 0 && n <= n_past_);
  if (n == n_past_) return true;
  const AttnDims& d = dims_.attn;
  const int64_t kvw = d.n_head_kv * d.head_dim, bs = opt_.block_size;
  const Shape sh = shape_at(opt_, n);
  const int64_t p = sh.sinks + sh.blocks * bs;  // where the remainder of n tokens starts
  for (const auto& Lp : layers_) {
    // StreamingLLM dropped the tokens between its sinks and the remainder: they cannot come back.
    if (!opt_.infllm && n < Lp->pos0) return false;
    LC_CHECK(!opt_.infllm || (sh.sinks <= Lp->n_init && p <= Lp->pos0));
  }
  // The rows of the remainder [p, n) each layer gets back from its sinks and blocks (the tail of
  // the sinks, then the blocks past sh.blocks, as stored: rounded to the spill type when the
  // store rounds), followed by what it keeps of its remainder. Read before anything changes, so
  // that a read error leaves the memory as it was.
  struct Back {
    std::vector<float> k, v;
  };
  std::vector<Back> back(layers_.size());
  std::vector<float> kv;
  for (size_t l = 0; l < layers_.size() && opt_.infllm; ++l) {
    const Layer& L = *layers_[l];
    Back& B = back[l];
    for (int64_t t = p; t < std::min(n, L.pos0);) {
      if (t < L.n_init) {
        const int64_t c = std::min(n, L.n_init) - t;
        B.k.insert(B.k.end(), L.ik.begin() + t * kvw, L.ik.begin() + (t + c) * kvw);
        B.v.insert(B.v.end(), L.iv.begin() + t * kvw, L.iv.begin() + (t + c) * kvw);
        t += c;
        continue;
      }
      const int64_t b = (t - L.n_init) / bs, first = L.n_init + b * bs;
      const int64_t at = t - first, c = std::min(n, first + bs) - t;
      L.store->read(b, kv);  // K rows, then V rows
      B.k.insert(B.k.end(), kv.begin() + at * kvw, kv.begin() + (at + c) * kvw);
      B.v.insert(B.v.end(), kv.begin() + (bs + at) * kvw, kv.begin() + (bs + at + c) * kvw);
      t += c;
    }
  }
  try {
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = *layers_[l];
      L.selected.clear();
      L.views.clear();
      L.reuse_until = 0;
      const int64_t kept = std::max<int64_t>(0, n - L.pos0);  // remainder rows that stay
      if (!opt_.infllm || p == L.pos0) {  // the sinks and blocks stay: the remainder is cut
        L.n = kept;
        const size_t end = static_cast<size_t>((L.off + L.n) * kvw);
        L.k.resize(end);
        L.v.resize(end);
        L.k_rot.resize(end);
        if (opt_.infllm) L.score.resize(static_cast<size_t>((L.off + L.n) * d.n_head));
        continue;
      }
      Back& B = back[l];
      const int64_t got = static_cast<int64_t>(B.k.size()) / kvw;
      // The remainder [p, n): the rows given back, then the kept ones with their scores. The
      // accumulated attention of the rows given back is not kept (it went into choosing their
      // block's representatives): their scores restart at zero, so blocks formed again from them
      // may pick other representative tokens than a run that never read past n would.
      std::vector<float> score(static_cast<size_t>(got * d.n_head), 0.0f);
      const float* rk = L.k.data() + L.off * kvw;
      const float* rv = L.v.data() + L.off * kvw;
      const float* rs = L.score.data() + L.off * d.n_head;
      B.k.insert(B.k.end(), rk, rk + kept * kvw);
      B.v.insert(B.v.end(), rv, rv + kept * kvw);
      score.insert(score.end(), rs, rs + kept * d.n_head);
      L.k = std::move(B.k);
      L.v = std::move(B.v);
      L.score = std::move(score);
      L.off = 0;
      L.n = got + kept;
      L.pos0 = p;
      L.k_rot = L.k;
      if (L.has_table)
        rope_apply(L.table, L.k_rot.data(), L.n, kvw, d.n_head_kv, d.head_dim, L.pos0);
      L.ik.resize(static_cast<size_t>(sh.sinks * kvw));
      L.iv.resize(static_cast<size_t>(sh.sinks * kvw));
      L.n_init = sh.sinks;
      L.store->truncate(sh.blocks);
      L.retrieval->truncate(sh.blocks);
    }
  } catch (...) {
    reset();  // a page of the index could not be read or written: some layers changed already
    throw;
  }
  if (opt_.infllm) saved_.truncate(sh.blocks);
  n_past_ = n;
  return true;
}

}  // namespace lc
