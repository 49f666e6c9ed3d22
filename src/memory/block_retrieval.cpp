#include "memory/block_retrieval.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/ops.h"

namespace lc {

const char* head_score_name(HeadScore s) {
  switch (s) {
    case HeadScore::Sum:
      return "sum";
    case HeadScore::Norm:
      return "norm";
    case HeadScore::Max:
      return "max";
  }
  return "?";
}

BlockRetrieval::BlockRetrieval(const BlockIndexOptions& index, const BlockRetrievalOptions& opt)
    : opt_(opt), index_(std::make_unique<BlockIndex>(index)) {
  LC_CHECK(opt_.n_head > 0 && opt_.head_dim > 0 && index.dim == opt_.n_head * opt_.head_dim);
  const auto hd = static_cast<size_t>(opt_.head_dim), nh = static_cast<size_t>(opt_.n_head);
  sum_.assign(nh * hd, 0.0);
  outer_.assign(nh * hd * hd, 0.0);
  sigma_.assign(nh, 1.0);
  mu_.assign(nh, 0.0);
}

BlockRetrieval::~BlockRetrieval() = default;

void BlockRetrieval::add(const float* repr) {
  index_->add(repr);
  const int64_t hd = opt_.head_dim;
  for (int64_t h = 0; h < opt_.n_head; ++h) {
    const float* r = repr + h * hd;
    double* s = sum_.data() + h * hd;
    double* o = outer_.data() + h * hd * hd;
    for (int64_t i = 0; i < hd; ++i) {
      s[i] += r[i];
      for (int64_t j = 0; j < hd; ++j) o[i * hd + j] += static_cast<double>(r[i]) * r[j];
    }
  }
  ++count_;
}

void BlockRetrieval::truncate(int64_t n) {
  LC_CHECK(n >= 0 && n <= size());
  pool_.clear();
  pool_rows_.clear();
  if (n == size()) return;
  const std::vector<float> reprs = index_->reprs(0, n);
  const int64_t dim = opt_.n_head * opt_.head_dim;
  index_->clear();
  std::fill(sum_.begin(), sum_.end(), 0.0);
  std::fill(outer_.begin(), outer_.end(), 0.0);
  count_ = 0;
  for (int64_t b = 0; b < n; ++b) add(reprs.data() + b * dim);
}

void BlockRetrieval::standardise(const float* q_bar) {
  const int64_t hd = opt_.head_dim, nh = opt_.n_head;
  std::fill(sigma_.begin(), sigma_.end(), 1.0);
  std::fill(mu_.begin(), mu_.end(), 0.0);
  if (opt_.head_score == HeadScore::Sum || count_ < 2) return;
  // var_h = q' C q with C = E[r r'] - mu mu', from the running sums.
  const double inv = 1.0 / static_cast<double>(count_);
  double top = 0;
  for (int64_t h = 0; h < nh; ++h) {
    const float* q = q_bar + h * hd;
    const double* s = sum_.data() + h * hd;
    const double* o = outer_.data() + h * hd * hd;
    double qo = 0, qm = 0;
    for (int64_t i = 0; i < hd; ++i) {
      double row = 0;
      for (int64_t j = 0; j < hd; ++j) row += o[i * hd + j] * q[j];
      qo += q[i] * row;
      qm += q[i] * s[i];
    }
    mu_[static_cast<size_t>(h)] = qm * inv;
    sigma_[static_cast<size_t>(h)] = std::max(0.0, qo * inv - (qm * inv) * (qm * inv));
    top = std::max(top, sigma_[static_cast<size_t>(h)]);
  }
  // A head whose blocks all score the same (repeated text) is not blown up from rounding noise.
  for (double& v : sigma_) v = top > 0 ? std::sqrt(std::max(v, 1e-4 * top)) : 1.0;
}

float BlockRetrieval::combine(const float* dots) const {
  double out = opt_.head_score == HeadScore::Max ? -1e300 : 0.0;
  for (int64_t h = 0; h < opt_.n_head; ++h) {
    const auto i = static_cast<size_t>(h);
    switch (opt_.head_score) {
      case HeadScore::Sum:
        out += dots[h];
        break;
      case HeadScore::Norm:
        out += (dots[h] - mu_[i]) / sigma_[i];
        break;
      case HeadScore::Max:
        out = std::max(out, (dots[h] - mu_[i]) / sigma_[i]);
        break;
    }
  }
  return static_cast<float>(out);
}

void BlockRetrieval::head_dots(const float* q_bar, const float* r, float* dots) const {
  const int64_t hd = opt_.head_dim;
  for (int64_t h = 0; h < opt_.n_head; ++h) dots[h] = dot_f32(q_bar + h * hd, r + h * hd, hd);
}

float BlockRetrieval::score(const float* q_bar, const float* r) {
  standardise(q_bar);
  dots_.resize(static_cast<size_t>(opt_.n_head));
  head_dots(q_bar, r, dots_.data());
  return combine(dots_.data());
}

std::vector<int64_t> BlockRetrieval::top_k_exact(const float* q_bar, int64_t k,
                                                 std::vector<float>* scores) {
  const int64_t dim = opt_.n_head * opt_.head_dim;
  q_bar_.assign(q_bar, q_bar + dim);
  standardise(q_bar);
  std::vector<int64_t> ids;
  std::vector<float> sc;
  search(k, true, ids, sc, nullptr);
  if (scores) *scores = sc;
  return ids;
}

void BlockRetrieval::search(int64_t k, bool exact, std::vector<int64_t>& ids,
                            std::vector<float>& scores, RetrievalCounters* c,
                            std::vector<float>* rows) {
  const int64_t hd = opt_.head_dim, dim = opt_.n_head * hd;
  auto run = [&](const float* q, std::vector<float>& sc) {
    std::vector<int64_t> r =
        exact ? index_->top_k_exact(q, k, &sc, {}, rows) : index_->top_k(q, k, &sc, {}, rows);
    if (c) {
      c->scored += index_->last_scored();
      c->bounds += index_->last_bounds();
    }
    return r;
  };
  qs_.assign(static_cast<size_t>(dim), 0.0f);
  if (opt_.head_score != HeadScore::Max) {
    // One inner product: q_bar, each head divided by its sigma (Norm); the head offsets
    // sum_h mu_h / sigma_h are the same for every block and change no order.
    for (int64_t h = 0; h < opt_.n_head; ++h)
      for (int64_t e = 0; e < hd; ++e)
        qs_[h * hd + e] = static_cast<float>(q_bar_[h * hd + e] / sigma_[static_cast<size_t>(h)]);
    ids = run(qs_.data(), scores);
    if (opt_.head_score == HeadScore::Norm) {
      double off = 0;
      for (int64_t h = 0; h < opt_.n_head; ++h)
        off += mu_[static_cast<size_t>(h)] / sigma_[static_cast<size_t>(h)];
      for (float& s : scores) s = static_cast<float>(s - off);
    }
    return;
  }
  // Max over heads: the query standardised per head (q_h / sigma_h, offsets mu_h / sigma_h), one
  // search whose scores are the maximum over heads (BlockIndex::Slices).
  const int64_t nh = opt_.n_head;
  off_.resize(static_cast<size_t>(nh));
  for (int64_t h = 0; h < nh; ++h) {
    const auto i = static_cast<size_t>(h);
    for (int64_t e = 0; e < hd; ++e)
      qs_[h * hd + e] = static_cast<float>(q_bar_[h * hd + e] / sigma_[i]);
    off_[i] = static_cast<float>(mu_[i] / sigma_[i]);
  }
  const BlockIndex::Slices slices{nh, off_.data()};
  ids = exact ? index_->top_k_exact(qs_.data(), k, &scores, slices, rows)
              : index_->top_k(qs_.data(), k, &scores, slices, rows);
  if (c) {
    c->scored += index_->last_scored();
    c->bounds += index_->last_bounds();
  }
}

void BlockRetrieval::select(const float* q, int64_t n, std::vector<int64_t>& out,
                            RetrievalCounters& c, RetrievalTrace* trace, int layer, int64_t pos,
                            bool keep_pool) {
  const int64_t dim = opt_.n_head * opt_.head_dim, nb = size();
  out.clear();
  pool_.clear();
  pool_rows_.clear();
  if (nb == 0 || opt_.topk <= 0) return;
  q_bar_.assign(static_cast<size_t>(dim), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = 0; e < dim; ++e) q_bar_[static_cast<size_t>(e)] += q[i * dim + e];
  standardise(q_bar_.data());
  std::vector<int64_t> ranked;
  std::vector<float> scores;
  const int64_t pool = keep_pool ? std::max(opt_.pool, opt_.topk) : opt_.topk;
  if (nb <= opt_.topk) {
    ranked.resize(static_cast<size_t>(nb));
    std::iota(ranked.begin(), ranked.end(), 0);
  } else {
    ++c.searches;
    search(pool, false, ranked, scores, &c, keep_pool ? &pool_rows_ : nullptr);
    if (keep_pool) pool_ = ranked;
    // The topk best of the candidates are what this step attends (and what recall measures).
    ranked.resize(std::min(ranked.size(), static_cast<size_t>(opt_.topk)));
    scores.resize(ranked.size());
    if (opt_.measure_recall) {
      // A returned block counts as a hit when it scores at least the exact k-th score (repeated
      // text gives blocks with identical representatives: ties are not misses).
      std::vector<int64_t> ref;
      std::vector<float> ref_scores;
      search(opt_.topk, true, ref, ref_scores, nullptr);
      const float kth = ref_scores.back();
      for (size_t j = 0; j < ranked.size(); ++j) {
        const bool in_ref = std::find(ref.begin(), ref.end(), ranked[j]) != ref.end();
        c.recall_hits += in_ref || scores[j] >= kth - 1e-5f * std::fabs(kth);
      }
      c.recall_total += static_cast<int64_t>(ref.size());
    }
  }
  choose(ranked, out);
  if (trace) emit(*trace, ranked, out, layer, pos, n);
  std::sort(out.begin(), out.end());
}

void BlockRetrieval::choose(const std::vector<int64_t>& ranked, std::vector<int64_t>& out) const {
  // The best blocks in order, each of the first `neighbors` followed by its adjacent blocks.
  const int64_t nb = size();
  out.clear();
  auto taken = [&](int64_t b) { return std::find(out.begin(), out.end(), b) != out.end(); };
  const auto k = static_cast<size_t>(std::min(opt_.topk, nb));
  for (size_t i = 0; i < ranked.size() && out.size() < k; ++i) {
    const int64_t b = ranked[i];
    if (!taken(b)) out.push_back(b);
    if (static_cast<int64_t>(i) >= opt_.neighbors) continue;
    for (int64_t nbh : {b + 1, b - 1})
      if (nbh >= 0 && nbh < nb && out.size() < k && !taken(nbh)) out.push_back(nbh);
  }
}

bool BlockRetrieval::reselect(const float* q, std::vector<int64_t>& out, RetrievalTrace* trace,
                              int layer, int64_t pos) {
  out.clear();
  if (pool_.empty()) return false;
  const int64_t dim = opt_.n_head * opt_.head_dim;
  q_bar_.assign(q, q + dim);
  standardise(q_bar_.data());
  dots_.resize(static_cast<size_t>(opt_.n_head));
  pool_scores_.clear();
  for (size_t i = 0; i < pool_.size(); ++i) {
    head_dots(q_bar_.data(), pool_rows_.data() + i * static_cast<size_t>(dim), dots_.data());
    pool_scores_.emplace_back(combine(dots_.data()), pool_[i]);
  }
  // Best first, ties to the lower id (as the index ranks them).
  std::sort(pool_scores_.begin(), pool_scores_.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<int64_t> ranked(pool_scores_.size());
  for (size_t i = 0; i < ranked.size(); ++i) ranked[i] = pool_scores_[i].second;
  choose(ranked, out);
  if (trace) emit(*trace, ranked, out, layer, pos, 1);
  std::sort(out.begin(), out.end());
  return true;
}

void BlockRetrieval::set_pool(std::vector<int64_t> ids) {
  for (int64_t b : ids)
    if (b < 0 || b >= size()) fail("block retrieval: no block ", b, " (", size(), " blocks)");
  std::vector<int64_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    fail("block retrieval: a candidate block is listed twice");
  pool_rows_ = index_->rows_of(ids);
  pool_ = std::move(ids);
}

void BlockRetrieval::emit(RetrievalTrace& trace, const std::vector<int64_t>& ranked,
                          const std::vector<int64_t>& chosen, int layer, int64_t pos,
                          int64_t n) const {
  const int64_t hd = opt_.head_dim, nh = opt_.n_head, nb = size();
  const float* q_bar = q_bar_.data();
  std::vector<float> dots(static_cast<size_t>(nh));
  RetrievalEvent e;
  e.layer = layer;
  e.pos = pos;
  e.n_queries = n;
  e.n_blocks = nb;
  e.chosen = chosen;
  if (trace.wants_scores())
    for (int64_t id : chosen) {
      head_dots(q_bar, index_->repr(id).data(), dots.data());
      e.scores.push_back(combine(dots.data()));
    }
  const int64_t first = trace.needle_first(), last = trace.needle_last();
  if (first >= 0 && last > first && last > opt_.first_pos && opt_.block_size > 0) {
    const int64_t b0 = std::max<int64_t>(0, (first - opt_.first_pos) / opt_.block_size);
    const int64_t b1 = std::min(nb, (last - 1 - opt_.first_pos) / opt_.block_size + 1);
    for (int64_t b = b0; b < b1; ++b) {
      RetrievalEvent::Needle nd;
      nd.block = b;
      const auto it = std::find(ranked.begin(), ranked.end(), b);
      nd.rank_index = it == ranked.end() ? -1 : it - ranked.begin();
      nd.chosen = std::find(chosen.begin(), chosen.end(), b) != chosen.end();
      e.needle.push_back(std::move(nd));
    }
    if (!e.needle.empty() && trace.wants_ranks()) {
      // Exact ranks: every block's combined and per-head scores (slow: tracing only).
      const size_t w = static_cast<size_t>(nh + 1);
      std::vector<float> own(w * e.needle.size());
      for (size_t j = 0; j < e.needle.size(); ++j) {
        head_dots(q_bar, index_->repr(e.needle[j].block).data(), dots.data());
        own[j * w] = combine(dots.data());
        std::copy(dots.begin(), dots.end(), own.begin() + static_cast<std::ptrdiff_t>(j * w + 1));
        e.needle[j].rank_head.assign(static_cast<size_t>(nh), 0);
        e.needle[j].rank_exact = 0;
      }
      constexpr int64_t kChunk = 4096;
      for (int64_t c0 = 0; c0 < nb; c0 += kChunk) {
        const int64_t c1 = std::min(nb, c0 + kChunk);
        const std::vector<float> reps = index_->reprs(c0, c1);
        for (int64_t b = c0; b < c1; ++b) {
          head_dots(q_bar, reps.data() + (b - c0) * nh * hd, dots.data());
          const float s = combine(dots.data());
          for (size_t j = 0; j < e.needle.size(); ++j) {
            const float* o = own.data() + j * w;
            e.needle[j].rank_exact += s > o[0];
            for (int64_t h = 0; h < nh; ++h)
              e.needle[j].rank_head[static_cast<size_t>(h)] += dots[h] > o[1 + h];
          }
        }
      }
    }
  }
  trace.record(e);
}

}  // namespace lc
