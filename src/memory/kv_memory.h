// The KV-memory interface every architecture's attention goes through.
//
// A model layer hands the memory its new queries, keys and values (all UNROTATED); the memory
// stores what it keeps, decides which keys each query sees at which relative positions, rotates
// them with the RoPE table in effect, and runs the shared tiled attention kernel over the pieces
// it chooses. Model code therefore never knows whether the cache is full, a sliding window with
// sinks, or a block memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/object_store.h"
#include "core/state_io.h"
#include "kernels/attention.h"
#include "kernels/rotary.h"
#include "kernels/scratch.h"
#include "memory/retrieval_trace.h"

namespace lc {

// What one forward step tells the memory.
struct MemoryStep {
  int64_t pos0 = 0;                 // absolute position of the first new token
  int64_t n = 0;                    // number of new tokens in this step
  const RopeTable* rope = nullptr;  // table in effect for this step (may change between steps)
  // Scratch of the kernels the memory runs (the session's workspace); null: the memory's own.
  KernelScratch* scratch = nullptr;
};

// Saving a memory's contents (engine/session_state.h saves whole sessions): the memory writes its
// small part to `head` and its bulk as objects of `store` in namespace `ns`, reusing the objects
// it wrote before for what has not changed (blocks and rows are immutable once written), and lists
// in `refs` every object its state needs.
struct MemorySave {
  ObjectStore& store;
  std::string ns;
  ByteWriter& head;
  std::vector<std::string>& refs;
};
struct MemoryLoad {
  const ObjectStore& store;
  ByteReader& head;
};

class KvMemory {
 public:
  virtual ~KvMemory() = default;
  virtual std::string name() const = 0;

  // Attention for the step's n new tokens in `layer`: q [n, n_head*head_dim], k and v
  // [n, n_head_kv*head_dim], unrotated. Stores k/v as the policy dictates and writes the attention
  // output (before the output projection) to out [n, n_head*head_dim]. q may be modified.
  virtual void attend(int layer, const MemoryStep& step, float* q, const float* k, const float* v,
                      float* out) = 0;
  // Called once all layers have processed the step.
  virtual void commit(const MemoryStep& step) = 0;
  // Forgets everything.
  virtual void reset() = 0;
  // Tokens seen so far (the absolute position of the next token).
  virtual int64_t n_past() const = 0;
  // Bytes of KV data held in RAM.
  virtual size_t bytes_in_ram() const = 0;
  // The largest query-key distance this memory ever presents to attention (0 = unbounded). The
  // session computes length-dependent RoPE tables (dynamic NTK, LongRoPE) for at most this length.
  virtual int64_t max_distance() const { return 0; }
  // Whether a prompt's last token is fed in a step of its own (Session::prefill_step_size): a
  // memory that retrieves with each step's queries (InfLLM) then answers the last token with its
  // own query. Full attention gives the last token the same keys in either case, and feeds it
  // with the chunk before it (one forward pass less).
  virtual bool last_token_alone() const { return true; }
  // A one-line account of the memory's state for diagnostics (tokens, blocks, retrieval...).
  virtual std::string stats_line() const {
    return name() + ": " + std::to_string(n_past()) + " tokens";
  }
  // Restarts the counters stats_line() averages (searches, timings), keeping the contents.
  virtual void reset_stats() {}
  // Blocks read back from disk so far, all layers (memories that spill; 0 for the others).
  virtual int64_t blocks_read_from_disk() const { return 0; }
  // Bytes of KV data in the memory's spill files.
  virtual size_t bytes_on_disk() const { return 0; }
  // Where retrieving memories report their searches (retrieval_trace.h); null: nowhere. Others
  // retrieve nothing and ignore it.
  virtual void set_retrieval_trace(std::shared_ptr<RetrievalTrace>) {}

  // Saves the contents (see MemorySave). lc::Error if an object cannot be written or read back.
  virtual void save_state(MemorySave& out) = 0;
  // Restores contents saved by a memory of the same kind and settings into this one, which must be
  // empty (n_past() == 0). lc::Error naming the problem for a state that does not fit (another
  // kind, other dimensions, a corrupt or missing object); the memory is then reset.
  virtual void load_state(MemoryLoad& in) = 0;
  // Forgets every token from position n on (0 <= n <= n_past()), as if they had never come. False
  // when this memory cannot (what those tokens changed cannot be undone); nothing changes then.
  // A memory that must read data back (spilled blocks) may throw lc::Error; it is then reset.
  virtual bool truncate(int64_t n) {
    (void)n;
    return false;
  }

 protected:
  // The kernels' scratch for a step: the caller's, or when it passed none the memory's own.
  KernelScratch& kernel_scratch(const MemoryStep& step) {
    return step.scratch != nullptr ? *step.scratch : own_scratch_;
  }

 private:
  KernelScratch own_scratch_;
};

struct MemoryDims {
  int n_layer = 0;
  AttnDims attn;
};

}  // namespace lc
