// longctx plot-context: SVG figures from `bench-context --json` results files (see
// context_plot.h): decode milliseconds per token, or memory, against context length.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "app/context_plot.h"
#include "app/eval_progress.h"
#include "core/error.h"
#include "eval/results.h"

namespace lc::app {

namespace {

struct MetricInfo {
  const char* name;
  const char* key;    // field of a bench-context row
  const char* label;  // y axis
};

const MetricInfo& info(ContextMetric m) {
  static const MetricInfo kInfo[] = {
      {"decode", "decode_ms_per_token", "decode ms per token (wall, median)"},
      {"cpu", "decode_cpu_ms_per_token", "decode CPU ms per token (all threads, median)"},
      {"memory", "memory_mb", "KV memory held in RAM, MiB"},
      {"rss", "session_rss_mb", "resident memory added by the session, MiB"},
  };
  return kInfo[static_cast<int>(m)];
}

}  // namespace

std::optional<ContextMetric> parse_context_metric(const std::string& s) {
  for (ContextMetric m :
       {ContextMetric::Decode, ContextMetric::DecodeCpu, ContextMetric::Memory, ContextMetric::Rss})
    if (s == info(m).name) return m;
  return std::nullopt;
}

eval::LinePlot context_curves(const std::vector<ContextRun>& runs, ContextMetric m,
                              const std::string& title) {
  const MetricInfo& mi = info(m);
  eval::LinePlot c;
  c.title = title;
  c.y_label = mi.label;
  std::string settings;
  for (const ContextRun& run : runs) {
    if (!run.rows.is_array() || run.rows.empty())
      fail("'", run.name, "' is not a bench-context results list (run bench-context --json)");
    eval::LineSeries s;
    s.name = run.name;
    for (size_t i = 0; i < run.rows.size(); ++i) {
      const auto& r = run.rows[i];
      if (!r.is_object() || !r.contains("context") || !r["context"].is_number_integer() ||
          r["context"].get<int64_t>() <= 0)
        fail("'", run.name, "' row ", i + 1, ": no positive integer \"context\"");
      if (!r.contains(mi.key) || !r[mi.key].is_number())
        fail("'", run.name, "' row ", i + 1, ": no number \"", mi.key,
             "\" (a results file of an older bench-context?)");
      eval::LinePoint p;
      p.length = r["context"].get<int64_t>();
      p.value = r[mi.key].get<double>();
      p.ok = true;
      s.points.push_back(p);
      c.lengths.push_back(p.length);
    }
    const auto& r0 = run.rows[0];
    if (r0.contains("memory") && r0["memory"].is_string())
      settings +=
          (settings.empty() ? "" : "; ") + run.name + ": " + r0["memory"].get<std::string>();
    c.series.push_back(std::move(s));
  }
  std::sort(c.lengths.begin(), c.lengths.end());
  c.lengths.erase(std::unique(c.lengths.begin(), c.lengths.end()), c.lengths.end());
  const auto& r0 = runs[0].rows[0];
  if (r0.contains("rounds") && r0.contains("n_gen"))
    c.subtitle = cat("medians of ", r0["rounds"].dump(), " rounds of ", r0["n_gen"].dump(),
                     " decoded tokens per length. ", settings);
  else
    c.subtitle = settings;
  return c;
}

namespace {

struct Opts {
  std::vector<std::string> inputs;
  std::string svg, metric = "decode", title = "Decode cost against context length";
};

void run(const Opts& o) {
  const auto metric = parse_context_metric(o.metric);
  if (!metric) fail("--metric '", o.metric, "': expected decode, cpu, memory or rss");
  std::vector<ContextRun> runs;
  for (const std::string& arg : o.inputs) {
    // NAME=FILE names the series; else the file's name without directory and extension.
    const size_t eq = arg.find('=');
    ContextRun r;
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
      figure.write(eval::line_plot_svg(context_curves(runs, *metric, o.title)));
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
