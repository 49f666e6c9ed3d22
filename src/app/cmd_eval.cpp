// longctx eval: evaluations run against the public engine API (ppl-curve, passkey) and the
// report that gathers their results files into one HTML page. Each registers itself as a
// subcommand of the `eval` group.
#include "app/commands.h"
#include "app/eval_passkey.h"
#include "app/eval_ppl_curve.h"
#include "app/eval_report.h"

namespace lc::app {

void register_eval(CLI::App& root) {
  CLI::App* eval = root.add_subcommand(
      "eval", "evaluations: ppl-curve, passkey, report (see longctx eval SUBCOMMAND --help)");
  eval->require_subcommand(1);
  register_eval_ppl_curve(*eval);
  register_eval_passkey(*eval);
  register_eval_report(*eval);
}

}  // namespace lc::app
