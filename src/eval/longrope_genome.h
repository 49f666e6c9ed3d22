// The LongRoPE search space (docs/longrope.md): one rescale factor per rotary frequency pair,
// held on a 0.01 grid as integers (100 = 1.00), within [1, max factor] and monotone
// non-decreasing from the highest frequency to the lowest; optionally n_hat, the count of leading
// positions left unscaled. Mutation and crossover keep every candidate on the grid and monotone.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/rope/rope.h"

namespace lc::eval {

// The n_hat values a genome may take (LongRoPE's candidates).
const std::vector<int64_t>& longrope_n_hat_choices();

struct RopeGenome {
  std::vector<int> f;  // factor i in hundredths: 100 = 1.00
  int64_t n_hat = 0;

  std::vector<float> factors() const;  // f / 100
  std::string key() const;             // "100,150,800|0": identifies the genome in caches
  bool operator==(const RopeGenome&) const = default;
};

struct GenomeBounds {
  int lo = 100;               // smallest factor, hundredths
  int hi = 100;               // largest factor, hundredths
  bool search_n_hat = false;  // n_hat takes values of longrope_n_hat_choices(); else it stays 0
};

// Every factor on [lo, hi], non-decreasing, n_hat allowed.
bool genome_valid(const RopeGenome& g, const GenomeBounds& b);

// Factors rounded to the grid, clamped to the bounds and made non-decreasing (each at least the
// one before it).
RopeGenome snap_genome(const std::vector<double>& factors, const GenomeBounds& b,
                       int64_t n_hat = 0);

// Each factor with probability p is redrawn uniformly on the grid between its neighbours (the
// new value of the one before, the value of the one after; lo and hi at the ends), so the result
// stays monotone; n_hat (when searched) is redrawn with probability p. The result may equal the
// input: callers retry.
RopeGenome mutate_genome(const RopeGenome& g, const GenomeBounds& b, double p,
                         std::mt19937_64& rng);

// Each factor (and n_hat) from `b` with probability q, else from `a`. May be non-monotone or
// equal to a parent: callers check with genome_valid and retry.
RopeGenome crossover_genomes(const RopeGenome& a, const RopeGenome& b, double q,
                             std::mt19937_64& rng);

// The per-pair factors a RoPE method amounts to: base inv_freq / the method's inv_freq at
// `seq_len` (PI, NTK, YaRN, ... as the model's rope settings `base` say, with `method` and
// `factor` substituted). The attention factor is not part of it.
std::vector<double> method_factors(const RopeSettings& base, RopeMethod method, double factor,
                                   int64_t orig_ctx, int64_t seq_len);

// LongRoPE's progressive rescale: factors found for target length `from_len` turned into factors
// for `to_len`: lambda' = 1 + (lambda - 1) (to_len / L0 - 1) / (from_len / L0 - 1).
std::vector<double> rescale_factors(const std::vector<double>& factors, int64_t orig_ctx,
                                    int64_t from_len, int64_t to_len);

// LongRoPE's attention factor sqrt(1 + ln s / ln L0) for s = target / L0 (1 when s <= 1).
double longrope_attn_factor(int64_t target, int64_t orig_ctx);

}  // namespace lc::eval
