#include "eval/context_plot.h"

#include <algorithm>

#include "core/error.h"

namespace lc::eval {

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

LinePlot context_curves(const std::vector<ContextRun>& runs, ContextMetric m,
                        const std::string& title) {
  const MetricInfo& mi = info(m);
  LinePlot c;
  c.title = title;
  c.y_label = mi.label;
  std::string settings;
  for (const ContextRun& run : runs) {
    if (!run.rows.is_array() || run.rows.empty())
      fail("'", run.name,
           "' is not a bench-context results list (the JSON that bench-context prints)");
    LineSeries s;
    s.name = run.name;
    for (size_t i = 0; i < run.rows.size(); ++i) {
      const auto& r = run.rows[i];
      if (!r.is_object() || !r.contains("context") || !r["context"].is_number_integer() ||
          r["context"].get<int64_t>() <= 0)
        fail("'", run.name, "' row ", i + 1, ": no positive integer \"context\"");
      if (!r.contains(mi.key) || !r[mi.key].is_number())
        fail("'", run.name, "' row ", i + 1, ": no number \"", mi.key,
             "\" (a results file of an older bench-context?)");
      LinePoint p;
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

}  // namespace lc::eval
