#include "app/eval_passkey.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "app/common.h"
#include "app/eval_ppl_curve.h"
#include "app/eval_results.h"
#include "app/text_format.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/generate.h"
#include "engine/passkey.h"
#include "model/tokenizer/chat_template.h"

namespace lc::app {

namespace {

using nlohmann::json;

struct Opts {
  ModelOptions mo;
  std::string lengths = "1k,4k,16k", depths = "0:1:0.1", format = "auto";
  std::string json_path, filler, resume, chat_template, separator = "newline";
  int64_t trials = 5, n_predict = 8, seed = 0;
  bool no_chat = false;
  std::string svg_path;  // --svg (default: the JSON path with .svg)
};

struct Trial {
  std::string key, answer;
  bool correct = false;
  int64_t tokens = 0, needle_pos = 0;
  bool assembled = true;
  double prompt_seconds = 0, gen_seconds = 0;
};

struct Cell {
  int64_t length = 0;
  double depth = 0;
  std::vector<Trial> trials;
  bool done = false, resumed = false;
  double seconds = 0;

  int64_t correct() const {
    int64_t n = 0;
    for (const Trial& t : trials) n += t.correct;
    return n;
  }
  double accuracy() const {
    return trials.empty() ? 0 : static_cast<double>(correct()) / static_cast<double>(trials.size());
  }
};

// Processors this process may run on (what `nproc` prints).
int64_t nproc() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int64_t>(std::thread::hardware_concurrency());
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t i = colon + 1;
        while (i < line.size() && line[i] == ' ') ++i;
        return line.substr(i);
      }
    }
  return "unknown";
}

// Relative prefill cost of a prompt, for the ETA: each token costs its matrix products plus
// attention over the positions it sees (all of them for full memory, at most `span` otherwise).
// K is the context length at which a token's attention costs as much as its matrix products: a
// third of the flop break-even d + d_kv + 1.5 d_ff, as attention runs at lower efficiency
// (measured with passkey-llama-tiny at 1k-16k).
struct CostModel {
  double k = 1024;
  int64_t span = 0;  // 0 = unbounded (full memory)

  CostModel(const HParams& hp, const MemoryConfig& mc) {
    const double d = hp.n_embd, kv = static_cast<double>(hp.n_head_kv) * hp.head_dim;
    if (d > 0) k = std::max(1.0, (d + kv + 1.5 * hp.n_ff) / 3);
    if (mc.policy != MemoryPolicy::Full) {
      span = mc.ctx.n_init + mc.ctx.n_local;
      if (mc.policy == MemoryPolicy::InfLLM) span += mc.ctx.topk * mc.ctx.block_size;
    }
  }
  // Cost of the first m tokens of a prompt.
  double operator()(double m) const {
    const double quad = span == 0 || m <= static_cast<double>(span) ? m : static_cast<double>(span);
    double attn = quad * quad / 2;
    if (span > 0 && m > static_cast<double>(span))
      attn += (m - static_cast<double>(span)) * static_cast<double>(span);
    return m + attn / k;
  }
};

json cell_json(const Cell& c) {
  json e;
  e["length"] = c.length;
  e["depth"] = c.depth;
  int64_t lo = 0, hi = 0, sum = 0;
  for (size_t i = 0; i < c.trials.size(); ++i) {
    const int64_t n = c.trials[i].tokens;
    lo = i ? std::min(lo, n) : n;
    hi = i ? std::max(hi, n) : n;
    sum += n;
  }
  const auto n = static_cast<int64_t>(c.trials.size());
  e["tokens"] = n ? (sum + n / 2) / n : 0;
  e["tokens_min"] = lo;
  e["tokens_max"] = hi;
  e["trials"] = n;
  e["correct"] = c.correct();
  const double p = c.accuracy();
  e["accuracy"] = p;
  e["stderr"] = n ? std::sqrt(p * (1 - p) / static_cast<double>(n)) : 0.0;
  e["seconds"] = c.seconds;
  e["answers"] = json::array();
  for (size_t i = 0; i < c.trials.size(); ++i) {
    const Trial& t = c.trials[i];
    e["answers"].push_back({{"trial", i},
                            {"key", t.key},
                            {"answer", valid_utf8(t.answer)},
                            {"correct", t.correct},
                            {"tokens", t.tokens},
                            {"needle_pos", t.needle_pos},
                            {"assembled", t.assembled},
                            {"prompt_seconds", t.prompt_seconds},
                            {"gen_seconds", t.gen_seconds}});
  }
  return e;
}

