#include "app/eval_passkey.h"

#include <filesystem>
#include <iostream>

#include "app/common.h"
#include "app/eval_progress.h"
#include "core/error.h"
#include "eval/lengths.h"
#include "eval/passkey_eval.h"

namespace lc::app {

namespace {

struct Opts {
  ModelOptions mo;
  std::string lengths = "1k,4k,16k", depths = "0:1:0.1", format = "auto";
  std::string json_path, filler, resume, chat_template, separator = "newline";
  int64_t trials = 5, n_predict = 8, seed = 0;
  bool no_chat = false;
  std::string svg_path;  // --svg (default: the JSON path with .svg)
};

void run_passkey(const Opts& o) {
  eval::PasskeySettings s;
  s.trials = o.trials;
  s.n_predict = o.n_predict;
  s.seed = o.seed;
  eval::check_passkey_settings(s);
  if (o.format != "auto") s.format = eval::passkey_format_from_name(o.format);
  s.lengths = eval::parse_lengths(o.lengths, "passkey.lengths");
  s.depths = eval::parse_depths(o.depths);
  s.chat_template = o.chat_template;
  s.chat = !o.no_chat;
  s.separator = o.separator;

  Loaded l = load_model(o.mo);
  if (!o.filler.empty()) {
    s.filler_name = std::filesystem::path(o.filler).filename().string();
    s.filler_text = read_file(o.filler);
  }
  eval::PasskeyEval ev(l.model, l.session, o.mo.model, std::move(s));
  warn_context(l, ev.longest_context());

  EvalProgressPrinter printer("passkey");
  ev.run(eval::checkpoint_files(o.json_path, o.svg_path, o.resume),
         [&](const eval::GridProgress& p) { printer(p); });
  printer.finish();
  announce_figures("passkey", ev.figure_files());
  std::cout << ev.table() << ev.summary();
}

}  // namespace

void register_eval_passkey(CLI::App& eval) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = eval.add_subcommand(
      "passkey",
      "passkey retrieval accuracy over prompt lengths (in the model's tokens) and needle depths");
  cmd->footer(
      "Formats (docs/algorithms.md section 3): landmark = filler lines, the needle \"The pass key "
      "is K. "
      "Remember it. K is the pass key.\", more lines, then \"What is the pass key? The pass key "
      "is\" (lines joined with \\n; K = 1..50000; for base models); infinitebench = its "
      "instruction, the noise repeated with the needle inside, then \"What is the pass key?\" "
      "(K = 5 random digits), as the user message when the model has a chat template. auto: "
      "infinitebench for models with a chat template, else landmark. Each prompt has the most "
      "filler that keeps it within the length (BOS included); the answer is correct when its "
      "first run of digits equals the key.\n"
      "Example: longctx eval passkey -m model.gguf --lengths 1k,4k,16k --depths 0:1:0.25 "
      "--trials 4 --memory infllm --json passkey.json");
  o->mo.add_to(*cmd);
  cmd->add_option("--lengths", o->lengths,
                  "comma-separated prompt lengths in tokens; k = 1024, m = 1024^2")
      ->capture_default_str();
  cmd->add_option("--depths", o->depths,
                  "needle depths in [0, 1]: start:stop:step and/or a comma-separated list")
      ->capture_default_str();
  cmd->add_option("--trials", o->trials, "trials (keys) per cell")->capture_default_str();
  cmd->add_option("--format", o->format, "prompt form: auto, landmark, infinitebench")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the keys and filler choices")->capture_default_str();
  cmd->add_option("-n,--n-predict", o->n_predict, "answer tokens (greedy)")->capture_default_str();
  cmd->add_option("--separator", o->separator,
                  "what joins filler lines, needle and question in the landmark form: newline "
                  "(docs/algorithms.md section 3) or space (one paragraph)")
      ->capture_default_str();
  cmd->add_option("--filler", o->filler,
                  "text file whose sentences and lines replace the noise filler (cycled)");
  cmd->add_option("--json", o->json_path,
                  "write settings, machine and every cell to this file (after each cell)");
  cmd->add_option("--svg", o->svg_path,
                  "write the heatmap (length x depth, colour = accuracy) to this SVG file, and a "
                  "PNG beside it when rsvg-convert is installed (default with --json: the JSON "
                  "path with .svg)");
  cmd->add_option("--resume", o->resume,
                  "skip the cells already in this JSON file from an earlier run with the same "
                  "settings, and keep writing it (created when missing)");
  cmd->add_option("--chat-template", o->chat_template,
                  "chat template family for the infinitebench form when the model's is not "
                  "recognised: chatml, llama2, llama3, mistral, phi3, internlm2");
  cmd->add_flag("--no-chat", o->no_chat, "do not wrap the infinitebench prompt in a chat template");
  cmd->callback([o] { run_passkey(*o); });
}

}  // namespace lc::app
