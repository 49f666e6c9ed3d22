// Top-k search of memory blocks by the inner product of a query with each block's representative
// vector.
//
// Exact search scores every block. The index search clusters the representatives: each new block
// joins the cluster with the nearest mean (L2), and a cluster that outgrows `group_size` members
// is split in two by a few 2-means steps, until there are `max_clusters` clusters (after that
// clusters only grow). Every cluster keeps the per-dimension minimum and maximum of its members,
// which bound any member's score from above: sum_d max(q_d * min_d, q_d * max_d)
// = q . mid + |q| . half (mid, half: centre and half-width of the box). Clusters are visited in
// order of decreasing bound, their members scored exactly; the search stops when the next bound
// cannot beat the current k-th score (then the result IS the exact top-k), or when `max_scored`
// blocks were scored / `max_groups` clusters visited (approximate, bounded work).
//
// Work per search: max_clusters bounds (two dot products each) + at most about max_scored member
// scores, whatever the number of blocks; per add: one distance per cluster (+ a split now and
// then, O(group_size) distances).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace lc {

struct BlockIndexOptions {
  int64_t dim = 0;              // representative length (n_head * head_dim)
  int64_t group_size = 32;      // members per cluster before it splits
  int64_t max_clusters = 1024;  // clusters stop splitting at this count
  int64_t max_groups = 0;       // most clusters visited per search (0 = no cap)
  int64_t max_scored = 0;       // most blocks scored per search (0 = no cap); the cluster that
                                // crosses it is finished, and at least k are always scored
  bool exact = false;           // score every block (reference)
};

class BlockIndex {
 public:
  explicit BlockIndex(const BlockIndexOptions& opt);

  void add(const float* repr);  // block id = insertion order
  int64_t size() const { return n_; }
  const float* repr(int64_t id) const { return reprs_.data() + id * opt_.dim; }

  // The ids of the k best blocks, sorted by decreasing score (all blocks when k >= size()).
  // Allocation-free after warm-up except for the returned vector.
  std::vector<int64_t> top_k(const float* q, int64_t k) const;
  std::vector<int64_t> top_k_exact(const float* q, int64_t k) const;

  // Work of the last search (for measurements and tests): representatives scored, and cluster
  // bounds computed (each costs about two representative scores).
  int64_t last_scored() const { return last_scored_; }
  int64_t last_bounds() const { return last_bounds_; }
  int64_t clusters() const { return static_cast<int64_t>(clusters_.size()); }
  void clear();

 private:
  struct Cluster {
    std::vector<int64_t> ids;
    std::vector<float> sum;  // of the members' representatives (for the mean)
    int64_t split_at = 0;    // split when it has more members than this
  };
  int64_t nearest(const float* x) const;
  void refresh_box(int64_t c);
  void split(int64_t c);

  BlockIndexOptions opt_;
  int64_t n_ = 0;
  std::vector<float> reprs_;  // [n, dim]
  std::vector<Cluster> clusters_;
  std::vector<float> mean_;        // [clusters, dim]
  std::vector<float> mn_, mx_;     // [clusters, dim] box of the members
  std::vector<float> mid_, half_;  // [clusters, dim] (mn + mx) / 2, (mx - mn) / 2
  // scratch (searches are logically const)
  mutable std::vector<float> absq_;
  mutable std::vector<std::pair<float, int64_t>> bounds_, heap_;
  mutable int64_t last_scored_ = 0, last_bounds_ = 0;
};

}  // namespace lc
