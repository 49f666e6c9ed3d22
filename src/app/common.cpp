#include "app/common.h"

#include <unistd.h>

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
  cmd.add_option("--memory", memory, "KV memory policy: full")->capture_default_str();
  cmd.add_flag("-v,--verbose", verbose, "print model and RoPE details on stderr");
  add_rope_options(cmd);
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
  l.session.memory = o.memory;
  if (o.verbose) {
    const HParams& hp = m.hparams();
    std::cerr << "model: " << o.model << " (" << hp.arch << ", " << hp.n_layer << " layers, dim "
              << hp.n_embd << ", " << hp.n_head << "/" << hp.n_head_kv << " heads, vocab "
              << hp.n_vocab << ", trained context " << hp.n_ctx_train << ")\n";
    for (const auto& line : rope_describe(l.session.rope)) std::cerr << "rope: " << line << "\n";
    std::cerr << "memory: " << o.memory << ", batch " << o.batch << ", threads " << num_threads()
              << "\n";
  }
  return l;
}

void warn_context(const Loaded& l, int64_t requested_ctx) {
  if (requested_ctx <= 0) return;
  const int64_t trained =
      l.session.rope.orig_ctx > 0 ? l.session.rope.orig_ctx : l.model->hparams().n_ctx_train;
  if (auto w = rope_context_warning(l.session.rope, trained, requested_ctx))
    std::cerr << "warning: " << *w << "\n";
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
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
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
