// StreamingLLM and InfLLM memories: exactness against full attention where they must agree,
// block formation, sinks, representatives, retrieval and the positions every key is seen at.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/session.h"
#include "kernels/ops.h"
#include "memory/block_index.h"
#include "memory/context_memory.h"
#include "model/model.h"
#include "support/paths.h"

namespace lc {
namespace {

std::vector<float> randv(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd(0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

double max_rel_diff(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num = std::max(num, static_cast<double>(std::fabs(a[i] - b[i])));
    den = std::max(den, static_cast<double>(std::fabs(b[i])));
  }
  return num / den;
}

// Logits of every token with the given memory configuration.
std::vector<std::vector<float>> run(const std::shared_ptr<const Model>& m, const MemoryConfig& mc,
                                    const std::vector<int32_t>& toks, int64_t batch,
                                    const RopeSettings* rope = nullptr) {
  SessionOptions so;
  so.rope = rope ? *rope : m->rope();
  so.memory = mc;
  so.batch = batch;
  Session s(m, so);
  std::vector<std::vector<float>> out;
  const int64_t nv = m->hparams().n_vocab;
  s.eval_all(toks.data(), static_cast<int64_t>(toks.size()),
             [&](int64_t, const float* l) { out.emplace_back(l, l + nv); });
  return out;
}

std::vector<int32_t> some_tokens(int n) {
  std::vector<int32_t> t{1};
  for (int i = 1; i < n; ++i) t.push_back(3 + (i * 131 + i / 7) % 500);
  return t;
}

TEST(ContextMemory, InfllmWithEverythingVisibleEqualsFullAttention) {
  auto m = Model::load(test::shared_path("models/passkey-llama-tiny.gguf"));
  const auto toks = some_tokens(300);
  MemoryConfig full;
  const auto ref = run(m, full, toks, 64);
  MemoryConfig inf;
  inf.policy = MemoryPolicy::InfLLM;
  inf.ctx.n_local = 512;  // >= sequence length
  inf.ctx.n_init = 16;
  inf.ctx.block_size = 32;
  inf.ctx.topk = 64;  // >= number of blocks
  inf.ctx.exec_block = 48;
  for (int64_t batch : {int64_t{1}, int64_t{100}}) {
    const auto got = run(m, inf, toks, batch);
    for (size_t i = 0; i < toks.size(); ++i)
      ASSERT_LT(max_rel_diff(got[i].data(), ref[i].data(), static_cast<int64_t>(ref[i].size())),
                1e-4)
          << "token " << i << " batch " << batch;
  }
}

TEST(ContextMemory, StreamingWithWindowCoveringEverythingEqualsFullAttention) {
  auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  const auto toks = some_tokens(200);
  MemoryConfig full;
  const auto ref = run(m, full, toks, 32);
  MemoryConfig st;
  st.policy = MemoryPolicy::Streaming;
  st.ctx.n_local = 256;
  st.ctx.n_init = 4;
  st.ctx.exec_block = 32;
  const auto got = run(m, st, toks, 32);
  for (size_t i = 0; i < toks.size(); ++i)
    ASSERT_LT(max_rel_diff(got[i].data(), ref[i].data(), static_cast<int64_t>(ref[i].size())),
              1e-4);
}

// LongRoPE with n_hat and a short-list attention factor, the sequence crossing the original
// context (short -> long list): every memory rotates the same positions with the same tables, so
// with everything visible streaming and InfLLM equal full attention (which re-rotates its cached
// keys), and n_hat changes the result.
TEST(ContextMemory, LongRopeNHatAcrossTheSwitchEqualsFullAttention) {
  auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  const auto toks = some_tokens(200);
  RopeSettings r = m->rope();
  r.method = RopeMethod::LongRope;
  r.orig_ctx = 64;
  r.max_pos = 512;
  r.short_factors.assign(static_cast<size_t>(r.dim / 2), 1.0f);
  r.long_factors.clear();
  for (int i = 0; i < r.dim / 2; ++i) r.long_factors.push_back(1.0f + 2.0f * static_cast<float>(i));
  r.short_attn_factor = 1.0;
  RopeSettings no_hat = r;
  r.n_hat = 8;
  MemoryConfig full;
  const auto ref = run(m, full, toks, 24, &r);
  const auto ref0 = run(m, full, toks, 24, &no_hat);
  EXPECT_GT(
      max_rel_diff(ref0.back().data(), ref.back().data(), static_cast<int64_t>(ref.back().size())),
      1e-3);
  MemoryConfig st;
  st.policy = MemoryPolicy::Streaming;
  st.ctx.n_local = 256;
  st.ctx.n_init = 4;
  st.ctx.exec_block = 24;
  MemoryConfig inf;
  inf.policy = MemoryPolicy::InfLLM;
  inf.ctx.n_local = 256;
  inf.ctx.n_init = 4;
  inf.ctx.block_size = 32;
  inf.ctx.topk = 64;
  inf.ctx.exec_block = 24;
  for (const MemoryConfig* mc : {&st, &inf}) {
    const auto got = run(m, *mc, toks, 24, &r);
    for (size_t i = 0; i < toks.size(); ++i)
      ASSERT_LT(max_rel_diff(got[i].data(), ref[i].data(), static_cast<int64_t>(ref[i].size())),
                1e-4)
          << "token " << i;
  }
}

TEST(ContextMemory, FarPastTheTrainedContextLogitsStayFinite) {
  auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  const auto toks = some_tokens(1500);
  for (const char* policy : {"streaming", "infllm"}) {
    MemoryConfig c;
    c.policy = *memory_policy_from_name(policy);
    c.ctx.n_local = 128;
    c.ctx.n_init = 8;
    c.ctx.block_size = 16;
    c.ctx.topk = 4;
    c.ctx.exec_block = 64;
    const auto got = run(m, c, toks, 200);
    for (const auto& l : got)
      for (float x : l) ASSERT_TRUE(std::isfinite(x)) << policy;
  }
}

struct Fixture {
  MemoryDims md;
  ContextMemoryOptions o;
  RopeTable rt;
  Fixture() {
    md.n_layer = 1;
    md.attn = AttnDims{2, 1, 8, 0.35f};
    o.n_init = 2;
    o.n_local = 4;
    o.block_size = 3;
    o.topk = 1;
    o.repr_topk = 1;
    o.exec_block = 1;
    rt.dim = 8;
    rt.attn_factor = 1.0f;
    for (int i = 0; i < 4; ++i) rt.inv_freq.push_back(std::pow(100.0f, -2.0f * i / 8));
  }
};

TEST(ContextMemory, BlockFormationSinksAndRemainder) {
  Fixture f;
  ContextMemory mem(f.md, f.o);
  std::mt19937 rng(1);
  const int64_t n = 20;
  auto q = randv(n * 16, rng), k = randv(n * 8, rng), v = randv(n * 8, rng);
  std::vector<float> out(16);
  for (int64_t t = 0; t < n; ++t) {
    MemoryStep s{t, 1, &f.rt};
    std::vector<float> qt(q.begin() + t * 16, q.begin() + (t + 1) * 16);
    mem.attend(0, s, qt.data(), k.data() + t * 8, v.data() + t * 8, out.data());
    mem.commit(s);
    const auto st = mem.stats(0);
    const int64_t seen = t + 1;
    // Sinks are the first tokens to leave the window; blocks form once block_size tokens more
    // than the window have left; the window always stays in the remainder.
    EXPECT_EQ(st.n_init, std::min<int64_t>(2, std::max<int64_t>(0, seen - 4)));
    const int64_t beyond = std::max<int64_t>(0, seen - st.n_init - 4);
    EXPECT_EQ(st.n_blocks, beyond / 3) << "after " << seen;
    EXPECT_EQ(st.n_remainder, seen - st.n_init - 3 * st.n_blocks);
    EXPECT_GE(st.n_remainder, std::min<int64_t>(seen, 4));
  }
  // Block 0 holds tokens 2, 3, 4 (0 and 1 became sinks), unrotated.
  const auto views = const_cast<BlockStore&>(mem.store(0)).pin({0});
  ASSERT_EQ(views.size(), 1u);
  for (int64_t e = 0; e < 3 * 8; ++e) EXPECT_FLOAT_EQ(views[0].k[e], k[2 * 8 + e]);
  // Representatives (repr_topk 1) are one of the block's keys, per head (GQA: both heads read
  // the single KV head).
  for (int64_t b = 0; b < mem.stats(0).n_blocks; ++b) {
    const std::vector<float> rv = mem.block_repr(0, b);
    const float* r = rv.data();
    for (int h = 0; h < 2; ++h) {
      bool found = false;
      for (int64_t t = 2 + 3 * b; t < 5 + 3 * b; ++t)
        found = found || std::equal(r + h * 8, r + h * 8 + 8, k.data() + t * 8);
      EXPECT_TRUE(found) << "block " << b << " head " << h;
    }
  }
}

// Recomputes one decoding step by hand: local keys at their distances, every other key unrotated
// and seen from position n_local - 1, one softmax over all of them. Also with an attention factor
// m, and with LongRoPE's n_hat: unrotated keys count as keys at position 0, which below n_hat
// carry no attention factor (global logits m * 1), and without n_hat do (m * m).
TEST(ContextMemory, InfllmPositionsAndOneSoftmax) {
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    Fixture f;
    f.md.attn = AttnDims{1, 1, 8, 0.35f};
    f.o.topk = 2;
    if (variant > 0) {
      f.rt.attn_factor = 1.3f;
      for (float& x : f.rt.inv_freq) x *= 0.5f;
    }
    if (variant == 2) {
      f.rt.n_hat = 2;
      for (float x : f.rt.inv_freq) f.rt.start_inv_freq.push_back(2.0f * x);
    }
    const RopeTable& rt = f.rt;
    ContextMemory mem(f.md, f.o);
    std::mt19937 rng(5);
    const int64_t n = 17;
    auto q = randv(n * 8, rng), k = randv(n * 8, rng), v = randv(n * 8, rng);
    std::vector<float> out(8);
    for (int64_t t = 0; t < n; ++t) {
      MemoryStep s{t, 1, &f.rt};
      std::vector<float> qt(q.begin() + t * 8, q.begin() + (t + 1) * 8);
      mem.attend(0, s, qt.data(), k.data() + t * 8, v.data() + t * 8, out.data());
      mem.commit(s);
    }
    const auto st = mem.stats(0);
    ASSERT_EQ(st.last_selected.size(), 2u);
    // Which tokens are where after the last step (t = 16): sinks 0,1; blocks of 3 from token 2.
    const int64_t last = n - 1, rem0 = 2 + 3 * st.n_blocks;
    std::vector<std::pair<int64_t, bool>> keys;  // (token, local?)
    for (int64_t t = 0; t < 2; ++t) keys.push_back({t, false});
    for (int64_t b : st.last_selected)
      for (int64_t t = 2 + 3 * b; t < 5 + 3 * b; ++t) keys.push_back({t, false});
    for (int64_t t = rem0; t <= last; ++t) keys.push_back({t, last - t < 4});
    auto rot = [&](const float* x, double pos) {
      const bool start = pos < static_cast<double>(rt.n_hat);
      const double m = start ? 1.0 : rt.attn_factor;
      std::vector<float> y(x, x + 8);
      for (int i = 0; i < 4; ++i) {
        const double a = pos * (start ? rt.start_inv_freq[i] : rt.inv_freq[i]);
        const float c = static_cast<float>(m * std::cos(a)),
                    s = static_cast<float>(m * std::sin(a));
        y[2 * i] = x[2 * i] * c - x[2 * i + 1] * s;
        y[2 * i + 1] = x[2 * i] * s + x[2 * i + 1] * c;
      }
      return y;
    };
    const double key_factor = rt.n_hat > 0 ? 1.0 : rt.attn_factor;
    std::vector<double> logit;
    for (const auto& [t, local] : keys) {
      const auto qq =
          local ? rot(q.data() + last * 8, double(last)) : rot(q.data() + last * 8, 3.0);
      const auto kk = local ? rot(k.data() + t * 8, double(t))
                            : std::vector<float>(k.data() + t * 8, k.data() + t * 8 + 8);
      double dot = 0;
      for (int e = 0; e < 8; ++e) dot += double(qq[e]) * kk[e];
      logit.push_back(dot * 0.35 * (local ? 1.0 : key_factor));
    }
    const double mx = *std::max_element(logit.begin(), logit.end());
    double sum = 0;
    for (auto& x : logit) sum += (x = std::exp(x - mx));
    std::vector<double> ref(8, 0.0);
    for (size_t j = 0; j < keys.size(); ++j)
      for (int e = 0; e < 8; ++e) ref[e] += logit[j] / sum * v[keys[j].first * 8 + e];
    for (int e = 0; e < 8; ++e) EXPECT_NEAR(out[e], ref[e], 1e-5);
  }
}

TEST(ContextMemory, RetrievalPicksTheBlockMostAlignedWithTheQuery) {
  Fixture f;
  f.md.attn = AttnDims{1, 1, 8, 0.35f};
  f.o.topk = 1;
  ContextMemory mem(f.md, f.o);
  std::mt19937 rng(9);
  const int64_t n = 30;
  auto k = randv(n * 8, rng, 0.1f), v = randv(n * 8, rng);
  // Tokens 8..10 form block 2; make them point along one direction, and the last query too.
  for (int64_t t = 8; t <= 10; ++t)
    for (int e = 0; e < 8; ++e) k[t * 8 + e] = e == 0 ? 5.0f : 0.0f;
  std::vector<float> out(8);
  for (int64_t t = 0; t < n; ++t) {
    MemoryStep s{t, 1, &f.rt};
    std::vector<float> qt(8, 0.0f);
    qt[0] = t == n - 1 ? 1.0f : 0.01f;
    // Undo the rotation at n_local - 1 = 3 so the rotated global query points along e0.
    if (t == n - 1) {
      for (int i = 0; i < 4; ++i) {
        const double a = -3.0 * f.rt.inv_freq[i];
        const float x = qt[2 * i], y = qt[2 * i + 1];
        qt[2 * i] = float(x * std::cos(a) - y * std::sin(a));
        qt[2 * i + 1] = float(x * std::sin(a) + y * std::cos(a));
      }
    }
    mem.attend(0, s, qt.data(), k.data() + t * 8, v.data() + t * 8, out.data());
    mem.commit(s);
  }
  ASSERT_EQ(mem.stats(0).last_selected, std::vector<int64_t>{2});
}

TEST(ContextMemory, ValidationNamesTheConstraint) {
  ContextMemoryOptions o;
  o.n_local = 256;
  o.exec_block = 512;
  try {
    validate_context_memory(o, 512);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("memory.exec_block = 512 must be <= memory.n_local = 256"),
              std::string::npos);
  }
  o.exec_block = 128;
  o.repr_topk = 500;
  o.block_size = 128;
  EXPECT_THROW(validate_context_memory(o, 512), Error);
}

TEST(BlockIndex, BoundSearchIsExactAndACapTradesRecallForWork) {
  std::mt19937 rng(21);
  const int64_t dim = 64, n = 4000, k = 8;
  BlockIndexOptions io;
  io.dim = dim;
  io.group_size = 32;
  BlockIndex exact_idx(io);
  BlockIndexOptions capped = io;
  capped.max_groups = 64;
  BlockIndex cap_idx(capped);
  // Slowly drifting representatives, like consecutive text blocks.
  std::vector<float> cur = randv(dim, rng);
  for (int64_t b = 0; b < n; ++b) {
    auto step = randv(dim, rng, 0.3f);
    for (int64_t e = 0; e < dim; ++e) cur[e] = 0.9f * cur[e] + step[e];
    exact_idx.add(cur.data());
    cap_idx.add(cur.data());
  }
  double hits = 0, total = 0, scored = 0;
  for (int trial = 0; trial < 50; ++trial) {
    const auto q = randv(dim, rng);
    const auto ref = exact_idx.top_k_exact(q.data(), k);
    EXPECT_EQ(exact_idx.top_k(q.data(), k), ref);  // bound pruning alone is exact
    const auto got = cap_idx.top_k(q.data(), k);
    scored += static_cast<double>(cap_idx.last_scored());
    for (int64_t id : got) hits += static_cast<double>(std::count(ref.begin(), ref.end(), id));
    total += k;
  }
  // Random queries against a random walk are the hard case for box bounds: the cap visits half
  // the groups and still finds most of the true top-k.
  EXPECT_LT(scored / 50, 0.6 * n);
  EXPECT_GE(hits / total, 0.85);
}

// Representatives like text: runs of blocks about one of a few hundred topics, plus noise.
std::vector<float> topic_blocks(int64_t n, int64_t dim, std::mt19937& rng) {
  std::vector<std::vector<float>> topics;
  for (int t = 0; t < 300; ++t) topics.push_back(randv(static_cast<size_t>(dim), rng));
  std::vector<float> out;
  size_t cur = 0;
  for (int64_t b = 0; b < n; ++b) {
    if (b % 8 == 0) cur = rng() % topics.size();
    const auto noise = randv(static_cast<size_t>(dim), rng, 0.5f);
    for (int64_t e = 0; e < dim; ++e) out.push_back(topics[cur][e] + noise[e]);
  }
  return out;
}

TEST(BlockIndex, ExactModeAndUncappedSearchEqualBruteForce) {
  std::mt19937 rng(5);
  const int64_t dim = 48, n = 3000;
  const auto data = topic_blocks(n, dim, rng);
  BlockIndexOptions io;
  io.dim = dim;
  io.group_size = 16;
  io.max_clusters = 64;
  BlockIndexOptions ex = io;
  ex.exact = true;
  BlockIndex idx(io), exact(ex);
  for (int64_t b = 0; b < n; ++b) {
    idx.add(data.data() + b * dim);
    exact.add(data.data() + b * dim);
  }
  EXPECT_GT(idx.clusters(), 8);
  EXPECT_LE(idx.clusters(), 64);
  for (int trial = 0; trial < 40; ++trial) {
    const auto q = randv(static_cast<size_t>(dim), rng);
    for (int64_t k : {1, 5, 16}) {
      // Brute force, ties to the lower id.
      std::vector<std::pair<float, int64_t>> all;
      for (int64_t b = 0; b < n; ++b)
        all.emplace_back(dot_f32(q.data(), idx.repr(b).data(), dim), b);
      std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      std::vector<int64_t> ref;
      for (int64_t i = 0; i < k; ++i) ref.push_back(all[static_cast<size_t>(i)].second);
      EXPECT_EQ(exact.top_k(q.data(), k), ref);
      EXPECT_EQ(idx.top_k_exact(q.data(), k), ref);
      EXPECT_EQ(idx.top_k(q.data(), k), ref);  // no cap: the bounds prove the result exact
    }
  }
  // k beyond the size returns everything, best first.
  BlockIndex small(io);
  for (int64_t b = 0; b < 3; ++b) small.add(data.data() + b * dim);
  EXPECT_EQ(small.top_k(data.data(), 10).size(), 3u);
}

// Once clusters stop splitting they grow past group_size; a search then bounds each chunk of a
// cluster (group_size members in an order that keeps chunks compact) and scores only chunks that
// could beat the k-th. The result stays exact, the work stays near what small clusters cost, and
// re-ordering a cluster's pages reuses their spill records (the file stays about one copy).
TEST(BlockIndex, LargeClustersAreSearchedByChunks) {
  lc::test::ScopedTempDir dir;
  std::mt19937 rng(12);
  const int64_t dim = 48, n = 6000, rank = 6;
  // Keys vary along a few directions mostly: each block a random mix of `rank` directions, plus
  // a little noise.
  std::vector<std::vector<float>> dirs;
  for (int64_t j = 0; j < rank; ++j) dirs.push_back(randv(static_cast<size_t>(dim), rng));
  std::vector<float> data;
  for (int64_t b = 0; b < n; ++b) {
    const auto z = randv(static_cast<size_t>(rank), rng);
    auto r = randv(static_cast<size_t>(dim), rng, 0.1f);
    for (int64_t j = 0; j < rank; ++j)
      for (int64_t e = 0; e < dim; ++e)
        r[static_cast<size_t>(e)] +=
            z[static_cast<size_t>(j)] * dirs[static_cast<size_t>(j)][static_cast<size_t>(e)];
    data.insert(data.end(), r.begin(), r.end());
  }
  BlockIndexOptions io;
  io.dim = dim;
  io.group_size = 32;
  io.max_clusters = 8;
  io.pages.mem_budget = 64 << 10;
  io.pages.spill_dir = dir.path;
  BlockIndex idx(io);
  for (int64_t b = 0; b < n; ++b) {
    idx.add(data.data() + b * dim);
  }
  EXPECT_LE(idx.clusters(), 8);
  double scored = 0;
  for (int trial = 0; trial < 30; ++trial) {
    // A query like some of the stored blocks (a decoding step's query resembles what it reads).
    auto q = randv(static_cast<size_t>(dim), rng, 0.5f);
    const int64_t like = static_cast<int64_t>(rng() % n);
    for (int64_t e = 0; e < dim; ++e) q[static_cast<size_t>(e)] += data[like * dim + e];
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t b = 0; b < n; ++b)
      all.emplace_back(dot_f32(q.data(), data.data() + b * dim, dim), b);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::vector<int64_t> ref;
    for (int64_t i = 0; i < 10; ++i) ref.push_back(all[static_cast<size_t>(i)].second);
    EXPECT_EQ(idx.top_k(q.data(), 10), ref);
    scored += static_cast<double>(idx.last_scored());
  }
  // (Scoring the clusters it visits whole, the same search scores 97% of the blocks. Its two lanes
  // each find their own top k, 34% in all; one lane for all clusters scored 27%.)
  EXPECT_LT(scored / 30, 0.4 * n);
  const double one_copy = static_cast<double>(n * dim) * sizeof(float);
  EXPECT_LT(static_cast<double>(idx.page_store().bytes_on_disk()), 1.5 * one_copy);
}

