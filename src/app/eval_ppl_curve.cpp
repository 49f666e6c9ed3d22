#include "app/eval_ppl_curve.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "app/eval_results.h"
#include "app/flag_string.h"
#include "app/text_format.h"
#include "core/error.h"
#include "engine/perplexity.h"
#include "model/arch/arch.h"

namespace lc::app {

// ---------------------------------------------------------------------------------------------
// Lengths, presets, placeholders.

int64_t parse_length(const std::string& s) {
  std::string t = s;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(0, 1);
  int64_t mult = 1;
  if (!t.empty()) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(t.back())));
    if (c == 'k') mult = 1024;
    if (c == 'm') mult = 1024 * 1024;
    if (mult > 1) t.pop_back();
  }
  int64_t n = 0;
  const char* end = t.data() + t.size();
  auto [p, ec] = std::from_chars(t.data(), end, n);
  if (t.empty() || ec != std::errc() || p != end || n <= 0)
    fail("length '", s, "': expected a positive whole number of tokens, optionally with k (x1024) ",
         "or m (x1048576), e.g. 512, 2k, 1m");
  if (n > std::numeric_limits<int64_t>::max() / mult) fail("length '", s, "' is too large");
  return n * mult;
}

std::vector<int64_t> parse_lengths(const std::string& s) {
  std::vector<int64_t> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? comma : comma - start);
    const int64_t n = parse_length(item);
    if (std::find(out.begin(), out.end(), n) != out.end())
      fail("--lengths '", s, "': length ", n, " is given twice");
    out.push_back(n);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

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

double curve_scale(int64_t length, int64_t orig_ctx) {
  LC_CHECK(orig_ctx > 0);
  return std::max(1.0, static_cast<double>(length) / static_cast<double>(orig_ctx));
}

