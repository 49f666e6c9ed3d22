#include "memory/block_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace lc {

namespace {

using Scored = BlockIndex::Entry;

// A search visits clusters in turns of this many: all but the last by the estimate of their best
// member's score (their mean's score plus kReachInEstimate of their optimistic margin), the last by
// their optimistic score, which keeps finding a block far more query-like than its cluster.
// Recall against exact search of 128 greedy decoding steps after two prompts from saved sessions
// of natural text (passkey-llama-tiny, index budget 512), at 256K and 1M: the mean's and the
// optimistic order in turn 0.988 / 0.993 and 0.941 / 0.929; with the estimate (0.1) in three
// visits of four 0.991 / 0.995 and 0.959 / 0.950 (0.05: 0.990 / 0.995, 0.960 / 0.952; 0.2:
// 0.993 / 0.995, 0.955 / 0.943); the estimate alone 0.988 / 0.991 and 0.968 / 0.959.
constexpr int64_t kVisitsPerTurn = 4;
constexpr float kReachInEstimate = 0.1f;
// The optimistic scores come from bytes: a cluster is ruled out by one only when it falls short
// of the k-th best by more than this share of (|k-th| + 1).
constexpr float kBytesMargin = 0.05f;

// A bound b below the k-th score t, beyond the bound's own rounding: nothing it bounds can enter.
bool below(float b, float t) { return b + 1e-5f * (std::fabs(b) + std::fabs(t)) < t; }

// Widens a box (minima, then maxima, d each) to hold r.
void widen(float* box, const float* r, int64_t d) {
  for (int64_t e = 0; e < d; ++e) {
    box[e] = std::min(box[e], r[e]);
    box[d + e] = std::max(box[d + e], r[e]);
  }
}

// a ranks before b: higher score, then lower id (so ties resolve the same way in every search).
bool better(const Scored& a, const Scored& b) {
  return a.score != b.score ? a.score > b.score : a.id < b.id;
}

float dist2(const float* a, const float* b, int64_t d) {
  float s = 0;
  for (int64_t e = 0; e < d; ++e) {
    const float t = a[e] - b[e];
    s += t * t;
  }
  return s;
}

// Orders idx[lo, hi) (rows of reps, d floats each) so that each run of `chunk` rows from lo is
// compact: recursive halving along the line through two far-apart rows (refined once through
// the halves' means), cut at a multiple of `chunk` near the middle. norms: |row|^2 per row;
// proj: one float per row (scratch).
void halve_in_chunks(const float* reps, int64_t d, const std::vector<float>& norms,
                     std::vector<int32_t>& idx, size_t lo, size_t hi, size_t chunk,
                     std::vector<float>& proj) {
  const size_t n = hi - lo;
  if (n <= chunk) return;
  auto row = [&](size_t i) { return reps + static_cast<size_t>(idx[i]) * static_cast<size_t>(d); };
  std::vector<float> mean(static_cast<size_t>(d), 0.0f), dir(static_cast<size_t>(d));
  for (size_t i = lo; i < hi; ++i)
    for (int64_t e = 0; e < d; ++e) mean[static_cast<size_t>(e)] += row(i)[e];
  for (float& x : mean) x /= static_cast<float>(n);
  // |r - from|^2 less |from|^2 (the same for every row): |r|^2 - 2 r.from, |r|^2 in norms.
  auto farthest = [&](const float* from) {
    size_t best = lo;
    float bd = -std::numeric_limits<float>::infinity();
    for (size_t i = lo; i < hi; ++i) {
      const float t = norms[static_cast<size_t>(idx[i])] - 2.0f * dot_f32(row(i), from, d);
      if (t > bd) {
        bd = t;
        best = i;
      }
    }
    return best;
  };
  const float* a = row(farthest(mean.data()));
  const float* b = row(farthest(a));
  for (int64_t e = 0; e < d; ++e) dir[static_cast<size_t>(e)] = b[e] - a[e];
  size_t cut = std::max<size_t>(1, (n / 2 + chunk / 2) / chunk) * chunk;
  if (cut >= n) cut = (n - 1) / chunk * chunk;
  // Rows sorted by their projection on dir up to the cut (ties by index: the same order on
  // every run).
  auto split_along = [&]() {
    for (size_t i = lo; i < hi; ++i)
      proj[static_cast<size_t>(idx[i])] = dot_f32(row(i), dir.data(), d);
    std::nth_element(idx.begin() + static_cast<std::ptrdiff_t>(lo),
                     idx.begin() + static_cast<std::ptrdiff_t>(lo + cut),
                     idx.begin() + static_cast<std::ptrdiff_t>(hi), [&](int32_t x, int32_t y) {
                       const float px = proj[static_cast<size_t>(x)],
                                   py = proj[static_cast<size_t>(y)];
                       return px != py ? px < py : x < y;
                     });
  };
  split_along();
  // Once more along the line through the two halves' means.
  std::fill(dir.begin(), dir.end(), 0.0f);
  for (size_t i = lo; i < hi; ++i) {
    const float w =
        i < lo + cut ? -1.0f / static_cast<float>(cut) : 1.0f / static_cast<float>(n - cut);
    for (int64_t e = 0; e < d; ++e) dir[static_cast<size_t>(e)] += w * row(i)[e];
  }
  split_along();
  halve_in_chunks(reps, d, norms, idx, lo, lo + cut, chunk, proj);
  halve_in_chunks(reps, d, norms, idx, lo + cut, hi, chunk, proj);
}

}  // namespace

