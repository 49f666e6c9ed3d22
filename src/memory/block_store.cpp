// BlockStore: the hot tier (resident blocks, an LRU list of the unpinned ones, a byte budget) and
// the prefetch worker; the cold tier is SpillFile.
//
// Invariants (all under Impl::mu):
//  - a block is Resident (data holds 2*n*row_floats floats), Cold (data empty, offset >= 0) or
//    Loading (the worker is reading it into a buffer it owns; no one else touches the block's
//    data);
//  - the LRU list holds exactly the Resident, unpinned blocks, least recently used first;
//  - bytes_in_ram counts Resident and Loading blocks;
//  - offset, once set, never changes: a block is written to the spill file at most once.
#include "memory/block_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kv_type.h"
#include "memory/spill_file.h"

namespace lc {

const char* spill_type_name(SpillType t) {
  switch (t) {
    case SpillType::F32:
      return "f32";
    case SpillType::F16:
      return "f16";
    case SpillType::Q8_0:
      return "q8_0";
  }
  return "?";
}

SpillType spill_type_from_name(const std::string& name) {
  std::string s = name;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "f32") return SpillType::F32;
  if (s == "f16") return SpillType::F16;
  if (s == "q8_0") return SpillType::Q8_0;
  fail_setting({"memory.spill_type"}, "memory.spill_type '", name,
               "' is unknown: expected f32, f16 or q8_0");
}

namespace {

// A mutex that spins a little before it sleeps. A search pins pages of one store from two threads
// (BlockIndex's lanes), each holding the lock for a few microseconds; putting a thread to sleep and
// waking it costs more than that (measured: 7,595 sleeps in 4,096 searches made the two lanes
// slower than one).
class Mutex {
 public:
  void lock() {
    for (int i = 0; i < 2000; ++i) {
      if (m_.try_lock()) return;
      cpu_relax();
    }
    m_.lock();
  }
  bool try_lock() { return m_.try_lock(); }
  void unlock() { m_.unlock(); }

 private:
  std::mutex m_;
};

TensorType tensor_type_of(SpillType t) {
  switch (t) {
    case SpillType::F32:
      return TensorType::F32;
    case SpillType::F16:
      return TensorType::F16;
    case SpillType::Q8_0:
      return TensorType::Q8_0;
  }
  return TensorType::F32;
}

const BlockStoreOptions& validated(const BlockStoreOptions& opt) {
  if (opt.tokens_per_block <= 0) {
    fail("block store: tokens per block must be positive, got ", opt.tokens_per_block);
  }
  if (opt.tokens_per_block > 65535) {
    fail("block store: at most 65535 tokens per block, got ", opt.tokens_per_block);
  }
  if (opt.row_floats <= 0)
    fail("block store: K/V row width must be positive, got ", opt.row_floats);
  if (opt.spill_type == SpillType::Q8_0 && opt.row_floats % 32 != 0) {
    fail_setting({"memory.spill_type"},
                 "memory.spill_type q8_0 needs the K/V row width (n_head_kv * head_dim = ",
                 opt.row_floats, ") to be a multiple of 32; use memory.spill_type f16 or f32");
  }
  if (opt.mem_budget != 0) {
    // The spill file itself is created lazily; a bad directory is reported now, not mid-run.
    const std::string dir = SpillFile::resolve_dir(opt.spill_dir);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      const int err = errno;
      fail_setting({"memory.spill_dir"}, "spill directory '", dir,
                   "' (memory.spill_dir) cannot be used: ", std::strerror(err));
    }
    if (!S_ISDIR(st.st_mode)) {
      fail_setting({"memory.spill_dir"}, "spill directory '", dir,
                   "' (memory.spill_dir) cannot be used: ", std::strerror(ENOTDIR));
    }
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      const int err = errno;
      fail_setting({"memory.spill_dir"}, "spill directory '", dir,
                   "' (memory.spill_dir) cannot be used: ", std::strerror(err));
    }
  }
  return opt;
}

