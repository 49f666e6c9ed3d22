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

#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <utility>

#include "core/error.h"
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
  fail("unknown --spill-type '", name, "': expected f32, f16 or q8_0");
}

namespace {

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
  if (opt.row_floats <= 0)
    fail("block store: K/V row width must be positive, got ", opt.row_floats);
  if (opt.spill_type == SpillType::Q8_0 && opt.row_floats % 32 != 0) {
    fail("--spill-type q8_0 needs the K/V row width (n_head_kv * head_dim = ", opt.row_floats,
         ") to be a multiple of 32; use --spill-type f16 or f32");
  }
  if (opt.mem_budget != 0) {
    // The spill file itself is created lazily; a bad directory is reported now, not mid-run.
    const std::string dir = SpillFile::resolve_dir(opt.spill_dir);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      const int err = errno;
      fail("spill directory '", dir, "' (--spill-dir) cannot be used: ", std::strerror(err));
    }
    if (!S_ISDIR(st.st_mode)) {
      fail("spill directory '", dir, "' (--spill-dir) cannot be used: ", std::strerror(ENOTDIR));
    }
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      const int err = errno;
      fail("spill directory '", dir, "' (--spill-dir) cannot be used: ", std::strerror(err));
    }
  }
  return opt;
}

constexpr size_t kMaxSpareBuffers = 4;  // freed block buffers kept for reuse (outside the budget)

}  // namespace

struct BlockStore::Impl {
  enum class State : uint8_t { Resident, Cold, Loading };
  struct Block {
    int64_t n = 0;
    std::vector<float> data;  // K rows then V rows while Resident
    int64_t offset = -1;      // in the spill file; -1 until written
    State state = State::Resident;
    bool pinned = false;
    bool in_lru = false;
    uint64_t prefetch_gen = 0;  // the prefetch() call that loaded it; 0 = none
    std::list<int64_t>::iterator lru_pos;
  };

  explicit Impl(const BlockStoreOptions& o)
      : opt(validated(o)),
        row_floats(static_cast<size_t>(o.row_floats)),
        spill(o.spill_dir, tensor_type_of(o.spill_type), o.row_floats, o.max_spill_bytes) {}