Cell cell_from_json(const json& e) {
  Cell c;
  c.length = e.at("length").get<int64_t>();
  c.depth = e.at("depth").get<double>();
  c.seconds = e.value("seconds", 0.0);
  for (const json& a : e.at("answers")) {
    Trial t;
    t.key = a.at("key").get<std::string>();
    t.answer = a.at("answer").get<std::string>();
    t.correct = passkey_correct(t.answer, t.key);
    t.tokens = a.value("tokens", int64_t{0});
    t.needle_pos = a.value("needle_pos", int64_t{0});
    t.assembled = a.value("assembled", true);
    t.prompt_seconds = a.value("prompt_seconds", 0.0);
    t.gen_seconds = a.value("gen_seconds", 0.0);
    c.trials.push_back(std::move(t));
  }
  c.done = c.resumed = true;
  return c;
}

// The run: its settings (what --resume must match), the grid, and cells from an earlier run
// outside the grid (kept in the file).
struct Run {
  json settings, machine;
  std::string model_path;
  std::vector<int64_t> lengths;
  std::vector<double> depths;
  std::vector<Cell> cells;  // length-major
  std::vector<Cell> others;
  double seconds = 0;

  const Cell& at(size_t li, size_t di) const { return cells[li * depths.size() + di]; }

  json to_json() const {
    json j;
    j["model_path"] = model_path;
    j["settings"] = settings;
    j["machine"] = machine;
    j["lengths"] = lengths;
    j["depths"] = depths;
    bool complete = true;
    for (const Cell& c : cells) complete = complete && c.done;
    j["complete"] = complete;
    j["seconds"] = seconds;
    std::vector<const Cell*> all;
    for (const Cell& c : cells)
      if (c.done) all.push_back(&c);
    for (const Cell& c : others) all.push_back(&c);
    std::sort(all.begin(), all.end(), [](const Cell* a, const Cell* b) {
      return a->length != b->length ? a->length < b->length : a->depth < b->depth;
    });
    j["cells"] = json::array();
    for (const Cell* c : all) j["cells"].push_back(cell_json(*c));
    return j;
  }
};

void write_json(const std::string& path, const Run& run) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) fail("cannot write '", tmp, "'");
    out << run.to_json().dump(2) << "\n";
    if (!out.flush()) fail("error writing '", tmp, "' (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot replace '", path, "': ", ec.message());
}

// Loads the finished cells of an earlier run into `run`; lc::Error when its settings differ.
void resume_from(const std::string& path, Run& run) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("--resume '", path, "' is not a passkey JSON file: ", e.what());
  }
  if (!j.contains("settings") || !j.contains("cells"))
    fail("--resume '", path, "' is not a passkey JSON file (no settings or cells)");
  for (const auto& [key, value] : run.settings.items()) {
    const json old = j["settings"].value(key, json());
    if (old != value)
      fail("--resume '", path, "' was written with other settings: ", key, " is ", old.dump(),
           " there and ", value.dump(), " now (use the same flags, or another file)");
  }
  try {
    for (const json& e : j["cells"]) {
      Cell c = cell_from_json(e);
      auto it = std::find_if(run.cells.begin(), run.cells.end(), [&](const Cell& g) {
        return g.length == c.length && std::abs(g.depth - c.depth) < 1e-9;
      });
      if (it != run.cells.end())
        *it = std::move(c);
      else
        run.others.push_back(std::move(c));
    }
  } catch (const json::exception& e) {
    fail("--resume '", path, "': a cell is malformed: ", e.what());
  }
  run.seconds = j.value("seconds", 0.0);
}

