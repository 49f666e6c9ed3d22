// What a block memory's retrieval did, search by search: the blocks each search chose and their
// scores, and — when the caller says where a needle (a passage it expects to be retrieved) lies —
// where the needle's blocks ranked under the exact score (summed over heads and per head) and
// under the index. This tells a scoring failure (the needle's exact rank is beyond topk) from a
// search failure (the exact score ranks it inside topk, the index does not return it).
#pragma once

#include <cstdint>
#include <vector>

namespace lc {

struct RetrievalEvent {
  int layer = 0;
  int64_t pos = 0;              // absolute position of the first query of the search
  int64_t n_queries = 0;        // queries whose mean searched (1 while decoding)
  int64_t n_blocks = 0;         // blocks in the layer's memory
  std::vector<int64_t> chosen;  // block ids attended, best first
  std::vector<float> scores;    // their exact scores (the search's combined score)
  // Per needle block (ids overlapping the needle's tokens, formed so far).
  struct Needle {
    int64_t block = 0;
    int64_t rank_exact = 0;          // 0 = best block under the exact combined score
    int64_t rank_index = -1;         // place in what the search returned, -1 = not returned
    std::vector<int64_t> rank_head;  // exact rank under each query head's own score
    bool chosen = false;             // attended (also as a neighbour of a returned block)
  };
  std::vector<Needle> needle;
};

// Receives the events of a memory's searches (from the thread that runs the session).
class RetrievalTrace {
 public:
  virtual ~RetrievalTrace() = default;
  // The needle's token positions [first, last); first < 0: none.
  void set_needle(int64_t first, int64_t last) {
    needle_first_ = first;
    needle_last_ = last;
  }
  int64_t needle_first() const { return needle_first_; }
  int64_t needle_last() const { return needle_last_; }
  // Whether events should carry exact ranks of the needle's blocks (a scan of every block per
  // search; without it only `chosen` is filled for the needle blocks).
  virtual bool wants_ranks() const { return true; }
  // Whether events should carry the chosen blocks' scores (an extra dot product per block).
  virtual bool wants_scores() const { return true; }
  virtual void record(const RetrievalEvent& e) = 0;

 private:
  int64_t needle_first_ = -1, needle_last_ = -1;
};

}  // namespace lc
