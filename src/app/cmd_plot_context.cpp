// longctx plot-context: SVG figures from `bench-context --json` results files (see
// eval/context_plot.h): decode milliseconds per token, or memory, against context length.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "app/eval_progress.h"
#include "core/error.h"
#include "eval/context_plot.h"
#include "eval/results.h"

namespace lc::app {

namespace {

struct Opts {
  std::vector<std::string> inputs;
  std::string svg, metric = "decode", title = "Decode cost against context length";
};

void run(const Opts& o) {
  const auto metric = eval::parse_context_metric(o.metric);
  if (!metric) fail("--metric '", o.metric, "': expected decode, cpu, memory or rss");
  std::vector<eval::ContextRun> runs;
  for (const std::string& arg : o.inputs) {
    // NAME=FILE names the series; else the file's name without directory and extension.
    const size_t eq = arg.find('=');
    eval::ContextRun r;
    std::string path = arg;
    if (eq != std::string::npos && eq > 0) {
      r.name = arg.substr(0, eq);
      path = arg.substr(eq + 1);
    } else {
      const size_t slash = path.find_last_of('/');
      r.name = path.substr(slash == std::string::npos ? 0 : slash + 1);
      if (const size_t dot = r.name.rfind('.'); dot != std::string::npos && dot > 0)
        r.name.resize(dot);
    }
    const std::string text = read_file(path);
    r.rows = nlohmann::json::parse(text, nullptr, false);
    if (r.rows.is_discarded()) fail("'", path, "' is not JSON");
    runs.push_back(std::move(r));
  }
  if (runs.empty()) fail("give at least one bench-context --json results file");
  eval::FigureWriter figure(o.svg);
  const std::string warning =
      figure.write(eval::line_plot_svg(eval::context_curves(runs, *metric, o.title)));
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  announce_figures("plot-context", figure.written());
}

}  // namespace

void register_plot_context(CLI::App& root) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "plot-context",
      "SVG figure of bench-context --json results: decode cost or memory against context "
      "length, one series per file (e.g. infllm=infllm.json full=full.json)");
  cmd->add_option("results", o->inputs, "[NAME=]FILE, the JSON printed by bench-context --json")
      ->required();
  cmd->add_option("--svg", o->svg, "the SVG to write (a PNG beside it with rsvg-convert)")
      ->required();
  cmd->add_option("--metric", o->metric, "decode, cpu, memory or rss")->capture_default_str();
  cmd->add_option("--title", o->title, "the figure's title")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace lc::app