// Freed block buffers kept for reuse (outside the budget): a decoding step at 1M tokens evicts and
// reads back a few dozen pages of representatives and blocks.
constexpr size_t kMaxSpareBuffers = 32;
constexpr uint32_t kNoSlot = 0xFFFFFFFFu;

}  // namespace

struct BlockStore::Impl {
  enum class State : uint8_t { Resident, Cold, Loading, Released };
  enum Flag : uint8_t { kPinned = 1, kDirty = 2 };  // dirty: the record on disk is out of date
  // 12 bytes a block: a million-token context has hundreds of thousands of them, nearly all cold.
  struct Block {
    uint32_t rec = kNoSlot;   // record number in the spill file (fixed-size records); none yet
    uint32_t slot = kNoSlot;  // into slots while Resident or Loading
    uint16_t n = 0;
    State state = State::Resident;
    uint8_t flags = 0;
    bool pinned() const { return flags & kPinned; }
  };
  static_assert(sizeof(Block) == 12);
  // What only a Resident or Loading block needs; resident unpinned blocks form the LRU list
  // (least recently used at head), linked through their slots.
  struct Slot {
    std::vector<float> data;  // K rows then V rows (K only without values)
    int64_t id = -1;
    uint32_t prev = kNoSlot, next = kNoSlot;
    bool in_lru = false;
    uint64_t prefetch_gen = 0;  // the prefetch() call that loaded it; 0 = none
  };

  explicit Impl(const BlockStoreOptions& o)
      : opt(validated(o)),
        row_floats(static_cast<size_t>(o.row_floats)),
        rows(o.values ? 2 : 1),
        spill(o.spill_dir, tensor_type_of(o.spill_type), o.row_floats, o.values ? 2 : 1,
              o.max_spill_bytes),
        record_bytes(spill.block_bytes(o.tokens_per_block)) {}

