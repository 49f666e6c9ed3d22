// Pieces shared by the memories' save_state / load_state (see kv_memory.h MemorySave): RoPE
// tables in a record, and the list of immutable segment objects a memory has written — each holds
// what was appended over a range of rows or blocks, so a save writes only what is new.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/state_io.h"
#include "kernels/rotary.h"
#include "memory/kv_memory.h"

namespace lc {

void put_table(ByteWriter& w, const RopeTable& t);
RopeTable get_table(ByteReader& r);

// What each memory writes first: its kind, and the dimensions its state was made with.
void put_memory_tag(ByteWriter& w, const std::string& kind, const MemoryDims& dims);
// lc::Error naming both when the state is of another kind or other dimensions.
void check_memory_tag(ByteReader& r, const std::string& kind, const MemoryDims& dims);

// Immutable objects holding items [first, last) (rows or blocks) of the memory, in order.
struct Segment {
  std::string key;
  int64_t first = 0, last = 0;
};

class Segments {
 public:
  int64_t saved() const { return list_.empty() ? 0 : list_.back().last; }
  void clear() { list_.clear(); }
  // Forgets the segments that hold items at or past n.
  void truncate(int64_t n);
  // Writes the segments for a save: each object missing from the store (another store, or one
  // that lost it) is made again with make(first, last) — the same bytes, the same key — and the
  // items [saved(), n) are added as new segments of at most max_items each (so that saving or
  // loading a long context holds one segment in RAM at a time, not the whole context); lists
  // them in out.refs and writes the list to out.head.
  void save(MemorySave& out, int64_t n, int64_t max_items,
            const std::function<std::vector<uint8_t>(int64_t, int64_t)>& make);
  // Items per segment for items of about this many bytes each (segments of about 64 MiB).
  static int64_t items_per_segment(size_t item_bytes);
  // Reads the list and hands each segment's verified bytes to use(first, last, bytes), in order;
  // the segments must cover [0, n) without gaps.
  void load(MemoryLoad& in, int64_t n,
            const std::function<void(int64_t, int64_t, const std::vector<uint8_t>&)>& use);

 private:
  std::vector<Segment> list_;
};

}  // namespace lc
