// Top-k search of memory blocks by the inner product of a query with each block's representative
// vector. Exact search scores every block; the two-level search groups consecutive blocks and
// keeps, per group, the per-dimension minimum and maximum of its representatives, which bound any
// member's score from above: sum_d max(q_d * min_d, q_d * max_d). Groups are visited in order of
// decreasing bound, blocks inside them scored exactly, and the search stops when the next bound
// cannot beat the current k-th score (exact) or after `max_groups` groups (approximate, cheap).
#pragma once

#include <cstdint>
#include <vector>

namespace lc {

struct BlockIndexOptions {
  int64_t dim = 0;           // representative length (n_head * head_dim)
  int64_t group_size = 32;   // blocks per group
  int64_t max_groups = 0;    // most groups visited per search (0 = no cap: exact)
  bool exact = false;        // score every block (reference)
};

class BlockIndex {
 public:
  explicit BlockIndex(const BlockIndexOptions& opt);

  void add(const float* repr);  // block id = insertion order
  int64_t size() const { return n_; }
  const float* repr(int64_t id) const { return reprs_.data() + id * opt_.dim; }

  // The ids of the k best blocks, sorted by decreasing score (all blocks when k >= size()).
  std::vector<int64_t> top_k(const float* q, int64_t k) const;
  std::vector<int64_t> top_k_exact(const float* q, int64_t k) const;

  // Scored blocks in the last search (for measurements).
  int64_t last_scored() const { return last_scored_; }
  void clear();

 private:
  BlockIndexOptions opt_;
  int64_t n_ = 0;
  std::vector<float> reprs_;           // [n, dim]
  std::vector<float> gmin_, gmax_;     // [groups, dim]
  mutable int64_t last_scored_ = 0;
};

}  // namespace lc
