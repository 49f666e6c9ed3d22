#include "eval/longrope_search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"

namespace lc::eval {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxTries = 2000;  // attempts to draw a new, valid candidate
constexpr int kCrossoverTries = 20;

nlohmann::json settings_json(const RopeSearchSettings& s) {
  return {{"population", s.population},
          {"parents", s.parents},
          {"mutations", s.mutations},
          {"crossovers", s.crossovers},
          {"mutation_p", s.mutation_p},
          {"crossover_p", s.crossover_p},
          {"seed", s.seed},
          {"race", s.race}};
}

nlohmann::json bounds_json(const GenomeBounds& b) {
  return {{"lo", b.lo}, {"hi", b.hi}, {"search_n_hat", b.search_n_hat}};
}

RopeGenome genome_from_json(const nlohmann::json& j) {
  RopeGenome g;
  g.f = j.at("f").get<std::vector<int>>();
  g.n_hat = j.value("n_hat", int64_t{0});
  return g;
}

nlohmann::json genome_json(const RopeGenome& g) { return {{"f", g.f}, {"n_hat", g.n_hat}}; }

nlohmann::json seeds_json(const std::vector<std::pair<std::string, RopeGenome>>& seeds) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& [name, g] : seeds) a.push_back({{"name", name}, {"genome", genome_json(g)}});
  return a;
}

}  // namespace

void check_rope_search_settings(const RopeSearchSettings& s) {
  if (s.population < 2)
    fail_setting({"rope_search.population"}, "rope_search.population = ", s.population,
                 ", expected at least 2");
  if (s.parents < 1 || s.parents > s.population)
    fail_setting({"rope_search.parents"}, "rope_search.parents = ", s.parents,
                 ", expected 1 .. rope_search.population (", s.population, ")");
  if (s.mutations < 0 || s.crossovers < 0 || s.mutations + s.crossovers < 1)
    fail_setting({"rope_search.mutations", "rope_search.crossovers"},
                 "rope_search.mutations = ", s.mutations,
                 " and rope_search.crossovers = ", s.crossovers,
                 ": expected non-negative counts, at least one child per iteration");
  if (s.iterations < 0)
    fail_setting({"rope_search.iterations"}, "rope_search.iterations = ", s.iterations,
                 ", expected 0 or more");
  if (s.budget_minutes < 0 || !std::isfinite(s.budget_minutes))
    fail_setting({"rope_search.budget_minutes"}, "rope_search.budget_minutes = ", s.budget_minutes,
                 ", expected 0 (no limit) or more");
}

nlohmann::json genome_record_json(const GenomeRecord& r) {
  nlohmann::json j = genome_json(r.genome);
  j["scores"] = r.scores;
  if (!r.raced_out) j["fitness"] = r.fitness;
  j["raced_out"] = r.raced_out;
  j["origin"] = r.origin;
  j["iteration"] = r.iteration;
  return j;
}

RopeSearch::RopeSearch(RopeSearchSettings settings, GenomeBounds bounds,
                       std::vector<std::pair<std::string, RopeGenome>> seeds)
    : s_(settings), b_(bounds), seeds_(std::move(seeds)) {
  check_rope_search_settings(s_);
  if (seeds_.empty()) fail("the factor search needs at least one seed genome");
  for (const auto& [name, g] : seeds_)
    if (!genome_valid(g, b_))
      fail("seed genome '", name, "' (", g.key(), ") is off the grid, out of [", b_.lo / 100.0,
           ", ", b_.hi / 100.0, "] or not monotone");
}

int64_t RopeSearch::total_candidates() const {
  const int64_t n_hat_tries =
      b_.search_n_hat ? static_cast<int64_t>(longrope_n_hat_choices().size()) - 1 : 0;
  return s_.population + s_.iterations * (s_.mutations + s_.crossovers + n_hat_tries);
}

