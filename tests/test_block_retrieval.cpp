// Block retrieval (memory/block_retrieval.h): each way of combining per-head scores against a
// scalar brute-force reference, neighbours, and the retrieval trace (events and their JSON).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "engine/retrieval_trace_file.h"
#include "memory/block_retrieval.h"

namespace lc {
namespace {

constexpr int64_t kHeads = 4, kHd = 8, kDim = kHeads * kHd;

// Representatives in topics (clusters), each head with its own scale: head 0 varies a lot,
// head 3 little.
std::vector<float> make_reps(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> topics(8 * kDim);
  for (auto& x : topics) x = nd(rng);
  std::vector<float> r(static_cast<size_t>(n * kDim));
  for (int64_t b = 0; b < n; ++b) {
    const int64_t t = b % 8;
    for (int64_t h = 0; h < kHeads; ++h) {
      const float scale = 4.0f / static_cast<float>(1 + 3 * h);
      for (int64_t e = 0; e < kHd; ++e) {
        const int64_t i = h * kHd + e;
        r[b * kDim + i] = scale * (topics[t * kDim + i] + 0.5f * nd(rng));
      }
    }
  }
  return r;
}

// The combined score of every block, computed directly in double.
std::vector<double> reference_scores(const std::vector<float>& reps, int64_t n, const float* q,
                                     HeadScore how) {
  std::vector<double> mu(kHeads, 0), sd(kHeads, 0), out(static_cast<size_t>(n));
  std::vector<double> dots(static_cast<size_t>(n * kHeads));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t h = 0; h < kHeads; ++h) {
      double d = 0;
      for (int64_t e = 0; e < kHd; ++e)
        d += static_cast<double>(q[h * kHd + e]) * reps[b * kDim + h * kHd + e];
      dots[b * kHeads + h] = d;
    }
  for (int64_t h = 0; h < kHeads; ++h) {
    for (int64_t b = 0; b < n; ++b) mu[h] += dots[b * kHeads + h] / n;
    for (int64_t b = 0; b < n; ++b) sd[h] += std::pow(dots[b * kHeads + h] - mu[h], 2) / n;
    sd[h] = std::sqrt(sd[h]);
  }
  for (int64_t b = 0; b < n; ++b) {
    double s = how == HeadScore::Max ? -1e300 : 0;
    for (int64_t h = 0; h < kHeads; ++h) {
      const double d = dots[b * kHeads + h];
      if (how == HeadScore::Sum) s += d;
      if (how == HeadScore::Norm) s += (d - mu[h]) / sd[h];
      if (how == HeadScore::Max) s = std::max(s, (d - mu[h]) / sd[h]);
    }
    out[static_cast<size_t>(b)] = s;
  }
  return out;
}

std::vector<int64_t> best(const std::vector<double>& s, int64_t k) {
  std::vector<int64_t> ids(s.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
  ids.resize(static_cast<size_t>(k));
  return ids;
}

BlockIndexOptions index_options(int64_t max_scored) {
  BlockIndexOptions io;
  io.dim = kDim;
  io.group_size = 16;
  io.max_clusters = 64;
  io.max_scored = max_scored;
  return io;
}

BlockRetrievalOptions retrieval_options(HeadScore how, int64_t topk, int64_t neighbors = 0) {
  BlockRetrievalOptions o;
  o.n_head = kHeads;
  o.head_dim = kHd;
  o.topk = topk;
  o.head_score = how;
  o.neighbors = neighbors;
  o.block_size = 16;
  o.first_pos = 32;
  return o;
}

TEST(BlockRetrieval, EveryHeadScoreEqualsTheScalarReference) {
  std::mt19937 rng(3);
  const int64_t n = 1500, k = 8;
  const auto reps = make_reps(n, rng);
  std::normal_distribution<float> nd(0, 1);
  for (HeadScore how : {HeadScore::Sum, HeadScore::Norm, HeadScore::Max}) {
    BlockRetrieval r(index_options(0), retrieval_options(how, k));  // uncapped: exact
    for (int64_t b = 0; b < n; ++b) r.add(reps.data() + b * kDim);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> q(kDim);
      for (auto& x : q) x = nd(rng);
      const std::vector<double> ref = reference_scores(reps, n, q.data(), how);
      std::vector<int64_t> want = best(ref, k);
      // The exact search returns the reference's order, scores within rounding.
      std::vector<float> got_scores;
      const std::vector<int64_t> exact = r.top_k_exact(q.data(), k, &got_scores);
      ASSERT_EQ(exact.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_NEAR(got_scores[i], ref[static_cast<size_t>(want[i])],
                    1e-3 * (1 + std::fabs(ref[static_cast<size_t>(want[i])])))
            << head_score_name(how);
        EXPECT_NEAR(r.score(q.data(), reps.data() + want[i] * kDim),
                    ref[static_cast<size_t>(want[i])], 1e-3 * (1 + std::fabs(ref[want[i]])));
      }
      EXPECT_EQ(exact, want) << head_score_name(how) << " trial " << trial;
      // select() through the index gives the same set.
      RetrievalCounters c;
      std::vector<int64_t> sel;
      r.select(q.data(), 1, sel, c, nullptr, 0, 0);
      std::sort(want.begin(), want.end());
      EXPECT_EQ(sel, want) << head_score_name(how) << " trial " << trial;
    }
  }
}

TEST(BlockRetrieval, MaxThroughOneSlicedIndexSearchEqualsTheScalarReference) {
  std::mt19937 rng(8);
  const int64_t n = 3000, k = 8;
  const auto reps = make_reps(n, rng);
  BlockRetrievalOptions o = retrieval_options(HeadScore::Max, k);
  BlockRetrieval r(index_options(0), o);  // one search by the maximum over heads (uncapped: exact)
  for (int64_t b = 0; b < n; ++b) r.add(reps.data() + b * kDim);
  std::normal_distribution<float> nd(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> q(kDim);
    for (auto& x : q) x = nd(rng);
    std::vector<int64_t> want = best(reference_scores(reps, n, q.data(), HeadScore::Max), k);
    RetrievalCounters c;
    std::vector<int64_t> sel;
    r.select(q.data(), 1, sel, c, nullptr, 0, 0);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(sel, want) << "trial " << trial;
    EXPECT_EQ(c.searches, 1);
  }
}

// A keeping search keeps the pool best blocks (with their representatives); reselect() with
// another query ranks exactly those by the reference score: the k best of the pool under the new
// query, whatever the cap of the index. With a pool as large as the memory it equals a search.
TEST(BlockRetrieval, ReselectRanksTheKeptCandidatesLikeTheScalarReference) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0, 1);
  const int64_t n = 2000, k = 6;
  const auto reps = make_reps(n, rng);
  for (int64_t pool : {int64_t{24}, n}) {
    BlockRetrievalOptions o = retrieval_options(HeadScore::Max, k);
    o.pool = pool;
    BlockRetrieval r(index_options(pool == n ? 0 : 256), o);
    for (int64_t b = 0; b < n; ++b) r.add(reps.data() + b * kDim);
    for (int trial = 0; trial < 10; ++trial) {
      std::vector<float> q1(kDim), q2(kDim);
      for (auto& x : q1) x = nd(rng);
      for (size_t e = 0; e < q2.size(); ++e) q2[e] = q1[e] + (trial % 2 ? 0.3f : 2.0f) * nd(rng);
      RetrievalCounters c;
      std::vector<int64_t> first, again;
      r.select(q1.data(), 1, first, c, nullptr, 0, 0, true);
      EXPECT_EQ(first.size(), static_cast<size_t>(k));
      const std::vector<int64_t> kept = r.pool();
      ASSERT_EQ(kept.size(), static_cast<size_t>(pool));
      // The first k kept are the attended ones.
      std::vector<int64_t> head(kept.begin(), kept.begin() + k);
      std::sort(head.begin(), head.end());
      EXPECT_EQ(first, head) << "trial " << trial;
      ASSERT_TRUE(r.reselect(q2.data(), again, nullptr, 0, 1));
      const std::vector<double> ref = reference_scores(reps, n, q2.data(), HeadScore::Max);
      std::vector<int64_t> want = kept;
      std::stable_sort(want.begin(), want.end(), [&](int64_t a, int64_t b) {
        return ref[static_cast<size_t>(a)] > ref[static_cast<size_t>(b)] ||
               (ref[static_cast<size_t>(a)] == ref[static_cast<size_t>(b)] && a < b);
      });
      want.resize(static_cast<size_t>(k));
      std::sort(want.begin(), want.end());
      EXPECT_EQ(again, want) << "pool " << pool << " trial " << trial;
      if (pool == n) {
        std::vector<int64_t> searched;
        r.select(q2.data(), 1, searched, c, nullptr, 0, 1);
        EXPECT_EQ(again, searched) << "trial " << trial;
        EXPECT_TRUE(r.pool().empty());  // a search that does not keep drops the candidates
        std::vector<int64_t> none;
        EXPECT_FALSE(r.reselect(q2.data(), none, nullptr, 0, 2));
      }
    }
  }
}

