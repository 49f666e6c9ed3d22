// longctx bench-context: decode cost against context length. One session per length is prefilled
// from the same text; then decoding rounds visit the sessions in turn (round r: n tokens in the
// shortest, n tokens in the next, ...), so a slow spell of a shared machine hits every length
// alike. Medians over rounds, and each length's cost as a ratio to the first length's.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/lengths.h"

namespace lc::app {

namespace {

struct Opts {
  ModelOptions mo;
  std::string file, lengths = "8k,64k";
  int64_t n_gen = 128;
  int rounds = 7;
  uint64_t seed = 1;
  bool json = false;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Length {
  int64_t n = 0;
  std::unique_ptr<Session> s;
  int32_t tok = 0;
  double prefill_s = 0;
  double rss_mb = 0;  // growth of the process's resident memory while this session was prefilled
  std::vector<double> wall_ms, cpu_ms;  // per token, one entry per round
};

void run(const Opts& o) {
  const std::vector<int64_t> lengths = eval::parse_lengths(o.lengths, "bench_context.lengths");
  if (o.n_gen < 1) fail("-n must be >= 1, got ", o.n_gen);
  if (o.rounds < 1) fail("--rounds must be >= 1, got ", o.rounds);
  Loaded l = load_model(o.mo);
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  warn_context(l, longest + o.n_gen * o.rounds);

  std::vector<int32_t> tokens;
  if (!o.file.empty()) {
    std::string text = read_file(o.file);
    tokens = l.model->tokenizer().encode(text, true, false);
    if (static_cast<int64_t>(tokens.size()) < longest)
      fail(o.file, " has ", tokens.size(), " tokens; --lengths asks for ", longest,
           " (give a longer text)");
  } else {
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int32_t> pick(0, l.model->tokenizer().n_vocab() - 1);
    tokens.resize(static_cast<size_t>(longest));
    for (auto& t : tokens) t = pick(rng);
  }
  std::cerr << "bench-context: " << o.mo.model << ", memory " << describe_memory(l.session.memory)
            << ", " << num_threads() << " threads; " << o.rounds << " rounds of " << o.n_gen
            << " tokens per length\n";

  std::vector<Length> ls;
  for (int64_t n : lengths) {
    Length L;
    L.n = n;
    const double rss0 = rss_now_mb();
    L.s = std::make_unique<Session>(l.model, l.session);
    std::unique_ptr<Progress> prog;
    const double t0 = now_s();
    L.s->eval(tokens.data(), n, [&](int64_t done, int64_t total) {
      if (!prog) prog = std::make_unique<Progress>(cat("prefill ", n), total, "tokens");
      prog->update(done);
    });
    if (prog) prog->finish();
    L.prefill_s = now_s() - t0;
    L.rss_mb = rss_now_mb() - rss0;
    L.tok = argmax(L.s->last_logits());
    L.s->memory().reset_stats();  // the figures below are about decoding
    ls.push_back(std::move(L));
  }
  for (int r = 0; r < o.rounds; ++r) {
    for (Length& L : ls) {
      const double w0 = now_s(), c0 = cpu_seconds();
      for (int64_t i = 0; i < o.n_gen; ++i) L.tok = argmax(L.s->eval(&L.tok, 1));
      L.wall_ms.push_back(1e3 * (now_s() - w0) / static_cast<double>(o.n_gen));
      L.cpu_ms.push_back(1e3 * (cpu_seconds() - c0) / static_cast<double>(o.n_gen));
    }
    std::fprintf(stderr, "bench-context: round %d/%d done\n", r + 1, o.rounds);
  }

  const double base_wall = median(ls[0].wall_ms), base_cpu = median(ls[0].cpu_ms);
  if (o.json) {
    auto out = nlohmann::json::array();
    for (const Length& L : ls) {
      out.push_back({{"context", L.n},
                     {"prefill_s", L.prefill_s},
                     {"decode_ms_per_token", median(L.wall_ms)},
                     {"decode_cpu_ms_per_token", median(L.cpu_ms)},
                     {"ratio_to_first", median(L.wall_ms) / base_wall},
                     {"cpu_ratio_to_first", median(L.cpu_ms) / base_cpu},
                     {"rounds_ms_per_token", L.wall_ms},
                     {"memory_mb", static_cast<double>(L.s->memory().bytes_in_ram()) / (1 << 20)},
                     {"session_rss_mb", L.rss_mb},
                     {"process_peak_rss_mb", peak_rss_mb()},
                     {"memory_stats", L.s->memory().stats_line()},
                     {"n_gen", o.n_gen},
                     {"rounds", o.rounds},
                     {"memory", describe_memory(l.session.memory)}});
    }
    std::cout << out.dump() << "\n";
    return;
  }
  std::printf("%10s %11s %15s %9s %14s %9s %12s %12s\n", "context", "prefill s", "decode ms/tok",
              "ratio", "CPU ms/tok", "ratio", "memory MiB", "RSS +MiB");
  for (const Length& L : ls)
    std::printf("%10lld %11.1f %15.4f %9.3f %14.4f %9.3f %12.1f %12.1f\n",
                static_cast<long long>(L.n), L.prefill_s, median(L.wall_ms),
                median(L.wall_ms) / base_wall, median(L.cpu_ms), median(L.cpu_ms) / base_cpu,
                static_cast<double>(L.s->memory().bytes_in_ram()) / (1 << 20), L.rss_mb);
  for (const Length& L : ls)
    std::printf("%10lld %s\n", static_cast<long long>(L.n), L.s->memory().stats_line().c_str());
  std::printf(
      "(medians of %d interleaved rounds of %lld tokens; ratios to the first length; "
      "CPU time counts all threads; memory: what the KV memory holds in RAM; RSS +: growth of the "
      "process's resident memory while that length was prefilled; peak RSS of the process %.1f "
      "MiB)\n",
      o.rounds, static_cast<long long>(o.n_gen), peak_rss_mb());
}

}  // namespace

void register_bench_context(CLI::App& root) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "bench-context",
      "decode cost against context length: one session per length, decoding rounds interleaved");
  o->mo.add_to(*cmd, false);
  cmd->add_option("-f,--file", o->file, "text whose first tokens fill the contexts (else random)");
  cmd->add_option("--lengths", o->lengths, "context lengths, e.g. 8k,64k,1m")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_gen, "tokens decoded per length and round")
      ->capture_default_str();
  cmd->add_option("--rounds", o->rounds, "rounds (medians are reported)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the random tokens")->capture_default_str();
  cmd->add_flag("--json", o->json, "print a JSON list, one object per length");
  cmd->callback([o] { run(*o); });
}

}  // namespace lc::app