  ~Impl() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      queue.clear();
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
  }

  size_t floats_of(int64_t n) const { return 2 * static_cast<size_t>(n) * row_floats; }
  size_t bytes_of(int64_t n) const { return floats_of(n) * sizeof(float); }
  bool over_budget(size_t extra) const {
    return opt.mem_budget != 0 && bytes_in_ram + extra > opt.mem_budget;
  }

  // --- helpers; the caller holds mu ---

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
      buf.clear();
      spare.push_back(std::move(buf));
    } else {
      std::vector<float>().swap(buf);
    }
  }

  void lru_push(int64_t id) {
    Block& b = blocks[static_cast<size_t>(id)];
    LC_CHECK(!b.in_lru);
    b.lru_pos = lru.insert(lru.end(), id);
    b.in_lru = true;
  }

  void lru_remove(int64_t id) {
    Block& b = blocks[static_cast<size_t>(id)];
    if (!b.in_lru) return;
    lru.erase(b.lru_pos);
    b.in_lru = false;
  }

  // Moves a resident unpinned block to the cold tier, writing it first if it never was.
  // On a write error the block stays resident.
  void evict(int64_t id) {
    Block& b = blocks[static_cast<size_t>(id)];
    LC_CHECK(b.state == State::Resident && !b.pinned);
    if (b.offset < 0) {
      b.offset = static_cast<int64_t>(spill.append(b.data.data(), b.n, encode_scratch));
      ++writes;
    }
    lru_remove(id);
    give_buffer(std::move(b.data));
    b.state = State::Cold;
    bytes_in_ram -= bytes_of(b.n);
  }

  // Evicts least recently used blocks until `extra` more bytes fit, or nothing is left to evict.
  void evict_for(size_t extra) {
    while (over_budget(extra) && !lru.empty()) evict(lru.front());
  }

  // Reads a cold block back on the calling thread.
  void load_now(int64_t id) {
    Block& b = blocks[static_cast<size_t>(id)];
    LC_CHECK(b.state == State::Cold && b.offset >= 0);
    std::vector<float> buf = take_buffer(b.n);
    try {
      spill.read(static_cast<uint64_t>(b.offset), b.n, buf.data(), read_scratch);
    } catch (...) {
      give_buffer(std::move(buf));
      throw;
    }
    b.data = std::move(buf);
    b.state = State::Resident;
    bytes_in_ram += bytes_of(b.n);
    ++reads;
  }

  void unpin_locked() {
    for (int64_t id : pinned) {
      Block& b = blocks[static_cast<size_t>(id)];
      b.pinned = false;
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
    for (auto it = lru.begin(); it != lru.end() && found < need; ++it) {
      const Block& b = blocks[static_cast<size_t>(*it)];
      if (b.prefetch_gen == gen) continue;
      victims.push_back(*it);
      found += bytes_of(b.n);
    }
    if (found < need) return false;
    for (int64_t id : victims) evict(id);
    return true;
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lk(mu);
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
  void prefetch_one(std::unique_lock<std::mutex>& lk, int64_t id, uint64_t gen) {
    if (static_cast<size_t>(id) >= blocks.size()) return;  // cleared meanwhile
    if (blocks[static_cast<size_t>(id)].state != State::Cold) return;
    const int64_t n = blocks[static_cast<size_t>(id)].n;
    const size_t bytes = bytes_of(n);
    std::vector<float> buf;
    try {
      if (!room_for_prefetch(bytes, gen)) return;
      buf = take_buffer(n);
    } catch (...) {
      return;  // a hint: pin() redoes the work and reports errors
    }
    Block& b = blocks[static_cast<size_t>(id)];
    const uint64_t offset = static_cast<uint64_t>(b.offset);
    b.state = State::Loading;
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

    Block& done = blocks[static_cast<size_t>(id)];  // clear() waits for loads, so still there
    --loading;
    if (ok) {
      done.data = std::move(buf);
      done.state = State::Resident;
      done.prefetch_gen = gen;
      ++reads;
      if (!done.pinned) lru_push(id);
    } else {
      give_buffer(std::move(buf));
      done.state = State::Cold;
      bytes_in_ram -= bytes;
    }
  }

  const BlockStoreOptions opt;
  const size_t row_floats;
  SpillFile spill;

  mutable std::mutex mu;
  std::condition_variable cv;  // a load finished, the queue changed, or stop
  std::deque<Block> blocks;    // by id; a deque so references survive add()
  std::list<int64_t> lru;      // resident unpinned blocks, least recently used first
  std::vector<int64_t> pinned;
  size_t bytes_in_ram = 0;
  int64_t reads = 0;
  int64_t writes = 0;
  std::vector<std::vector<float>> spare;  // reusable block buffers
  std::vector<float> staging;             // add() of a block that goes straight to disk
  std::vector<uint8_t> encode_scratch;    // spill writes (under mu)
  std::vector<uint8_t> read_scratch;      // owner-thread reads (under mu)
  std::vector<uint8_t> worker_scratch;    // worker reads (worker thread only)
  std::vector<int64_t> victims;           // room_for_prefetch (under mu)

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
  LC_CHECK(k != nullptr && v != nullptr);
  LC_CHECK(n > 0 && n <= s.opt.tokens_per_block);
  std::lock_guard<std::mutex> lk(s.mu);
  const size_t half = static_cast<size_t>(n) * s.row_floats;
  const size_t bytes = s.bytes_of(n);
  s.evict_for(bytes);

  Impl::Block b;
  b.n = n;
  if (!s.over_budget(bytes)) {
    b.data = s.take_buffer(n);
    std::memcpy(b.data.data(), k, half * sizeof(float));
    std::memcpy(b.data.data() + half, v, half * sizeof(float));
  } else {
    // Pinned blocks fill the budget (or the block alone exceeds it): straight to disk.
    s.staging.resize(2 * half);
    std::memcpy(s.staging.data(), k, half * sizeof(float));
    std::memcpy(s.staging.data() + half, v, half * sizeof(float));
    b.offset = static_cast<int64_t>(s.spill.append(s.staging.data(), n, s.encode_scratch));
    ++s.writes;
    b.state = Impl::State::Cold;
  }
  const int64_t id = static_cast<int64_t>(s.blocks.size());
  const bool resident = b.state == Impl::State::Resident;
  s.blocks.push_back(std::move(b));
  if (resident) {
    s.bytes_in_ram += bytes;
    s.lru_push(id);
  }
  return id;
}

std::vector<BlockView> BlockStore::pin(const std::vector<int64_t>& ids) {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lk(s.mu);
  for (int64_t id : ids) s.check_id(id);
  s.unpin_locked();
  size_t need = 0;
  for (int64_t id : ids) {
    Impl::Block& b = s.blocks[static_cast<size_t>(id)];
    if (b.pinned) continue;  // repeated id
    b.pinned = true;
    s.pinned.push_back(id);
    s.cv.wait(lk, [&] { return b.state != Impl::State::Loading; });
    if (b.state == Impl::State::Resident) {
      s.lru_remove(id);
    } else {
      need += s.bytes_of(b.n);
    }
  }
  s.evict_for(need);
  for (int64_t id : s.pinned) {
    // The lock was released while waiting above: the prefetch worker may have started loading a
    // block checked earlier. Wait for it, then read whatever is still cold.
    Impl::Block& b = s.blocks[static_cast<size_t>(id)];
    s.cv.wait(lk, [&] { return b.state != Impl::State::Loading; });
    if (b.state == Impl::State::Cold) s.load_now(id);
  }
  std::vector<BlockView> views;
  views.reserve(ids.size());
  for (int64_t id : ids) {
    const Impl::Block& b = s.blocks[static_cast<size_t>(id)];
    const float* base = b.data.data();
    views.push_back(BlockView{base, base + static_cast<size_t>(b.n) * s.row_floats, b.n});
  }
  return views;
}

void BlockStore::unpin_all() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lk(s.mu);
  s.unpin_locked();
  s.evict_for(0);
}