// The index searched by the maximum over slices (per-head scores less an offset each): uncapped it
// equals scoring every block; capped, its work stays within the cap (plus the cluster that crosses
// it, at most twice the average size here) and it still finds most of the exact top k.
TEST(BlockRetrieval, SlicedIndexSearchIsExactUncappedAndBoundedCapped) {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0, 1);
  const int64_t k = 8;
  const float off[kHeads] = {0.5f, -1.0f, 2.0f, 0.0f};
  const BlockSlices slices{kHeads, off};
  for (int64_t n : {2000, 8000}) {
    const auto reps = make_reps(n, rng);
    BlockIndex exact(index_options(0)), capped(index_options(256));
    for (int64_t b = 0; b < n; ++b) {
      exact.add(reps.data() + b * kDim);
      capped.add(reps.data() + b * kDim);
    }
    int64_t hits = 0, total = 0;
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> q(kDim);
      for (auto& x : q) x = nd(rng);
      // Reference: the maximum over heads of q_h.r_h - off_h, in double.
      std::vector<double> ref(static_cast<size_t>(n));
      for (int64_t b = 0; b < n; ++b) {
        double m = -1e300;
        for (int64_t h = 0; h < kHeads; ++h) {
          double d = 0;
          for (int64_t e = 0; e < kHd; ++e)
            d += static_cast<double>(q[h * kHd + e]) * reps[b * kDim + h * kHd + e];
          m = std::max(m, d - off[h]);
        }
        ref[static_cast<size_t>(b)] = m;
      }
      const std::vector<int64_t> want = best(ref, k);
      std::vector<float> sc;
      EXPECT_EQ(exact.top_k(q.data(), k, &sc, slices), want) << "n " << n << " trial " << trial;
      EXPECT_EQ(exact.top_k_exact(q.data(), k, nullptr, slices), want);
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(sc[i], ref[static_cast<size_t>(want[i])], 1e-3 * (1 + std::fabs(sc[i])));
      const std::vector<int64_t> got = capped.top_k(q.data(), k, nullptr, slices);
      EXPECT_LE(capped.last_scored(), 256 + 2 * n / 64);  // the cap + the cluster crossing it
      for (int64_t id : got) hits += std::count(want.begin(), want.end(), id);
      total += k;
    }
    // (8 broad topics of 250-1,000 blocks each and random queries: hard for a cap of 256; a
    // random choice would find k / n of them.)
    EXPECT_GE(static_cast<double>(hits) / static_cast<double>(total), 0.6) << "n " << n;
  }
}

