// Every kernel table the machine supports (scalar, avx2, avx512, avx512bf16), forced one after the
// other, against scalar references computed here in double: matmul on every GGUF type with odd
// shapes, the activation quantizer, the row ops, the attention tiles and the whole attention
// kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "kernels/kv_type.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant.h"

namespace lc {
namespace {

// Restores the table in use when a test ends.
class IsaGuard {
 public:
  IsaGuard() : saved_(kernels().isa) {}
  ~IsaGuard() { set_isa(saved_); }
  IsaGuard(const IsaGuard&) = delete;
  IsaGuard& operator=(const IsaGuard&) = delete;

 private:
  Isa saved_;
};

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> nd(0, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

TEST(Dispatch, ScalarAlwaysThereAndNamesParse) {
  const auto isas = supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::Scalar);
  for (Isa isa : isas) {
    EXPECT_EQ(parse_isa(isa_name(isa)), isa);
    EXPECT_EQ(kernel_table(isa).isa, isa);
    std::cout << "[ kernels  ] testing " << isa_name(isa) << "\n";
  }
  EXPECT_THROW(parse_isa("sse9"), Error);
  // The default table is the best one the CPU has (unless LONGCTX_ISA chose another).
  if (std::getenv("LONGCTX_ISA") == nullptr) {
    EXPECT_EQ(kernels().isa, isas.back());
  }
}

// ---------------------------------------------------------------------------------------------
// Random weight rows of every type.

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Random bytes for every quant and scale bit, with the f16 / f32 scale fields overwritten by
// modest random values (so that every pattern of nibbles, high bits and sub-block scales occurs).
// fill >= 0: every quant byte is fill instead (the K formats' sub-block scales their largest), for
// rows whose quants all sit at one end of their range.
std::vector<uint8_t> random_rows(TensorType t, int64_t n_out, int64_t n_in, std::mt19937& rng,
                                 int fill = -1) {
  const TensorTypeInfo& ti = tensor_type_info(t);
  const size_t rb = static_cast<size_t>(row_bytes(ti, n_in));
  std::vector<uint8_t> w(rb * static_cast<size_t>(n_out));
  if (t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16) {
    const auto v = randn(static_cast<size_t>(n_in * n_out), rng);
    for (size_t i = 0; i < v.size(); ++i) {
      if (t == TensorType::F32)
        std::memcpy(&w[4 * i], &v[i], 4);
      else
        put16(&w[2 * i], t == TensorType::F16 ? f32_to_fp16(v[i]) : f32_to_bf16(v[i]));
    }
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : w) b = static_cast<uint8_t>(fill >= 0 ? fill : byte(rng));
  std::uniform_real_distribution<float> scale(0.002f, 0.05f), sign(-1.0f, 1.0f);
  auto h = [&](float lo_mult) { return f32_to_fp16(scale(rng) * lo_mult); };
  const size_t bs = static_cast<size_t>(ti.type_size);
  for (size_t b = 0; b < w.size() / bs; ++b) {
    uint8_t* p = &w[b * bs];
    switch (t) {
      case TensorType::Q4_0:
      case TensorType::Q5_0:
      case TensorType::Q8_0:
      case TensorType::IQ4_NL:
        put16(p, h(sign(rng) < 0 ? -1.0f : 1.0f));
        break;
      case TensorType::IQ4_XS:
        put16(p, h(0.1f));
        break;
      case TensorType::Q4_1:
      case TensorType::Q5_1:
        put16(p, h(1.0f));
        put16(p + 2, f32_to_fp16(sign(rng) * 0.2f));
        break;
      case TensorType::Q4_K:
      case TensorType::Q5_K:
        put16(p, h(0.1f));
        put16(p + 2, h(0.1f));
        if (fill >= 0) std::fill(p + 4, p + 4 + kKScaleBytes, uint8_t{0xFF});
        break;
      case TensorType::Q2_K:
        put16(p + 80, h(1.0f));
        put16(p + 82, h(1.0f));
        break;
      case TensorType::Q3_K:
        put16(p + 108, h(0.5f));
        break;
      case TensorType::Q6_K:
        put16(p + 208, h(0.01f));
        if (fill >= 0) std::fill(p + 192, p + 208, uint8_t{0x7F});
        break;
      case TensorType::Q8_K: {
        const float d = scale(rng);
        std::memcpy(p, &d, 4);
        break;
      }
      default:
        ADD_FAILURE() << "no generator for " << ti.name;
    }
  }
  return w;
}

struct MatmulCase {
  TensorType type;
  std::vector<int64_t> n_in;
};

const std::vector<MatmulCase>& matmul_cases() {
  // Shapes: more than one K chunk (2048) and a chunk tail; 32-block types also get an odd number
  // of blocks (a half step for 64-wide kernels); F types any length.
  static const std::vector<MatmulCase> cases = {
      {TensorType::F32, {7, 100, 2061}},   {TensorType::F16, {9, 100, 2061}},
      {TensorType::BF16, {15, 2061}},      {TensorType::Q4_0, {96, 192, 2080}},
      {TensorType::Q4_1, {96, 2080}},      {TensorType::Q5_0, {96, 2080}},
      {TensorType::Q5_1, {96, 192, 2080}}, {TensorType::Q8_0, {96, 192, 2080}},
      {TensorType::Q2_K, {256, 2304}},     {TensorType::Q3_K, {256, 2304}},
      {TensorType::Q4_K, {256, 2304}},     {TensorType::Q5_K, {256, 2304}},
      {TensorType::Q6_K, {256, 2304}},     {TensorType::Q8_K, {256, 2304}},
      {TensorType::IQ4_NL, {96, 2080}},    {TensorType::IQ4_XS, {256, 2304}},
  };
  return cases;
}

// y = W x checked against the reference (dequantize_row_ref, then double dot):
//  - when the table quantizes the input, against the input it was given after quantize_act_ref
//    (only f32 rounding error is allowed), and against the true input within the rigorous bound
//    of the activation rounding, sum_i |w_i| * d_block(i) / 2;
//  - otherwise against the true input within f32 rounding error.
// With quantized activations the squared error is also compared with the noise the rounding
// predicts; a caller whose products have few rows and tokens passes `noise` to add this product's
// figures to a sum it checks over several (a single token's errors over 13 rows share the same
// activation rounding, so a bound on them alone fails by chance for weights with a common offset).
struct NoiseSum {
  double err2 = 0, var = 0;
};
void check_matmul(Isa isa, TensorType type, int64_t n_in, int64_t n_out, int64_t n_tok,
                  std::mt19937& rng, NoiseSum* noise = nullptr) {
  const std::string where =
      std::string(isa_name(isa)) + " " + std::string(tensor_type_info(type).name) + " n_in " +
      std::to_string(n_in) + " n_out " + std::to_string(n_out) + " n_tok " + std::to_string(n_tok);
  SCOPED_TRACE(where);
  const auto wbytes = random_rows(type, n_out, n_in, rng);
  WeightMatrix w{type, n_in, n_out, wbytes.data(),
                 static_cast<size_t>(row_bytes(tensor_type_info(type), n_in))};
  const auto x = randn(static_cast<size_t>(n_tok * n_in), rng);
  std::vector<float> y(static_cast<size_t>(n_tok * n_out), std::nanf(""));
  KernelScratch scratch;
  matmul(w, x.data(), n_tok, y.data(), scratch);

  const MatmulInput in = kernel_table(isa).matmul_input(type, n_tok);
  const bool qin = in == MatmulInput::Q8, bin = in == MatmulInput::Bf16;
  if (isa != Isa::Scalar && type != TensorType::Q8_K) {
    EXPECT_NE(in, MatmulInput::Fallback) << "no direct kernel";
  }

  // The input as the kernel sees it, and each element's activation rounding bound.
  std::vector<float> xq = x, xerr(x.size(), 0.0f);
  if (qin) {
    const int64_t nb = n_in / kActBlock;
    std::vector<int8_t> q(static_cast<size_t>(n_in));
    std::vector<float> d(static_cast<size_t>(nb)), s(static_cast<size_t>(nb));
    for (int64_t t = 0; t < n_tok; ++t) {
      quantize_act_ref(&x[t * n_in], n_in, q.data(), d.data(), s.data());
      for (int64_t i = 0; i < n_in; ++i) {
        xq[t * n_in + i] = d[i / kActBlock] * q[i];
        xerr[t * n_in + i] = d[i / kActBlock] * 0.5f;
      }
    }
  }
  if (bin) {
    for (size_t i = 0; i < x.size(); ++i) {
      xq[i] = bf16_to_f32(bf16_round_ref(x[i]));
      xerr[i] = std::fabs(x[i] - xq[i]);
    }
  }

  std::vector<float> wr(static_cast<size_t>(n_in)), wk(static_cast<size_t>(n_in));
  double err2 = 0, ref2 = 0, var = 0;
  for (int64_t o = 0; o < n_out; ++o) {
    dequantize_row_ref(type, w.row(o), wr.data(), n_in);
    // The weights as the kernel sees them: F16 rounded to bf16 by the bf16 kernel.
    for (int64_t i = 0; i < n_in; ++i) wk[i] = bin ? bf16_to_f32(bf16_round_ref(wr[i])) : wr[i];
    for (int64_t t = 0; t < n_tok; ++t) {
      double ref = 0, refq = 0, mag = 0, bound = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        const double wi = wr[i];
        ref += wi * x[t * n_in + i];
        refq += static_cast<double>(wk[i]) * xq[t * n_in + i];
        mag += std::fabs(wk[i] * xq[t * n_in + i]);
        bound += std::fabs(wi) * xerr[t * n_in + i] + std::fabs((wi - wk[i]) * xq[t * n_in + i]);
        // Rounding to a step of d is uniform noise of variance d^2 / 12 = xerr^2 / 3.
        var += wi * wi * xerr[t * n_in + i] * xerr[t * n_in + i] / 3;
      }
      const double got = y[t * n_out + o];
      ASSERT_TRUE(std::isfinite(got)) << "row " << o << " token " << t;
      ASSERT_NEAR(got, refq, 2e-5 * mag + 1e-30) << "row " << o << " token " << t;
      ASSERT_NEAR(got, ref, bound * 1.001 + 2e-5 * mag + 1e-30) << "row " << o << " token " << t;
      err2 += (got - ref) * (got - ref);
      ref2 += ref * ref;
    }
  }
  // Relative to the norm of the result: a few percent at most with quantized activations (more
  // for weights with a large common offset, whose products cancel), a few 2^-9 (bf16's half step)
  // with bf16 ones, and no more than the noise the activation rounding predicts.
  EXPECT_LT(std::sqrt(err2 / ref2), qin ? 3e-2 : bin ? 1e-2 : 1e-5);
  if (noise != nullptr) {
    noise->err2 += qin ? err2 : 0;
    noise->var += qin ? var : 0;
  } else if (qin) {
    EXPECT_LT(err2, 4 * var);
  }
}

TEST(Matmul, EveryTypeEveryIsaAgainstReference) {
  IsaGuard guard;
  std::mt19937 rng(1234);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (const auto& c : matmul_cases()) {
      NoiseSum noise;
      for (int64_t n_in : c.n_in)
        for (int64_t n_tok : {1, 3, 17}) check_matmul(isa, c.type, n_in, 13, n_tok, rng, &noise);
      EXPECT_LE(noise.err2, 4 * noise.var) << isa_name(isa) << " " << tensor_type_info(c.type).name;
    }
  }
}

