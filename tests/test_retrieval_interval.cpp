// memory.retrieval_interval: a decoding step's search serves the decoding steps of the next few
// positions. Counted searches, the blocks attended, a state saved in the middle of an interval,
// rollbacks, and the setting's validation.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/object_store.h"
#include "engine/session.h"
#include "engine/session_spec.h"
#include "engine/session_state.h"
#include "memory/context_memory.h"
#include "model/model.h"
#include "support/block_sessions.h"
#include "support/paths.h"

namespace lc {
namespace {

std::shared_ptr<const Model> stories() {
  static auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  return m;
}

struct TempDir : lc::test::ScopedTempDir {
  TempDir() : ScopedTempDir("lc-interval") {}
};

// Small windows and blocks: a few hundred tokens form dozens of blocks (spilled with a budget).
SessionOptions options(const Model& m, int64_t interval, size_t budget = 0,
                       const std::string& dir = "") {
  SessionSpec spec = test::small_block_spec(MemoryPolicy::InfLLM);
  spec.memory.retrieval_interval = interval;
  spec.memory.mem_budget = budget;
  spec.memory.spill_type = SpillType::F32;
  spec.memory.spill_dir = dir;
  return resolve_session(m, spec);
}

using test::text_tokens;

const ContextMemory& cm(const Session& s) { return test::context_memory(s); }

int n_layer(const Session& s) { return s.model().hparams().n_layer; }

// Decoding with interval 4 searches at the first step and every 4th after it; the steps between
// choose among the candidates that search kept. The first step searches like interval 1 does, so
// both give the same logits there.
TEST(RetrievalInterval, DecodingSearchesOncePerInterval) {
  auto m = stories();
  const std::vector<int32_t> t = text_tokens(*m, 240, 1), more = text_tokens(*m, 12, 2);
  Session every(m, options(*m, 1)), four(m, options(*m, 4));
  every.feed(t.data(), static_cast<int64_t>(t.size()));
  four.feed(t.data(), static_cast<int64_t>(t.size()));
  ASSERT_GT(cm(four).stats(0).n_blocks, 20);
  const int64_t s_every = cm(every).searches(), s_four = cm(four).searches();
  const int64_t r_four = cm(four).reused_selections();
  for (int i = 0; i < 12; ++i) {
    every.feed(more.data() + i, 1);
    four.feed(more.data() + i, 1);
    if (i == 0) {
      EXPECT_EQ(every.last_logits(), four.last_logits());
    }
    for (int l = 0; l < n_layer(four); ++l)
      EXPECT_EQ(cm(four).stats(l).last_selected.size(), 3u) << "step " << i << " layer " << l;
  }
  EXPECT_EQ(cm(every).searches() - s_every, 12 * n_layer(every));
  EXPECT_EQ(cm(four).searches() - s_four, 3 * n_layer(four));
  EXPECT_EQ(cm(four).reused_selections() - r_four, 9 * n_layer(four));
  // A prompt's execution blocks always search.
  const int64_t before = cm(four).searches();
  four.feed(t.data() + 1, 16);
  EXPECT_EQ(cm(four).searches() - before, n_layer(four));
}

// A state saved in the middle of an interval (blocks spilled) continues exactly like the session
// that saved it: the candidates the next steps choose from are part of the state.
TEST(RetrievalInterval, StateSavedMidIntervalContinuesIdentically) {
  auto m = stories();
  TempDir dir;
  const SessionOptions so = options(*m, 4, 24 << 10, dir.path);
  auto store = open_dir_store(dir.path + "/store");
  const std::vector<int32_t> t = text_tokens(*m, 260, 3), more = text_tokens(*m, 14, 4);
  Session a(m, so);
  a.feed(t.data(), static_cast<int64_t>(t.size()));
  for (int i = 0; i < 6; ++i) a.feed(more.data() + i, 1);  // searched at steps 0 and 4
  save_session(a, *store, "s");
  Session b(m, so);
  ASSERT_TRUE(load_session(b, *store, "s"));
  const int64_t sa = cm(a).searches(), sb = cm(b).searches();
  for (int i = 6; i < 14; ++i) {
    a.feed(more.data() + i, 1);
    b.feed(more.data() + i, 1);
    EXPECT_EQ(a.last_logits(), b.last_logits()) << "step " << i;
  }
  EXPECT_EQ(cm(a).searches() - sa, 2 * n_layer(a));  // steps 8 and 12
  EXPECT_EQ(cm(b).searches() - sb, 2 * n_layer(b));
}

// A rollback forgets the blocks the next steps would have reused: the next decoding step
// searches, as in a session that read only the kept tokens.
TEST(RetrievalInterval, RollbackForgetsTheReusedBlocks) {
  auto m = stories();
  const SessionOptions so = options(*m, 8);
  const std::vector<int32_t> t = text_tokens(*m, 240, 5), more = text_tokens(*m, 4, 6);
  Session a(m, so), b(m, so);
  a.feed(t.data(), static_cast<int64_t>(t.size()));
  for (int i = 0; i < 3; ++i) a.feed(more.data() + i, 1);
  ASSERT_TRUE(a.truncate(static_cast<int64_t>(t.size())));
  b.feed(t.data(), static_cast<int64_t>(t.size()));
  const int64_t sa = cm(a).searches();
  a.feed(more.data(), 1);
  b.feed(more.data(), 1);
  EXPECT_EQ(cm(a).searches() - sa, n_layer(a));
  EXPECT_EQ(a.last_logits(), b.last_logits());
}

TEST(RetrievalInterval, MustBeAtLeastOne) {
  ContextMemoryOptions o;
  o.block_size = 16;
  o.topk = 4;
  o.repr_topk = 4;
  o.retrieval_interval = 0;
  try {
    validate_context_memory(o, 512);
    FAIL() << "accepted memory.retrieval_interval = 0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("memory.retrieval_interval must be >= 1"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lc
