#include "app/common.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/results.h"
#include "model/arch/arch.h"

namespace lc::app {

void ModelOptions::add_to(CLI::App& cmd, bool require_model) {
  auto* m = cmd.add_option("-m,--model", model, "GGUF model file or Hugging Face model folder");
  if (require_model) m->required();
  add_run_options(cmd);
  cmd.add_flag("-v,--verbose", verbose, "print model, RoPE and every setting on stderr");
  add_memory_options(cmd);
  add_rope_options(cmd);
  add_compat_flags(cmd);
}

void ModelOptions::add_run_options(CLI::App& cmd) { settings.add(cmd, FlagGroup::Run); }
void ModelOptions::add_memory_options(CLI::App& cmd) { settings.add(cmd, FlagGroup::Memory); }
void ModelOptions::add_rope_options(CLI::App& cmd) { settings.add(cmd, FlagGroup::Rope); }

SessionSpec ModelOptions::spec() const {
  SessionSpec s;
  settings.fill(s);
  return s;
}

Loaded load_model(const ModelOptions& o) { return load_model(o.model, o.spec(), o.verbose); }

Loaded load_model(const std::string& path, const SessionSpec& spec, bool verbose) {
  if (spec.threads && *spec.threads < 0)
    fail_setting({"threads"}, "threads must be >= 0, got ", *spec.threads);
  if (spec.threads && *spec.threads > 0) set_num_threads(*spec.threads);
  Loaded l;
  l.model = Model::load(path);
  const Model& m = *l.model;
  if (!m.has_weights()) fail(path, ": the file has no weights (a tokenizer-only GGUF)");
  l.session = resolve_session(m, spec);
  l.trained_ctx = l.session.trained_ctx;
  for (const SettingWarning& w : l.session.warnings)
    std::cerr << "warning: " << message_with_flags(w.message, w.settings) << "\n";
  if (verbose) {
    const HParams& hp = m.hparams();
    std::cerr << "model: " << path << " (" << hp.arch << ", " << hp.n_layer << " layers, dim "
              << hp.n_embd << ", " << hp.n_head << "/" << hp.n_head_kv << " heads, vocab "
              << hp.n_vocab << ", trained context " << hp.n_ctx_train << ")\n";
    for (const auto& line : rope_describe(l.session.rope)) std::cerr << "rope: " << line << "\n";
    std::cerr << "memory: " << describe_memory(l.session.memory) << "\n";
    std::cerr << "batch " << l.session.batch << ", threads " << num_threads() << "\n";
    for (const auto& line : describe_settings(l.session)) std::cerr << "setting: " << line << "\n";
  }
  return l;
}

void warn_context(const Loaded& l, int64_t requested_ctx) {
  if (requested_ctx <= 0 || l.session.memory.policy != MemoryPolicy::Full) return;
  if (auto w =
          rope_context_warning(l.session.rope, l.trained_ctx, requested_ctx, setting_flags_text))
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

std::string read_file(const std::string& path) { return eval::read_text_file(path); }

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(STDERR_FILENO) != 0),
      t0_(std::chrono::steady_clock::now()),
      last_line_(t0_) {}

void Progress::update(int64_t done, const std::string& extra) {
  const auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - t0_).count();
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  if (!tty_) {
    // A log file gets a line every few seconds, and the last one when something was shown.
    const bool last = done >= total_;
    const double since = std::chrono::duration<double>(now - last_line_).count();
    if (!(last ? shown_ : since >= kLogSeconds)) return;
    last_line_ = now;
  }
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

}  // namespace lc::app
