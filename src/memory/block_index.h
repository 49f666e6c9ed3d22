// Top-k search of memory blocks by the inner product of a query with each block's representative
// vector.
//
// Exact search scores every block. The index search clusters the representatives: each new block
// joins the cluster with the nearest mean (L2), and a cluster that outgrows `group_size` members
// is split in two by a few 2-means steps, until there are `max_clusters` clusters (after that
// clusters only grow). Every cluster keeps the per-dimension minimum and maximum of its members,
// which bound any member's score from above: sum_d max(q_d * min_d, q_d * max_d). Clusters are
// visited from two orders, their members scored exactly: three of every four visits by an
// estimate of the cluster's best member, q.m + 0.1 |q|.r (m the mean, r the per-dimension reach of
// the members from it: a crowd of blocks like the query), the fourth by the optimistic score
// q.m + |q|.r, which no member exceeds (a cluster holding one block much more query-like than the
// rest, which the mean hides). A cluster whose bound cannot beat the current k-th score is skipped
// (first by its optimistic score, from bytes, with a margin for their rounding; then by its box);
// the search stops when no cluster left has an optimistic score that could beat the k-th (then
// the result is the exact top-k, as far as the margin covers the bytes' rounding), or when
// `max_scored` blocks were scored / `max_groups` clusters visited (approximate, bounded work).
//
// Chunks. A cluster's members are kept in chunks of group_size (whole pages), each with its own
// min/max box. Once clusters stop splitting they grow, so a cluster that has grown by a quarter
// since its members were last placed is ordered again (recursive halving along the line between
// two far-apart members, cut at a multiple of the chunk), which keeps each chunk's members alike;
// a visit bounds the chunks and scores, best box first, only those that could beat the k-th.
//
// Storage. What the search reads for every query is in RAM: the cluster means and reaches as
// bytes (a scale per dimension), in tiles of 64 clusters, so that one pass of integer
// multiply-adds (VNNI where present) scores all clusters, and each cluster's box (f32 minima and
// maxima, together), read only for the clusters the search reaches. The byte scores only order
// the visits; members are scored exactly. The means are also kept in half precision, by
// dimension, for placing new blocks.
// The representatives themselves are read only for the clusters a search visits: each cluster's
// members fill pages of `page_reps` representatives, kept in a BlockStore (RAM under the page
// budget, least recently used pages in its spill file). A cluster's last page may be partly
// filled: a new member extends it (BlockStore::extend; a spilled page is read back and later
// rewritten in place). RAM therefore holds a few bytes per block (its id in its cluster's list)
// plus a fixed amount per cluster, not dim floats per block.
//
// Lanes. A search splits the clusters into two contiguous ranges, each searched on its own (its own
// byte scores, orders, top k and half of the caps) on the pool's threads, and merges the two
// top k. A lane first visits its best two clusters; the better of the two lanes' k-th scores is
// then a floor for both (the other lane holds k blocks above it). The result depends only on the
// lanes' work, never on the thread count or timing. Each lane proves only its own top k, so the two
// score more than one search would (at 1.3M tokens, 628 representatives against 581).
//
// Work per search: 2 x max_clusters byte scores (SIMD), a few bounds and
// at most about max_scored member scores, whatever the number of blocks; per add: one distance per
// cluster (+ a split now and then, O(group_size) distances, while clusters are fewer than
// max_clusters).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "memory/block_store.h"