// The k best in a heap whose top is the worst kept; the heap is the index's scratch.
struct BlockIndex::Top {
  std::vector<Scored>& heap;
  size_t k;
  // row: the block's representative in a pinned page (valid until the search unpins).
  void push(float s, int64_t id, const float* row) {
    const Scored x{s, id, row};
    if (heap.size() < k) {
      heap.push_back(x);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(x, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = x;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  // A score that k blocks elsewhere reach (another lane's k-th): nothing below it can enter.
  float floor = -std::numeric_limits<float>::infinity();
  bool full() const { return heap.size() >= k; }
  float kth() const {
    return full() ? heap.front().score : -std::numeric_limits<float>::infinity();
  }
  // What a block must beat (the k-th or the floor), and whether there is such a score yet.
  float bar() const { return std::max(kth(), floor); }
  bool barred() const { return full() || floor > -std::numeric_limits<float>::infinity(); }
  // The kept blocks best first; with rows, their representatives (dim floats each) too.
  std::vector<int64_t> sorted(std::vector<float>* scores, std::vector<float>* rows = nullptr,
                              int64_t dim = 0) const {
    std::sort(heap.begin(), heap.end(), better);
    std::vector<int64_t> ids(heap.size());
    if (scores) scores->resize(heap.size());
    if (rows) rows->resize(heap.size() * static_cast<size_t>(dim));
    for (size_t i = 0; i < heap.size(); ++i) {
      ids[i] = heap[i].id;
      if (scores) (*scores)[i] = heap[i].score;
      if (rows) std::copy_n(heap[i].row, dim, rows->begin() + static_cast<std::ptrdiff_t>(i) * dim);
    }
    return ids;
  }
};

// Clusters best first by one score each, taken one at a time. With few to take: from maxima over
// groups of 64 scores (about 150 comparisons per take, no sorting); with many: from a partial sort.
// Equal scores go to the lower cluster id.
struct BlockIndex::Queue {
  static constexpr int64_t G = 64;
  static constexpr float gone = -std::numeric_limits<float>::infinity();
  std::vector<float> score;  // per cluster; filled by the caller
  std::vector<float> gmax;
  std::vector<uint64_t> keys;  // sorted: (inverted ordered score bits, id), best first
  size_t ordered = 0;          // keys [0, ordered) are in order
  size_t next = 0;
  bool sorted = false;

  float group_max(int64_t g) const {
    const int64_t n = static_cast<int64_t>(score.size());
    float m = gone;
    for (int64_t c = g * G; c < std::min(n, (g + 1) * G); ++c)
      m = std::max(m, score[static_cast<size_t>(c)]);
    return m;
  }
  // sort: `want` clusters at most will be taken from this order (and as many skipped, taken by
  // the other order): only the best 2 * want are put in order, the others when they are reached.
  void start(bool sort, int64_t want) {
    const int64_t n = static_cast<int64_t>(score.size());
    sorted = sort;
    next = 0;
    if (sorted) {
      // One key per cluster: the score's bits made to order as unsigned integers, inverted (best
      // first), then the id (ties to the lower id).
      keys.resize(static_cast<size_t>(n));
      for (int64_t c = 0; c < n; ++c) {
        uint32_t u;
        std::memcpy(&u, &score[static_cast<size_t>(c)], 4);
        u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
        keys[static_cast<size_t>(c)] = (static_cast<uint64_t>(~u) << 32) | static_cast<uint32_t>(c);
      }
      ordered = std::min<size_t>(keys.size(), static_cast<size_t>(2 * std::max<int64_t>(want, 1)));
      if (ordered < keys.size())
        std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(ordered),
                         keys.end());
      std::sort(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(ordered));
    } else {
      gmax.resize(static_cast<size_t>((n + G - 1) / G));
      for (size_t g = 0; g < gmax.size(); ++g) gmax[g] = group_max(static_cast<int64_t>(g));
    }
  }
  // Sorted: the next cluster in order not taken yet (keys past `ordered` are sorted when reached),
  // or -1.
  int64_t next_untaken(const std::vector<uint8_t>& taken) {
    for (;; ++next) {
      if (next == ordered && ordered < keys.size()) {
        std::sort(keys.begin() + static_cast<std::ptrdiff_t>(ordered), keys.end());
        ordered = keys.size();
      }
      if (next == keys.size()) return -1;
      const auto c = static_cast<uint32_t>(keys[next]);
      if (!taken[c]) return c;
    }
  }
  // The best score of a cluster not taken yet (-inf when all were).
  float peek(const std::vector<uint8_t>& taken) {
    if (sorted) {
      const int64_t c = next_untaken(taken);
      return c < 0 ? gone : score[static_cast<size_t>(c)];
    }
    float m = gone;
    for (float g : gmax) m = std::max(m, g);
    return m;
  }
  // The best cluster not taken yet, or -1 when all were.
  int64_t take(const std::vector<uint8_t>& taken) {
    if (sorted) {
      const int64_t c = next_untaken(taken);
      if (c >= 0) ++next;
      return c;
    }
    size_t g = 0;
    for (size_t h = 1; h < gmax.size(); ++h)
      if (gmax[h] > gmax[g]) g = h;
    if (gmax.empty() || gmax[g] == gone) return -1;
    int64_t c = static_cast<int64_t>(g) * G;
    while (score[static_cast<size_t>(c)] != gmax[g]) ++c;
    drop(c);
    return c;
  }
  void drop(int64_t c) {  // taken elsewhere
    if (sorted || score[static_cast<size_t>(c)] == gone) return;
    score[static_cast<size_t>(c)] = gone;
    gmax[static_cast<size_t>(c / G)] = group_max(c / G);
  }
};

// One lane of a search: a contiguous range of clusters, searched on its own (its own top k, orders,
// budget share and scratch), so that the lanes can run on different threads.
struct BlockIndex::Lane {
  int64_t c0 = 0, c1 = 0;  // clusters [c0, c1)
  std::vector<Scored> heap;
  Queue by_estimate, by_reach;  // by cluster - c0
  std::vector<uint8_t> taken;   // by cluster - c0
  std::vector<int32_t> dots;
  std::vector<float> slice_mean, optimistic, tmp;
  std::vector<BlockView> views;
  std::vector<std::pair<float, int64_t>> chunk_order;
  // Clusters taken, clusters visited and members scored at most (0: no cap).
  int64_t probe = 0, max_visits = 0, budget = 0;
  int64_t taken_n = 0, visited = 0, scored = 0, bounds = 0, chunk_bounds = 0;
  bool done = false;
};

BlockIndex::BlockIndex(const BlockIndexOptions& opt) : opt_(opt) {
  LC_CHECK(opt_.dim > 0 && opt_.group_size > 0 && opt_.max_clusters > 0 && opt_.page_reps > 0);
  BlockStoreOptions po = opt_.pages;
  po.tokens_per_block = opt_.page_reps;
  po.row_floats = opt_.dim;
  po.values = false;
  po.spill_type = SpillType::F32;
  pages_ = std::make_unique<BlockStore>(po);
  chunk_ = (opt_.group_size + opt_.page_reps - 1) / opt_.page_reps * opt_.page_reps;
  k4_ = (opt_.dim + 3) / 4;
  scale_m_.assign(static_cast<size_t>(opt_.dim), 0.0f);
  scale_r_.assign(static_cast<size_t>(opt_.dim), 0.0f);
}

BlockIndex::~BlockIndex() = default;

void BlockIndex::clear() {
  n_ = 0;
  typical_d2_ = 0;
  clusters_.clear();
  cap_ = 0;
  mean_.clear();
  mean8_.clear();
  reach8_.clear();
  std::fill(scale_m_.begin(), scale_m_.end(), 0.0f);
  std::fill(scale_r_.begin(), scale_r_.end(), 0.0f);
  box_.clear();
  mean_norm_.clear();
  pages_->clear();
}

size_t BlockIndex::bytes_in_ram() const {
  size_t b = mean_.capacity() * sizeof(uint16_t) + mean8_.capacity() + reach8_.capacity() +
             box_.capacity() * sizeof(float) + mean_norm_.capacity() * sizeof(float) +
             clusters_.capacity() * sizeof(Cluster);
  for (const Cluster& cl : clusters_)
    b += cl.ids.capacity() * sizeof(int32_t) + cl.pages.capacity() * sizeof(int64_t) +
         cl.chunk_box.capacity() * sizeof(float);
  return b + pages_->bytes_in_ram();
}

int64_t BlockIndex::largest_cluster() const {
  int64_t m = 0;
  for (const Cluster& cl : clusters_) m = std::max(m, cl.size());
  return m;
}

int64_t BlockIndex::new_cluster() {
  const int64_t c = clusters();
  if (c == cap_) {  // widen the [dim][cap] means; the tiles grow at their end
    const int64_t cap = std::max<int64_t>(64, 2 * cap_);
    std::vector<uint16_t> w(static_cast<size_t>(cap * opt_.dim), 0);
    for (int64_t e = 0; e < opt_.dim; ++e)
      std::copy_n(mean_.data() + e * cap_, cap_, w.data() + e * cap);
    mean_.swap(w);
    cap_ = cap;
    mean8_.resize(static_cast<size_t>(cap / 64 * k4_ * 256), 0);
    reach8_.resize(mean8_.size(), 0);
  }
  box_.resize(static_cast<size_t>((c + 1) * 2 * opt_.dim));
  clusters_.emplace_back();
  clusters_.back().split_at = opt_.group_size;
  mean_norm_.push_back(0.0f);
  return c;
}

int64_t BlockIndex::nearest(const float* x, float* dist2) const {
  // |x - m|^2 = |x|^2 - 2 x.m + |m|^2: the x.m of every cluster in one pass by dimension.
  const int64_t nc = clusters();
  tmp_.resize(static_cast<size_t>(nc));
  rows_.resize(static_cast<size_t>(opt_.dim));
  for (int64_t e = 0; e < opt_.dim; ++e) rows_[static_cast<size_t>(e)] = mean_row(e);
  dot_columns_f16(rows_.data(), x, opt_.dim, nc, tmp_.data());
  int64_t best = 0;
  float best_d = std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < nc; ++c) {
    const float t = mean_norm_[static_cast<size_t>(c)] - 2.0f * tmp_[static_cast<size_t>(c)];
    if (t < best_d) {
      best_d = t;
      best = c;
    }
  }
  float xx = 0;
  for (int64_t e = 0; e < opt_.dim; ++e) xx += x[e] * x[e];
  *dist2 = std::max(0.0f, best_d + xx);
  return best;
}

void BlockIndex::append(int64_t c, int32_t id, const float* r) {
  const int64_t d = opt_.dim, P = opt_.page_reps;
  Cluster& cl = clusters_[static_cast<size_t>(c)];
  const int64_t m = cl.size(), fill = m % P;
  if (fill == 0) {
    cl.pages.push_back(pages_->add(r, nullptr, 1));
  } else {
    pages_->extend(cl.pages.back(), r, 1);  // the last page, one representative longer
  }
  if (m > 0 && cl.point) {
    const float* lo = box(c);
    for (int64_t e = 0; e < d && cl.point; ++e) cl.point = r[e] == lo[e];
  }
  cl.ids.push_back(id);
  if (m % chunk_ == 0) {
    cl.chunk_box.insert(cl.chunk_box.end(), r, r + d);
    cl.chunk_box.insert(cl.chunk_box.end(), r, r + d);
  } else {
    widen(cl.chunk_box.data() + (m / chunk_) * 2 * d, r, d);
  }
  const float inv = 1.0f / static_cast<float>(m + 1);
  float norm = 0;
  float* lo = box(c);
  float* hi = lo + d;
  for (int64_t e = 0; e < d; ++e) {
    uint16_t& mh = mean_row(e)[c];
    float mean = r[e];
    if (m == 0) {
      lo[e] = hi[e] = r[e];
    } else {
      mean = fp16_to_f32(mh);
      mean += (r[e] - mean) * inv;
      lo[e] = std::min(lo[e], r[e]);
      hi[e] = std::max(hi[e], r[e]);
    }
    mh = f32_to_fp16(mean);
    mean = fp16_to_f32(mh);
    norm += mean * mean;
  }
  mean_norm_[static_cast<size_t>(c)] = norm;
  quantize(c);
}

float BlockIndex::reach(int64_t c, int64_t e) const {
  const float m = fp16_to_f32(mean_row(e)[c]);
  const float* lo = box(c);
  return std::max({lo[opt_.dim + e] - m, m - lo[e], 0.0f});
}

void BlockIndex::put_mean8(int64_t c, int64_t e) {
  const float s = scale_m_[static_cast<size_t>(e)];
  const float m = fp16_to_f32(mean_row(e)[c]);
  const float v = s > 0 ? std::clamp(std::round(m / s), -127.0f, 127.0f) : 0.0f;
  mean8_[tile_at(c, e)] = static_cast<uint8_t>(static_cast<int>(v) + 128);
}

void BlockIndex::put_reach8(int64_t c, int64_t e) {
  const float s = scale_r_[static_cast<size_t>(e)];
  const float v = s > 0 ? std::min(std::ceil(reach(c, e) / s), 255.0f) : 0.0f;
  reach8_[tile_at(c, e)] = static_cast<uint8_t>(v);
}

void BlockIndex::quantize(int64_t c) {
  for (int64_t e = 0; e < opt_.dim; ++e) {
    // A value beyond its dimension's range widens the range by half again, and the dimension's
    // bytes of every cluster are recomputed from the means and boxes (rare once a few blocks came).
    float& sm = scale_m_[static_cast<size_t>(e)];
    const float m = std::fabs(fp16_to_f32(mean_row(e)[c]));
    if (m > 127.0f * sm) {
      sm = 1.5f * m / 127.0f;
      for (int64_t o = 0; o < clusters(); ++o) put_mean8(o, e);
    } else {
      put_mean8(c, e);
    }
    float& sr = scale_r_[static_cast<size_t>(e)];
    const float r = reach(c, e);
    if (r > 255.0f * sr) {
      sr = 1.5f * r / 255.0f;
      for (int64_t o = 0; o < clusters(); ++o) put_reach8(o, e);
    } else {
      put_reach8(c, e);
    }
  }
}

void BlockIndex::write_members(int64_t c, const std::vector<int32_t>& ids, const float* reps) {
  const int64_t d = opt_.dim, P = opt_.page_reps, m = static_cast<int64_t>(ids.size());
  Cluster& cl = clusters_[static_cast<size_t>(c)];
  LC_CHECK(cl.pages.empty() && m > 0);
  cl.ids = ids;
  cl.point = true;
  cl.order_at = std::max(2 * chunk_, m + std::max(chunk_, m / 4));
  for (int64_t i = 0; i < m; i += P)
    cl.pages.push_back(pages_->add(reps + i * d, nullptr, std::min(P, m - i)));
  cl.chunk_box.clear();
  for (int64_t i0 = 0; i0 < m; i0 += chunk_) {
    const size_t at = cl.chunk_box.size();
    cl.chunk_box.insert(cl.chunk_box.end(), reps + i0 * d, reps + (i0 + 1) * d);
    cl.chunk_box.insert(cl.chunk_box.end(), reps + i0 * d, reps + (i0 + 1) * d);
    for (int64_t i = i0 + 1; i < std::min(m, i0 + chunk_); ++i)
      widen(cl.chunk_box.data() + at, reps + i * d, d);
  }
  float norm = 0;
  float* lo = box(c);
  float* hi = lo + d;
  for (int64_t e = 0; e < d; ++e) {
    double sum = 0;
    lo[e] = hi[e] = reps[e];
    for (int64_t i = 0; i < m; ++i) {
      const float x = reps[i * d + e];
      sum += x;
      lo[e] = std::min(lo[e], x);
      hi[e] = std::max(hi[e], x);
    }
    cl.point = cl.point && lo[e] == hi[e];
    mean_row(e)[c] = f32_to_fp16(static_cast<float>(sum / static_cast<double>(m)));
    const float mean = fp16_to_f32(mean_row(e)[c]);
    norm += mean * mean;
  }
  double sq = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t e = 0; e < d; ++e) {
      const double t = reps[i * d + e] - fp16_to_f32(mean_row(e)[c]);
      sq += t * t;
    }
  cl.spread = static_cast<float>(sq / static_cast<double>(m));
  mean_norm_[static_cast<size_t>(c)] = norm;
  quantize(c);
}

