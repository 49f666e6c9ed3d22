// BlockStore: the RAM tier under a byte budget (LRU, pinned blocks never evicted), the spill file
// (each spill type read back within its tolerance, each block written at most once), prefetching,
// clear(), and the errors a user can hit (bad spill directory, quota / full disk, bad type name).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "memory/block_store.h"

namespace lc {
namespace {

constexpr int64_t kRow = 64;  // floats per token row
constexpr int64_t kTok = 16;  // tokens per block

size_t block_bytes(int64_t n = kTok) { return 2 * static_cast<size_t>(n * kRow) * sizeof(float); }

BlockStoreOptions options(size_t budget_blocks, SpillType type = SpillType::F32) {
  BlockStoreOptions o;
  o.tokens_per_block = kTok;
  o.row_floats = kRow;
  o.mem_budget = budget_blocks * block_bytes();
  o.spill_type = type;
  return o;
}

// A block's data as the test keeps it: k then v, n tokens.
struct Copy {
  int64_t n = 0;
  std::vector<float> k, v;
};

class Blocks {
 public:
  explicit Blocks(uint32_t seed) : rng_(seed) {}
  const Copy& make(int64_t n) {
    Copy c;
    c.n = n;
    std::normal_distribution<float> dist(0.0f, 1.5f);
    for (int64_t i = 0; i < n * kRow; ++i) c.k.push_back(dist(rng_));
    for (int64_t i = 0; i < n * kRow; ++i) c.v.push_back(dist(rng_));
    copies.push_back(std::move(c));
    return copies.back();
  }
  int64_t add(BlockStore& s, int64_t n = kTok) {
    const Copy& c = make(n);
    return s.add(c.k.data(), c.v.data(), n);
  }
  std::vector<Copy> copies;