// A budget too small for one decoding step's blocks or index pages is reported with the size
// that would fit; a sufficient one is not.
TEST(ContextMemory, BudgetWarningNamesTheSizeThatFits) {
  MemoryDims dims;
  dims.n_layer = 5;
  dims.attn.n_head = 8;
  dims.attn.n_head_kv = 4;
  dims.attn.head_dim = 8;
  ContextMemoryOptions o;
  o.block_size = 16;
  o.topk = 14;
  o.index_budget = 512;
  o.store.mem_budget = 0;
  EXPECT_EQ(budget_warning(o, dims), "");  // unlimited
  o.store.mem_budget = 16u << 20;
  EXPECT_EQ(budget_warning(o, dims), "");
  o.store.mem_budget = 100u << 10;
  const std::string w = budget_warning(o, dims);
  EXPECT_NE(w.find("memory.mem_budget 100 KiB"), std::string::npos) << w;
  EXPECT_NE(w.find("of the 14 blocks"), std::string::npos) << w;
  EXPECT_NE(w.find("about 2 MiB"), std::string::npos) << w;
  // Shared by what a step reads: 512 representatives of 64 floats against 14 blocks of 16 tokens
  // (keys and values, 32 floats a row).
  const BudgetShare s = share_budget(16u << 20, o, dims);
  const size_t per_layer = (16u << 20) / 5;
  EXPECT_EQ(s.blocks + s.pages, per_layer);
  const double scored = 512.0 * 64 * 4, blocks = 14.0 * 2 * 16 * 32 * 4;
  EXPECT_NEAR(static_cast<double>(s.pages), per_layer * scored / (scored + blocks), 1.0);
  EXPECT_EQ(share_budget(0, o, dims).pages, 0u);
}