std::string format_number(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  LC_CHECK(ec == std::errc());
  return std::string(buf, p);
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

// ---------------------------------------------------------------------------------------------
// The run.

namespace {

struct Cell {
  size_t config = 0;
  int64_t length = 0;
  double scale = 1;
  std::string flags;  // substituted
  SessionOptions session;
  int64_t windows = 0;             // planned; 0 = the text is shorter than one window
  std::string status = "pending";  // pending, ok, too_short, error
  std::string error;
  PplResult r;
  double seconds = 0;
};

std::string cell_text(const Cell& c) {
  if (c.status == "ok") return format_ppl(c.r.ppl, c.r.stderr_ppl);
  if (c.status == "too_short") return "n/a (text too short)";
  if (c.status == "error") return "error";
  return "-";
}

size_t display_width(const std::string& s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

struct Run {
  std::string model_path, text_path;
  int64_t n_tokens = 0, orig_ctx = 0, chunks = 0;
  std::vector<int64_t> lengths;
  std::vector<CurveConfig> configs;
  std::vector<Cell> cells;  // length-major: all configs at lengths[0], then lengths[1], ...
  int64_t model_bytes = 0;
  nlohmann::json machine;  // machine_json()

  const Cell& at(size_t li, size_t ci) const { return cells[li * configs.size() + ci]; }

  nlohmann::json to_json(bool complete) const {
    nlohmann::json j;
    j["model"] = model_path;
    j["model_bytes"] = model_bytes;
    j["machine"] = machine;
    j["file"] = text_path;
    j["n_tokens"] = n_tokens;
    j["orig_ctx"] = orig_ctx;
    j["chunks"] = chunks;
    j["lengths"] = lengths;
    j["complete"] = complete;
    j["configs"] = nlohmann::json::array();
    for (const auto& c : configs) j["configs"].push_back({{"name", c.name}, {"flags", c.flags}});
    j["cells"] = nlohmann::json::array();
    for (const Cell& c : cells) {
      nlohmann::json e;
      e["config"] = configs[c.config].name;
      e["ctx"] = c.length;
      e["scale"] = c.scale;
      e["flags"] = c.flags;
      e["rope"] = rope_summary(c.session.rope);
      e["memory"] = describe_memory(c.session.memory);
      e["status"] = c.status;
      if (c.status == "ok") {
        e["ppl"] = c.r.ppl;
        e["stderr"] = c.r.stderr_ppl;
        e["mean_nll"] = c.r.mean_nll;
        e["windows"] = c.r.windows;
        e["tokens_scored"] = c.r.tokens_scored;
        e["tokens_per_s"] = c.r.tokens_per_s;
        e["seconds"] = c.seconds;
      } else if (c.status == "too_short") {
        e["reason"] =
            cat("the text has ", n_tokens, " tokens, fewer than one window of ", c.length);
      } else if (c.status == "error") {
        e["reason"] = c.error;
      }
      j["cells"].push_back(e);
    }
    return j;
  }

  void print_table(bool markdown) const {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head = {"ctx", "s"};
    for (const auto& c : configs) head.push_back(c.name);
    rows.push_back(head);
    for (size_t li = 0; li < lengths.size(); ++li) {
      std::vector<std::string> row = {std::to_string(lengths[li]),
                                      format_number(curve_scale(lengths[li], orig_ctx))};
      for (size_t ci = 0; ci < configs.size(); ++ci) row.push_back(cell_text(at(li, ci)));
      rows.push_back(row);
    }
    std::vector<size_t> width(head.size(), 0);
    for (const auto& r : rows)
      for (size_t k = 0; k < r.size(); ++k) width[k] = std::max(width[k], display_width(r[k]));
    if (markdown)  // room for the "--:" / "---" separators
      for (auto& w : width) w = std::max<size_t>(w, 3);
    auto pad = [&](const std::string& s, size_t k, bool right) {
      const std::string fill(width[k] - display_width(s), ' ');
      return right ? fill + s : s + fill;
    };
    for (size_t ri = 0; ri < rows.size(); ++ri) {
      std::string line = markdown ? "|" : "";
      for (size_t k = 0; k < rows[ri].size(); ++k) {
        const bool right = k < 2;
        if (markdown)
          line += " " + pad(rows[ri][k], k, right) + " |";
        else
          line += (k ? "   " : "") + pad(rows[ri][k], k, right);
      }
      while (!markdown && !line.empty() && line.back() == ' ') line.pop_back();
      std::cout << line << "\n";
      if (markdown && ri == 0) {
        std::string sep = "|";
        for (size_t k = 0; k < width.size(); ++k)
          sep += k < 2 ? " " + std::string(width[k] - 1, '-') + ": |"
                       : " " + std::string(width[k], '-') + " |";
        std::cout << sep << "\n";
      }
    }
    // Cells that did not run, said plainly.
    bool noted_short = false;
    for (const Cell& c : cells) {
      if (c.status == "too_short" && !noted_short) {
        std::cout << (markdown ? "\n" : "") << "n/a: the text has " << n_tokens
                  << " tokens, fewer than one window at that length (ctx";
        for (int64_t L : lengths)
          if (L > n_tokens) std::cout << " " << L;
        std::cout << ")\n";
        noted_short = true;
      }
    }
    for (const Cell& c : cells)
      if (c.status == "error")
        std::cout << (markdown ? "\n" : "") << "error: " << configs[c.config].name << " at "
                  << c.length << ": " << c.error << "\n";
  }
};

void write_json(const std::string& path, const Run& run, bool complete) {
  std::ofstream out(path, std::ios::binary);
  if (!out) fail("cannot write '", path, "'");
  out << run.to_json(complete).dump(2) << "\n";
  if (!out.flush()) fail("error writing '", path, "' (disk full?)");
}

// --resume: copies the finished cells of an earlier run's JSON into `run` after checking that it
// measured the same thing. Returns the number of cells kept. A missing file is a fresh start.
size_t resume_from(const std::string& path, Run& run) {
  std::ifstream in(path);
  if (!in) {
    if (std::filesystem::exists(path)) fail("--resume '", path, "' cannot be read");
    return 0;
  }
  nlohmann::json old;
  try {
    old = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("--resume '", path, "' is not a ppl-curve JSON file: ", e.what());
  }
  if (!old.is_object() || !old.contains("cells") || !old["cells"].is_array() ||
      !old.contains("configs"))
    fail("--resume '", path, "' is not a ppl-curve JSON file (no configs or cells)");
  const nlohmann::json now = run.to_json(false);
  auto same = [&](const char* key, const nlohmann::json& a, const nlohmann::json& b) {
    if (a != b)
      fail("--resume '", path, "' was written with other settings: ", key, " is ", a.dump(),
           " there and ", b.dump(), " now (start a new file or repeat the earlier flags)");
  };
  auto name = [](const nlohmann::json& v) {
    return nlohmann::json(std::filesystem::path(v.get<std::string>()).filename().string());
  };
  try {
    same("model", name(old.at("model")), name(now.at("model")));
    same("file", name(old.at("file")), name(now.at("file")));
    for (const char* key : {"n_tokens", "orig_ctx", "chunks"}) same(key, old.at(key), now.at(key));
  } catch (const nlohmann::json::exception& e) {
    fail("--resume '", path, "': a setting is missing: ", e.what());
  }
  size_t kept = 0;
  try {
    for (const auto& e : old["cells"]) {
      if (e.at("status").get<std::string>() != "ok") continue;
      for (Cell& c : run.cells) {
        if (c.status != "pending" || run.configs[c.config].name != e.at("config") ||
            c.length != e.at("ctx").get<int64_t>() || c.flags != e.at("flags"))
          continue;
        c.r.ppl = e.at("ppl").get<double>();
        c.r.stderr_ppl = e.at("stderr").get<double>();
        c.r.mean_nll = e.at("mean_nll").get<double>();
        c.r.windows = e.at("windows").get<int64_t>();
        c.r.tokens_scored = e.at("tokens_scored").get<int64_t>();
        c.r.tokens_per_s = e.at("tokens_per_s").get<double>();
        c.seconds = e.at("seconds").get<double>();
        c.status = "ok";
        ++kept;
      }
    }
  } catch (const nlohmann::json::exception& e) {
    fail("--resume '", path, "': a cell is malformed: ", e.what());
  }
  return kept;
}

// Progress on stderr: "cell i of n", windows, tok/s, elapsed and ETA. The ETA uses the measured
// seconds per token at each length (attention makes long windows slower per token), else the
// latest rate measured.
class CurveProgress {
 public:
  explicit CurveProgress(const Run& run)
      : run_(run), tty_(isatty(STDERR_FILENO) != 0), t0_(std::chrono::steady_clock::now()) {}

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

  std::string head(size_t i) const {
    const Cell& c = run_.cells[i];
    return cat("ppl-curve: cell ", i + 1, "/", run_.cells.size(), " ", run_.configs[c.config].name,
               " @ ", c.length, " (s=", format_number(c.scale), ")");
  }

  // Seconds left: the rest of cell i (windows_done of its windows finished) and every later cell.
  double eta(size_t i, int64_t windows_done) const {
    const Cell& cur = run_.cells[i];
    double cur_rate = 0;  // seconds per token in cell i so far
    if (windows_done > 0) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - cell_t0_).count();
      cur_rate = secs / static_cast<double>(windows_done * cur.length);
    }
    // Seconds per token grow about linearly with the window (attention reads L/2 keys on
    // average): a length not measured yet is extrapolated from the two longest measured ones.
    std::map<int64_t, double> known = rate_;
    if (cur_rate > 0 && !known.count(cur.length)) known[cur.length] = cur_rate;
    auto rate_for = [&](int64_t L) {
      if (auto it = known.find(L); it != known.end()) return it->second;
      if (known.empty()) return 0.0;
      auto hi = std::prev(known.end());
      if (known.size() == 1) return hi->second;
      auto lo = std::prev(hi);
      const double slope =
          std::max(0.0, (hi->second - lo->second) / static_cast<double>(hi->first - lo->first));
      return std::max(lo->second, hi->second + slope * static_cast<double>(L - hi->first));
    };
    double left = static_cast<double>((cur.windows - windows_done) * cur.length) *
                  (cur_rate > 0 ? cur_rate : rate_for(cur.length));
    for (size_t k = i + 1; k < run_.cells.size(); ++k) {
      const Cell& c = run_.cells[k];
      if (c.status == "pending")
        left += static_cast<double>(c.windows * c.length) * rate_for(c.length);
    }
    return left;
  }

  void start(size_t i) { cell_t0_ = std::chrono::steady_clock::now(); }

  void window(size_t i, int64_t done, int64_t total, double tps) {
    if (!tty_) return;
    char buf[160];
    std::snprintf(buf, sizeof buf, ": %lld/%lld windows, %.0f tok/s, %s elapsed, ETA %s",
                  static_cast<long long>(done), static_cast<long long>(total), tps,
                  format_duration(elapsed()).c_str(), format_duration(eta(i, done)).c_str());
    std::cerr << "\r" << head(i) << buf << "\033[K" << std::flush;
  }

  void done(size_t i) {
    const Cell& c = run_.cells[i];
    if (c.status == "ok" && c.r.windows > 0) {
      const double secs_per_tok = c.seconds / static_cast<double>(c.r.windows * c.length);
      rate_[c.length] = secs_per_tok;
    }
    std::string what;
    if (c.status == "ok")
      what = cat("ppl ", format_ppl(c.r.ppl, c.r.stderr_ppl), ", ", c.r.windows, " windows, ",
                 std::llround(c.r.tokens_per_s), " tok/s");
    else if (c.status == "too_short")
      what = cat("not run: the text has ", run_.n_tokens, " tokens, fewer than one window");
    else
      what = "failed: " + c.error;
    std::cerr << (tty_ ? "\r" : "") << head(i) << ": " << what << "; " << format_duration(elapsed())
              << " elapsed, ETA " << format_duration(eta(i, c.windows))
              << (tty_ ? "\033[K\n" : "\n") << std::flush;
  }

 private:
  const Run& run_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, cell_t0_;
  std::map<int64_t, double> rate_;  // length -> seconds per token
};

}  // namespace

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
  cmd->add_option("-m,--model", o->mo.model, "GGUF model file")->required();
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

  cmd->callback([o, cmd] {
    if (o->chunks < 0) fail("--chunks must be >= 0, got ", o->chunks);
    if (o->orig_ctx < 0) fail("--orig-ctx must be > 0, got ", o->orig_ctx);
    Run run;
    run.model_path = o->mo.model;
    run.text_path = o->file;
    run.chunks = o->chunks;
    run.lengths = parse_lengths(o->lengths);
    for (int64_t L : run.lengths)
      if (L < 4) fail("--lengths: ", L, " is too short; a window needs at least 4 tokens");
    if (o->configs.empty()) {
      for (const auto& name : ppl_curve_preset_names())
        if (name != "longrope" || !o->factors.empty())
          run.configs.push_back({name, *ppl_curve_preset(name, o->factors)});
    }
    for (const auto& arg : o->configs)
      for (auto& c : parse_curve_config(arg, o->factors)) {
        for (const auto& have : run.configs)
          if (have.name == c.name) fail("--config: the name '", c.name, "' is used twice");
        run.configs.push_back(std::move(c));
      }
    const std::vector<std::string> base_words = o->mo.settings.given_words(FlagGroup::Memory);

    const std::string text = read_file(o->file);
    const bool verbose = o->mo.verbose;
    o->mo.verbose = false;  // the per-configuration details are printed below
    SessionSpec base = o->mo.spec();
    if (!o->hf_config.empty()) base.hf_config = o->hf_config;
    const Loaded l = load_model(o->mo.model, base, false);
    const Model& m = *l.model;
    {
      std::error_code ec;
      const auto bytes = std::filesystem::file_size(o->mo.model, ec);
      run.model_bytes = ec ? 0 : static_cast<int64_t>(bytes);
    }
    run.machine = machine_json();
    run.orig_ctx = o->orig_ctx > 0 ? o->orig_ctx : l.trained_ctx;
    if (run.orig_ctx <= 0)
      fail(o->mo.model, ": the trained context length is unknown; give --orig-ctx N");

    const std::vector<int32_t> toks = m.tokenizer().encode(text, true);
    run.n_tokens = static_cast<int64_t>(toks.size());

    // Resolve every cell before running any, so a typo in the last configuration does not
    // surface after hours of work. Each cell gets what `longctx ppl` would build from the same
    // flags: RoPE from GGUF < config.json < flags, then the memory from the flags.
    for (int64_t L : run.lengths) {
      for (size_t ci = 0; ci < run.configs.size(); ++ci) {
        const CurveConfig& cfg = run.configs[ci];
        const std::string what = cat("config '", cfg.name, "' at length ", L);
        Cell c;
        c.config = ci;
        c.length = L;
        c.scale = curve_scale(L, run.orig_ctx);
        try {
          c.flags = substitute_flags(cfg.flags, L, run.orig_ctx);
        } catch (const Error& e) {
          fail(what, ": ", e.what());
        }
        try {
          std::vector<std::string> words = base_words;
          for (auto& w : split_flag_string(c.flags)) words.push_back(std::move(w));
          SessionSpec cs = parse_flag_words(words, what);
          if (!cs.hf_config && !o->hf_config.empty()) cs.hf_config = o->hf_config;
          cs.threads = base.threads;
          cs.batch = base.batch;
          c.session = resolve_session(m, cs);
        } catch (const Error& e) {
          const std::string msg = e.what();
          if (msg.rfind(what, 0) == 0) throw;
          fail(what, " (flags \"", c.flags, "\"): ", msg);
        }
        c.windows = run.n_tokens / L;
        if (o->chunks > 0) c.windows = std::min(c.windows, o->chunks);
        if (c.windows == 0) c.status = "too_short";
        if (verbose && L == run.lengths.front()) {
          for (const auto& line : rope_describe(c.session.rope))
            std::cerr << "rope [" << cfg.name << "]: " << line << "\n";
          std::cerr << "memory [" << cfg.name << "]: " << describe_memory(c.session.memory) << "\n";
        }
        run.cells.push_back(std::move(c));
      }
    }
    std::cerr << "ppl-curve: " << run.cells.size() << " cells (" << run.configs.size()
              << " configurations x " << run.lengths.size() << " lengths), " << run.n_tokens
              << " tokens, trained context " << run.orig_ctx
              << (o->chunks > 0 ? cat(", at most ", o->chunks, " windows per cell") : "") << "\n";

    const std::string out_path = o->json.empty() ? o->resume : o->json;
    if (!o->resume.empty()) {
      const size_t kept = resume_from(o->resume, run);
      std::cerr << "ppl-curve: resuming " << o->resume << ": " << kept << " of " << run.cells.size()
                << " cells already measured\n";
    }

    CurveProgress prog(run);
    FigureWriter figure(figure_path(o->svg, out_path));
    size_t failed = 0;
    for (size_t i = 0; i < run.cells.size(); ++i) {
      Cell& c = run.cells[i];
      if (c.status == "pending") {
        prog.start(i);
        const auto t0 = std::chrono::steady_clock::now();
        try {
          Session s(l.model, c.session);
          PplOptions po;
          po.ctx = c.length;
          po.max_windows = o->chunks;
          po.progress = [&](int64_t done, int64_t total, double tps) {
            prog.window(i, done, total, tps);
          };
          c.r = perplexity(s, toks, po);
          c.status = "ok";
        } catch (const Error& e) {
          c.status = "error";
          c.error = e.what();
          ++failed;
        }
        c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      prog.done(i);
      if (!out_path.empty()) write_json(out_path, run, i + 1 == run.cells.size());
      if (figure.enabled())
        figure.write(results_figure_svg(run.to_json(i + 1 == run.cells.size())));
    }
    figure.announce("ppl-curve");

    if (!o->markdown)
      std::cout << "perplexity (± standard error) by context length: " << o->file << ", "
                << run.n_tokens << " tokens, model " << o->mo.model << ", trained context "
                << run.orig_ctx << "\n";
    run.print_table(o->markdown);
    if (failed > 0) fail(failed, " of ", run.cells.size(), " cells failed (see the table)");
  });
}

}  // namespace lc::app
