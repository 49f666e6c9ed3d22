// The tiled online-softmax attention kernel and the full KV memory against scalar references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/memory_config.h"
#include "kernels/attention.h"
#include "kernels/kv_type.h"
#include "kernels/rotary.h"
#include "memory/full_memory.h"

namespace lc {
namespace {

std::vector<float> randv(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Plain softmax attention over one key set, query i seeing keys [lo(i), hi(i)).
std::vector<float> reference(const std::vector<float>& q, const std::vector<float>& k,
                             const std::vector<float>& v, int64_t n_q, int64_t n_kv,
                             const AttnDims& d, const std::function<bool(int64_t, int64_t)>& vis) {
  const int64_t hd = d.head_dim, group = d.n_head / d.n_head_kv;
  const int64_t qs = d.n_head * hd, ks = d.n_head_kv * hd;
  std::vector<float> out(static_cast<size_t>(n_q * qs), 0.0f);
  for (int64_t i = 0; i < n_q; ++i)
    for (int64_t h = 0; h < d.n_head; ++h) {
      std::vector<double> s;
      std::vector<int64_t> idx;
      for (int64_t j = 0; j < n_kv; ++j) {
        if (!vis(i, j)) continue;
        double dot = 0;
        for (int64_t e = 0; e < hd; ++e)
          dot += double(q[i * qs + h * hd + e]) * k[j * ks + (h / group) * hd + e];
        s.push_back(dot * d.scale);
        idx.push_back(j);
      }
      if (s.empty()) continue;
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - mx));
      for (size_t t = 0; t < s.size(); ++t)
        for (int64_t e = 0; e < hd; ++e)
          out[i * qs + h * hd + e] += float(s[t] / sum * v[idx[t] * ks + (h / group) * hd + e]);
    }
  return out;
}

TEST(Attention, CausalWindowAndSplitSpansMatchReference) {
  KernelScratch scratch;
  std::mt19937 rng(7);
  AttnDims d{6, 2, 16, 0.25f};
  const int64_t n_q = 5, n_kv = 300;  // more than one tile
  auto q = randv(n_q * 6 * 16, rng), k = randv(n_kv * 2 * 16, rng), v = randv(n_kv * 2 * 16, rng);
  for (int64_t window : {0, 7, 200}) {
    AttnMask mask;
    mask.diag = n_kv - n_q;
    mask.window = window;
    auto vis = [&](int64_t i, int64_t j) {
      return j <= i + mask.diag && (window <= 0 || j > i + mask.diag - window);
    };
    const auto ref = reference(q, k, v, n_q, n_kv, d, vis);

    AttnState st;
    st.reset(n_q, d.n_head, d.head_dim);
    attention_accumulate(q.data(), 6 * 16, KvSpan{k.data(), v.data(), n_kv, 32}, mask, d, st,
                         scratch);
    std::vector<float> out(ref.size());
    attention_finish(st, out.data(), 6 * 16);
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(out[i], ref[i], 1e-5) << "window " << window;

    // The same keys split in two spans with shifted masks give the same result (one softmax).
    const int64_t cut = 123;
    AttnMask m1 = mask, m2 = mask;
    m2.diag = mask.diag - cut;
    st.reset(n_q, d.n_head, d.head_dim);
    attention_accumulate(q.data(), 96, KvSpan{k.data(), v.data(), cut, 32}, m1, d, st, scratch);
    attention_accumulate(q.data(), 96,
                         KvSpan{k.data() + cut * 32, v.data() + cut * 32, n_kv - cut, 32}, m2, d,
                         st, scratch);
    attention_finish(st, out.data(), 96);
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5);
  }
}