TEST(Matmul, TokenChunksAndRowTailsOnLargerShapes) {
  IsaGuard guard;
  std::mt19937 rng(99);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (TensorType t :
         {TensorType::F16, TensorType::BF16, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K})
      check_matmul(isa, t, 512, 37, 70, rng);  // more than one token chunk, rows 37 = 9 * 4 + 1
  }
}

TEST(Matmul, FloatPanelsAgainstReferenceAtTheirTails) {
  // Products of many tokens of F32 / F16 / BF16 weights go through packed panels where the ISA
  // has them (AVX2: 16 rows, K in equal chunks of at most 512, tokens in groups of 6 and chunks
  // of 96): rows not filling a panel, K not a multiple of 8 and cut into two or three chunks,
  // token counts that end a group or a chunk part-way.
  IsaGuard guard;
  std::mt19937 rng(77);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16})
      for (const auto& [n_in, n_out, n_tok] : std::vector<std::array<int64_t, 3>>{
               {601, 37, 64}, {1040, 16, 101}, {200, 50, 197}, {1539, 9, 70}})
        check_matmul(isa, t, n_in, n_out, n_tok, rng);
  }
}

TEST(Matmul, PanelKernelRowAndTokenTailsEveryBlockType) {
  // Many tokens take the panel kernel where there is one (AVX-512: rows in panels of 16, tokens
  // in groups of 6; AVX512_BF16 for F16 / BF16: blocks of up to 4 panels, tokens in groups of 6;
  // AVX2: tiles of two 8-row panels and 4 tokens, a last single panel in groups of 4 tokens): 61
  // rows are a pair of panels, a panel and 13 rows of tail (AVX2: three 16-row tiles, one 8-row
  // panel and 5 rows); 8, 13 and 23 tokens leave every remainder of a token group.
  IsaGuard guard;
  std::mt19937 rng(2024);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (TensorType t :
         {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
          TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::F16, TensorType::BF16,
          TensorType::Q2_K, TensorType::Q3_K, TensorType::IQ4_NL, TensorType::IQ4_XS})
      for (int64_t n_tok : {8, 13, 23}) check_matmul(isa, t, 512, 61, n_tok, rng);
  }
}

TEST(Matmul, QuantsAtTheEndsOfTheirRangeDoNotOverflowIntegerSums) {
  // Every quant at its smallest or largest value and every activation at +-127 (a constant input):
  // the largest integer partial sums the kernels form (16-bit pair sums before they are widened).
  IsaGuard guard;
  std::mt19937 rng(77);
  KernelScratch scratch;
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (TensorType t :
         {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
          TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K,
          TensorType::IQ4_NL, TensorType::IQ4_XS})
      for (int fill : {0x00, 0xFF, 0x80, 0x7F})
        for (float xv : {1.0f, -1.0f})
          for (int64_t n_tok : {1, 3, 8}) {
            SCOPED_TRACE(std::string(isa_name(isa)) + " " + std::string(tensor_type_info(t).name) +
                         " fill " + std::to_string(fill) + " x " + std::to_string(xv) + " tokens " +
                         std::to_string(n_tok));
            const int64_t n_in = 512, n_out = 16;
            const auto wb = random_rows(t, n_out, n_in, rng, fill);
            WeightMatrix w{t, n_in, n_out, wb.data(),
                           static_cast<size_t>(row_bytes(tensor_type_info(t), n_in))};
            const std::vector<float> x(static_cast<size_t>(n_tok * n_in), xv);
            std::vector<float> y(static_cast<size_t>(n_tok * n_out));
            matmul(w, x.data(), n_tok, y.data(), scratch);
            std::vector<float> wr(static_cast<size_t>(n_in));
            for (int64_t o = 0; o < n_out; ++o) {
              dequantize_row_ref(t, w.row(o), wr.data(), n_in);
              double ref = 0, mag = 0;
              for (float v : wr) {
                ref += static_cast<double>(v) * xv;
                mag += std::fabs(v);
              }
              // The AVX-512 panels take the weights' +128 bias off in float (128 times the
              // activations' block sum), so weights that are all zero leave float rounding of that
              // term: a floor of 2^-20 of 128 * 0.05 (the largest block scale here) per element.
              const double floor = 128 * 0.05 * n_in * std::ldexp(1.0, -20);
              for (int64_t k = 0; k < n_tok; ++k)
                ASSERT_NEAR(y[k * n_out + o], ref, 1e-4 * mag + floor) << "row " << o;
            }
          }
  }
}

