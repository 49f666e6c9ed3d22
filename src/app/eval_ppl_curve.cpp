#include "app/eval_ppl_curve.h"

#include <algorithm>
#include <cctype>
#include <iostream>

#include "app/common.h"
#include "app/eval_progress.h"
#include "app/flag_string.h"
#include "core/error.h"
#include "eval/lengths.h"
#include "eval/ppl_curve.h"
#include "eval/text_format.h"

namespace lc::app {

using eval::curve_scale;
using eval::format_number;

const std::vector<std::string>& ppl_curve_preset_names() {
  static const std::vector<std::string> names = {"none", "linear", "dynamic", "ntk",
                                                 "yarn", "llama3", "longrope"};
  return names;
}

namespace {

// Quotes a word for split_flag_string.
std::string quoted(const std::string& w) {
  std::string out = "'";
  for (char c : w) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string preset_help() {
  return "Presets (L0 = trained context, s = max(1, length / L0)):\n"
         "  none      --rope-scaling none                (plain RoPE)\n"
         "  linear    --rope-scaling linear --rope-scale {s}   (position interpolation)\n"
         "  dynamic   --rope-scaling dynamic --rope-scale {s} --yarn-orig-ctx {L0}\n"
         "            (Hugging Face's formula: after n tokens alpha = s n / L0 - (s - 1), so\n"
         "            s^2 - s + 1 at the end of a window; --rope-scale 1 gives alpha = n / L0)\n"
         "  ntk       --rope-scaling ntk --rope-scale {s}      (fixed NTK-aware, alpha = s)\n"
         "  yarn      --rope-scaling yarn --rope-scale {s} --yarn-orig-ctx {L0}\n"
         "  llama3    --rope-scaling llama3 --rope-scale {s} --yarn-orig-ctx {L0}\n"
         "            (low_freq_factor 1, high_freq_factor 4 unless the model says otherwise)\n"
         "  longrope  --rope-scaling longrope --rope-factors FILE --yarn-orig-ctx {L0}\n"
         "            (only with --rope-factors FILE; FILE may contain {s}. The attention\n"
         "            factor is sqrt(1 + ln(M / L0) / ln L0) with M the model's\n"
         "            max_position_embeddings, the same at every length; for LongRoPE's\n"
         "            per-length factor give each length a config.json with\n"
         "            max_position_embeddings = L: --config \"lr=--hf-config lr-{s}.json\")\n";
}

}  // namespace

std::optional<std::string> ppl_curve_preset(const std::string& name,
                                            const std::string& factors_file) {
  if (name == "none") return "--rope-scaling none";
  if (name == "linear") return "--rope-scaling linear --rope-scale {s}";
  if (name == "dynamic") return "--rope-scaling dynamic --rope-scale {s} --yarn-orig-ctx {L0}";
  if (name == "ntk") return "--rope-scaling ntk --rope-scale {s}";
  if (name == "yarn") return "--rope-scaling yarn --rope-scale {s} --yarn-orig-ctx {L0}";
  if (name == "llama3") return "--rope-scaling llama3 --rope-scale {s} --yarn-orig-ctx {L0}";
  if (name == "longrope") {
    if (factors_file.empty())
      fail("preset 'longrope' needs LongRoPE factor lists: give --rope-factors FILE (JSON with ",
           "\"long_factor\" and \"short_factor\"; {s} in FILE is replaced per length)");
    return "--rope-scaling longrope --rope-factors " + quoted(factors_file) +
           " --yarn-orig-ctx {L0}";
  }
  return std::nullopt;
}

std::vector<CurveConfig> parse_curve_config(const std::string& arg,
                                            const std::string& factors_file) {
  auto unknown = [](const std::string& n) {
    std::string names;
    for (const auto& p : ppl_curve_preset_names()) names += (names.empty() ? "" : ", ") + p;
    fail("--config '", n, "': unknown preset; expected one of ", names,
         ", or NAME=FLAGS (e.g. \"yarn4=--rope-scaling yarn --rope-scale 4\")");
  };
  const size_t eq = arg.find('=');
  if (eq != std::string::npos) {
    CurveConfig c{arg.substr(0, eq), arg.substr(eq + 1)};
    if (c.name.empty()) fail("--config '", arg, "': the name before '=' is empty");
    return {c};
  }
  std::vector<CurveConfig> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = arg.find(',', start);
    const std::string name = arg.substr(start, comma == std::string::npos ? comma : comma - start);
    auto flags = ppl_curve_preset(name, factors_file);
    if (!flags) unknown(name);
    out.push_back({name, *flags});
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string substitute_flags(const std::string& tmpl, int64_t length, int64_t orig_ctx) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] != '{') {
      out += tmpl[i++];
      continue;
    }
    const size_t close = tmpl.find('}', i);
    const std::string key = close == std::string::npos ? "" : tmpl.substr(i + 1, close - i - 1);
    if (key == "s") {
      out += format_number(curve_scale(length, orig_ctx));
    } else if (key == "L") {
      out += std::to_string(length);
    } else if (key == "L0") {
      out += std::to_string(orig_ctx);
    } else if (!key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
               })) {
      fail("flags \"", tmpl, "\": unknown placeholder {", key,
           "}; expected {s} (scale), {L} (length) or {L0} (trained context)");
    } else {
      out += tmpl[i++];
      continue;
    }
    i = close + 1;
  }
  return out;
}

