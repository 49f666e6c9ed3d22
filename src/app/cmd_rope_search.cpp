// longctx rope-search: the LongRoPE factor search (docs/longrope.md) on a model and a text,
// writing FACTORS.json for --rope-factors and rope-apply.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "eval/longrope_factors.h"
#include "eval/longrope_fitness.h"
#include "eval/longrope_genome.h"
#include "eval/longrope_search.h"

namespace lc::app {

namespace {

struct Opts {
  ModelOptions mo;
  std::string file, out = "factors.json", from, resume, log, fitness = "ppl";
  int64_t target = 0, orig_ctx = 0, documents = 3;
  double max_factor = 0;
  bool short_list = false, json = false, no_race = false, start_tokens = false;
  eval::RopeSearchSettings s;
};

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

std::string command_line(const Opts& o, int64_t target, int64_t l0, double max_factor) {
  std::string c = "longctx rope-search -m " + o.mo.model + " -f " + o.file + " --target " +
                  std::to_string(target) + " --orig-ctx " + std::to_string(l0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", max_factor);
  c += std::string(" --max-factor ") + buf;
  c += " --population " + std::to_string(o.s.population) + " --parents " +
       std::to_string(o.s.parents) + " --mutations " + std::to_string(o.s.mutations) +
       " --crossovers " + std::to_string(o.s.crossovers) + " --iterations " +
       std::to_string(o.s.iterations) + " --seed " + std::to_string(o.s.seed) + " --documents " +
       std::to_string(o.documents) + " --fitness " + o.fitness;
  if (o.short_list) c += " --short";
  if (o.start_tokens) c += " --start-tokens";
  if (!o.from.empty()) c += " --from " + o.from;
  if (o.no_race) c += " --no-race";
  if (o.s.budget_minutes > 0) {
    std::snprintf(buf, sizeof buf, "%g", o.s.budget_minutes);
    c += std::string(" --budget-minutes ") + buf;
  }
  return c + " -o " + o.out;
}

void run(Opts& o) {
  if (o.fitness != "ppl" && o.fitness != "needle")
    fail("--fitness must be ppl or needle, got '", o.fitness, "'");
  if (o.documents < 1) fail("--documents must be at least 1, got ", o.documents);
  o.s.race = !o.no_race;
  eval::check_rope_search_settings(o.s);
  const std::string text = read_file(o.file);
  Loaded l = load_model(o.mo);
  const int64_t l0 = o.orig_ctx > 0 ? o.orig_ctx : l.trained_ctx;
  if (l0 <= 0) fail("the model's trained context is unknown; give --orig-ctx");

  std::optional<eval::LongRopeFactors> from;
  if (!o.from.empty()) from = eval::read_longrope_factors(o.from);
  if (o.short_list && !from)
    fail("--short searches the short list that goes with a long one: give --from FACTORS.json");
  if (o.short_list && o.start_tokens)
    fail("--start-tokens searches n_hat with the long list; --short keeps the n_hat of --from");

  const int64_t target = o.target > 0 ? o.target : (o.short_list ? l0 : 4 * l0);
  if (o.short_list && target > l0)
    fail("--short searches at or below the original context: --target ", target, " > --orig-ctx ",
         l0);
  if (!o.short_list && target <= l0)
    fail("--target ", target, " must be above the original context ", l0,
         " (or search the short list with --short)");
  const double s = static_cast<double>(target) / static_cast<double>(l0);
  const double max_factor = o.max_factor > 0 ? o.max_factor : (o.short_list ? 2.0 : 1.25 * s);
  if (max_factor < 1.0) fail("--max-factor must be at least 1, got ", max_factor);

  const RopeSettings& base = l.session.rope;
  eval::GenomeBounds b;
  b.lo = 100;
  b.hi = static_cast<int>(std::lround(max_factor * 100));
  b.search_n_hat = o.start_tokens;
  // The long list's attention factor; the short list runs with the --from file's short-list
  // factor, else 1 (the model's own RoPE at or below L0).
  const double attn = o.short_list ? from->attn_factor : eval::longrope_attn_factor(target, l0);
  const double short_attn = from && from->short_attn_factor ? *from->short_attn_factor : 1.0;

  std::vector<std::pair<std::string, eval::RopeGenome>> seeds;
  // A --from file's n_hat, on LongRoPE's candidates (the largest not above it).
  auto snap_n_hat = [&](int64_t n_hat) {
    int64_t out = 0;
    for (int64_t c : eval::longrope_n_hat_choices())
      if (c <= n_hat) out = std::max(out, c);
    return o.start_tokens ? out : int64_t{0};
  };
  auto seed = [&](const std::string& name, const std::vector<double>& f, int64_t n_hat = 0) {
    eval::RopeGenome g = eval::snap_genome(f, b, snap_n_hat(n_hat));
    for (const auto& [n, s2] : seeds)
      if (s2 == g) return;
    seeds.emplace_back(name, g);
  };
  const int64_t pairs = base.dim / 2;
  if (o.short_list) {
    seed("none", std::vector<double>(static_cast<size_t>(pairs), 1.0));
    seed("from-short", to_double(from->short_factors));
    seed("pi", eval::method_factors(base, RopeMethod::Linear, max_factor, l0, target));
    seed("yarn", eval::method_factors(base, RopeMethod::Yarn, max_factor, l0, target));
  } else {
    seed("pi", eval::method_factors(base, RopeMethod::Linear, s, l0, target));
    seed("ntk", eval::method_factors(base, RopeMethod::FixedNtk, s, l0, target));
    seed("yarn", eval::method_factors(base, RopeMethod::Yarn, s, l0, target));
    if (from) {
      std::vector<double> f = to_double(from->long_factors);
      if (from->target > from->orig_ctx && from->target != target && from->orig_ctx == l0)
        f = eval::rescale_factors(f, l0, from->target, target);
      seed("from", f, from->n_hat);
    }
  }
  if (from && static_cast<int64_t>(from->long_factors.size()) != pairs)
    fail(o.from, " has ", from->long_factors.size(), " factors; the model has ", pairs,
         " rotary frequency pairs");

  eval::RopeFitnessSetup st;
  st.model = l.model;
  st.session = l.session;
  st.orig_ctx = l0;
  st.target = target;
  st.attn_factor = attn;
  st.short_attn_factor = short_attn;
  st.short_list = o.short_list;
  if (from) {
    st.other = from->long_factors;
    st.other_n_hat = from->n_hat;
  }
  std::unique_ptr<eval::RopeFitness> fitness;
  if (o.fitness == "ppl") {
    const Tokenizer& tok = l.model->tokenizer();
    const int32_t bos = tok.add_bos() ? tok.bos() : -1;
    auto windows =
        eval::fitness_windows(tok.encode(text, true), target, o.documents, bos, "rope_search.text");
    fitness = std::make_unique<eval::PplFitness>(st, std::move(windows));
  } else {
    fitness = std::make_unique<eval::NeedleFitness>(st, text, o.documents, o.s.seed);
  }

  eval::RopeSearch search(o.s, b, seeds);
  const std::string log_path =
      !o.log.empty() ? o.log : (!o.resume.empty() ? o.resume : o.out + ".log.json");
  if (!o.resume.empty()) {
    nlohmann::json lj;
    try {
      lj = nlohmann::json::parse(read_file(o.resume));
    } catch (const nlohmann::json::exception& e) {
      fail("--resume ", o.resume, ": not valid JSON: ", e.what());
    }
    search.load_log(lj);
  }
  std::cerr << "rope-search: " << pairs << " factors in [1, " << max_factor << "], target "
            << target << " (" << s << "x of " << l0 << "), attention factor " << attn
            << (o.start_tokens ? ", n_hat searched" : "") << ", " << fitness->documents()
            << " documents, fitness " << o.fitness << ", " << search.total_candidates()
            << " candidates\n";
  Progress prog("rope-search", search.total_candidates(), "candidates");
  const eval::RopeSearchResult r = search.run(
      *fitness,
      [&](const eval::RopeSearchResult& rr) {
        eval::write_json_file(log_path, search.log_json(rr));
      },
      [&](const eval::RopeSearchProgress& p) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "best %.4f (ppl %.3f), %lld evaluated, iteration %lld",
                      p.best, std::exp(p.best), static_cast<long long>(p.evaluations),
                      static_cast<long long>(p.iteration));
        prog.update(p.candidates, buf);
      });
  prog.finish();
  eval::write_json_file(log_path, search.log_json(r));
  if (r.history.empty())
    fail("--budget-minutes ", o.s.budget_minutes, " ran out before the first evaluation");

