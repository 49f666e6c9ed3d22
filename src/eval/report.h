// The evaluation report: one self-contained HTML page (inline CSS and SVG, no scripts, no
// network) from the results files of the passkey and ppl-curve evaluations: per result its
// figure, its numbers, the model, the settings and the machine.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lc::eval {

struct ReportInput {
  std::string path;        // as given (shown on the page)
  nlohmann::json results;  // parsed; result_kind() must know it
};

// Reads and checks one results file; lc::Error naming it when it is missing, unreadable, not
// JSON, or neither a passkey nor a ppl-curve results file.
ReportInput load_report_input(const std::string& path);

// The page. `generated_at` is shown as the generation time (e.g. "2026-11-22 07:10:00 UTC").
// lc::Error when inputs is empty or a file's contents are malformed.
std::string report_html(const std::vector<ReportInput>& inputs, const std::string& title,
                        const std::string& generated_at);

}  // namespace lc::eval
