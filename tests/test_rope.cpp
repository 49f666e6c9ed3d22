// RoPE methods -> inverse-frequency tables and attention factors, checked against the formulas of
// docs/algorithms.md section 2 written again here, per element, in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/rope/rope.h"

namespace lc {
namespace {

const double kPi = 3.14159265358979323846;
const int kDims[] = {8, 64, 128};
const double kBases[] = {1e4, 5e5, 1e6};
const double kFactors[] = {2, 4, 8, 16};

double theta(double base, int d, int i) { return std::pow(base, -2.0 * i / d); }

RopeSettings settings(RopeMethod m, int dim, double base, double factor, int64_t l0) {
  RopeSettings s;
  s.method = m;
  s.dim = dim;
  s.head_dim = dim;
  s.base = base;
  s.factor = factor;
  s.orig_ctx = l0;
  return s;
}

void expect_table(const RopeTable& t, const std::vector<double>& want, double m,
                  const std::string& what) {
  ASSERT_EQ(t.inv_freq.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(t.inv_freq[i], want[i], 2e-7 * want[i] + 1e-30) << what << " pair " << i;
  EXPECT_NEAR(t.attn_factor, m, 1e-6) << what;
}

std::string label(int d, double base, double f, int64_t len = 0) {
  return "d=" + std::to_string(d) + " base=" + std::to_string(base) + " s=" + std::to_string(f) +
         " len=" + std::to_string(len);
}

TEST(Rope, MethodNames) {
  EXPECT_STREQ(rope_method_name(RopeMethod::None), "none");
  EXPECT_STREQ(rope_method_name(RopeMethod::Linear), "linear");
  EXPECT_STREQ(rope_method_name(RopeMethod::DynamicNtk), "dynamic");
  EXPECT_STREQ(rope_method_name(RopeMethod::FixedNtk), "ntk");
  EXPECT_STREQ(rope_method_name(RopeMethod::Yarn), "yarn");
  EXPECT_STREQ(rope_method_name(RopeMethod::Llama3), "llama3");
  EXPECT_STREQ(rope_method_name(RopeMethod::LongRope), "longrope");
}

TEST(Rope, NoneIsPlainTheta) {
  for (int d : kDims)
    for (double b : kBases) {
      RopeSettings s = settings(RopeMethod::None, d, b, 1.0, 0);
      s.layout = RopeLayout::SplitHalf;
      std::vector<double> want;
      for (int i = 0; i < d / 2; ++i) want.push_back(theta(b, d, i));
      RopeTable t = rope_table(s, 100000);
      expect_table(t, want, 1.0, label(d, b, 1));
      EXPECT_EQ(t.dim, d);
      EXPECT_EQ(t.layout, RopeLayout::SplitHalf);
    }
  // Literal spot values: base 10000, d = 8 -> 1, 0.1, 0.01, 0.001.
  RopeTable t = rope_table(settings(RopeMethod::None, 8, 1e4, 1, 0), 1);
  EXPECT_FLOAT_EQ(t.inv_freq[0], 1.0f);
  EXPECT_FLOAT_EQ(t.inv_freq[1], 0.1f);
  EXPECT_FLOAT_EQ(t.inv_freq[2], 0.01f);
  EXPECT_FLOAT_EQ(t.inv_freq[3], 0.001f);
}

TEST(Rope, LinearDividesByFactor) {
  for (int d : kDims)
    for (double b : kBases)
      for (double f : kFactors) {
        std::vector<double> want;
        for (int i = 0; i < d / 2; ++i) want.push_back(theta(b, d, i) / f);
        expect_table(rope_table(settings(RopeMethod::Linear, d, b, f, 0), 7), want, 1.0,
                     label(d, b, f));
      }
}

TEST(Rope, DynamicNtkGrowsBaseOnlyBeyondOriginalContext) {
  const int64_t l0 = 2048;
  for (int d : kDims)
    for (double b : kBases)
      for (double f : kFactors)
        for (int64_t len : {int64_t{1}, l0 / 2, l0, l0 + 1, 2 * l0, 7 * l0 / 2, 10 * l0}) {
          const double L = std::max<double>(static_cast<double>(len), static_cast<double>(l0));
          const double b2 = b * std::pow(f * L / l0 - (f - 1), static_cast<double>(d) / (d - 2));
          std::vector<double> want;
          for (int i = 0; i < d / 2; ++i) want.push_back(std::pow(b2, -2.0 * i / d));
          if (len <= l0) {
            EXPECT_EQ(b2, b);
          }
          expect_table(rope_table(settings(RopeMethod::DynamicNtk, d, b, f, l0), len), want, 1.0,
                       label(d, b, f, len));
        }
  // Literal: d 64, base 1e4, s 2, L0 2048, L 8192 -> base' = 74534.83.., pair 1 = 0.704269..
  RopeTable t = rope_table(settings(RopeMethod::DynamicNtk, 64, 1e4, 2, 2048), 8192);
  EXPECT_NEAR(t.inv_freq[1], 0.7042693252, 1e-6);
}

TEST(Rope, FixedNtkUsesAlpha) {
  for (int d : kDims)
    for (double b : kBases)
      for (double a : kFactors) {
        const double b2 = b * std::pow(a, static_cast<double>(d) / (d - 2));
        std::vector<double> want;
        for (int i = 0; i < d / 2; ++i) want.push_back(std::pow(b2, -2.0 * i / d));
        RopeSettings s = settings(RopeMethod::FixedNtk, d, b, a, 0);
        expect_table(rope_table(s, 1), want, 1.0, label(d, b, a));
        expect_table(rope_table(s, 1 << 20), want, 1.0, label(d, b, a));
      }
}

// YaRN, written from the formula: corr(r) = d ln(L0 / (2 pi r)) / (2 ln base); ramp over pairs.
std::vector<double> yarn_ref(int d, double b, double s, double l0, double bf, double bs) {
  auto corr = [&](double r) { return d * std::log(l0 / (2 * kPi * r)) / (2 * std::log(b)); };
  double low = std::floor(corr(bf));
  if (low < 0) low = 0;
  double high = std::ceil(corr(bs));
  if (high > d - 1) high = d - 1;
  if (low == high) high += 0.001;
  std::vector<double> out;
  for (int i = 0; i < d / 2; ++i) {
    double r = (i - low) / (high - low);
    r = r < 0 ? 0 : (r > 1 ? 1 : r);
    out.push_back(theta(b, d, i) * (1 - r) + theta(b, d, i) / s * r);
  }
  return out;
}

TEST(Rope, YarnRampAndAttentionFactor) {
  for (int d : kDims)
    for (double b : kBases)
      for (double f : kFactors)
        for (int64_t l0 : {int64_t{512}, int64_t{4096}, int64_t{32768}}) {
          RopeSettings s = settings(RopeMethod::Yarn, d, b, f, l0);
          const double m = 0.1 * std::log(f) + 1;
          expect_table(rope_table(s, 1), yarn_ref(d, b, f, l0, 32, 1), m, label(d, b, f, l0));
          s.beta_fast = 16;
          s.beta_slow = 2;
          expect_table(rope_table(s, 1), yarn_ref(d, b, f, l0, 16, 2), m, label(d, b, f, l0));
        }
  // Literal values (d 128, base 1e4, L0 4096, s 4): low 20, high 46.
  RopeTable t = rope_table(settings(RopeMethod::Yarn, 128, 1e4, 4, 4096), 1);
  EXPECT_NEAR(t.inv_freq[20], 0.05623413251903491, 1e-8);
  EXPECT_NEAR(t.inv_freq[21], 0.047292038501684786, 1e-8);
  EXPECT_NEAR(t.inv_freq[30], 0.009488517882700576, 1e-9);
  EXPECT_NEAR(t.inv_freq[46], 0.000333380358040831, 1e-11);
  EXPECT_NEAR(t.attn_factor, 1.138629436111989, 1e-6);
}

TEST(Rope, YarnAttentionFactorSources) {
  RopeSettings s = settings(RopeMethod::Yarn, 64, 1e4, 40, 4096);
  // mscale / mscale_all_dim: g(s, k) = 0.1 k ln s + 1, m = g(s, mscale) / g(s, mscale_all_dim).
  s.mscale = 0.707;
  s.mscale_all_dim = 0.707;
  EXPECT_NEAR(rope_table(s, 1).attn_factor, 1.0, 1e-7);
  s.mscale = 1.0;
  s.mscale_all_dim = 0.5;
  const double g1 = 0.1 * 1.0 * std::log(40.0) + 1, g2 = 0.1 * 0.5 * std::log(40.0) + 1;
  EXPECT_NEAR(rope_table(s, 1).attn_factor, g1 / g2, 1e-6);
  // Only one of them given: the default 0.1 ln s + 1 (as in HF).
  s.mscale_all_dim.reset();
  EXPECT_NEAR(rope_table(s, 1).attn_factor, 0.1 * std::log(40.0) + 1, 1e-6);
  // Explicit attention factor wins; the multiplier (llama.cpp's yarn_attn_factor) scales it.
  s.attn_factor = 0.8;
  EXPECT_NEAR(rope_table(s, 1).attn_factor, 0.8, 1e-7);
  s.attn_mult = 1.5;
  EXPECT_NEAR(rope_table(s, 1).attn_factor, 1.2, 1e-6);
  EXPECT_NEAR(rope_attn_factor(s), 1.2, 1e-12);
  // s <= 1: no magnitude change.
  RopeSettings one = settings(RopeMethod::Yarn, 64, 1e4, 1.0, 4096);
  EXPECT_EQ(rope_table(one, 1).attn_factor, 1.0f);
  RopeSettings half = settings(RopeMethod::Yarn, 64, 1e4, 0.5, 4096);
  EXPECT_EQ(rope_table(half, 1).attn_factor, 1.0f);
}

TEST(Rope, YarnExtFactorZeroIsLinear) {
  RopeSettings s = settings(RopeMethod::Yarn, 64, 1e4, 4, 2048);
  s.ext_factor = 0;
  std::vector<double> want;
  for (int i = 0; i < 32; ++i) want.push_back(theta(1e4, 64, i) / 4);
  expect_table(rope_table(s, 1), want, 1.0, "ext_factor 0");
}

// llama3, from the formula: wavelength bands with a smooth blend between them.
std::vector<double> llama3_ref(int d, double b, double s, double l0, double lf, double hf) {
  std::vector<double> out;
  for (int i = 0; i < d / 2; ++i) {
    const double t = theta(b, d, i);
    const double wl = 2 * kPi / t;
    if (wl < l0 / hf) {
      out.push_back(t);
    } else if (wl > l0 / lf) {
      out.push_back(t / s);
    } else {
      const double sm = (l0 / wl - lf) / (hf - lf);
      out.push_back((1 - sm) * t / s + sm * t);
    }
  }
  return out;
}

TEST(Rope, Llama3Bands) {
  for (int d : kDims)
    for (double b : kBases)
      for (double f : kFactors)
        for (int64_t l0 : {int64_t{1024}, int64_t{8192}}) {
          RopeSettings s = settings(RopeMethod::Llama3, d, b, f, l0);
          expect_table(rope_table(s, 1), llama3_ref(d, b, f, l0, 1, 4), 1.0, label(d, b, f, l0));
          s.low_freq_factor = 2;
          s.high_freq_factor = 8;
          expect_table(rope_table(s, 1), llama3_ref(d, b, f, l0, 2, 8), 1.0, label(d, b, f, l0));
        }
  // Literal values for Llama 3.1 (d 128, base 5e5, factor 8, L0 8192).
  RopeTable t = rope_table(settings(RopeMethod::Llama3, 128, 5e5, 8, 8192), 1);
  EXPECT_FLOAT_EQ(t.inv_freq[0], 1.0f);
  EXPECT_NEAR(t.inv_freq[20], 0.016560440080994446, 1e-8);
  EXPECT_NEAR(t.inv_freq[30], 0.0013718935677611381, 1e-9);
  EXPECT_NEAR(t.inv_freq[63], 3.068925988914511e-07, 1e-13);
}

std::vector<float> ramp_list(int n, float lo, float hi) {
  std::vector<float> v;
  for (int i = 0; i < n; ++i) v.push_back(lo + (hi - lo) * i / std::max(1, n - 1));
  return v;
}

TEST(Rope, LongRopeListsAndAttentionFactor) {
  for (int d : kDims)
    for (double b : kBases)
      for (double f : kFactors) {
        const int64_t l0 = 4096;
        RopeSettings s = settings(RopeMethod::LongRope, d, b, 1.0, l0);
        s.max_pos = static_cast<int64_t>(l0 * f);
        s.short_factors = ramp_list(d / 2, 1.0f, 1.5f);
        s.long_factors = ramp_list(d / 2, 1.0f, static_cast<float>(f) * 1.25f);
        const double m = std::sqrt(1 + std::log(f) / std::log(static_cast<double>(l0)));
        for (int64_t len : {int64_t{1}, l0, l0 + 1, 8 * l0}) {
          const auto& list = len > l0 ? s.long_factors : s.short_factors;
          std::vector<double> want;
          for (int i = 0; i < d / 2; ++i) want.push_back(theta(b, d, i) / list[i]);
          expect_table(rope_table(s, len), want, m, label(d, b, f, len));
        }
      }
  // Phi-3 mini 128k: 131072 / 4096 = 32 -> m = sqrt(1 + ln 32 / ln 4096) = 1.1902...
  RopeSettings s = settings(RopeMethod::LongRope, 96, 1e4, 1.0, 4096);
  s.max_pos = 131072;
  s.short_factors.assign(48, 1.0f);
  s.long_factors.assign(48, 2.0f);
  EXPECT_NEAR(rope_table(s, 10).attn_factor, 1.1902380714238083, 1e-6);
  s.attn_factor = 1.25;  // explicit (GGUF rope.scaling.attn_factor) wins
  EXPECT_NEAR(rope_table(s, 10).attn_factor, 1.25, 1e-7);
  // max_pos <= L0: no magnitude change.
  s.attn_factor.reset();
  s.max_pos = 4096;
  EXPECT_EQ(rope_table(s, 10).attn_factor, 1.0f);
}

TEST(Rope, FreqDivisorsApplyOnTop) {
  for (int d : kDims) {
    RopeSettings s = settings(RopeMethod::Linear, d, 5e5, 2, 0);
    s.freq_divisors = ramp_list(d / 2, 1.0f, 8.0f);
    std::vector<double> want;
    for (int i = 0; i < d / 2; ++i) want.push_back(theta(5e5, d, i) / 2 / s.freq_divisors[i]);
    expect_table(rope_table(s, 1), want, 1.0, "divisors d=" + std::to_string(d));
    s.method = RopeMethod::None;
    want.clear();
    for (int i = 0; i < d / 2; ++i) want.push_back(theta(5e5, d, i) / s.freq_divisors[i]);
    expect_table(rope_table(s, 1), want, 1.0, "divisors none");
  }
}

TEST(Rope, PartialRotaryIsASmallerTable) {
  RopeSettings s = settings(RopeMethod::Linear, 32, 1e4, 4, 0);
  s.head_dim = 80;
  RopeTable t = rope_table(s, 1);
  ASSERT_EQ(t.inv_freq.size(), 16u);
  EXPECT_EQ(t.dim, 32);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(t.inv_freq[i], theta(1e4, 32, i) / 4, 1e-7);
}

TEST(Rope, DependsOnLength) {
  RopeSettings s = settings(RopeMethod::None, 64, 1e4, 1, 2048);
  EXPECT_FALSE(rope_depends_on_length(s));
  for (RopeMethod m :
       {RopeMethod::Linear, RopeMethod::FixedNtk, RopeMethod::Yarn, RopeMethod::Llama3}) {
    s.method = m;
    s.factor = 4;
    EXPECT_FALSE(rope_depends_on_length(s)) << rope_method_name(m);
    EXPECT_EQ(rope_table(s, 10), rope_table(s, 100000)) << rope_method_name(m);
  }
  s.method = RopeMethod::DynamicNtk;
  EXPECT_TRUE(rope_depends_on_length(s));
  EXPECT_NE(rope_table(s, 2048), rope_table(s, 4096));
  s.method = RopeMethod::LongRope;
  s.short_factors.assign(32, 1.0f);
  s.long_factors.assign(32, 1.0f);
  EXPECT_FALSE(rope_depends_on_length(s));
  s.long_factors[3] = 2.0f;
  EXPECT_TRUE(rope_depends_on_length(s));
  EXPECT_NE(rope_table(s, 2048), rope_table(s, 2049));
}

// LongRoPE with n_hat: RoPE_i(n) = n * theta_i * I(lambda_i, n_hat), I = 1 below n_hat (original
// frequencies, no attention factor) and 1 / lambda_i from n_hat on (times the attention factor).
// Every position's cos / sin and a rotated vector against that formula in double.
TEST(Rope, LongRopeNHatLeavesTheLeadingPositionsUnscaled) {
  for (RopeLayout layout : {RopeLayout::Adjacent, RopeLayout::SplitHalf})
    for (int64_t n_hat : {int64_t{0}, int64_t{1}, int64_t{4}, int64_t{32}}) {
      const int d = 16;
      const double b = 1e4;
      const int64_t l0 = 64;
      RopeSettings s = settings(RopeMethod::LongRope, d, b, 1.0, l0);
      s.layout = layout;
      s.max_pos = 8 * l0;
      s.short_factors.assign(d / 2, 1.0f);
      s.long_factors = ramp_list(d / 2, 1.0f, 10.0f);
      s.n_hat = n_hat;
      const double m = std::sqrt(1 + std::log(8.0) / std::log(static_cast<double>(l0)));
      const RopeTable t = rope_table(s, 8 * l0);
      EXPECT_EQ(t.n_hat, n_hat);
      std::vector<float> cs(d / 2), sn(d / 2);
      for (int64_t pos = 0; pos < 3 * n_hat + 5; ++pos) {
        rope_cos_sin(t, static_cast<double>(pos), cs.data(), sn.data());
        const bool start = pos < n_hat;
        for (int i = 0; i < d / 2; ++i) {
          const double a = static_cast<double>(pos) * theta(b, d, i) /
                           (start ? 1.0 : static_cast<double>(s.long_factors[i]));
          const double mm = start ? 1.0 : m;
          ASSERT_NEAR(cs[i], std::cos(a) * mm, 2e-6) << "n_hat " << n_hat << " pos " << pos;
          ASSERT_NEAR(sn[i], std::sin(a) * mm, 2e-6) << "n_hat " << n_hat << " pos " << pos;
        }
        EXPECT_EQ(rope_attn_factor_at(t, static_cast<double>(pos)), start ? 1.0f : t.attn_factor);
      }
      // rope_apply rotates each row by its own position's table.
      const int64_t n_tok = 2 * n_hat + 3;
      std::vector<float> x(static_cast<size_t>(n_tok * d));
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * static_cast<double>(i)) + 0.1f;
      std::vector<float> y = x;
      rope_apply(t, y.data(), n_tok, d, 1, d, 0);
      // Angles computed once for a step give the same numbers, from any first position.
      for (int64_t pos0 : {int64_t{0}, n_hat - 1, int64_t{5}}) {
        if (pos0 < 0) continue;
        std::vector<float> want = x, got = x;
        rope_apply(t, want.data(), n_tok, d, 1, d, pos0);
        RopeAngles angles;
        angles.fill(t, pos0, n_tok + 2);
        rope_apply(angles, got.data(), n_tok, d, 1, d);
        ASSERT_EQ(want, got) << "n_hat " << n_hat << " pos0 " << pos0;
      }
      for (int64_t pos = 0; pos < n_tok; ++pos) {
        const bool start = pos < n_hat;
        for (int i = 0; i < d / 2; ++i) {
          const double a = static_cast<double>(pos) * theta(b, d, i) /
                           (start ? 1.0 : static_cast<double>(s.long_factors[i]));
          const double mm = start ? 1.0 : m;
          const size_t i0 = static_cast<size_t>(pos * d) +
                            (layout == RopeLayout::Adjacent ? 2 * i : static_cast<size_t>(i));
          const size_t i1 = layout == RopeLayout::Adjacent ? i0 + 1 : i0 + d / 2;
          ASSERT_NEAR(y[i0], mm * (x[i0] * std::cos(a) - x[i1] * std::sin(a)), 1e-5);
          ASSERT_NEAR(y[i1], mm * (x[i0] * std::sin(a) + x[i1] * std::cos(a)), 1e-5);
        }
      }
    }
  // n_hat needs LongRoPE's settings; the short list honours it as well.
  RopeSettings s = settings(RopeMethod::LongRope, 8, 1e4, 1.0, 64);
  s.short_factors = ramp_list(4, 1.0f, 2.0f);
  s.long_factors = ramp_list(4, 1.0f, 4.0f);
  s.n_hat = 8;
  const RopeTable shrt = rope_table(s, 10);
  EXPECT_EQ(shrt.n_hat, 8);
  EXPECT_NEAR(shrt.start_inv_freq[3], theta(1e4, 8, 3), 1e-9);
  EXPECT_NEAR(shrt.inv_freq[3], theta(1e4, 8, 3) / 2.0, 1e-9);
}

// A short-list attention factor applies at or below the original context, the long list's above.
TEST(Rope, LongRopeShortListAttentionFactor) {
  RopeSettings s = settings(RopeMethod::LongRope, 8, 1e4, 1.0, 512);
  s.max_pos = 4096;
  s.short_factors.assign(4, 1.0f);
  s.long_factors = ramp_list(4, 1.0f, 4.0f);
  const double m = std::sqrt(1 + std::log(8.0) / std::log(512.0));
  EXPECT_NEAR(rope_table(s, 512).attn_factor, m, 1e-6);  // unset: one factor at every length
  s.short_factors = s.long_factors;
  EXPECT_FALSE(rope_depends_on_length(s));
  s.short_attn_factor = 1.0;
  EXPECT_TRUE(rope_depends_on_length(s));
  EXPECT_EQ(rope_table(s, 1).attn_factor, 1.0f);
  EXPECT_EQ(rope_table(s, 512).attn_factor, 1.0f);
  EXPECT_NEAR(rope_table(s, 513).attn_factor, m, 1e-6);
  s.attn_mult = 2.0;  // llama.cpp's yarn_attn_factor multiplies both
  EXPECT_NEAR(rope_table(s, 512).attn_factor, 2.0, 1e-6);
  EXPECT_NEAR(rope_table(s, 513).attn_factor, 2.0 * m, 1e-6);
  // With short factors all ones and attention factor 1 the short table is plain RoPE.
  s.attn_mult = 1.0;
  s.short_factors.assign(4, 1.0f);
  RopeSettings plain = settings(RopeMethod::None, 8, 1e4, 1.0, 512);
  EXPECT_EQ(rope_table(s, 512), rope_table(plain, 512));
}

void expect_error(const RopeSettings& s, int64_t len, const std::string& needle) {
  try {
    rope_table(s, len);
    ADD_FAILURE() << "no error, expected one containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Rope, TableErrors) {
  expect_error(settings(RopeMethod::None, 7, 1e4, 1, 0), 1, "positive even number, got 7");
  expect_error(settings(RopeMethod::None, 0, 1e4, 1, 0), 1, "got 0");
  expect_error(settings(RopeMethod::None, 8, -1, 1, 0), 1, "freq_base must be > 0, got -1");
  expect_error(settings(RopeMethod::Linear, 8, 1e4, 0, 0), 1, "factor must be > 0, got 0");
  for (RopeMethod m :
       {RopeMethod::Yarn, RopeMethod::DynamicNtk, RopeMethod::Llama3, RopeMethod::LongRope})
    expect_error(settings(m, 8, 1e4, 2, 0), 1,
                 std::string("method '") + rope_method_name(m) + "' needs the original");
  RopeSettings s = settings(RopeMethod::LongRope, 8, 1e4, 1, 16);
  s.short_factors.assign(4, 1.0f);
  s.long_factors.assign(3, 1.0f);
  EXPECT_NO_THROW(rope_table(s, 1));
  expect_error(s, 17, "long_factor has 3 entries, expected rotary dim / 2 = 4");
  RopeSettings d = settings(RopeMethod::None, 8, 1e4, 1, 0);
  d.freq_divisors = {1, 2, 3};
  expect_error(d, 1, "rope_freqs has 3 entries");
  d.freq_divisors = {1, 2, 0, 4};
  expect_error(d, 1, "rope_freqs entry 2 must be > 0");
  expect_error(settings(RopeMethod::FixedNtk, 2, 1e4, 2, 0), 1, "rotary dimension > 2");
}

}  // namespace
}  // namespace lc