namespace lc {

struct BlockIndexOptions {
  int64_t dim = 0;              // representative length (n_head * head_dim)
  int64_t group_size = 32;      // members per cluster before it splits
  int64_t max_clusters = 1024;  // clusters stop splitting at this count
  int64_t max_groups = 0;       // most clusters visited per search (0 = no cap)
  int64_t max_scored = 0;       // most blocks scored per search (0 = no cap); the chunk that
                                // crosses it is finished, and at least k are always scored
  bool exact = false;           // score every block (reference)
  // A new block farther from its nearest mean than sqrt(outlier) times that cluster's RMS radius
  // (at least half the typical distance of a new block to its nearest mean, so that small
  // variations of repeated text do not count) starts a cluster of its own: an unusual block (a
  // needle in repeated text) then has a mean of its own instead of hiding in a crowd. Splits stop
  // at 7/8 of max_clusters; the last eighth is kept for such blocks. 0 = off.
  float outlier = 16.0f;
  int64_t page_reps = 16;  // representatives per page
  // Where full pages live: mem_budget bounds their bytes in RAM (0 = never spill), spill_dir and
  // max_spill_bytes as for blocks. Pages are stored as f32 whatever spill_type says (the search
  // must read back exactly what the cluster bounds were computed from).
  BlockStoreOptions pages;
};

// How a block scores: q.r by default. With n > 1 slices: the maximum over h of
// q_h.r_h - off[h], q_h and r_h the h-th of n equal slices of the query and the representative
// (per-head scores combined by their maximum, memory/block_retrieval.h). The search works the
// same way for both: cluster scores and bounds are taken per slice and combined by the maximum
// (each is an upper bound or estimate per slice, so their maximum is one for the maximum), and
// members are scored exactly — one search, not one per slice.
struct BlockSlices {
  int64_t n = 1;
  const float* off = nullptr;  // n offsets (nullptr = zeros)
};

class BlockIndex {
 public:
  explicit BlockIndex(const BlockIndexOptions& opt);
  ~BlockIndex();

  void add(const float* repr);  // block id = insertion order
  int64_t size() const { return n_; }

  // The block's representative (finds its cluster and page: for tests and inspection, not fast).
  std::vector<float> repr(int64_t id) const;
  // The representatives of blocks [first, last), in order (one pass over the clusters).
  std::vector<float> reprs(int64_t first, int64_t last) const;

  using Slices = BlockSlices;
  // The ids of the k best blocks, sorted by decreasing score (all blocks when k >= size()).
  // With `scores`, also their scores; with `rows`, their representatives (dim floats each, in
  // the same order).
  std::vector<int64_t> top_k(const float* q, int64_t k, std::vector<float>* scores = nullptr,
                             Slices slices = {}, std::vector<float>* rows = nullptr) const;
  std::vector<int64_t> top_k_exact(const float* q, int64_t k, std::vector<float>* scores = nullptr,
                                   Slices slices = {}, std::vector<float>* rows = nullptr) const;
  // The representatives of these blocks (no id twice), in the order given (one pass over the
  // clusters).
  std::vector<float> rows_of(const std::vector<int64_t>& ids) const;

  // A search's candidate: score, block id, and its representative in a pinned page.
  struct Entry {
    float score;
    int64_t id;
    const float* row;
  };

  // Work of the last search (for measurements and tests): representatives scored, and cluster
  // scores computed (means and bounds, in dot products of dim).
  int64_t last_scored() const { return last_scored_; }
  int64_t last_bounds() const { return last_bounds_; }
  int64_t clusters() const { return static_cast<int64_t>(clusters_.size()); }
  int64_t largest_cluster() const;  // members of the largest cluster
  size_t bytes_in_ram() const;      // cluster summaries, member lists, resident pages
  const BlockStore& page_store() const { return *pages_; }
  void clear();

