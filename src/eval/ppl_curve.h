// The ppl-curve evaluation: perplexity against context length for several RoPE / memory
// configurations in one run, sharing the loaded model and the tokenized text; every cell
// measures what `perplexity()` gives with windows of its length. Resumable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/session_spec.h"
#include "eval/grid.h"
#include "model/model.h"

namespace lc::eval {

// Settings, named ppl_curve.* in errors.
struct PplCurveSettings {
  std::vector<int64_t> lengths;  // ppl_curve.lengths: window lengths, each >= 4
  int64_t orig_ctx = 0;          // ppl_curve.orig_ctx: trained context L0 (0 = the model's)
  int64_t chunks = 0;            // ppl_curve.chunks: windows per cell at most (0 = all)
};

// One configuration's settings at one length.
struct PplCurveCellSpec {
  std::string flags;  // how the configuration is written at this length (recorded per cell)
  SessionSpec spec;
};

// One configuration: a column of the table, a curve of the figure.
struct PplCurveConfig {
  std::string name;
  std::string flags;  // how it is written, with the per-length parts unsubstituted (recorded)
  // Its settings at `length` when the trained context is `orig_ctx`; lc::Error when they cannot
  // be made.
  std::function<PplCurveCellSpec(int64_t length, int64_t orig_ctx)> at;
};

// The scale of a length: max(1, length / orig_ctx).
double curve_scale(int64_t length, int64_t orig_ctx);

class PplCurveEval {
 public:
  // Tokenizes the text and resolves every cell's session before anything runs (a mistake in the
  // last configuration surfaces before hours of work): lc::Error starting "config 'NAME' at
  // length L" otherwise.
  PplCurveEval(std::shared_ptr<const Model> model, int64_t trained_ctx,
               const std::string& model_path, const std::string& text_path, const std::string& text,
               PplCurveSettings settings, std::vector<PplCurveConfig> configs);
  ~PplCurveEval();

  int64_t n_tokens() const;
  int64_t orig_ctx() const;
  // The resolved session of a configuration at a length (by index).
  const SessionOptions& session(size_t length_index, size_t config) const;

  // Runs every cell not kept from files.resume, rewriting the results file and figure after each.
  void run(const CheckpointFiles& files, const GridProgressFn& progress);

  // Cells that failed.
  size_t failed() const;
  size_t cells() const;
  // The results file as it stands.
  nlohmann::json results() const;
  // The table (rows: lengths, columns: configurations): a heading line (plain form), the table,
  // and a note on each cell that did not run.
  std::string table(bool markdown) const;
  // The figure files written.
  std::vector<std::string> figure_files() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lc::eval