TEST(Matmul, F16AndBf16ResultsDoNotDependOnTheRowOrTokenSplit) {
  // The bf16 kernel (AVX512_BF16, many tokens) keeps one lane per (row, token) over the whole row:
  // rows taken from any offset, in a product of their own, and tokens taken in any group of at
  // least the kernel's minimum get the same numbers as in the whole product. n_in 601 is odd
  // (the last pair half padding) and spans three chunks of 256 elements; 150 rows are two blocks of
  // 64 and a tail of 22.
  KernelScratch scratch;
  IsaGuard guard;
  std::mt19937 rng(41);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (TensorType t : {TensorType::F16, TensorType::BF16})
      for (int64_t n_tok : {40, 150}) {  // 150: also the AVX2 panels (64 tokens or more)
        const int64_t n_in = 601, n_out = 150;
        const auto wb = random_rows(t, n_out, n_in, rng);
        const size_t rb = static_cast<size_t>(row_bytes(tensor_type_info(t), n_in));
        const auto x = randn(static_cast<size_t>(n_tok * n_in), rng);
        WeightMatrix w{t, n_in, n_out, wb.data(), rb};
        std::vector<float> all(static_cast<size_t>(n_tok * n_out));
        matmul(w, x.data(), n_tok, all.data(), scratch);
        for (const auto& [r0, r1, t0, t1] :
             std::vector<std::array<int64_t, 4>>{{1, 150, 0, n_tok},
                                                 {16, 83, 0, n_tok},
                                                 {37, 101, 3, n_tok},
                                                 {5, 150, 7, n_tok - 10}}) {
          WeightMatrix part{t, n_in, r1 - r0, wb.data() + r0 * rb, rb};
          std::vector<float> y(static_cast<size_t>((t1 - t0) * part.n_out));
          matmul(part, &x[t0 * n_in], t1 - t0, y.data(), scratch);
          for (int64_t tk = t0; tk < t1; ++tk)
            for (int64_t o = r0; o < r1; ++o)
              ASSERT_EQ(y[(tk - t0) * part.n_out + o - r0], all[tk * n_out + o])
                  << isa_name(isa) << " rows " << r0 << ".." << r1 << " token " << tk << " row "
                  << o;
        }
      }
  }
}

TEST(Matmul, PanelResultsDoNotDependOnTheRowSplit) {
  KernelScratch scratch;
  // Rows computed in a pair of panels, a single panel or a row range that starts inside a panel
  // get the same numbers as in one product of all the rows.
  IsaGuard guard;
  std::mt19937 rng(31);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (TensorType t :
         {TensorType::Q4_0, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K,
          TensorType::Q3_K, TensorType::IQ4_NL, TensorType::IQ4_XS}) {
      const int64_t n_in = 768, n_out = 80, n_tok = 11;
      const auto wb = random_rows(t, n_out, n_in, rng);
      const size_t rb = static_cast<size_t>(row_bytes(tensor_type_info(t), n_in));
      const auto x = randn(static_cast<size_t>(n_tok * n_in), rng);
      WeightMatrix w{t, n_in, n_out, wb.data(), rb};
      std::vector<float> all(static_cast<size_t>(n_tok * n_out));
      matmul(w, x.data(), n_tok, all.data(), scratch);
      // The rows from 16 on as a matrix of their own: panels start 16 rows later (from 8 and 24:
      // AVX2's 16-row tiles pair other panels, and the last 8 rows go through an 8-row panel;
      // AVX-512's panels are 16 rows, so a skip of 8 moves rows between a panel and the row-major
      // tiles there, whose sums are ordered differently).
      const std::vector<int64_t> skips =
          isa == Isa::Avx2 ? std::vector<int64_t>{8, 16, 24, 48} : std::vector<int64_t>{16, 48};
      for (int64_t skip : skips) {
        WeightMatrix part{t, n_in, n_out - skip, wb.data() + skip * rb, rb};
        std::vector<float> y(static_cast<size_t>(n_tok * part.n_out));
        matmul(part, x.data(), n_tok, y.data(), scratch);
        for (int64_t tk = 0; tk < n_tok; ++tk)
          for (int64_t o = 0; o < part.n_out; ++o)
            ASSERT_EQ(y[tk * part.n_out + o], all[tk * n_out + skip + o])
                << isa_name(isa) << " " << tensor_type_info(t).name << " skip " << skip << " token "
                << tk << " row " << o;
      }
    }
  }
}

TEST(Matmul, Q6kPanelAgainstReferenceForTokenCountsAroundThePanelMinimum) {
  // Q6_K's 16-element scales in the AVX-512 panel: token counts below the panel's minimum (8, the
  // row-major tiles), at it and above it with every remainder of a token group; 1280 elements are
  // two pack chunks of 512 and a half chunk; 69 rows are four panels and 5 rows of tail.
  IsaGuard guard;
  std::mt19937 rng(606);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (int64_t n_tok : {1, 7, 8, 9, 10, 11, 33})
      check_matmul(isa, TensorType::Q6_K, 1280, 69, n_tok, rng);
  }
}

TEST(Matmul, Q6kRowRangesCutAtAnyTaskBoundaryGiveTheSameNumbers) {
  // matmul_rows on any cut of the rows where matmul's tasks may start (multiples of 16, matmul.cpp:
  // kRowAlignBatch) writes bit for bit what one call over all the rows writes: one range per
  // panel, a range ending in the row tail, pairs of panels split differently.
  KernelScratch scratch;
  scratch.prepare();
  std::mt19937 rng(607);
  const int64_t n_in = 768, n_out = 83, nb = n_in / kActBlock;
  const auto wb = random_rows(TensorType::Q6_K, n_out, n_in, rng);
  WeightMatrix w{TensorType::Q6_K, n_in, n_out, wb.data(),
                 static_cast<size_t>(row_bytes(tensor_type_info(TensorType::Q6_K), n_in))};
  for (int64_t n_tok : {8, 21}) {
    const auto x = randn(static_cast<size_t>(n_tok * n_in), rng);
    std::vector<int8_t> q(static_cast<size_t>(n_tok * n_in));
    std::vector<float> d(static_cast<size_t>(n_tok * nb)), s(d.size());
    for (int64_t t = 0; t < n_tok; ++t)
      quantize_act_ref(&x[t * n_in], n_in, &q[t * n_in], &d[t * nb], &s[t * nb]);
    const ActQ8 a{q.data(), d.data(), s.data(), n_in};
    for (Isa isa : supported_isas()) {
      const KernelTable& kt = kernel_table(isa);
      if (kt.matmul_input(TensorType::Q6_K, n_tok) != MatmulInput::Q8) continue;
      std::vector<float> all(static_cast<size_t>(n_tok * n_out), NAN);
      kt.matmul_rows(w, x.data(), &a, nullptr, n_tok, 0, n_out, all.data(), scratch.slot().rows);
      for (const auto& cuts : std::vector<std::vector<int64_t>>{
               {0, 16, 83}, {0, 16, 32, 48, 64, 80, 83}, {0, 48, 80, 83}, {0, 32, 64, 83}}) {
        std::vector<float> y(all.size(), NAN);
        for (size_t k = 0; k + 1 < cuts.size(); ++k)
          kt.matmul_rows(w, x.data(), &a, nullptr, n_tok, cuts[k], cuts[k + 1], y.data(),
                         scratch.slot().rows);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ(y[i], all[i]) << isa_name(isa) << " tokens " << n_tok << " row " << i % n_out
                                  << " token " << i / n_out;
      }
    }
  }
}

