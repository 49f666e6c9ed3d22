// Kernel benchmark: for every instruction set this CPU supports (or the ones named on the command
// line) and every tensor type with a direct kernel,
//   - matvec (decode): a weight matrix of ~96 MiB (3x a 32 MiB L3) times one token, as GB/s of
//     weights streamed;
//   - matmul (prefill): 4096 x 4096 times 64 tokens, as GFLOP/s (2 flops per weight per token);
// and decode attention over a long KV cache, as GB/s of keys and values read.
// Each figure is the median of 5 timed repeats after one warm-up.
//
//   bench_kernels [--isa scalar|avx2|avx512|avx512bf16]... [--type NAME]... [--mib N]
//   [--no-attention]
// --mib sets the matvec matrix size (default 96; 1 keeps it in L2 and measures compute).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"

namespace {

using namespace lc;

constexpr int kRepeats = 5;

// xorshift: filling a few hundred MiB with std::mt19937 would take longer than the benchmark.
struct Rng {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float uniform() { return static_cast<float>(next() >> 40) / 16777216.0f * 2.0f - 1.0f; }
};

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Median wall time of fn; *cpu gets the median process CPU time (all threads) of the same calls,
// which tells how much a run was slowed by other processes sharing the cores.
double median_seconds(const std::function<void()>& fn, double* cpu = nullptr) {
  fn();  // warm-up
  std::vector<double> t, c;
  for (int i = 0; i < kRepeats; ++i) {
    const double c0 = cpu_seconds();
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
    c.push_back(cpu_seconds() - c0);
  }
  std::sort(t.begin(), t.end());
  std::sort(c.begin(), c.end());
  if (cpu != nullptr) *cpu = c[kRepeats / 2];
  return t[kRepeats / 2];
}

// Random weights; the f16 / f32 scale fields of each block get small sane values.
std::vector<uint8_t> make_weights(TensorType t, int64_t n_in, int64_t n_out, Rng& rng) {
  const TensorTypeInfo& ti = tensor_type_info(t);
  const size_t rb = static_cast<size_t>(row_bytes(ti, n_in));
  std::vector<uint8_t> w(rb * static_cast<size_t>(n_out));
  if (t == TensorType::F32) {
    for (size_t i = 0; i < w.size(); i += 4) {
      const float v = rng.uniform();
      std::memcpy(&w[i], &v, 4);
    }
    return w;
  }
  if (t == TensorType::F16 || t == TensorType::BF16) {
    for (size_t i = 0; i < w.size(); i += 2) {
      const float v = rng.uniform();
      const uint16_t h = t == TensorType::F16 ? f32_to_fp16(v) : f32_to_bf16(v);
      std::memcpy(&w[i], &h, 2);
    }
    return w;
  }
  for (size_t i = 0; i < w.size(); i += 8) {
    const uint64_t r = rng.next();
    std::memcpy(&w[i], &r, std::min<size_t>(8, w.size() - i));
  }
  const uint16_t h = f32_to_fp16(0.01f);
  const size_t bs = static_cast<size_t>(ti.type_size);
  size_t at[2] = {0, SIZE_MAX};  // byte offsets of the fp16 scale fields
  switch (t) {
    case TensorType::Q4_1:
    case TensorType::Q5_1:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
      at[1] = 2;
      break;
    case TensorType::Q2_K:
      at[0] = 80;
      at[1] = 82;
      break;
    case TensorType::Q3_K:
      at[0] = 108;
      break;
    case TensorType::Q6_K:
      at[0] = 208;
      break;
    default:
      break;
  }
  for (size_t b = 0; b < w.size(); b += bs)
    for (size_t o : at)
      if (o != SIZE_MAX) std::memcpy(&w[b + o], &h, 2);
  return w;
}

void bench_matmul(Isa isa, TensorType t, int64_t mib) {
  set_isa(isa);
  Rng rng;
  const TensorTypeInfo& ti = tensor_type_info(t);
  // Decode: a matrix three times the size of the L3.
  const int64_t n_in = 4096;
  const int64_t rb = row_bytes(ti, n_in);
  const int64_t n_out = std::max<int64_t>(4096, ((mib << 20) / rb + 63) / 64 * 64);
  const auto w = make_weights(t, n_in, n_out, rng);
  std::vector<float> x(static_cast<size_t>(64 * n_in)), y(static_cast<size_t>(64 * n_out));
  for (auto& v : x) v = rng.uniform();
  const WeightMatrix wv{t, n_in, ((mib << 20) / rb + 3) / 4 * 4, w.data(), static_cast<size_t>(rb)};
  double cv = 0, cp = 0;
  KernelScratch scratch;
  const double tv = median_seconds([&] { matmul(wv, x.data(), 1, y.data(), scratch); }, &cv);
  const double bytes = static_cast<double>(wv.n_out * rb);
  const double gbs = bytes / tv / 1e9;

  // Prefill: 4096 x 4096, 64 tokens.
  const int64_t n_out2 = 4096, n_tok = 64;
  WeightMatrix wm2{t, n_in, n_out2, w.data(), static_cast<size_t>(rb)};
  const double tp = median_seconds([&] { matmul(wm2, x.data(), n_tok, y.data(), scratch); }, &cp);
  const double gflops = 2.0 * static_cast<double>(n_in * n_out2 * n_tok) / tp / 1e9;
  std::printf(
      "%-10s %-5s  matvec %5lld x %5lld (%4.0f MiB) %7.2f ms %6.1f GB/s (cpu %4.2f)   "
      "matmul 4096x4096x64 %7.2f ms %7.1f GFLOP/s (cpu %4.2f)\n",
      isa_name(isa), std::string(ti.name).c_str(), static_cast<long long>(wv.n_out),
      static_cast<long long>(n_in), bytes / (1 << 20), tv * 1e3, gbs, cv / tv, tp * 1e3, gflops,
      cp / tp);
  std::fflush(stdout);
}

void bench_attention(Isa isa, int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_kv) {
  set_isa(isa);
  Rng rng;
  AttnDims d{n_head, n_head_kv, head_dim, 1.0f / std::sqrt(static_cast<float>(head_dim))};
  const int64_t ks = n_head_kv * head_dim;
  std::vector<float> q(static_cast<size_t>(n_head * head_dim)), k(static_cast<size_t>(n_kv * ks)),
      v(k.size()), out(q.size());
  for (auto& e : q) e = rng.uniform();
  for (auto& e : k) e = rng.uniform();
  for (auto& e : v) e = rng.uniform();
  AttnState st;
  KernelScratch scratch;
  double cpu = 0;
  const double t = median_seconds(
      [&] {
        st.reset(1, n_head, head_dim);
        attention_accumulate(q.data(), n_head * head_dim, KvSpan{k.data(), v.data(), n_kv, ks},
                             AttnMask{}, d, st, scratch);
        attention_finish(st, out.data(), n_head * head_dim);
      },
      &cpu);
  const double bytes = 2.0 * static_cast<double>(k.size()) * sizeof(float);
  std::printf(
      "%-7s attention decode: %lld keys, %lld/%lld heads of %lld  %7.3f ms %6.1f GB/s of "
      "K+V (cpu %.2f)\n",
      isa_name(isa), static_cast<long long>(n_kv), static_cast<long long>(n_head),
      static_cast<long long>(n_head_kv), static_cast<long long>(head_dim), t * 1e3, bytes / t / 1e9,
      cpu / t / num_threads());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<Isa> isas;
    std::vector<TensorType> types;
    bool attention = true;
    int64_t mib = 96;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--isa" && i + 1 < argc) {
        isas.push_back(parse_isa(argv[++i]));
      } else if (a == "--type" && i + 1 < argc) {
        const auto t = tensor_type_from_name(argv[++i]);
        if (!t) fail("unknown tensor type '", argv[i], "'");
        types.push_back(*t);
      } else if (a == "--mib" && i + 1 < argc) {
        mib = std::max(1, std::atoi(argv[++i]));
      } else if (a == "--no-attention") {
        attention = false;
      } else {
        fail(
            "usage: bench_kernels [--isa scalar|avx2|avx512|avx512bf16]... [--type NAME]... "
            "[--mib N] [--no-attention]");
      }
    }
    if (isas.empty()) isas = supported_isas();
    if (types.empty())
      types = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,
               TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
               TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
    std::printf("threads: %d; median of %d repeats\n", num_threads(), kRepeats);
    for (Isa isa : isas)
      for (TensorType t : types) bench_matmul(isa, t, mib);
    if (attention)
      for (Isa isa : isas) {
        bench_attention(isa, 128, 32, 8, 16384);
        bench_attention(isa, 8, 8, 4, 16384);
        bench_attention(isa, 64, 9, 3, 640);  // SmolLM2-135M: one layer's cache in L2
        bench_attention(isa, 64, 9, 3, 16384);
      }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
  return 0;
}