TEST(Attention, FewQueriesManyKeysSplitPathMatchesReference) {
  KernelScratch scratch;
  // Decode shapes (at most 4 queries, at least 512 keys) take the key-segment path: partial
  // states per (KV head, segment), merged. Same numbers as the reference, on top of an earlier
  // span, with masks, and bit for bit the same for any thread count.
  std::mt19937 rng(11);
  AttnDims d{9, 3, 64, 0.125f};
  const int64_t qs = 9 * 64, ks = 3 * 64;
  for (int64_t n_q : {1, 3}) {
    const int64_t n_kv = 1300, cut = 200;
    auto q = randv(n_q * qs, rng), k = randv(n_kv * ks, rng), v = randv(n_kv * ks, rng);
    for (int64_t window : {0, 7, 700}) {
      AttnMask mask;
      mask.diag = n_kv - n_q;
      mask.window = window;
      auto vis = [&](int64_t i, int64_t j) {
        return j <= i + mask.diag && (window <= 0 || j > i + mask.diag - window);
      };
      const auto ref = reference(q, k, v, n_q, n_kv, d, vis);
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        AttnState st;
        st.reset(n_q, d.n_head, d.head_dim);
        AttnMask m1 = mask, m2 = mask;
        m2.diag = mask.diag - cut;
        attention_accumulate(q.data(), qs, KvSpan{k.data(), v.data(), cut, ks}, m1, d, st, scratch);
        attention_accumulate(q.data(), qs,
                             KvSpan{k.data() + cut * ks, v.data() + cut * ks, n_kv - cut, ks}, m2,
                             d, st, scratch);
        std::vector<float> out(ref.size());
        attention_finish(st, out.data(), qs);
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(out[i], ref[i], 1e-5) << "n_q " << n_q << " window " << window;
        if (first.empty())
          first = out;
        else
          ASSERT_EQ(out, first) << "threads " << threads;
      }
      set_num_threads(0);
    }
  }
}

TEST(Attention, ManyQueriesBlockPathsMatchReferenceForEveryKvTypeAndThreadCount) {
  KernelScratch scratch;
  // Prefill shapes: blocks of queries meet each key tile together; from 32 queries on, the keys
  // are transposed once per call (and f16 values converted once). Causal and windowed masks, an
  // earlier span, f32 and f16 spans (the f16 reference uses the stored halves), 1-3 threads:
  // same numbers as the reference, and bit for bit the same for any thread count.
  std::mt19937 rng(21);
  AttnDims d{6, 2, 64, 0.125f};
  const int64_t qs = 6 * 64, ks = 2 * 64;
  for (int64_t n_q : {12, 70}) {
    const int64_t n_kv = 150 + n_q, cut = 90;
    auto q = randv(n_q * qs, rng), k = randv(n_kv * ks, rng), v = randv(n_kv * ks, rng);
    for (KvType type : {KvType::F32, KvType::F16}) {
      std::vector<uint16_t> kh(k.size()), vh(v.size());
      std::vector<float> kr = k, vr = v;  // what the span holds, as f32
      if (type == KvType::F16) {
        kv_from_f32(type, k.data(), kh.data(), static_cast<int64_t>(k.size()));
        kv_from_f32(type, v.data(), vh.data(), static_cast<int64_t>(v.size()));
        kv_to_f32(type, kh.data(), kr.data(), static_cast<int64_t>(k.size()));
        kv_to_f32(type, vh.data(), vr.data(), static_cast<int64_t>(v.size()));
      }
      auto span = [&](int64_t j0, int64_t n) {
        if (type == KvType::F16)
          return KvSpan{kh.data() + j0 * ks, vh.data() + j0 * ks, n, ks, type};
        return KvSpan{k.data() + j0 * ks, v.data() + j0 * ks, n, ks, type};
      };
      for (int64_t window : {0, 40}) {
        AttnMask mask;
        mask.diag = n_kv - n_q;
        mask.window = window;
        auto vis = [&](int64_t i, int64_t j) {
          return j <= i + mask.diag && (window <= 0 || j > i + mask.diag - window);
        };
        const auto ref = reference(q, kr, vr, n_q, n_kv, d, vis);
        std::vector<float> first;
        for (int threads : {1, 2, 3}) {
          set_num_threads(threads);
          AttnState st;
          st.reset(n_q, d.n_head, d.head_dim);
          AttnMask m2 = mask;
          m2.diag = mask.diag - cut;
          attention_accumulate(q.data(), qs, span(0, cut), mask, d, st, scratch);
          attention_accumulate(q.data(), qs, span(cut, n_kv - cut), m2, d, st, scratch);
          std::vector<float> out(ref.size());
          attention_finish(st, out.data(), qs);
          for (size_t i = 0; i < ref.size(); ++i)
            ASSERT_NEAR(out[i], ref[i], 1e-5) << kv_type_name(type) << " n_q " << n_q << " window "
                                              << window << " threads " << threads;
          if (first.empty())
            first = out;
          else
            ASSERT_EQ(out, first) << kv_type_name(type) << " threads " << threads;
        }
        set_num_threads(0);
      }
    }
  }
}