TEST(BlockRetrieval, MaxFindsABlockOneHeadSinglesOutWhereTheSumDoesNot) {
  std::mt19937 rng(4);
  const int64_t n = 800, needle = 377;
  auto reps = make_reps(n, rng);
  std::vector<float> q(kDim, 0.0f);
  std::normal_distribution<float> nd(0, 1);
  for (int64_t i = 0; i < kHd; ++i) q[i] = nd(rng);  // head 0: a loud positional head
  // Head 3 (small scale) looks for one direction; only the needle has it, weakly in absolute
  // terms but far outside head 3's spread.
  for (int64_t e = 0; e < kHd; ++e) q[3 * kHd + e] = e == 0 ? 1.0f : 0.0f;
  for (int64_t b = 0; b < n; ++b) reps[b * kDim + 3 * kHd] = 0.05f * nd(rng);
  reps[needle * kDim + 3 * kHd] = 1.5f;
  auto selected = [&](HeadScore how) {
    BlockRetrieval r(index_options(0), retrieval_options(how, 4));
    for (int64_t b = 0; b < n; ++b) r.add(reps.data() + b * kDim);
    RetrievalCounters c;
    std::vector<int64_t> sel;
    r.select(q.data(), 1, sel, c, nullptr, 0, 0);
    return std::find(sel.begin(), sel.end(), needle) != sel.end();
  };
  EXPECT_FALSE(selected(HeadScore::Sum));
  EXPECT_TRUE(selected(HeadScore::Max));
}