// Repeated text gives blocks with equal representatives: such a cluster costs one score however
// large it grows, so a small budget still reaches the one block that differs (the needle), and
// the result equals exact search (ties to the lower id) with and without the budget.
TEST(BlockIndex, RepeatedRepresentativesCostOneScorePerCluster) {
  std::mt19937 rng(8);
  const int64_t dim = 32, period = 7, n = 4000, needle = 2345;
  std::vector<std::vector<float>> phase;
  for (int64_t p = 0; p < period; ++p) phase.push_back(randv(static_cast<size_t>(dim), rng));
  std::vector<float> odd = randv(static_cast<size_t>(dim), rng);
  BlockIndexOptions io;
  io.dim = dim;
  io.max_scored = 64;
  BlockIndexOptions ex = io;
  ex.exact = true;
  BlockIndexOptions uncapped = io;
  uncapped.max_scored = 0;
  BlockIndex idx(io), exact(ex), full(uncapped);
  for (int64_t b = 0; b < n; ++b) {
    const float* r = b == needle ? odd.data() : phase[static_cast<size_t>(b % period)].data();
    idx.add(r);
    exact.add(r);
    full.add(r);
  }
  EXPECT_LE(idx.clusters(), period + 2);  // equal representatives cannot be split apart
  for (int trial = 0; trial < 20; ++trial) {
    auto q = randv(static_cast<size_t>(dim), rng);
    if (trial % 2 == 0)  // half the queries look for the needle
      for (int64_t e = 0; e < dim; ++e)
        q[static_cast<size_t>(e)] += 3.0f * odd[static_cast<size_t>(e)];
    for (int64_t k : {1, 5, 14}) {
      const auto ref = exact.top_k(q.data(), k);
      EXPECT_EQ(idx.top_k(q.data(), k), ref) << trial << " k " << k;
      EXPECT_LE(idx.last_scored(), 2 * (period + 2));
      EXPECT_EQ(full.top_k(q.data(), k), ref);
      if (trial % 2 == 0) {
        EXPECT_EQ(ref[0], needle);
      }
    }
  }
}

