// longctx eval ppl-curve: perplexity against context length for several RoPE / memory
// configurations in one run, sharing the loaded model and the tokenized text.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lc::app {

// One column of the curve: a name and a flag template (see parse_flag_string) in which {s},
// {L} and {L0} are replaced per length.
struct CurveConfig {
  std::string name;
  std::string flags;
};

// Preset names in help order: none, linear, dynamic, ntk, yarn, llama3, longrope.
const std::vector<std::string>& ppl_curve_preset_names();
// The flag template of a preset; nullopt for an unknown name. `factors_file` is the LongRoPE
// factor file of the `longrope` preset (lc::Error when that preset is asked for without one).
std::optional<std::string> ppl_curve_preset(const std::string& name,
                                            const std::string& factors_file);
// A --config argument: "NAME=FLAGS" (FLAGS may be empty: the model's own settings), a preset
// name, or comma-separated preset names. lc::Error for an unknown preset or an empty name.
std::vector<CurveConfig> parse_curve_config(const std::string& arg,
                                            const std::string& factors_file);

// Replaces {s} (eval::curve_scale), {L} (length) and {L0} (orig_ctx); lc::Error naming any other
// {placeholder}.
std::string substitute_flags(const std::string& tmpl, int64_t length, int64_t orig_ctx);

// Registers `ppl-curve` under the `eval` group.
void register_eval_ppl_curve(CLI::App& eval);

}  // namespace lc::app
