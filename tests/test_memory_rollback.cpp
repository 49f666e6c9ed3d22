// Rolling a block memory back (KvMemory::truncate below the remainder): InfLLM keeps the sinks and
// blocks a session that read only the prefix holds, with the same representatives and index, and
// continues with its logits (bit for bit while no block forms from the rebuilt tokens; close
// after); a saved state stays valid after a rollback; StreamingLLM rolls back only within its
// window; the block store drops blocks and reuses their spill records.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/object_store.h"
#include "engine/session.h"
#include "engine/session_spec.h"
#include "engine/session_state.h"
#include "memory/block_store.h"
#include "memory/context_memory.h"
#include "memory/memory_state.h"
#include "model/model.h"
#include "support/block_sessions.h"
#include "support/paths.h"

namespace lc {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const Model> stories() {
  static auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  return m;
}

struct TempDir : lc::test::ScopedTempDir {
  TempDir() : ScopedTempDir("lc-rollback") {}
};

// Small windows and blocks, so that a few hundred tokens form sinks and dozens of blocks; with a
// budget, most blocks are spilled (f32: exact).
SessionOptions options(const Model& m, MemoryPolicy policy, size_t budget, SpillType spill,
                       const std::string& dir, int64_t topk = 3) {
  SessionSpec spec = test::small_block_spec(policy);
  spec.memory.topk = topk;
  spec.memory.mem_budget = budget;
  spec.memory.spill_type = spill;
  spec.memory.spill_dir = dir;
  return resolve_session(m, spec);
}

using test::text_tokens;

const ContextMemory& cm(const Session& s) { return test::context_memory(s); }

// Every layer's sinks, remainder and blocks, and the blocks' representatives and K/V, agree.
void expect_same_memory(const Session& a, const Session& b, const std::string& what) {
  ASSERT_EQ(a.n_past(), b.n_past()) << what;
  const int n_layer = a.model().hparams().n_layer;
  std::vector<float> ka, kb;
  for (int l = 0; l < n_layer; ++l) {
    const ContextMemory::LayerStats sa = cm(a).stats(l), sb = cm(b).stats(l);
    EXPECT_EQ(sa.n_init, sb.n_init) << what << " layer " << l;
    EXPECT_EQ(sa.n_remainder, sb.n_remainder) << what << " layer " << l;
    ASSERT_EQ(sa.n_blocks, sb.n_blocks) << what << " layer " << l;
    ASSERT_EQ(cm(a).store(l).size(), sa.n_blocks) << what << " layer " << l;
    for (int64_t id = 0; id < sa.n_blocks; ++id) {
      EXPECT_EQ(cm(a).block_repr(l, id), cm(b).block_repr(l, id)) << what << " block " << id;
      cm(a).store(l).read(id, ka);
      cm(b).store(l).read(id, kb);
      EXPECT_EQ(ka, kb) << what << " block " << id;
    }
  }
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

double max_abs(const std::vector<float>& a) {
  double d = 0;
  for (float x : a) d = std::max(d, std::fabs(double(x)));
  return d;
}

struct RollCase {
  const char* name;
  size_t budget;
  SpillType spill;
};

class InfllmRollback : public ::testing::TestWithParam<RollCase> {};

// A session that read T tokens and is rolled back to n holds what a session that read only the
// first n holds, and continues with the same logits: bit for bit while no block forms from the
// rebuilt remainder (nothing there depends on the scores that restart at zero), then close.
TEST_P(InfllmRollback, EqualsASessionThatStoppedThere) {
  const RollCase c = GetParam();
  auto m = stories();
  TempDir dir;
  const SessionOptions so = options(*m, MemoryPolicy::InfLLM, c.budget, c.spill, dir.path);
  const std::vector<int32_t> t = text_tokens(*m, 300, 1), more = text_tokens(*m, 60, 2);
  // In the blocks region (mid-block and at a block boundary), among the sinks' tokens given back
  // (50: a session of 50 tokens has 2 sinks), right after the sinks, inside the first window.
  for (int64_t n : {211, 212, 100, 52, 50, 30}) {
    const std::string what = std::string(c.name) + " n=" + std::to_string(n);
    Session a(m, so), b(m, so);
    a.feed(t.data(), n);
    a.feed(t.data() + n, static_cast<int64_t>(t.size()) - n);
    ASSERT_GT(cm(a).stats(0).n_blocks, 20) << what;
    ASSERT_TRUE(a.truncate(n)) << what;
    EXPECT_EQ(a.n_past(), n) << what;
    EXPECT_TRUE(a.last_logits().empty());
    EXPECT_EQ(a.tokens(), std::vector<int32_t>(t.begin(), t.begin() + n)) << what;
    b.feed(t.data(), n);
    expect_same_memory(a, b, what);
    // One token: no block forms from the rebuilt remainder yet. Its keys and values are exact
    // unless the store rounds blocks (f16): those of a block given back then differ slightly.
    a.feed(more.data(), 1);
    b.feed(more.data(), 1);
    if (cm(a).store(0).value_type() == SpillType::F32)
      EXPECT_EQ(a.last_logits(), b.last_logits()) << what;
    else
      EXPECT_LT(max_abs_diff(a.last_logits(), b.last_logits()), 0.01 * max_abs(b.last_logits()))
          << what;
    // Then enough for blocks to form from it: the same blocks, close logits (their
    // representatives come from other tokens, so retrieval may pick other blocks: about 5% of
    // the logits' scale here).
    a.feed(more.data() + 1, 40);
    b.feed(more.data() + 1, 40);
    EXPECT_EQ(cm(a).stats(0).n_blocks, cm(b).stats(0).n_blocks) << what;
    EXPECT_EQ(cm(a).stats(0).n_init, cm(b).stats(0).n_init) << what;
    const double diff = max_abs_diff(a.last_logits(), b.last_logits());
    EXPECT_LT(diff, 0.1 * max_abs(b.last_logits())) << what;
  }
}

// The whole text read in one call and rolled back to a point inside an execution block: the
// execution blocks of the two sessions differ around n, so the logits are only close.
TEST_P(InfllmRollback, CloseWhenTheExecutionBlocksDiffer) {
  const RollCase c = GetParam();
  auto m = stories();
  TempDir dir;
  const SessionOptions so = options(*m, MemoryPolicy::InfLLM, c.budget, c.spill, dir.path);
  const std::vector<int32_t> t = text_tokens(*m, 300, 3), more = text_tokens(*m, 20, 4);
  for (int64_t n : {150, 70}) {
    Session a(m, so), b(m, so);
    a.feed(t.data(), static_cast<int64_t>(t.size()));
    ASSERT_TRUE(a.truncate(n));
    b.feed(t.data(), n);
    EXPECT_EQ(cm(a).stats(0).n_blocks, cm(b).stats(0).n_blocks) << n;
    EXPECT_EQ(cm(a).stats(0).n_remainder, cm(b).stats(0).n_remainder) << n;
    a.feed(more.data(), static_cast<int64_t>(more.size()));
    b.feed(more.data(), static_cast<int64_t>(more.size()));
    const double diff = max_abs_diff(a.last_logits(), b.last_logits());
    EXPECT_LT(diff, 0.05 * max_abs(b.last_logits())) << n;
  }
}

// Saved after a rollback, loaded into a new session: both continue with identical logits; saved
// again after more text, the state loads again.
TEST_P(InfllmRollback, SavedStateStaysValid) {
  const RollCase c = GetParam();
  auto m = stories();
  TempDir dir;
  const SessionOptions so = options(*m, MemoryPolicy::InfLLM, c.budget, c.spill, dir.path);
  auto store = open_dir_store(dir.path + "/store");
  const std::vector<int32_t> t = text_tokens(*m, 260, 5), more = text_tokens(*m, 80, 6);
  Session a(m, so);
  a.feed(t.data(), static_cast<int64_t>(t.size()));
  save_session(a, *store, "s");  // segments of blocks the rollback drops
  ASSERT_TRUE(a.truncate(120));
  save_session(a, *store, "s");
  Session b(m, so);
  ASSERT_TRUE(load_session(b, *store, "s"));
  expect_same_memory(a, b, "loaded");
  a.feed(more.data(), 50);
  b.feed(more.data(), 50);
  EXPECT_EQ(a.last_logits(), b.last_logits());
  save_session(a, *store, "s");
  Session d(m, so);
  ASSERT_TRUE(load_session(d, *store, "s"));
  a.feed(more.data() + 50, 30);
  d.feed(more.data() + 50, 30);
  EXPECT_EQ(a.last_logits(), d.last_logits());
}

INSTANTIATE_TEST_SUITE_P(MemoryRollback, InfllmRollback,
                         ::testing::Values(RollCase{"in_ram", 0, SpillType::F32},
                                           RollCase{"spilled_f32", 24 << 10, SpillType::F32},
                                           RollCase{"spilled_f16", 24 << 10, SpillType::F16}),
                         [](const auto& info) { return std::string(info.param.name); });

// Rollbacks and reads in a random order, blocks spilled: the kept blocks never change, the memory
// always holds the sinks and blocks of its length, the spill file reuses the records of dropped
// blocks, and the state saved at the end continues like the session itself.
TEST(MemoryRollback, RepeatedRollbacksKeepTheMemoryConsistent) {
  auto m = stories();
  TempDir dir;
  const SessionOptions so = options(*m, MemoryPolicy::InfLLM, 24 << 10, SpillType::F16, dir.path);
  auto store = open_dir_store(dir.path + "/store");
  const std::vector<int32_t> t = text_tokens(*m, 3000, 11);
  const int64_t kvw = m->hparams().n_head_kv * m->hparams().head_dim;
  const size_t record = static_cast<size_t>(2 * 8 * kvw * 2);  // a block's K and V in f16
  std::mt19937 rng(3);
  Session a(m, so);
  size_t at = 0;     // next token of t to read
  int64_t peak = 0;  // the most blocks held at once
  std::vector<float> before, after;
  for (int step = 0; step < 40; ++step) {
    if (a.n_past() == 0 || rng() % 3 != 0) {
      const int64_t c = 1 + static_cast<int64_t>(rng() % 70);
      a.feed(t.data() + at, c);
      at += static_cast<size_t>(c);
      peak = std::max(peak, cm(a).stats(0).n_blocks);
      if (step % 7 == 0) save_session(a, *store, "s");
      continue;
    }
    const int64_t n = static_cast<int64_t>(rng() % static_cast<uint64_t>(a.n_past()));
    const int64_t keep = std::min(cm(a).stats(0).n_blocks, std::max<int64_t>(0, (n - 52) / 8));
    std::vector<std::vector<float>> kept;
    for (int64_t id = 0; id < keep; ++id) {
      cm(a).store(1).read(id, before);
      kept.push_back(before);
    }
    ASSERT_TRUE(a.truncate(n)) << step;
    const int64_t sinks = std::min<int64_t>(4, std::max<int64_t>(0, n - 48));
    const int64_t blocks = n - sinks >= 48 ? (n - sinks - 48) / 8 : 0;
    for (int l = 0; l < m->hparams().n_layer; ++l) {
      const ContextMemory::LayerStats st = cm(a).stats(l);
      EXPECT_EQ(st.n_init, sinks) << step;
      EXPECT_EQ(st.n_blocks, blocks) << step;
      EXPECT_EQ(st.n_remainder, n - sinks - blocks * 8) << step;
      EXPECT_EQ(cm(a).store(l).size(), blocks) << step;
      // Records are reused before the file grows: never more than the most blocks held at once.
      EXPECT_LE(cm(a).store(l).bytes_on_disk(), static_cast<size_t>(peak) * record) << step;
    }
    ASSERT_GE(blocks, keep);
    for (int64_t id = 0; id < keep; ++id) {
      cm(a).store(1).read(id, after);
      EXPECT_EQ(after, kept[static_cast<size_t>(id)]) << step << " block " << id;
    }
    at = static_cast<size_t>(rng() % 200);  // what comes next diverges from what was read
    EXPECT_EQ(static_cast<int64_t>(a.tokens().size()), n);
  }
  save_session(a, *store, "s");
  Session b(m, so);
  ASSERT_TRUE(load_session(b, *store, "s"));
  a.feed(t.data(), 30);
  b.feed(t.data(), 30);
  EXPECT_EQ(a.last_logits(), b.last_logits());
}

// With every block attended (topk beyond their count) the representatives no longer matter: the
// logits stay identical however many blocks form from the rebuilt remainder.
TEST(MemoryRollback, InfllmAttendingEveryBlockStaysIdentical) {
  auto m = stories();
  const SessionOptions so = options(*m, MemoryPolicy::InfLLM, 0, SpillType::F32, "", 1000);
  const std::vector<int32_t> t = text_tokens(*m, 240, 7), more = text_tokens(*m, 64, 8);
  Session a(m, so), b(m, so);
  a.feed(t.data(), 96);
  a.feed(t.data() + 96, 144);
  ASSERT_TRUE(a.truncate(96));
  b.feed(t.data(), 96);
  a.feed(more.data(), 64);
  b.feed(more.data(), 64);
  EXPECT_EQ(a.last_logits(), b.last_logits());
}

TEST(MemoryRollback, StreamingRollsBackOnlyWithinItsWindow) {
  auto m = stories();
  const SessionOptions so = options(*m, MemoryPolicy::Streaming, 0, SpillType::F32, "");
  const std::vector<int32_t> t = text_tokens(*m, 200, 9), more = text_tokens(*m, 8, 10);
  Session a(m, so);
  a.feed(t.data(), static_cast<int64_t>(t.size()));
  // The window holds the last 48 tokens; what left it is gone.
  EXPECT_FALSE(a.truncate(100));
  EXPECT_FALSE(a.truncate(10));
  EXPECT_EQ(a.n_past(), 200);
  EXPECT_EQ(a.tokens().size(), 200u);
  ASSERT_TRUE(a.truncate(170));
  EXPECT_EQ(a.n_past(), 170);
  a.feed(more.data(), 8);
  EXPECT_EQ(a.n_past(), 178);
}

// BlockStore::truncate: the kept blocks read back unchanged; dropped ones free their RAM and their
// spill records: the file shrinks to the last record a kept block uses, and later blocks reuse the
// records before it (the file does not grow for them).
TEST(MemoryRollback, BlockStoreDropsBlocksAndReusesTheirRecords) {
  TempDir dir;
  BlockStoreOptions o;
  o.tokens_per_block = 4;
  o.row_floats = 8;
  const size_t block = 2 * 4 * 8 * sizeof(float);  // a record too (f32)
  o.mem_budget = 3 * block;                        // three blocks in RAM
  o.spill_type = SpillType::F32;
  o.spill_dir = dir.path;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<std::vector<float>> data(13);
  auto add = [&](BlockStore& s, int b) {
    std::vector<float>& kv = data[static_cast<size_t>(b)];
    kv.resize(2 * 4 * 8);
    for (float& x : kv) x = nd(rng);
    EXPECT_EQ(s.add(kv.data(), kv.data() + 32, 4), b);
  };
  auto check = [&](const BlockStore& s) {
    std::vector<float> kv;
    for (int64_t b = 0; b < s.size(); ++b) {
      s.read(b, kv);
      EXPECT_EQ(kv, data[static_cast<size_t>(b)]) << b;
    }
  };
  {
    // Blocks 0..6 evicted in order into records 0..6; dropping 3.. leaves records 0..2.
    BlockStore s(o);
    for (int b = 0; b < 10; ++b) add(s, b);
    EXPECT_EQ(s.bytes_on_disk(), 7 * block);
    s.pin({8, 2});
    s.prefetch({0, 1, 9});
    s.truncate(3);
    EXPECT_EQ(s.size(), 3);
    EXPECT_EQ(s.bytes_on_disk(), 3 * block);
    EXPECT_LE(s.bytes_in_ram(), 3 * block);
    check(s);
    for (int b = 3; b < 8; ++b) add(s, b);
    check(s);
    const auto views = s.pin({0, 7, 2});
    ASSERT_EQ(views.size(), 3u);
    EXPECT_TRUE(std::equal(views[1].k, views[1].k + 32, data[7].begin()));
    EXPECT_TRUE(std::equal(views[1].v, views[1].v + 32, data[7].begin() + 32));
    s.unpin_all();
    s.truncate(0);
    EXPECT_EQ(s.size(), 0);
    EXPECT_EQ(s.bytes_in_ram(), 0u);
    EXPECT_EQ(s.bytes_on_disk(), 0u);
  }
  {
    // Block 0 pinned while 1..9 come (1..7 evicted into records 0..6), then evicted last (record
    // 9, after 8 and 9): dropping 1.. frees records 0..8, which the next nine evictions reuse.
    BlockStore s(o);
    add(s, 0);
    s.pin({0});
    for (int b = 1; b < 10; ++b) add(s, b);
    s.unpin_all();
    for (int b = 10; b < 13; ++b) add(s, b);
    EXPECT_FALSE(s.is_resident(0));
    EXPECT_EQ(s.bytes_on_disk(), 10 * block);
    s.truncate(1);
    EXPECT_EQ(s.bytes_on_disk(), 10 * block);
    EXPECT_EQ(s.bytes_in_ram(), 0u);
    const int64_t writes = s.writes_to_disk();
    for (int b = 1; b < 13; ++b) add(s, b);
    EXPECT_EQ(s.writes_to_disk(), writes + 9);
    EXPECT_EQ(s.bytes_on_disk(), 10 * block);
    check(s);
  }
}

// A memory's state is written in segments of at most max_items items, so that saving or loading
// a long context holds one segment at a time; a rollback keeps the whole segments before it, and
// the next save writes the rest again in segments of the same size.
TEST(MemoryRollback, SegmentsSplitLongStatesAndReloadInOrder) {
  TempDir dir;
  const auto store = open_dir_store(dir.path);
  auto items = [](int64_t a, int64_t b) {
    std::vector<uint8_t> v;
    for (int64_t i = a; i < b; ++i) v.push_back(static_cast<uint8_t>(i));
    return v;
  };
  auto save = [&](Segments& s, int64_t n, std::vector<std::pair<int64_t, int64_t>>* made) {
    ByteWriter head;
    std::vector<std::string> refs;
    MemorySave out{*store, "s", head, refs};
    s.save(out, n, 3, [&](int64_t a, int64_t b) {
      made->emplace_back(a, b);
      return items(a, b);
    });
    return head.bytes();
  };
  Segments seg;
  std::vector<std::pair<int64_t, int64_t>> made;
  save(seg, 10, &made);
  const std::vector<std::pair<int64_t, int64_t>> four{{0, 3}, {3, 6}, {6, 9}, {9, 10}};
  EXPECT_EQ(made, four);
  seg.truncate(7);  // [6, 9) held item 7 and after: gone with it
  EXPECT_EQ(seg.saved(), 6);
  made.clear();
  const std::vector<uint8_t> head = save(seg, 11, &made);
  const std::vector<std::pair<int64_t, int64_t>> two{{6, 9}, {9, 11}};
  EXPECT_EQ(made, two);
  // Loading hands over each segment's bytes in order.
  ByteReader r(head.data(), head.size(), "head");
  MemoryLoad in{*store, r};
  Segments back;
  std::vector<uint8_t> all;
  back.load(in, 11, [&](int64_t a, int64_t b, const std::vector<uint8_t>& bytes) {
    EXPECT_EQ(bytes, items(a, b));
    all.insert(all.end(), bytes.begin(), bytes.end());
  });
  EXPECT_EQ(all, items(0, 11));
  EXPECT_EQ(Segments::items_per_segment(size_t{1} << 20), 64);
  EXPECT_EQ(Segments::items_per_segment(size_t{1} << 30), 1);
}

}  // namespace
}  // namespace lc