  ~Impl() {
    {
      std::lock_guard<Mutex> lk(mu);
      stop = true;
      queue.clear();
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
  }

  size_t floats_of(int64_t n) const { return rows * static_cast<size_t>(n) * row_floats; }
  // A store that may spill keeps its blocks' values as the spill type holds them from the start,
  // so that no value depends on whether (or when) a block was evicted.
  bool rounds() const { return opt.mem_budget != 0 && opt.spill_type != SpillType::F32; }
  void round(float* x, size_t n) {
    const KvType t = opt.spill_type == SpillType::F16 ? KvType::F16 : KvType::Q8_0;
    round_scratch.resize(kv_bytes(t, static_cast<int64_t>(row_floats)));
    for (size_t i = 0; i + row_floats <= n; i += row_floats) {
      kv_from_f32(t, x + i, round_scratch.data(), static_cast<int64_t>(row_floats));
      kv_to_f32(t, round_scratch.data(), x + i, static_cast<int64_t>(row_floats));
    }
  }
  size_t bytes_of(int64_t n) const { return floats_of(n) * sizeof(float); }
  bool over_budget(size_t extra) const {
    return opt.mem_budget != 0 && bytes_in_ram + extra > opt.mem_budget;
  }
  uint64_t offset_of(const Block& b) const { return uint64_t{b.rec} * record_bytes; }

  // --- helpers; the caller holds mu ---

  Block& block(int64_t id) { return blocks[static_cast<size_t>(id)]; }
  Slot& slot_of(int64_t id) { return slots[block(id).slot]; }

  uint32_t new_slot(int64_t id) {
    uint32_t s;
    if (!free_slots.empty()) {
      s = free_slots.back();
      free_slots.pop_back();
    } else {
      slots.emplace_back();
      s = static_cast<uint32_t>(slots.size() - 1);
    }
    slots[s].id = id;
    return s;
  }

  void free_slot(Block& b) {
    Slot& sl = slots[b.slot];
    LC_CHECK(!sl.in_lru);
    give_buffer(std::move(sl.data));
    sl.prefetch_gen = 0;
    sl.id = -1;
    free_slots.push_back(b.slot);
    b.slot = kNoSlot;
  }

  // A buffer of floats_of(n) floats, contents unspecified (every caller overwrites them): spare
  // buffers keep their full size, so taking one writes nothing.
  std::vector<float> take_buffer(int64_t n) {
    std::vector<float> buf;
    if (!spare.empty()) {
      buf = std::move(spare.back());
      spare.pop_back();
    } else {
      buf.reserve(floats_of(opt.tokens_per_block));
    }
    buf.resize(floats_of(n));
    return buf;
  }

  void give_buffer(std::vector<float>&& buf) {
    if (spare.size() < kMaxSpareBuffers && buf.capacity() >= floats_of(opt.tokens_per_block)) {
      buf.resize(floats_of(opt.tokens_per_block));
      spare.push_back(std::move(buf));
    } else {
      std::vector<float>().swap(buf);
    }
  }

  bool lru_empty() const { return lru_head == kNoSlot; }
  int64_t lru_front() const { return slots[lru_head].id; }

  void lru_push(int64_t id) {  // as most recently used
    const uint32_t s = block(id).slot;
    Slot& sl = slots[s];
    LC_CHECK(!sl.in_lru);
    sl.prev = lru_tail;
    sl.next = kNoSlot;
    (lru_tail == kNoSlot ? lru_head : slots[lru_tail].next) = s;
    lru_tail = s;
    sl.in_lru = true;
  }

  void lru_remove(int64_t id) {
    const uint32_t s = block(id).slot;
    if (s == kNoSlot) return;
    Slot& sl = slots[s];
    if (!sl.in_lru) return;
    (sl.prev == kNoSlot ? lru_head : slots[sl.prev].next) = sl.next;
    (sl.next == kNoSlot ? lru_tail : slots[sl.next].prev) = sl.prev;
    sl.prev = sl.next = kNoSlot;
    sl.in_lru = false;
  }

  // Writes the block's data to its record (a new one the first time), if the disk copy is
  // missing or out of date.
  void write_back(int64_t id) {
    Block& b = block(id);
    const float* data = slot_of(id).data.data();
    if (b.rec == kNoSlot) {
      b.rec = write_record(data, b.n);
    } else if (b.flags & kDirty) {
      spill.write_at(offset_of(b), data, b.n, encode_scratch);
      ++writes;
    }
    b.flags &= static_cast<uint8_t>(~kDirty);
  }

  // Writes a new block's data to a record given back by release() or truncate(), or else to a new
  // one at the end of the spill file; returns its number.
  uint32_t write_record(const float* data, int64_t n) {
    uint32_t rec;
    if (!free_recs.empty()) {
      rec = free_recs.back();
      spill.write_at(uint64_t{rec} * record_bytes, data, n, encode_scratch);
      free_recs.pop_back();
    } else {
      const uint64_t off = spill.append(data, n, encode_scratch, opt.tokens_per_block);
      LC_CHECK(off % record_bytes == 0 && off / record_bytes < kNoSlot);
      rec = static_cast<uint32_t>(off / record_bytes);
    }
    ++writes;
    return rec;
  }

  // Moves a resident unpinned block to the cold tier, writing it first when needed.
  // On a write error the block stays resident.
  void evict(int64_t id) {
    Block& b = block(id);
    LC_CHECK(b.state == State::Resident && !b.pinned());
    write_back(id);
    lru_remove(id);
    free_slot(b);
    b.state = State::Cold;
    bytes_in_ram -= bytes_of(b.n);
  }

  // Evicts least recently used blocks until `extra` more bytes fit, or nothing is left to evict.
  void evict_for(size_t extra) {
    while (over_budget(extra) && !lru_empty()) evict(lru_front());
  }

  // Reads a cold block back on the calling thread.
  void load_now(int64_t id) {
    LC_CHECK(block(id).state == State::Cold && block(id).rec != kNoSlot);
    const int64_t n = block(id).n;
    std::vector<float> buf = take_buffer(n);
    try {
      spill.read(offset_of(block(id)), n, buf.data(), read_scratch);
    } catch (...) {
      give_buffer(std::move(buf));
      throw;
    }
    Block& b = block(id);
    b.slot = new_slot(id);
    slots[b.slot].data = std::move(buf);
    b.state = State::Resident;
    bytes_in_ram += bytes_of(b.n);
    ++reads;
  }

  void unpin_locked() {
    for (int64_t id : pinned) {
      Block& b = block(id);
      b.flags &= static_cast<uint8_t>(~kPinned);
      if (b.state == State::Resident) lru_push(id);
    }
    pinned.clear();
  }

  void check_id(int64_t id) const { LC_CHECK(id >= 0 && static_cast<size_t>(id) < blocks.size()); }

  // Makes room for a prefetched block of `bytes` by evicting least recently used blocks that were
  // not loaded by the same prefetch call; false (evicting nothing) if that cannot make room.
  bool room_for_prefetch(size_t bytes, uint64_t gen) {
    if (!over_budget(bytes)) return true;
    const size_t need = bytes_in_ram + bytes - opt.mem_budget;
    size_t found = 0;
    victims.clear();
    for (uint32_t s = lru_head; s != kNoSlot && found < need; s = slots[s].next) {
      if (slots[s].prefetch_gen == gen) continue;
      victims.push_back(slots[s].id);
      found += bytes_of(block(slots[s].id).n);
    }
    if (found < need) return false;
    for (int64_t id : victims) evict(id);
    return true;
  }

  void worker_loop() {
    std::unique_lock<Mutex> lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return stop || !queue.empty(); });
      if (stop) return;
      const auto [id, gen] = queue.front();
      queue.pop_front();
      prefetch_one(lk, id, gen);
      cv.notify_all();  // a load finished, or the queue shrank (wait_prefetch)
    }
  }

  // Reads one cold block in the background: the I/O runs without the lock, the block marked
  // Loading (pin() waits for it, clear() waits for every load).
  void prefetch_one(std::unique_lock<Mutex>& lk, int64_t id, uint64_t gen) {
    if (static_cast<size_t>(id) >= blocks.size()) return;  // cleared meanwhile
    if (block(id).state != State::Cold) return;
    const int64_t n = block(id).n;
    const size_t bytes = bytes_of(n);
    std::vector<float> buf;
    try {
      if (!room_for_prefetch(bytes, gen)) return;
      buf = take_buffer(n);
    } catch (...) {
      return;  // a hint: pin() redoes the work and reports errors
    }
    const uint64_t offset = offset_of(block(id));
    block(id).state = State::Loading;
    bytes_in_ram += bytes;
    ++loading;

    lk.unlock();
    bool ok = true;
    try {
      spill.read(offset, n, buf.data(), worker_scratch);
    } catch (...) {
      ok = false;
    }
    lk.lock();

    Block& done = block(id);  // clear() waits for loads, so still there
    --loading;
    if (ok) {
      done.slot = new_slot(id);
      Slot& sl = slots[done.slot];
      sl.data = std::move(buf);
      sl.prefetch_gen = gen;
      done.state = State::Resident;
      ++reads;
      if (!done.pinned()) lru_push(id);
    } else {
      give_buffer(std::move(buf));
      done.state = State::Cold;
      bytes_in_ram -= bytes;
    }
  }

  const BlockStoreOptions opt;
  const size_t row_floats;
  const size_t rows;  // 2: K and V rows; 1: K only
  SpillFile spill;
  const size_t record_bytes;  // every block's record holds tokens_per_block tokens

  mutable Mutex mu;
  std::condition_variable_any cv;  // a load finished, the queue changed, or stop
  std::deque<Block> blocks;        // by id; a deque so growth never copies (or doubles) them all
  std::vector<Slot> slots;  // data of Resident blocks (Loading ones keep theirs in the worker)
  std::vector<uint32_t> free_slots;
  uint32_t lru_head = kNoSlot, lru_tail = kNoSlot;
  std::vector<int64_t> pinned;
  std::vector<uint32_t> free_recs;  // spill records of dropped blocks, lowest last (truncate)
  size_t bytes_in_ram = 0;
  int64_t reads = 0;
  int64_t writes = 0;
  std::vector<std::vector<float>> spare;  // reusable block buffers
  std::vector<float> staging;             // add() of a block that goes straight to disk
  std::vector<uint8_t> encode_scratch;    // spill writes (under mu)
  std::vector<uint8_t> read_scratch;      // owner-thread reads (under mu)
  std::vector<uint8_t> worker_scratch;    // worker reads (worker thread only)
  std::vector<int64_t> victims;           // room_for_prefetch (under mu)
  std::vector<uint8_t> round_scratch;     // add() (under mu)

  std::thread worker;
  std::deque<std::pair<int64_t, uint64_t>> queue;  // (block id, prefetch call)
  uint64_t gen = 0;
  int loading = 0;
  bool stop = false;
};