TEST(BlockIndex, BudgetedSearchHasHighRecallAndBoundedWork) {
  std::mt19937 rng(9);
  const int64_t dim = 64, k = 5;
  BlockIndexOptions io;
  io.dim = dim;
  io.group_size = 32;
  io.max_clusters = 1024;  // the memory's defaults
  io.max_scored = 512;
  int64_t max_work = 0;
  for (int64_t n : {4096, 16384, 32768}) {
    const auto data = topic_blocks(n, dim, rng);
    BlockIndex idx(io);
    for (int64_t b = 0; b < n; ++b) idx.add(data.data() + b * dim);
    EXPECT_LE(idx.clusters(), 1024);
    double hits = 0, total = 0;
    int64_t work = 0;
    for (int trial = 0; trial < 100; ++trial) {
      // Queries near a random block's topic, like a decoding query that matches some memory.
      const int64_t near = static_cast<int64_t>(rng() % static_cast<unsigned>(n));
      auto q = randv(static_cast<size_t>(dim), rng, 0.5f);
      for (int64_t e = 0; e < dim; ++e) q[static_cast<size_t>(e)] += data[near * dim + e];
      const auto ref = idx.top_k_exact(q.data(), k);
      const auto got = idx.top_k(q.data(), k);
      work = std::max(work, idx.last_scored() + idx.last_bounds());
      if (trial < 10) {
        // The search's lanes run on one thread or two with the same result.
        const int threads = num_threads();
        set_num_threads(threads == 1 ? 2 : 1);
        std::vector<float> s1, s2;
        const auto again = idx.top_k(q.data(), k, &s1);
        const int64_t scored_again = idx.last_scored();
        set_num_threads(threads);
        EXPECT_EQ(again, got);
        EXPECT_EQ(idx.top_k(q.data(), k, &s2), got);
        EXPECT_EQ(s1, s2);
        EXPECT_EQ(scored_again, idx.last_scored());
      }
      // The cluster that crosses the budget is finished; clusters hold at most a few times
      // group_size members (they stop splitting only at max_clusters).
      EXPECT_LE(idx.last_scored(), io.max_scored + 8 * io.group_size);
      for (int64_t id : got) hits += static_cast<double>(std::count(ref.begin(), ref.end(), id));
      total += static_cast<double>(ref.size());
    }
    EXPECT_GE(hits / total, 0.95) << n << " blocks";
    if (n == 16384) max_work = work;
    if (n == 32768) {
      EXPECT_LE(work, max_work * 3 / 2) << "work must not grow with the blocks";
    }
  }
}