  eval::LongRopeFactors out;
  const std::vector<float> best = r.best.genome.factors();
  if (o.short_list) {
    out.long_factors = from->long_factors;
    out.short_factors = best;
    out.target = from->target;
  } else {
    out.long_factors = best;
    out.short_factors = from ? from->short_factors : std::vector<float>(best.size(), 1.0f);
    out.target = target;
  }
  out.attn_factor = attn;
  out.short_attn_factor = short_attn;
  out.orig_ctx = l0;
  out.n_hat = o.short_list ? from->n_hat : r.best.genome.n_hat;
  nlohmann::json seeds_j = nlohmann::json::object();
  for (const auto& h : r.history)
    if (h.origin.rfind("seed:", 0) == 0) seeds_j[h.origin.substr(5)] = h.fitness;
  out.search = {{"command", command_line(o, target, l0, max_factor)},
                {"list", o.short_list ? "short" : "long"},
                {"search_length", target},
                {"seed", o.s.seed},
                {"fitness", o.fitness},
                {"documents", fitness->documents()},
                {"best_fitness", r.best.fitness},
                {"best_ppl", std::exp(r.best.fitness)},
                {"best_origin", r.best.origin},
                {"seed_fitness", seeds_j},
                {"evaluations", r.total_evaluations},
                {"document_scores", r.document_scores},
                {"raced_out", r.raced_out},
                {"cache_hits", r.cache_hits},
                {"iterations_done", r.iterations_done},
                {"stopped_by_budget", r.stopped_by_budget},
                {"minutes", r.total_seconds / 60.0},
                {"log", log_path}};
  eval::write_json_file(o.out, eval::longrope_factors_json(out));
  if (o.json) {
    std::cout << eval::longrope_factors_json(out).dump() << "\n";
    return;
  }
  std::printf("best fitness %.4f (ppl %.3f) from %s; seeds' best %.4f (ppl %.3f)\n", r.best.fitness,
              std::exp(r.best.fitness), r.best.origin.c_str(), r.seed_best, std::exp(r.seed_best));
  std::printf("%lld evaluations (%lld raced out, %lld from the log), %.1f minutes%s\n",
              static_cast<long long>(r.total_evaluations), static_cast<long long>(r.raced_out),
              static_cast<long long>(r.cache_hits), r.total_seconds / 60.0,
              r.stopped_by_budget ? ", stopped by --budget-minutes" : "");
  std::printf("factors:");
  for (float f : best) std::printf(" %.2f", f);
  if (out.n_hat > 0) std::printf(", n_hat %lld", static_cast<long long>(out.n_hat));
  std::printf("\nwritten %s (log %s)\n", o.out.c_str(), log_path.c_str());
}

}  // namespace