TEST(Attention, ComplementMaskAndKeyMass) {
  KernelScratch scratch;
  std::mt19937 rng(3);
  AttnDims d{2, 1, 8, 0.3f};
  const int64_t n_q = 4, n_kv = 40;
  auto q = randv(n_q * 16, rng), k = randv(n_kv * 8, rng), v = randv(n_kv * 8, rng);
  AttnMask mask;
  mask.diag = n_kv - n_q;
  mask.window = 10;
  mask.complement = true;  // only keys at distance >= window
  auto vis = [&](int64_t i, int64_t j) { return j <= i + mask.diag - mask.window; };
  const auto ref = reference(q, k, v, n_q, n_kv, d, vis);
  AttnState st;
  st.reset(n_q, 2, 8);
  KvSpan span{k.data(), v.data(), n_kv, 8};
  attention_accumulate(q.data(), 16, span, mask, d, st, scratch);
  std::vector<float> out(ref.size());
  attention_finish(st, out.data(), 16);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5);
  // Key mass sums to the number of queries per head.
  std::vector<float> mass(static_cast<size_t>(n_kv * 2), 0.0f);
  attention_key_mass(q.data(), 16, span, mask, d, st, mass.data(), scratch);
  for (int h = 0; h < 2; ++h) {
    double total = 0;
    for (int64_t j = 0; j < n_kv; ++j) total += mass[j * 2 + h];
    EXPECT_NEAR(total, n_q, 1e-4);
  }
}

RopeTable make_table(float base, float factor, float attn) {
  RopeTable t;
  t.dim = 16;
  t.attn_factor = attn;
  for (int i = 0; i < 8; ++i) t.inv_freq.push_back(std::pow(base, -2.0f * i / 16) / factor);
  return t;
}

TEST(Attention, KeyMassMatchesReferenceProbabilitiesForFewAndManyQueries) {
  KernelScratch scratch;
  // The representative scores of InfLLM: the mass each key of a span receives, under a softmax
  // that also covers a second span (as the local and global stages do). Few queries (per-head
  // path) and many (keys transposed, items per tile of keys), window and complement masks, 1-3
  // threads: the reference's probabilities, and bit for bit the same for any thread count.
  std::mt19937 rng(23);
  AttnDims d{9, 3, 64, 0.125f};
  const int64_t qs = 9 * 64, ks = 3 * 64, n_other = 50;
  for (int64_t n_q : {12, 70}) {
    const int64_t n_kv = 530 + n_q;
    auto q = randv(n_q * qs, rng), k = randv(n_kv * ks, rng), other = randv(n_other * ks, rng);
    for (auto& x : q) x *= 0.5f;
    for (bool complement : {false, true}) {
      AttnMask mask;
      mask.diag = n_kv - n_q;
      mask.window = 200;
      mask.complement = complement;
      auto vis = [&](int64_t i, int64_t j) {
        const bool in_window = j <= i + mask.diag && j > i + mask.diag - mask.window;
        return complement ? j <= i + mask.diag - mask.window : in_window;
      };
      // Reference: p(i, h, j) over the visible keys of the span and every key of the other span.
      std::vector<double> want(static_cast<size_t>(n_kv * d.n_head), 0.0);
      for (int64_t i = 0; i < n_q; ++i)
        for (int64_t h = 0; h < d.n_head; ++h) {
          auto dot = [&](const float* key) {
            double s = 0;
            for (int64_t e = 0; e < 64; ++e) s += double(q[i * qs + h * 64 + e]) * key[e];
            return s * d.scale;
          };
          std::vector<double> s(static_cast<size_t>(n_kv), -INFINITY);
          double mx = -INFINITY, sum = 0;
          for (int64_t j = 0; j < n_kv; ++j)
            if (vis(i, j)) mx = std::max(mx, s[j] = dot(&k[j * ks + (h / 3) * 64]));
          std::vector<double> so(static_cast<size_t>(n_other));
          for (int64_t j = 0; j < n_other; ++j)
            mx = std::max(mx, so[j] = dot(&other[j * ks + (h / 3) * 64]));
          for (int64_t j = 0; j < n_kv; ++j) sum += std::exp(s[j] - mx);
          for (int64_t j = 0; j < n_other; ++j) sum += std::exp(so[j] - mx);
          for (int64_t j = 0; j < n_kv; ++j) want[j * d.n_head + h] += std::exp(s[j] - mx) / sum;
        }
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        AttnState st;
        st.reset(n_q, d.n_head, d.head_dim);
        const KvSpan span{k.data(), k.data(), n_kv, ks};
        attention_accumulate(q.data(), qs, span, mask, d, st, scratch);
        attention_accumulate(q.data(), qs, KvSpan{other.data(), other.data(), n_other, ks},
                             AttnMask{}, d, st, scratch);
        std::vector<float> mass(want.size(), 0.0f);
        attention_key_mass(q.data(), qs, span, mask, d, st, mass.data(), scratch);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_NEAR(mass[i], want[i], 2e-5 + 1e-4 * want[i])
              << "n_q " << n_q << " complement " << complement << " threads " << threads;
        if (first.empty())
          first = mass;
        else
          ASSERT_EQ(mass, first) << "n_q " << n_q << " threads " << threads;
      }
      set_num_threads(0);
    }
  }
}