TEST(Matmul, ResultDoesNotDependOnBatch) {
  KernelScratch scratch;
  // A (row, token) result is the same whether the token comes alone or in a small batch: bit for
  // bit for the f32 paths (the AVX2 packed panels, from 64 tokens, round differently); within f32
  // rounding for the integer paths (one token has its own kernel).
  IsaGuard guard;
  std::mt19937 rng(5);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::Q8_0, TensorType::Q5_K}) {
      const bool exact = t == TensorType::F32 || t == TensorType::F16;
      const int64_t n_in = 2560, n_out = 21, n_tok = 9;
      const auto wb = random_rows(t, n_out, n_in, rng);
      WeightMatrix w{t, n_in, n_out, wb.data(),
                     static_cast<size_t>(row_bytes(tensor_type_info(t), n_in))};
      const auto x = randn(static_cast<size_t>(n_tok * n_in), rng);
      std::vector<float> all(static_cast<size_t>(n_tok * n_out)), one(static_cast<size_t>(n_out));
      matmul(w, x.data(), n_tok, all.data(), scratch);
      float amax = 0;
      for (float v : all) amax = std::max(amax, std::fabs(v));
      for (int64_t tk = 0; tk < n_tok; ++tk) {
        matmul(w, &x[tk * n_in], 1, one.data(), scratch);
        for (int64_t o = 0; o < n_out; ++o) {
          if (exact) {
            ASSERT_EQ(one[o], all[tk * n_out + o]) << isa_name(isa) << " " << tk << " " << o;
          } else {
            ASSERT_NEAR(one[o], all[tk * n_out + o], 1e-5 * amax) << isa_name(isa) << " " << o;
          }
        }
      }
    }
  }
}

TEST(Matmul, GroupEqualsSeparateProductsForAnyThreadCount) {
  KernelScratch scratch;
  // matmul_group (one region, the input quantized once, rows cut into dynamically claimed tasks)
  // gives bit for bit what matmul gives for each matrix alone on one thread, whatever the number
  // of threads, for mixed types (integer kernels, f16, and a type without a direct kernel).
  IsaGuard guard;
  std::mt19937 rng(77);
  const int64_t n_in = 512;
  const std::vector<std::pair<TensorType, int64_t>> mats = {
      {TensorType::Q8_0, 203}, {TensorType::Q4_K, 64},  {TensorType::F16, 37},
      {TensorType::Q2_K, 9},   {TensorType::Q4_0, 130}, {TensorType::BF16, 150},
      {TensorType::Q6_K, 70}};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<WeightMatrix> ws;
  for (const auto& [t, n_out] : mats) {
    bytes.push_back(random_rows(t, n_out, n_in, rng));
    ws.push_back(WeightMatrix{t, n_in, n_out, bytes.back().data(),
                              static_cast<size_t>(row_bytes(tensor_type_info(t), n_in))});
  }
  std::vector<const WeightMatrix*> wp;
  for (const auto& w : ws) wp.push_back(&w);
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    for (int64_t n_tok : {1, 5, 40}) {
      const auto x = randn(static_cast<size_t>(n_tok * n_in), rng);
      set_num_threads(1);
      std::vector<std::vector<float>> ref;
      for (const auto& w : ws) {
        ref.emplace_back(static_cast<size_t>(n_tok * w.n_out));
        matmul(w, x.data(), n_tok, ref.back().data(), scratch);
      }
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<std::vector<float>> got;
        std::vector<float*> yp;
        for (const auto& w : ws) got.emplace_back(static_cast<size_t>(n_tok * w.n_out), NAN);
        for (auto& g : got) yp.push_back(g.data());
        matmul_group(wp.data(), yp.data(), static_cast<int>(ws.size()), x.data(), n_tok, scratch);
        for (size_t m = 0; m < ws.size(); ++m)
          for (size_t i = 0; i < ref[m].size(); ++i)
            ASSERT_EQ(got[m][i], ref[m][i]) << isa_name(isa) << " matrix " << m << " element " << i
                                            << " tokens " << n_tok << " threads " << threads;
        // matmul alone is the one-matrix group, also split over the threads.
        std::vector<float> one(ref[0].size(), NAN);
        matmul(ws[0], x.data(), n_tok, one.data(), scratch);
        ASSERT_EQ(one, ref[0]) << isa_name(isa) << " threads " << threads;
      }
    }
  }
  set_num_threads(0);
}

TEST(QuantizeAct, EveryIsaMatchesTheScalarDefinitionBitForBit) {
  std::mt19937 rng(7);
  const int64_t n = 32 * 40;
  auto x = randn(static_cast<size_t>(n), rng, 3.0f);
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // an all-zero block: d = 0
  for (int j = 0; j < 32; ++j) x[96 + j] = static_cast<float>(j % 7) - 3.5f + (j == 0 ? 127 : 0);
  x[128] = 127.0f;  // d = 1: the halves below round to even
  for (int j = 1; j < 32; ++j) x[128 + j] = 0.5f + static_cast<float>(j) - 16.0f;
  for (int j = 0; j < 32; ++j) x[160 + j] = 1e-30f * static_cast<float>(j - 16);  // tiny
  const int64_t nb = n / kActBlock;
  std::vector<int8_t> q0(n), q1(n);
  std::vector<float> d0(nb), s0(nb), d1(nb), s1(nb);
  quantize_act_ref(x.data(), n, q0.data(), d0.data(), s0.data());
  // Reference properties: |q| <= 127, the block maximum maps to +-127, s = d * sum(q).
  for (int64_t b = 0; b < nb; ++b) {
    int sum = 0, qmax = 0;
    for (int j = 0; j < 32; ++j) {
      sum += q0[b * 32 + j];
      qmax = std::max(qmax, std::abs(static_cast<int>(q0[b * 32 + j])));
    }
    EXPECT_EQ(s0[b], d0[b] * static_cast<float>(sum));
    EXPECT_EQ(qmax, d0[b] == 0 ? 0 : 127) << b;
  }
  EXPECT_EQ(q0[129], -14);  // -14.5 -> -14 (even)
  EXPECT_EQ(q0[130], -14);  // -13.5 -> -14 (even)
  for (Isa isa : supported_isas()) {
    kernel_table(isa).quantize_act(x.data(), n, q1.data(), d1.data(), s1.data());
    EXPECT_EQ(q0, q1) << isa_name(isa);
    EXPECT_EQ(d0, d1) << isa_name(isa);
    EXPECT_EQ(s0, s1) << isa_name(isa);
  }
}

