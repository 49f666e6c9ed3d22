#include "kernels/dispatch.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace lc {

namespace {

#if defined(__x86_64__) || defined(__i386__)
// F16C (CPUID.1:ECX bit 29); clang 14's __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}

// AVX512_BF16 (CPUID.(EAX=7, ECX=1):EAX bit 5).
bool cpu_has_avx512_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)) != 0;
}
#endif

bool cpu_has(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    case Isa::Avx512:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c() &&
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
    case Isa::Avx512Bf16:
      return cpu_has(Isa::Avx512) && cpu_has_avx512_bf16();
  }
  return false;
#else
  return isa == Isa::Scalar;
#endif
}

const KernelTable* table_of(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return &scalar_kernel_table();
    case Isa::Avx2:
      return avx2_kernel_table();
    case Isa::Avx512:
      return avx512_kernel_table();
    case Isa::Avx512Bf16:
      return avx512_bf16_kernel_table();
  }
  return nullptr;
}

const KernelTable* choose() {
  if (const char* env = std::getenv("LONGCTX_ISA"); env != nullptr && *env != '\0')
    return &kernel_table(parse_isa(env));
  for (Isa isa : {Isa::Avx512Bf16, Isa::Avx512, Isa::Avx2})
    if (isa_supported(isa)) return table_of(isa);
  return &scalar_kernel_table();
}

std::atomic<const KernelTable*> g_active{nullptr};

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx512Bf16:
      return "avx512bf16";
  }
  return "?";
}

Isa parse_isa(const char* name) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16})
    if (std::strcmp(name, isa_name(isa)) == 0) return isa;
  fail("unknown instruction set '", name,
       "' (LONGCTX_ISA takes scalar, avx2, avx512 or avx512bf16)");
}

bool isa_supported(Isa isa) { return table_of(isa) != nullptr && cpu_has(isa); }

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16})
    if (isa_supported(isa)) v.push_back(isa);
  return v;
}

const KernelTable& kernel_table(Isa isa) {
  if (!isa_supported(isa))
    fail("this CPU (or build) does not support the ", isa_name(isa),
         " kernels; choose another LONGCTX_ISA (scalar always works)");
  return *table_of(isa);
}

const KernelTable& kernels() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (t == nullptr) {
    t = choose();
    g_active.store(t, std::memory_order_release);
  }
  return *t;
}

void set_isa(Isa isa) { g_active.store(&kernel_table(isa), std::memory_order_release); }

void quantize_act_ref(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  LC_CHECK(n % kActBlock == 0);
  for (int64_t b = 0; b < n / kActBlock; ++b) {
    const float* xb = x + b * kActBlock;
    float amax = 0;
    for (int j = 0; j < kActBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    int sum = 0;
    for (int j = 0; j < kActBlock; ++j) {
      // nearbyint rounds half to even like the vector conversions; the clamp is written like
      // min_ps / max_ps so that a NaN input becomes 127 everywhere.
      float r = std::nearbyint(xb[j] * id);
      r = r < 127.0f ? r : 127.0f;
      r = r > -127.0f ? r : -127.0f;
      const int v = static_cast<int>(r);
      q[b * kActBlock + j] = static_cast<int8_t>(v);
      sum += v;
    }
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

uint16_t bf16_round_ref(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);  // 0, subnormal
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

void round_bf16_ref(const float* x, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_round_ref(x[i]);
  if (n % 2 != 0) dst[n] = 0;
}

}  // namespace lc
