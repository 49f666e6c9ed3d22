// longctx eval: evaluations run against the public engine API (ppl-curve, passkey; report to
// come). Each evaluation registers itself as a subcommand of the `eval` group.
#include "app/commands.h"
#include "app/eval_passkey.h"
#include "app/eval_ppl_curve.h"

namespace lc::app {

void register_eval(CLI::App& root) {
  CLI::App* eval = root.add_subcommand(
      "eval", "evaluations: ppl-curve, passkey (see longctx eval SUBCOMMAND --help)");
  eval->require_subcommand(1);
  register_eval_ppl_curve(*eval);
  register_eval_passkey(*eval);
}

}  // namespace lc::app
