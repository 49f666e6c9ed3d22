#include "memory/block_index.h"

#include <algorithm>
#include <limits>
#include <queue>
#include <utility>

#include "core/error.h"
#include "kernels/ops.h"

namespace lc {

BlockIndex::BlockIndex(const BlockIndexOptions& opt) : opt_(opt) {
  LC_CHECK(opt_.dim > 0 && opt_.group_size > 0);
}

void BlockIndex::clear() {
  n_ = 0;
  reprs_.clear();
  gmin_.clear();
  gmax_.clear();
}

void BlockIndex::add(const float* repr) {
  const int64_t d = opt_.dim;
  reprs_.insert(reprs_.end(), repr, repr + d);
  if (n_ % opt_.group_size == 0) {
    gmin_.insert(gmin_.end(), repr, repr + d);
    gmax_.insert(gmax_.end(), repr, repr + d);
  } else {
    float* mn = gmin_.data() + (n_ / opt_.group_size) * d;
    float* mx = gmax_.data() + (n_ / opt_.group_size) * d;
    for (int64_t e = 0; e < d; ++e) {
      mn[e] = std::min(mn[e], repr[e]);
      mx[e] = std::max(mx[e], repr[e]);
    }
  }
  ++n_;
}

namespace {
using Scored = std::pair<float, int64_t>;  // (score, id)

// Keeps the k best in a min-heap.
struct TopK {
  int64_t k;
  std::priority_queue<Scored, std::vector<Scored>, std::greater<Scored>> heap;
  void push(float s, int64_t id) {
    if (static_cast<int64_t>(heap.size()) < k) {
      heap.emplace(s, id);
    } else if (s > heap.top().first) {
      heap.pop();
      heap.emplace(s, id);
    }
  }
  float kth() const {
    return static_cast<int64_t>(heap.size()) < k ? -std::numeric_limits<float>::infinity()
                                                 : heap.top().first;
  }
  std::vector<int64_t> sorted() {
    std::vector<Scored> v;
    while (!heap.empty()) {
      v.push_back(heap.top());
      heap.pop();
    }
    std::sort(v.begin(), v.end(), [](const Scored& a, const Scored& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::vector<int64_t> ids;
    for (const auto& s : v) ids.push_back(s.second);
    return ids;
  }
};
}  // namespace

std::vector<int64_t> BlockIndex::top_k_exact(const float* q, int64_t k) const {
  TopK top{k, {}};
  for (int64_t b = 0; b < n_; ++b) top.push(dot_f32(q, repr(b), opt_.dim), b);
  last_scored_ = n_;
  return top.sorted();
}

std::vector<int64_t> BlockIndex::top_k(const float* q, int64_t k) const {
  if (k <= 0) return {};
  if (opt_.exact || n_ <= k || n_ <= 2 * opt_.group_size) return top_k_exact(q, k);
  const int64_t d = opt_.dim, gs = opt_.group_size;
  const int64_t n_groups = (n_ + gs - 1) / gs;
  std::vector<Scored> bounds(static_cast<size_t>(n_groups));
  for (int64_t g = 0; g < n_groups; ++g) {
    const float* mn = gmin_.data() + g * d;
    const float* mx = gmax_.data() + g * d;
    float b = 0;
    for (int64_t e = 0; e < d; ++e) b += std::max(q[e] * mn[e], q[e] * mx[e]);
    bounds[static_cast<size_t>(g)] = {b, g};
  }
  std::sort(bounds.begin(), bounds.end(),
            [](const Scored& a, const Scored& b) { return a.first > b.first; });
  TopK top{k, {}};
  int64_t scored = 0, visited = 0;
  for (const auto& [bound, g] : bounds) {
    if (bound <= top.kth()) break;  // no member of this or any later group can enter the top k
    if (opt_.max_groups > 0 && visited >= opt_.max_groups &&
        static_cast<int64_t>(top.heap.size()) >= k)
      break;
    const int64_t b1 = std::min(n_, (g + 1) * gs);
    for (int64_t b = g * gs; b < b1; ++b) top.push(dot_f32(q, repr(b), d), b);
    scored += b1 - g * gs;
    ++visited;
  }
  last_scored_ = scored + n_groups;
  return top.sorted();
}

}  // namespace lc