void print_table(const Run& run, int64_t trials) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = {"length", "tokens"};
  for (double d : run.depths) head.push_back(format_number(d));
  head.push_back("mean");
  rows.push_back(head);
  std::vector<int64_t> col_correct(run.depths.size(), 0), col_trials(run.depths.size(), 0);
  int64_t all_correct = 0, all_trials = 0;
  for (size_t li = 0; li < run.lengths.size(); ++li) {
    std::vector<std::string> row = {std::to_string(run.lengths[li]), ""};
    int64_t tok = 0, n_tok = 0, correct = 0, n = 0;
    for (size_t di = 0; di < run.depths.size(); ++di) {
      const Cell& c = run.at(li, di);
      if (!c.done) {
        row.push_back("-");
        continue;
      }
      row.push_back(format_percent(c.accuracy()));
      for (const Trial& t : c.trials) tok += t.tokens;
      n_tok += static_cast<int64_t>(c.trials.size());
      correct += c.correct();
      n += static_cast<int64_t>(c.trials.size());
      col_correct[di] += c.correct();
      col_trials[di] += static_cast<int64_t>(c.trials.size());
    }
    row[1] = n_tok ? std::to_string((tok + n_tok / 2) / n_tok) : "-";
    row.push_back(n ? format_percent(static_cast<double>(correct) / static_cast<double>(n)) : "-");
    all_correct += correct;
    all_trials += n;
    rows.push_back(row);
  }
  if (run.lengths.size() > 1) {
    std::vector<std::string> row = {"mean", ""};
    for (size_t di = 0; di < run.depths.size(); ++di)
      row.push_back(col_trials[di] ? format_percent(static_cast<double>(col_correct[di]) /
                                                    static_cast<double>(col_trials[di]))
                                   : "-");
    row.push_back(all_trials ? format_percent(static_cast<double>(all_correct) /
                                              static_cast<double>(all_trials))
                             : "-");
    rows.push_back(row);
  }
  std::vector<size_t> width(head.size(), 0);
  for (const auto& r : rows)
    for (size_t k = 0; k < r.size(); ++k) width[k] = std::max(width[k], r[k].size());
  std::cout << "passkey accuracy (" << trials << " trial" << (trials == 1 ? "" : "s")
            << " per cell; rows: prompt length, columns: needle depth)\n";
  for (const auto& r : rows) {
    std::string line;
    for (size_t k = 0; k < r.size(); ++k) {
      const std::string fill(width[k] - r[k].size(), ' ');
      line += (k ? "  " : "") + (k == 0 ? r[k] + fill : fill + r[k]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
  if (all_trials)
    std::cout << "overall: " << all_correct << "/" << all_trials << " correct ("
              << format_percent(static_cast<double>(all_correct) / static_cast<double>(all_trials))
              << ")\n";
}

void run_passkey(const Opts& o) {
  if (o.trials < 1) fail("--trials must be >= 1, got ", o.trials);
  if (o.n_predict < 1) fail("-n must be >= 1, got ", o.n_predict);
  if (o.seed < 0) fail("--seed must be >= 0, got ", o.seed);
  if (o.format != "auto") passkey_format_from_name(o.format);  // fails early on a bad name
  Run run;
  run.lengths = parse_lengths(o.lengths);
  run.depths = parse_depths(o.depths);

  Loaded l = load_model(o.mo);
  const Tokenizer& tok = l.model->tokenizer();
  const bool has_template = !tok.chat_template().empty() || !o.chat_template.empty();
  const PasskeyFormat fmt =
      o.format == "auto"
          ? (has_template && !o.no_chat ? PasskeyFormat::InfiniteBench : PasskeyFormat::Landmark)
          : passkey_format_from_name(o.format);
  PasskeyConfig cfg;
  cfg.format = fmt;
  if (!o.chat_template.empty() && (fmt != PasskeyFormat::InfiniteBench || o.no_chat))
    fail("--chat-template applies to the infinitebench format only (and not with --no-chat)");
  if (fmt == PasskeyFormat::InfiniteBench && !o.no_chat && has_template) {
    if (!o.chat_template.empty()) {
      cfg.chat = chat_format_from_name(o.chat_template);
    } else {
      try {
        cfg.chat = detect_chat_format(tok.chat_template());
      } catch (const Error& e) {
        fail(e.what(), "; name the family with --chat-template NAME, or use --no-chat");
      }
    }
  }
  if (!o.filler.empty()) cfg.filler = passkey_split_filler(read_file(o.filler));
  if (o.separator == "space")
    cfg.separator = " ";
  else if (o.separator != "newline")
    fail("--separator must be newline or space, got '", o.separator, "'");
  if (o.separator != "newline" && fmt != PasskeyFormat::Landmark)
    fail("--separator applies to the landmark format only");
  PasskeyBuilder builder(tok, cfg);

  // The longest keys of the format give the shortest room for filler.
  const std::string longest_key = fmt == PasskeyFormat::InfiniteBench ? "00000" : "50000";
  const int64_t least = builder.min_tokens(longest_key);
  for (int64_t L : run.lengths)
    if (L < least)
      fail("length ", L, " is too short: the ", passkey_format_name(fmt),
           " prompt without filler already takes ", least, " tokens");

  const int64_t longest = *std::max_element(run.lengths.begin(), run.lengths.end());
  warn_context(l, longest + o.n_predict);

  std::error_code ec;
  const std::string model_name = std::filesystem::path(o.mo.model).filename().string();
  const auto model_bytes = std::filesystem::file_size(o.mo.model, ec);
  run.model_path = o.mo.model;
  run.settings = {
      {"model", model_name},
      {"model_bytes", ec ? 0 : model_bytes},
      {"format", passkey_format_name(fmt)},
      {"chat", cfg.chat ? json(chat_format_name(*cfg.chat)) : json(nullptr)},
      {"filler", o.filler.empty() ? "noise" : std::filesystem::path(o.filler).filename().string()},
      {"filler_units", builder.n_units()},
      {"separator", o.separator},
      {"seed", o.seed},
      {"trials", o.trials},
      {"n_predict", o.n_predict},
      {"memory", describe_memory(l.session.memory)},
      {"rope", rope_summary(l.session.rope)},
      {"batch", l.session.batch},
  };
  run.machine = {{"nproc", nproc()}, {"cpu", cpu_model()}, {"threads", num_threads()}};
  for (int64_t L : run.lengths)
    for (double d : run.depths) {
      Cell c;
      c.length = L;
      c.depth = d;
      run.cells.push_back(c);
    }

  const std::string out_path = o.json_path.empty() ? o.resume : o.json_path;
  // The results file and the heatmap, rewritten after every finished cell.
  FigureWriter figure(figure_path(o.svg_path, out_path));
  auto save = [&] {
    if (!out_path.empty()) write_json(out_path, run);
    if (figure.enabled()) figure.write(results_figure_svg(run.to_json()));
  };
  if (!o.resume.empty()) {
    if (std::filesystem::exists(o.resume)) {
      resume_from(o.resume, run);
    } else {
      std::cerr << "passkey: " << o.resume << " does not exist yet; starting afresh\n";
    }
  }
  std::vector<size_t> pending;
  for (size_t i = 0; i < run.cells.size(); ++i)
    if (!run.cells[i].done) pending.push_back(i);
  if (pending.size() < run.cells.size())
    std::cerr << "passkey: " << run.cells.size() - pending.size() << " of " << run.cells.size()
              << " cells already done in " << o.resume << "\n";
  std::cerr << "passkey: " << model_name << ", " << passkey_format_name(fmt) << " format"
            << (cfg.chat ? cat(" (", chat_format_name(*cfg.chat), " chat template)") : "")
            << ", filler " << run.settings["filler"].get<std::string>() << ", memory "
            << run.settings["memory"].get<std::string>() << ", rope "
            << run.settings["rope"].get<std::string>() << "; " << pending.size() << " cells x "
            << o.trials << " trials to run\n";

  Session session(l.model, l.session);
  GenerateOptions g;
  g.n_predict = o.n_predict;
  g.sampling.temperature = 0;  // greedy
  g.sampling.repeat_penalty = 1;

  // Progress in prompt tokens weighted by their attention cost (so the ETA holds when long
  // prompts are slower per token), scaled to the total token count.
  const CostModel cost(l.model->hparams(), l.session.memory);
  int64_t total_tokens = 0;
  double total_work = 0;
  for (size_t i : pending) {
    total_tokens += run.cells[i].length * o.trials;
    total_work += cost(static_cast<double>(run.cells[i].length)) * static_cast<double>(o.trials);
  }
  const double scale = total_work > 0 ? static_cast<double>(total_tokens) / total_work : 0;
  Progress progress("passkey", total_tokens, "weighted tokens");
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto t0 = std::chrono::steady_clock::now();
  const double earlier_seconds = run.seconds;
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double done_work = 0;
  int64_t prompt_tokens = 0;
  for (size_t pi = 0; pi < pending.size(); ++pi) {
    Cell& c = run.cells[pending[pi]];
    const auto cell_t0 = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < o.trials; ++t) {
      const uint64_t trial_seed =
          passkey_trial_seed(static_cast<uint64_t>(o.seed), c.length, c.depth, t);
      const PasskeyDraw draw = passkey_draw(fmt, builder.n_units(), trial_seed);
      const PasskeyPrompt p = builder.build(c.length, c.depth, draw);
      const auto n = static_cast<int64_t>(p.ids.size());
      auto show = [&](int64_t prefilled) {
        const double secs = elapsed();
        const double tps = secs > 0 ? static_cast<double>(prompt_tokens + prefilled) / secs : 0;
        char rate[48];
        std::snprintf(rate, sizeof rate, "%.0f tok/s", tps);
        const double part = n > 0 ? static_cast<double>(prefilled * c.length) / n : 0;
        progress.update(std::llround((done_work + cost(part)) * scale),
                        cat("cell ", pi + 1, "/", pending.size(), " (length ", c.length, ", depth ",
                            format_number(c.depth), ", trial ", t + 1, "/", o.trials, "), ", rate));
      };
      show(0);
      session.reset();
      const GenerateResult r =
          generate(session, p.ids, g, {}, [&](int64_t done, int64_t) { show(done); });
      Trial tr;
      tr.key = p.key;
      tr.answer = r.text;
      tr.correct = passkey_correct(r.text, p.key);
      tr.tokens = n;
      tr.needle_pos = p.needle_pos;
      tr.assembled = p.assembled;
      tr.prompt_seconds = r.prompt_seconds;
      tr.gen_seconds = r.gen_seconds;
      c.trials.push_back(std::move(tr));
      done_work += cost(static_cast<double>(c.length));
      prompt_tokens += n;
    }
    c.done = true;
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - cell_t0).count();
    run.seconds = earlier_seconds + elapsed();
    std::cerr << (tty ? "\r" : "") << "passkey: cell " << pi + 1 << "/" << pending.size()
              << ": length " << c.length << ", depth " << format_number(c.depth) << ": "
              << c.correct() << "/" << c.trials.size() << " correct, " << format_duration(c.seconds)
              << (tty ? "\033[K\n" : "\n") << std::flush;
    save();
  }
  progress.finish();
  run.seconds = earlier_seconds + elapsed();
  save();
  figure.announce("passkey");

  print_table(run, o.trials);
  const double secs = elapsed();
  std::cout << "total time " << format_duration(secs) << " (" << pending.size() << " cells, "
            << prompt_tokens << " prompt tokens, "
            << (secs > 0 ? std::llround(static_cast<double>(prompt_tokens) / secs) : 0)
            << " tok/s)";
  if (pending.size() < run.cells.size())
    std::cout << "; " << run.cells.size() - pending.size() << " cells from " << o.resume
              << ", all runs " << format_duration(run.seconds);
  std::cout << "\n";
}

}  // namespace

void register_eval_passkey(CLI::App& eval) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = eval.add_subcommand(
      "passkey",
      "passkey retrieval accuracy over prompt lengths (in the model's tokens) and needle depths");
  cmd->footer(
      "Formats (ALGORITHMS.md 1.7): landmark = filler lines, the needle \"The pass key is K. "
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
                  "(ALGORITHMS.md 1.7) or space (one paragraph)")
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