BlockStore::BlockStore(const BlockStoreOptions& opt) : impl_(std::make_unique<Impl>(opt)) {}

BlockStore::~BlockStore() = default;

int64_t BlockStore::add(const float* k, const float* v, int64_t n) {
  Impl& s = *impl_;
  LC_CHECK(k != nullptr && (v != nullptr) == s.opt.values);
  LC_CHECK(n > 0 && n <= s.opt.tokens_per_block);
  std::lock_guard<Mutex> lk(s.mu);
  const size_t half = static_cast<size_t>(n) * s.row_floats;
  const size_t bytes = s.bytes_of(n);
  s.evict_for(bytes);

  const int64_t id = static_cast<int64_t>(s.blocks.size());
  Impl::Block b;
  b.n = static_cast<uint16_t>(n);
  if (!s.over_budget(bytes)) {
    std::vector<float> data = s.take_buffer(n);
    std::memcpy(data.data(), k, half * sizeof(float));
    if (v) std::memcpy(data.data() + half, v, half * sizeof(float));
    if (s.rounds()) s.round(data.data(), data.size());
    b.slot = s.new_slot(id);
    s.slots[b.slot].data = std::move(data);
  } else {
    // Pinned blocks fill the budget (or the block alone exceeds it): straight to disk.
    s.staging.resize(s.floats_of(n));
    std::memcpy(s.staging.data(), k, half * sizeof(float));
    if (v) std::memcpy(s.staging.data() + half, v, half * sizeof(float));
    b.rec = s.write_record(s.staging.data(), n);
    b.state = Impl::State::Cold;
  }
  const bool resident = b.state == Impl::State::Resident;
  s.blocks.push_back(b);
  if (resident) {
    s.bytes_in_ram += bytes;
    s.lru_push(id);
  }
  return id;
}

