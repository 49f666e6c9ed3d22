// longctx eval report: one self-contained HTML page from the results files of `eval passkey
// --json` and `eval ppl-curve --json` (see eval/report.h).
#pragma once

#include <CLI/CLI.hpp>

namespace lc::app {

// Registers `report` under the `eval` group.
void register_eval_report(CLI::App& eval);

}  // namespace lc::app
