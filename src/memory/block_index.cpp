#include "memory/block_index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/error.h"
#include "kernels/ops.h"

namespace lc {

namespace {

using Scored = std::pair<float, int64_t>;  // (score, id)

// a ranks before b: higher score, then lower id (so ties resolve the same way in every search).
bool better(const Scored& a, const Scored& b) {
  return a.first != b.first ? a.first > b.first : a.second < b.second;
}

// The k best in a heap whose top is the worst kept; `heap` is caller-owned scratch.
struct TopK {
  std::vector<Scored>& heap;
  size_t k;
  void push(float s, int64_t id) {
    const Scored x{s, id};
    if (heap.size() < k) {
      heap.push_back(x);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(x, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = x;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  bool full() const { return heap.size() >= k; }
  float kth() const {
    return full() ? heap.front().first : -std::numeric_limits<float>::infinity();
  }
  std::vector<int64_t> sorted() const {
    std::sort(heap.begin(), heap.end(), better);
    std::vector<int64_t> ids(heap.size());
    for (size_t i = 0; i < heap.size(); ++i) ids[i] = heap[i].second;
    return ids;
  }
};

float dist2(const float* a, const float* b, int64_t d) {
  float s = 0;
  for (int64_t e = 0; e < d; ++e) {
    const float t = a[e] - b[e];
    s += t * t;
  }
  return s;
}

}  // namespace

BlockIndex::BlockIndex(const BlockIndexOptions& opt) : opt_(opt) {
  LC_CHECK(opt_.dim > 0 && opt_.group_size > 0 && opt_.max_clusters > 0);
}

void BlockIndex::clear() {
  n_ = 0;
  reprs_.clear();
  clusters_.clear();
  mean_.clear();
  mn_.clear();
  mx_.clear();
  mid_.clear();
  half_.clear();
}

int64_t BlockIndex::nearest(const float* x) const {
  const int64_t d = opt_.dim;
  int64_t best = 0;
  float best_d = std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < clusters(); ++c) {
    const float t = dist2(x, mean_.data() + c * d, d);
    if (t < best_d) {
      best_d = t;
      best = c;
    }
  }
  return best;
}

void BlockIndex::refresh_box(int64_t c) {
  const int64_t d = opt_.dim;
  const Cluster& cl = clusters_[static_cast<size_t>(c)];
  float* mn = mn_.data() + c * d;
  float* mx = mx_.data() + c * d;
  std::fill(mn, mn + d, std::numeric_limits<float>::infinity());
  std::fill(mx, mx + d, -std::numeric_limits<float>::infinity());
  for (int64_t id : cl.ids) {
    const float* r = repr(id);
    for (int64_t e = 0; e < d; ++e) {
      mn[e] = std::min(mn[e], r[e]);
      mx[e] = std::max(mx[e], r[e]);
    }
  }
  const float inv = 1.0f / static_cast<float>(cl.ids.size());
  for (int64_t e = 0; e < d; ++e) {
    mid_[c * d + e] = 0.5f * (mn[e] + mx[e]);
    half_[c * d + e] = 0.5f * (mx[e] - mn[e]);
    mean_[c * d + e] = cl.sum[e] * inv;
  }
}

// Splits cluster c in two with 2-means seeded by two far-apart members. Leaves c alone when its
// members cannot be separated (all equal).
void BlockIndex::split(int64_t c) {
  const int64_t d = opt_.dim;
  std::vector<int64_t> ids = std::move(clusters_[static_cast<size_t>(c)].ids);
  clusters_[static_cast<size_t>(c)].ids.clear();
  auto farthest = [&](const float* from) {
    int64_t best = ids[0];
    float bd = -1;
    for (int64_t id : ids) {
      const float t = dist2(from, repr(id), d);
      if (t > bd) {
        bd = t;
        best = id;
      }
    }
    return best;
  };
  const int64_t a = farthest(mean_.data() + c * d), b = farthest(repr(a));
  std::vector<float> ca(repr(a), repr(a) + d), cb(repr(b), repr(b) + d);
  std::vector<uint8_t> side(ids.size(), 0);
  for (int iter = 0; iter < 4; ++iter) {
    std::vector<double> sa(static_cast<size_t>(d), 0.0), sb(static_cast<size_t>(d), 0.0);
    int64_t na = 0, nb = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const float* r = repr(ids[i]);
      side[i] = dist2(r, cb.data(), d) < dist2(r, ca.data(), d) ? 1 : 0;
      auto& s = side[i] ? sb : sa;
      for (int64_t e = 0; e < d; ++e) s[static_cast<size_t>(e)] += r[e];
      (side[i] ? nb : na)++;
    }
    if (na == 0 || nb == 0) break;
    for (int64_t e = 0; e < d; ++e) {
      ca[static_cast<size_t>(e)] = static_cast<float>(sa[static_cast<size_t>(e)] / na);
      cb[static_cast<size_t>(e)] = static_cast<float>(sb[static_cast<size_t>(e)] / nb);
    }
  }
  Cluster A, B;
  A.split_at = B.split_at = opt_.group_size;
  A.sum.assign(static_cast<size_t>(d), 0.0f);
  B.sum.assign(static_cast<size_t>(d), 0.0f);
  for (size_t i = 0; i < ids.size(); ++i) {
    Cluster& t = side[i] ? B : A;
    t.ids.push_back(ids[i]);
    const float* r = repr(ids[i]);
    for (int64_t e = 0; e < d; ++e) t.sum[static_cast<size_t>(e)] += r[e];
  }
  if (A.ids.empty() || B.ids.empty()) {  // inseparable: keep it whole
    clusters_[static_cast<size_t>(c)].ids = std::move(ids);
    return;
  }
  clusters_[static_cast<size_t>(c)] = std::move(A);
  clusters_.push_back(std::move(B));
  const size_t rows = clusters_.size() * static_cast<size_t>(d);
  for (auto* v : {&mean_, &mn_, &mx_, &mid_, &half_}) v->resize(rows);
  refresh_box(c);
  refresh_box(clusters() - 1);
}

void BlockIndex::add(const float* repr_in) {
  const int64_t d = opt_.dim;
  reprs_.insert(reprs_.end(), repr_in, repr_in + d);
  const int64_t id = n_++;
  const float* r = repr(id);
  if (clusters_.empty()) {
    clusters_.push_back(
        Cluster{{}, std::vector<float>(static_cast<size_t>(d), 0.0f), opt_.group_size});
    for (auto* v : {&mean_, &mn_, &mx_, &mid_, &half_}) v->assign(static_cast<size_t>(d), 0.0f);
    std::copy_n(r, d, mn_.data());
    std::copy_n(r, d, mx_.data());
  }
  const int64_t c = nearest(r);
  Cluster& cl = clusters_[static_cast<size_t>(c)];
  cl.ids.push_back(id);
  float* mn = mn_.data() + c * d;
  float* mx = mx_.data() + c * d;
  const float inv = 1.0f / static_cast<float>(cl.ids.size());
  for (int64_t e = 0; e < d; ++e) {
    cl.sum[static_cast<size_t>(e)] += r[e];
    mn[e] = std::min(mn[e], r[e]);
    mx[e] = std::max(mx[e], r[e]);
    mid_[c * d + e] = 0.5f * (mn[e] + mx[e]);
    half_[c * d + e] = 0.5f * (mx[e] - mn[e]);
    mean_[c * d + e] = cl.sum[static_cast<size_t>(e)] * inv;
  }
  const int64_t size = static_cast<int64_t>(cl.ids.size());
  // Split when over capacity (a cluster that could not be split waits until it doubles).
  if (size > cl.split_at && clusters() < opt_.max_clusters) {
    cl.split_at = 2 * size;
    split(c);
  }
}

std::vector<int64_t> BlockIndex::top_k_exact(const float* q, int64_t k) const {
  heap_.clear();
  TopK top{heap_, static_cast<size_t>(std::max<int64_t>(k, 0))};
  if (k > 0)
    for (int64_t b = 0; b < n_; ++b) top.push(dot_f32(q, repr(b), opt_.dim), b);
  last_scored_ = n_;
  last_bounds_ = 0;
  return top.sorted();
}

std::vector<int64_t> BlockIndex::top_k(const float* q, int64_t k) const {
  if (k <= 0) return {};
  if (opt_.exact || n_ <= k || n_ <= 2 * opt_.group_size) return top_k_exact(q, k);
  const int64_t d = opt_.dim, nc = clusters();
  absq_.resize(static_cast<size_t>(d));
  for (int64_t e = 0; e < d; ++e) absq_[static_cast<size_t>(e)] = std::fabs(q[e]);
  // Clusters are visited in order of their mean's score (the likeliest home of the best
  // blocks); a cluster whose bound cannot beat the current k-th score is skipped.
  bounds_.resize(static_cast<size_t>(nc));
  for (int64_t c = 0; c < nc; ++c)
    bounds_[static_cast<size_t>(c)] = {dot_f32(q, mean_.data() + c * d, d), c};
  int64_t n_bounds = 0;
  auto ubound = [&](int64_t c) {
    ++n_bounds;
    return dot_f32(q, mid_.data() + c * d, d) + dot_f32(absq_.data(), half_.data() + c * d, d);
  };
  // With a budget only the best `probe` clusters by mean score can be visited: order just those.
  int64_t probe = nc;
  if (opt_.max_groups > 0) probe = std::min(probe, opt_.max_groups);
  if (opt_.max_scored > 0) probe = std::min(probe, 2 * opt_.max_scored / opt_.group_size + 8);
  if (probe < nc) std::nth_element(bounds_.begin(), bounds_.begin() + probe, bounds_.end(), better);
  std::sort(bounds_.begin(), bounds_.begin() + probe, better);
  heap_.clear();
  TopK top{heap_, static_cast<size_t>(k)};
  int64_t scored = 0, visited = 0;
  for (int64_t i = 0; i < nc; ++i) {
    const int64_t c = bounds_[static_cast<size_t>(i)].second;
    if (top.full()) {
      if (i >= probe) break;
      if (opt_.max_groups > 0 && visited >= opt_.max_groups) break;
      if (opt_.max_scored > 0 && scored >= opt_.max_scored) break;
      if (ubound(c) <= top.kth()) continue;  // no member can enter the top k
    }
    for (int64_t id : clusters_[static_cast<size_t>(c)].ids) top.push(dot_f32(q, repr(id), d), id);
    scored += static_cast<int64_t>(clusters_[static_cast<size_t>(c)].ids.size());
    ++visited;
  }
  last_scored_ = scored;
  last_bounds_ = nc + 2 * n_bounds;  // in dot products
  return top.sorted();
}

}  // namespace lc