nlohmann::json RopeSearch::log_json(const RopeSearchResult& r) const {
  nlohmann::json j;
  j["format"] = "longctx rope-search log";
  j["settings"] = settings_json(s_);
  j["iterations"] = s_.iterations;
  j["bounds"] = bounds_json(b_);
  j["seeds"] = seeds_json(seeds_);
  j["evaluations"] = r.total_evaluations;
  j["seconds"] = r.total_seconds;
  nlohmann::json recs = nlohmann::json::array();
  // Every record this run did, then the ones of the earlier log this run has not reached yet.
  std::set<std::string> done;
  for (const auto& h : r.history) {
    recs.push_back(genome_record_json(h));
    done.insert(h.genome.key());
  }
  for (const auto& [k, rec] : cache_)
    if (!done.count(k)) recs.push_back(genome_record_json(rec));
  j["records"] = recs;
  return j;
}

void RopeSearch::load_log(const nlohmann::json& log) {
  try {
    if (log.at("settings") != settings_json(s_))
      fail_setting({"rope_search.resume"}, "the log was written by a search with other settings (",
                   log.at("settings").dump(), "; this one: ", settings_json(s_).dump(), ")");
    if (log.at("bounds") != bounds_json(b_))
      fail_setting({"rope_search.resume"}, "the log was written for other factor bounds (",
                   log.at("bounds").dump(), "; this one: ", bounds_json(b_).dump(), ")");
    if (log.at("seeds") != seeds_json(seeds_))
      fail_setting({"rope_search.resume"},
                   "the log was written by a search with other seed genomes");
    for (const auto& rj : log.at("records")) {
      GenomeRecord rec;
      rec.genome = genome_from_json(rj);
      rec.scores = rj.at("scores").get<std::vector<double>>();
      rec.raced_out = rj.at("raced_out").get<bool>();
      rec.fitness = rec.raced_out ? kInf : rj.at("fitness").get<double>();
      rec.origin = rj.value("origin", "");
      rec.iteration = rj.value("iteration", int64_t{0});
      cache_[rec.genome.key()] = rec;
    }
    prior_evaluations_ = log.value("evaluations", int64_t{0});
    prior_seconds_ = log.value("seconds", 0.0);
  } catch (const nlohmann::json::exception& e) {
    fail_setting({"rope_search.resume"}, "the search log is not one longctx wrote: ", e.what());
  }
}

