// longctx eval report: one self-contained HTML page (inline CSS and SVG, no scripts, no network)
// from the results files of `eval passkey --json` and `eval ppl-curve --json`: per result its
// figure, its numbers, the model, the settings and the machine.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lc::app {

struct ReportInput {
  std::string path;        // as given on the command line (shown on the page)
  nlohmann::json results;  // parsed; result_kind() must know it
};

// Reads and checks one results file; lc::Error naming it when it is missing, unreadable, not
// JSON, or neither a passkey nor a ppl-curve results file.
ReportInput load_report_input(const std::string& path);

// The page. `generated_at` is shown as the generation time (e.g. "2026-11-22 07:10:00 UTC").
// lc::Error when inputs is empty or a file's contents are malformed.
std::string report_html(const std::vector<ReportInput>& inputs, const std::string& title,
                        const std::string& generated_at);

// Registers `report` under the `eval` group.
void register_eval_report(CLI::App& eval);

}  // namespace lc::app