TEST(RoundBf16, ReferenceAndEveryIsaBitForBit) {
  // The definition: round to nearest even, subnormals to a zero of their sign, NaN quiet.
  auto f = [](uint32_t u) { return f32_from_bits(u); };
  EXPECT_EQ(bf16_round_ref(1.0f), 0x3F80);
  EXPECT_EQ(bf16_round_ref(f(0x3F808000)), 0x3F80);  // 1 + 2^-8: a tie, down to the even 1
  EXPECT_EQ(bf16_round_ref(f(0x3F818000)), 0x3F82);  // 1 + 3 * 2^-8: a tie, up to the even
  EXPECT_EQ(bf16_round_ref(f(0x3F808001)), 0x3F81);  // just above the tie
  EXPECT_EQ(bf16_round_ref(f(0xBF80FFFF)), 0xBF81);
  EXPECT_EQ(bf16_round_ref(f(0x00400000)), 0x0000);  // subnormal
  EXPECT_EQ(bf16_round_ref(f(0x80000001)), 0x8000);
  EXPECT_EQ(bf16_round_ref(f(0x00800000)), 0x0080);  // the smallest normal
  EXPECT_EQ(bf16_round_ref(f(0x7F7FFFFF)), 0x7F80);  // the largest float rounds to inf
  EXPECT_EQ(bf16_round_ref(f(0xFF800000)), 0xFF80);
  EXPECT_EQ(bf16_round_ref(f(0x7F800001)), 0x7FC0);  // a signalling NaN becomes quiet
  EXPECT_EQ(bf16_round_ref(f(0xFFC12345)), 0xFFC1);

  std::mt19937 rng(8);
  std::vector<float> x = randn(77, rng, 10.0f);
  const uint32_t special[] = {0x3F808000, 0x3F818000, 0x00400000, 0x80000001, 0x7F7FFFFF,
                              0x7F800001, 0xFFC12345, 0x7F800000, 0x00000000, 0x80000000};
  for (size_t i = 0; i < std::size(special); ++i) x[3 * i + 1] = f(special[i]);
  for (int64_t n : {1, 2, 15, 16, 17, 31, 32, 33, 77}) {
    std::vector<uint16_t> ref(static_cast<size_t>(n + 2), 0xAAAA), got = ref;
    round_bf16_ref(x.data(), n, ref.data());
    EXPECT_EQ(ref[n + 1], 0xAAAA);
    EXPECT_EQ(ref[n], n % 2 != 0 ? 0 : 0xAAAA) << "the padding of an odd row";
    for (Isa isa : supported_isas()) {
      const KernelTable& k = kernel_table(isa);
      if (k.round_bf16 == nullptr) continue;
      std::fill(got.begin(), got.end(), 0xAAAA);
      k.round_bf16(x.data(), n, got.data());
      EXPECT_EQ(got, ref) << isa_name(isa) << " n " << n;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Row ops.

const int64_t kSizes[] = {1, 7, 8, 15, 16, 17, 33, 100, 1000};

TEST(Ops, DotAxpyAddEveryIsa) {
  std::mt19937 rng(11);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (int64_t n : kSizes) {
      const auto a = randn(n, rng), b = randn(n, rng);
      double ref = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        ref += double(a[i]) * b[i];
        mag += std::fabs(double(a[i]) * b[i]);
      }
      EXPECT_NEAR(k.dot_f32(a.data(), b.data(), n), ref, 1e-6 * mag) << isa_name(isa) << n;
      auto y = b;
      k.axpy(0.75f, a.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(y[i], 0.75 * a[i] + b[i], 1e-6 * (std::fabs(a[i]) + std::fabs(b[i])));
      y = b;
      k.add_inplace(y.data(), a.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], b[i] + a[i]);
      // The element past the end is never written.
      std::vector<float> z(n + 1, 1.0f);
      k.axpy(2.0f, a.data(), z.data(), n);
      k.add_inplace(z.data(), a.data(), n);
      EXPECT_EQ(z[n], 1.0f);
    }
  }
}

TEST(Ops, F16ToF32EveryIsaEveryValue) {
  // All 65536 halves (infinities, NaNs, subnormals included), at odd offsets and lengths; nothing
  // past n is written.
  std::vector<uint16_t> h(65536);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (int64_t off : {0, 3}) {
      const int64_t n = 65536 - off - 5;
      std::vector<float> got(static_cast<size_t>(n + 1), 7.0f);
      k.f16_to_f32(h.data() + off, got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float want = fp16_to_f32(h[static_cast<size_t>(off + i)]);
        if (std::isnan(want))
          ASSERT_TRUE(std::isnan(got[i])) << isa_name(isa) << " " << off + i;
        else
          ASSERT_EQ(std::memcmp(&got[i], &want, 4), 0) << isa_name(isa) << " " << off + i;
      }
      EXPECT_EQ(got[n], 7.0f) << isa_name(isa);
    }
  }
}

TEST(Ops, F32ToF16EveryIsaMatchesTheScalarRounding) {
  // Every sign, exponent and top mantissa bits, with low bits at the rounding ties of normal and
  // subnormal halves and around them; infinities and NaNs (with payloads) included; odd offsets
  // and lengths; nothing past n is written.
  std::vector<float> x;
  for (uint32_t hi = 0; hi < 65536; ++hi)
    for (uint32_t lo :
         {0x0000u, 0x0001u, 0x0fffu, 0x1000u, 0x1001u, 0x2000u, 0x4000u, 0x8000u, 0xc000u, 0xffffu})
      x.push_back(f32_from_bits(hi << 16 | lo));
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (int64_t off : {0, 3}) {
      const int64_t n = static_cast<int64_t>(x.size()) - off - 5;
      std::vector<uint16_t> got(static_cast<size_t>(n + 1), 7);
      k.f32_to_f16(x.data() + off, got.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(got[static_cast<size_t>(i)], f32_to_fp16(x[static_cast<size_t>(off + i)]))
            << isa_name(isa) << " " << std::hex << bits_from_f32(x[static_cast<size_t>(off + i)]);
      EXPECT_EQ(got[static_cast<size_t>(n)], 7) << isa_name(isa);
    }
  }
}

// Column-stored matrix times vector, against a double-precision loop; nothing past n is written.
// Byte tiles: exact integer sums on every ISA, extreme bytes included (255 x -128 everywhere).
TEST(Ops, DotTilesEveryIsa) {
  std::mt19937 rng(17);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (int64_t k4 : {1, 2, 16, 33}) {
      for (int64_t tiles : {1, 3}) {
        for (int extreme = 0; extreme < 2; ++extreme) {
          std::vector<uint8_t> a(static_cast<size_t>(tiles * k4 * 256));
          std::vector<int8_t> q(static_cast<size_t>(k4 * 4));
          for (auto& x : a) x = extreme ? 255 : static_cast<uint8_t>(rng());
          for (auto& x : q) x = extreme ? -128 : static_cast<int8_t>(rng());
          std::vector<int32_t> out(static_cast<size_t>(tiles * 64 + 1), 7);
          k.dot_tiles_u8s8(a.data(), q.data(), k4, k4, tiles, out.data());
          for (int64_t c = 0; c < tiles * 64; ++c) {
            int64_t ref = 0;
            for (int64_t e = 0; e < k4 * 4; ++e)
              ref += int64_t{a[static_cast<size_t>((c / 64) * k4 * 256 + (e / 4) * 256 +
                                                   (c % 64) * 4 + e % 4)]} *
                     q[static_cast<size_t>(e)];
            ASSERT_EQ(out[static_cast<size_t>(c)], ref)
                << isa_name(isa) << " k4 " << k4 << " column " << c;
          }
          EXPECT_EQ(out[static_cast<size_t>(tiles * 64)], 7) << isa_name(isa);
          // A slice: groups [g0, g0 + n4) of every tile.
          if (k4 >= 2) {
            const int64_t g0 = k4 / 2, n4 = k4 - k4 / 2;
            std::fill(out.begin(), out.end(), 7);
            k.dot_tiles_u8s8(a.data() + g0 * 256, q.data() + g0 * 4, n4, k4, tiles, out.data());
            for (int64_t c = 0; c < tiles * 64; ++c) {
              int64_t ref = 0;
              for (int64_t e = g0 * 4; e < k4 * 4; ++e)
                ref += int64_t{a[static_cast<size_t>((c / 64) * k4 * 256 + (e / 4) * 256 +
                                                     (c % 64) * 4 + e % 4)]} *
                       q[static_cast<size_t>(e)];
              ASSERT_EQ(out[static_cast<size_t>(c)], ref)
                  << isa_name(isa) << " slice k4 " << k4 << " column " << c;
            }
            EXPECT_EQ(out[static_cast<size_t>(tiles * 64)], 7) << isa_name(isa);
          }
        }
      }
    }
  }
}