void register_eval_ppl_curve(CLI::App& eval) {
  struct Opts {
    ModelOptions mo;  // model, threads, batch, --hf-config and the KV-memory base flags
    std::string file, lengths = "512,1k,2k,4k", json, factors, hf_config;
    std::string svg;     // --svg (default: the JSON path with .svg)
    std::string resume;  // --resume: cells already measured in this JSON file are kept
    std::vector<std::string> configs;
    int64_t orig_ctx = 0, chunks = 0;
    bool markdown = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = eval.add_subcommand(
      "ppl-curve",
      "perplexity against context length for several RoPE/memory configurations in one run "
      "(same windows as `longctx ppl --ctx L` in every cell)");
  cmd->footer(
      "Each --config is NAME=FLAGS, a preset name, or comma-separated preset names. FLAGS are "
      "the RoPE flags, --hf-config and the KV-memory flags of the other commands (e.g. "
      "\"--rope-scaling yarn --rope-scale {s} --yarn-orig-ctx {L0} --memory full\"); KV-memory "
      "flags given to ppl-curve itself apply to every configuration unless its FLAGS say "
      "otherwise. {s}, {L} and {L0} in FLAGS are replaced per length by the scale "
      "s = max(1, L / L0), the length L and the trained context L0. NAME= (empty FLAGS) runs "
      "the model's own settings. Without --config every preset runs (longrope only with "
      "--rope-factors).\n\n" +
      preset_help() +
      "\nExample: longctx eval ppl-curve -m model.gguf -f text.txt --lengths 512,2k,8k "
      "--config none,yarn --config \"yarn-b16=--rope-scaling yarn --rope-scale {s} "
      "--yarn-orig-ctx {L0} --yarn-beta-fast 16\" --json curve.json");
  cmd->add_option("-m,--model", o->mo.model, "GGUF model file or Hugging Face model folder")
      ->required();
  cmd->add_option("-f,--file", o->file, "text file")->required();
  cmd->add_option("--lengths", o->lengths, "comma-separated context lengths; k = 1024, m = 1024^2")
      ->capture_default_str();
  cmd->add_option("--config", o->configs, "NAME=FLAGS or preset name(s); repeatable");
  cmd->add_option("--orig-ctx", o->orig_ctx,
                  "trained context L0 for {s} and {L0} (default: --ctx-train, else the model's "
                  "RoPE original context, else its context length)");
  cmd->add_option("--chunks", o->chunks, "evaluate at most this many windows per cell (0 = all)");
  cmd->add_option("--json", o->json,
                  "write every cell to this JSON file (rewritten after each cell)");
  cmd->add_option("--resume", o->resume,
                  "keep the finished cells of this JSON file from an earlier run with the same "
                  "model, text, lengths, configurations and --chunks, run the others, and keep "
                  "writing it (created when missing)");
  cmd->add_option("--svg", o->svg,
                  "write the perplexity curves (log-scaled length axis) to this SVG file, and a "
                  "PNG beside it when rsvg-convert is installed (default with --json: the JSON "
                  "path with .svg; rewritten after each cell)");
  cmd->add_flag("--markdown", o->markdown, "print the table as Markdown");
  cmd->add_option("--rope-factors", o->factors,
                  "LongRoPE factor file of the longrope preset ({s} allowed)");
  cmd->add_option("--hf-config", o->hf_config,
                  "config.json applied under every configuration (FLAGS may name another)");
  o->mo.add_run_options(*cmd);
  cmd->add_flag("-v,--verbose", o->mo.verbose,
                "print each configuration's RoPE and memory details on stderr");
  o->mo.add_memory_options(*cmd);

  cmd->callback([o] {
    eval::PplCurveSettings s;
    s.chunks = o->chunks;
    s.orig_ctx = o->orig_ctx;
    s.lengths = eval::parse_lengths(o->lengths, "ppl_curve.lengths");
    std::vector<CurveConfig> configs;
    if (o->configs.empty()) {
      for (const auto& name : ppl_curve_preset_names())
        if (name != "longrope" || !o->factors.empty())
          configs.push_back({name, *ppl_curve_preset(name, o->factors)});
    }
    for (const auto& arg : o->configs)
      for (auto& c : parse_curve_config(arg, o->factors)) {
        for (const auto& have : configs)
          if (have.name == c.name) fail("--config: the name '", c.name, "' is used twice");
        configs.push_back(std::move(c));
      }
    const std::vector<std::string> base_words = o->mo.settings.given_words(FlagGroup::Memory);

    const std::string text = read_file(o->file);
    const bool verbose = o->mo.verbose;
    o->mo.verbose = false;  // the per-configuration details are printed below
    SessionSpec base = o->mo.spec();
    if (!o->hf_config.empty()) base.hf_config = o->hf_config;
    const Loaded l = load_model(o->mo.model, base, false);

    // Each configuration's settings at a length: its flags with {s}, {L} and {L0} replaced,
    // after the KV-memory flags given to ppl-curve itself, as `longctx ppl` would take them.
    std::vector<eval::PplCurveConfig> columns;
    for (const CurveConfig& cfg : configs) {
      eval::PplCurveConfig col;
      col.name = cfg.name;
      col.flags = cfg.flags;
      col.at = [cfg, base_words, base, hf = o->hf_config](int64_t L, int64_t orig_ctx) {
        const std::string what = cat("config '", cfg.name, "' at length ", L);
        eval::PplCurveCellSpec cs;
        try {
          cs.flags = substitute_flags(cfg.flags, L, orig_ctx);
        } catch (const Error& e) {
          fail(what, ": ", e.what());
        }
        try {
          std::vector<std::string> words = base_words;
          for (auto& w : split_flag_string(cs.flags)) words.push_back(std::move(w));
          cs.spec = parse_flag_words(words, what);
          if (!cs.spec.hf_config && !hf.empty()) cs.spec.hf_config = hf;
          cs.spec.threads = base.threads;
          cs.spec.batch = base.batch;
        } catch (const Error& e) {
          const std::string msg = e.what();
          if (msg.rfind(what, 0) == 0) throw;
          fail(what, " (flags \"", cs.flags, "\"): ", msg);
        }
        return cs;
      };
      columns.push_back(std::move(col));
    }
    eval::PplCurveEval ev(l.model, l.trained_ctx, o->mo.model, o->file, text, std::move(s),
                          std::move(columns));
    if (verbose)
      for (size_t ci = 0; ci < configs.size(); ++ci) {
        const SessionOptions& so = ev.session(0, ci);
        for (const auto& line : rope_describe(so.rope))
          std::cerr << "rope [" << configs[ci].name << "]: " << line << "\n";
        std::cerr << "memory [" << configs[ci].name << "]: " << describe_memory(so.memory) << "\n";
      }

    EvalProgressPrinter printer("ppl-curve");
    ev.run(eval::checkpoint_files(o->json, o->svg, o->resume),
           [&](const eval::GridProgress& p) { printer(p); });
    printer.finish();
    announce_figures("ppl-curve", ev.figure_files());
    std::cout << ev.table(o->markdown);
    if (ev.failed() > 0) fail(ev.failed(), " of ", ev.cells(), " cells failed (see the table)");
  });
}

}  // namespace lc::app
