// InfLLM memory micro-benchmark (not run by ctest): per-decode-step cost against the number of
// memory blocks, split into block search (index vs exact, with recall), block fetch (RAM hits and
// spill reads under a small --mem-budget) and a whole ContextMemory decode step.
//
//   bench_memory [index|store|decode|all] [--dim 64] [--layers 5] [--budget-mib 16]
//
// Data is synthetic but structured like text: representatives and keys follow "stories" (runs of
// blocks about one topic drawn from a fixed topic set, plus noise), and queries are topics seen
// before plus noise, so nearest blocks exist and cluster. Sizes are in tokens with the defaults
// for a 512-token model (block 32, topk 5, n_local 256, n_init 32, exec_block 256).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "memory/block_index.h"
#include "memory/block_store.h"
#include "memory/context_memory.h"

namespace {

using Clock = std::chrono::steady_clock;
int64_t g_budget = 512, g_clusters = 1024;
double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

struct Topics {
  int64_t dim;
  std::vector<std::vector<float>> t;
  Topics(int64_t d, int n, std::mt19937& rng) : dim(d) {
    std::normal_distribution<float> nd(0, 1);
    for (int i = 0; i < n; ++i) {
      std::vector<float> v(static_cast<size_t>(d));
      for (auto& x : v) x = nd(rng);
      t.push_back(v);
    }
  }
};

// A stream of block vectors: stories of 4..20 blocks on one topic (a mixture of two topics).
struct Stream {
  const Topics& tp;
  std::mt19937 rng;
  int left = 0, a = 0, b = 0;
  float mix = 0;
  Stream(const Topics& t, unsigned seed) : tp(t), rng(seed) {}
  void next(float* out, float noise) {
    if (left == 0) {
      a = static_cast<int>(rng() % tp.t.size());
      b = static_cast<int>(rng() % tp.t.size());
      mix = std::uniform_real_distribution<float>(0, 0.5f)(rng);
      left = 4 + static_cast<int>(rng() % 17);
    }
    --left;
    std::normal_distribution<float> nd(0, noise);
    for (int64_t e = 0; e < tp.dim; ++e)
      out[e] = (1 - mix) * tp.t[a][e] + mix * tp.t[b][e] + nd(rng);
  }
};

void bench_index(int64_t dim) {
  std::printf("\n# block search, dim %lld, topk 5: microseconds per search (median of 400)\n",
              static_cast<long long>(dim));
  std::printf("%9s %8s | %9s | %9s %8s %8s %7s | %9s %7s\n", "tokens", "blocks", "exact us",
              "index us", "scored", "bounds", "recall", "b=0 us", "scored");
  for (int64_t tokens : {8192LL, 65536LL, 262144LL, 1048576LL}) {
    const int64_t nb = tokens / 32, k = 5;
    std::mt19937 rng(7);
    Topics tp(dim, 400, rng);
    Stream st(tp, 11);
    lc::BlockIndexOptions io;
    io.dim = dim;
    io.max_scored = g_budget;
    io.max_clusters = g_clusters;
    lc::BlockIndex idx(io);
    lc::BlockIndexOptions io0 = io;
    io0.max_scored = 0;
    lc::BlockIndex exact_bound(io0);
    std::vector<float> r(static_cast<size_t>(dim));
    for (int64_t b = 0; b < nb; ++b) {
      st.next(r.data(), 0.6f);
      idx.add(r.data());
      exact_bound.add(r.data());
    }
    Stream qs(tp, 99);
    std::vector<double> te, ti, t0;
    double hits = 0, total = 0, scored = 0, bounds = 0, scored0 = 0;
    for (int rep = 0; rep < 400; ++rep) {
      qs.next(r.data(), 0.8f);
      auto c0 = Clock::now();
      const auto ref = idx.top_k_exact(r.data(), k);
      te.push_back(us_since(c0));
      c0 = Clock::now();
      const auto got = idx.top_k(r.data(), k);
      ti.push_back(us_since(c0));
      scored += static_cast<double>(idx.last_scored());
      bounds += static_cast<double>(idx.last_bounds());
      c0 = Clock::now();
      exact_bound.top_k(r.data(), k);
      t0.push_back(us_since(c0));
      scored0 += static_cast<double>(exact_bound.last_scored());
      for (int64_t id : got) hits += static_cast<double>(std::count(ref.begin(), ref.end(), id));
      total += static_cast<double>(ref.size());
    }
    auto med = [](std::vector<double> v) {
      std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
      return v[v.size() / 2];
    };
    std::printf("%9lld %8lld | %9.1f | %9.1f %8.0f %8.0f %7.3f | %9.1f %7.0f\n",
                static_cast<long long>(tokens), static_cast<long long>(nb), med(te), med(ti),
                scored / 400, bounds / 400, hits / total, med(t0), scored0 / 400);
  }
}

// Pins of the blocks a drifting query selects, like decoding: microseconds per pin, and how many
// pins needed a read from the spill file.
void bench_store(int64_t layers, size_t budget) {
  const int64_t row = 32, bs = 32, dim = 64, k = 5;
  std::printf("\n# block fetch: %lld layers, budget %zu MiB, f16 spill, 5 blocks per layer\n",
              static_cast<long long>(layers), budget >> 20);
  std::printf("%9s %8s | %10s %12s\n", "tokens", "blocks", "us/step", "reads/step");
  for (int64_t tokens : {8192LL, 65536LL, 262144LL, 1048576LL}) {
    const int64_t nb = tokens / bs;
    std::mt19937 rng(5);
    Topics tp(dim, 400, rng);
    std::vector<std::unique_ptr<lc::BlockIndex>> idx;
    std::vector<std::unique_ptr<lc::BlockStore>> st;
    lc::BlockStoreOptions so;
    so.tokens_per_block = bs;
    so.row_floats = row;
    so.mem_budget = budget / static_cast<size_t>(layers);
    std::vector<float> kv(static_cast<size_t>(2 * bs * row), 0.5f), r(static_cast<size_t>(dim));
    lc::BlockIndexOptions io;
    io.dim = dim;
    io.max_scored = 256;
    for (int64_t l = 0; l < layers; ++l) {
      idx.push_back(std::make_unique<lc::BlockIndex>(io));
      st.push_back(std::make_unique<lc::BlockStore>(so));
      Stream s(tp, static_cast<unsigned>(100 + l));
      for (int64_t b = 0; b < nb; ++b) {
        s.next(r.data(), 0.6f);
        idx.back()->add(r.data());
        st.back()->add(kv.data(), kv.data() + bs * row, bs);
      }
    }
    // Decoding: the query drifts slowly (one story at a time), as the generated text does.
    Stream qs(tp, 77);
    std::vector<float> q(static_cast<size_t>(dim)), noise(static_cast<size_t>(dim));
    qs.next(q.data(), 0.0f);
    const int64_t reads0 = [&] {
      int64_t s = 0;
      for (auto& x : st) s += x->reads_from_disk();
      return s;
    }();
    const int steps = 512;
    auto c0 = Clock::now();
    double search_us = 0;
    for (int step = 0; step < steps; ++step) {
      if (step % 16 == 0) qs.next(q.data(), 0.0f);
      std::normal_distribution<float> nd(0, 0.7f);
      for (auto& x : noise) x = nd(rng);
      for (int64_t l = 0; l < layers; ++l) {
        std::vector<float> ql(q);
        for (int64_t e = 0; e < dim; ++e) ql[e] += noise[e];
        auto s0 = Clock::now();
        auto sel = idx[static_cast<size_t>(l)]->top_k(ql.data(), k);
        search_us += us_since(s0);
        std::sort(sel.begin(), sel.end());
        st[static_cast<size_t>(l)]->pin(sel);
      }
    }
    const double total = us_since(c0);
    int64_t reads = 0;
    for (auto& x : st) reads += x->reads_from_disk();
    std::printf("%9lld %8lld | %10.1f %12.2f   (search %.1f us/step of it)\n",
                static_cast<long long>(tokens), static_cast<long long>(nb),
                (total - search_us) / steps, static_cast<double>(reads - reads0) / steps,
                search_us / steps);
  }
}

// Whole decode steps of a ContextMemory (stories260K shape) after prefilling synthetic tokens.
void bench_decode(int64_t layers, size_t budget, int64_t max_tokens) {
  lc::MemoryDims dims;
  dims.n_layer = static_cast<int>(layers);
  dims.attn.n_head = 8;
  dims.attn.n_head_kv = 4;
  dims.attn.head_dim = 8;
  dims.attn.scale = 1.0f / std::sqrt(8.0f);
  lc::RopeTable rt;
  rt.dim = 8;
  for (int i = 0; i < 4; ++i) rt.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / 8));
  std::printf(
      "\n# ContextMemory decode step (%lld layers, 8 heads x 8, budget %zu MiB): us/token\n",
      static_cast<long long>(layers), budget >> 20);
  std::printf("%9s | %9s %9s | %9s\n", "tokens", "index", "exact", "prefill tok/s");
  for (int64_t tokens : {8192LL, 65536LL, 262144LL, 1048576LL}) {
    if (tokens > max_tokens) break;
    double res[2] = {0, 0}, pf = 0;
    for (int mode = 0; mode < 2; ++mode) {
      lc::ContextMemoryOptions o;
      o.n_init = 32;
      o.n_local = 256;
      o.block_size = 32;
      o.topk = 5;
      o.exec_block = 256;
      o.exact_retrieval = mode == 1;
      o.store.mem_budget = budget;
      lc::ContextMemory mem(dims, o);
      std::mt19937 rng(3);
      Topics tp(32, 300, rng);
      Stream ks(tp, 5);
      const int64_t qw = 64, kvw = 32;
      std::vector<float> q, k, v, out;
      auto fill = [&](int64_t n) {
        q.resize(static_cast<size_t>(n * qw));
        k.resize(static_cast<size_t>(n * kvw));
        v.resize(static_cast<size_t>(n * kvw));
        out.resize(static_cast<size_t>(n * qw));
        for (int64_t t = 0; t < n; ++t) {
          ks.next(k.data() + t * kvw, 0.5f);
          std::copy_n(k.data() + t * kvw, kvw, v.data() + t * kvw);
          for (int64_t h = 0; h < 2; ++h)
            std::copy_n(k.data() + t * kvw, kvw, q.data() + t * qw + h * kvw);
        }
      };
      auto c0 = Clock::now();
      for (int64_t pos = 0; pos < tokens; pos += 256) {
        fill(256);
        lc::MemoryStep s{pos, 256, &rt};
        for (int64_t l = 0; l < layers; ++l) {
          std::vector<float> qq(q);
          mem.attend(static_cast<int>(l), s, qq.data(), k.data(), v.data(), out.data());
        }
        mem.commit(s);
      }
      if (mode == 0) pf = static_cast<double>(tokens) / (us_since(c0) * 1e-6);
      std::vector<double> per;
      for (int step = 0; step < 256; ++step) {
        fill(1);
        lc::MemoryStep s{tokens + step, 1, &rt};
        auto t0 = Clock::now();
        for (int64_t l = 0; l < layers; ++l)
          mem.attend(static_cast<int>(l), s, q.data(), k.data(), v.data(), out.data());
        mem.commit(s);
        per.push_back(us_since(t0));
      }
      std::nth_element(per.begin(), per.begin() + 128, per.end());
      res[mode] = per[128];
    }
    std::printf("%9lld | %9.1f %9.1f | %9.0f\n", static_cast<long long>(tokens), res[0], res[1],
                pf);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "all";
  int64_t dim = 64, layers = 5, max_tokens = 262144;
  size_t budget = size_t{16} << 20;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const long long val = std::atoll(argv[i + 1]);
    if (a == "--dim")
      dim = val;
    else if (a == "--layers")
      layers = val;
    else if (a == "--budget-mib")
      budget = static_cast<size_t>(val) << 20;
    else if (a == "--max-tokens")
      max_tokens = val;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (what == "index" || what == "all") bench_index(dim);
  if (what == "store" || what == "all") bench_store(layers, budget);
  if (what == "decode" || what == "all") bench_decode(layers, budget, max_tokens);
  return 0;
}