TEST(Ops, MaxSliceDotsEveryIsa) {
  // Per-slice dot products of each row, less the slice's offset, combined by their maximum; the
  // SIMD paths (slices of whole vectors, up to 8 or 16) and their fallback.
  std::mt19937 rng(29);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (const auto& [d, slices] : std::vector<std::pair<int64_t, int64_t>>{
             {8, 1}, {24, 3}, {64, 2}, {192, 6}, {288, 9}, {512, 16}, {60, 5}, {192, 1}}) {
      for (int64_t n : {1, 5, 16}) {
        const auto a = randn(n * d, rng);
        const auto q = randn(d, rng);
        const auto off = randn(slices, rng);
        for (bool with_off : {false, true}) {
          std::vector<float> out(static_cast<size_t>(n + 1), 7.0f);
          k.max_slice_dots(a.data(), n, d, slices, q.data(), with_off ? off.data() : nullptr,
                           out.data());
          const int64_t w = d / slices;
          for (int64_t i = 0; i < n; ++i) {
            double best = -1e300, mag = 0;
            for (int64_t h = 0; h < slices; ++h) {
              double s = 0;
              for (int64_t e = h * w; e < (h + 1) * w; ++e) {
                s += double(a[static_cast<size_t>(i * d + e)]) * q[static_cast<size_t>(e)];
                mag += std::fabs(double(a[static_cast<size_t>(i * d + e)]) *
                                 q[static_cast<size_t>(e)]);
              }
              best = std::max(best, s - (with_off ? off[static_cast<size_t>(h)] : 0.0));
            }
            ASSERT_NEAR(out[static_cast<size_t>(i)], best, 1e-5 * mag + 1e-6)
                << isa_name(isa) << " d " << d << " slices " << slices << " row " << i;
          }
          EXPECT_EQ(out[static_cast<size_t>(n)], 7.0f) << isa_name(isa);
        }
      }
    }
  }
}

TEST(Ops, DotColumnsEveryIsa) {
  std::mt19937 rng(13);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (int64_t d : {1, 8, 64, 67}) {
      for (int64_t n : {1, 7, 16, 31, 64, 100, 1000}) {
        std::vector<std::vector<float>> cols;
        std::vector<const float*> rows;
        for (int64_t e = 0; e < d; ++e) cols.push_back(randn(n, rng));
        for (const auto& c : cols) rows.push_back(c.data());
        const auto q = randn(d, rng);
        std::vector<float> out(static_cast<size_t>(n + 1), 7.0f);
        k.dot_columns(rows.data(), q.data(), d, n, out.data());
        for (int64_t c = 0; c < n; ++c) {
          double ref = 0, mag = 0;
          for (int64_t e = 0; e < d; ++e) {
            ref += double(q[e]) * cols[e][c];
            mag += std::fabs(double(q[e]) * cols[e][c]);
          }
          ASSERT_NEAR(out[c], ref, 1e-5 * mag + 1e-7) << isa_name(isa) << " d " << d << " n " << n;
        }
        EXPECT_EQ(out[n], 7.0f) << isa_name(isa);
        // Rows: the transposed matrix, row by row.
        std::vector<float> a(static_cast<size_t>(n * d));
        for (int64_t c = 0; c < n; ++c)
          for (int64_t e = 0; e < d; ++e) a[c * d + e] = cols[e][c];
        std::fill(out.begin(), out.end(), 7.0f);
        k.dot_rows(a.data(), n, d, d, q.data(), out.data());
        for (int64_t c = 0; c < n; ++c) {
          double ref = 0, mag = 0;
          for (int64_t e = 0; e < d; ++e) {
            ref += double(q[e]) * cols[e][c];
            mag += std::fabs(double(q[e]) * cols[e][c]);
          }
          ASSERT_NEAR(out[c], ref, 1e-5 * mag + 1e-7) << isa_name(isa) << " rows d " << d;
        }
        EXPECT_EQ(out[n], 7.0f) << isa_name(isa);
        // A slice of each row: elements [off, off + w) of rows d apart.
        if (d >= 3) {
          const int64_t off = d / 3, w = d - d / 3 - 1;
          std::fill(out.begin(), out.end(), 7.0f);
          k.dot_rows(a.data() + off, n, w, d, q.data(), out.data());
          for (int64_t c = 0; c < n; ++c) {
            double ref = 0, mag = 0;
            for (int64_t e = 0; e < w; ++e) {
              ref += double(q[e]) * cols[off + e][c];
              mag += std::fabs(double(q[e]) * cols[off + e][c]);
            }
            ASSERT_NEAR(out[c], ref, 1e-5 * mag + 1e-7) << isa_name(isa) << " slice d " << d;
          }
          EXPECT_EQ(out[n], 7.0f) << isa_name(isa);
        }
        // Half precision: the same against the rounded matrix.
        std::vector<std::vector<uint16_t>> hcols;
        std::vector<const uint16_t*> hrows;
        for (const auto& c : cols) {
          hcols.emplace_back();
          for (float x : c) hcols.back().push_back(lc::f32_to_fp16(x));
        }
        for (const auto& c : hcols) hrows.push_back(c.data());
        k.dot_columns_f16(hrows.data(), q.data(), d, n, out.data());
        for (int64_t c = 0; c < n; ++c) {
          double ref = 0, mag = 0;
          for (int64_t e = 0; e < d; ++e) {
            const double x = lc::fp16_to_f32(hcols[e][c]);
            ref += double(q[e]) * x;
            mag += std::fabs(double(q[e]) * x);
          }
          ASSERT_NEAR(out[c], ref, 1e-5 * mag + 1e-7)
              << isa_name(isa) << " f16 d " << d << " n " << n;
        }
        EXPECT_EQ(out[n], 7.0f) << isa_name(isa);
      }
    }
  }
}

TEST(Ops, RmsnormSiluSoftmaxEveryIsa) {
  std::mt19937 rng(12);
  for (Isa isa : supported_isas()) {
    SCOPED_TRACE(isa_name(isa));
    const KernelTable& k = kernel_table(isa);
    for (int64_t n : kSizes) {
      const auto x = randn(n, rng, 2.0f), w = randn(n, rng);
      std::vector<float> y(n + 1, 5.0f);
      k.rmsnorm(x.data(), w.data(), y.data(), n, 1e-5f);
      double ss = 0;
      for (float v : x) ss += double(v) * v;
      const double sc = 1.0 / std::sqrt(ss / n + 1e-5);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(y[i], x[i] * sc * w[i], 1e-6 * std::fabs(x[i] * sc * w[i]) + 1e-30);
      EXPECT_EQ(y[n], 5.0f);

      // silu over a wide range, including values whose exp overflows.
      auto a = randn(n, rng, 8.0f);
      if (n > 3) {
        a[0] = -100.0f;
        a[1] = 100.0f;
        a[2] = 0.0f;
      }
      const auto b = randn(n, rng);
      auto s = a;
      k.silu_mul(s.data(), b.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double ref = a[i] / (1.0 + std::exp(-double(a[i]))) * b[i];
        ASSERT_NEAR(s[i], ref, 2e-6 * std::fabs(ref) + 1e-30) << a[i];
      }

      // softmax with -inf entries, large spread.
      auto p = randn(n, rng, 20.0f);
      if (n > 2) p[1] = -std::numeric_limits<float>::infinity();
      auto r = p;
      k.softmax_inplace(r.data(), n);
      double mx = -INFINITY, sum = 0;
      for (float v : p) mx = std::max<double>(mx, v);
      for (float v : p) sum += std::exp(double(v) - mx);
      for (int64_t i = 0; i < n; ++i) {
        // The kernels subtract in f32 (as the scalar one does), then exponentiate.
        const double ref = std::exp(double(p[i] - static_cast<float>(mx))) / sum;
        ASSERT_NEAR(r[i], ref, 2e-6 * ref + 1e-37) << i;
      }
    }
    std::vector<float> ninf(5, -std::numeric_limits<float>::infinity());
    k.softmax_inplace(ninf.data(), 5);
    for (float v : ninf) EXPECT_EQ(v, 0.0f);
  }
}

