// longctx bench: prefill and decode speed at several prompt lengths, achieved GB/s and GFLOP/s,
// peak memory; with --roofline, this machine's limits and every figure as a fraction of them.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "app/commands.h"
#include "app/common.h"
#include "app/roofline.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace lc::app {

namespace {

struct BenchOpts {
  ModelOptions mo;
  std::vector<int64_t> prompts{512};
  int64_t n_gen = 128;
  int repeat = 3;
  uint64_t seed = 1;
  bool json = false, roofline = false;
  int64_t roofline_mib = 1024;
};

struct Run {
  double prefill_s = 0, decode_s = 0;
  double prefill_cpu_s = 0, decode_cpu_s = 0;  // CPU time of all threads
  size_t kv_bytes = 0;
};

struct Row {
  int64_t n_prompt = 0, n_gen = 0;
  double prefill_s = 0, decode_s = 0;  // medians
  double prefill_cpu_s = 0, decode_cpu_s = 0;
  double prefill_tok_s = 0, decode_tok_s = 0, decode_gb_s = 0, prefill_gflop_s = 0;
  double peak_rss_mb = 0, kv_mb = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void check_logits(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) fail("the model produced a non-finite logit; its weights are broken");
}

// One prefill of `prompt` in session s, emptied first, then n_gen greedy tokens one at a time.
// The runs of a prompt length share one session, as llama-bench's share one context: after the
// untimed warm-up run its buffers and KV rows are allocated and resident, so the timed runs do not
// measure the kernel's page faults of a new session's memory.
Run run_once(Session& s, const std::vector<int32_t>& prompt, int64_t n_gen) {
  s.reset();
  std::unique_ptr<Progress> prog;
  auto on_chunk = [&](int64_t done, int64_t total) {
    if (total < 4096) return;
    if (!prog) prog = std::make_unique<Progress>("prefill", total, "tokens");
    prog->update(done);
  };
  Run r;
  double c0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  s.eval(prompt.data(), static_cast<int64_t>(prompt.size()), on_chunk);
  r.prefill_s = seconds_since(t0);
  r.prefill_cpu_s = cpu_seconds() - c0;
  if (prog) prog->finish();
  check_logits(s.last_logits());
  int32_t tok = argmax(s.last_logits());
  c0 = cpu_seconds();
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n_gen; ++i) tok = argmax(s.eval(&tok, 1));
  r.decode_s = seconds_since(t0);
  r.decode_cpu_s = cpu_seconds() - c0;
  check_logits(s.last_logits());
  r.kv_bytes = s.memory().bytes_in_ram();
  return r;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void print_limits(const MachineLimits& lim) {
  std::printf("roofline: DRAM read %.2f GB/s (%.0f MiB buffer, %d threads)\n", lim.dram_gb_s,
              static_cast<double>(lim.dram_bytes) / (1 << 20), lim.threads);
  std::printf("roofline: fp32 matmul %.2f GFLOP/s (F32 %lld x %lld, %lld tokens)\n",
              lim.matmul_gflop_s, static_cast<long long>(lim.mm_n_out),
              static_cast<long long>(lim.mm_n_in), static_cast<long long>(lim.mm_n_tok));
  if (lim.model_type != TensorType::F32)
    std::printf("roofline: %s matmul %.2f GFLOP/s (the model's weight type, same size)\n",
                std::string(tensor_type_info(lim.model_type).name).c_str(), lim.model_type_gflop_s);
}

nlohmann::json limits_json(const MachineLimits& lim) {
  return {{"dram_gb_s", lim.dram_gb_s},
          {"matmul_gflop_s", lim.matmul_gflop_s},
          {"matmul_type", tensor_type_info(lim.model_type).name},
          {"matmul_type_gflop_s", lim.model_type_gflop_s},
          {"threads", lim.threads},
          {"dram_buffer_mb", static_cast<double>(lim.dram_bytes) / (1 << 20)}};
}

void run_bench(const BenchOpts& o) {
  if (o.mo.model.empty() && !o.roofline)
    fail("give a model with -m (or --roofline alone to measure this machine's limits)");
  if (o.prompts.empty()) fail("-p needs at least one prompt length");
  for (int64_t p : o.prompts)
    if (p < 1) fail("-p: prompt lengths must be positive, got ", p);
  if (o.n_gen < 0) fail("-n must be >= 0, got ", o.n_gen);
  if (o.repeat < 1) fail("--repeat must be >= 1, got ", o.repeat);
  if (o.roofline_mib < 1) fail("--roofline-mib must be >= 1, got ", o.roofline_mib);
  const SessionSpec spec = o.mo.spec();
  if (spec.threads && *spec.threads < 0) fail("--threads must be >= 0, got ", *spec.threads);
  if (spec.threads && *spec.threads > 0) set_num_threads(*spec.threads);

  auto log = [](const std::string& line) { std::cerr << line << "\n"; };
  const size_t dram_bytes = static_cast<size_t>(o.roofline_mib) << 20;
  if (o.mo.model.empty()) {
    const MachineLimits lim = measure_limits(dram_bytes, 5, TensorType::F32, log);
    if (o.json)
      std::cout << limits_json(lim).dump() << "\n";
    else
      print_limits(lim);
    return;
  }

  Loaded l = load_model(o.mo.model, spec, o.mo.verbose);
  const Model& m = *l.model;
  const HParams& hp = m.hparams();
  warn_context(l, *std::max_element(o.prompts.begin(), o.prompts.end()) + o.n_gen);
  const uint64_t wbytes = decode_weight_bytes(m);
  const int64_t key_cap = attention_key_cap(l.session.memory);
  const int n_tok_vocab = m.tokenizer().n_vocab();
  std::cerr << "bench: " << o.mo.model << " (" << hp.arch << ", " << hp.n_layer << " layers, dim "
            << hp.n_embd << ", vocab " << hp.n_vocab << "), "
            << fmt("%.1f", static_cast<double>(wbytes) / (1 << 20))
            << " MiB of weights read per token, " << num_threads() << " threads, memory "
            << describe_memory(l.session.memory) << "\n";

  // Warm-up: one token reads every weight once, so the first timed run does not pay for paging
  // the model file in.
  {
    Session s(l.model, l.session);
    const int32_t t = m.tokenizer().bos() >= 0 ? m.tokenizer().bos() : 0;
    s.eval(&t, 1);
  }

  std::vector<Row> rows;
  for (int64_t n_prompt : o.prompts) {
    std::mt19937_64 rng(o.seed + static_cast<uint64_t>(n_prompt));
    std::uniform_int_distribution<int32_t> pick(0, n_tok_vocab - 1);
    std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
    for (auto& t : prompt) t = pick(rng);
    std::vector<double> pre, dec, pre_cpu, dec_cpu;
    size_t kv = 0;
    Session session(l.model, l.session);
    run_once(session, prompt, std::min<int64_t>(o.n_gen, 1));  // warm-up, as llama-bench's
    for (int rep = 0; rep < o.repeat; ++rep) {
      const Run r = run_once(session, prompt, o.n_gen);
      pre.push_back(r.prefill_s);
      dec.push_back(r.decode_s);
      pre_cpu.push_back(r.prefill_cpu_s);
      dec_cpu.push_back(r.decode_cpu_s);
      kv = r.kv_bytes;
      std::fprintf(stderr,
                   "bench: -p %lld -n %lld run %d/%d: prefill %.1f tok/s, decode %.2f tok/s "
                   "(CPU time: prefill %.1f s, decode %.2f ms per token)\n",
                   static_cast<long long>(n_prompt), static_cast<long long>(o.n_gen), rep + 1,
                   o.repeat, static_cast<double>(n_prompt) / r.prefill_s,
                   r.decode_s > 0 ? static_cast<double>(o.n_gen) / r.decode_s : 0.0,
                   r.prefill_cpu_s,
                   o.n_gen > 0 ? 1e3 * r.decode_cpu_s / static_cast<double>(o.n_gen) : 0.0);
    }
    Row row;
    row.n_prompt = n_prompt;
    row.n_gen = o.n_gen;
    row.prefill_s = median(pre);
    row.decode_s = median(dec);
    row.prefill_cpu_s = median(pre_cpu);
    row.decode_cpu_s = median(dec_cpu);
    row.prefill_tok_s = static_cast<double>(n_prompt) / row.prefill_s;
    row.decode_tok_s = row.decode_s > 0 ? static_cast<double>(o.n_gen) / row.decode_s : 0;
    row.decode_gb_s = static_cast<double>(wbytes) * row.decode_tok_s / 1e9;
    row.prefill_gflop_s =
        prefill_flops(m, n_prompt, l.session.batch, key_cap) / row.prefill_s / 1e9;
    row.peak_rss_mb = peak_rss_mb();
    row.kv_mb = static_cast<double>(kv) / (1 << 20);
    rows.push_back(row);
  }

  // After the runs, so the bandwidth buffer does not count in their peak RSS.
  std::optional<MachineLimits> lim;
  if (o.roofline) lim = measure_limits(dram_bytes, 5, main_weight_type(m), log);

  if (o.json) {
    auto out = nlohmann::json::array();
    for (const Row& r : rows) {
      nlohmann::json j = {{"n_prompt", r.n_prompt},
                          {"n_gen", r.n_gen},
                          {"prefill_tok_s", r.prefill_tok_s},
                          {"decode_tok_s", r.decode_tok_s},
                          {"decode_gb_s", r.decode_gb_s},
                          {"prefill_gflop_s", r.prefill_gflop_s},
                          {"peak_rss_mb", r.peak_rss_mb},
                          {"prefill_s", r.prefill_s},
                          {"decode_s", r.decode_s},
                          {"prefill_cpu_s", r.prefill_cpu_s},
                          {"decode_cpu_s", r.decode_cpu_s},
                          {"kv_mb", r.kv_mb},
                          {"weight_mb_per_token", static_cast<double>(wbytes) / (1 << 20)},
                          {"repeat", o.repeat},
                          {"threads", num_threads()},
                          {"memory", describe_memory(l.session.memory)},
                          {"kv_type", kv_type_name(l.session.memory.kv_type)}};
      if (lim) {
        j["roofline"] = limits_json(*lim);
        j["decode_frac_of_dram"] = r.decode_gb_s / lim->dram_gb_s;
        j["prefill_frac_of_matmul"] = r.prefill_gflop_s / lim->model_type_gflop_s;
      }
      out.push_back(j);
    }
    std::cout << out.dump() << "\n";
    return;
  }
  if (lim) print_limits(*lim);
  std::printf("%9s %6s %14s %13s %12s %16s %13s %9s\n", "n_prompt", "n_gen", "prefill tok/s",
              "decode tok/s", "decode GB/s", "prefill GFLOP/s", "peak RSS MiB", "KV MiB");
  for (const Row& r : rows) {
    std::printf("%9lld %6lld %14.1f %13.2f %12.2f %16.2f %13.0f %9.1f\n",
                static_cast<long long>(r.n_prompt), static_cast<long long>(r.n_gen),
                r.prefill_tok_s, r.decode_tok_s, r.decode_gb_s, r.prefill_gflop_s, r.peak_rss_mb,
                r.kv_mb);
    if (lim)
      std::printf(
          "%9s %6s decode at %.1f%% of DRAM read bandwidth, prefill at %.1f%% of the %s "
          "matmul peak\n",
          "", "", 100 * r.decode_gb_s / lim->dram_gb_s,
          100 * r.prefill_gflop_s / lim->model_type_gflop_s,
          std::string(tensor_type_info(lim->model_type).name).c_str());
  }
  for (const Row& r : rows)
    if (r.n_gen > 0 && r.decode_cpu_s > 0)
      std::printf("%9lld %6lld CPU time (all threads): prefill %.2f s, decode %.2f ms per token\n",
                  static_cast<long long>(r.n_prompt), static_cast<long long>(r.n_gen),
                  r.prefill_cpu_s, 1e3 * r.decode_cpu_s / static_cast<double>(r.n_gen));
  std::printf(
      "(medians of %d runs; KV cache %s, KV MiB as stored; decode GB/s counts the weights only, "
      "not the KV cache)\n",
      o.repeat, kv_type_name(l.session.memory.kv_type));
}

}  // namespace

void register_bench(CLI::App& root) {
  auto o = std::make_shared<BenchOpts>();
  CLI::App* cmd = root.add_subcommand(
      "bench",
      "prefill and decode speed, GB/s and GFLOP/s achieved, peak memory (--roofline: "
      "against this machine's limits)");
  o->mo.add_to(*cmd, false);
  cmd->add_option("-p,--n-prompt", o->prompts, "prompt lengths, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_gen, "tokens decoded after each prompt")
      ->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "runs per prompt length (medians are reported)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the random prompt tokens")->capture_default_str();
  cmd->add_flag("--json", o->json, "print a JSON list, one object per prompt length");
  cmd->add_flag(
      "--roofline", o->roofline,
      "measure DRAM read bandwidth and the matmul peak (fp32 and the model's weight type); "
      "alone (no -m) prints them");
  cmd->add_option("--roofline-mib", o->roofline_mib, "size of the bandwidth test buffer")
      ->capture_default_str();
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace lc::app