SpillType BlockStore::value_type() const {
  return impl_->rounds() ? impl_->opt.spill_type : SpillType::F32;
}

void BlockStore::read(int64_t id, std::vector<float>& kv) const {
  Impl& s = *impl_;
  std::unique_lock<Mutex> lk(s.mu);
  s.check_id(id);
  s.cv.wait(lk, [&] { return s.block(id).state != Impl::State::Loading; });
  const Impl::Block& b = s.block(id);
  LC_CHECK(b.state != Impl::State::Released);
  kv.resize(s.floats_of(b.n));
  if (b.state == Impl::State::Resident) {
    const std::vector<float>& data = s.slots[b.slot].data;
    std::copy(data.begin(), data.end(), kv.begin());
  } else {
    s.spill.read(s.offset_of(b), b.n, kv.data(), s.read_scratch);
  }
}

void BlockStore::extend(int64_t id, const float* k, int64_t n) {
  Impl& s = *impl_;
  LC_CHECK(!s.opt.values && k != nullptr && n > 0);
  std::unique_lock<Mutex> lk(s.mu);
  s.check_id(id);
  LC_CHECK(!s.block(id).pinned() && s.block(id).state != Impl::State::Released);
  LC_CHECK(s.block(id).n + n <= s.opt.tokens_per_block);
  s.cv.wait(lk, [&] { return s.block(id).state != Impl::State::Loading; });
  const size_t more = s.bytes_of(n);
  if (s.block(id).state == Impl::State::Cold) {
    s.evict_for(s.bytes_of(s.block(id).n) + more);
    s.load_now(id);
  } else {
    s.lru_remove(id);
    s.evict_for(more);
  }
  Impl::Block& b = s.block(id);
  std::vector<float>& data = s.slots[b.slot].data;
  const size_t old = data.size();
  data.resize(old + static_cast<size_t>(n) * s.row_floats);  // within the reserved capacity
  std::memcpy(data.data() + old, k, static_cast<size_t>(n) * s.row_floats * sizeof(float));
  b.n = static_cast<uint16_t>(b.n + n);
  if (b.rec != kNoSlot) b.flags |= Impl::kDirty;
  s.bytes_in_ram += more;
  s.lru_push(id);
}