TEST(Ops, ExpShiftAccuracyEveryIsa) {
  std::vector<float> x;
  for (float v = -110.0f; v <= 0.0f; v += 0.0137f) x.push_back(v);
  x.push_back(-std::numeric_limits<float>::infinity());
  x.push_back(0.0f);
  const int64_t n = static_cast<int64_t>(x.size());
  for (Isa isa : supported_isas()) {
    std::vector<float> y(n + 1, 7.0f);
    const double sum = kernel_table(isa).exp_shift(x.data(), 0.0f, y.data(), n);
    double ref_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double ref = std::exp(double(x[i]));
      ref_sum += ref;
      // Below ~ -87.3 the result is subnormal: allow it to flush to zero.
      ASSERT_NEAR(y[i], ref, 1e-6 * ref + 2e-38) << isa_name(isa) << " x " << x[i];
    }
    EXPECT_EQ(y[n - 2], 0.0f);
    EXPECT_EQ(y[n - 1], 1.0f);
    EXPECT_EQ(y[n], 7.0f);
    EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum);
  }
}

// ---------------------------------------------------------------------------------------------
// Attention.

// The shapes of one tile test: nh query heads (q_hs apart), n keys of hd elements (stride apart),
// score / probability rows ns apart, accumulator rows acc_hs apart.
struct TileShape {
  int64_t hd, n, nh, stride, q_hs, ns, acc_hs;
};

// Scores s (rows ns apart) and their maxima mx against a double reference from the keys kf in
// f32; nothing is written past n.
void expect_scores(const TileShape& t, const std::vector<float>& q, const float* kf, float scale,
                   const std::vector<float>& s, const std::vector<float>& mx) {
  for (int64_t h = 0; h < t.nh; ++h) {
    float ref_max = -INFINITY;
    for (int64_t j = 0; j < t.n; ++j) {
      double ref = 0, mag = 0;
      for (int64_t e = 0; e < t.hd; ++e) {
        ref += double(q[h * t.q_hs + e]) * kf[j * t.stride + e];
        mag += std::fabs(double(q[h * t.q_hs + e]) * kf[j * t.stride + e]);
      }
      ASSERT_NEAR(s[h * t.ns + j], ref * scale, 1e-6 * mag * scale) << h << " " << j;
      ref_max = std::max(ref_max, s[h * t.ns + j]);
    }
    EXPECT_EQ(mx[h], ref_max);
    EXPECT_EQ(s[h * t.ns + t.n], 9.0f);  // nothing past n is written
  }
}

// acc = acc0 + p . values (vf in f32) against a double reference; the gap between heads is kept.
void expect_accum(const TileShape& t, const std::vector<float>& p, const float* vf,
                  const std::vector<float>& acc0, const std::vector<float>& acc) {
  for (int64_t h = 0; h < t.nh; ++h) {
    for (int64_t e = 0; e < t.hd; ++e) {
      double ref = acc0[h * t.acc_hs + e], mag = std::fabs(ref);
      for (int64_t j = 0; j < t.n; ++j) {
        ref += double(p[h * t.ns + j]) * vf[j * t.stride + e];
        mag += std::fabs(double(p[h * t.ns + j]) * vf[j * t.stride + e]);
      }
      ASSERT_NEAR(acc[h * t.acc_hs + e], ref, 1e-6 * mag) << h << " " << e;
    }
    EXPECT_EQ(acc[h * t.acc_hs + t.hd], acc0[h * t.acc_hs + t.hd]);  // gap between heads
  }
}

TEST(AttentionTiles, TransposedScoresEveryIsa) {
  // attn_scores_kt against the same double reference: keys stored transposed with a leading
  // dimension larger than n, every row count (groups of 4 and their rests) and key counts around
  // the 16 / 64-key vectors of the kernels.
  std::mt19937 rng(23);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (int64_t hd : {8, 64, 80}) {
      for (int64_t n : {1, 15, 64, 70, 130}) {
        for (int64_t nh : {1, 3, 4, 7, 24}) {
          SCOPED_TRACE(std::string(isa_name(isa)) + " hd " + std::to_string(hd) + " n " +
                       std::to_string(n) + " rows " + std::to_string(nh));
          const int64_t ld = n + 9, q_hs = hd + 3, ns = n + 2;
          const auto q = randn(nh * q_hs, rng), kt = randn(hd * ld, rng);
          std::vector<float> kf(static_cast<size_t>(n * hd));  // the same keys by row
          for (int64_t j = 0; j < n; ++j)
            for (int64_t e = 0; e < hd; ++e) kf[j * hd + e] = kt[e * ld + j];
          std::vector<float> s(nh * ns, 9.0f), mx(nh, 0.0f);
          const float scale = 0.3f;
          k.attn_scores_kt(q.data(), q_hs, nh, kt.data(), ld, n, hd, scale, s.data(), ns,
                           mx.data());
          const TileShape ts{hd, n, nh, hd, q_hs, ns, hd + 1};
          expect_scores(ts, q, kf.data(), scale, s, mx);
        }
      }
    }
  }
}

TEST(AttentionTiles, ScoresAndAccumEveryIsaEveryHeadDim) {
  std::mt19937 rng(21);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernel_table(isa);
    // hd 12 and 44: a partial last vector; 1-6 heads: every grouping of heads that share loads.
    for (int64_t hd : {8, 12, 16, 24, 40, 44, 64, 80, 128, 256}) {
      for (int64_t n : {1, 5, 16, 17, 33, 128}) {
        for (int64_t nh : {1, 2, 3, 4, 5, 6}) {
          SCOPED_TRACE(std::string(isa_name(isa)) + " hd " + std::to_string(hd) + " n " +
                       std::to_string(n) + " heads " + std::to_string(nh));
          const int64_t stride = 3 * hd + 4, q_hs = hd + 3, ns = n + 2;
          const auto q = randn(nh * q_hs, rng), kv = randn(n * stride, rng),
                     p = randn(nh * ns, rng);
          std::vector<float> s(nh * ns, 9.0f), mx(nh, 0.0f);
          const float scale = 0.3f;
          k.attn_scores(q.data(), q_hs, nh, kv.data(), stride, n, hd, scale, s.data(), ns,
                        mx.data());
          const TileShape ts{hd, n, nh, stride, q_hs, ns, hd + 1};
          expect_scores(ts, q, kv.data(), scale, s, mx);

          const int64_t acc_hs = hd + 1;
          auto acc = randn(nh * acc_hs, rng);
          const auto acc0 = acc;
          k.attn_accum(p.data(), ns, nh, kv.data(), stride, n, hd, acc.data(), acc_hs);
          expect_accum(ts, p, kv.data(), acc0, acc);
        }
      }
    }
  }
}

// Rows of random keys / values stored as F16 or Q8_0, and the same numbers in f32 (exact).
struct StoredRows {
  std::vector<uint16_t> f16;
  std::vector<BlockQ8_0> q8;
  std::vector<float> f32;  // what the stored rows hold
};

StoredRows stored_rows(KvType t, const std::vector<float>& x) {
  StoredRows r;
  const int64_t n = static_cast<int64_t>(x.size());
  if (t == KvType::F16) {
    r.f16.resize(x.size());
    kv_from_f32(t, x.data(), r.f16.data(), n);
    r.f32.resize(x.size());
    kv_to_f32(t, r.f16.data(), r.f32.data(), n);
  } else {
    r.q8.resize(x.size() / 32);
    kv_from_f32(t, x.data(), r.q8.data(), n);
    r.f32.resize(x.size());
    kv_to_f32(t, r.q8.data(), r.f32.data(), n);
  }
  return r;
}