void BlockIndex::gather(int64_t c, std::vector<float>& reps) const {
  const Cluster& cl = clusters_[static_cast<size_t>(c)];
  reps.resize(static_cast<size_t>(cl.size() * opt_.dim));
  pages_->pin_into(cl.pages.data(), static_cast<int64_t>(cl.pages.size()), false, views_);
  float* out = reps.data();
  for (const BlockView& v : views_) out = std::copy_n(v.k, v.n * opt_.dim, out);
  pages_->unpin_all();
}

// Splits cluster c in two with 2-means seeded by two far-apart members. Leaves c alone when its
// members cannot be separated (all equal).
void BlockIndex::split(int64_t c) {
  const int64_t d = opt_.dim;
  std::vector<float> reps;
  gather(c, reps);
  const std::vector<int32_t> ids = clusters_[static_cast<size_t>(c)].ids;
  const size_t m = ids.size();
  auto rep = [&](size_t i) { return reps.data() + i * static_cast<size_t>(d); };
  std::vector<float> mean(static_cast<size_t>(d));
  for (int64_t e = 0; e < d; ++e) mean[static_cast<size_t>(e)] = fp16_to_f32(mean_row(e)[c]);
  auto farthest = [&](const float* from) {
    size_t best = 0;
    float bd = -1;
    for (size_t i = 0; i < m; ++i) {
      const float t = dist2(from, rep(i), d);
      if (t > bd) {
        bd = t;
        best = i;
      }
    }
    return best;
  };
  const size_t a = farthest(mean.data()), b = farthest(rep(a));
  std::vector<float> ca(rep(a), rep(a) + d), cb(rep(b), rep(b) + d);
  std::vector<uint8_t> side(m, 0);
  for (int iter = 0; iter < 4; ++iter) {
    std::vector<double> sa(static_cast<size_t>(d), 0.0), sb(static_cast<size_t>(d), 0.0);
    int64_t na = 0, nb = 0;
    for (size_t i = 0; i < m; ++i) {
      const float* r = rep(i);
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
  std::vector<int32_t> ida, idb;
  std::vector<float> ra, rb;
  for (size_t i = 0; i < m; ++i) {
    (side[i] ? idb : ida).push_back(ids[i]);
    auto& r = side[i] ? rb : ra;
    r.insert(r.end(), rep(i), rep(i) + d);
  }
  if (ida.empty() || idb.empty()) return;  // inseparable: keep it whole
  for (int64_t p : clusters_[static_cast<size_t>(c)].pages) pages_->release(p);
  clusters_[static_cast<size_t>(c)].pages.clear();
  clusters_[static_cast<size_t>(c)].split_at = opt_.group_size;
  write_members(c, ida, ra.data());
  const int64_t nb = new_cluster();
  write_members(nb, idb, rb.data());
}

// Places cluster c's members in an order where each chunk is compact (halve_in_chunks), so that
// a search can bound and skip chunks of a large cluster.
void BlockIndex::reorder(int64_t c) {
  const int64_t d = opt_.dim;
  std::vector<float> reps;
  gather(c, reps);
  Cluster& cl = clusters_[static_cast<size_t>(c)];
  const std::vector<int32_t> ids = cl.ids;
  std::vector<int32_t> idx(ids.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
  std::vector<float> proj(ids.size()), norms(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* r = reps.data() + i * static_cast<size_t>(d);
    norms[i] = dot_f32(r, r, d);
  }
  halve_in_chunks(reps.data(), d, norms, idx, 0, idx.size(), static_cast<size_t>(chunk_), proj);
  std::vector<int32_t> ordered(ids.size());
  std::vector<float> rows(reps.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    ordered[i] = ids[static_cast<size_t>(idx[i])];
    std::copy_n(reps.data() + static_cast<size_t>(idx[i]) * static_cast<size_t>(d), d,
                rows.data() + i * static_cast<size_t>(d));
  }
  for (int64_t p : cl.pages) pages_->release(p);
  cl.pages.clear();
  write_members(c, ordered, rows.data());
}

void BlockIndex::add(const float* r) {
  LC_CHECK(n_ < std::numeric_limits<int32_t>::max());
  const int32_t id = static_cast<int32_t>(n_++);
  int64_t c = 0;
  if (clusters_.empty()) {
    c = new_cluster();
  } else {
    float d2 = 0;
    c = nearest(r, &d2);
    Cluster& near = clusters_[static_cast<size_t>(c)];
    float rr = 0;
    for (int64_t e = 0; e < opt_.dim; ++e) rr += r[e] * r[e];
    // (the margin covers the half-precision means)
    typical_d2_ += (d2 - typical_d2_) / static_cast<double>(n_);
    const float floor = 0.25f * static_cast<float>(typical_d2_);
    if (opt_.outlier > 0 && clusters() < opt_.max_clusters && near.size() >= 2 &&
        d2 > opt_.outlier * std::max(near.spread, floor) + 1e-5f * rr) {
      c = new_cluster();
    } else {
      near.spread += (d2 - near.spread) / static_cast<float>(near.size() + 1);
    }
  }
  append(c, id, r);
  Cluster& cl = clusters_[static_cast<size_t>(c)];
  // Split when over capacity (a cluster that could not be split waits until it doubles).
  const int64_t split_cap =
      opt_.outlier > 0 ? std::max<int64_t>(1, opt_.max_clusters * 7 / 8) : opt_.max_clusters;
  if (cl.size() > cl.split_at && clusters() < split_cap) {
    cl.split_at = 2 * cl.size();
    split(c);
  } else if (cl.size() > cl.order_at && !cl.point) {
    reorder(c);  // a cluster that no longer splits: its chunks compact again
  }
}

std::vector<float> BlockIndex::repr(int64_t id) const {
  const int64_t d = opt_.dim;
  for (const Cluster& cl : clusters_) {
    const auto it = std::find(cl.ids.begin(), cl.ids.end(), static_cast<int32_t>(id));
    if (it == cl.ids.end()) continue;
    const int64_t i = it - cl.ids.begin();
    const int64_t page = cl.pages[static_cast<size_t>(i / opt_.page_reps)];
    pages_->pin_into(&page, 1, false, views_);
    const float* r = views_[0].k + (i % opt_.page_reps) * d;
    std::vector<float> out(r, r + d);
    pages_->unpin_all();
    return out;
  }
  fail("block index: no block ", id, " (", n_, " blocks)");
}

template <typename Place>
void BlockIndex::copy_rows(Place place, float* out) const {
  const int64_t d = opt_.dim;
  for (const Cluster& cl : clusters_) {
    for (size_t p = 0; p < cl.pages.size(); ++p) {
      const size_t i0 = p * static_cast<size_t>(opt_.page_reps);
      const size_t i1 = std::min(cl.ids.size(), i0 + static_cast<size_t>(opt_.page_reps));
      bool pinned = false;
      for (size_t i = i0; i < i1; ++i) {
        const int64_t at = place(cl.ids[i]);
        if (at < 0) continue;
        if (!pinned) pages_->pin_into(&cl.pages[p], 1, false, views_);
        pinned = true;
        std::copy_n(views_[0].k + static_cast<int64_t>(i - i0) * d, d, out + at * d);
      }
    }
  }
  pages_->unpin_all();
}

std::vector<float> BlockIndex::reprs(int64_t first, int64_t last) const {
  LC_CHECK(first >= 0 && first <= last && last <= n_);
  std::vector<float> out(static_cast<size_t>((last - first) * opt_.dim));
  copy_rows([&](int64_t id) { return id >= first && id < last ? id - first : -1; }, out.data());
  return out;
}

std::vector<float> BlockIndex::rows_of(const std::vector<int64_t>& ids) const {
  std::vector<std::pair<int64_t, int64_t>> want;  // (id, place in ids), by id
  for (size_t i = 0; i < ids.size(); ++i) {
    LC_CHECK(ids[i] >= 0 && ids[i] < n_);
    want.emplace_back(ids[i], static_cast<int64_t>(i));
  }
  std::sort(want.begin(), want.end());
  for (size_t i = 1; i < want.size(); ++i) LC_CHECK(want[i].first != want[i - 1].first);
  std::vector<float> out(ids.size() * static_cast<size_t>(opt_.dim));
  copy_rows(
      [&](int64_t id) {
        const auto it = std::lower_bound(want.begin(), want.end(), std::make_pair(id, int64_t{0}));
        return it != want.end() && it->first == id ? it->second : -1;
      },
      out.data());
  return out;
}

int64_t BlockIndex::score_members(int64_t c, const float* q, Top& top, Lane& lane, bool keep_pinned,
                                  bool prune, int64_t budget) const {
  const Cluster& cl = clusters_[static_cast<size_t>(c)];
  lane.tmp.resize(static_cast<size_t>(opt_.page_reps));
  if (cl.point && cl.size() > 1) {
    // Equal representatives score alike and ties go to the lower id: the first k members (ids
    // grow along the list) are all that can enter the top k. One score.
    pages_->pin_into(cl.pages.data(), 1, keep_pinned, lane.views);
    score_rows(lane.views[0].k, 1, q, lane.tmp.data());
    const size_t n = std::min(cl.ids.size(), top.k);
    for (size_t i = 0; i < n; ++i) top.push(lane.tmp[0], cl.ids[i], lane.views[0].k);
    return 1;
  }
  const int64_t n_chunks = (cl.size() + chunk_ - 1) / chunk_, chunk_pages = chunk_ / opt_.page_reps;
  // The members of pages [p0, p1).
  auto score_pages = [&](int64_t p0, int64_t p1) {
    pages_->pin_into(cl.pages.data() + p0, p1 - p0, keep_pinned, lane.views);
    size_t i = static_cast<size_t>(p0 * opt_.page_reps);
    for (const BlockView& v : lane.views) {
      score_rows(v.k, v.n, q, lane.tmp.data());
      for (int64_t r = 0; r < v.n; ++r, ++i)
        top.push(lane.tmp[static_cast<size_t>(r)], cl.ids[i], v.k + r * opt_.dim);
    }
  };
  if (!prune || n_chunks <= 1) {
    score_pages(0, static_cast<int64_t>(cl.pages.size()));
    return cl.size();
  }
  // Chunks best box first, until no box left can beat the k-th.
  lane.chunk_order.clear();
  for (int64_t j = 0; j < n_chunks; ++j)
    lane.chunk_order.emplace_back(bound(cl.chunk_box.data() + j * 2 * opt_.dim), j);
  lane.chunk_bounds += n_chunks;
  std::sort(lane.chunk_order.begin(), lane.chunk_order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  int64_t scored = 0;
  for (const auto& [b, j] : lane.chunk_order) {
    const float t = top.bar();
    if (top.barred() && (below(b, t) || scored >= budget)) break;
    const int64_t p0 = j * chunk_pages;
    score_pages(p0, std::min(p0 + chunk_pages, static_cast<int64_t>(cl.pages.size())));
    scored += std::min(chunk_, cl.size() - j * chunk_);
  }
  return scored;
}

void BlockIndex::score_rows(const float* rows, int64_t n, const float* q, float* out) const {
  max_slice_dots(rows, n, opt_.dim, slices_.n, q, slices_.off, out);
}

std::vector<int64_t> BlockIndex::top_k_exact(const float* q, int64_t k, std::vector<float>* scores,
                                             Slices slices, std::vector<float>* rows) const {
  LC_CHECK(slices.n >= 1 && opt_.dim % slices.n == 0);
  slices_ = slices;
  heap_.clear();
  Top top{heap_, static_cast<size_t>(std::max<int64_t>(k, 0))};
  if (lanes_.empty()) lanes_.resize(1);
  if (k > 0) {
    for (int64_t c = 0; c < clusters(); ++c) score_members(c, q, top, lanes_[0], false, false, n_);
    pages_->unpin_all();
  }
  last_scored_ = n_;
  last_bounds_ = 0;
  // (The pages were pinned one cluster at a time: the rows are read again.)
  std::vector<int64_t> ids = top.sorted(scores);
  if (rows) *rows = rows_of(ids);
  return ids;
}

float BlockIndex::bound(const float* box) const {
  // sum_d max(q_d lo_d, q_d hi_d) = max(q, 0) . hi + min(q, 0) . lo >= q . r for every member r;
  // per slice, and the maximum over slices of (bound - offset) for the maximum of the scores.
  const int64_t d = opt_.dim, w = d / slices_.n;
  float best = -std::numeric_limits<float>::infinity();
  for (int64_t h = 0; h < slices_.n; ++h) {
    const int64_t e0 = h * w;
    best = std::max(best, dot_f32(q_pos_.data() + e0, box + d + e0, w) +
                              dot_f32(q_neg_.data() + e0, box + e0, w) -
                              (slices_.off ? slices_.off[h] : 0));
  }
  return best;
}

std::vector<int64_t> BlockIndex::top_k(const float* q, int64_t k, std::vector<float>* scores,
                                       Slices slices, std::vector<float>* rows) const {
  if (k <= 0) {
    if (rows) rows->clear();
    return {};
  }
  if (opt_.exact || n_ <= k || n_ <= 2 * opt_.group_size)
    return top_k_exact(q, k, scores, slices, rows);
  LC_CHECK(slices.n >= 1 && opt_.dim % slices.n == 0);
  slices_ = slices;
  const int64_t d = opt_.dim, nc = clusters();
  // The query to bytes once per slice (the lanes share them): with the dimension scales folded
  // in, dimensions of the slice only (the rest zero); the unit of one byte and the bytes' sum.
  const int64_t w = d / slices_.n;
  q8_.assign(static_cast<size_t>(2 * slices_.n * k4_ * 4), 0);
  q8_unit_.assign(static_cast<size_t>(2 * slices_.n), 0.0f);
  q8_sum_.assign(static_cast<size_t>(slices_.n), 0);
  tmp_.resize(static_cast<size_t>(d));
  for (int64_t h = 0; h < slices_.n; ++h)
    for (int of_reach = 0; of_reach < 2; ++of_reach) {
      const int64_t e0 = h * w, e1 = e0 + w;
      float top = 0;
      for (int64_t e = e0; e < e1; ++e) {
        const size_t i = static_cast<size_t>(e);
        tmp_[i] = of_reach ? std::fabs(q[e]) * scale_r_[i] : q[e] * scale_m_[i];
        top = std::max(top, std::fabs(tmp_[i]));
      }
      const float unit = top / 127.0f;
      int8_t* q8 = q8_.data() + (2 * h + of_reach) * k4_ * 4;
      int32_t sum = 0;
      for (int64_t e = e0; e < e1 && unit > 0; ++e) {
        q8[e] = static_cast<int8_t>(std::round(tmp_[static_cast<size_t>(e)] / unit));
        sum += q8[e];
      }
      q8_unit_[static_cast<size_t>(2 * h + of_reach)] = unit;
      if (!of_reach) q8_sum_[static_cast<size_t>(h)] = sum;
    }
  q_pos_.resize(static_cast<size_t>(d));
  q_neg_.resize(static_cast<size_t>(d));
  for (int64_t e = 0; e < d; ++e) {
    q_pos_[static_cast<size_t>(e)] = std::max(q[e], 0.0f);
    q_neg_[static_cast<size_t>(e)] = std::min(q[e], 0.0f);
  }
  // With a budget only `probe` clusters can be visited, taken in turn from the two orders; a
  // search usually stops after a few. Without a budget all may be visited. Each lane gets its
  // share of both.
  int64_t probe = nc;
  if (opt_.max_groups > 0) probe = std::min(probe, opt_.max_groups);
  if (opt_.max_scored > 0) probe = std::min(probe, 2 * opt_.max_scored / opt_.group_size + 8);
  const int64_t n_lanes = std::min<int64_t>(kLanes, nc);
  lanes_.resize(static_cast<size_t>(n_lanes));
  for (int64_t j = 0; j < n_lanes; ++j) {
    Lane& lane = lanes_[static_cast<size_t>(j)];
    lane.c0 = nc * j / n_lanes;
    lane.c1 = nc * (j + 1) / n_lanes;
  }
  // Two rounds: each lane scores its first clusters, then the rest with the best k-th score of
  // the lanes' first rounds as a floor (another lane holds k blocks above it). Both rounds depend
  // only on the lanes' own work, never on which thread finishes first.
  parallel_for_tasks(static_cast<int>(n_lanes), [&](int j, int) {
    Lane& lane = lanes_[static_cast<size_t>(j)];
    auto share = [&](int64_t cap) { return cap > 0 ? (cap + n_lanes - 1) / n_lanes : 0; };
    start_lane(lane, share(probe), share(opt_.max_groups), share(opt_.max_scored));
    visit_lane(lane, q, k, -std::numeric_limits<float>::infinity(), kFirstVisits);
  });
  float floor = -std::numeric_limits<float>::infinity();
  for (const Lane& lane : lanes_)
    if (static_cast<int64_t>(lane.heap.size()) >= k)
      floor = std::max(floor, lane.heap.front().score);
  parallel_for_tasks(static_cast<int>(n_lanes), [&](int j, int) {
    visit_lane(lanes_[static_cast<size_t>(j)], q, k, floor, 0);
  });
  // The lanes' best, merged.
  heap_.clear();
  Top top{heap_, static_cast<size_t>(k)};
  int64_t scored = 0, bounds = 0;
  for (const Lane& lane : lanes_) {
    for (const Scored& x : lane.heap) top.push(x.score, x.id, x.row);
    scored += lane.scored;
    bounds += lane.bounds + lane.chunk_bounds;
  }
  // The probed clusters held fewer than k blocks: take from the others.
  for (Lane& lane : lanes_)
    for (int64_t c = lane.c0; c < lane.c1 && !top.full(); ++c)
      if (!lane.taken[static_cast<size_t>(c - lane.c0)])
        scored += score_members(c, q, top, lanes_[0], true, true, n_);
  std::vector<int64_t> ids = top.sorted(scores, rows, d);  // (before the pages are unpinned)
  pages_->unpin_all();
  last_scored_ = scored;
  // In dot products of dim (a byte pass over every slice: a quarter each).
  last_bounds_ = nc / 2 + 2 * bounds;
  return ids;
}

void BlockIndex::start_lane(Lane& lane, int64_t probe, int64_t max_visits, int64_t budget) const {
  const int64_t c0 = lane.c0, nc = lane.c1 - lane.c0, w = opt_.dim / slices_.n;
  // Two scores per cluster, from bytes (each a pass of integer multiply-adds over the lane's
  // clusters): its mean's score q.m, and an optimistic one q.m + |q|.r (r: the largest distance
  // of a member from the mean in each dimension; no member scores higher). The estimate between
  // them ranks a crowd by what its better members are like; the optimistic score ranks a cluster
  // by its most query-like member even where the others hide it from the mean (a needle that
  // joined a few ordinary blocks).
  Queue& by_estimate = lane.by_estimate;
  Queue& by_reach = lane.by_reach;
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  by_estimate.score.assign(static_cast<size_t>(nc), kNone);
  by_reach.score.assign(static_cast<size_t>(nc), kNone);
  // The tiles of 64 clusters that hold the lane's clusters.
  const int64_t t0 = c0 / 64, tiles = (lane.c1 + 63) / 64 - t0, at = c0 - t0 * 64;
  lane.dots.resize(static_cast<size_t>(tiles * 64));
  lane.slice_mean.resize(static_cast<size_t>(nc));
  // A slice of whole groups of 4 dimensions is a range of each tile's groups: only those bytes
  // are read (else the whole tile, the query zero outside the slice).
  const bool grouped = slices_.n == 1 || w % 4 == 0;
  auto tile_pass = [&](const std::vector<uint8_t>& bytes, int64_t h, int of_reach) {
    const uint8_t* a = bytes.data() + t0 * k4_ * 256;
    const int8_t* q8 = q8_.data() + (2 * h + of_reach) * k4_ * 4;
    if (grouped) {
      const int64_t g0 = h * w / 4, n4 = slices_.n == 1 ? k4_ : w / 4;
      dot_tiles_u8s8(a + g0 * 256, q8 + g0 * 4, n4, k4_, tiles, lane.dots.data());
    } else {
      dot_tiles_u8s8(a, q8, k4_, k4_, tiles, lane.dots.data());
    }
  };
  // Per slice: its mean score and its optimistic score, less its offset; each cluster's scores
  // are the maxima over slices.
  for (int64_t h = 0; h < slices_.n; ++h) {
    const float off = slices_.off ? slices_.off[h] : 0.0f;
    const float unit_m = q8_unit_[static_cast<size_t>(2 * h)];
    const float unit_r = q8_unit_[static_cast<size_t>(2 * h + 1)];
    const int32_t sum_m = q8_sum_[static_cast<size_t>(h)];
    tile_pass(mean8_, h, 0);
    for (int64_t c = 0; c < nc; ++c) {  // the mean bytes are offset by 128
      const auto i = static_cast<size_t>(c);
      lane.slice_mean[i] =
          unit_m * static_cast<float>(lane.dots[static_cast<size_t>(at + c)] - 128 * sum_m) - off;
      by_estimate.score[i] = std::max(by_estimate.score[i], lane.slice_mean[i]);
    }
    tile_pass(reach8_, h, 1);
    for (int64_t c = 0; c < nc; ++c) {
      const auto i = static_cast<size_t>(c);
      by_reach.score[i] = std::max(
          by_reach.score[i],
          lane.slice_mean[i] + unit_r * static_cast<float>(lane.dots[static_cast<size_t>(at + c)]));
    }
  }
  probe = std::min(probe, nc);
  lane.probe = probe;
  lane.max_visits = max_visits;
  lane.budget = budget;
  const bool sorted = probe > 8 * Queue::G;
  // The first order ranks a cluster by its mean's score plus a tenth of its optimistic margin, an
  // estimate of its best member's score (a crowd whose members spread more towards the query
  // holds better ones than its mean shows).
  for (int64_t c = 0; c < nc; ++c) {
    const auto i = static_cast<size_t>(c);
    by_estimate.score[i] += kReachInEstimate * (by_reach.score[i] - by_estimate.score[i]);
  }
  // The optimistic scores stay at hand as cheap bounds (from bytes: within a margin).
  lane.optimistic.assign(by_reach.score.begin(), by_reach.score.end());
  by_estimate.start(sorted, probe);
  by_reach.start(sorted, probe);
  lane.taken.assign(static_cast<size_t>(nc), 0);
  lane.heap.clear();
  lane.taken_n = lane.visited = lane.scored = lane.bounds = lane.chunk_bounds = 0;
  lane.done = false;
}

void BlockIndex::visit_lane(Lane& lane, const float* q, int64_t k, float floor,
                            int64_t visits) const {
  Top top{lane.heap, static_cast<size_t>(k)};
  top.floor = floor;
  Queue* queues[2] = {&lane.by_estimate, &lane.by_reach};
  while (!lane.done && (visits <= 0 || lane.visited < visits || !top.full())) {
    if (lane.taken_n >= lane.probe) break;
    const int64_t i = lane.taken_n++;
    const int64_t qi = i % kVisitsPerTurn == kVisitsPerTurn - 1 ? 1 : 0;
    const int64_t j = queues[qi]->take(lane.taken);
    if (j < 0) {
      lane.done = true;
      break;
    }
    queues[1 - qi]->drop(j);
    lane.taken[static_cast<size_t>(j)] = 1;
    if (top.barred()) {
      if ((lane.max_visits > 0 && lane.visited >= lane.max_visits) ||
          (lane.budget > 0 && lane.scored >= lane.budget)) {
        lane.done = true;
        break;
      }
      // No member can enter the top k: by the optimistic score (from bytes, with a margin for
      // their rounding), then by the box (the margin covers the bound's own rounding). When no
      // cluster left has an optimistic score that could beat the k-th, the search is done.
      const float t = top.bar(), slack = kBytesMargin * (std::fabs(t) + 1.0f);
      if (lane.optimistic[static_cast<size_t>(j)] + slack < t) {
        if (lane.by_reach.peek(lane.taken) + slack < t) {
          lane.done = true;
          break;
        }
        continue;
      }
      const float b = bound(box(lane.c0 + j));
      ++lane.bounds;
      if (below(b, t)) continue;
    }
    // (what is left of the budget, at least a chunk: the search may end inside a large cluster)
    const int64_t left = lane.budget > 0 ? std::max(lane.budget - lane.scored, chunk_) : n_;
    lane.scored += score_members(lane.c0 + j, q, top, lane, true, true, left);
    ++lane.visited;
  }
}

}  // namespace lc