RopeSearchResult RopeSearch::run(RopeFitness& fitness,
                                 const std::function<void(const RopeSearchResult&)>& on_record,
                                 const std::function<void(const RopeSearchProgress&)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const int64_t n_docs = fitness.documents();
  if (n_docs < 1) fail("the factor search's fitness has no documents");
  std::mt19937_64 rng(s_.seed);
  RopeSearchResult r;
  r.best.fitness = kInf;
  std::set<std::string> seen;
  int64_t iteration = 0;
  RopeSearchProgress pr;
  pr.total = total_candidates();
  pr.best = kInf;

  auto finish_record = [&](const GenomeRecord& rec) {
    r.history.push_back(rec);
    if (rec.fitness < r.best.fitness) r.best = rec;
    pr.candidates = static_cast<int64_t>(r.history.size());
    pr.evaluations = r.evaluations;
    pr.iteration = iteration;
    pr.best = r.best.fitness;
    r.seconds = elapsed();
    r.total_seconds = prior_seconds_ + r.seconds;
    r.total_evaluations = prior_evaluations_ + r.evaluations;
    if (progress) progress(pr);
  };

  // Evaluates one new candidate (or takes it from the cache); parents (may be empty) decide the
  // race. Returns false when the budget ran out first.
  auto evaluate = [&](const RopeGenome& g, const std::string& origin,
                      const std::vector<GenomeRecord>& parents, GenomeRecord& out) {
    seen.insert(g.key());
    auto it = cache_.find(g.key());
    if (it != cache_.end()) {
      out = it->second;
      ++r.cache_hits;
      if (out.raced_out) ++r.raced_out;
      finish_record(out);
      return true;
    }
    if (s_.budget_minutes > 0 && elapsed() >= s_.budget_minutes * 60.0) {
      r.stopped_by_budget = true;
      return false;
    }
    out = GenomeRecord{};
    out.genome = g;
    out.origin = origin;
    out.iteration = iteration;
    auto one = [&](int64_t doc) {
      const double v = fitness.score(g, doc);
      ++r.document_scores;
      out.scores.push_back(std::isfinite(v) ? v : kInf);
    };
    one(0);
    if (s_.race && n_docs > 1 && !parents.empty()) {
      double worst = -kInf;
      for (const auto& p : parents) worst = std::max(worst, p.scores.front());
      if (out.scores.front() > worst) out.raced_out = true;
    }
    if (out.raced_out) {
      out.fitness = kInf;
      ++r.raced_out;
    } else {
      for (int64_t d = 1; d < n_docs; ++d) one(d);
      double sum = 0;
      for (double v : out.scores) sum += v;
      out.fitness = sum / static_cast<double>(out.scores.size());
    }
    ++r.evaluations;
    cache_[g.key()] = out;
    finish_record(out);
    if (on_record) on_record(r);
    return true;
  };

  // A mutation of `g` that is valid and new; nullopt when none was found.
  auto new_mutation = [&](const RopeGenome& g) -> std::optional<RopeGenome> {
    for (int t = 0; t < kMaxTries; ++t) {
      RopeGenome c = mutate_genome(g, b_, s_.mutation_p, rng);
      if (genome_valid(c, b_) && !seen.count(c.key())) return c;
    }
    return std::nullopt;
  };
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };

  // The first population: the seeds, then mutations of them.
  std::vector<GenomeRecord> pop;
  const std::vector<GenomeRecord> no_parents;
  for (const auto& [name, g] : seeds_) {
    if (seen.count(g.key())) continue;
    GenomeRecord rec;
    if (!evaluate(g, "seed:" + name, no_parents, rec)) break;
    pop.push_back(rec);
  }
  if (r.history.empty()) return r;
  r.seed_best = r.best.fitness;
  int misses = 0;
  while (!r.stopped_by_budget && static_cast<int64_t>(pop.size()) < s_.population && misses < 8) {
    auto c = new_mutation(seeds_[pick(seeds_.size())].second);
    if (!c) {
      ++misses;
      continue;
    }
    GenomeRecord rec;
    if (!evaluate(*c, "mutation", no_parents, rec)) break;
    pop.push_back(rec);
  }

  auto by_fitness = [](const GenomeRecord& a, const GenomeRecord& b) {
    return a.fitness < b.fitness;
  };
  for (iteration = 1; iteration <= s_.iterations && !r.stopped_by_budget; ++iteration) {
    std::stable_sort(pop.begin(), pop.end(), by_fitness);
    std::vector<GenomeRecord> parents(
        pop.begin(), pop.begin() + std::min<int64_t>(s_.parents, static_cast<int64_t>(pop.size())));
    std::vector<GenomeRecord> next = parents;
    auto add = [&](const std::optional<RopeGenome>& c, const char* origin) {
      if (!c || r.stopped_by_budget) return;
      GenomeRecord rec;
      if (evaluate(*c, origin, parents, rec)) next.push_back(rec);
    };
    for (int64_t m = 0; m < s_.mutations; ++m)
      add(new_mutation(parents[pick(parents.size())].genome), "mutation");
    for (int64_t c = 0; c < s_.crossovers; ++c) {
      std::optional<RopeGenome> child;
      if (parents.size() >= 2) {
        for (int t = 0; t < kCrossoverTries && !child; ++t) {
          const size_t i = pick(parents.size());
          size_t j = pick(parents.size() - 1);
          if (j >= i) ++j;
          RopeGenome g =
              crossover_genomes(parents[i].genome, parents[j].genome, s_.crossover_p, rng);
          if (genome_valid(g, b_) && !seen.count(g.key())) child = g;
        }
      }
      if (child) {
        add(child, "crossover");
      } else {
        add(new_mutation(parents[pick(parents.size())].genome), "mutation");
      }
    }
    // LongRoPE's n_hat step: the best parent's factors with each n_hat candidate not tried yet.
    if (b_.search_n_hat)
      for (int64_t n_hat : longrope_n_hat_choices()) {
        RopeGenome g = parents.front().genome;
        g.n_hat = n_hat;
        if (!seen.count(g.key())) add(g, "n_hat");
      }
    pop = std::move(next);
    if (!r.stopped_by_budget) r.iterations_done = iteration;
  }
  r.seconds = elapsed();
  r.total_seconds = prior_seconds_ + r.seconds;
  r.total_evaluations = prior_evaluations_ + r.evaluations;
  return r;
}

}  // namespace lc::eval