void BlockStore::prefetch(const std::vector<int64_t>& ids) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lk(s.mu);
  for (int64_t id : ids) s.check_id(id);
  // Newer hints replace the ones not started yet.
  s.queue.clear();
  ++s.gen;
  for (int64_t id : ids) {
    if (s.blocks[static_cast<size_t>(id)].state == Impl::State::Cold)
      s.queue.emplace_back(id, s.gen);
  }
  if (s.queue.empty()) return;
  if (!s.worker.joinable()) s.worker = std::thread([&s] { s.worker_loop(); });
  s.cv.notify_all();
}

void BlockStore::wait_prefetch() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lk(s.mu);
  s.cv.wait(lk, [&] { return s.queue.empty() && s.loading == 0; });
}

int64_t BlockStore::size() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return static_cast<int64_t>(impl_->blocks.size());
}

size_t BlockStore::bytes_in_ram() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->bytes_in_ram;
}

size_t BlockStore::bytes_on_disk() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->spill.size();
}

int64_t BlockStore::reads_from_disk() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->reads;
}

int64_t BlockStore::writes_to_disk() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->writes;
}

bool BlockStore::is_resident(int64_t id) const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->check_id(id);
  return impl_->blocks[static_cast<size_t>(id)].state == Impl::State::Resident;
}

const std::string& BlockStore::spill_path() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->spill.path();
}

void BlockStore::clear() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lk(s.mu);
  s.queue.clear();
  s.cv.wait(lk, [&] { return s.loading == 0; });
  s.blocks.clear();
  s.lru.clear();
  s.pinned.clear();
  s.bytes_in_ram = 0;
  s.spill.reset();
}

}  // namespace lc