// The F16 and Q8_0 tiles of every ISA against references in double computed from the stored
// numbers, the way the f32 tiles are tested above (Q8_0: head dims that are multiples of 32).
TEST(AttentionTiles, F16AndQ8_0ScoresAndAccumEveryIsa) {
  std::mt19937 rng(23);
  for (KvType t : {KvType::F16, KvType::Q8_0}) {
    const std::vector<int64_t> hds =
        t == KvType::F16 ? std::vector<int64_t>{8, 12, 16, 24, 40, 44, 64, 80, 128, 256}
                         : std::vector<int64_t>{32, 64, 96, 128, 256};
    for (int64_t hd : hds) {
      for (int64_t n : {1, 5, 16, 17, 33, 128}) {
        for (int64_t nh : {1, 2, 3, 4, 5, 6}) {
          // Rows of 3 heads (+ 32 elements between rows), the tile reading the second head.
          const int64_t stride = 3 * hd + 32, q_hs = hd + 3, ns = n + 2, off = hd;
          const auto q = randn(nh * q_hs, rng), p = randn(nh * ns, rng);
          const StoredRows kv = stored_rows(t, randn(n * stride, rng));
          const float* kf = kv.f32.data() + off;  // the stored numbers, in f32
          for (Isa isa : supported_isas()) {
            SCOPED_TRACE(std::string(kv_type_name(t)) + " " + isa_name(isa) + " hd " +
                         std::to_string(hd) + " n " + std::to_string(n) + " heads " +
                         std::to_string(nh));
            const KernelTable& k = kernel_table(isa);
            std::vector<float> s(nh * ns, 9.0f), mx(nh, 0.0f);
            const float scale = 0.3f;
            if (t == KvType::F16)
              k.attn_scores_f16(q.data(), q_hs, nh, kv.f16.data() + off, stride, n, hd, scale,
                                s.data(), ns, mx.data());
            else
              k.attn_scores_q8_0(q.data(), q_hs, nh, kv.q8.data() + off / 32, stride / 32, n, hd,
                                 scale, s.data(), ns, mx.data());
            const TileShape ts{hd, n, nh, stride, q_hs, ns, hd + 1};
            expect_scores(ts, q, kf, scale, s, mx);

            const int64_t acc_hs = hd + 1;
            auto acc = randn(nh * acc_hs, rng);
            const auto acc0 = acc;
            if (t == KvType::F16)
              k.attn_accum_f16(p.data(), ns, nh, kv.f16.data() + off, stride, n, hd, acc.data(),
                               acc_hs);
            else
              k.attn_accum_q8_0(p.data(), ns, nh, kv.q8.data() + off / 32, stride / 32, n, hd,
                                acc.data(), acc_hs);
            expect_accum(ts, p, kf, acc0, acc);
          }
        }
      }
    }
  }
}

// The whole tiled kernel over F16 / Q8_0 spans, on every ISA, for prefill shapes and for the
// decode (key-segment) path: the same numbers as the f32 kernel on the stored values converted to
// f32, and the same on every ISA as on the scalar table.
TEST(AttentionTiles, F16AndQ8_0SpansMatchF32OnTheStoredNumbersEveryIsa) {
  KernelScratch scratch;
  IsaGuard guard;
  std::mt19937 rng(37);
  for (KvType t : {KvType::F16, KvType::Q8_0}) {
    for (int64_t hd : {8, 32, 64, 128}) {
      if (t == KvType::Q8_0 && hd % 32 != 0) continue;
      for (int64_t n_q : {1, 3, 19}) {
        AttnDims d{8, 2, hd, 1.0f / std::sqrt(float(hd))};
        const int64_t n_kv = 700, qs = d.n_head * hd, ks = d.n_head_kv * hd;
        const auto q = randn(n_q * qs, rng);
        const StoredRows kr = stored_rows(t, randn(n_kv * ks, rng));
        const StoredRows vr = stored_rows(t, randn(n_kv * ks, rng));
        const void* kp = t == KvType::F16 ? static_cast<const void*>(kr.f16.data()) : kr.q8.data();
        const void* vp = t == KvType::F16 ? static_cast<const void*>(vr.f16.data()) : vr.q8.data();
        AttnMask mask;
        mask.diag = n_kv - n_q;
        mask.window = 500;
        std::vector<float> ref_mass;
        for (Isa isa : supported_isas()) {
          SCOPED_TRACE(std::string(kv_type_name(t)) + " " + isa_name(isa) + " hd " +
                       std::to_string(hd) + " n_q " + std::to_string(n_q));
          set_isa(isa);
          AttnState st;
          // f32 kernel on the stored numbers.
          st.reset(n_q, d.n_head, hd);
          attention_accumulate(q.data(), qs, KvSpan{kr.f32.data(), vr.f32.data(), n_kv, ks}, mask,
                               d, st, scratch);
          std::vector<float> want(n_q * qs);
          attention_finish(st, want.data(), qs);
          // The stored span, in two pieces (one softmax).
          const int64_t cut = 160;
          const size_t cut_bytes = kv_bytes(t, cut * ks);
          AttnMask m2 = mask;
          m2.diag = mask.diag - cut;
          st.reset(n_q, d.n_head, hd);
          attention_accumulate(q.data(), qs, KvSpan{kp, vp, cut, ks, t}, mask, d, st, scratch);
          attention_accumulate(q.data(), qs,
                               KvSpan{static_cast<const char*>(kp) + cut_bytes,
                                      static_cast<const char*>(vp) + cut_bytes, n_kv - cut, ks, t},
                               m2, d, st, scratch);
          std::vector<float> out(n_q * qs), mass(n_kv * d.n_head, 0.0f);
          attention_finish(st, out.data(), qs);
          for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want[i], 1e-5) << i;
          st.reset(n_q, d.n_head, hd);
          const KvSpan whole{kp, vp, n_kv, ks, t};
          attention_accumulate(q.data(), qs, whole, mask, d, st, scratch);
          attention_key_mass(q.data(), qs, whole, mask, d, st, mass.data(), scratch);
          if (isa == Isa::Scalar) {
            ref_mass = mass;
            continue;
          }
          for (size_t i = 0; i < mass.size(); ++i) ASSERT_NEAR(mass[i], ref_mass[i], 1e-5);
        }
      }
    }
  }
}

// The whole tiled kernel on every ISA agrees with the scalar table, for GQA and several head dims.
TEST(AttentionTiles, AccumulateAndKeyMassAgreeAcrossIsas) {
  KernelScratch scratch;
  IsaGuard guard;
  std::mt19937 rng(31);
  for (int64_t hd : {8, 32, 128}) {
    for (int64_t n_kv_heads : {1, 2, 8}) {
      AttnDims d{8, n_kv_heads, hd, 1.0f / std::sqrt(float(hd))};
      const int64_t n_q = 19, n_kv = 300, qs = d.n_head * hd, ks = d.n_head_kv * hd;
      const auto q = randn(n_q * qs, rng), kk = randn(n_kv * ks, rng), v = randn(n_kv * ks, rng);
      AttnMask mask;
      mask.diag = n_kv - n_q;
      mask.window = 200;
      KvSpan span{kk.data(), v.data(), n_kv, ks};
      std::vector<float> ref_out, ref_mass;
      for (Isa isa : supported_isas()) {
        set_isa(isa);
        AttnState st;
        st.reset(n_q, d.n_head, hd);
        attention_accumulate(q.data(), qs, span, mask, d, st, scratch);
        std::vector<float> out(n_q * qs), mass(n_kv * d.n_head, 0.0f);
        attention_finish(st, out.data(), qs);
        attention_key_mass(q.data(), qs, span, mask, d, st, mass.data(), scratch);
        if (isa == Isa::Scalar) {
          ref_out = out;
          ref_mass = mass;
          continue;
        }
        for (size_t i = 0; i < out.size(); ++i)
          ASSERT_NEAR(out[i], ref_out[i], 1e-5) << isa_name(isa) << " hd " << hd;
        for (size_t i = 0; i < mass.size(); ++i)
          ASSERT_NEAR(mass[i], ref_mass[i], 1e-5) << isa_name(isa) << " hd " << hd;
      }
    }
  }
}

}  // namespace
}  // namespace lc
