// Bounded-position KV memories: StreamingLLM (attention sinks + a local window) and InfLLM
// (sinks + local window + top-k memory blocks retrieved by representative tokens, blocks kept in
// a tiered RAM/disk store). See docs/algorithms.md section 1 and docs/memory.md.
//
// Positions. Keys of the local window keep their absolute positions (rotated once when they
// arrive; only distances matter to RoPE, so this equals InfLLM's window-relative rotation) and a
// query attends them only within distance < n_local. Every other key it sees — sinks, retrieved
// blocks, and remainder tokens that left the window but are not yet in a block — is stored
// unrotated and seen from one fixed query angle: InfLLM puts all of them at distance n_local - 1
// (keys at position 0, query at n_local - 1); StreamingLLM puts sink j at position j and the query
// at n_init + n_local - 1, so sinks sit at distances n_local .. n_local + n_init - 1. No distance
// ever exceeds n_local + n_init + exec_block, whatever the input length.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "memory/block_retrieval.h"
#include "memory/block_store.h"
#include "memory/kv_memory.h"
#include "memory/memory_state.h"

namespace lc {

struct ContextMemoryOptions {
  bool infllm = true;             // false: StreamingLLM (no blocks, evicted tokens are dropped)
  int64_t n_init = 128;           // attention sinks
  int64_t n_local = 4096;         // local window
  int64_t block_size = 128;       // tokens per memory block
  int64_t topk = 16;              // blocks retrieved per execution block
  int64_t repr_topk = 4;          // representative tokens per block and head
  int64_t exec_block = 512;       // most query tokens processed at once
  bool exact_retrieval = false;   // score every block's representative (else two-level index)
  int64_t index_group = 32;       // members per cluster of the index before it splits
  int64_t index_max_groups = 0;   // clusters visited per search (0 = no cap)
  int64_t index_clusters = 1024;  // clusters of the index at most (bounds computed per search)
  // Blocks scored per search after the cluster bounds (0 = no cap: the bound search is exact).
  int64_t index_budget = 2048;
  bool measure_recall = false;  // also run exact search and count agreement (slow; measurements)
  HeadScore head_score = HeadScore::Max;  // how per-head block scores combine (block_retrieval.h)
  int64_t neighbors = 0;                  // best blocks whose adjacent blocks are attended too
  // The blocks a decoding step (one token) at position p searched serve the decoding steps at
  // p + 1 .. p + interval - 1 too (1 = every step searches). Steps of several tokens (a prompt's
  // execution blocks) always search, and a rollback forgets the reusable blocks: what a step
  // attends depends only on the tokens read and the decoding steps since the last search.
  int64_t retrieval_interval = 1;
  // tokens_per_block and row_floats are filled in; mem_budget (all layers) is shared between
  // blocks and the index's pages of representatives (share_budget).
  BlockStoreOptions store;
};

// How memory.mem_budget (all layers) is shared: per layer, between the index's pages of
// representatives and the blocks, in proportion to what one decoding step reads of each (the
// representatives a search typically scores, the topk blocks; bytes; 0 = no limit). A step's
// searches revisit the clusters of the steps before it and its blocks are often the ones the steps
// before it attended, so RAM goes where a step reads most. Decoding 1,024 greedy tokens from a
// saved 1M session of natural text (passkey-llama-tiny, 64 MiB), a third for the pages read 5.8
// blocks and 27.9 pages of 16 representatives back per token, 358 KiB; the share by what a step
// reads (0.77 for the pages) 13.8 blocks and 6.5 pages, 134 KiB.
struct BudgetShare {
  size_t blocks = 0, pages = 0;
};
BudgetShare share_budget(size_t mem_budget, const ContextMemoryOptions& o, const MemoryDims& dims);

// The default memory.mem_budget: twice the RAM that keeps one decoding step off the disk, and at
// least 64 MiB — bounded whatever the length, with room for the blocks a step reads.
size_t default_mem_budget(const ContextMemoryOptions& o, const MemoryDims& dims);

// A warning when the budget cannot hold what one decoding step reads (the topk blocks of a layer,
// or the index pages one search scores): every step would then read them back from disk.
std::string budget_warning(const ContextMemoryOptions& o, const MemoryDims& dims);

// Checks the options against each other and the trained context (0 = unknown); lc::Error naming
// the settings and the failed constraint (e.g. "memory.exec_block = 1024 must be <=
// memory.n_local = 512").
void validate_context_memory(const ContextMemoryOptions& o, int64_t trained_ctx);

class ContextMemory final : public KvMemory {
 public:
  ContextMemory(const MemoryDims& dims, const ContextMemoryOptions& opt);
  ~ContextMemory() override;

