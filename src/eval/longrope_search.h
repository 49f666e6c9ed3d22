// The LongRoPE factor search (docs/longrope.md): an evolutionary search over per-pair RoPE
// rescale factors (longrope_genome.h), guided by a fitness (a loss, lower is better) that a
// RopeFitness computes document by document. Deterministic for a seed; every evaluated genome is
// cached and logged, so a search interrupted and resumed from its log replays the same
// candidates, takes the logged scores from the cache and goes on exactly where it stopped.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/longrope_genome.h"

namespace lc::eval {

// Scores a genome on one fixed document at a time (the same documents for every genome).
class RopeFitness {
 public:
  virtual ~RopeFitness() = default;
  virtual int64_t documents() const = 0;
  // The loss of the genome on document `doc` (mean negative log-likelihood; lower is better).
  virtual double score(const RopeGenome& g, int64_t doc) = 0;
};

// Settings, named rope_search.* in errors.
struct RopeSearchSettings {
  int64_t population = 64;    // rope_search.population: genomes evaluated first
  int64_t parents = 32;       // rope_search.parents: kept each iteration
  int64_t mutations = 16;     // rope_search.mutations per iteration
  int64_t crossovers = 16;    // rope_search.crossovers per iteration
  int64_t iterations = 40;    // rope_search.iterations
  double mutation_p = 0.3;    // each factor redrawn with this probability
  double crossover_p = 0.15;  // each factor taken from the second parent with this probability
  uint64_t seed = 0;          // rope_search.seed
  bool race = true;           // rope_search.race: score one document first, drop hopeless ones
  double budget_minutes = 0;  // rope_search.budget_minutes: stop with the best so far (0 = none)
};

// lc::Error naming the setting for a value out of range.
void check_rope_search_settings(const RopeSearchSettings& s);

// One evaluated genome: its per-document scores (only the first when it was raced out) and its
// fitness (mean over documents; +inf when raced out).
struct GenomeRecord {
  RopeGenome genome;
  std::vector<double> scores;
  double fitness = 0;
  bool raced_out = false;
  std::string origin;  // "seed:pi", "mutation", "crossover", ...
  int64_t iteration = 0;
};

struct RopeSearchProgress {
  int64_t evaluations = 0;  // genomes scored in this run (cache hits not counted)
  int64_t candidates = 0;   // candidates done (scored or from the cache)
  int64_t total = 0;        // candidates the whole search takes
  int64_t iteration = 0;
  double best = 0;  // best fitness so far
};

struct RopeSearchResult {
  GenomeRecord best;
  std::vector<GenomeRecord> history;  // every genome in the order it was first done
  int64_t evaluations = 0;            // fitness evaluations of this run (cache hits excluded)
  int64_t document_scores = 0;        // RopeFitness::score calls of this run
  int64_t cache_hits = 0;
  int64_t raced_out = 0;
  int64_t iterations_done = 0;
  bool stopped_by_budget = false;
  double seconds = 0;             // of this run
  int64_t total_evaluations = 0;  // with the runs this one resumed
  double total_seconds = 0;       // with the runs this one resumed
  double seed_best = 0;           // best fitness among the seeds
};

class RopeSearch {
 public:
  // `seeds`: named starting genomes (e.g. "pi", "ntk", "yarn"), each valid for `bounds`.
  RopeSearch(RopeSearchSettings settings, GenomeBounds bounds,
             std::vector<std::pair<std::string, RopeGenome>> seeds);

  // Scores taken from an earlier run's log (log_json()): genomes found there are not evaluated
  // again. lc::Error when the log's settings differ from this search's.
  void load_log(const nlohmann::json& log);

  // Runs the search. `on_record` is called after each new evaluation (to rewrite the log), and
  // `progress` after each candidate.
  RopeSearchResult run(RopeFitness& fitness,
                       const std::function<void(const RopeSearchResult&)>& on_record = {},
                       const std::function<void(const RopeSearchProgress&)>& progress = {});

  // The log: settings, bounds, seeds and every record so far, for load_log().
  nlohmann::json log_json(const RopeSearchResult& r) const;

  // Candidates the whole search takes: population + iterations * (mutations + crossovers); with
  // n_hat searched at most iterations * (n_hat candidates - 1) more (each iteration tries the best
  // parent's factors with every n_hat not tried yet, as LongRoPE does).
  int64_t total_candidates() const;

 private:
  RopeSearchSettings s_;
  GenomeBounds b_;
  std::vector<std::pair<std::string, RopeGenome>> seeds_;
  std::map<std::string, GenomeRecord> cache_;
  int64_t prior_evaluations_ = 0;
  double prior_seconds_ = 0;
};

nlohmann::json genome_record_json(const GenomeRecord& r);

}  // namespace lc::eval
