#include "eval/longrope_genome.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lc::eval {

const std::vector<int64_t>& longrope_n_hat_choices() {
  static const std::vector<int64_t> v = {0, 1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 64, 128, 256};
  return v;
}

std::vector<float> RopeGenome::factors() const {
  std::vector<float> out(f.size());
  for (size_t i = 0; i < f.size(); ++i) out[i] = static_cast<float>(f[i]) / 100.0f;
  return out;
}

std::string RopeGenome::key() const {
  std::string k;
  for (size_t i = 0; i < f.size(); ++i) {
    if (i) k += ',';
    k += std::to_string(f[i]);
  }
  return k + '|' + std::to_string(n_hat);
}

bool genome_valid(const RopeGenome& g, const GenomeBounds& b) {
  if (g.f.empty()) return false;
  for (size_t i = 0; i < g.f.size(); ++i) {
    if (g.f[i] < b.lo || g.f[i] > b.hi) return false;
    if (i > 0 && g.f[i] < g.f[i - 1]) return false;
  }
  if (!b.search_n_hat) return g.n_hat == 0;
  const auto& c = longrope_n_hat_choices();
  return std::find(c.begin(), c.end(), g.n_hat) != c.end();
}

RopeGenome snap_genome(const std::vector<double>& factors, const GenomeBounds& b, int64_t n_hat) {
  RopeGenome g;
  g.n_hat = b.search_n_hat ? n_hat : 0;
  int prev = b.lo;
  for (double x : factors) {
    int v = static_cast<int>(std::lround(x * 100.0));
    v = std::clamp(v, prev, b.hi);
    g.f.push_back(v);
    prev = v;
  }
  return g;
}

namespace {

int uniform_int(int lo, int hi, std::mt19937_64& rng) {
  if (hi <= lo) return lo;
  // Not std::uniform_int_distribution: its output differs between standard libraries, and a
  // seed must give the same search everywhere.
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<int>(rng() % span);
}

bool chance(double p, std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53 < p;
}

}  // namespace

RopeGenome mutate_genome(const RopeGenome& g, const GenomeBounds& b, double p,
                         std::mt19937_64& rng) {
  RopeGenome out = g;
  const size_t n = out.f.size();
  for (size_t i = 0; i < n; ++i) {
    if (!chance(p, rng)) continue;
    const int lo = i == 0 ? b.lo : out.f[i - 1];
    const int hi = i + 1 == n ? b.hi : out.f[i + 1];
    out.f[i] = uniform_int(std::min(lo, hi), std::max(lo, hi), rng);
  }
  if (b.search_n_hat && chance(p, rng)) {
    const auto& c = longrope_n_hat_choices();
    out.n_hat = c[static_cast<size_t>(uniform_int(0, static_cast<int>(c.size()) - 1, rng))];
  }
  return out;
}

RopeGenome crossover_genomes(const RopeGenome& a, const RopeGenome& b, double q,
                             std::mt19937_64& rng) {
  LC_CHECK(a.f.size() == b.f.size());
  RopeGenome out = a;
  for (size_t i = 0; i < out.f.size(); ++i)
    if (chance(q, rng)) out.f[i] = b.f[i];
  if (chance(q, rng)) out.n_hat = b.n_hat;
  return out;
}

std::vector<double> method_factors(const RopeSettings& base, RopeMethod method, double factor,
                                   int64_t orig_ctx, int64_t seq_len) {
  RopeSettings plain = base;
  plain.method = RopeMethod::None;
  plain.factor = 1.0;
  plain.freq_divisors.clear();
  plain.long_factors.clear();
  plain.short_factors.clear();
  RopeSettings m = plain;
  m.method = method;
  m.factor = factor;
  m.orig_ctx = orig_ctx;
  const RopeTable t0 = rope_table(plain, seq_len);
  const RopeTable t1 = rope_table(m, seq_len);
  std::vector<double> out(t0.inv_freq.size());
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<double>(t0.inv_freq[i]) / static_cast<double>(t1.inv_freq[i]);
  return out;
}

std::vector<double> rescale_factors(const std::vector<double>& factors, int64_t orig_ctx,
                                    int64_t from_len, int64_t to_len) {
  if (orig_ctx <= 0 || from_len <= orig_ctx)
    fail("rescaling LongRoPE factors needs a source length (", from_len,
         ") above the original context (", orig_ctx, ")");
  const double l0 = static_cast<double>(orig_ctx);
  const double r =
      (static_cast<double>(to_len) / l0 - 1.0) / (static_cast<double>(from_len) / l0 - 1.0);
  std::vector<double> out(factors.size());
  for (size_t i = 0; i < factors.size(); ++i) out[i] = 1.0 + (factors[i] - 1.0) * r;
  return out;
}

double longrope_attn_factor(int64_t target, int64_t orig_ctx) {
  if (orig_ctx <= 1 || target <= orig_ctx) return 1.0;
  const double s = static_cast<double>(target) / static_cast<double>(orig_ctx);
  return std::sqrt(1.0 + std::log(s) / std::log(static_cast<double>(orig_ctx)));
}

}  // namespace lc::eval
