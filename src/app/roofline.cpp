#include "app/roofline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "app/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "model/names.h"

namespace lc::app {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t matrix_params(const WeightMatrix& w) { return w.data ? w.n_in * w.n_out : 0; }

}  // namespace

double measure_dram_read_gb_s(size_t bytes, int repeats) {
  if (bytes < (size_t{1} << 20)) fail("the bandwidth buffer must be at least 1 MiB");
  if (repeats < 1) fail("repeats must be >= 1");
  const auto n = static_cast<int64_t>(bytes / sizeof(uint64_t));
  // Not zeroed here: the pool's threads touch the pages first.
  std::unique_ptr<uint64_t[]> buf(new uint64_t[static_cast<size_t>(n)]);
  const int n_chunks = std::max(1, num_threads());
  // Each thread reads a contiguous slice; four independent sums keep the loads in flight.
  auto slice = [&](int64_t b, int64_t e) {
    const uint64_t* p = buf.get();
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = b;
    for (; i + 4 <= e; i += 4) {
      s0 += p[i];
      s1 += p[i + 1];
      s2 += p[i + 2];
      s3 += p[i + 3];
    }
    for (; i < e; ++i) s0 += p[i];
    return s0 + s1 + s2 + s3;
  };
  parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i) * 3u;
  });
  std::vector<uint64_t> sums(static_cast<size_t>(n_chunks));
  auto pass = [&] {
    parallel_for_tasks(n_chunks, [&](int t, int nt) {
      const int64_t b = n * t / nt, e = n * (t + 1) / nt;
      sums[static_cast<size_t>(t)] = slice(b, e);
    });
  };
  pass();  // warm-up
  std::vector<double> gbs;
  uint64_t check = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    const double s = seconds_since(t0);
    for (uint64_t x : sums) check += x;
    gbs.push_back(static_cast<double>(n) * sizeof(uint64_t) / s / 1e9);
  }
  // The sums feed an always-true comparison so the reads cannot be optimised away.
  const auto un = static_cast<uint64_t>(n);
  const uint64_t tri = un % 2 == 0 ? un / 2 * (un - 1) : (un - 1) / 2 * un;  // sum of 0..n-1
  const uint64_t expect = static_cast<uint64_t>(repeats) * 3u * tri;
  LC_CHECK(check == expect);
  return median(gbs);
}

double measure_matmul_gflop_s(int64_t n_in, int64_t n_out, int64_t n_tok, int repeats,
                              TensorType type) {
  if (n_in <= 0 || n_out <= 0 || n_tok <= 0 || repeats < 1) fail("bad matmul benchmark size");
  const TensorTypeInfo& ti = tensor_type_info(type);
  if (!can_quantize(type) || n_in % ti.block_size != 0)
    fail("cannot benchmark a matmul of type ", ti.name, " with rows of ", n_in);
  const auto rb = static_cast<size_t>(row_bytes(ti, n_in));
  std::vector<uint8_t> wdata(rb * static_cast<size_t>(n_out));
  std::vector<float> x(static_cast<size_t>(n_in * n_tok)), y(static_cast<size_t>(n_out * n_tok));
  std::vector<float> row(static_cast<size_t>(n_in));
  uint32_t s = 12345;
  auto next = [&] {
    s = s * 1664525u + 1013904223u;
    return static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
  };
  for (int64_t r = 0; r < n_out; ++r) {
    for (auto& v : row) v = next();
    quantize_row_ref(type, row.data(), wdata.data() + rb * static_cast<size_t>(r), n_in);
  }
  for (auto& v : x) v = next();
  WeightMatrix w;
  w.type = type;
  w.n_in = n_in;
  w.n_out = n_out;
  w.data = wdata.data();
  w.row_bytes = rb;
  KernelScratch scratch;
  matmul(w, x.data(), n_tok, y.data(), scratch);  // warm-up
  const double flops =
      2.0 * static_cast<double>(n_in) * static_cast<double>(n_out) * static_cast<double>(n_tok);
  std::vector<double> g;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul(w, x.data(), n_tok, y.data(), scratch);
    g.push_back(flops / seconds_since(t0) / 1e9);
  }
  return median(g);
}