TEST(FullMemory, ReRotatesCachedKeysWhenTheTableChanges) {
  std::mt19937 rng(11);
  MemoryDims md;
  md.n_layer = 1;
  md.attn = AttnDims{4, 2, 16, 0.25f};
  const int64_t n1 = 20, n2 = 3, kw = 32, qw = 64;
  auto q = randv((n1 + n2) * qw, rng), k = randv((n1 + n2) * kw, rng),
       v = randv((n1 + n2) * kw, rng);
  const RopeTable t1 = make_table(10000, 1, 1), t2 = make_table(30000, 2, 1.1f);

  // Memory that saw table t1 for the first step, then t2.
  FullMemory mem(md, 0);
  std::vector<float> out1(n1 * qw), out2(n2 * qw), qa = q;
  MemoryStep s1{0, n1, &t1}, s2{n1, n2, &t2};
  mem.attend(0, s1, qa.data(), k.data(), v.data(), out1.data());
  mem.commit(s1);
  mem.attend(0, s2, qa.data() + n1 * qw, k.data() + n1 * kw, v.data() + n1 * kw, out2.data());

  // Memory that used t2 throughout: the second step must agree.
  FullMemory ref(md, 0);
  std::vector<float> r1(n1 * qw), r2(n2 * qw), qb = q;
  MemoryStep u1{0, n1, &t2};
  ref.attend(0, u1, qb.data(), k.data(), v.data(), r1.data());
  ref.commit(u1);
  ref.attend(0, s2, qb.data() + n1 * qw, k.data() + n1 * kw, v.data() + n1 * kw, r2.data());
  for (size_t i = 0; i < r2.size(); ++i) ASSERT_NEAR(out2[i], r2[i], 1e-4);
}

TEST(FullMemory, LimitIsAnError) {
  MemoryDims md;
  md.n_layer = 1;
  md.attn = AttnDims{1, 1, 4, 0.5f};
  FullMemory mem(md, 4);
  RopeTable t = make_table(10000, 1, 1);
  t.dim = 4;
  t.inv_freq.resize(2);
  std::vector<float> q(20), k(20), v(20), out(20);
  MemoryStep s{0, 5, &t};
  EXPECT_THROW(mem.attend(0, s, q.data(), k.data(), v.data(), out.data()), Error);
}

// ---------------------------------------------------------------------------------------------
// KV cache types.

// max |a - b| / max |b|.
double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

// What f16 / q8_0 storage may cost against f32, in max_rel_diff of attention outputs.
double kv_tolerance(KvType t) { return t == KvType::F32 ? 1e-4 : t == KvType::F16 ? 2e-3 : 2e-2; }