std::vector<BlockView> BlockStore::pin(const std::vector<int64_t>& ids, bool keep_pinned) {
  std::vector<BlockView> views;
  pin_into(ids.data(), static_cast<int64_t>(ids.size()), keep_pinned, views);
  return views;
}

void BlockStore::pin_into(const int64_t* ids, int64_t n_ids, bool keep_pinned,
                          std::vector<BlockView>& views) {
  Impl& s = *impl_;
  std::unique_lock<Mutex> lk(s.mu);
  for (int64_t i = 0; i < n_ids; ++i) {
    s.check_id(ids[i]);
    LC_CHECK(s.block(ids[i]).state != Impl::State::Released);
  }
  if (!keep_pinned) s.unpin_locked();
  const size_t first_new = s.pinned.size();
  size_t need = 0;
  for (int64_t i = 0; i < n_ids; ++i) {
    const int64_t id = ids[i];
    Impl::Block& b = s.block(id);
    if (b.pinned()) continue;  // repeated id, or pinned before
    b.flags |= Impl::kPinned;
    s.pinned.push_back(id);
    s.cv.wait(lk, [&] { return b.state != Impl::State::Loading; });
    if (b.state == Impl::State::Resident) {
      s.lru_remove(id);
    } else {
      need += s.bytes_of(b.n);
    }
  }
  s.evict_for(need);
  for (size_t i = first_new; i < s.pinned.size(); ++i) {
    // The lock was released while waiting above: the prefetch worker may have started loading a
    // block checked earlier. Wait for it, then read whatever is still cold.
    const int64_t id = s.pinned[i];
    Impl::Block& b = s.block(id);
    s.cv.wait(lk, [&] { return b.state != Impl::State::Loading; });
    if (b.state == Impl::State::Cold) s.load_now(id);
  }
  views.clear();
  views.reserve(static_cast<size_t>(n_ids));
  for (int64_t i = 0; i < n_ids; ++i) {
    const Impl::Block& b = s.block(ids[i]);
    const float* base = s.slots[b.slot].data.data();
    const float* v = s.opt.values ? base + static_cast<size_t>(b.n) * s.row_floats : nullptr;
    views.push_back(BlockView{base, v, b.n});
  }
}

void BlockStore::unpin_all() {
  Impl& s = *impl_;
  std::lock_guard<Mutex> lk(s.mu);
  s.unpin_locked();
  s.evict_for(0);
}

void BlockStore::release(int64_t id) {
  Impl& s = *impl_;
  std::unique_lock<Mutex> lk(s.mu);
  s.check_id(id);
  Impl::Block& b = s.block(id);
  LC_CHECK(!b.pinned());
  s.cv.wait(lk, [&] { return b.state != Impl::State::Loading; });
  if (b.state == Impl::State::Resident) {
    s.lru_remove(id);
    s.free_slot(b);
    s.bytes_in_ram -= s.bytes_of(b.n);
  }
  // Its record in the spill file is reused by a later write.
  if (b.rec != kNoSlot) s.free_recs.push_back(b.rec);
  b.rec = kNoSlot;
  b.state = Impl::State::Released;
}

