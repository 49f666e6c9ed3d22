// Tiered storage of InfLLM memory blocks: immutable once added; a hot set in RAM under a byte
// budget (LRU, never evicting a pinned block), the rest in a spill file on disk, optionally in a
// compact element type. Representative vectors are not stored here: they stay in RAM with the
// memory that indexes the blocks.
//
// Budget: mem_budget bounds the f32 K/V bytes of resident blocks. Adding or pinning evicts the
// least recently used unpinned blocks (recency = when a block was added, pinned or prefetched).
// Pinned blocks are never evicted: when the pinned set alone is larger than the budget, RAM
// temporarily exceeds it, and the excess is evicted on the next add / pin / unpin_all. A block is
// written to the spill file once, into a record sized for tokens_per_block tokens (blocks are
// immutable, except that extend() lets a block of a K-only store grow: it is then rewritten into
// the same record); evicting a block whose disk copy is current only frees RAM. A store that may
// spill in F16 or Q8_0 rounds each block to that type when it is added, so a block's values never
// depend on whether it was evicted.
//
// Spill file: created on the first eviction in spill_dir (default $TMPDIR, else /tmp; when
// mem_budget > 0 the constructor already checks that it is a writable directory) with
// mkstemp and unlinked at once, so it disappears with the process; spill_path() keeps the name it
// was created under. F32 is exact; F16 and Q8_0 are dequantized back to f32 when read (Q8_0 needs
// row_floats to be a multiple of 32). Any OS failure (directory missing or unwritable, disk full,
// read error) is an lc::Error naming the file and the OS error; a failed add() adds nothing.
//
// Threads: one owner thread calls the methods (they lock internally, so other threads may read the
// counters); prefetch() hands reads to one background worker, which pin() waits for or reuses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lc {

enum class SpillType { F32, F16, Q8_0 };
const char* spill_type_name(SpillType t);
SpillType spill_type_from_name(const std::string& name);  // "f32", "f16", "q8_0"; lc::Error else

struct BlockStoreOptions {
  int64_t tokens_per_block = 128;  // block_size
  int64_t row_floats = 0;          // floats per token row of K (and of V): n_head_kv * head_dim
  size_t mem_budget = 0;           // bytes of block K/V kept in RAM; 0 = unlimited (never spill)
  std::string spill_dir;           // directory for the spill file ("" = system temp dir)
  SpillType spill_type = SpillType::F16;
  size_t max_spill_bytes =
      0;               // quota on the spill file size (memory.spill_max); 0 = none. Reaching it
                       // is reported like a full disk ("No space left on device").
  bool values = true;  // false: blocks hold K rows only (add's v is null, views' v null)
};

// A block's keys and values as f32 rows: k[t * row_floats + e], v likewise.
struct BlockView {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t n = 0;  // tokens
};

class BlockStore {
 public:
  explicit BlockStore(const BlockStoreOptions& opt);
  ~BlockStore();
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  // Adds a block of n tokens (n <= tokens_per_block); returns its id (0, 1, 2, ...).
  // May evict unpinned blocks to disk to stay under the budget. lc::Error if the spill file cannot
  // be created or written (names the path and the OS error, e.g. disk full).
  int64_t add(const float* k, const float* v, int64_t n);

  // Appends n rows to an unpinned block of a store without values (the block stays under
  // tokens_per_block rows): it is read back if cold, and its disk copy, if any, is rewritten in
  // place when it is evicted next. For the block index's pages, which grow one row at a time.
  void extend(int64_t id, const float* k, int64_t n);

  // Makes the blocks resident (reading them back from disk when needed) and pins them until the
  // next call to pin() without keep_pinned, or unpin_all(); keep_pinned adds them to the blocks
  // pinned already. Returned views are valid while pinned. ids may repeat.
  // lc::Error if a block cannot be read back (or an eviction cannot be written).
  std::vector<BlockView> pin(const std::vector<int64_t>& ids, bool keep_pinned = false);
  void pin_into(const int64_t* ids, int64_t n, bool keep_pinned, std::vector<BlockView>& views);
  void unpin_all();  // also evicts down to the budget, so it may throw like add()

  // The block is never needed again: its RAM is freed and it is never written (an unpinned block;
  // pinning it afterwards is a programming error).
  void release(int64_t id);

  // Hint: these blocks are likely needed soon; reads them in the background where possible.
  // A prefetch may evict least recently used unpinned blocks (never pinned ones, nor blocks of the
  // same prefetch call); it is skipped when that cannot make room within the budget. Read errors in
  // the background are dropped: the next pin() of the block reads it again and reports them.
  // A newer prefetch() replaces the hints of earlier calls that were not started yet.
  void prefetch(const std::vector<int64_t>& ids);
  void wait_prefetch();  // blocks until every queued prefetch is done (tests, measurements)

  // The element type the blocks' values are exact in: the spill type when the store may spill
  // (mem_budget > 0; blocks are rounded to it when added, so that evicting one never changes its
  // values), f32 otherwise.
  SpillType value_type() const;
  // Copies a block's values (K rows then V rows, as f32) without changing what is resident.
  // lc::Error if it cannot be read back from disk.
  void read(int64_t id, std::vector<float>& kv) const;

  int64_t size() const;                   // number of blocks
  size_t bytes_in_ram() const;            // resident block data
  size_t bytes_on_disk() const;           // spill file size
  int64_t reads_from_disk() const;        // blocks read back so far (for measurements)
  int64_t writes_to_disk() const;         // blocks written to the spill file so far
  bool is_resident(int64_t id) const;     // the block's data is in RAM now
  const std::string& spill_path() const;  // "" until something spilled
  void clear();  // drops every block and the spill file (read/write counters keep counting)
  // Drops blocks [n, size()) (0 <= n <= size()), pinned or not: their RAM is freed and their spill
  // records are given back (the file shrinks to the last record still used; the records in between
  // are reused by later evictions). Ids restart at n. Views of dropped blocks become invalid.
  void truncate(int64_t n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lc