void register_rope_search(CLI::App& root) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "rope-search",
      "LongRoPE factor search: per-pair RoPE rescale factors found by an evolutionary search "
      "guided by perplexity (or passkey answer loss) at a target length; writes FACTORS.json");
  o->mo.add_to(*cmd);
  cmd->add_option("-f,--file", o->file, "text the fitness documents are cut from")->required();
  cmd->add_option("-o,--output", o->out, "factors file to write")->capture_default_str();
  cmd->add_option("--target", o->target,
                  "target length in tokens (default 4x the original context; with --short the "
                  "original context)");
  cmd->add_option("--orig-ctx", o->orig_ctx,
                  "original (trained) context L0 (default: the model's)");
  cmd->add_option("--population", o->s.population, "genomes of the first population")
      ->capture_default_str();
  cmd->add_option("--parents", o->s.parents, "parents kept each iteration")->capture_default_str();
  cmd->add_option("--mutations", o->s.mutations, "mutations per iteration")->capture_default_str();
  cmd->add_option("--crossovers", o->s.crossovers, "crossovers per iteration")
      ->capture_default_str();
  cmd->add_option("--iterations", o->s.iterations, "iterations")->capture_default_str();
  cmd->add_option("--seed", o->s.seed, "random seed of the search")->capture_default_str();
  cmd->add_option("--max-factor", o->max_factor,
                  "largest factor (default 1.25 x target / orig-ctx; 2 with --short)");
  cmd->add_option("--documents", o->documents, "fitness documents (same for every candidate)")
      ->capture_default_str();
  cmd->add_option("--fitness", o->fitness,
                  "ppl: mean NLL beyond the original context; needle: loss of passkey answers")
      ->capture_default_str();
  cmd->add_option("--from", o->from,
                  "factors file to start from (rescaled to the target); with --short, the long "
                  "list to keep");
  cmd->add_flag("--short", o->short_list,
                "search the short list (used at or below the original context)");
  cmd->add_flag("--start-tokens", o->start_tokens,
                "search n_hat too: the count of leading positions left unscaled (0, 1, 2, 4, ..., "
                "256)");
  cmd->add_option("--resume", o->resume, "continue the search of this log");
  cmd->add_option("--log", o->log, "search log to write (default: OUTPUT.log.json)");
  cmd->add_option("--budget-minutes", o->s.budget_minutes,
                  "stop after this many minutes with the best found (0 = no limit)");
  cmd->add_flag("--no-race", o->no_race, "score every candidate on every document");
  cmd->add_flag("--json", o->json, "print the factors file's JSON");
  cmd->callback([o] { run(*o); });
}

}  // namespace lc::app
