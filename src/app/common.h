// Pieces every `longctx` subcommand shares: model and RoPE options, loading, progress display.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/session.h"
#include "model/model.h"
#include "model/rope/rope_config.h"

namespace lc::app {

// Options of every command that runs a model.
struct ModelOptions {
  std::string model;
  std::string hf_config;
  int threads = 0;
  int64_t batch = 512;
  std::string memory = "full";
  std::string kv_type = "f32";  // --kv-type: storage of the full memory's keys and values
  int64_t ctx_train = 0;        // --ctx-train: the trained context when the file's is wrong
  // KV-memory parameters (-1 / "" = derived from the trained context)
  int64_t n_init = -1, n_local = -1, block_size = -1, topk = -1, repr_topk = -1, exec_block = -1;
  std::string mem_budget, spill_dir, spill_type = "f16", retrieval = "index";
  int64_t index_group = 32, index_probe = 0;
  int64_t index_budget = 512, index_clusters = 1024;
  bool measure_recall = false;
  bool verbose = false;
  std::vector<std::pair<std::string, std::string*>> rope_flags;  // flag -> bound value
  std::vector<std::unique_ptr<std::string>> rope_values;

  void add_to(CLI::App& cmd, bool require_model = true);
  void add_rope_options(CLI::App& cmd);    // the RoPE flags and --hf-config only
  void add_memory_options(CLI::App& cmd);  // --memory and its parameters
  RopeOverrides rope_overrides() const;
};

// Loads the model, applies thread count, resolves RoPE (CLI > config.json > GGUF) and builds the
// session options. Prints model and RoPE details when verbose.
struct Loaded {
  std::shared_ptr<const Model> model;
  SessionOptions session;
  int64_t trained_ctx = 0;  // see trained_context()
};
Loaded load_model(const ModelOptions& o);
// The trained context: --ctx-train, else the RoPE original context, else {arch}.context_length.
int64_t trained_context(const ModelOptions& o, const Loaded& l);
// Fills l.session.memory from the options (defaults from the trained context).
void configure_memory(const ModelOptions& o, Loaded& l);
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

// A one-line progress display on stderr ("\r" updates on a terminal, a line every 10% otherwise).
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  void update(int64_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_, unit_;
  int64_t total_;
  bool tty_;
  int last_decile_ = -1;
  bool shown_ = false;
  std::chrono::steady_clock::time_point t0_;
};

// Escapes invalid UTF-8 so JSON output never fails on a broken byte sequence.
std::string valid_utf8(const std::string& s);

}  // namespace lc::app