TEST(KvType, NamesParseAndBytes) {
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0})
    EXPECT_EQ(kv_type_from_name(kv_type_name(t)), t);
  EXPECT_EQ(kv_type_from_name("F16"), KvType::F16);
  EXPECT_EQ(kv_bytes(KvType::F32, 64), 256u);
  EXPECT_EQ(kv_bytes(KvType::F16, 64), 128u);
  EXPECT_EQ(kv_bytes(KvType::Q8_0, 64), 68u);
  try {
    kv_type_from_name("q4_0");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("memory.kv_type 'q4_0'"), std::string::npos) << m;
    EXPECT_NE(m.find("f32, f16 or q8_0"), std::string::npos) << m;
  }
}

// Attention over keys / values stored as f16 or q8_0 against the same inputs in f32, on the
// prefill path and on the decode (key-segment) path.
TEST(KvType, F16AndQ8_0AttentionCloseToF32) {
  KernelScratch scratch;
  std::mt19937 rng(5);
  AttnDims d{8, 2, 64, 0.125f};
  const int64_t qs = 8 * 64, ks = 2 * 64, n_kv = 900;
  const auto k = randv(n_kv * ks, rng), v = randv(n_kv * ks, rng);
  for (int64_t n_q : {1, 4, 40}) {
    const auto q = randv(n_q * qs, rng);
    AttnMask mask;
    mask.diag = n_kv - n_q;
    AttnState st;
    st.reset(n_q, d.n_head, d.head_dim);
    attention_accumulate(q.data(), qs, KvSpan{k.data(), v.data(), n_kv, ks}, mask, d, st, scratch);
    std::vector<float> want(n_q * qs);
    attention_finish(st, want.data(), qs);
    for (KvType t : {KvType::F16, KvType::Q8_0}) {
      std::vector<uint8_t> kb(kv_bytes(t, n_kv * ks)), vb(kb.size());
      kv_from_f32(t, k.data(), kb.data(), n_kv * ks);
      kv_from_f32(t, v.data(), vb.data(), n_kv * ks);
      st.reset(n_q, d.n_head, d.head_dim);
      attention_accumulate(q.data(), qs, KvSpan{kb.data(), vb.data(), n_kv, ks, t}, mask, d, st,
                           scratch);
      std::vector<float> out(n_q * qs);
      attention_finish(st, out.data(), qs);
      const double diff = max_rel_diff(out, want);
      EXPECT_LT(diff, kv_tolerance(t)) << kv_type_name(t) << " n_q " << n_q;
      EXPECT_GT(diff, 0.0) << kv_type_name(t);  // the values really were rounded
    }
  }
}

// The same steps through a FullMemory of each type and an f32 one (RoPE, several steps).
TEST(KvType, FullMemoryOfEachTypeCloseToF32) {
  std::mt19937 rng(17);
  MemoryDims md;
  md.n_layer = 2;
  md.attn = AttnDims{4, 2, 32, 1.0f / std::sqrt(32.0f)};
  RopeTable rt = make_table(10000, 1, 1);
  rt.dim = 32;
  rt.inv_freq.clear();
  for (int i = 0; i < 16; ++i) rt.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / 32));
  const int64_t kw = 64, qw = 128;
  const std::vector<int64_t> steps = {300, 1, 1, 7, 1};
  int64_t total = 0;
  for (int64_t n : steps) total += n;
  const auto q = randv(total * qw, rng), k = randv(total * kw, rng), v = randv(total * kw, rng);
  auto run = [&](KvType t, size_t* bytes) {
    FullMemory mem(md, 0, t);
    EXPECT_EQ(mem.kv_type(), t);
    std::vector<float> outs, out;
    int64_t pos = 0;
    for (int64_t n : steps) {
      MemoryStep st{pos, n, &rt};
      for (int layer = 0; layer < md.n_layer; ++layer) {
        std::vector<float> ql(q.begin() + pos * qw, q.begin() + (pos + n) * qw);
        out.assign(n * qw, 0.0f);
        mem.attend(layer, st, ql.data(), k.data() + pos * kw, v.data() + pos * kw, out.data());
        outs.insert(outs.end(), out.begin(), out.end());
      }
      mem.commit(st);
      pos += n;
    }
    *bytes = mem.bytes_in_ram();
    return outs;
  };
  size_t b32 = 0, b16 = 0, b8 = 0;
  const auto r32 = run(KvType::F32, &b32), r16 = run(KvType::F16, &b16),
             r8 = run(KvType::Q8_0, &b8);
  EXPECT_LT(max_rel_diff(r16, r32), kv_tolerance(KvType::F16));
  EXPECT_LT(max_rel_diff(r8, r32), kv_tolerance(KvType::Q8_0));
  // The bytes of the stored rows (not the vectors' capacity): 4, 2 and 34/32 bytes per element.
  EXPECT_EQ(b32, size_t(2 * md.n_layer * total * kw * 4));
  EXPECT_EQ(b16 * 2, b32);
  EXPECT_EQ(b8 * 128, b32 * 34);
}