 private:
  std::mt19937 rng_;
};

// Largest error a spill type may introduce for element x of a row group whose largest magnitude
// (over its 32-element Q8_0 block) is amax.
double tolerance(SpillType t, float x, float amax) {
  switch (t) {
    case SpillType::F32:
      return 0.0;
    case SpillType::F16:
      return std::fabs(x) * std::ldexp(1.0, -11) + 1e-7;
    case SpillType::Q8_0:
      // Half a quantization step of d = amax/127, plus the fp16 rounding of d times |q| <= 127.
      return amax / 127.0 * 0.5 + amax * std::ldexp(1.0, -11) * 1.01 + 1e-7;
  }
  return 0.0;
}

void expect_rows(const float* got, const std::vector<float>& want, SpillType t,
                 const std::string& what) {
  for (size_t g = 0; g < want.size(); g += 32) {
    float amax = 0.0f;
    for (size_t i = g; i < g + 32; ++i) amax = std::max(amax, std::fabs(want[i]));
    for (size_t i = g; i < g + 32; ++i) {
      ASSERT_LE(std::fabs(static_cast<double>(got[i]) - want[i]), tolerance(t, want[i], amax))
          << what << " element " << i << " want " << want[i] << " got " << got[i];
    }
  }
}

void expect_block(const BlockView& view, const Copy& c, SpillType t, const std::string& what) {
  ASSERT_EQ(view.n, c.n) << what;
  ASSERT_NE(view.k, nullptr);
  ASSERT_NE(view.v, nullptr);
  expect_rows(view.k, c.k, t, what + " K");
  expect_rows(view.v, c.v, t, what + " V");
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------

TEST(BlockStore, SpillTypeNames) {
  for (SpillType t : {SpillType::F32, SpillType::F16, SpillType::Q8_0}) {
    EXPECT_EQ(spill_type_from_name(spill_type_name(t)), t);
  }
  EXPECT_EQ(spill_type_from_name("F16"), SpillType::F16);
  const std::string msg = error_of([] { spill_type_from_name("q4_0"); });
  EXPECT_NE(msg.find("memory.spill_type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("q4_0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f16"), std::string::npos) << msg;
}

TEST(BlockStore, Q8_0NeedsRowWidthMultipleOf32) {
  BlockStoreOptions o = options(1, SpillType::Q8_0);
  o.row_floats = 48;
  const std::string msg = error_of([&] { BlockStore s(o); });
  EXPECT_NE(msg.find("memory.spill_type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("48"), std::string::npos) << msg;
  o.row_floats = 96;
  BlockStore ok(o);
  EXPECT_EQ(ok.size(), 0);
}

TEST(BlockStore, UnlimitedBudgetNeverSpills) {
  BlockStore s(options(0));
  Blocks b(1);
  for (int i = 0; i < 50; ++i) b.add(s);
  EXPECT_EQ(s.bytes_in_ram(), 50 * block_bytes());
  EXPECT_EQ(s.bytes_on_disk(), 0u);
  EXPECT_EQ(s.spill_path(), "");
  std::vector<int64_t> all(50);
  for (int i = 0; i < 50; ++i) all[static_cast<size_t>(i)] = i;
  const auto views = s.pin(all);
  for (int i = 0; i < 50; ++i) {
    expect_block(views[static_cast<size_t>(i)], b.copies[static_cast<size_t>(i)], SpillType::F32,
                 "block " + std::to_string(i));
  }
  s.prefetch(all);  // nothing is cold: no-op
  s.wait_prefetch();
  EXPECT_EQ(s.reads_from_disk(), 0);
}

class RoundTrip : public ::testing::TestWithParam<SpillType> {};

TEST_P(RoundTrip, EverySpillType) {
  const SpillType t = GetParam();
  BlockStore s(options(1, t));
  Blocks b(2);
  const std::vector<int64_t> ns = {kTok, kTok, 7, kTok, 1, kTok};
  for (int64_t n : ns) b.add(s, n);
  // Only the newest block fits; the rest were written once each.
  EXPECT_EQ(s.writes_to_disk(), static_cast<int64_t>(ns.size()) - 1);
  EXPECT_LE(s.bytes_in_ram(), block_bytes());
  // Every record has the room of a full block, encoded in the spill type.
  const size_t elems = 2 * static_cast<size_t>(kTok * kRow);
  const size_t record = t == SpillType::F32   ? elems * 4
                        : t == SpillType::F16 ? elems * 2
                                              : elems / 32 * 34;
  EXPECT_EQ(s.bytes_on_disk(), (ns.size() - 1) * record);
  EXPECT_FALSE(s.spill_path().empty());

  // The newest block never left RAM, but holds the spill type's values from the start (rounded
  // when added): the same values, bit for bit, as after a trip to disk.
  const BlockView resident = s.pin({5})[0];
  expect_block(resident, b.copies[5], t, "resident block");
  const std::vector<float> k5(resident.k, resident.k + kTok * kRow);
  const std::vector<float> v5(resident.v, resident.v + kTok * kRow);
  s.pin({0});  // block 5 goes to disk
  const BlockView back = s.pin({5})[0];
  EXPECT_EQ(std::vector<float>(back.k, back.k + kTok * kRow), k5);
  EXPECT_EQ(std::vector<float>(back.v, back.v + kTok * kRow), v5);
  for (int round = 0; round < 2; ++round) {
    for (int64_t id = 0; id < static_cast<int64_t>(ns.size()); ++id) {
      // Every block comes from disk now (block 5 is spilled when block 0 is pinned).
      expect_block(s.pin({id})[0], b.copies[static_cast<size_t>(id)], t,
                   "block " + std::to_string(id));
    }
  }
  // Block 5 was spilled when block 0 was first pinned; nothing was written twice. Reads: blocks 0
  // and 5 for the comparison above, then every block in each of the two rounds.
  EXPECT_EQ(s.writes_to_disk(), static_cast<int64_t>(ns.size()));
  EXPECT_EQ(s.reads_from_disk(), 2 + 2 * static_cast<int64_t>(ns.size()));
}

INSTANTIATE_TEST_SUITE_P(Types, RoundTrip,
                         ::testing::Values(SpillType::F32, SpillType::F16, SpillType::Q8_0),
                         [](const auto& info) { return std::string(spill_type_name(info.param)); });

TEST(BlockStore, SpillFileIsUnlinkedAtOnce) {
  BlockStore s(options(1));
  Blocks b(3);
  b.add(s);
  EXPECT_EQ(s.spill_path(), "");
  b.add(s);
  const std::string path = s.spill_path();
  ASSERT_FALSE(path.empty());
  EXPECT_NE(path.find("longctx-spill-"), std::string::npos) << path;
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << path << " should be unlinked";
}

TEST(BlockStore, PinnedBlocksAreNeverEvicted) {
  BlockStore s(options(2));
  Blocks b(4);
  for (int i = 0; i < 8; ++i) b.add(s);
  // Five pinned blocks against a budget of two: RAM goes over the budget, nothing pinned leaves.
  const std::vector<int64_t> ids = {0, 3, 5, 6, 7};
  const auto views = s.pin(ids);
  EXPECT_EQ(s.bytes_in_ram(), 5 * block_bytes());
  for (int i = 0; i < 6; ++i) b.add(s);  // pressure: these go straight to disk
  EXPECT_EQ(s.bytes_in_ram(), 5 * block_bytes());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_TRUE(s.is_resident(ids[i]));
    expect_block(views[i], b.copies[static_cast<size_t>(ids[i])], SpillType::F32,
                 "pinned block " + std::to_string(ids[i]));
  }
  s.unpin_all();
  EXPECT_LE(s.bytes_in_ram(), 2 * block_bytes());
  // Everything still reads back.
  for (int64_t id = 0; id < s.size(); ++id) {
    expect_block(s.pin({id})[0], b.copies[static_cast<size_t>(id)], SpillType::F32,
                 "block " + std::to_string(id));
  }
}

TEST(BlockStore, EvictsLeastRecentlyPinnedFirst) {
  BlockStore s(options(3));
  Blocks b(5);
  for (int i = 0; i < 3; ++i) b.add(s);  // recency: 0 < 1 < 2
  s.pin({0});
  s.pin({2, 1});  // 0 unpinned first, then 2 and 1 in that order: 0 < 2 < 1
  s.unpin_all();
  b.add(s);  // block 3 evicts 0
  EXPECT_FALSE(s.is_resident(0));
  EXPECT_TRUE(s.is_resident(1));
  EXPECT_TRUE(s.is_resident(2));
  EXPECT_TRUE(s.is_resident(3));
  s.pin({2});
  s.unpin_all();  // now 1 < 3 < 2
  b.add(s);       // block 4 evicts 1
  EXPECT_FALSE(s.is_resident(1));
  EXPECT_TRUE(s.is_resident(2));
  b.add(s);  // block 5 evicts 3
  EXPECT_FALSE(s.is_resident(3));
  EXPECT_TRUE(s.is_resident(2));
  EXPECT_TRUE(s.is_resident(4));
  EXPECT_TRUE(s.is_resident(5));
  // Pinning a cold block evicts the least recent unpinned one (2 < 4 < 5 -> 2).
  s.pin({0});
  EXPECT_FALSE(s.is_resident(2));
  EXPECT_TRUE(s.is_resident(0));
  EXPECT_EQ(s.bytes_in_ram(), 3 * block_bytes());
}

TEST(BlockStore, RandomAccessManyEvictions) {
  for (SpillType t : {SpillType::F32, SpillType::Q8_0}) {
    const size_t budget = 5;
    BlockStore s(options(budget, t));
    Blocks b(6);
    std::mt19937 rng(7);
    for (int step = 0; step < 600; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 3 || s.size() < 4) {
        b.add(s, 1 + static_cast<int64_t>(rng() % kTok));
      } else if (op < 9) {
        std::vector<int64_t> ids;
        const size_t k = 1 + rng() % 4;
        for (size_t i = 0; i < k; ++i) ids.push_back(static_cast<int64_t>(rng() % s.size()));
        if (op == 8) s.prefetch({static_cast<int64_t>(rng() % s.size())});
        const auto views = s.pin(ids);
        for (size_t i = 0; i < ids.size(); ++i) {
          // A block first added resident and spilled later is compact on disk, so compare with the
          // spill type's tolerance whenever it may have been read back.
          expect_block(views[i], b.copies[static_cast<size_t>(ids[i])], t,
                       "step " + std::to_string(step) + " block " + std::to_string(ids[i]));
        }
      } else {
        s.unpin_all();
      }
      ASSERT_LE(s.bytes_in_ram(), budget * block_bytes()) << "step " << step;
    }
    // Each block was written at most once, and the file holds exactly those writes.
    EXPECT_LE(s.writes_to_disk(), s.size());
    EXPECT_GT(s.reads_from_disk(), 100);
  }
}

TEST(BlockStore, ExactAfterManyEvictionsF32) {
  BlockStore s(options(3));
  Blocks b(8);
  for (int i = 0; i < 40; ++i) b.add(s, 1 + i % kTok);
  std::mt19937 rng(9);
  for (int step = 0; step < 300; ++step) {
    const int64_t a = static_cast<int64_t>(rng() % 40), c = static_cast<int64_t>(rng() % 40);
    const auto views = s.pin({a, c});
    expect_block(views[0], b.copies[static_cast<size_t>(a)], SpillType::F32, "a");
    expect_block(views[1], b.copies[static_cast<size_t>(c)], SpillType::F32, "c");
    ASSERT_LE(s.bytes_in_ram(), 3 * block_bytes());
  }
  EXPECT_EQ(s.writes_to_disk(), 40);                     // every block spilled once, none twice
  EXPECT_EQ(s.bytes_on_disk(), 40 * block_bytes(kTok));  // full-block records
}

// A store without values holds K rows only; extend() grows a block in RAM or, once spilled,
// reads it back and rewrites it into its own record; release() frees a block for good.
TEST(BlockStore, PagesWithoutValuesGrowInPlace) {
  BlockStoreOptions o = options(2);
  o.values = false;
  BlockStore s(o);
  const size_t row_bytes = kRow * sizeof(float);
  std::vector<std::vector<float>> want(6);
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  auto row = [&] {
    std::vector<float> r(kRow);
    for (float& x : r) x = nd(rng);
    return r;
  };
  for (int64_t id = 0; id < 6; ++id) {
    want[id] = row();
    EXPECT_EQ(s.add(want[id].data(), nullptr, 1), id);
  }
  // The budget is 2 full blocks of K and V = 4 * kTok rows: all six one-row blocks fit.
  EXPECT_EQ(s.bytes_in_ram(), 6 * row_bytes);
  for (int round = 0; round < kTok - 1; ++round) {
    for (int64_t id = 0; id < 6; ++id) {
      const auto r = row();
      s.extend(id, r.data(), 1);
      want[id].insert(want[id].end(), r.begin(), r.end());
    }
    ASSERT_LE(s.bytes_in_ram(), 2 * block_bytes());
  }
  EXPECT_GT(s.writes_to_disk(), 0);
  EXPECT_GT(s.reads_from_disk(), 0);
  // One record per block, however often it was rewritten.
  EXPECT_EQ(s.bytes_on_disk() % (kTok * row_bytes), 0u);
  EXPECT_LE(s.bytes_on_disk(), 6 * kTok * row_bytes);
  for (int64_t id = 0; id < 6; ++id) {
    const auto v = s.pin({id});
    ASSERT_EQ(v[0].n, kTok);
    EXPECT_EQ(v[0].v, nullptr);
    for (size_t e = 0; e < want[id].size(); ++e) ASSERT_EQ(v[0].k[e], want[id][e]) << id;
  }
  s.unpin_all();
  s.release(0);
  EXPECT_FALSE(s.is_resident(0));
  const auto v = s.pin({5, 4}, false);
  const auto w = s.pin({3}, /*keep_pinned=*/true);  // 5 and 4 stay pinned
  EXPECT_EQ(v[0].k[0], want[5][0]);
  EXPECT_EQ(w[0].k[0], want[3][0]);
  EXPECT_TRUE(s.is_resident(5) && s.is_resident(4) && s.is_resident(3));
}

TEST(BlockStore, PrefetchThenPin) {
  BlockStore s(options(4, SpillType::F16));
  Blocks b(10);
  for (int i = 0; i < 20; ++i) b.add(s);
  EXPECT_FALSE(s.is_resident(0));
  const int64_t reads0 = s.reads_from_disk();
  s.prefetch({0, 1, 2});
  s.wait_prefetch();
  EXPECT_TRUE(s.is_resident(0));
  EXPECT_TRUE(s.is_resident(1));
  EXPECT_TRUE(s.is_resident(2));
  EXPECT_EQ(s.reads_from_disk(), reads0 + 3);
  EXPECT_LE(s.bytes_in_ram(), 4 * block_bytes());
  const auto views = s.pin({2, 0, 1});
  EXPECT_EQ(s.reads_from_disk(), reads0 + 3);  // reused, not read again
  expect_block(views[0], b.copies[2], SpillType::F16, "block 2");
  expect_block(views[1], b.copies[0], SpillType::F16, "block 0");
  expect_block(views[2], b.copies[1], SpillType::F16, "block 1");

  // Prefetch racing with pin: pin waits for or redoes the read, the data is always right.
  std::mt19937 rng(11);
  for (int step = 0; step < 300; ++step) {
    std::vector<int64_t> hint;
    for (int i = 0; i < 3; ++i) hint.push_back(static_cast<int64_t>(rng() % 20));
    s.prefetch(hint);
    const std::vector<int64_t> ids = {hint[rng() % 3], static_cast<int64_t>(rng() % 20)};
    const auto v = s.pin(ids);
    for (size_t i = 0; i < ids.size(); ++i) {
      expect_block(v[i], b.copies[static_cast<size_t>(ids[i])], SpillType::F16,
                   "step " + std::to_string(step));
    }
  }
  s.wait_prefetch();
  s.unpin_all();
  EXPECT_LE(s.bytes_in_ram(), 4 * block_bytes());
}

TEST(BlockStore, PrefetchNeverEvictsPinnedBlocks) {
  BlockStore s(options(2));
  Blocks b(12);
  for (int i = 0; i < 6; ++i) b.add(s);
  const auto views = s.pin({4, 5});  // the whole budget
  s.prefetch({0, 1});
  s.wait_prefetch();
  EXPECT_FALSE(s.is_resident(0));  // skipped: no room without evicting pinned blocks
  EXPECT_FALSE(s.is_resident(1));
  EXPECT_TRUE(s.is_resident(4));
  EXPECT_TRUE(s.is_resident(5));
  expect_block(views[0], b.copies[4], SpillType::F32, "pinned 4");
  expect_block(views[1], b.copies[5], SpillType::F32, "pinned 5");
  // Unpinned, they may make room; a prefetch call never evicts its own blocks.
  s.unpin_all();
  s.prefetch({0, 1, 2});
  s.wait_prefetch();
  EXPECT_TRUE(s.is_resident(0));
  EXPECT_TRUE(s.is_resident(1));
  EXPECT_FALSE(s.is_resident(2));
  EXPECT_LE(s.bytes_in_ram(), 2 * block_bytes());
}

TEST(BlockStore, Clear) {
  BlockStore s(options(2));
  Blocks b(13);
  for (int i = 0; i < 6; ++i) b.add(s);
  s.prefetch({0, 1});
  s.pin({1});
  s.clear();
  EXPECT_EQ(s.size(), 0);
  EXPECT_EQ(s.bytes_in_ram(), 0u);
  EXPECT_EQ(s.bytes_on_disk(), 0u);
  EXPECT_EQ(s.spill_path(), "");
  // Usable again, ids from 0.
  Blocks b2(14);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b2.add(s), i);
  EXPECT_FALSE(s.spill_path().empty());
  for (int64_t id = 0; id < 5; ++id) {
    expect_block(s.pin({id})[0], b2.copies[static_cast<size_t>(id)], SpillType::F32, "after clear");
  }
}

TEST(BlockStore, BadSpillDirectory) {
  BlockStoreOptions o = options(1);
  o.spill_dir = "/etc/passwd/x";  // under a regular file: not writable even by root
  std::string msg = error_of([&] { BlockStore s(o); });
  EXPECT_NE(msg.find("/etc/passwd/x"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Not a directory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("memory.spill_dir"), std::string::npos) << msg;

  o.spill_dir = "/nonexistent-longctx-dir/spill";
  msg = error_of([&] { BlockStore s(o); });
  EXPECT_NE(msg.find("/nonexistent-longctx-dir/spill"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;

  o.mem_budget = 0;  // never spills: the directory does not matter
  BlockStore fine(o);
  Blocks b(15);
  b.add(fine);
  EXPECT_EQ(fine.size(), 1);
}

TEST(BlockStore, SpillDirectoryRemovedBeforeFirstSpill) {
  const char* env = std::getenv("TMPDIR");
  std::string templ = std::string(env != nullptr && *env != '\0' ? env : "/tmp") + "/lc-bs-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  ASSERT_NE(::mkdtemp(name.data()), nullptr);
  const std::string dir = name.data();
  BlockStoreOptions o = options(1);
  o.spill_dir = dir;
  BlockStore s(o);
  ASSERT_EQ(::rmdir(dir.c_str()), 0);
  Blocks b(16);
  b.add(s);
  const std::string msg = error_of([&] { b.add(s); });
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  // The failed add added nothing; the first block is intact.
  EXPECT_EQ(s.size(), 1);
  expect_block(s.pin({0})[0], b.copies[0], SpillType::F32, "block 0");
}

TEST(BlockStore, SpillQuotaReportsNoSpace) {
  BlockStoreOptions o = options(1, SpillType::F16);
  const size_t on_disk = block_bytes() / 2;  // one f16 block
  o.max_spill_bytes = 3 * on_disk + on_disk / 2;
  BlockStore s(o);
  Blocks b(17);
  for (int i = 0; i < 4; ++i) b.add(s);  // three blocks spilled
  EXPECT_EQ(s.bytes_on_disk(), 3 * on_disk);
  const std::string msg = error_of([&] { b.add(s); });
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  EXPECT_NE(msg.find("memory.spill_max"), std::string::npos) << msg;
  EXPECT_NE(msg.find(s.spill_path()), std::string::npos) << msg;
  EXPECT_EQ(s.size(), 4);
  EXPECT_EQ(s.bytes_on_disk(), 3 * on_disk);
  // Nothing corrupted: the resident block is intact; reading block 0 back needs block 3 spilled,
  // which is over the quota, so that pin reports the same error instead of returning bad data.
  expect_block(s.pin({3})[0], b.copies[3], SpillType::F16, "block 3");
  const std::string msg2 = error_of([&] { s.pin({0}); });
  EXPECT_NE(msg2.find("No space left on device"), std::string::npos) << msg2;
  s.unpin_all();
  expect_block(s.pin({3})[0], b.copies[3], SpillType::F16, "block 3 again");
  EXPECT_EQ(s.bytes_on_disk(), 3 * on_disk);
}

TEST(BlockStore, BlocksAreWrittenAtMostOnce) {
  BlockStoreOptions o = options(2, SpillType::Q8_0);
  const size_t on_disk = block_bytes() / sizeof(float) / 32 * 34;  // one q8_0 block
  o.max_spill_bytes = 6 * on_disk;  // exactly the six blocks: any rewrite would hit the quota
  BlockStore s(o);
  Blocks b(18);
  for (int i = 0; i < 6; ++i) b.add(s);  // blocks 0..3 spilled, 4 and 5 resident
  EXPECT_EQ(s.writes_to_disk(), 4);
  // Cycling through the spilled blocks re-evicts only blocks already on disk: no new writes.
  for (int round = 0; round < 3; ++round) {
    for (int64_t id = 0; id < 4; ++id) {
      s.pin({id, (id + 1) % 4});
    }
  }
  EXPECT_EQ(s.writes_to_disk(), 6);  // 4 and 5 once each, when blocks 0 and 1 first came back
  EXPECT_EQ(s.bytes_on_disk(), 6 * on_disk);
  EXPECT_GE(s.reads_from_disk(), 12);
}

}  // namespace
}  // namespace lc