TEST(BlockRetrieval, NeighboursOfTheBestBlocksJoinTheSelection) {
  std::mt19937 rng(5);
  const int64_t n = 300;
  const auto reps = make_reps(n, rng);
  std::vector<float> q(reps.begin() + 150 * kDim, reps.begin() + 151 * kDim);  // block 150's
  BlockRetrieval plain(index_options(0), retrieval_options(HeadScore::Max, 6, 0));
  BlockRetrieval with(index_options(0), retrieval_options(HeadScore::Max, 6, 2));
  for (int64_t b = 0; b < n; ++b) {
    plain.add(reps.data() + b * kDim);
    with.add(reps.data() + b * kDim);
  }
  RetrievalCounters c;
  std::vector<int64_t> a, b;
  plain.select(q.data(), 1, a, c, nullptr, 0, 0);
  with.select(q.data(), 1, b, c, nullptr, 0, 0);
  std::vector<float> sc;
  const auto ranked = plain.top_k_exact(q.data(), 6, &sc);
  ASSERT_EQ(b.size(), 6u);
  // The two best and their neighbours (where they exist), then the next best.
  for (int i = 0; i < 2; ++i)
    for (int64_t x : {ranked[i] - 1, ranked[i], ranked[i] + 1})
      if (x >= 0 && x < n) {
        EXPECT_TRUE(std::count(b.begin(), b.end(), x)) << x;
      }
  EXPECT_EQ(a.size(), 6u);
}

// Collects the events.
class Collect final : public RetrievalTrace {
 public:
  void record(const RetrievalEvent& e) override { events.push_back(e); }
  std::vector<RetrievalEvent> events;
};

TEST(BlockRetrieval, TraceRanksTheNeedleBlocksLikeBruteForce) {
  std::mt19937 rng(6);
  const int64_t n = 500, k = 5;
  const auto reps = make_reps(n, rng);
  BlockRetrieval r(index_options(64), retrieval_options(HeadScore::Max, k));
  for (int64_t b = 0; b < n; ++b) r.add(reps.data() + b * kDim);
  Collect trace;
  // Tokens 32 + 16 * 200 + 10 .. + 30: blocks 200 and 201.
  trace.set_needle(32 + 16 * 200 + 10, 32 + 16 * 200 + 30);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> q(kDim);
  for (auto& x : q) x = nd(rng);
  RetrievalCounters c;
  std::vector<int64_t> sel;
  r.select(q.data(), 1, sel, c, &trace, 2, 9000);
  ASSERT_EQ(trace.events.size(), 1u);
  const RetrievalEvent& e = trace.events[0];
  EXPECT_EQ(e.layer, 2);
  EXPECT_EQ(e.pos, 9000);
  EXPECT_EQ(e.n_blocks, n);
  EXPECT_EQ(e.chosen.size(), static_cast<size_t>(k));
  EXPECT_EQ(e.scores.size(), static_cast<size_t>(k));
  ASSERT_EQ(e.needle.size(), 2u);
  const auto ref = reference_scores(reps, n, q.data(), HeadScore::Max);
  for (const RetrievalEvent::Needle& nd2 : e.needle) {
    int64_t rank = 0;
    for (int64_t b = 0; b < n; ++b) rank += ref[b] > ref[nd2.block] + 1e-6;
    EXPECT_NEAR(static_cast<double>(nd2.rank_exact), static_cast<double>(rank), 1.0);
    for (int64_t h = 0; h < kHeads; ++h) {
      int64_t rh = 0;
      auto dot = [&](int64_t b) {
        double d = 0;
        for (int64_t x = 0; x < kHd; ++x) d += q[h * kHd + x] * reps[b * kDim + h * kHd + x];
        return d;
      };
      for (int64_t b = 0; b < n; ++b) rh += dot(b) > dot(nd2.block) + 1e-6;
      EXPECT_NEAR(static_cast<double>(nd2.rank_head[h]), static_cast<double>(rh), 1.0);
    }
    EXPECT_EQ(nd2.chosen, std::count(sel.begin(), sel.end(), nd2.block) > 0);
  }
  // The JSON line carries the same.
  const auto j = nlohmann::json::parse(retrieval_event_json(e));
  EXPECT_EQ(j.at("layer"), 2);
  EXPECT_EQ(j.at("pos"), 9000);
  EXPECT_EQ(j.at("blocks"), n);
  EXPECT_EQ(j.at("chosen").size(), static_cast<size_t>(k));
  EXPECT_EQ(j.at("needle").size(), 2u);
  EXPECT_EQ(j.at("needle")[0].at("block"), 200);
  EXPECT_EQ(j.at("needle")[0].at("rank"), e.needle[0].rank_exact);
  EXPECT_EQ(j.at("needle")[0].at("rank_head").size(), static_cast<size_t>(kHeads));
}

}  // namespace
}  // namespace lc