MachineLimits measure_limits(size_t dram_bytes, int repeats, TensorType model_type,
                             const std::function<void(const std::string&)>& log) {
  MachineLimits l;
  l.threads = num_threads();
  l.dram_bytes = dram_bytes;
  // A prefill-sized product: a 512-token chunk against a 2048 x 2048 matrix (the shape of
  // Llama-3.2-1B's attention projections), the work the prefill kernels are built for.
  l.mm_n_in = 2048;
  l.mm_n_out = 2048;
  l.mm_n_tok = 512;
  char buf[160];
  if (log) {
    std::snprintf(buf, sizeof buf, "roofline: reading a %.0f MiB buffer %d times, %d threads",
                  static_cast<double>(dram_bytes) / (1 << 20), repeats, l.threads);
    log(buf);
  }
  l.dram_gb_s = measure_dram_read_gb_s(dram_bytes, repeats);
  for (TensorType t : {TensorType::F32, model_type}) {
    if (t == TensorType::F32 && l.matmul_gflop_s > 0) continue;
    // Weights of a type are made by quantizing random rows; without a quantizer for the type
    // (Q2_K, Q3_K, IQ4_*: only read) its peak is not measured and the f32 one stands in.
    if (!can_quantize(t)) {
      if (log) {
        std::snprintf(buf, sizeof buf,
                      "roofline: no %s quantizer to make test weights; its matmul peak is not "
                      "measured (f32's is used)",
                      std::string(tensor_type_info(t).name).c_str());
        log(buf);
      }
      continue;
    }
    if (log) {
      std::snprintf(buf, sizeof buf, "roofline: %s matmul %lld x %lld, %lld tokens, %d times",
                    std::string(tensor_type_info(t).name).c_str(),
                    static_cast<long long>(l.mm_n_out), static_cast<long long>(l.mm_n_in),
                    static_cast<long long>(l.mm_n_tok), repeats);
      log(buf);
    }
    const double g = measure_matmul_gflop_s(l.mm_n_in, l.mm_n_out, l.mm_n_tok, repeats, t);
    if (t == TensorType::F32) l.matmul_gflop_s = g;
    l.model_type = t;
    l.model_type_gflop_s = g;
  }
  return l;
}

TensorType main_weight_type(const Model& m) {
  std::map<TensorType, int64_t> by_type;
  for (const LayerWeights& l : m.weights().layers) {
    for (const WeightMatrix* w :
         {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.w_gate, &l.w_up, &l.w_gate_up, &l.w_down})
      if (w->data) by_type[w->type] += matrix_params(*w);
  }
  TensorType best = TensorType::F32;
  int64_t most = -1;
  for (const auto& [t, n] : by_type)
    if (n > most) {
      best = t;
      most = n;
    }
  return best;
}

uint64_t decode_weight_bytes(const Model& m) {
  uint64_t total = 0;
  for (const GgufTensor& t : m.gguf().tensors()) total += t.nbytes;
  if (!m.weights().tied_output) {
    if (const GgufTensor* e = m.gguf().tensor(names::kTokEmbd))
      total = total - e->nbytes + m.weights().tok_embd.row_bytes;
  }
  return total;
}

int64_t layer_matmul_params(const Model& m) {
  int64_t p = 0;
  for (const LayerWeights& l : m.weights().layers) {
    for (const WeightMatrix* w :
         {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.w_gate, &l.w_up, &l.w_gate_up, &l.w_down})
      p += matrix_params(*w);
  }
  return p;
}

int64_t attention_key_cap(const MemoryConfig& c) {
  if (c.policy == MemoryPolicy::Streaming) return c.ctx.n_init + c.ctx.n_local;
  if (c.policy == MemoryPolicy::InfLLM)
    return c.ctx.n_init + c.ctx.n_local + c.ctx.topk * c.ctx.block_size;
  return c.max_ctx;  // full: every earlier token (0 = unlimited)
}

double prefill_flops(const Model& m, int64_t n, int64_t batch, int64_t key_cap) {
  if (n <= 0) return 0;
  const HParams& hp = m.hparams();
  const auto dn = static_cast<double>(n);
  double flops = 2.0 * static_cast<double>(layer_matmul_params(m)) * dn;
  const int64_t chunks = (n + batch - 1) / batch;
  flops += 2.0 * static_cast<double>(chunks) * hp.n_embd * static_cast<double>(hp.n_vocab);
  // Token i attends to min(i + 1, cap) keys.
  double keys;
  if (key_cap <= 0 || key_cap >= n) {
    keys = dn * (dn + 1) / 2;
  } else {
    const auto c = static_cast<double>(key_cap);
    keys = c * (c + 1) / 2 + (dn - c) * c;
  }
  flops += 4.0 * hp.n_layer * static_cast<double>(hp.n_head) * hp.head_dim * keys;
  return flops;
}

}  // namespace lc::app
