// Figures of bench-context results (the JSON list it prints): a per-token decode cost or a memory
// figure against context length, one series per results file (e.g. infllm and full attention of one
// model).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/svg_plot.h"

namespace lc::eval {

enum class ContextMetric { Decode, DecodeCpu, Memory, Rss };

// "decode", "cpu", "memory", "rss"; nullopt for anything else.
std::optional<ContextMetric> parse_context_metric(const std::string& s);

struct ContextRun {
  std::string name;     // the series' name
  nlohmann::json rows;  // what bench-context printed as JSON: a list, one object per length
};

// The curves of the runs for one metric. lc::Error naming the run and the row when a run is not
// a non-empty list of objects with a positive integer "context" and the metric's number.
LinePlot context_curves(const std::vector<ContextRun>& runs, ContextMetric m,
                        const std::string& title);

}  // namespace lc::eval