// Re-rotation when the table changes (dynamic NTK): keys stored as f16 / q8_0 go to f32, are
// rotated and stored again. Tables t1 -> t2 -> t3 against a memory that used t3 throughout;
// the first step is longer than one re-rotation pass (256 rows).
TEST(KvType, FullMemoryReRotatesStoredKeysOfEveryType) {
  std::mt19937 rng(29);
  MemoryDims md;
  md.n_layer = 1;
  md.attn = AttnDims{4, 2, 32, 1.0f / std::sqrt(32.0f)};
  auto table = [](float base, float factor, float attn) {
    RopeTable t;
    t.dim = 32;
    t.attn_factor = attn;
    for (int i = 0; i < 16; ++i) t.inv_freq.push_back(std::pow(base, -2.0f * i / 32) / factor);
    return t;
  };
  const RopeTable t1 = table(10000, 1, 1), t2 = table(20000, 1.5f, 1.05f),
                  t3 = table(40000, 2, 1.1f);
  const int64_t n1 = 300, n2 = 2, n3 = 3, n = n1 + n2 + n3, kw = 64, qw = 128;
  const auto q = randv(n * qw, rng), k = randv(n * kw, rng), v = randv(n * kw, rng);
  auto run = [&](KvType t, const RopeTable& a, const RopeTable& b, const RopeTable& c) {
    FullMemory mem(md, 0, t);
    std::vector<float> qa = q, out(n3 * qw);
    std::vector<float> scratch(n1 * qw);
    MemoryStep s1{0, n1, &a}, s2{n1, n2, &b}, s3{n1 + n2, n3, &c};
    mem.attend(0, s1, qa.data(), k.data(), v.data(), scratch.data());
    mem.commit(s1);
    mem.attend(0, s2, qa.data() + n1 * qw, k.data() + n1 * kw, v.data() + n1 * kw, scratch.data());
    mem.commit(s2);
    mem.attend(0, s3, qa.data() + (n1 + n2) * qw, k.data() + (n1 + n2) * kw,
               v.data() + (n1 + n2) * kw, out.data());
    return out;
  };
  const auto ref = run(KvType::F32, t3, t3, t3);
  // Without re-rotation the keys would be far off: the tables differ a lot.
  ASSERT_GT(max_rel_diff(run(KvType::F32, t1, t1, t1), ref), 0.05);
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0}) {
    SCOPED_TRACE(kv_type_name(t));
    const auto got = run(t, t1, t2, t3);
    EXPECT_LT(max_rel_diff(got, ref), kv_tolerance(t));
    // Against the same type with t3 throughout: both round (differently), hence twice the bound.
    EXPECT_LT(max_rel_diff(got, run(t, t3, t3, t3)), 2 * kv_tolerance(t));
  }
}

