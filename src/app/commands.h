// Each `longctx` subcommand registers itself on the root CLI app.
#pragma once

#include <CLI/CLI.hpp>

namespace lc::app {

void register_info(CLI::App& root);
void register_tokenize(CLI::App& root);
void register_generate(CLI::App& root);
void register_ppl(CLI::App& root);
void register_sample_text(CLI::App& root);
void register_eval(CLI::App& root);  // the `eval` group: ppl-curve, ...
void register_make_model(CLI::App& root);
void register_convert(CLI::App& root);
void register_bench(CLI::App& root);
void register_bench_context(CLI::App& root);
void register_plot_context(CLI::App& root);
void register_serve(CLI::App& root);
void register_rope_search(CLI::App& root);
void register_rope_apply(CLI::App& root);

}  // namespace lc::app
