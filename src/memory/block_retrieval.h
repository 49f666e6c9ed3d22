// Which memory blocks a query block attends (InfLLM retrieval, docs/memory.md): one layer's block
// index plus the statistics of its representatives, and the selection rules on top of the search.
//
// Score. A block's representative is one vector per query head (the mean of its most-attended
// keys). InfLLM scores a block by q.r summed over heads, q the mean query of the execution block
// (HeadScore::Sum). Heads differ in scale and spread, and a passage that matters is often singled
// out by one or two heads only (a retrieval head) while the others rank it anywhere: in the sum
// it is drowned. Each head's score is therefore standardised over the stored blocks, z_h(b) =
// (q_h.r_h(b) - q_h.mu_h) / sigma_h with sigma_h = sqrt(q_h' C_h q_h), mu_h and C_h the mean and
// covariance of head h's representatives (running sums, head_dim^2 per head), and combined either
// by a sum (HeadScore::Norm: still one inner product with a reweighted query) or by the maximum
// over heads (HeadScore::Max, the default: a block any head singles out ranks high). The maximum
// is searched in one index search (BlockIndex::Slices): clusters are ordered and bounded by the
// maximum over heads of their per-head scores and bounds, members scored exactly by the maximum,
// within the index's budget of scored blocks — the same work as one plain search.
//
// Neighbours. A passage that matters (a needle) often straddles block boundaries: the best
// block holds part of it, its neighbours the rest. The blocks adjacent to the `neighbors` best
// blocks join the selection (taking the places of the lowest-ranked ones, so topk blocks are
// attended as before).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "memory/block_index.h"
#include "memory/retrieval_trace.h"

namespace lc {

enum class HeadScore { Sum, Norm, Max };
const char* head_score_name(HeadScore s);

struct BlockRetrievalOptions {
  int64_t n_head = 0, head_dim = 0;
  int64_t topk = 0;
  HeadScore head_score = HeadScore::Max;
  int64_t neighbors = 0;   // best blocks whose adjacent blocks join the selection
  int64_t pool = 0;        // candidates a keeping search keeps for reselect() (>= topk)
  int64_t block_size = 0;  // tokens per block, and the position of block 0's first token
  int64_t first_pos = 0;   // (for the trace's needle)
  bool measure_recall = false;
};

// Counters of the searches (summed over layers by the memory).
struct RetrievalCounters {
  int64_t searches = 0, scored = 0, bounds = 0, recall_hits = 0, recall_total = 0;
};

class BlockRetrieval {
 public:
  BlockRetrieval(const BlockIndexOptions& index, const BlockRetrievalOptions& opt);
  ~BlockRetrieval();

  void add(const float* repr);  // a new block's representative (id = insertion order)
  // Keeps blocks [0, n) only: the index and the running sums are built again from their
  // representatives, in order, which gives what adding only those would have built (adding is
  // deterministic). lc::Error if a page of representatives cannot be read or written; the
  // retrieval is then unusable (its owner resets).
  void truncate(int64_t n);
  int64_t size() const { return index_->size(); }
  const BlockIndex& index() const { return *index_; }

  // The blocks the n queries q [n x n_head*head_dim] attend, in ascending id order, into `out`.
  // Events go to `trace` when given (layer and pos identify the search). With keep_pool the
  // search finds the `pool` best blocks, attends the topk best of them and keeps all of them as
  // candidates for reselect(); without, the candidates are dropped.
  void select(const float* q, int64_t n, std::vector<int64_t>& out, RetrievalCounters& c,
              RetrievalTrace* trace, int layer, int64_t pos, bool keep_pool = false);
  // The same choice for one query among the kept candidates only, scored exactly (a fixed amount
  // of work at any length; blocks added since the search are not among them). False, choosing
  // nothing, when there are none.
  bool reselect(const float* q, std::vector<int64_t>& out, RetrievalTrace* trace, int layer,
                int64_t pos);
  // The kept candidates (for saved state), and setting them again (their representatives are
  // read from the index; lc::Error for an unknown block or one listed twice).
  const std::vector<int64_t>& pool() const { return pool_; }
  void set_pool(std::vector<int64_t> ids);

  // The combined score of a block with representative r for the mean query q_bar, and the k
  // best blocks by it scoring every block (the reference the search must equal; for tests).
  float score(const float* q_bar, const float* r);
  std::vector<int64_t> top_k_exact(const float* q_bar, int64_t k, std::vector<float>* scores);

 private:
  void standardise(const float* q_bar);    // sigma_ and mu_ for this query
  float combine(const float* dots) const;  // per-head dots q_h.r_h -> the combined score
  void head_dots(const float* q_bar, const float* r, float* dots) const;  // q_h.r_h per head
  // The k best blocks by the combined score, through the index (or scoring every block).
  void search(int64_t k, bool exact, std::vector<int64_t>& ids, std::vector<float>& scores,
              RetrievalCounters* c, std::vector<float>* rows = nullptr);
  // The topk blocks to attend from blocks ranked best first (neighbours joining), ascending.
  void choose(const std::vector<int64_t>& ranked, std::vector<int64_t>& out) const;
  void emit(RetrievalTrace& trace, const std::vector<int64_t>& ranked,
            const std::vector<int64_t>& chosen, int layer, int64_t pos, int64_t n) const;

  BlockRetrievalOptions opt_;
  std::unique_ptr<BlockIndex> index_;
  // Running sums of the representatives, per head: sum r [n_head * hd] and sum r r'
  // [n_head * hd * hd] (double: millions of blocks).
  std::vector<double> sum_, outer_;
  int64_t count_ = 0;
  std::vector<float> q_bar_, qs_, dots_, off_;
  std::vector<double> sigma_, mu_;  // per head, for the current query
  std::vector<int64_t> pool_;       // candidates kept by the last keeping search
  std::vector<float> pool_rows_;    // their representatives
  std::vector<std::pair<float, int64_t>> pool_scores_;
};

}  // namespace lc
