// Pieces every `longctx` subcommand shares: model and RoPE options, loading, progress display.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "app/setting_flags.h"
#include "engine/session.h"
#include "eval/text_format.h"
#include "model/model.h"
#include "model/rope/rope_config.h"

namespace lc::app {

// Options of every command that runs a model: the model file, -v, and the setting flags of the
// one flag table (setting_flags.h).
struct ModelOptions {
  std::string model;
  bool verbose = false;
  SettingOptions settings;

  void add_to(CLI::App& cmd, bool require_model = true);  // all of the below, plus -m and -v
  void add_run_options(CLI::App& cmd);                    // -t, -b
  void add_rope_options(CLI::App& cmd);                   // the RoPE flags and --hf-config
  void add_memory_options(CLI::App& cmd);  // --memory and its parameters, --ctx-train
  // The settings the flags given fill.
  SessionSpec spec() const;
};

// A loaded model and its session settings resolved from the flags (RoPE: flags > config.json >
// GGUF); prints model, RoPE and every setting with its source when verbose, and the resolution's
// warnings.
struct Loaded {
  std::shared_ptr<const Model> model;
  SessionOptions session;
  int64_t trained_ctx = 0;  // see SessionOptions::trained_ctx
};
Loaded load_model(const ModelOptions& o);
Loaded load_model(const std::string& path, const SessionSpec& spec, bool verbose);
// Prints the long-context warning when `requested_ctx` exceeds the trained context with nothing
// configured to extend it.
void warn_context(const Loaded& l, int64_t requested_ctx);

// Reads a whole file; lc::Error naming it when it cannot be read.
std::string read_file(const std::string& path);

// Measurement helpers shared by the benchmarks.
double median(std::vector<double> v);  // of a non-empty list
// CPU time of every thread of this process: on a machine shared with other work, wall time
// includes the time the OS gave to others, CPU time does not.
double cpu_seconds();
// The process's peak resident memory so far (getrusage), and its resident memory now
// (/proc/self/statm; 0 where that cannot be read), MiB.
double peak_rss_mb();
double rss_now_mb();
int32_t argmax(const std::vector<float>& v);  // the greedy token

// A one-line progress display on stderr: "\r" updates on a terminal; elsewhere (a log file) a
// line every kLogSeconds, and a last one at the end when any was shown.
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  void update(int64_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_, unit_;
  int64_t total_;
  static constexpr double kLogSeconds = 5;
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point t0_, last_line_;
};

// Escapes invalid UTF-8 so JSON output never fails on a broken byte sequence.
using eval::valid_utf8;

}  // namespace lc::app
