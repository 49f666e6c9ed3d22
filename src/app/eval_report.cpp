#include "app/eval_report.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "eval/machine.h"
#include "eval/report.h"

namespace lc::app {

void register_eval_report(CLI::App& eval) {
  struct Opts {
    std::vector<std::string> inputs;
    std::string out, title = "longctx evaluation report";
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = eval.add_subcommand(
      "report",
      "one self-contained HTML page from results files of eval passkey / eval ppl-curve "
      "(figures, tables, model, settings, machine)");
  cmd->footer(
      "Example: longctx eval passkey -m model.gguf --lengths 1k,4k --json pk.json && longctx "
      "eval report pk.json -o report.html");
  cmd->add_option("results", o->inputs, "results files (the --json output of the evaluations)");
  cmd->add_option("-o,--output", o->out, "the HTML file to write")->required();
  cmd->add_option("--title", o->title, "the page's title")->capture_default_str();
  cmd->callback([o] {
    if (o->inputs.empty())
      fail("eval report: no results files given (give one or more --json files of eval ",
           "passkey or eval ppl-curve)");
    std::vector<eval::ReportInput> inputs;
    for (const auto& p : o->inputs) inputs.push_back(eval::load_report_input(p));
    const std::string html =
        eval::report_html(inputs, o->title, eval::utc_time("%Y-%m-%d %H:%M:%S UTC"));
    const std::string tmp = o->out + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary);
      if (!out) fail("eval report: cannot write '", tmp, "'");
      out << html;
      if (!out.flush()) fail("eval report: error writing '", tmp, "' (disk full?)");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, o->out, ec);
    if (ec) fail("eval report: cannot replace '", o->out, "': ", ec.message());
    std::cerr << "report: " << o->out << " (" << inputs.size() << " result"
              << (inputs.size() == 1 ? "" : "s") << ")\n";
  });
}

}  // namespace lc::app