  std::string name() const override { return opt_.infllm ? "infllm" : "streaming"; }
  void attend(int layer, const MemoryStep& step, float* q, const float* k, const float* v,
              float* out) override;
  void commit(const MemoryStep& step) override;
  void reset() override;
  int64_t n_past() const override { return n_past_; }
  size_t bytes_in_ram() const override;
  std::string stats_line() const override;
  void reset_stats() override;
  int64_t blocks_read_from_disk() const override;
  int64_t max_distance() const override { return opt_.n_local + opt_.n_init + opt_.exec_block; }
  size_t bytes_on_disk() const override;
  // State: counts and tables in the head; the sinks and the remainder (window included) in one
  // object; blocks with their representatives in segments of the blocks formed between saves (the
  // block index is rebuilt from them when loading: it depends only on the representatives).
  void save_state(MemorySave& out) override;
  void load_state(MemoryLoad& in) override;
  // InfLLM: always possible. The memory keeps the sinks and blocks a memory that read only n
  // tokens would hold, drops the later blocks (from the store, its spill file and the index) and
  // builds the remainder again from their K/V (as stored: rounded to the spill type when the store
  // rounds); those tokens' representative scores restart at zero, while the tokens that stay in
  // the remainder keep theirs (with what the forgotten queries added). lc::Error if a block or a
  // page of representatives cannot be read or written back: the memory is then reset.
  // StreamingLLM: possible while the tokens to forget are all in the remainder (those that left
  // the window before are gone); the window is then shorter than n_local until new tokens fill it.
  bool truncate(int64_t n) override;

  // Inspection for tests and measurements.
  struct LayerStats {
    int64_t n_init = 0, n_remainder = 0, n_blocks = 0;
    std::vector<int64_t> last_selected;  // block ids used by the last execution block
  };
  LayerStats stats(int layer) const;
  std::vector<float> block_repr(int layer, int64_t id) const;
  const BlockStore& store(int layer) const;
  int64_t blocks_scored() const { return counters_.scored; }
  int64_t searches() const { return counters_.searches; }
  // Layer steps that attended the blocks an earlier search chose (memory.retrieval_interval).
  int64_t reused_selections() const { return reused_; }
  // With measure_recall: fraction of exact top-k blocks the index search also returned.
  double recall() const {
    return counters_.recall_total ? double(counters_.recall_hits) / counters_.recall_total : 1.0;
  }
  void set_retrieval_trace(std::shared_ptr<RetrievalTrace> trace) override {
    trace_ = std::move(trace);
  }

 private:
  struct Layer;
  void attend_block(Layer& L, int layer, const MemoryStep& step, int64_t t0, int64_t n, float* q,
                    const float* k, const float* v, float* out);
  void form_blocks(Layer& L);
  void pin_selected(Layer& L);  // pins L.selected in the layer's store, into L.views
  void rerotate(Layer& L, const RopeTable& rt);

  MemoryDims dims_;
  ContextMemoryOptions opt_;
  int64_t n_past_ = 0;
  Segments saved_;                 // blocks already in immutable objects
  size_t index_budget_bytes_ = 0;  // per layer, for the index's pages (0 = no limit)
  std::vector<std::unique_ptr<Layer>> layers_;
  RetrievalCounters counters_;
  std::shared_ptr<RetrievalTrace> trace_;
  double search_us_ = 0, fetch_us_ = 0, form_us_ = 0;  // wall time (measurements)
  int64_t reused_ = 0, layer_steps_ = 0;
  // Blocks and index pages read back from disk, summed over the layers (infllm).
  std::pair<int64_t, int64_t> disk_reads() const;
  int64_t reads0_ = -1, page_reads0_ = -1;  // disk_reads() at reset_stats() (after use)
  // scratch
  std::vector<float> q_loc_, q_glob_, mass_;
  AttnState state_;
};

}  // namespace lc
