#include "app/common.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/arch/arch.h"

namespace lc::app {

namespace {
const char* const kRopeFlags[][2] = {
    {"--rope-scaling", "RoPE scaling method: none, linear, yarn, dynamic, ntk, llama3, longrope"},
    {"--rope-scale", "RoPE context scale factor (e.g. 4 = four times the trained context)"},
    {"--rope-freq-base", "RoPE base frequency (theta)"},
    {"--rope-freq-scale", "RoPE frequency scale (= 1 / --rope-scale)"},
    {"--yarn-orig-ctx", "original (trained) context length for scaling methods"},
    {"--yarn-ext-factor", "YaRN extrapolation mix factor"},
    {"--yarn-attn-factor", "YaRN attention factor multiplier"},
    {"--yarn-beta-fast", "YaRN beta_fast (default 32)"},
    {"--yarn-beta-slow", "YaRN beta_slow (default 1)"},
    {"--rope-factors", "JSON file with LongRoPE long_factor / short_factor lists"},
};
}  // namespace

void ModelOptions::add_to(CLI::App& cmd, bool require_model) {
  auto* m = cmd.add_option("-m,--model", model, "GGUF model file");
  if (require_model) m->required();
  cmd.add_option("-t,--threads", threads, "threads (default: all cores or $LONGCTX_THREADS)");
  cmd.add_option("-b,--batch", batch, "prompt tokens per forward step (chunked prefill)")
      ->capture_default_str();
  cmd.add_flag("-v,--verbose", verbose, "print model and RoPE details on stderr");
  add_memory_options(cmd);
  add_rope_options(cmd);
}

void ModelOptions::add_memory_options(CLI::App& cmd) {
  const char* g = "KV memory";
  cmd.add_option("--memory", memory, "KV memory policy: full, streaming, infllm")
      ->capture_default_str()
      ->group(g);
  cmd.add_option("--kv-type", kv_type,
                 "KV cache type of --memory full: f32, f16 (half the bytes), q8_0 (head dim a "
                 "multiple of 32)")
      ->capture_default_str()
      ->group(g);
  cmd.add_option("--ctx-train", ctx_train,
                 "the model's trained context, when the file's context_length is wrong (defaults "
                 "of the memory policies derive from it)")
      ->group(g);
  cmd.add_option("--n-init", n_init, "attention sinks (streaming, infllm)")->group(g);
  cmd.add_option("--n-local", n_local, "local window (streaming, infllm)")->group(g);
  cmd.add_option("--block-size", block_size, "tokens per memory block (infllm)")->group(g);
  cmd.add_option("--topk", topk, "memory blocks retrieved per step (infllm)")->group(g);
  cmd.add_option("--repr-topk", repr_topk, "representative tokens per block (infllm)")->group(g);
  cmd.add_option("--exec-block", exec_block, "query tokens per attention step (<= --n-local)")
      ->group(g);
  cmd.add_option("--mem-budget", mem_budget,
                 "RAM for memory blocks, e.g. 256M (infllm; the rest spills to disk)")
      ->group(g);
  cmd.add_option("--spill-dir", spill_dir, "directory of the spill file (default $TMPDIR)")
      ->group(g);
  cmd.add_option("--spill-type", spill_type, "spilled block type: f32, f16, q8_0")
      ->capture_default_str()
      ->group(g);
  cmd.add_option("--retrieval", retrieval,
                 "block search: index (clustered representatives, bounded work) or exact")
      ->capture_default_str()
      ->group(g);
  cmd.add_option("--index-group", index_group,
                 "blocks per cluster of the index before the cluster splits")
      ->capture_default_str()
      ->group(g);
  cmd.add_option("--index-clusters", index_clusters, "clusters of the index at most")
      ->capture_default_str()
      ->group(g);
  cmd.add_option("--index-budget", index_budget,
                 "blocks scored per search after the cluster bounds (0 = no cap: the search "
                 "is exact, its work grows with the context)")
      ->capture_default_str()
      ->group(g);
  cmd.add_option("--index-probe", index_probe, "clusters visited per search (0 = no cap)")
      ->capture_default_str()
      ->group(g);
  cmd.add_flag("--measure-recall", measure_recall,
               "also run exact search and report the index's recall (slow)")
      ->group(g);
}

int64_t trained_context(const ModelOptions& o, const Loaded& l) {
  if (o.ctx_train > 0) return o.ctx_train;
  if (l.session.rope.orig_ctx > 0) return l.session.rope.orig_ctx;
  return l.model->hparams().n_ctx_train;
}

void configure_memory(const ModelOptions& o, Loaded& l) {
  MemoryConfig& mc = l.session.memory;
  mc.policy = o.memory;
  if (mc.policy != "full" && mc.policy != "streaming" && mc.policy != "infllm")
    fail("unknown --memory '", mc.policy, "' (expected: full, streaming, infllm)");
  mc.kv_type = kv_type_from_name(o.kv_type);
  check_kv_type(mc);
  if (o.ctx_train < 0) fail("--ctx-train must be positive, got ", o.ctx_train);
  ContextMemoryOptions& c = mc.ctx;
  c = default_context_memory(trained_context(o, l));
  if (o.n_init >= 0) c.n_init = o.n_init;
  if (o.n_local >= 0) c.n_local = o.n_local;
  if (o.block_size >= 0) c.block_size = o.block_size;
  if (o.topk >= 0) c.topk = o.topk;
  if (o.repr_topk >= 0) c.repr_topk = o.repr_topk;
  if (o.exec_block >= 0) c.exec_block = o.exec_block;
  if (o.exec_block < 0 && c.exec_block > c.n_local) c.exec_block = c.n_local;
  if (o.retrieval != "index" && o.retrieval != "exact")
    fail("--retrieval must be index or exact, got '", o.retrieval, "'");
  c.exact_retrieval = o.retrieval == "exact";
  c.index_group = o.index_group;
  c.index_max_groups = o.index_probe;
  c.measure_recall = o.measure_recall;
  c.index_budget = o.index_budget;
  c.index_clusters = o.index_clusters;
  if (o.index_probe < 0) fail("--index-probe must be >= 0, got ", o.index_probe);
  if (o.index_budget < 0) fail("--index-budget must be >= 0, got ", o.index_budget);
  if (!o.mem_budget.empty()) c.store.mem_budget = parse_bytes(o.mem_budget, "--mem-budget");
  c.store.spill_dir = o.spill_dir;
  c.store.spill_type = spill_type_from_name(o.spill_type);
  c.infllm = mc.policy == "infllm";
  if (mc.policy != "full") validate_context_memory(c, trained_context(o, l));
}

void ModelOptions::add_rope_options(CLI::App& cmd) {
  cmd.add_option("--hf-config", hf_config, "Hugging Face config.json whose RoPE settings apply")
      ->group("RoPE scaling");
  for (const auto& f : kRopeFlags) {
    rope_values.push_back(std::make_unique<std::string>());
    std::string* dst = rope_values.back().get();
    cmd.add_option(f[0], *dst, f[1])->group("RoPE scaling");
    rope_flags.emplace_back(f[0], dst);
  }
}

RopeOverrides ModelOptions::rope_overrides() const {
  RopeOverrides o;
  for (const auto& [flag, value] : rope_flags)
    if (!value->empty()) rope_parse_flag(o, flag, *value);
  return o;
}

Loaded load_model(const ModelOptions& o) {
  if (o.threads < 0) fail("--threads must be >= 0, got ", o.threads);
  if (o.threads > 0) set_num_threads(o.threads);
  Loaded l;
  l.model = Model::load(o.model);
  const Model& m = *l.model;
  if (!m.has_weights()) fail(o.model, ": the file has no weights (a tokenizer-only GGUF)");
  const ArchSpec* spec = find_arch(m.hparams().arch);
  LC_CHECK(spec != nullptr);
  l.session.rope = rope_resolve(&m.gguf(), m.hparams().arch, m.hparams().head_dim,
                                spec->rope_layout, o.hf_config, o.rope_overrides());
  l.session.batch = o.batch;
  l.trained_ctx = trained_context(o, l);
  configure_memory(o, l);
  {
    const HParams& hp = m.hparams();
    MemoryDims dims;
    dims.n_layer = static_cast<int>(hp.n_layer);
    dims.attn.n_head = hp.n_head;
    dims.attn.n_head_kv = hp.n_head_kv;
    dims.attn.head_dim = hp.head_dim;
    if (l.session.memory.policy == "infllm") {
      const std::string w = budget_warning(l.session.memory.ctx, dims);
      if (!w.empty()) std::cerr << "warning: " << w << "\n";
    }
  }
  if (o.verbose) {
    const HParams& hp = m.hparams();
    std::cerr << "model: " << o.model << " (" << hp.arch << ", " << hp.n_layer << " layers, dim "
              << hp.n_embd << ", " << hp.n_head << "/" << hp.n_head_kv << " heads, vocab "
              << hp.n_vocab << ", trained context " << hp.n_ctx_train << ")\n";
    for (const auto& line : rope_describe(l.session.rope)) std::cerr << "rope: " << line << "\n";
    std::cerr << "memory: " << describe_memory(l.session.memory) << "\n";
    std::cerr << "batch " << o.batch << ", threads " << num_threads() << "\n";
  }
  return l;
}

void warn_context(const Loaded& l, int64_t requested_ctx) {
  if (requested_ctx <= 0 || l.session.memory.policy != "full") return;
  if (auto w = rope_context_warning(l.session.rope, l.trained_ctx, requested_ctx))
    std::cerr << "warning: " << *w << "\n";
}

double median(std::vector<double> v) {
  LC_CHECK(!v.empty());
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB
}

double rss_now_mb() {
  std::ifstream f("/proc/self/statm");
  long long size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("error reading '", path, "'");
  return ss.str();
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(STDERR_FILENO) != 0),
      t0_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t done, const std::string& extra) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const int decile = static_cast<int>(frac * 10);
  if (!tty_ && decile == last_decile_) return;
  last_decile_ = decile;
  const double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: %lld/%lld %s (%3.0f%%), %.1fs elapsed, ETA %.1fs",
                label_.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
                unit_.c_str(), frac * 100, secs, eta);
  std::cerr << (tty_ ? "\r" : "") << buf << (extra.empty() ? "" : ", ") << extra
            << (tty_ ? "\033[K" : "\n") << std::flush;
  shown_ = true;
}

void Progress::finish() {
  if (shown_ && tty_) std::cerr << "\n";
  shown_ = false;
}

std::string valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace lc::app