// The same with LongRoPE's n_hat: keys below it were rotated with the unscaled table and stay so
// when the table changes; the rest are re-rotated.
TEST(KvType, FullMemoryReRotationKeepsTheUnscaledLeadingPositions) {
  std::mt19937 rng(31);
  MemoryDims md;
  md.n_layer = 1;
  md.attn = AttnDims{4, 2, 32, 1.0f / std::sqrt(32.0f)};
  auto table = [](float factor, float attn, int64_t n_hat) {
    RopeTable t;
    t.dim = 32;
    t.attn_factor = attn;
    t.n_hat = n_hat;
    for (int i = 0; i < 16; ++i) {
      const float th = std::pow(10000.0f, -2.0f * i / 32);
      t.inv_freq.push_back(th / (1.0f + (factor - 1.0f) * static_cast<float>(i) / 15.0f));
      if (n_hat > 0) t.start_inv_freq.push_back(th);
    }
    return t;
  };
  const int64_t n1 = 40, n2 = 3, n = n1 + n2, kw = 64, qw = 128;
  const auto q = randv(n * qw, rng), k = randv(n * kw, rng), v = randv(n * kw, rng);
  auto run = [&](KvType t, const RopeTable& a, const RopeTable& b) {
    FullMemory mem(md, 0, t);
    std::vector<float> qa = q, out(n2 * qw), scratch(n1 * qw);
    MemoryStep s1{0, n1, &a}, s2{n1, n2, &b};
    mem.attend(0, s1, qa.data(), k.data(), v.data(), scratch.data());
    mem.commit(s1);
    mem.attend(0, s2, qa.data() + n1 * qw, k.data() + n1 * kw, v.data() + n1 * kw, out.data());
    return out;
  };
  const RopeTable s16 = table(1, 1, 16), l16 = table(6, 1.2f, 16);
  const auto ref = run(KvType::F32, l16, l16);
  ASSERT_GT(max_rel_diff(run(KvType::F32, table(6, 1.2f, 0), table(6, 1.2f, 0)), ref), 0.01);
  for (KvType t : {KvType::F32, KvType::F16}) {
    SCOPED_TRACE(kv_type_name(t));
    EXPECT_LT(max_rel_diff(run(t, s16, l16), ref), kv_tolerance(t));
  }
  // Tables with different n_hat cannot be turned into one another.
  EXPECT_THROW(run(KvType::F32, table(1, 1, 0), l16), Error);
}

TEST(KvType, Q8_0NeedsHeadDimMultipleOf32AndOtherPoliciesRefuseIt) {
  MemoryDims md;
  md.n_layer = 1;
  md.attn = AttnDims{2, 1, 16, 0.25f};
  try {
    FullMemory mem(md, 0, KvType::Q8_0);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("head dim is 16"), std::string::npos) << m;
    EXPECT_NE(m.find("memory.kv_type f16"), std::string::npos) << m;
  }
  EXPECT_NO_THROW(FullMemory(md, 0, KvType::F16));
  md.attn.head_dim = 64;
  EXPECT_NO_THROW(FullMemory(md, 0, KvType::Q8_0));

  MemoryConfig c;
  EXPECT_EQ(describe_memory(c), "full (f32 KV)");
  c.kv_type = KvType::F16;
  EXPECT_EQ(make_memory(md, c)->name(), "full");
  EXPECT_EQ(describe_memory(c), "full (f16 KV)");
  c.max_ctx = 100;
  EXPECT_EQ(describe_memory(c), "full (f16 KV, up to 100 tokens)");
  for (const char* policy : {"streaming", "infllm"}) {
    c.policy = *memory_policy_from_name(policy);
    try {
      make_memory(md, c);
      FAIL() << "no error for " << policy;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("memory.kv_type f16 applies to memory.policy full only"), std::string::npos)
          << m;
      EXPECT_NE(m.find(policy), std::string::npos) << m;
    }
  }
}

TEST(Rotary, RotationMatchesComplexMultiplication) {
  RopeTable t = make_table(10000, 1, 1.0f);
  for (RopeLayout layout : {RopeLayout::Adjacent, RopeLayout::SplitHalf}) {
    t.layout = layout;
    std::vector<float> x(16);
    for (int i = 0; i < 16; ++i) x[i] = float(i + 1);
    auto y = x;
    rope_apply(t, y.data(), 1, 16, 1, 16, 37);
    for (int i = 0; i < 8; ++i) {
      const int a = layout == RopeLayout::Adjacent ? 2 * i : i;
      const int b = layout == RopeLayout::Adjacent ? 2 * i + 1 : i + 8;
      const double ang = 37.0 * t.inv_freq[i];
      EXPECT_NEAR(y[a], x[a] * std::cos(ang) - x[b] * std::sin(ang), 1e-4);
      EXPECT_NEAR(y[b], x[a] * std::sin(ang) + x[b] * std::cos(ang), 1e-4);
    }
  }
}

}  // namespace
}  // namespace lc