 private:
  struct Cluster {
    std::vector<int32_t> ids;    // members in page order
    std::vector<int64_t> pages;  // page ids in pages_: members [i * page_reps, (i+1) * page_reps)
    int64_t split_at = 0;        // split when it has more members than this
    bool point = true;           // every member has the same representative (repeated text)
    float spread = 0;            // mean squared distance of members to the mean (when joining)
    // Per chunk of chunk_ consecutive members (chunk_ / page_reps whole pages): the minima, then
    // the maxima, of its members (dim each).
    std::vector<float> chunk_box;
    int64_t order_at = 0;  // members placed in order again when the cluster has more than this
    int64_t size() const { return static_cast<int64_t>(ids.size()); }
  };
  uint16_t* mean_row(int64_t e) { return mean_.data() + e * cap_; }
  const uint16_t* mean_row(int64_t e) const { return mean_.data() + e * cap_; }
  // Byte (c, e) of a tiled [clusters x dim] matrix (kernels/ops.h: dot_tiles_u8s8).
  size_t tile_at(int64_t c, int64_t e) const {
    return static_cast<size_t>((c / 64) * k4_ * 256 + (e / 4) * 256 + (c % 64) * 4 + e % 4);
  }
  float reach(int64_t c, int64_t e) const;  // max |member - mean| in dimension e
  void put_mean8(int64_t c, int64_t e);
  void put_reach8(int64_t c, int64_t e);
  void quantize(int64_t c);  // cluster c's mean and reach bytes (rescaling a dimension if needed)
  float* box(int64_t c) { return box_.data() + c * 2 * opt_.dim; }  // minima, then maxima
  const float* box(int64_t c) const { return box_.data() + c * 2 * opt_.dim; }
  // The bound on a member's score from a box (minima, then maxima), for the query split into
  // q_pos_ and q_neg_.
  float bound(const float* box) const;
  void reorder(int64_t c);
  int64_t new_cluster();
  int64_t nearest(const float* x, float* dist2) const;
  void append(int64_t c, int32_t id, const float* r);  // member, pages and summary
  void write_members(int64_t c, const std::vector<int32_t>& ids, const float* reps);
  void gather(int64_t c, std::vector<float>& reps) const;  // every member's representative
  // Copies each block's representative to out + place(id) * dim, skipping blocks placed at -1;
  // reads only the pages holding a placed block.
  template <typename Place>
  void copy_rows(Place place, float* out) const;
  struct Top;
  struct Lane;
  // Scores cluster c's members into top (lane: the scratch of the thread that runs it); with
  // prune, only the chunks whose box could beat the k-th score, best box first, and once the top
  // is full no more than about `budget` members. Returns the number scored.
  int64_t score_members(int64_t c, const float* q, Top& top, Lane& lane, bool keep_pinned,
                        bool prune, int64_t budget) const;
  // A lane's part of top_k: its clusters' byte scores and orders (start_lane: at most `probe`
  // clusters taken, `max_visits` visited and about `budget` members scored, 0 = no cap), then
  // visits best first into lane.heap (visit_lane: until `visits` clusters were visited and the
  // top is full, 0 = to the end; members below `floor` cannot enter).
  void start_lane(Lane& lane, int64_t probe, int64_t max_visits, int64_t budget) const;
  void visit_lane(Lane& lane, const float* q, int64_t k, float floor, int64_t visits) const;
  void split(int64_t c);

  BlockIndexOptions opt_;
  int64_t chunk_ = 0;  // members per chunk: group_size rounded up to whole pages
  int64_t n_ = 0;
  double typical_d2_ = 0;  // mean squared distance of new blocks to their nearest mean
  std::vector<Cluster> clusters_;
  int64_t cap_ = 0;             // columns allocated in mean_ (a multiple of 64)
  std::vector<uint16_t> mean_;  // [dim][cap] half precision
  // The scores that order the visits, from bytes: mean_e ~ scale_m_[e] * (mean8 - 128) and
  // reach_e ~ scale_r_[e] * reach8 (rounded up), in tiles of 64 clusters (dot_tiles_u8s8). A scale
  // only grows (the dimension's bytes are then recomputed).
  int64_t k4_ = 0;  // dim / 4 rounded up
  std::vector<uint8_t> mean8_, reach8_;
  std::vector<float> scale_m_, scale_r_;
  std::vector<float> box_;             // [clusters][2 * dim]: minima then maxima
  std::vector<float> mean_norm_;       // |mean|^2 per cluster (nearest-mean search)
  std::unique_ptr<BlockStore> pages_;  // searches pin pages: logically const
  // scratch (searches are logically const)
  mutable std::vector<float> tmp_, q_pos_, q_neg_;
  mutable Slices slices_;  // of the search running
  // Scores of n rows of representatives under slices_ (q.r when one slice).
  void score_rows(const float* rows, int64_t n, const float* q, float* out) const;
  // The query in bytes, per slice for the means then the reaches (4 * k4_ each), with the unit of
  // one byte of each and the sum of the means' bytes.
  mutable std::vector<int8_t> q8_;
  mutable std::vector<float> q8_unit_;
  mutable std::vector<int32_t> q8_sum_;
  struct Queue;  // clusters best first by one of their scores
  // A search splits the clusters into kLanes contiguous ranges searched independently (on the
  // pool's threads when there are several) and merges their top k: always kLanes, whatever the
  // thread count, so that a search's result does not depend on it.
  static constexpr int64_t kLanes = 2;
  static constexpr int64_t kFirstVisits = 2;  // clusters a lane visits before the lanes compare
  mutable std::vector<Lane> lanes_;
  mutable std::vector<const uint16_t*> rows_;
  mutable std::vector<Entry> heap_;
  mutable std::vector<BlockView> views_;
  mutable int64_t last_scored_ = 0, last_bounds_ = 0;
};

}  // namespace lc