void BlockStore::prefetch(const std::vector<int64_t>& ids) {
  Impl& s = *impl_;
  std::lock_guard<Mutex> lk(s.mu);
  for (int64_t id : ids) s.check_id(id);
  // Newer hints replace the ones not started yet.
  s.queue.clear();
  ++s.gen;
  for (int64_t id : ids) {
    if (s.block(id).state == Impl::State::Cold) s.queue.emplace_back(id, s.gen);
  }
  if (s.queue.empty()) return;
  if (!s.worker.joinable()) s.worker = std::thread([&s] { s.worker_loop(); });
  s.cv.notify_all();
}

void BlockStore::wait_prefetch() {
  Impl& s = *impl_;
  std::unique_lock<Mutex> lk(s.mu);
  s.cv.wait(lk, [&] { return s.queue.empty() && s.loading == 0; });
}

int64_t BlockStore::size() const {
  std::lock_guard<Mutex> lk(impl_->mu);
  return static_cast<int64_t>(impl_->blocks.size());
}

size_t BlockStore::bytes_in_ram() const {
  std::lock_guard<Mutex> lk(impl_->mu);
  return impl_->bytes_in_ram;
}

size_t BlockStore::bytes_on_disk() const {
  std::lock_guard<Mutex> lk(impl_->mu);
  return impl_->spill.size();
}

int64_t BlockStore::reads_from_disk() const {
  std::lock_guard<Mutex> lk(impl_->mu);
  return impl_->reads;
}

int64_t BlockStore::writes_to_disk() const {
  std::lock_guard<Mutex> lk(impl_->mu);
  return impl_->writes;
}

bool BlockStore::is_resident(int64_t id) const {
  std::lock_guard<Mutex> lk(impl_->mu);
  impl_->check_id(id);
  return impl_->blocks[static_cast<size_t>(id)].state == Impl::State::Resident;
}

const std::string& BlockStore::spill_path() const {
  std::lock_guard<Mutex> lk(impl_->mu);
  return impl_->spill.path();
}

void BlockStore::clear() {
  Impl& s = *impl_;
  std::unique_lock<Mutex> lk(s.mu);
  s.queue.clear();
  s.cv.wait(lk, [&] { return s.loading == 0; });
  s.blocks.clear();
  s.slots.clear();
  s.free_slots.clear();
  s.lru_head = s.lru_tail = kNoSlot;
  s.pinned.clear();
  s.free_recs.clear();
  s.bytes_in_ram = 0;
  s.spill.reset();
}

void BlockStore::truncate(int64_t n) {
  Impl& s = *impl_;
  std::unique_lock<Mutex> lk(s.mu);
  LC_CHECK(n >= 0 && static_cast<size_t>(n) <= s.blocks.size());
  if (static_cast<size_t>(n) == s.blocks.size()) return;
  // Hints for dropped blocks go; loads in flight finish first (the worker owns their buffers).
  std::erase_if(s.queue, [&](const auto& e) { return e.first >= n; });
  s.cv.wait(lk, [&] { return s.loading == 0; });
  std::erase_if(s.pinned, [&](int64_t id) { return id >= n; });
  for (int64_t id = static_cast<int64_t>(s.blocks.size()) - 1; id >= n; --id) {
    Impl::Block& b = s.block(id);
    if (b.state == Impl::State::Resident) {
      s.lru_remove(id);
      s.free_slot(b);
      s.bytes_in_ram -= s.bytes_of(b.n);
    }
    if (b.rec != kNoSlot) s.free_recs.push_back(b.rec);
  }
  s.blocks.resize(static_cast<size_t>(n));
  // The file ends after the last record a kept block uses; the free ones before it are reused.
  uint32_t used = 0;
  for (const Impl::Block& b : s.blocks)
    if (b.rec != kNoSlot) used = std::max(used, b.rec + 1);
  std::erase_if(s.free_recs, [&](uint32_t r) { return r >= used; });
  std::sort(s.free_recs.begin(), s.free_recs.end(), std::greater<>());
  s.spill.shrink(uint64_t{used} * s.record_bytes);
}

}  // namespace lc
