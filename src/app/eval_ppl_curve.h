// longctx eval ppl-curve: perplexity against context length for several RoPE / memory
// configurations in one run, sharing the loaded model and the tokenized text.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lc::app {

// "512" -> 512, "2k" -> 2048, "1m" -> 1048576 (k = 1024, m = 1024 * 1024; either case).
// lc::Error on anything else, zero, or an overflow.
int64_t parse_length(const std::string& s);
// Comma-separated lengths in the given order; lc::Error on a bad or repeated entry.
std::vector<int64_t> parse_lengths(const std::string& s);

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

// The scale of a length: max(1, length / orig_ctx).
double curve_scale(int64_t length, int64_t orig_ctx);
// Shortest decimal text that reads back as the same double: 4 -> "4", 1.5 -> "1.5".
std::string format_number(double v);
// Replaces {s} (curve_scale), {L} (length) and {L0} (orig_ctx); lc::Error naming any other
// {placeholder}.
std::string substitute_flags(const std::string& tmpl, int64_t length, int64_t orig_ctx);

// Registers `ppl-curve` under the `eval` group.
void register_eval_ppl_curve(CLI::App& eval);

}  // namespace lc::app