// A needle that differs from ordinary blocks in a few dimensions only is not far enough to start
// a cluster of its own: it joins ordinary blocks, whose mean hides it from a query about those
// dimensions. The budgeted search still finds it (clusters are also taken by their most
// query-like reach, not only by their mean).
TEST(BlockIndex, NeedleHiddenInACrowdIsFoundWithinBudget) {
  std::mt19937 rng(13);
  const int64_t dim = 64, n = 16384, k = 5;
  auto data = topic_blocks(n, dim, rng);
  BlockIndexOptions io;
  io.dim = dim;
  io.max_scored = 512;  // the memory's defaults
  int found = 0, trials = 0;
  for (int64_t needle : {1000, 7000, 12345}) {
    BlockIndex idx(io);
    std::vector<float> r(data.begin() + needle * dim, data.begin() + (needle + 1) * dim);
    r[3] += 6.0f;
    r[17] += 6.0f;
    for (int64_t b = 0; b < n; ++b) idx.add(b == needle ? r.data() : data.data() + b * dim);
    for (int trial = 0; trial < 10; ++trial) {
      auto q = randv(static_cast<size_t>(dim), rng, 0.05f);
      q[3] += 1.0f;
      q[17] += 1.0f;
      const auto ref = idx.top_k_exact(q.data(), k);
      ASSERT_EQ(ref[0], needle) << "the needle is the best block by construction";
      const auto got = idx.top_k(q.data(), k);
      found += std::count(got.begin(), got.end(), needle) > 0;
      ++trials;
      EXPECT_LE(idx.last_scored(), io.max_scored + 8 * io.group_size);
    }
  }
  EXPECT_EQ(found, trials);
}

}  // namespace
}  // namespace lc
